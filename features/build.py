"""``features build``: validated raw tables → a versioned feature set on disk.

``compute_features`` is the pipeline (statistics, quality, embeddings, audience representation) and touches disk
only through the embedding cache; ``build_feature_set`` adds the edges: reading and validating the inputs, and
writing the result atomically (a temporary directory renamed into place, so a crash never leaves a half-written
feature set).
"""

from __future__ import annotations

import hashlib
import json
import logging
import shutil
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from audiencefit.settings import Settings, get_settings
from features import audience as aud
from features.dataset import Dataset, load_dataset
from features.embed import Embedder, backend_of, embed_texts, get_embedder
from features.embed_cache import EmbeddingCache
from features.errors import InputError
from features.export import format_instant
from features.featureset import (
    FEATURE_VERSION,
    FOLLOWER_KEYS,
    MANIFEST,
    QUOTE_CAPTION_CHARS,
    QUOTE_CAPTIONS,
    RECENT_CAPTIONS,
    TABLE_FILES,
    content_id,
    schema_hash,
)
from features.io import replace_dir, sha256_file, staging_dir
from features.quality import audience_quality, follower_flags
from features.stats import (
    creator_stats,
    creator_terms,
    filter_as_of,
    filter_followers_as_of,
    newest_posts,
    sample_followers,
)
from features.text import is_meaningful, prepare_text

log = logging.getLogger(__name__)

# A creator needs at least this many embedded, authentic-looking followers for a follower-based audience;
# below it the sample says too little and the audience is inferred from content instead.
MIN_AUDIENCE_SAMPLE = 3
# Posts whose captions make up the content vector, and the recency half-life (in posts) of their weights.
CONTENT_POSTS = 12
CONTENT_HALF_LIFE = 6.0
PROFILE_COLUMNS = ("creator_id", "handle", "platform", "followers", "following", "post_count", "country", "language")


@dataclass(frozen=True)
class CreatorFeatures:
    """The computed feature set, in memory; rows of every matrix follow ``creators``."""

    creators: pl.DataFrame
    terms: pl.DataFrame
    audience_geo: pl.DataFrame
    clusters: pl.DataFrame
    bio: np.ndarray
    content: np.ndarray
    audience: np.ndarray
    audience_dist: np.ndarray
    centroids: np.ndarray
    embed_stats: dict[str, int]
    # Pseudonymised follower keys of each creator's sample (None without a followers table): the same person
    # has the same key in every sample, which is direct evidence of audience overlap.
    follower_keys: pl.DataFrame | None = None
    # The newest captions per creator, for the service to quote in explanations without the raw data.
    recent_captions: pl.DataFrame | None = None


def _embed_column(
    texts: list[str | None],
    embedder: Embedder,
    cache: EmbeddingCache | None,
    settings: Settings,
    desc: str,
    progress: bool = True,
) -> tuple[np.ndarray, np.ndarray, dict[str, int]]:
    result = embed_texts(texts, embedder, cache, batch_size=settings.embed_batch_size, progress=progress, desc=desc)
    stats = {f"{desc}_texts": len(texts), f"{desc}_embedded": result.n_embedded, f"{desc}_cached": result.n_cached}
    return result.vectors, result.valid, stats


def _recent_captions(posts: pl.LazyFrame, n_posts: int) -> pl.DataFrame:
    """The newest ``n_posts`` posts with a caption per creator, with their rank (0 = newest)."""
    return (
        posts.filter(pl.col("caption").is_not_null())
        .sort(["creator_id", "posted_at", "post_id"], descending=[False, True, True])
        .with_columns(rank=pl.int_range(pl.len()).over("creator_id"))
        .filter(pl.col("rank") < n_posts)
        .select("creator_id", "rank", "caption")
        .collect()
    )


def _audience_geo(followers: pl.DataFrame) -> pl.DataFrame:
    """Share of the (authentic-looking) follower sample by country, age band and gender."""
    parts = []
    for dim in ("country", "age_band", "gender"):
        part = (
            followers.filter(pl.col(dim).is_not_null())
            .group_by("creator_id", dim)
            .agg(n=pl.len())
            .with_columns(share=(pl.col("n") / pl.col("n").sum().over("creator_id")).cast(pl.Float32))
            .select("creator_id", pl.lit(dim).alias("dimension"), pl.col(dim).alias("value"), "share")
        )
        parts.append(part)
    schema = {"creator_id": pl.String, "dimension": pl.String, "value": pl.String, "share": pl.Float32}
    if not parts:
        return pl.DataFrame(schema=schema)
    return pl.concat(parts).sort("creator_id", "dimension", "share", "value", descending=[False, False, True, False])


