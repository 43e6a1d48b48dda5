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
import logging
import os
import shutil
import threading
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING

from audiencefit.features.embed_backends.artifacts import (
    MANIFEST,
    SPECS,
    ArtifactError,
    BackendSpec,
    backend_id,
    check_artifacts,
    ensure_artifacts,
    expected_source,
    read_manifest,
    spec_of,
)

if TYPE_CHECKING:
    from audiencefit.features.embed_backends.aligned import AlignedEmbedder
    from audiencefit.features.embed_backends.hybrid import HybridEmbedder
    from audiencefit.features.embed_backends.onnx_minilm import OnnxMiniLMEmbedder
    from audiencefit.features.embed_backends.static import StaticEmbedder
    from audiencefit.settings import Settings

    FastEmbedder = OnnxMiniLMEmbedder | StaticEmbedder | HybridEmbedder | AlignedEmbedder

__all__ = [
    "CARRIED_DIR",
    "SPECS",
    "ArtifactError",
    "BackendSpec",
    "backend_id",
    "carried_embedder",
    "carry_artifacts",
    "ensure_artifacts",
    "factories",
    "load_embedder",
]


log = logging.getLogger(__name__)

QUERY_MODELS = {"fp32": "minilm-onnx-fp32", "int8": "minilm-onnx-int8"}
"""The ``query_model`` setting → the backend whose ONNX transformer embeds the aligned backend's query texts."""

CARRIED_DIR = "embedding"
"""A feature set's sub-directory holding the embedding artifacts its queries need (``<feature set>/embedding/<key>``,
each with its checksummed manifest), so that a serving host given the feature set builds and copies nothing else."""


def query_artifact_keys(backend: str, query_model: str) -> list[str]:
    """The artifact keys an embedder of ``backend`` loads (with ``query_model`` as the aligned backend's query
    transformer): what a host embedding queries for a feature set of that backend needs."""
    spec = spec_of(backend)
    if spec.kind == "aligned":
        return [spec.key, QUERY_MODELS[query_model], spec.depends[1]]
    if spec.kind == "hybrid":
        return [spec.key, *spec.depends]
    return [spec.key]


def carry_artifacts(backend: str, settings: Settings, dest: Path) -> dict[str, str]:
    """Copy the checked artifacts of :func:`query_artifact_keys` into ``dest/<key>`` (hard links where the file
    system allows: artifacts are replaced, never changed in place); ``{key: artifact id}``.

    ``dest`` is inside a feature set being written (its staging directory), so a reader never sees half of it."""
    carried: dict[str, str] = {}
    for key in query_artifact_keys(backend, settings.query_model):
        source = ensure_artifacts(key, settings)
        manifest = read_manifest(source)
        target = dest / key
        for name in [MANIFEST, *sorted(manifest["files"])]:
            out = target / name
            out.parent.mkdir(parents=True, exist_ok=True)
            try:
                os.link(source / name, out)
            except OSError:
                shutil.copyfile(source / name, out)
        problem = check_artifacts(target, str(manifest["id"]))
        if problem is not None:
            raise ArtifactError(f"embedding artifact copied to {target}: {problem}")
        carried[key] = str(manifest["id"])
    return carried


def _artifact(key: str, settings: Settings, build: bool, carried: Path | None) -> Path:
    """``carried/<key>`` when a feature set carries that artifact and it checks out, else :func:`ensure_artifacts`
    (``<data_dir>/models``). A carried artifact that fails its check is said and not used."""
    if carried is not None and (carried / key / MANIFEST).is_file():
        try:
            source, _ = expected_source(carried)
            problem = check_artifacts(carried / key, backend_id(key, source))
        except ArtifactError as exc:
            problem = str(exc)
        if problem is None:
            tokenizer = carried / key / "tokenizer.json"
            if tokenizer.is_file():  # hashtags are split with MiniLM's vocabulary: this host may have no other copy
                from audiencefit.features.text import use_tokenizer_file

                use_tokenizer_file(tokenizer)
            return carried / key
        log.warning(
            "embedding artifact carried by the feature set is not usable; trying <data_dir>/models",
            extra={"artifact": str(carried / key), "problem": problem},
        )
        try:
            return ensure_artifacts(key, settings, build=build)
        except ArtifactError as exc:
            raise ArtifactError(
                f"embedding artifact {carried / key} (carried by the feature set): {problem}; {exc}"
            ) from exc
    return ensure_artifacts(key, settings, build=build)


