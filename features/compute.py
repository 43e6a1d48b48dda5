"""The feature computation, split at the creator partition.

:func:`compute_partition` is everything that needs only one partition's creators, posts and followers (statistics,
terms, follower sample and flags, geography, embeddings, content and audience vectors, the distribution over given
cluster centroids, follower keys, captions to quote, the per-creator inputs of the audience quality). What needs every
creator runs afterwards on creator-level rows only: :func:`finish_creators` (the audience quality's medians and
expected-ER line) and :func:`cluster_table` (cluster sizes summed over partitions). The clusters themselves are fitted
before, on a sample chosen independently of the partitioning (``audiencefit.features.cluster_sample``).

Pure apart from the embedding cache: frames in, frames and arrays out.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime

import numpy as np
import polars as pl

from audiencefit.features import audience as aud
from audiencefit.features.cluster_sample import CONTENT_POSTS, authentic_followers, recent_captions, sampled_followers
from audiencefit.features.dataset import Dataset
from audiencefit.features.embed import Embedder, embed_texts
from audiencefit.features.embed_cache import EmbeddingCache
from audiencefit.features.featureset import QUOTE_CAPTION_CHARS, QUOTE_CAPTIONS
from audiencefit.features.quality import follower_sample_summary, quality_from_creators
from audiencefit.features.schemas import UTC_DATETIME
from audiencefit.features.stats import creator_stats, creator_terms, filter_as_of, newest_posts
from audiencefit.features.text import is_meaningful, prepare_text
from audiencefit.features.topic_terms import MAX_SPREAD, MIN_CLUSTERS_FOR_SPREAD, content_words
from audiencefit.settings import Settings

# A creator needs at least this many embedded, authentic-looking followers for a follower-based audience;
# below it the sample says too little and the audience is inferred from content instead.
MIN_AUDIENCE_SAMPLE = 3
CONTENT_HALF_LIFE = 6.0  # recency half-life (in posts) of the caption weights in the content vector
PROFILE_COLUMNS = ("creator_id", "handle", "platform", "followers", "following", "post_count", "country", "language")
SOURCE_COLUMNS = ("content_source", "audience_source", "audience_sample_size")
SAMPLE_COLUMNS = ("suspicious_share", "follower_sample_size")

# The per-creator tables, with their explicit schemas: a partition without rows still writes these dtypes.
TERMS_SCHEMA = {
    "creator_id": pl.String,
    "kind": pl.String,
    "term": pl.String,
    "count": pl.Int64,
    "last_used_at": UTC_DATETIME,
}
GEO_SCHEMA = {"creator_id": pl.String, "dimension": pl.String, "value": pl.String, "share": pl.Float32}
FOLLOWER_KEYS_SCHEMA = {"creator_id": pl.String, "follower_key": pl.String}
RECENT_CAPTIONS_SCHEMA = {"creator_id": pl.String, "rank": pl.Int32, "caption": pl.String}


@dataclass(frozen=True)
class PartitionFeatures:
    """The features of one partition's creators (rows of every matrix follow ``creators``, sorted by id).

    ``creators`` holds every creator-level column except the global audience quality (``er_residual``,
    ``engagement_anomaly``, ``audience_quality``, ``quality_source``), which :func:`finish_creators` adds over all
    partitions. ``*_cluster_counts`` count the partition's basis rows (embedded follower profiles; embedded recent
    captions) nearest to each centroid: summed over partitions they are the clusters' sizes.
    """

    creators: pl.DataFrame
    terms: pl.DataFrame
    audience_geo: pl.DataFrame
    bio: np.ndarray
    content: np.ndarray
    audience: np.ndarray
    audience_dist: np.ndarray
    follower_cluster_counts: np.ndarray
    caption_cluster_counts: np.ndarray
    recent_captions: pl.DataFrame
    # None when the input has no followers table at all; empty when this partition's creators have no followers.
    follower_keys: pl.DataFrame | None = None
    embed_stats: dict[str, int] = field(default_factory=dict)
    # Per creator (rows of ``creators``): its basis rows nearest to each centroid, (n, k) int32. Their column sums
    # are ``*_cluster_counts``; an incremental update keeps them per creator to re-size the clusters exactly.
    follower_counts_by_creator: np.ndarray | None = None
    caption_counts_by_creator: np.ndarray | None = None

    @property
    def n_creators(self) -> int:
        return self.creators.height


def embed_column(
    texts: Sequence[str | None],
    embedder: Embedder,
    cache: EmbeddingCache | None,
    settings: Settings,
    desc: str,
    progress: bool = True,
) -> tuple[np.ndarray, np.ndarray, dict[str, int]]:
    """Vectors, validity mask and counts (``{desc}_texts``, ``_embedded``, ``_cached``) of ``texts``."""
    result = embed_texts(texts, embedder, cache, batch_size=settings.embed_batch_size, progress=progress, desc=desc)
    stats = {f"{desc}_texts": len(texts), f"{desc}_embedded": result.n_embedded, f"{desc}_cached": result.n_cached}
    return result.vectors, result.valid, stats


def _audience_geo(followers: pl.DataFrame) -> pl.DataFrame:
    """Share of the (authentic-looking) follower sample by country, age band and gender."""
    parts = []
    for dim in ("country", "age_band", "gender"):
        if dim not in followers.columns:
            continue
        part = (
            followers.filter(pl.col(dim).is_not_null())
            .group_by("creator_id", dim)
            .agg(n=pl.len())
            .with_columns(share=(pl.col("n") / pl.col("n").sum().over("creator_id")).cast(pl.Float32))
            .select("creator_id", pl.lit(dim).alias("dimension"), pl.col(dim).cast(pl.String).alias("value"), "share")
        )
        parts.append(part)
    if not parts:
        return pl.DataFrame(schema=GEO_SCHEMA)
    return (
        pl.concat(parts)
        .cast(GEO_SCHEMA)  # type: ignore[arg-type]
        .sort("creator_id", "dimension", "share", "value", descending=[False, False, True, False])
    )


def _quote_captions(posts: pl.LazyFrame) -> pl.DataFrame:
    """creator_id, rank (0 = newest), caption: each creator's newest non-empty captions (as of the cut-off)."""
    return (
        posts.filter(pl.col("caption").is_not_null() & (pl.col("caption").str.strip_chars().str.len_chars() > 0))
        .sort(["creator_id", "posted_at", "post_id"], descending=[False, True, False])
        .with_columns(rank=pl.int_range(pl.len()).over("creator_id").cast(pl.Int32))
        .filter(pl.col("rank") < QUOTE_CAPTIONS)
        .select("creator_id", "rank", pl.col("caption").str.slice(0, QUOTE_CAPTION_CHARS))
        .collect()
        .cast(RECENT_CAPTIONS_SCHEMA)  # type: ignore[arg-type]
    )