def _cluster_terms(texts: list[str], assignments: np.ndarray, k: int, top: int = 8) -> pl.DataFrame:
    """Label each interest cluster with the words most over-represented in its members' profiles."""
    frame = pl.DataFrame({"cluster_id": assignments.astype(np.int32), "text": texts})
    words = (
        frame.with_columns(word=pl.col("text").str.to_lowercase().str.extract_all(r"[^\W\d_]{3,}"))
        .explode("word")
        .drop_nulls("word")
        .filter(~pl.col("word").is_in(list(_STOPWORDS)))
        .unique(["cluster_id", "word", "text"])  # a word counts once per profile
    )
    sizes = frame.group_by("cluster_id").agg(size=pl.len())
    total = max(frame.height, 1)
    counts = words.group_by("cluster_id", "word").agg(n=pl.len())
    overall = words.group_by("word").agg(n_all=pl.len())
    scored = (
        counts.join(overall, on="word")
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
        .sort("cluster_id")
    )


_STOPWORDS = frozenset(
    "the and for with you your are from that this have has not but all our out who what when love just "
    "like get got can will more new day life here there they them his her she him its into about over "
    "also one two les des une pour que con por para los las del und der die das mit ich ein eine ".split()
)


def compute_features(
    dataset: Dataset,
    *,
    as_of: datetime | None,
    embedder: Embedder,
    cache: EmbeddingCache | None,
    settings: Settings,
    progress: bool = True,
) -> CreatorFeatures:
    """Every creator feature as of ``as_of``, from validated frames.

    ``as_of`` None means as of the dataset's export instant (``Dataset.export``, see ``features.export``): posts and
    followers timestamped after it (the validation's tolerance allows a day) are not used, and recency
    (``days_since_last_post``) is measured from it, never from the newest timestamp in the data.
    """
    if as_of is None and dataset.export is not None:
        as_of = dataset.export.instant
    creators = dataset.creators.sort("creator_id")
    n = creators.height
    row = pl.DataFrame({"creator_id": creators["creator_id"], "row": np.arange(n, dtype=np.int64)})
    posts = filter_as_of(dataset.posts.lazy(), as_of)

    stats = creator_stats(creators.lazy(), posts, as_of=as_of, recent_n=settings.recent_posts)
    terms = creator_terms(newest_posts(posts, settings.max_posts_per_creator), as_of=as_of).collect()
    followers: pl.DataFrame | None = None
    if dataset.followers is not None and dataset.followers.height:
        # Bounded per creator before anything is flagged or embedded (see sample_followers).
        window = filter_followers_as_of(dataset.followers.lazy(), as_of)
        followers = sample_followers(window, settings.max_followers_per_creator).collect()
    quality = audience_quality(creators.lazy(), stats, followers.lazy() if followers is not None else None)

    # Bio and content vectors.
    bio_vecs, bio_ok, embed_stats = _embed_column(creators["bio"].to_list(), embedder, cache, settings, "bio", progress)
    recent = _recent_captions(posts, CONTENT_POSTS).join(row, on="creator_id")
    cap_vecs, cap_ok, more = _embed_column(recent["caption"].to_list(), embedder, cache, settings, "caption", progress)
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
    fol_texts: list[str] = []
    geo = _audience_geo(
        pl.DataFrame(schema={"creator_id": pl.String, "country": pl.String, "age_band": pl.String, "gender": pl.String})
    )
    if followers is not None:
        flagged = follower_flags(followers.lazy()).collect()
        authentic = flagged.filter(~pl.col("suspicious")).join(row, on="creator_id").sort("row", "follower_id")
        geo = _audience_geo(authentic)
        # Only profiles with meaningful text are embedded (the test embed_texts applies), so every returned vector
        # is kept and needs no compacting copy (at 150k creators that copy alone was ~4 GB).
        bios = authentic["bio"].to_list()
        fol_texts = [prepare_text(t) for t in bios]
        keep = np.fromiter((is_meaningful(t) for t in fol_texts), dtype=bool, count=len(fol_texts))
        fol_texts = [t for t, k in zip(fol_texts, keep, strict=True) if k]
        fol_vecs, _, more = _embed_column(
            [b for b, k in zip(bios, keep, strict=True) if k], embedder, cache, settings, "follower", progress
        )
        del bios
        fol_rows = authentic["row"].to_numpy()[keep]
        embed_stats |= more | {"follower_texts": len(keep)}
        audience_vecs = aud.audience_with_content_prior(fol_vecs, fol_rows, content, settings.audience_prior_strength)
        sample_size = np.bincount(fol_rows, minlength=n).astype(np.int64)
    from_followers = sample_size >= MIN_AUDIENCE_SAMPLE

    # Interest clusters: fitted on follower profiles; a posts-only export falls back to caption vectors.
    basis, basis_texts = (
        (fol_vecs, fol_texts)
        if len(fol_vecs) >= settings.audience_clusters
        else (
            cap_vecs[cap_ok],
            [prepare_text(t) for t, keep in zip(recent["caption"].to_list(), cap_ok, strict=True) if keep],
        )
    )
    if len(basis) == 0:
        raise InputError(
            "no meaningful text at all (bios, captions, follower profiles): cannot build audience features"
        )
    clusters = aud.fit_audience_clusters(basis, settings.audience_clusters, settings.seed)
    k = clusters.k
    dist = np.zeros((n, k), dtype=np.float32)
    if len(fol_vecs):
        follower_dist, _ = aud.cluster_distribution(clusters.assign(fol_vecs), fol_rows, n, k)
        dist[from_followers] = follower_dist[from_followers]
    inferred = ~from_followers
    audience_vecs[inferred] = content[inferred]
    has_any = np.linalg.norm(audience_vecs, axis=1) > 0
    dist[inferred & has_any] = clusters.soft_assign(audience_vecs[inferred & has_any])
    audience_source = np.where(from_followers, "followers", np.where(has_any, "content", "none"))
    cluster_table = _cluster_terms(basis_texts, clusters.assign(basis), k)

    table = (
        creators.select(*PROFILE_COLUMNS, "rate_per_post", has_bio=pl.Series(bio_ok))
        .join(stats.collect(), on="creator_id", how="left")
        .join(quality.collect(), on="creator_id", how="left", suffix="_q")
        .with_columns(
            content_source=pl.Series(content_source),
            audience_source=pl.Series(audience_source),
            audience_sample_size=pl.Series(sample_size),
        )
    )
    table = table.select([c for c in table.columns if not c.endswith("_q")])
    return CreatorFeatures(
        creators=table,
        terms=terms.sort("creator_id", "kind", "term"),
        audience_geo=geo,
        clusters=cluster_table,
        bio=bio_vecs,
        content=content,
        audience=audience_vecs,
        audience_dist=dist,
        centroids=clusters.centroids,
        embed_stats=embed_stats,
        follower_keys=_follower_keys(followers),
        recent_captions=_quote_captions(posts),
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
    )


