"""Compiled tree ensembles: a LightGBM text model compiled to native code (lleaves, LLVM), the same numbers faster.

Scoring every creator for every segment is mostly tree inference; LightGBM's own predictor walks node arrays,
compiled trees are branches in machine code (×5–10 on our models, ``docs/benchmarks.md``).

- The same numbers: the model is compiled as one block of all its trees (``fblocksize`` = number of trees), so
  the trees are summed in LightGBM's order and every prediction equals LightGBM's bit for bit (tested on every
  model of a trained bundle, NaNs included). Which predictor answers never changes a result.
- Where native code lives: compiling takes seconds per model, so the object code is kept in a local cache
  (``Settings.forest_cache_dir``), named by the sha256 of the model text, the lleaves and llvmlite versions, the
  compile options and the host CPU. Each object has a sidecar holding its own sha256, checked before it is loaded:
  a truncated or altered object is compiled again, never executed. The bundle (what MLflow stores and ships) holds
  only LightGBM text; native code is never shipped in, or loaded from, a model artifact. The sidecar detects
  damage, not an attacker who can write both files: the cache must be writable only by the account running
  audiencefit (as its virtualenv is).
- Objects are written to a temporary name and renamed into place, so concurrent processes never read half a file.
"""

from __future__ import annotations

import functools
import hashlib
import json
import logging
import os
import tempfile
import threading
import time
from importlib.metadata import version
from pathlib import Path

import numpy as np

from audiencefit.features.io import write_bytes_atomic

log = logging.getLogger(__name__)

_COMPILE_LOCK = threading.Lock()  # LLVM's global state: one compilation at a time per process
_OPTIONS = {"raw_score": True, "fcodemodel": "large", "finline": True, "use_fp64": True}


@functools.cache
def _host() -> str:
    """Target triple, CPU name and CPU features: part of every cache key, the same for the life of the process."""
    import llvmlite.binding as llvm

    llvm.initialize()
    llvm.initialize_native_target()
    llvm.initialize_native_asmprinter()
    try:
        features = llvm.get_host_cpu_features().flatten()
    except RuntimeError:
        features = ""
    return f"{llvm.get_process_triple()}|{llvm.get_host_cpu_name()}|{features}"


def forest_key(text: str) -> str:
    """The cache name of a model's object code: model text, compiler versions, options and host CPU."""
    h = hashlib.sha256()
    for part in (text, version("lleaves"), version("llvmlite"), json.dumps(_OPTIONS, sort_keys=True), _host()):
        h.update(part.encode("utf-8"))
        h.update(b"\0")
    return h.hexdigest()[:32]


class CompiledForest:
    """One compiled model: ``predict(x)`` = LightGBM's ``predict(x, raw_score=True)``, the same bits."""

    def __init__(self, model: object, n_features: int, key: str) -> None:
        self._model = model
        self.n_features = n_features
        self.key = key

    def predict(self, x: np.ndarray, threads: int = 1) -> np.ndarray:
        """Raw scores of the rows of ``x`` (float64, one column per model feature)."""
        if x.ndim != 2 or x.shape[1] != self.n_features:
            raise ValueError(f"compiled forest expects {self.n_features} feature columns, got shape {x.shape}")
        data = np.ascontiguousarray(x, dtype=np.float64)
        out: np.ndarray = self._model.predict(data, n_jobs=max(1, threads))  # type: ignore[attr-defined]
        return out


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _verified(obj: Path, sidecar: Path) -> bool:
    """Is ``obj`` exactly the object its sidecar describes? (Anything else is compiled again.)"""
    try:
        meta = json.loads(sidecar.read_text(encoding="utf-8"))
        return bool(meta.get("sha256") == _sha256(obj.read_bytes()))
    except (OSError, ValueError):
        return False


def is_cached(text: str, cache_dir: Path) -> bool:
    """Is a verified object of this model in the cache (so that loading it takes milliseconds)?"""
    key = forest_key(text)
    return _verified(cache_dir / f"{key}.o", cache_dir / f"{key}.json")


def _compile_into_cache(text: str, cache_dir: str) -> None:
    """A worker process's job: compile one model into the cache (the parent loads it from there)."""
    compile_forest(text, Path(cache_dir))


