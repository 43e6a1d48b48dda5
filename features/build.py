"""``features build``: validated raw tables → a versioned feature set on disk, creator partition by partition.

The computation is ``audiencefit.features.compute`` (per partition) and ``audiencefit.features.cluster_sample`` (the
k-means sample); this module runs them over a :class:`~audiencefit.features.partitions.PartitionSource` and adds the
edges: reading and validating the inputs, and writing the result atomically (a temporary directory renamed into place,
so a crash never leaves a half-written feature set). Memory grows with the partition size
(``feature_partition_creators``), not with the creator count, and the files are byte-identical whatever the partition
count:

1. sample pre-pass: each partition's bottom-``m`` basis candidates, merged, embedded, and the audience clusters
   fitted on them (``audiencefit.features.cluster_sample``);
2. main pass: :func:`~audiencefit.features.compute.compute_partition` per partition, its rows appended to the files
   (``audiencefit.features.featureset_writer``);
3. global steps on creator-level rows only: the audience quality's medians, cluster sizes, the manifest.

:func:`compute_features` runs the same steps on one in-memory partition (training snapshots use it), so every
caller gets the same numbers.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import secrets
import shutil
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from audiencefit.features import audience as aud
from audiencefit.features.cluster_sample import (
    CONTENT_POSTS,
    BasisCandidates,
    ClusterSample,
    choose_sample,
    merge_candidates,
    partition_candidates,
    sample_size,
)
from audiencefit.features.compute import (
    PartitionFeatures,
    cluster_table,
    compute_partition,
    embed_column,
    finish_creators,
)
from audiencefit.features.dataset import Dataset
from audiencefit.features.digests import DIGEST_SCHEME, update_state
from audiencefit.features.embed import Embedder, backend_of, get_embedder
from audiencefit.features.embed_backends import CARRIED_DIR, SPECS, carry_artifacts
from audiencefit.features.embed_cache import EmbeddingCache
from audiencefit.features.errors import InputError
from audiencefit.features.export import format_instant
from audiencefit.features.featureset import (
    FEATURE_VERSION,
    MANIFEST,
    FeatureSet,
    content_id,
    load_feature_set,
    schema_hash,
)
from audiencefit.features.featureset_writer import FeatureSetWriter
from audiencefit.features.io import replace_dir, sha256_file, staging_dir
from audiencefit.features.partitions import PartitionSource
from audiencefit.features.stream_input import SpilledPartitions, stream_partitions
from audiencefit.features.update import Carry, plan_update
from audiencefit.settings import Settings, get_settings

log = logging.getLogger(__name__)

ENGINES = ("local", "ray")

__all__ = [
    "CONTENT_POSTS",
    "CreatorFeatures",
    "FittedClusters",
    "PassTotals",
    "PinnedClusters",
    "UpdateResult",
    "build_feature_set",
    "build_from_partitions",
    "compute_features",
    "feature_manifest",
    "feature_pass",
    "fit_clusters",
    "sample_pass",
    "update_feature_set",
]


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


@dataclass(frozen=True)
class FittedClusters:
    """The audience clusters and what they were fitted on."""

    clusters: aud.AudienceClusters
    sample: ClusterSample
    sample_assignments: np.ndarray
    embed_stats: dict[str, int]

    @property
    def basis(self) -> str:
        return self.sample.basis

    def manifest_entry(self) -> dict[str, Any]:
        return {"basis": self.sample.basis, "rows": len(self.sample.texts)}

    def table(self, follower_counts: np.ndarray, caption_counts: np.ndarray) -> pl.DataFrame:
        """The clusters table, sized by every row of the chosen basis (counts summed over partitions)."""
        sizes = follower_counts if self.sample.basis == "followers" else caption_counts
        return cluster_table(self.sample.texts, self.sample_assignments, sizes)


@dataclass(frozen=True)
class PinnedClusters:
    """The audience clusters of an earlier feature set, kept as they are (``features update``, or a full build with
    ``clusters_from``): the same centroids, so cluster ids and distributions stay comparable from day to day, the
    same labels, and sizes counted anew over the basis rows of this build."""

    clusters: aud.AudienceClusters
    basis: str
    labels: pl.DataFrame
    from_feature_set: str

    @property
    def embed_stats(self) -> dict[str, int]:
        return {}

    @classmethod
    def of(cls, fs: FeatureSet) -> PinnedClusters:
        basis = (fs.manifest.get("audience_cluster_sample") or {}).get("basis")
        if basis not in ("followers", "captions"):
            raise InputError(
                f"{fs.path}: its manifest does not say what its audience clusters were fitted on "
                "(built before feature version 2?); do a full build"
            )
        centroids = np.ascontiguousarray(fs.centroids, dtype=np.float32)
        return cls(aud.AudienceClusters(centroids=centroids), basis, fs.clusters, fs.feature_set_id)

    def table(self, follower_counts: np.ndarray, caption_counts: np.ndarray) -> pl.DataFrame:
        sizes = follower_counts if self.basis == "followers" else caption_counts
        return self.labels.with_columns(size=pl.Series(np.asarray(sizes, dtype=np.int64)))

    def manifest_entry(self) -> dict[str, Any]:
        return {"basis": self.basis, "pinned_from": self.from_feature_set}

    def recipe_entry(self) -> str:
        """What the features depend on: the centroids and labels (their bytes), not where they came from."""
        digest = hashlib.sha256(self.clusters.centroids.tobytes())
        digest.update(self.labels.select("cluster_id", "top_terms").write_json().encode())
        return digest.hexdigest()[:16]


def fit_clusters(
    candidates: BasisCandidates,
    *,
    embedder: Embedder,
    cache: EmbeddingCache | None,
    settings: Settings,
    progress: bool = False,
) -> FittedClusters:
    """Choose the k-means sample from the merged candidates of every partition, embed it, fit the clusters."""
    sample = choose_sample(candidates, settings.audience_clusters)
    vectors, valid, stats = embed_column(sample.texts, embedder, cache, settings, "cluster_sample", progress)
    if not valid.all():  # the candidates were chosen by the same test embed_texts applies
        raise RuntimeError("a k-means sample text was not embedded")
    clusters = aud.fit_audience_clusters(vectors, settings.audience_clusters, settings.seed)
    return FittedClusters(clusters, sample, clusters.assign(vectors), stats)


def _add_stats(total: dict[str, int], more: dict[str, int]) -> None:
    for key, value in more.items():
        total[key] = total.get(key, 0) + value


def compute_features(
    dataset: Dataset,
    *,
    as_of: datetime | None,
    embedder: Embedder,
    cache: EmbeddingCache | None,
    settings: Settings,
    progress: bool = True,
) -> CreatorFeatures:
    """Every creator feature as of ``as_of``, from validated frames (the whole dataset as one partition).

    ``as_of`` None means as of the dataset's export instant (``Dataset.export``, see ``audiencefit.features.export``):
    posts and followers timestamped after it (the validation's tolerance allows a day) are not used, and recency
    (``days_since_last_post``) is measured from it, never from the newest timestamp in the data. The numbers are
    those of a partitioned :func:`build_from_partitions` of the same data.
    """
    if as_of is None and dataset.export is not None:
        as_of = dataset.export.instant
    candidates = partition_candidates(dataset, as_of=as_of, settings=settings, need_captions=True)
    fitted = fit_clusters(candidates, embedder=embedder, cache=cache, settings=settings, progress=progress)
    part = compute_partition(
        dataset,
        as_of=as_of,
        embedder=embedder,
        cache=cache,
        settings=settings,
        centroids=fitted.clusters.centroids,
        progress=progress,
    )
    has_followers = dataset.followers is not None and dataset.followers.height > 0
    return CreatorFeatures(
        creators=finish_creators(part.creators),
        terms=part.terms,
        audience_geo=part.audience_geo,
        clusters=fitted.table(part.follower_cluster_counts, part.caption_cluster_counts),
        bio=part.bio,
        content=part.content,
        audience=part.audience,
        audience_dist=part.audience_dist,
        centroids=fitted.clusters.centroids,
        embed_stats=part.embed_stats | fitted.embed_stats,
        follower_keys=part.follower_keys if has_followers else None,
        recent_captions=part.recent_captions,
    )


def input_fingerprint(files: dict[str, Path]) -> str:
    """sha256 over the names and bytes of the input files: a changed input gives a new feature set id."""
    digest = hashlib.sha256()
    for name in sorted(files):
        digest.update(name.encode())
        digest.update(sha256_file(files[name]).encode())
    return digest.hexdigest()


def _check_out_dir(out_dir: Path) -> None:
    if out_dir.exists() and not out_dir.is_dir():
        raise InputError(f"--out {out_dir}: exists and is not a directory")
    if out_dir.is_dir() and any(out_dir.iterdir()) and not (out_dir / MANIFEST).is_file():
        raise InputError(f"--out {out_dir}: a non-empty directory that is not a feature set; refusing to replace it")


@contextmanager
def _partition_bar(enabled: bool) -> Iterator[Any]:
    """One rich progress bar over partitions (the sample pre-pass, then the features), or None."""
    if not enabled:
        yield None
        return
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    columns = (TextColumn("[progress.description]{task.description}"), BarColumn(), MofNCompleteColumn())
    with Progress(*columns, TimeElapsedColumn(), transient=False) as bar:
        yield bar


def _write_manifest(target: Path, manifest: dict[str, Any]) -> None:
    (target / MANIFEST).write_text(json.dumps(manifest, indent=2, sort_keys=True), encoding="utf-8")


def sample_pass(
    source: PartitionSource,
    *,
    as_of: datetime | None,
    settings: Settings,
    embedder: Embedder,
    cache: EmbeddingCache | None,
    bar: Any = None,
    progress: bool = False,
) -> FittedClusters:
    """Pass 1: every partition's k-means candidates (``partition_candidates``, one partition at a time), merged,
    and the clusters fitted on the merged sample. A distributed engine maps ``partition_candidates`` over the
    partitions and folds ``merge_candidates`` in partition order to the same result."""
    k = settings.audience_clusters
    m = sample_size(k)
    task = bar.add_task("k-means sample", total=source.n_partitions) if bar is not None else None
    merged = BasisCandidates.empty()
    for i in range(source.n_partitions):
        found = partition_candidates(
            source.load(i), as_of=as_of, settings=settings, need_captions=merged.followers_eligible < k
        )
        merged = merge_candidates(merged, found, m)
        if bar is not None:
            bar.advance(task)
    fitted = fit_clusters(merged, embedder=embedder, cache=cache, settings=settings, progress=progress)
    log.info(
        "audience clusters fitted",
        extra={"basis": fitted.sample.basis, "sample": len(fitted.sample.texts), "k": fitted.clusters.k},
    )
    return fitted


@dataclass
class PassTotals:
    """What the feature pass adds up over partitions (in partition order)."""

    k: int
    creator_rows: list[pl.DataFrame] = field(default_factory=list)
    sizes: list[int] = field(default_factory=list)
    embed_stats: dict[str, int] = field(default_factory=dict)
    follower_counts: np.ndarray | None = None
    caption_counts: np.ndarray | None = None

    def add(self, features: PartitionFeatures) -> None:
        """Count one partition's rows (call in partition order)."""
        if self.follower_counts is None or self.caption_counts is None:
            self.follower_counts = np.zeros(self.k, dtype=np.int64)
            self.caption_counts = np.zeros(self.k, dtype=np.int64)
        self.creator_rows.append(features.creators)
        self.sizes.append(features.n_creators)
        self.follower_counts += features.follower_cluster_counts
        self.caption_counts += features.caption_cluster_counts
        _add_stats(self.embed_stats, features.embed_stats)

    def finish(self, fitted: FittedClusters | PinnedClusters) -> tuple[pl.DataFrame, pl.DataFrame]:
        """The creators table (global audience quality over every partition's rows) and the clusters table."""
        zeros = np.zeros(self.k, dtype=np.int64)
        creators = finish_creators(pl.concat(self.creator_rows))
        clusters = fitted.table(
            self.follower_counts if self.follower_counts is not None else zeros,
            self.caption_counts if self.caption_counts is not None else zeros,
        )
        return creators, clusters


def _texts_embedded(stats: dict[str, int]) -> int:
    return sum(v for key, v in stats.items() if key.endswith("_embedded"))


def local_partitions(
    source: PartitionSource,
    compute: Callable[[Dataset], PartitionFeatures],
    carry: Carry | None,
    basis: str,
) -> Iterator[tuple[PartitionFeatures, pl.DataFrame]]:
    """Every partition's features and update state, computed in this process, in partition order (with ``carry``:
    only the creators it recomputes; the others copied from its base feature set)."""
    for i in range(source.n_partitions):
        part = source.load(i)
        features = compute(part) if carry is None else carry.partition(part, compute)
        counts = features.follower_counts_by_creator if basis == "followers" else features.caption_counts_by_creator
        if counts is None:
            raise RuntimeError("a partition's features came without per-creator cluster counts")
        yield features, update_state(part, counts, carry.digests[i] if carry is not None else None)


def feature_pass(
    partitions: Iterator[tuple[PartitionFeatures, pl.DataFrame]],
    writer: FeatureSetWriter,
    fitted: FittedClusters | PinnedClusters,
    *,
    n_parts: int,
    bar: Any = None,
) -> PassTotals:
    """Pass 2: every partition's features (from :func:`local_partitions` or ``audiencefit.features.engine_ray``), in
    partition order, appended by ``writer`` with their update state; returns the totals the global steps need."""
    totals = PassTotals(k=fitted.clusters.k, embed_stats=dict(fitted.embed_stats))
    task = bar.add_task("features", total=n_parts) if bar is not None else None
    started = time.perf_counter()
    for i, (features, state) in enumerate(partitions):
        writer.write_partition(features)
        writer.write_state(state)
        totals.add(features)
        log.info(
            "feature partition done",
            extra={
                "partition": i,
                "partitions": n_parts,
                "creators": features.n_creators,
                "seconds": round(time.perf_counter() - started, 2),
                "texts_embedded": _texts_embedded(features.embed_stats),
            },
        )
        started = time.perf_counter()
        if bar is not None:
            bar.advance(task)
    return totals


def recipe_settings(settings: Settings) -> dict[str, Any]:
    """The settings that change the features' values (part of the id; the partitioning is not: it changes no
    byte of the files)."""
    return {
        "recent_posts": settings.recent_posts,
        "content_posts": CONTENT_POSTS,
        "audience_clusters": settings.audience_clusters,
        "audience_prior_strength": settings.audience_prior_strength,
        "max_followers_per_creator": settings.max_followers_per_creator,
        "max_posts_per_creator": settings.max_posts_per_creator,
        "seed": settings.seed,
    }


def feature_manifest(
    *,
    source: PartitionSource,
    checksums: dict[str, str],
    creators: pl.DataFrame,
    clusters: pl.DataFrame,
    totals: PassTotals,
    fitted: FittedClusters | PinnedClusters,
    terms_rows: int,
    settings: Settings,
    embedder: Embedder,
    backend: str,
    as_of: datetime | None,
    stats_as_of: datetime | None,
) -> dict[str, Any]:
    """The manifest of a feature set written from ``source`` (``files`` = ``checksums``)."""
    export = source.export
    counts = source.row_counts
    fingerprint = input_fingerprint(dict(source.source_files))
    used = recipe_settings(settings)
    if isinstance(fitted, PinnedClusters):
        used["clusters_from"] = fitted.recipe_entry()  # the features depend on the centroids kept
    identity = json.dumps(
        [FEATURE_VERSION, fingerprint, embedder.id, stats_as_of.isoformat() if stats_as_of else None, used]
    )
    recipe_id = hashlib.sha256(identity.encode()).hexdigest()[:16]
    return {
        "feature_version": FEATURE_VERSION,
        # The id covers the recipe and every file's sha256: loading recomputes it (audiencefit.features.featureset).
        "feature_set_id": content_id(recipe_id, checksums),
        "recipe_id": recipe_id,
        "schema_hash": schema_hash(creators),
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
            "creators": creators.height,
            "posts": counts["posts"],
            "followers": counts["followers"],
            "terms": terms_rows,
            "clusters": clusters.height,
        },
        "settings": used,
        "partitions": {"count": len(totals.sizes), "creators": totals.sizes},
        "audience_cluster_sample": fitted.manifest_entry(),
        "digest_scheme": DIGEST_SCHEME,
        "embedding": totals.embed_stats,
        "files": checksums,
    }


