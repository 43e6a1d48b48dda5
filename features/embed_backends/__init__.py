"""Faster embedding backends for all-MiniLM-L6-v2: onnxruntime fp32 / int8, a model2vec static model, a hybrid,
and the aligned (asymmetric) default: stored texts static + aligned, queries int8.

Each backend satisfies ``audiencefit.features.embed.Embedder`` (``id``, ``dim``, ``embed``). Its artifacts are built
once, offline, from the packaged model into ``<data_dir>/models/<backend>/`` (see :mod:`.artifacts`); loading and
embedding never import torch. Register them with::

    for backend, factory in factories().items():
        register_embedder(backend, factory)

Measured speed and agreement with the torch baseline: ``python -m benchmarks.embed``.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from functools import partial
from typing import TYPE_CHECKING

from audiencefit.features.embed_backends.artifacts import (
    SPECS,
    ArtifactError,
    BackendSpec,
    backend_id,
    ensure_artifacts,
)

if TYPE_CHECKING:
    from audiencefit.features.embed_backends.aligned import AlignedEmbedder
    from audiencefit.features.embed_backends.hybrid import HybridEmbedder
    from audiencefit.features.embed_backends.onnx_minilm import OnnxMiniLMEmbedder
    from audiencefit.features.embed_backends.static import StaticEmbedder
    from audiencefit.settings import Settings

    FastEmbedder = OnnxMiniLMEmbedder | StaticEmbedder | HybridEmbedder | AlignedEmbedder

__all__ = [
    "SPECS",
    "ArtifactError",
    "BackendSpec",
    "backend_id",
    "ensure_artifacts",
    "factories",
    "load_embedder",
]


QUERY_MODELS = {"fp32": "minilm-onnx-fp32", "int8": "minilm-onnx-int8"}
"""The ``query_model`` setting → the backend whose ONNX transformer embeds the aligned backend's query texts."""


def load_embedder(
    backend: str,
    settings: Settings | None = None,
    *,
    build: bool = True,
    batch_size: int | None = None,
    threads: int | None = None,
) -> FastEmbedder:
    """The embedder registered as ``backend`` (a key of :data:`SPECS`), building its artifacts first if needed.

    ``batch_size`` (texts per onnxruntime call) defaults to the ``embed_batch_size`` setting; ``threads``
    (onnxruntime intra-op threads) to the ``embed_threads`` setting, whose default is the cores this process may use.
    """
    spec = SPECS.get(backend)
    if spec is None:
        raise ArtifactError(f"unknown embedding backend {backend!r}; known: {', '.join(sorted(SPECS))}")
    if settings is None:
        from audiencefit.settings import get_settings

        settings = get_settings()
    batch = settings.embed_batch_size if batch_size is None else batch_size
    threads = settings.embed_threads if threads is None else threads
    artifact_dir = ensure_artifacts(spec, settings, build=build)
    if spec.kind in ("onnx-fp32", "onnx-int8"):
        from audiencefit.features.embed_backends.onnx_minilm import OnnxMiniLMEmbedder

        return OnnxMiniLMEmbedder(artifact_dir, batch_size=batch, threads=threads)
    if spec.kind == "static":
        from audiencefit.features.embed_backends.static import StaticEmbedder

        return StaticEmbedder(artifact_dir)
    if spec.kind == "hybrid":
        from audiencefit.features.embed_backends.hybrid import HybridEmbedder
        from audiencefit.features.embed_backends.onnx_minilm import OnnxMiniLMEmbedder
        from audiencefit.features.embed_backends.static import StaticEmbedder

        transformer_key, static_key = spec.depends
        transformer_dir = ensure_artifacts(transformer_key, settings, build=build)
        transformer = OnnxMiniLMEmbedder(transformer_dir, batch_size=batch, threads=threads)
        static = StaticEmbedder(ensure_artifacts(static_key, settings, build=build))
        return HybridEmbedder(artifact_dir, transformer, static)
    if spec.kind == "aligned":
        from audiencefit.features.embed_backends.aligned import AlignedEmbedder
        from audiencefit.features.embed_backends.onnx_minilm import OnnxMiniLMEmbedder
        from audiencefit.features.embed_backends.static import INFO_FILE, StaticEmbedder

        _, static_key = spec.depends
        # The map was fitted on the fp32 transformer (``depends``); queries go through the one the setting names.
        transformer_dir = ensure_artifacts(QUERY_MODELS[settings.query_model], settings, build=build)
        static = StaticEmbedder(ensure_artifacts(static_key, settings, build=build))
        return AlignedEmbedder(
            artifact_dir,
            static,
            partial(OnnxMiniLMEmbedder, transformer_dir, batch_size=batch, threads=threads),
            dim=int(json.loads((artifact_dir / INFO_FILE).read_text(encoding="utf-8"))["dim"]),
        )
    raise ArtifactError(f"backend {backend!r} has unknown kind {spec.kind!r}")


def factories() -> dict[str, Callable[[], FastEmbedder]]:
    """``{backend key: zero-argument constructor}`` for ``audiencefit.features.embed.register_embedder``."""
    return {key: partial(load_embedder, key) for key in SPECS}
