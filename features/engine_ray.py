"""The Ray engine of the feature build: the same partition function, run by Ray Data tasks.

``audiencefit features build --engine ray`` hands every creator partition to a Ray Data ``map_batches`` actor
(:class:`PartitionWorker`): it loads the embedder once, reads its partition from the spill directory
(``audiencefit.features.stream_input``), calls :func:`audiencefit.features.compute.compute_partition` — the function the
local engine calls — and writes the partition's features to ``<work>/part-<i>/`` (parquet tables and ``.npy`` matrices;
nothing pickled to disk). The driver reads the parts back in partition order and writes the feature set with the same
writer, so the files are byte-identical to ``--engine local`` (tested).

Where it runs: a local Ray runtime with one worker per core by default (``--workers``); the cluster at
``RAY_ADDRESS`` when that is set. On a cluster the spill directory, the work directory (both beside ``--out``) and
the embedding cache (``AUDIENCEFIT_DATA_DIR``) must be on storage every node sees at the same path, and every node
needs the same ``audiencefit`` install (docs/scaling.md). The k-means sample pass and the global steps (quality,
cluster sizes, the manifest) run in the driver; they read creator-level rows only.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from audiencefit.features.compute import PartitionFeatures
from audiencefit.features.errors import InputError
from audiencefit.features.stream_input import SpilledPartitions
from audiencefit.settings import Settings

log = logging.getLogger(__name__)

_TABLES = ("creators", "terms", "audience_geo", "recent_captions", "follower_keys", "state")
_MATRICES = (
    "bio",
    "content",
    "audience",
    "audience_dist",
    "follower_cluster_counts",
    "caption_cluster_counts",
    "follower_counts_by_creator",
    "caption_counts_by_creator",
)


def save_partition(features: PartitionFeatures, state: pl.DataFrame, directory: Path) -> None:
    """Write one partition's features and update state to ``directory`` (created; renamed into place last)."""
    tmp = directory.with_name(directory.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    frames: dict[str, pl.DataFrame | None] = {
        "creators": features.creators,
        "terms": features.terms,
        "audience_geo": features.audience_geo,
        "recent_captions": features.recent_captions,
        "follower_keys": features.follower_keys,
        "state": state,
    }
    for name, frame in frames.items():
        if frame is not None:
            frame.write_parquet(tmp / f"{name}.parquet", statistics=False)
    for name in _MATRICES:
        value = getattr(features, name)
        if value is not None:
            np.save(tmp / f"{name}.npy", np.ascontiguousarray(value), allow_pickle=False)
    (tmp / "embed_stats.json").write_text(json.dumps(features.embed_stats), encoding="utf-8")
    os.replace(tmp, directory)


def load_partition(directory: Path) -> tuple[PartitionFeatures, pl.DataFrame]:
    """What :func:`save_partition` wrote (plain parquet and ``.npy`` read with ``allow_pickle=False``)."""

    def frame(name: str) -> pl.DataFrame | None:
        path = directory / f"{name}.parquet"
        return pl.read_parquet(path) if path.is_file() else None

    def matrix(name: str) -> np.ndarray | None:
        path = directory / f"{name}.npy"
        return np.load(path, allow_pickle=False) if path.is_file() else None

    def required(value: Any, name: str) -> Any:
        if value is None:
            raise RuntimeError(f"{directory}: the partition's {name} is missing")
        return value

    features = PartitionFeatures(
        creators=required(frame("creators"), "creators"),
        terms=required(frame("terms"), "terms"),
        audience_geo=required(frame("audience_geo"), "audience_geo"),
        bio=required(matrix("bio"), "bio"),
        content=required(matrix("content"), "content"),
        audience=required(matrix("audience"), "audience"),
        audience_dist=required(matrix("audience_dist"), "audience_dist"),
        follower_cluster_counts=required(matrix("follower_cluster_counts"), "follower_cluster_counts"),
        caption_cluster_counts=required(matrix("caption_cluster_counts"), "caption_cluster_counts"),
        recent_captions=required(frame("recent_captions"), "recent_captions"),
        follower_keys=frame("follower_keys"),
        embed_stats={str(k): int(v) for k, v in json.loads((directory / "embed_stats.json").read_text()).items()},
        follower_counts_by_creator=matrix("follower_counts_by_creator"),
        caption_counts_by_creator=matrix("caption_counts_by_creator"),
    )
    return features, required(frame("state"), "state")


class PartitionWorker:
    """A Ray Data actor: the embedder and the embedding cache loaded once; one partition per call."""

    def __init__(
        self,
        source: SpilledPartitions,
        work: str,
        settings: Settings,
        backend: str,
        centroids: np.ndarray,
        stats_as_of: str | None,
        basis: str,
    ) -> None:
        from audiencefit.features.embed import get_embedder
        from audiencefit.features.embed_cache import EmbeddingCache

        self.settings = settings
        self.source = source
        self.work = Path(work)
        self.embedder = get_embedder(backend)
        self.cache = EmbeddingCache(self.settings.embedding_cache_dir, self.embedder.id, self.embedder.dim)
        self.centroids = centroids
        self.as_of = datetime.fromisoformat(stats_as_of) if stats_as_of else None
        self.basis = basis

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        from audiencefit.features.compute import compute_partition
        from audiencefit.features.digests import update_state

        done = []
        for i in batch["id"]:
            part = self.source.load(int(i))
            features = compute_partition(
                part,
                as_of=self.as_of,
                embedder=self.embedder,
                cache=self.cache,
                settings=self.settings,
                centroids=self.centroids,
            )
            counts = (
                features.follower_counts_by_creator if self.basis == "followers" else features.caption_counts_by_creator
            )
            if counts is None:
                raise RuntimeError("a partition's features came without per-creator cluster counts")
            save_partition(features, update_state(part, counts), self.work / f"part-{int(i):06d}")
            done.append(int(i))
        return {"id": np.asarray(done, dtype=np.int64)}


def require_ray() -> Any:
    """The ``ray`` module, or an error saying which extra brings it (it is not installed on a serving host)."""
    try:
        import ray
    except ModuleNotFoundError as exc:
        raise InputError("--engine ray needs Ray, the 'ray' extra: pip install 'audiencefit[ray]'") from exc
    return ray


def init_ray(workers: int) -> None:
    """A local runtime of ``workers`` CPUs, or the cluster at ``RAY_ADDRESS``; an initialised runtime is reused."""
    ray = require_ray()

    if ray.is_initialized():
        return
    address = os.environ.get("RAY_ADDRESS")
    if address:
        ray.init(address=address, log_to_driver=False)
    else:
        ray.init(num_cpus=workers, include_dashboard=False, log_to_driver=False)


def ray_partitions(
    source: SpilledPartitions,
    work: Path,
    *,
    settings: Settings,
    backend: str,
    centroids: np.ndarray,
    stats_as_of: datetime | None,
    basis: str,
    workers: int,
) -> Iterator[tuple[PartitionFeatures, pl.DataFrame]]:
    """Every partition's features and update state, computed by Ray Data actors, yielded in partition order."""
    import ray

    init_ray(workers)
    ds = ray.data.from_items([{"id": i} for i in range(source.n_partitions)], override_num_blocks=source.n_partitions)
    mapped = ds.map_batches(
        PartitionWorker,
        fn_constructor_args=(
            source,
            str(work),
            settings,
            backend,
            centroids,
            stats_as_of.isoformat() if stats_as_of else None,
            basis,
        ),
        batch_size=1,
        concurrency=workers,
        num_cpus=1,
    )
    finished: set[int] = set()
    following = 0
    for row in mapped.iter_rows():
        finished.add(int(row["id"]))
        while following in finished:
            directory = work / f"part-{following:06d}"
            yield load_partition(directory)
            shutil.rmtree(directory, ignore_errors=True)
            following += 1
    if following != source.n_partitions:
        raise RuntimeError(f"Ray returned {following} of {source.n_partitions} partitions")
