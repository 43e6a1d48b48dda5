"""Generate a whole synthetic creator world on disk: the six input tables plus ``truth/`` for evaluation.

Creators are drawn globally first (small arrays), then rendered and written in fixed-size chunks so a world of
100,000 creators streams to disk in bounded memory. Each chunk has its own random streams derived from the seed,
so the same seed always gives byte-identical files.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from audiencefit.features.errors import InputError
from audiencefit.features.export import write_export_manifest
from audiencefit.features.schemas import TABLE_ORDER
from audiencefit.features.synthetic import story, tables
from audiencefit.features.synthetic.text import Picker
from audiencefit.features.synthetic.writer import SinkSet, is_empty_dir, staged_directory

logger = logging.getLogger(__name__)

GENERATOR_VERSION = "3"  # 2: real followers are members of shared (topic, country) communities; 3: truth/creators
# holds what a campaign outcome depends on (er_real, comment_ratio, price_noise); the input tables are unchanged
CHUNK = 5000  # creators per chunk; fixed, because the random streams are per chunk
FIT_ROWS = 2_000_000  # rows of truth/fit per write, to bound memory
# truth/fit has a row per (creator, segment), so it grows with the square of the world's size: 6 million rows at
# 20k creators, 150 million at 100k, 15.6 billion (≈ 44 GB) at a million. Above this many pairs it holds the first
# segments only (as many as fit; segments are drawn independently, so they are a random sample of them).
FIT_MAX_PAIRS = 200_000_000

# Independent random streams, one per purpose (and per chunk where it applies).
_CREATORS, _BRANDS, _CAMPAIGNS, _BRAND_TEXT = 1, 2, 3, 4
_POSTS, _FOLLOWERS, _TEXT = 10, 11, 12
_COMMUNITIES, _MEMBERS = 20, 21  # added with audience overlap: new streams, so no earlier draw changes


@dataclass(frozen=True)
class WorldSummary:
    """Where a world was written and how many rows each input table holds."""

    path: Path
    creators: int
    posts: int
    followers: int
    brands: int
    segments: int
    campaigns: int

    def rows(self) -> dict[str, int]:
        """Row counts by table name."""
        return {name: int(getattr(self, name)) for name in TABLE_ORDER}


def default_brand_count(n_creators: int) -> int:
    """About one brand per 125 creators, at least 10."""
    return max(10, n_creators // 125)


def _rng(seed: int, *stream: int) -> np.random.Generator:
    return np.random.default_rng([seed, *stream])


def fit_segment_count(n_creators: int, n_segments: int, max_pairs: int = FIT_MAX_PAIRS) -> int:
    """How many segments (the first ones) truth/fit holds: all while creators × segments stays within
    ``max_pairs``, else as many as fit, at least one."""
    if n_creators * n_segments <= max_pairs:
        return n_segments
    return max(1, min(n_segments, max_pairs // n_creators))


def _check_args(n_creators: int, seed: int, followers_per_creator: int, n_brands: int) -> None:
    if n_creators < 1:
        raise InputError(f"n_creators must be at least 1, got {n_creators}")
    if seed < 0:
        raise InputError(f"seed must be a non-negative integer, got {seed}")
    if followers_per_creator < 0:
        raise InputError(f"followers_per_creator must be >= 0, got {followers_per_creator}")
    if n_brands < 1:
        raise InputError(f"n_brands must be at least 1, got {n_brands}")


def generate_world(
    out_dir: Path,
    n_creators: int,
    seed: int,
    *,
    followers_per_creator: int = 20,
    n_brands: int | None = None,
    progress: bool = False,
    overwrite: bool = False,
    max_fit_pairs: int = FIT_MAX_PAIRS,
) -> WorldSummary:
    """Write a synthetic world to ``out_dir`` and return its row counts.

    Writes ``{creators,posts,followers,brands,segments,campaigns}.parquet`` with exactly the contract dtypes,
    ``export.json`` stating the world's fixed export instant (``audiencefit.features.export``), and ``truth/`` (latent
    variables, true fit, expected outcomes) that the pipeline never reads. The world is built in a sibling
    directory and renamed into place at the end. ``out_dir`` must be missing or empty unless
    ``overwrite`` is true, in which case its previous content is replaced. Deterministic per ``seed``.

    ``truth/fit`` holds every (creator, segment) pair while there are at most ``max_fit_pairs`` of them, else the
    first segments only (:func:`fit_segment_count`; ``truth/world.json`` then says how many under
    ``truth_fit_segments``). Memory grows with the creator count (a few kB per creator for the latent arrays),
    not with creators × segments, posts or followers: those are drawn and written per chunk.
    """
    out_dir = Path(out_dir)
    brand_count = default_brand_count(n_creators) if n_brands is None else n_brands
    _check_args(n_creators, seed, followers_per_creator, brand_count)
    if max_fit_pairs < 1:
        raise InputError(f"max_fit_pairs must be at least 1, got {max_fit_pairs}")
    if not overwrite and not is_empty_dir(out_dir):
        raise InputError(f"{out_dir} exists and is not empty; pass overwrite=True (--force) to replace it")

    creators = story.draw_creators(_rng(seed, _CREATORS), n_creators, followers_per_creator)
    brands = story.draw_brands(_rng(seed, _BRANDS), brand_count)
    campaigns = story.draw_campaigns(_rng(seed, _CAMPAIGNS), creators, brands)
    brand_texts = tables.render_brands(Picker(_rng(seed, _BRAND_TEXT)), brands)
    communities = story.draw_communities(_rng(seed, _COMMUNITIES), creators)
    campaign_posts = np.bincount(campaigns.creator, minlength=n_creators).astype(np.int64)

    fit_brands = brands.first_segments(fit_segment_count(n_creators, brands.n_segments, max_fit_pairs))
    schemas = {**tables.INPUT_SCHEMAS, **tables.TRUTH_SCHEMAS}
    n_chunks = -(-n_creators // CHUNK)
    with (
        staged_directory(out_dir) as staging,
        SinkSet(staging, schemas, float_split=("truth/fit",)) as sinks,
        Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            disable=not progress,
        ) as bar,
    ):
        task = bar.add_task("creators", total=n_creators)
        for c in range(n_chunks):
            lo, hi = c * CHUNK, min((c + 1) * CHUNK, n_creators)
            picker = Picker(_rng(seed, _TEXT, c))
            texts = tables.render_creators(picker, creators, lo, hi)
            sinks.write("creators", tables.creators_frame(creators, texts, campaign_posts))
            sinks.write("truth/creators", tables.truth_creators_frame(creators, lo, hi))
            posts = story.draw_posts(_rng(seed, _POSTS, c), creators, lo, hi, brands=brands, campaigns=campaigns)
            sinks.write("posts", tables.posts_frame(picker, posts, creators, texts, brand_texts))
            followers = story.draw_followers(_rng(seed, _FOLLOWERS, c), creators, lo, hi)
            members = story.draw_members(_rng(seed, _MEMBERS, c), followers, communities)
            sample, truth = tables.followers_frames(picker, followers, creators, members)
            sinks.write("followers", sample)
            sinks.write("truth/followers", truth)
            step = max(1, FIT_ROWS // max(1, fit_brands.n_segments))
            for start in range(lo, hi, step):
                end = min(hi, start + step)
                sinks.write("truth/fit", tables.truth_fit_frame(creators, fit_brands, brand_texts, start, end))
            bar.advance(task, hi - lo)

        sinks.write("brands", tables.brands_frame(brand_texts))
        sinks.write("segments", tables.segments_frame(brand_texts, brands))
        sinks.write("campaigns", tables.campaigns_frame(campaigns, brand_texts))
        sinks.write("truth/campaigns", tables.truth_campaigns_frame(campaigns, brand_texts))
        sinks.write("truth/segments", tables.truth_segments_frame(brand_texts, brands))
        sinks.write("truth/brands", tables.truth_brands_frame(brand_texts, brands))
        sinks.write("truth/topics", tables.topics_frame())
        sinks.write("truth/communities", tables.communities_frame(communities))
        rows = {name: sinks.rows(name) for name in schemas}
        manifest: dict[str, object] = {
            "generator_version": GENERATOR_VERSION,
            "seed": seed,
            "n_creators": n_creators,
            "followers_per_creator": followers_per_creator,
            "n_brands": brand_count,
            "export_instant": story.EXPORT_INSTANT.isoformat(),
            "rows": rows,
        }
        if fit_brands.n_segments < brands.n_segments:  # only then, so smaller worlds keep their exact bytes
            manifest["truth_fit_segments"] = fit_brands.n_segments
        (staging / "truth" / "world.json").write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n")
        # The world states its export instant, so statistics are taken as of it whenever the files were written.
        write_export_manifest(staging, story.EXPORT_INSTANT)

    summary = WorldSummary(path=out_dir, **{name: rows[name] for name in TABLE_ORDER})
    logger.debug("synthetic world written", extra={"path": str(out_dir), "seed": seed, **summary.rows()})
    return summary
