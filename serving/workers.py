"""Several worker processes behind one port (``audiencefit serve --workers N``).

Why: a request is CPU-bound and much of it is Python, so one process keeps only about 1.4 of 2 cores busy (the
GIL); a second process uses the second core. Each worker loads its own state (feature set, indexes, embedder,
bundle: nothing is shared but the files) and the kernel hands each connection to one of them.

The workers share a control directory, which keeps them one service to the outside:

- Metrics: every ``SYNC_INTERVAL_S`` each worker writes its snapshot there; ``/metrics`` on any worker sums its
  own live metrics and the others' snapshots (counters and histograms add up; a worker that stopped keeps its
  counts, as a Prometheus counter must).
- Reloads: a successful ``POST /admin/reload`` on one worker writes ``reload.json`` (a generation and the source it
  loaded); every other worker sees it within ``SYNC_INTERVAL_S`` and loads the same source beside its old bundle,
  swapping atomically as a single worker does. A worker that fails to load it keeps its old bundle serving, logs
  why, and ``/readyz`` on that worker shows the error. A worker that starts later (a restart) begins with the
  newest ``reload.json``, not the configured source.
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from fastapi import FastAPI

    from serving.metrics import Metrics
    from serving.state import AppState, BundleSource

log = logging.getLogger(__name__)

CONFIG_ENV = "AUDIENCEFIT_SERVE_CONFIG"  # the parent's serve options, as JSON, for the worker processes
SYNC_INTERVAL_S = 0.5
RELOAD_FILE = "reload.json"


def source_to_json(source: BundleSource) -> dict[str, str]:
    return {"path": str(source)} if isinstance(source, Path) else {"uri": source}


def source_from_json(data: dict[str, str]) -> BundleSource:
    return Path(data["path"]) if "path" in data else str(data["uri"])


def app_from_env() -> FastAPI:
    """The app of one worker process (uvicorn's factory): settings from the environment, serve options from
    ``AUDIENCEFIT_SERVE_CONFIG`` (written by ``audiencefit serve``)."""
    from audiencefit.logs import configure_logging
    from audiencefit.settings import get_settings
    from serving.app import create_app

    raw = os.environ.get(CONFIG_ENV)
    if not raw:
        raise RuntimeError(f"{CONFIG_ENV} is not set: worker processes are started by 'audiencefit serve --workers'")
    options: dict[str, Any] = json.loads(raw)
    settings = get_settings()
    configure_logging(options.get("log_level", settings.log_level), options.get("log_format", settings.log_format))

    def path(key: str) -> Path | None:
        value = options.get(key)
        return Path(value) if value else None

    features_dir, control_dir = path("features_dir"), path("control_dir")
    if features_dir is None or control_dir is None:
        raise RuntimeError(f"{CONFIG_ENV} names no features_dir or control_dir")
    return create_app(
        settings,
        features_dir=features_dir,
        bundle_source=source_from_json(options["bundle_source"]),
        index_dir=path("index_dir"),
        data_dir=path("data_dir"),
        threads=int(options["threads"]),
        control_dir=control_dir,
    )


class WorkerSync:
    """One worker's link to the others through the control directory (see the module docstring)."""

    def __init__(self, control_dir: Path, metrics: Metrics) -> None:
        self.control_dir = control_dir
        self.metrics = metrics
        self.pid = os.getpid()
        self._seen = 0  # the newest reload generation this worker has applied (or published)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._state: AppState | None = None

    def start(self, state: AppState) -> None:
        """Follow any reload published before this worker started, then sync in a background thread."""
        self._state = state
        self._follow()
        self._write_snapshot()
        self._thread = threading.Thread(target=self._run, name="worker-sync", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self._write_snapshot()

    def publish_reload(self, source: BundleSource) -> None:
        """Tell the other workers to load ``source`` (this worker has just loaded it)."""
        generation = time.time_ns()
        self._seen = generation
        _write_json(self.control_dir / RELOAD_FILE, {"generation": generation, "source": source_to_json(source)})
        log.info("reload published to the other workers", extra={"source": str(source), "generation": generation})

    def others(self) -> list[dict[str, Any]]:
        """The other workers' latest metrics snapshots; a model is only listed for workers that wrote recently."""
        out = []
        fresh_after = time.time() - 4 * SYNC_INTERVAL_S
        for file in sorted(self.control_dir.glob("metrics-*.json")):
            if file.name == f"metrics-{self.pid}.json":
                continue
            snap = _read_json(file)
            if snap is None:
                continue
            if float(snap.get("written_at", 0.0)) < fresh_after:
                snap["model"] = None
            out.append(snap)
        return out

    def _run(self) -> None:
        while not self._stop.wait(SYNC_INTERVAL_S):
            try:
                self._follow()
                self._write_snapshot()
            except Exception:  # never let the sync thread die; the next tick tries again
                log.exception("worker sync failed")

    def _write_snapshot(self) -> None:
        snap = self.metrics.snapshot() | {"pid": self.pid, "written_at": time.time()}
        _write_json(self.control_dir / f"metrics-{self.pid}.json", snap)

    def _follow(self) -> None:
        data = _read_json(self.control_dir / RELOAD_FILE)
        if data is None or int(data["generation"]) <= self._seen or self._state is None:
            return
        self._seen = int(data["generation"])
        source = source_from_json(data["source"])
        state = self._state
        try:
            _, new = state.models.reload(source)
        except Exception:  # logged and kept for /readyz by the holder; the old bundle keeps serving
            return
        self.metrics.set_model(new.bundle.bundle_id, new.source, state.fs.feature_set_id)


def _write_json(path: Path, data: dict[str, Any]) -> None:
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}-{threading.get_ident()}")
    tmp.write_text(json.dumps(data), encoding="utf-8")
    os.replace(tmp, path)


def _read_json(path: Path) -> dict[str, Any] | None:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None