def compile_forests(texts: list[str], cache_dir: Path, *, workers: int = 1) -> list[CompiledForest]:
    """:func:`compile_forest` of each text; models missing from the cache are compiled in up to ``workers``
    processes at once (LLVM compiles one module at a time per process), then everything loads from the cache."""
    # Longest first: the largest model starts at once instead of last, which balances the workers.
    missing = sorted(dict.fromkeys(t for t in texts if not is_cached(t, cache_dir)), key=len, reverse=True)
    if missing:
        log.info(
            "compiling tree models to native code (once per model and machine; seconds per model)",
            extra={"models": len(missing), "cached": len(texts) - len(missing), "cache_dir": str(cache_dir)},
        )
    if workers > 1 and len(missing) > 1:
        import multiprocessing
        from concurrent.futures import ProcessPoolExecutor

        cache_dir.mkdir(parents=True, exist_ok=True)
        started = time.perf_counter()
        from audiencefit.children import die_with_parent

        context = multiprocessing.get_context("spawn")  # no fork of a process that may hold threads and locks
        # Each compile process dies with this one, even by SIGKILL (a killed worker left them running for good).
        with ProcessPoolExecutor(
            max_workers=min(workers, len(missing)),
            mp_context=context,
            initializer=die_with_parent,
            initargs=(os.getpid(),),
        ) as pool:
            for future in [pool.submit(_compile_into_cache, text, str(cache_dir)) for text in missing]:
                future.result()
        log.info(
            "tree models compiled in parallel",
            extra={"models": len(missing), "workers": workers, "seconds": round(time.perf_counter() - started, 3)},
        )
    return [compile_forest(text, cache_dir) for text in texts]


def compile_forest(text: str, cache_dir: Path) -> CompiledForest:
    """The compiled form of a LightGBM text model: from the cache when a verified object is there, else compiled
    (seconds) and stored in the cache for the next process."""
    import lleaves

    key = forest_key(text)
    cache_dir.mkdir(parents=True, exist_ok=True)
    model_file, obj, sidecar = (cache_dir / f"{key}{suffix}" for suffix in (".txt", ".o", ".json"))
    with _COMPILE_LOCK:
        if not model_file.is_file() or model_file.read_text(encoding="utf-8") != text:
            write_bytes_atomic(model_file, text.encode("utf-8"))
        hit = obj.is_file() and _verified(obj, sidecar)
        started = time.perf_counter()
        model = lleaves.Model(model_file=str(model_file))
        n_trees = int(model.num_trees())
        if hit:
            model.compile(cache=str(obj), fblocksize=n_trees, **_OPTIONS)
        else:
            # lleaves writes the object where it is told once compiled: a private name, renamed when complete.
            # Named after this process, so that the next compile removes what a killed one left (pid gone).
            _remove_dead_partials(cache_dir, key)
            fd, tmp_name = tempfile.mkstemp(dir=cache_dir, prefix=f".{key}.{os.getpid()}-", suffix=".o")
            os.close(fd)
            tmp = Path(tmp_name)
            tmp.unlink()
            try:
                model.compile(cache=str(tmp), fblocksize=n_trees, **_OPTIONS)
                data = tmp.read_bytes()
                write_bytes_atomic(sidecar, json.dumps({"sha256": _sha256(data), "trees": n_trees}).encode("utf-8"))
                os.replace(tmp, obj)
            finally:
                tmp.unlink(missing_ok=True)
        log.info(
            "tree model compiled" if not hit else "compiled tree model loaded",
            extra={"key": key, "trees": n_trees, "cached": hit, "seconds": round(time.perf_counter() - started, 3)},
        )
        return CompiledForest(model, int(model.num_feature()), key)


def _remove_dead_partials(cache_dir: Path, key: str) -> None:
    """Remove the half-written objects of ``key`` whose compiling process is gone (``.<key>.<pid>-<random>.o``)."""
    from audiencefit.children import pid_alive

    for partial in cache_dir.glob(f".{key}.*-*.o"):
        pid = partial.name[len(key) + 2 :].split("-", 1)[0]
        if pid.isdigit() and not pid_alive(int(pid)):
            partial.unlink(missing_ok=True)