def _follower_keys(followers: pl.DataFrame) -> pl.DataFrame:
    """creator_id, follower_key (the pseudonymised follower id) for every sampled follower as of the cut-off."""
    return (
        followers.select("creator_id", pl.col("follower_id").alias("follower_key"))
        .unique()
        .sort("creator_id", "follower_key")
        .cast(FOLLOWER_KEYS_SCHEMA)  # type: ignore[arg-type]
    )


def compute_partition(
    part: Dataset,
    *,
    as_of: datetime | None,
    embedder: Embedder,
    cache: EmbeddingCache | None,
    settings: Settings,
    centroids: np.ndarray,
    progress: bool = False,
) -> PartitionFeatures:
    """Every per-creator feature of one partition as of ``as_of`` (the caller resolves None to the export instant),
    with audience distributions over the fitted ``centroids`` (k, dim).

    Depends only on this partition's rows, the settings, the embedder and ``centroids``: the same creator gets the
    same row whichever partition it is in.
    """
    clusters = aud.AudienceClusters(centroids=np.ascontiguousarray(centroids, dtype=np.float32))
    k = clusters.k
    creators = part.creators.sort("creator_id")
    n = creators.height
    row = pl.DataFrame({"creator_id": creators["creator_id"], "row": np.arange(n, dtype=np.int64)})
    posts = filter_as_of(part.posts.lazy(), as_of)

    stats = creator_stats(creators.lazy(), posts, as_of=as_of, recent_n=settings.recent_posts).collect()
    terms = (
        creator_terms(newest_posts(posts, settings.max_posts_per_creator), as_of=as_of)
        .collect()
        .cast(TERMS_SCHEMA)  # type: ignore[arg-type]
        .sort("creator_id", "kind", "term")
    )
    followers = sampled_followers(part, as_of, settings.max_followers_per_creator)

    # Bio and content vectors.
    bio_vecs, bio_ok, embed_stats = embed_column(creators["bio"].to_list(), embedder, cache, settings, "bio", progress)
    # Sorted by (creator, rank) so the weighted sums add in the same order in every build.
    recent = recent_captions(posts, CONTENT_POSTS).join(row, on="creator_id", maintain_order="left")
    cap_vecs, cap_ok, more = embed_column(recent["caption"].to_list(), embedder, cache, settings, "caption", progress)
    embed_stats |= more
    weights = aud.recency_weights(recent["rank"].to_numpy(), CONTENT_HALF_LIFE) * cap_ok
    content, has_content = aud.group_weighted_mean(cap_vecs, recent["row"].to_numpy(), weights, n)
    content_source = np.where(has_content, "captions", np.where(bio_ok, "bio", "none"))
    content[~has_content] = bio_vecs[~has_content]

    # Audience: authentic-looking followers with a meaningful profile text.
    audience_vecs = np.zeros_like(content)
    sample_size = np.zeros(n, dtype=np.int64)
    fol_vecs = np.zeros((0, embedder.dim), dtype=np.float32)
    fol_rows = np.zeros(0, dtype=np.int64)
    geo = pl.DataFrame(schema=GEO_SCHEMA)
    if followers is not None and followers.height:
        authentic = authentic_followers(followers).join(row, on="creator_id").sort("row", "follower_id")
        geo = _audience_geo(authentic)
        # Only profiles with meaningful text are embedded (the test embed_texts applies), so every returned vector
        # is kept and needs no compacting copy (at 150k creators that copy alone was ~4 GB).
        bios = authentic["bio"].to_list()
        keep = np.fromiter((is_meaningful(prepare_text(t)) for t in bios), dtype=bool, count=len(bios))
        fol_vecs, _, more = embed_column(
            [b for b, k_ in zip(bios, keep, strict=True) if k_], embedder, cache, settings, "follower", progress
        )
        del bios
        fol_rows = authentic["row"].to_numpy()[keep]
        embed_stats |= more | {"follower_texts": len(keep)}
        audience_vecs = aud.audience_with_content_prior(fol_vecs, fol_rows, content, settings.audience_prior_strength)
        sample_size = np.bincount(fol_rows, minlength=n).astype(np.int64)
    from_followers = sample_size >= MIN_AUDIENCE_SAMPLE

    dist = np.zeros((n, k), dtype=np.float32)
    fol_assigned = clusters.assign(fol_vecs)
    if len(fol_vecs):
        follower_dist, _ = aud.cluster_distribution(fol_assigned, fol_rows, n, k)
        dist[from_followers] = follower_dist[from_followers]
    inferred = ~from_followers
    audience_vecs[inferred] = content[inferred]
    has_any = np.linalg.norm(audience_vecs, axis=1) > 0
    if np.any(inferred & has_any):
        dist[inferred & has_any] = clusters.soft_assign(audience_vecs[inferred & has_any])
    audience_source = np.where(from_followers, "followers", np.where(has_any, "content", "none"))

    follower_counts = np.zeros((n, k), dtype=np.int32)
    np.add.at(follower_counts, (fol_rows, fol_assigned), 1)
    caption_counts = np.zeros((n, k), dtype=np.int32)
    np.add.at(caption_counts, (recent["row"].to_numpy()[cap_ok], clusters.assign(cap_vecs[cap_ok])), 1)

    table = creators.select(*PROFILE_COLUMNS, "rate_per_post", has_bio=pl.Series(bio_ok, dtype=pl.Boolean)).join(
        stats, on="creator_id", how="left", maintain_order="left", suffix="_s"
    )
    table = table.select([c for c in table.columns if not c.endswith("_s")])
    if followers is not None:
        summary = follower_sample_summary(followers.lazy()).collect()
        table = table.join(summary, on="creator_id", how="left", maintain_order="left").with_columns(
            pl.col("follower_sample_size").fill_null(0)
        )
    else:
        table = table.with_columns(
            suspicious_share=pl.lit(None, dtype=pl.Float64), follower_sample_size=pl.lit(0, dtype=pl.Int64)
        )
    table = table.with_columns(
        content_source=pl.Series(content_source, dtype=pl.String),
        audience_source=pl.Series(audience_source, dtype=pl.String),
        audience_sample_size=pl.Series(sample_size, dtype=pl.Int64),
    )
    return PartitionFeatures(
        creators=table,
        terms=terms,
        audience_geo=geo,
        bio=np.ascontiguousarray(bio_vecs, dtype=np.float32),
        content=np.ascontiguousarray(content, dtype=np.float32),
        audience=np.ascontiguousarray(audience_vecs, dtype=np.float32),
        audience_dist=dist,
        follower_cluster_counts=follower_counts.sum(axis=0, dtype=np.int64),
        caption_cluster_counts=caption_counts.sum(axis=0, dtype=np.int64),
        follower_counts_by_creator=follower_counts,
        caption_counts_by_creator=caption_counts,
        recent_captions=_quote_captions(posts),
        follower_keys=_follower_keys(followers) if followers is not None else None,
        embed_stats=embed_stats,
    )