def load_embedder(
    backend: str,
    settings: Settings | None = None,
    *,
    build: bool = True,
    batch_size: int | None = None,
    threads: int | None = None,
    carried: Path | None = None,
) -> FastEmbedder:
    """The embedder registered as ``backend`` (a key of :data:`SPECS`), building its artifacts first if needed.

    ``carried`` is a feature set's :data:`CARRIED_DIR`: its artifacts are used first (checked), then
    ``<data_dir>/models``.

    ``batch_size`` (texts per onnxruntime call) defaults to the ``embed_batch_size`` setting; ``threads``
    (onnxruntime intra-op threads) to the ``embed_threads`` setting, whose default is the cores this process may use,
    except for the aligned backend's query transformer: the ``query_threads`` setting (one text at a time during a
    request; default 1).
    """
    spec = SPECS.get(backend)
    if spec is None:
        raise ArtifactError(f"unknown embedding backend {backend!r}; known: {', '.join(sorted(SPECS))}")
    if settings is None:
        from audiencefit.settings import get_settings

        settings = get_settings()
    batch = settings.embed_batch_size if batch_size is None else batch_size
    query_threads = settings.query_threads if threads is None else threads
    threads = settings.embed_threads if threads is None else threads
    artifact_dir = _artifact(spec.key, settings, build, carried)
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
        transformer_dir = _artifact(transformer_key, settings, build, carried)
        transformer = OnnxMiniLMEmbedder(transformer_dir, batch_size=batch, threads=threads)
        static = StaticEmbedder(_artifact(static_key, settings, build, carried))
        return HybridEmbedder(artifact_dir, transformer, static)
    if spec.kind == "aligned":
        from audiencefit.features.embed_backends.aligned import AlignedEmbedder
        from audiencefit.features.embed_backends.onnx_minilm import OnnxMiniLMEmbedder
        from audiencefit.features.embed_backends.static import INFO_FILE, StaticEmbedder

        _, static_key = spec.depends
        # The map was fitted on the fp32 transformer (``depends``); queries go through the one the setting names.
        transformer_dir = _artifact(QUERY_MODELS[settings.query_model], settings, build, carried)
        static = StaticEmbedder(_artifact(static_key, settings, build, carried))
        return AlignedEmbedder(
            artifact_dir,
            static,
            partial(OnnxMiniLMEmbedder, transformer_dir, batch_size=batch, threads=query_threads),
            dim=int(json.loads((artifact_dir / INFO_FILE).read_text(encoding="utf-8"))["dim"]),
        )
    raise ArtifactError(f"backend {backend!r} has unknown kind {spec.kind!r}")


_CARRIED: dict[tuple[str, str, int, int | None, tuple[str, ...]], FastEmbedder] = {}
_CARRIED_LOCK = threading.Lock()


def _carried_id(carried: Path, key: str) -> str:
    """The id ``carried/<key>``'s manifest states ("" when there is none to read: the load says why)."""
    try:
        return str(read_manifest(carried / key).get("id", ""))
    except ArtifactError:
        return ""


def carried_embedder(backend: str, carried: Path, settings: Settings | None = None) -> FastEmbedder:
    """:func:`load_embedder` with a feature set's carried artifacts, loaded once per process for each backend,
    query model and set of carried artifact ids: feature sets swapped in day after day carry the same artifacts and
    share one embedder (one per directory would keep an ONNX session per swap)."""
    if settings is None:
        from audiencefit.settings import get_settings

        settings = get_settings()
    ids = tuple(_carried_id(carried, k) for k in query_artifact_keys(backend, settings.query_model))
    key = (backend, settings.query_model, settings.query_threads, settings.embed_threads, ids)
    with _CARRIED_LOCK:
        found = _CARRIED.get(key)
        if found is None:
            found = _CARRIED[key] = load_embedder(backend, settings, carried=carried)
        return found


def factories() -> dict[str, Callable[[], FastEmbedder]]:
    """``{backend key: zero-argument constructor}`` for ``audiencefit.features.embed.register_embedder``."""
    return {key: partial(load_embedder, key) for key in SPECS}