def build_from_partitions(
    source: PartitionSource,
    out_dir: Path,
    *,
    as_of: datetime | None = None,
    settings: Settings | None = None,
    embedder: Embedder | None = None,
    progress: bool = True,
    clusters_from: FeatureSet | None = None,
    reuse: FeatureSet | None = None,
    on_plan: Callable[[Carry], None] | None = None,
    engine: str = "local",
    workers: int | None = None,
) -> dict[str, Any]:
    """Compute the features of every partition of ``source`` as of ``as_of`` and write them atomically to
    ``out_dir``; returns the manifest.

    ``as_of`` None means as of the source's export instant. Partitions are read twice (:func:`sample_pass`, then
    :func:`feature_pass`), one at a time; the files do not depend on the partition count. A failure leaves
    ``out_dir`` as it was. ``clusters_from``: keep that feature set's audience clusters instead of fitting new ones
    (no sample pass). ``reuse`` (``features update``): an earlier feature set whose clusters are kept and whose rows
    are carried over for every creator whose raw rows did not change (``audiencefit.features.update``); the files are
    those of a full build with ``clusters_from`` set to it; ``on_plan`` is handed the plan (creators recomputed,
    removed). ``engine`` ``ray`` computes the partitions in Ray Data tasks (``audiencefit.features.engine_ray``;
    ``workers``, default one per core), with the same files as ``local``.
    """
    if engine not in ENGINES:
        raise InputError(f"--engine {engine!r}: unknown; choose one of {', '.join(ENGINES)}")
    workers = workers or os.cpu_count() or 1
    settings = settings or get_settings()
    started = time.perf_counter()
    if as_of is not None and as_of.tzinfo is None:
        as_of = as_of.replace(tzinfo=UTC)
    _check_out_dir(out_dir)
    export = source.export
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
    counts = source.row_counts
    n_parts = source.n_partitions
    # One partition: the embedding bars show texts/s as before; several: one bar over partitions (rich shows one
    # live display at a time).
    inner = progress and n_parts == 1
    if reuse is not None:
        clusters_from = reuse
    if engine == "ray" and (reuse is not None or not isinstance(source, SpilledPartitions)):
        raise InputError("--engine ray builds from spilled partitions, and not for an update")

    out_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = staging_dir(out_dir)
    parts_dir = tmp.with_name(tmp.name + ".parts")  # the Ray engine's partition results, read back in order
    carry: Carry | None = None
    try:
        with _partition_bar(progress and n_parts > 1) as bar:
            fitted: FittedClusters | PinnedClusters
            if clusters_from is not None:
                fitted = PinnedClusters.of(clusters_from)
                if fitted.clusters.centroids.shape[1] != embedder.dim:
                    raise InputError(
                        f"{clusters_from.path}: its centroids have {fitted.clusters.centroids.shape[1]} dimensions, "
                        f"the embedder {embedder.id} gives {embedder.dim}"
                    )
            else:
                fitted = sample_pass(
                    source,
                    as_of=stats_as_of,
                    settings=settings,
                    embedder=embedder,
                    cache=cache,
                    bar=bar,
                    progress=inner,
                )
            if reuse is not None:
                carry = plan_update(
                    reuse, source, stats_as_of=stats_as_of, settings_used=recipe_settings(settings), embedder=embedder
                )
                carry.log_plan()
                if on_plan is not None:
                    on_plan(carry)
            partitions: Iterator[tuple[PartitionFeatures, pl.DataFrame]]
            if engine == "ray":
                from audiencefit.features.engine_ray import ray_partitions

                assert isinstance(source, SpilledPartitions)
                partitions = ray_partitions(
                    source,
                    parts_dir,
                    settings=settings,
                    backend=backend,
                    centroids=fitted.clusters.centroids,
                    stats_as_of=stats_as_of,
                    basis=fitted.basis,
                    workers=workers,
                )
            else:
                compute = partial(
                    compute_partition,
                    as_of=stats_as_of,
                    embedder=embedder,
                    cache=cache,
                    settings=settings,
                    centroids=fitted.clusters.centroids,
                    progress=inner,
                )
                partitions = local_partitions(source, compute, carry, fitted.basis)
            with FeatureSetWriter(
                tmp,
                n_creators=counts["creators"],
                dim=embedder.dim,
                k=fitted.clusters.k,
                follower_keys=counts["followers"] > 0,
            ) as writer:
                totals = feature_pass(partitions, writer, fitted, n_parts=n_parts, bar=bar)
                creators, clusters = totals.finish(fitted)
                checksums = writer.finish(creators, clusters, fitted.clusters.centroids)
        manifest = feature_manifest(
            source=source,
            checksums=checksums,
            creators=creators,
            clusters=clusters,
            totals=totals,
            fitted=fitted,
            terms_rows=writer.table_rows.get("terms", 0),
            settings=settings,
            embedder=embedder,
            backend=backend,
            as_of=as_of,
            stats_as_of=stats_as_of,
        )
        if carry is not None:
            manifest["update"] = carry.summary()
        if backend in SPECS:
            # The artifacts that embed this feature set's queries travel with it (issue 21): a serving host given
            # the directory builds nothing. Not in "files": the feature set's id stays its data's.
            manifest["embedding_artifacts"] = carry_artifacts(backend, settings, tmp / CARRIED_DIR)
        _write_manifest(tmp, manifest)
        replace_dir(tmp, out_dir)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    finally:
        shutil.rmtree(parts_dir, ignore_errors=True)
    log.info(
        "feature set written",
        extra={
            "out": str(out_dir),
            "creators": creators.height,
            "partitions": n_parts,
            "engine": engine,
            "seconds": round(time.perf_counter() - started, 1),
            **({"recomputed": carry.n_recompute, "carried": carry.n_carried} if carry is not None else {}),
        },
    )
    return manifest


