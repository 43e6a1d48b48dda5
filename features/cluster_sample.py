"""The k-means sample of the audience interest clusters, chosen the same way whatever the partitioning.

The clusters are fitted on at most ``k * SAMPLE_PER_CLUSTER`` basis vectors (the most FAISS uses per fit anyway, so
its own random subsampling never triggers), chosen by a stable key rather than at random:

- the basis is the follower profiles when the whole input has at least ``k`` eligible follower vectors
  (authentic-looking, with a meaningful profile text, after the as-of filter and the per-creator follower cap: the
  rows the build embeds), else the captions of the creators' newest posts (a posts-only export);
- the sample is the bottom-``m`` rows of the basis by key: follower rows by their pseudonymised ``follower_id`` (a
  keyed hash, hence a uniform sample) then ``creator_id``; caption rows by an 8-byte BLAKE2b of ``post_id`` (stable
  across library versions, unlike polars' ``hash``), then ``post_id`` and ``creator_id``.

Each partition contributes its own bottom-``m`` (:func:`partition_candidates`), and the bottom-``m`` of the union of
those is the bottom-``m`` of the whole input (:func:`merge_candidates`), so a partition count never changes the
sample. Only the sample is embedded before the fit.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import datetime

import numpy as np
import polars as pl

from audiencefit.features.dataset import Dataset
from audiencefit.features.errors import InputError
from audiencefit.features.quality import follower_flags
from audiencefit.features.stats import filter_as_of, filter_followers_as_of, sample_followers
from audiencefit.features.text import is_meaningful, prepare_text
from audiencefit.settings import Settings

SAMPLE_PER_CLUSTER = 256
"""Basis vectors per cluster in the k-means sample (FAISS's ``max_points_per_centroid``)."""
# Posts whose captions make up the content vector (and the posts-only cluster basis).
CONTENT_POSTS = 12

FOLLOWER_SAMPLE_SCHEMA = {"follower_id": pl.String, "creator_id": pl.String, "text": pl.String}
CAPTION_SAMPLE_SCHEMA = {"key": pl.UInt64, "post_id": pl.String, "creator_id": pl.String, "text": pl.String}
_FOLLOWER_KEY = ("follower_id", "creator_id", "text")
_CAPTION_KEY = ("key", "post_id", "creator_id", "text")


def sample_size(k: int) -> int:
    """``m``: the most basis vectors the k-means of ``k`` clusters is fitted on."""
    return k * SAMPLE_PER_CLUSTER


def sampled_followers(part: Dataset, as_of: datetime | None, cap: int) -> pl.DataFrame | None:
    """The partition's followers as of ``as_of``, at most ``cap`` per creator (None without a followers table)."""
    if part.followers is None:
        return None
    window = filter_followers_as_of(part.followers.lazy(), as_of)
    return sample_followers(window, cap).collect()


def authentic_followers(followers: pl.DataFrame) -> pl.DataFrame:
    """The sampled followers not flagged suspicious (``audiencefit.features.quality.follower_flags``), with the
    flags."""
    return follower_flags(followers.lazy()).collect().filter(~pl.col("suspicious"))


def recent_captions(posts: pl.LazyFrame, n_posts: int = CONTENT_POSTS) -> pl.DataFrame:
    """creator_id, rank (0 = newest), post_id, caption: the newest ``n_posts`` posts with a caption per creator,
    sorted by creator then rank."""
    return (
        posts.filter(pl.col("caption").is_not_null())
        .sort(["creator_id", "posted_at", "post_id"], descending=[False, True, True])
        .with_columns(rank=pl.int_range(pl.len()).over("creator_id"))
        .filter(pl.col("rank") < n_posts)
        .select("creator_id", "rank", "post_id", "caption")
        .collect()
    )


def post_key(post_id: str) -> int:
    """A stable 64-bit key of a post id (BLAKE2b; the same in every version and process)."""
    return int.from_bytes(hashlib.blake2b(post_id.encode(), digest_size=8).digest(), "big")


@dataclass(frozen=True)
class BasisCandidates:
    """The bottom-``m`` basis rows of some partitions, by key, of both possible bases.

    ``followers_eligible`` counts the eligible follower rows seen, exactly while below ``m`` (past it a partition
    stops looking, and the count is a lower bound: it is only compared with ``k`` ≤ ``m``). ``captions`` is empty
    once the followers are known to be the basis (``captions_skipped``).
    """

    followers: pl.DataFrame
    followers_eligible: int
    captions: pl.DataFrame
    captions_eligible: int
    captions_skipped: bool = False

    @classmethod
    def empty(cls) -> BasisCandidates:
        return cls(
            followers=pl.DataFrame(schema=FOLLOWER_SAMPLE_SCHEMA),
            followers_eligible=0,
            captions=pl.DataFrame(schema=CAPTION_SAMPLE_SCHEMA),
            captions_eligible=0,
        )


def _bottom_meaningful(ordered: pl.DataFrame, m: int) -> tuple[pl.DataFrame, int]:
    """The first ``m`` rows of ``ordered`` whose ``text`` is meaningful (after ``prepare_text``), and how many
    meaningful rows were seen (all of them when fewer than ``m``). Scans in chunks: most rows are never tested."""
    chunk = max(2 * m, 4096)
    kept: list[pl.DataFrame] = []
    found = 0
    for start in range(0, ordered.height, chunk):
        block = ordered.slice(start, chunk)
        mask = np.fromiter(
            (is_meaningful(prepare_text(t)) for t in block["text"].to_list()), dtype=bool, count=block.height
        )
        good = block.filter(pl.Series(mask))
        kept.append(good.head(m - found))
        found += good.height
        if found >= m:
            break
    frame = pl.concat(kept) if kept else ordered.clear()
    return frame, found


def partition_candidates(
    part: Dataset, *, as_of: datetime | None, settings: Settings, need_captions: bool
) -> BasisCandidates:
    """One partition's bottom-``m`` candidates of each basis (captions only when ``need_captions``)."""
    m = sample_size(settings.audience_clusters)
    followers = sampled_followers(part, as_of, settings.max_followers_per_creator)
    fol = pl.DataFrame(schema=FOLLOWER_SAMPLE_SCHEMA)
    fol_found = 0
    if followers is not None and followers.height:
        ordered = (
            authentic_followers(followers)
            .select("follower_id", "creator_id", pl.col("bio").alias("text"))
            .cast(FOLLOWER_SAMPLE_SCHEMA)  # type: ignore[arg-type]
            .sort(_FOLLOWER_KEY, nulls_last=True)
        )
        fol, fol_found = _bottom_meaningful(ordered, m)
    caps = pl.DataFrame(schema=CAPTION_SAMPLE_SCHEMA)
    cap_found = 0
    # Once this partition alone has enough follower vectors, the followers are the basis whatever the rest holds.
    skip = not need_captions or fol_found >= settings.audience_clusters
    if not skip:
        recent = recent_captions(filter_as_of(part.posts.lazy(), as_of))
        keys = pl.Series("key", [post_key(p) for p in recent["post_id"].to_list()], dtype=pl.UInt64)
        ordered = (
            recent.select(keys, "post_id", "creator_id", pl.col("caption").alias("text"))
            .cast(CAPTION_SAMPLE_SCHEMA)  # type: ignore[arg-type]
            .sort(_CAPTION_KEY, nulls_last=True)
        )
        caps, cap_found = _bottom_meaningful(ordered, m)
    return BasisCandidates(fol, fol_found, caps, cap_found, captions_skipped=skip)


def merge_candidates(a: BasisCandidates, b: BasisCandidates, m: int) -> BasisCandidates:
    """The bottom-``m`` of the union of two partitions' candidates."""
    followers = pl.concat([a.followers, b.followers]).sort(_FOLLOWER_KEY, nulls_last=True).head(m)
    captions = pl.concat([a.captions, b.captions]).sort(_CAPTION_KEY, nulls_last=True).head(m)
    return BasisCandidates(
        followers=followers,
        followers_eligible=a.followers_eligible + b.followers_eligible,
        captions=captions,
        captions_eligible=a.captions_eligible + b.captions_eligible,
        captions_skipped=a.captions_skipped or b.captions_skipped,
    )


@dataclass(frozen=True)
class ClusterSample:
    """What the clusters are fitted on: ``basis`` ('followers' | 'captions') and the sample's raw texts, in key
    order."""

    basis: str
    texts: list[str]


def choose_sample(candidates: BasisCandidates, k: int) -> ClusterSample:
    """Followers when the input has at least ``k`` eligible follower vectors, else captions; an input with no
    meaningful text at all is refused."""
    if candidates.followers_eligible >= k:
        return ClusterSample("followers", candidates.followers["text"].to_list())
    if candidates.captions_skipped:  # cannot happen: captions are only skipped once followers reached k
        raise RuntimeError("caption candidates were skipped but the followers are below k")
    texts = candidates.captions["text"].to_list()
    if not texts:
        if candidates.followers_eligible:
            return ClusterSample("followers", candidates.followers["text"].to_list())
        raise InputError(
            "no meaningful text at all (bios, captions, follower profiles): cannot build audience features"
        )
    return ClusterSample("captions", texts)
