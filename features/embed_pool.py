"""Worker processes for :func:`features.embed.embed_texts` on large calls (opt-in: ``workers`` > 1): text
preparation and static embedding are pure Python and numpy on one core each, so a large call could use the others.

Measured on 2 cores it is not faster yet (60,000 real-length captions: preparation 5.8 s in two workers against
4.8 s in one process; 90,000 end to end 5,481 vs 6,737 texts/s): every worker warms its own memo of hashtag
splits and word pieces, and the pool's round trips cost more than they save. So the pipeline keeps ``workers=1``.

Only calls of at least :data:`PARALLEL_MIN_CHARS` characters use the pool, so small calls and the service's query path
pay nothing. Workers are *spawned* (never forked: polars, onnxruntime and BLAS keep threads and locks a fork would
copy mid-use), once per process and embedder, and reused by later calls. Results are identical to one process:
preparation is a pure function, and the texts reach the backend in the same batches, in the same order, as in the
serial loop (the backends that opt in give batch-independent vectors anyway). A backend opts in to embedding in
the workers by a ``worker_loader()`` method returning a picklable zero-argument callable that loads the same
embedder in another process (the static and aligned backends; transformers already use every core).
"""

from __future__ import annotations

import atexit
import logging
import multiprocessing
import threading
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor
from typing import Any

import numpy as np
import numpy.typing as npt

from features.text import is_meaningful, prepare_text

logger = logging.getLogger(__name__)

PARALLEL_MIN_CHARS = 4_000_000
"""Calls with fewer input characters (or fewer characters to embed) stay in the calling process. Starting a
worker (Python, numpy, the tokenizer and the static vectors) costs about a second of CPU; 4M characters are
~14,000 real-length captions, ~2 s of work on one core. The work grows with characters, not texts: 30,000 bios
(1M characters) measured slower in two workers than in one process (18,084 vs 29,162 texts/s, docs/benchmarks.md)."""

PREPARE_CHUNK = 2_000
"""Texts per preparation task: large enough that pickling is a small share, small enough to balance the cores."""

EMBED_TASK_TEXTS = 2_048
"""Texts per embedding task (whole batches of ``batch_size``)."""

Loader = Callable[[], Any]


# --- the worker side --------------------------------------------------------------------------------------------

_WORKER_LOADER: Loader | None = None
_WORKER_EMBEDDER: Any = None


def _init_worker(loader: Loader | None) -> None:
    global _WORKER_LOADER  # noqa: PLW0603
    _WORKER_LOADER = loader


def _prepare_chunk(texts: Sequence[str | None]) -> list[str | None]:
    """Each text prepared, or None when nothing meaningful remains (as the serial loop decides)."""
    out: list[str | None] = []
    for text in texts:
        prepared = prepare_text(text)
        out.append(prepared if is_meaningful(prepared) else None)
    return out


def _embed_batches(batches: Sequence[Sequence[str]]) -> tuple[str, npt.NDArray[np.float32]]:
    """The worker's embedder id and the batches' vectors stacked (each batch embedded by its own call)."""
    global _WORKER_EMBEDDER  # noqa: PLW0603
    if _WORKER_EMBEDDER is None:
        if _WORKER_LOADER is None:
            raise RuntimeError("this embedding worker was started without an embedder")
        _WORKER_EMBEDDER = _WORKER_LOADER()
    vectors = [np.asarray(_WORKER_EMBEDDER.embed(list(batch)), dtype=np.float32) for batch in batches]
    return str(_WORKER_EMBEDDER.id), np.vstack(vectors)


# --- the calling side -------------------------------------------------------------------------------------------


class EmbedPool:
    """Spawned worker processes that prepare texts and, when the embedder has a loader, embed them."""

    def __init__(self, workers: int, embedder_id: str | None, loader: Loader | None) -> None:
        self.workers = workers
        self.embedder_id = embedder_id
        self.loader = loader
        self._executor = ProcessPoolExecutor(
            max_workers=workers,
            mp_context=multiprocessing.get_context("spawn"),
            initializer=_init_worker,
            initargs=(loader,),
        )
        logger.info("embedding workers started", extra={"workers": workers, "embedder": embedder_id})

    def prepare(self, texts: Sequence[str | None]) -> list[str | None]:
        """:func:`_prepare_chunk` of ``texts`` across the workers, in input order."""
        chunks = [list(texts[i : i + PREPARE_CHUNK]) for i in range(0, len(texts), PREPARE_CHUNK)]
        return [p for chunk in self._executor.map(_prepare_chunk, chunks) for p in chunk]

    def embed(self, batches: Sequence[Sequence[str]]) -> Iterator[tuple[int, npt.NDArray[np.float32]]]:
        """``(batches done, their vectors stacked)`` per task, in order; each batch embedded as in the serial loop."""
        if self.loader is None:
            raise RuntimeError("this pool has no embedder")
        per_task = max(1, EMBED_TASK_TEXTS // max(1, max((len(b) for b in batches), default=1)))
        tasks = [list(batches[i : i + per_task]) for i in range(0, len(batches), per_task)]
        for task, (worker_id, vectors) in zip(tasks, self._executor.map(_embed_batches, tasks), strict=True):
            if worker_id != self.embedder_id:
                # Vectors of another model under this one's id would poison the cache.
                raise RuntimeError(f"embedding worker loaded {worker_id!r}, expected {self.embedder_id!r}")
            yield len(task), vectors

    def shutdown(self) -> None:
        """Stop the workers (cancels queued tasks)."""
        self._executor.shutdown(wait=True, cancel_futures=True)


_POOL: EmbedPool | None = None
_POOL_LOCK = threading.Lock()


def get_pool(workers: int, embedder: Any) -> EmbedPool:
    """The process's pool for ``workers`` processes and ``embedder`` (its ``worker_loader()`` if it has one),
    started on first use and reused; a pool for another embedder or size is shut down first."""
    global _POOL  # noqa: PLW0603
    make_loader = getattr(embedder, "worker_loader", None)
    embedder_id = str(embedder.id) if callable(make_loader) else None
    with _POOL_LOCK:
        if _POOL is not None and (_POOL.workers, _POOL.embedder_id) == (workers, embedder_id):
            return _POOL
        if _POOL is not None:
            _POOL.shutdown()
        _POOL = EmbedPool(workers, embedder_id, make_loader() if callable(make_loader) else None)
        return _POOL


def shutdown_pool() -> None:
    """Stop the process's workers, if any (at exit, and in tests)."""
    global _POOL  # noqa: PLW0603
    with _POOL_LOCK:
        if _POOL is not None:
            _POOL.shutdown()
            _POOL = None


atexit.register(shutdown_pool)