def build_feature_set(
    data_dir: Path,
    out_dir: Path,
    *,
    as_of: datetime | None = None,
    export_time: datetime | None = None,
    settings: Settings | None = None,
    embedder: Embedder | None = None,
    partition_creators: int | None = None,
    progress: bool = True,
    clusters_from: Path | None = None,
    engine: str = "local",
    workers: int | None = None,
) -> dict[str, Any]:
    """Validate ``data_dir``, compute features as of ``as_of``, write them atomically to ``out_dir``.

    ``export_time`` states when the data was exported (default: the directory's ``export.json``, else the files'
    modification time; ``audiencefit.features.export``): timestamps after it are refused, and without ``as_of`` the
    features are taken as of it. ``partition_creators`` (default: the ``feature_partition_creators`` setting) bounds the
    creators computed at once; it changes memory, never the result. ``clusters_from``: a feature set whose audience
    clusters are kept (no refit). ``engine``: ``local`` (this process) or ``ray`` (the partitions computed by Ray
    Data tasks, ``audiencefit.features.engine_ray``; the same files). Returns the manifest. Invalid input raises
    ``InputError`` before anything is written.
    """
    settings = settings or get_settings()
    per_partition = settings.feature_partition_creators if partition_creators is None else partition_creators
    if per_partition < 1:
        raise InputError(f"--partition-creators {per_partition}: must be at least 1")
    if as_of is not None and as_of.tzinfo is None:
        as_of = as_of.replace(tzinfo=UTC)
    _check_out_dir(out_dir)
    with spilled_partitions(data_dir, out_dir, settings, export_time, per_partition, progress) as source:
        return build_from_partitions(
            source,
            out_dir,
            as_of=as_of,
            settings=settings,
            embedder=embedder,
            progress=progress,
            clusters_from=load_feature_set(clusters_from, mmap=True) if clusters_from is not None else None,
            engine=engine,
            workers=workers,
        )