def _follower_keys(followers: pl.DataFrame | None) -> pl.DataFrame | None:
    """creator_id, follower_key (the pseudonymised follower id) for every sampled follower as of the cut-off."""
    if followers is None:
        return None
    return (
        followers.select("creator_id", pl.col("follower_id").alias("follower_key"))
        .unique()
        .sort("creator_id", "follower_key")
    )


def input_fingerprint(files: dict[str, Path]) -> str:
    """sha256 over the names and bytes of the input files: a changed input gives a new feature set id."""
    digest = hashlib.sha256()
    for name in sorted(files):
        digest.update(name.encode())
        digest.update(sha256_file(files[name]).encode())
    return digest.hexdigest()


def _write(features: CreatorFeatures, target: Path) -> dict[str, str]:
    (target / "vectors").mkdir(parents=True)
    for name in TABLE_FILES:
        frame: pl.DataFrame = getattr(features, name)
        frame.write_parquet(target / f"{name}.parquet", statistics=False)
    if features.follower_keys is not None:
        features.follower_keys.write_parquet(target / f"{FOLLOWER_KEYS}.parquet", statistics=False)
    if features.recent_captions is not None:
        features.recent_captions.write_parquet(target / f"{RECENT_CAPTIONS}.parquet", statistics=False)
    for name in ("bio", "content", "audience", "audience_dist", "centroids"):
        np.save(target / "vectors" / f"{name}.npy", np.ascontiguousarray(getattr(features, name), dtype=np.float32))
    return {str(p.relative_to(target)): sha256_file(p) for p in sorted(target.rglob("*")) if p.is_file()}