def finish_creators(partitions: pl.DataFrame) -> pl.DataFrame:
    """The creators table from the concatenated ``PartitionFeatures.creators`` rows of every partition: the global
    audience quality (``audiencefit.features.quality.quality_from_creators``) inserted before the source columns."""
    quality = quality_from_creators(partitions.lazy()).collect()
    head = partitions.drop(*SAMPLE_COLUMNS, *SOURCE_COLUMNS)
    return pl.concat([head, quality.drop("creator_id"), partitions.select(*SOURCE_COLUMNS)], how="horizontal").rechunk()


def cluster_table(sample_texts: list[str], sample_assignments: np.ndarray, sizes: np.ndarray) -> pl.DataFrame:
    """cluster_id, size, top_terms: each cluster labelled with the words most over-represented in the profiles of
    the k-means sample assigned to it, and sized by every basis row assigned to it (``sizes``, summed over
    partitions)."""
    k = len(sizes)
    labelled = _cluster_terms([prepare_text(t) for t in sample_texts], sample_assignments, k)
    return labelled.with_columns(size=pl.Series(np.asarray(sizes, dtype=np.int64)))


def _cluster_terms(texts: list[str], assignments: np.ndarray, k: int, top: int = 8) -> pl.DataFrame:
    """Label each interest cluster with the words most over-represented in its members' profiles: stop words of
    each profile's language and words spread evenly over the clusters left out
    (``audiencefit.features.topic_terms``)."""
    frame = pl.DataFrame(
        {"cluster_id": assignments.astype(np.int32), "text": texts, "word": [content_words(t) for t in texts]},
        schema={"cluster_id": pl.Int32, "text": pl.String, "word": pl.List(pl.String)},
    )
    words = (
        frame.explode("word")
        .drop_nulls("word")
        .unique(["cluster_id", "word", "text"])  # a word counts once per profile
    )
    sizes = frame.group_by("cluster_id").agg(size=pl.len())
    total = max(frame.height, 1)
    counts = words.group_by("cluster_id", "word").agg(n=pl.len())
    overall = words.group_by("word").agg(n_all=pl.len())
    occupied = sizes.filter(pl.col("size") > 0).height
    rate = pl.col("n") / pl.col("size")
    share = rate / rate.sum().over("word")
    spread = (
        counts.join(sizes, on="cluster_id")
        .group_by("word")
        .agg(spread=-(share * share.log()).sum() / math.log(max(occupied, 2)))
    )
    generic = spread.filter(pl.col("spread") > MAX_SPREAD) if occupied >= MIN_CLUSTERS_FOR_SPREAD else spread.clear()
    scored = (
        counts.join(generic.select("word"), on="word", how="anti")
        .join(overall, on="word")
        .join(sizes, on="cluster_id")
        .filter(pl.col("n") >= 2)
        .with_columns(lift=(pl.col("n") / pl.col("size")) / (pl.col("n_all") / total) * pl.col("n").log1p())
        .sort(["cluster_id", "lift", "word"], descending=[False, True, False])
        .group_by("cluster_id", maintain_order=True)
        .agg(top_terms=pl.col("word").head(top))
    )
    ids = pl.DataFrame({"cluster_id": np.arange(k, dtype=np.int32)})
    return (
        ids.join(sizes, on="cluster_id", how="left")
        .join(scored, on="cluster_id", how="left")
        .with_columns(pl.col("size").fill_null(0).cast(pl.Int64), pl.col("top_terms").fill_null([]))
        .select("cluster_id", "size", "top_terms")
        .sort("cluster_id")
    )