@contextmanager
def spilled_partitions(
    data_dir: Path,
    out_dir: Path,
    settings: Settings,
    export_time: datetime | None,
    partition_creators: int,
    progress: bool,
) -> Iterator[SpilledPartitions]:
    """The raw tables of ``data_dir`` validated in chunks and spilled as creator partitions
    (``audiencefit.features.stream_input``) to a directory beside ``out_dir`` (on the same file system, so a cluster's
    workers see it where they see the output), removed when the build is over, whatever happens."""
    spill = out_dir.parent / f".{out_dir.name}.spill-{os.getpid()}-{secrets.token_hex(4)}"
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    try:
        source = stream_partitions(
            data_dir,
            spill,
            secret=settings.follower_id_secret.get_secret_value(),
            export_time=export_time,
            partition_creators=partition_creators,
            progress=progress,
        )
        with source:
            yield source
    finally:
        shutil.rmtree(spill, ignore_errors=True)


def update_feature_set(
    base_dir: Path,
    data_dir: Path,
    out_dir: Path,
    *,
    export_time: datetime | None = None,
    settings: Settings | None = None,
    embedder: Embedder | None = None,
    partition_creators: int | None = None,
    progress: bool = True,
) -> UpdateResult:
    """``features update``: the feature set of ``data_dir``, recomputing only the creators whose raw rows differ
    from those ``base_dir`` was built from (``audiencefit.features.update``); the files equal a full build's with
    ``clusters_from=base_dir``. The manifest's ``update`` block says what was recomputed, carried and removed."""
    settings = settings or get_settings()
    per_partition = settings.feature_partition_creators if partition_creators is None else partition_creators
    if per_partition < 1:
        raise InputError(f"--partition-creators {per_partition}: must be at least 1")
    if out_dir.resolve() == base_dir.resolve():
        raise InputError(f"--out {out_dir}: the same directory as --base; write the update beside it")
    _check_out_dir(out_dir)
    base = load_feature_set(base_dir, mmap=True)
    if embedder is None and base.manifest.get("embedder_backend"):
        settings = settings.model_copy(update={"embedder": str(base.manifest["embedder_backend"])})
    plans: list[Carry] = []
    with spilled_partitions(data_dir, out_dir, settings, export_time, per_partition, progress) as source:
        manifest = build_from_partitions(
            source,
            out_dir,
            settings=settings,
            embedder=embedder,
            progress=progress,
            reuse=base,
            on_plan=plans.append,
        )
    return UpdateResult(manifest, base, plans[0].recompute, plans[0].removed)


@dataclass(frozen=True)
class UpdateResult:
    """What ``features update`` wrote (its manifest) and changed: creators recomputed (new or changed) and
    removed, against ``base``."""

    manifest: dict[str, Any]
    base: FeatureSet
    recomputed: pl.Series
    removed: pl.Series