def build_feature_set(
    data_dir: Path,
    out_dir: Path,
    *,
    as_of: datetime | None = None,
    export_time: datetime | None = None,
    settings: Settings | None = None,
    embedder: Embedder | None = None,
) -> dict[str, Any]:
    """Validate ``data_dir``, compute features as of ``as_of``, write them atomically to ``out_dir``.

    ``export_time`` states when the data was exported (default: the directory's ``export.json``, else the files'
    modification time; ``features.export``): timestamps after it are refused, and without ``as_of`` the features
    are taken as of it. Returns the manifest. Invalid input raises ``InputError`` before anything is written.
    """
    settings = settings or get_settings()
    started = time.perf_counter()
    if as_of is not None and as_of.tzinfo is None:
        as_of = as_of.replace(tzinfo=UTC)
    if out_dir.exists() and not out_dir.is_dir():
        raise InputError(f"--out {out_dir}: exists and is not a directory")
    if out_dir.is_dir() and any(out_dir.iterdir()) and not (out_dir / MANIFEST).is_file():
        raise InputError(f"--out {out_dir}: a non-empty directory that is not a feature set; refusing to replace it")
    dataset = load_dataset(
        data_dir,
        secret=settings.follower_id_secret.get_secret_value(),
        tables=("creators", "posts", "followers"),
        export_time=export_time,
    )
    export = dataset.export
    if as_of is not None and export is not None:
        # A cut-off after the export would measure recency from an instant no data can reach (the 9999 bug again).
        window = export.window
        if not window.earliest <= as_of <= window.latest:
            raise InputError(
                f"--as-of {format_instant(as_of)}: outside {window.earliest.date()} … the export instant "
                f"{format_instant(export.instant)} (from {export.source}) plus one day"
            )
    stats_as_of = as_of or (export.instant if export is not None else None)
    backend = backend_of(embedder) or settings.embedder if embedder is not None else settings.embedder
    embedder = embedder or get_embedder(backend)
    cache = EmbeddingCache(settings.embedding_cache_dir, embedder.id, embedder.dim)
    features = compute_features(dataset, as_of=stats_as_of, embedder=embedder, cache=cache, settings=settings)

    fingerprint = input_fingerprint(dataset.source_files)
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = staging_dir(out_dir)
    try:
        checksums = _write(features, tmp)
        used = {
            "recent_posts": settings.recent_posts,
            "content_posts": CONTENT_POSTS,
            "audience_clusters": settings.audience_clusters,
            "audience_prior_strength": settings.audience_prior_strength,
            "max_followers_per_creator": settings.max_followers_per_creator,
            "max_posts_per_creator": settings.max_posts_per_creator,
            "seed": settings.seed,
        }
        # Everything that changes the features' values is part of the id.
        identity = json.dumps(
            [FEATURE_VERSION, fingerprint, embedder.id, stats_as_of.isoformat() if stats_as_of else None, used]
        )
        recipe_id = hashlib.sha256(identity.encode()).hexdigest()[:16]
        manifest: dict[str, Any] = {
            "feature_version": FEATURE_VERSION,
            # The id covers the recipe and every file's sha256: loading recomputes it (features.featureset).
            "feature_set_id": content_id(recipe_id, checksums),
            "recipe_id": recipe_id,
            "schema_hash": schema_hash(features.creators),
            "input_fingerprint": fingerprint,
            "embedder_id": embedder.id,
            "embedder_backend": backend,
            "embedding_dim": embedder.dim,
            "as_of": as_of.isoformat() if as_of else None,
            "export_instant": export.instant.isoformat() if export else None,
            "export_instant_source": export.source if export else None,
            "stats_as_of": stats_as_of.isoformat() if stats_as_of else None,
            "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
            "row_counts": {
                "creators": features.creators.height,
                "posts": dataset.posts.height,
                "followers": dataset.followers.height if dataset.followers is not None else 0,
                "terms": features.terms.height,
                "clusters": features.clusters.height,
            },
            "settings": used,
            "embedding": features.embed_stats,
            "files": checksums,
        }
        (tmp / MANIFEST).write_text(json.dumps(manifest, indent=2, sort_keys=True), encoding="utf-8")
        replace_dir(tmp, out_dir)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    log.info(
        "feature set written",
        extra={
            "out": str(out_dir),
            "creators": features.creators.height,
            "seconds": round(time.perf_counter() - started, 1),
        },
    )
    return manifest
