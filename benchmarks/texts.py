"""Benchmark texts: prepared captions and bios from a small generated synthetic world (no real data).

:func:`world_texts` mixes prepared captions and bios (the backend comparison); :func:`raw_captions` gives the
world's captions *as written* (real-length: ~300 characters on Instagram with a tail past 1,000, hashtag blocks,
emoji runs, line breaks, several languages), for the end-to-end figure that includes text preparation, and
:func:`raw_short_texts` the short texts (creator and follower bios) beside them.

The hybrid backend's alignment map is fitted on :mod:`audiencefit.features.embed_backends.corpus`, a different
generator, so taking the benchmark texts from ``audiencefit.features.synthetic`` keeps the map from being graded on its
own training texts.
"""

from __future__ import annotations

import random
import tempfile
from pathlib import Path

import polars as pl

from audiencefit.features.text import is_meaningful, prepare_text


def _unique_prepared(values: list[str | None]) -> list[str]:
    seen: dict[str, None] = {}
    for value in values:
        prepared = prepare_text(value)
        if is_meaningful(prepared):
            seen.setdefault(prepared, None)
    return list(seen)


def world_texts(n: int = 2000, seed: int = 7, caption_share: float = 0.5) -> list[str]:
    """``n`` distinct prepared texts from a generated world: ``caption_share`` captions, the rest bios.

    Bios are follower bios plus creator bios (short, keyword-like); captions carry hashtags, mentions and emoji
    before preparation. Deterministic per ``seed``.
    """
    from audiencefit.features.synthetic import generate_world

    n_creators = max(20, n // 10)
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "world"
        generate_world(out, n_creators=n_creators, seed=seed, followers_per_creator=30)
        captions = _unique_prepared(pl.read_parquet(out / "posts.parquet")["caption"].to_list())
        bios = _unique_prepared(
            pl.read_parquet(out / "followers.parquet")["bio"].to_list()
            + pl.read_parquet(out / "creators.parquet")["bio"].to_list()
        )
    rng = random.Random(seed)
    n_captions = min(len(captions), round(n * caption_share))
    n_bios = min(len(bios), n - n_captions)
    picked = rng.sample(captions, n_captions) + rng.sample(bios, n_bios)
    rng.shuffle(picked)
    return picked


def _world_columns(n_creators: int, seed: int) -> tuple[list[str], list[str]]:
    """(captions, bios) as written, distinct and non-empty, from a generated world."""
    from audiencefit.features.synthetic import generate_world

    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "world"
        generate_world(out, n_creators=n_creators, seed=seed, followers_per_creator=30)
        captions = pl.read_parquet(out / "posts.parquet")["caption"].to_list()
        bios = (
            pl.read_parquet(out / "followers.parquet")["bio"].to_list()
            + pl.read_parquet(out / "creators.parquet")["bio"].to_list()
        )
    return [t for t in dict.fromkeys(captions) if t], [t for t in dict.fromkeys(bios) if t]


def raw_captions(n: int = 5000, seed: int = 7) -> list[str]:
    """``n`` distinct captions as written (not prepared) from a generated world; deterministic per ``seed``."""
    captions, _ = _world_columns(max(20, n // 8), seed)
    rng = random.Random(seed)
    return rng.sample(captions, min(n, len(captions)))


def raw_short_texts(n: int = 5000, seed: int = 7) -> list[str]:
    """``n`` distinct bios as written (creator and follower bios: short texts); deterministic per ``seed``."""
    _, bios = _world_columns(max(20, n // 10), seed)
    rng = random.Random(seed)
    return rng.sample(bios, min(n, len(bios)))
