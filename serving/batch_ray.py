"""The Ray engine of batch scoring: the same chunks, scored by Ray Data actors instead of this process.

Every (brand, chunk of creators) is one item of a Ray Dataset; ``map_batches`` runs :class:`ChunkScorer` actors,
each of which loads the feature set and the model bundle once (checksums verified, no pickle) and calls
:func:`audiencefit.models.scoring.score_creators` — the function the local engine and the API call. Chunks come back in
any order; a brand is handed on when all its chunks are in, reassembled in row order, so the output is identical to
the local engine's.

Where it runs: a local Ray runtime with one CPU per core by default; the cluster at ``RAY_ADDRESS`` when that is
set (the feature set and bundle paths must then be readable by every worker, e.g. on shared storage; see
docs/scaling.md). If Ray is already initialised (a notebook, a test), that runtime is used as it is.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from audiencefit.serving.batch import BrandTask, Progress, chunks

log = logging.getLogger(__name__)


class ChunkScorer:
    """A Ray Data actor: holds the feature set, the bundle and the run's queries; scores one chunk per call."""

    def __init__(self, features_dir: str, bundle_dir: str, tasks: list[tuple[Any, np.ndarray]]) -> None:
        from audiencefit.features.featureset import FOLLOWER_KEYS, RECENT_CAPTIONS, load_feature_set
        from audiencefit.models.bundle import load_bundle
        from audiencefit.serving.state import compile_trees
        from audiencefit.settings import get_settings

        self.fs = load_feature_set(
            Path(features_dir), mmap=True, skip=frozenset({FOLLOWER_KEYS, RECENT_CAPTIONS})
        )  # as the local engine: audiencefit score
        self.bundle = load_bundle(Path(bundle_dir))
        self.bundle.check_compatible(self.fs)
        compile_trees(self.bundle, get_settings())  # the driver compiled them already: each worker loads the cache
        self.tasks = tasks

    def __call__(self, batch: dict[str, np.ndarray]) -> Any:
        import pyarrow as pa

        from audiencefit.models.scoring import score_creators

        tables = []
        for task_i, start, stop, chunk_i in zip(
            batch["task"], batch["start"], batch["stop"], batch["chunk"], strict=True
        ):
            query, rows = self.tasks[int(task_i)]
            scored = score_creators(self.fs, self.bundle.models, query, rows[int(start) : int(stop)], threads=1)
            tables.append(scored.with_columns(_task=pl.lit(int(task_i)), _chunk=pl.lit(int(chunk_i))).to_arrow())
        return pa.concat_tables(tables)


def init_ray(num_cpus: int | None = None) -> None:
    """Connect to ``RAY_ADDRESS`` when set, else start a local runtime; no-op when Ray is already initialised."""
    from audiencefit.features.engine_ray import require_ray

    ray = require_ray()

    if ray.is_initialized():
        return
    address = os.environ.get("RAY_ADDRESS")
    if address:
        ray.init(address=address, log_to_driver=False)
        log.info("connected to the Ray cluster", extra={"address": address})
    else:
        ray.init(num_cpus=num_cpus or os.cpu_count() or 1, include_dashboard=False, log_to_driver=False)
        log.info("started a local Ray runtime", extra={"num_cpus": num_cpus or os.cpu_count()})


class RayScorer:
    """Scores brands' creator chunks on Ray Data actors (one per CPU of the runtime unless told otherwise)."""

    name = "ray"

    def __init__(self, features_dir: Path, bundle_dir: Path, *, chunk_rows: int, actors: int | None = None) -> None:
        init_ray()
        import ray

        self.features_dir = features_dir.resolve()
        self.bundle_dir = bundle_dir.resolve()
        self.chunk_rows = chunk_rows
        self.actors = actors or max(1, int(ray.cluster_resources().get("CPU", 1)))  # type: ignore[no-untyped-call]

    def score_many(self, tasks: Sequence[BrandTask], progress: Progress) -> Iterator[tuple[int, pl.DataFrame]]:
        """(task index, its creators scored in row order), each as soon as all its chunks are in."""
        import ray

        items = []
        expected: dict[int, int] = {}
        for i, task in enumerate(tasks):
            pieces = chunks(task.rows, self.chunk_rows)
            expected[i] = len(pieces)
            offset = 0
            for c, piece in enumerate(pieces):
                items.append({"task": i, "chunk": c, "start": offset, "stop": offset + len(piece)})
                offset += len(piece)
        for i in (i for i, n in expected.items() if n == 0):
            yield i, pl.DataFrame()
        if not items:
            return
        dataset = ray.data.from_items(items, override_num_blocks=len(items)).map_batches(
            ChunkScorer,
            fn_constructor_kwargs={
                "features_dir": str(self.features_dir),
                "bundle_dir": str(self.bundle_dir),
                "tasks": [(t.query, t.rows) for t in tasks],
            },
            batch_size=1,
            concurrency=self.actors,
            num_cpus=1,
        )
        received: dict[int, dict[int, pl.DataFrame]] = {}
        for table in dataset.iter_batches(batch_size=None, batch_format="pyarrow"):
            frame = pl.from_arrow(table)
            assert isinstance(frame, pl.DataFrame)
            for part in frame.partition_by(["_task", "_chunk"], maintain_order=True):
                task_i, chunk_i = int(part["_task"][0]), int(part["_chunk"][0])
                received.setdefault(task_i, {})[chunk_i] = part.drop("_task", "_chunk")
                progress(task_i, part.height)
                if len(received[task_i]) == expected[task_i]:
                    done = received.pop(task_i)
                    yield task_i, pl.concat([done[c] for c in range(expected[task_i])])
        if received:
            missing = {i: expected[i] - len(got) for i, got in received.items()}
            raise RuntimeError(f"Ray returned incomplete results (chunks missing per task: {missing})")

    def close(self) -> None:
        return None
