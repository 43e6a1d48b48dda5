"""The worker processes of ``audiencefit serve --workers N``.

Why: a request is CPU-bound and much of it is Python, so one process keeps only about 1.4 of 2 cores busy (the
GIL); a second process uses the second core. Each worker loads its own state (feature set, indexes, embedder,
bundle: nothing is shared but the files) and answers the requests the front process (``audiencefit.serving.dispatch``)
hands it, running them through the same FastAPI app as a single-process service.

The workers share a control directory, which keeps them one service to the outside:

- Metrics: ``prometheus_client``'s multiprocess files are in a directory of their own (``audiencefit.serving.metrics``);
  every ``SYNC_INTERVAL_S`` each worker brings there what it reads rather than counts (the recommendation log's
  counts, its process and GC metrics), and ``/metrics`` on any worker reads every process's files.
- Reloads: a successful ``POST /admin/reload`` on one worker writes ``reload.json`` (a generation, the bundle source
  and the feature set directory it loaded, a ``CURRENT`` pointer as resolved there); every other worker sees it
  within ``SYNC_INTERVAL_S`` and loads the same beside its old state, swapping atomically as a single worker does.
  A worker that fails to load it keeps its old state serving, logs why, and ``/readyz`` on that worker shows the
  error. A worker that starts later (a restart) begins with the newest ``reload.json``, not the configured
  sources.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import signal
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from audiencefit.features.io import write_bytes_atomic
from audiencefit.serving.frames import decode_headers, encode_headers, read_frame, write_frame
from audiencefit.serving.problems import PROBLEM_JSON, problem, problem_bytes

if TYPE_CHECKING:
    from fastapi import FastAPI

    from audiencefit.serving.metrics import Metrics
    from audiencefit.serving.state import BundleSource, ServingHolder

log = logging.getLogger(__name__)

SYNC_INTERVAL_S = 0.5
RELOAD_FILE = "reload.json"


def source_to_json(source: BundleSource) -> dict[str, str]:
    return {"path": str(source)} if isinstance(source, Path) else {"uri": source}


def source_from_json(data: dict[str, str]) -> BundleSource:
    return Path(data["path"]) if "path" in data else str(data["uri"])


def is_alias(source: BundleSource) -> bool:
    """A registry URI naming an alias (``models:/name@alias``), whose version can change between two loads."""
    return isinstance(source, str) and source.startswith("models:/") and "@" in source


def build_app(options: dict[str, Any]) -> FastAPI:
    """One worker's app: settings from the environment, serve options from the front (``audiencefit serve``)."""
    from audiencefit.serving.app import create_app
    from audiencefit.settings import get_settings

    def path(key: str) -> Path | None:
        value = options.get(key)
        return Path(value) if value else None

    features_dir, control_dir = path("features_dir"), path("control_dir")
    if features_dir is None or control_dir is None:
        raise RuntimeError("worker options name no features_dir or control_dir")
    return create_app(
        get_settings(),
        features_dir=features_dir,
        bundle_source=source_from_json(options["bundle_source"]),
        index_dir=path("index_dir"),
        data_dir=path("data_dir"),
        threads=int(options["threads"]),
        control_dir=control_dir,
        # One request at a time from the front: nothing else waits on this worker's loop while it computes.
        compute_inline=int(options.get("in_flight", 0)) == 1,
        exit_on_load_error=True,  # the front's start then fails with this worker's exit code, no traceback
    )


def worker_main(options_json: str, front_socket: str) -> None:
    """A worker process (started by the front, ``audiencefit.serving.dispatch``): load the app, connect to the front,
    answer the requests it forwards until told to stop (SIGTERM/SIGINT) or the front goes away (its socket closes, or,
    while the worker still loads or compiles, the front process ends: even a SIGKILLed front takes its workers,
    and their compile processes, with it)."""
    from audiencefit.children import die_with_parent

    options: dict[str, Any] = json.loads(options_json)
    die_with_parent(options.get("parent_pid"))

    from audiencefit.logs import configure_logging, settings_secrets
    from audiencefit.settings import get_settings

    settings = get_settings()
    configure_logging(
        options.get("log_level", settings.log_level),
        options.get("log_format", settings.log_format),
        secrets=settings_secrets(settings),
    )
    import uvloop  # the front's loop too (audiencefit serve): less CPU per request than asyncio's

    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        runner.run(_serve(build_app(options), front_socket))


async def _serve(app: Any, front_socket: str) -> None:
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    lifespan = _Lifespan(app)
    await lifespan.startup()  # the state is loaded before the worker tells the front it is there
    reader, writer = await asyncio.open_unix_connection(front_socket)
    await write_frame(writer, {"pid": os.getpid()})
    lock = asyncio.Lock()
    tasks: set[asyncio.Task[None]] = set()

    async def answer(header: dict[str, Any], body: bytes) -> None:
        status, headers, out = await _call(app, header, body)
        async with lock:
            await write_frame(writer, {"id": header["id"], "status": status, "headers": headers}, out)

    async def read_requests() -> None:
        while (frame := await read_frame(reader)) is not None:
            task = asyncio.create_task(answer(*frame))
            tasks.add(task)
            task.add_done_callback(tasks.discard)

    reading = asyncio.create_task(read_requests())
    stopping = asyncio.create_task(stop.wait())
    await asyncio.wait({reading, stopping}, return_when=asyncio.FIRST_COMPLETED)
    reading.cancel()
    stopping.cancel()
    if tasks:  # answer what was already taken
        await asyncio.wait(tasks, timeout=30)
    writer.close()
    await lifespan.shutdown()


async def _call(app: Any, header: dict[str, Any], body: bytes) -> tuple[int, list[list[str]], bytes]:
    """Run one forwarded request through the app: (status, headers, body)."""
    scope = {
        "type": "http",
        "asgi": {"version": "3.0", "spec_version": "2.3"},
        "http_version": "1.1",
        "method": header["method"],
        "scheme": "http",
        "path": header["path"],
        "raw_path": header["raw_path"].encode("latin-1"),
        "query_string": header["query"].encode("latin-1"),
        "root_path": "",
        "headers": decode_headers(header["headers"]),
        "client": tuple(header["client"]) if header.get("client") else None,
        "server": None,
    }
    done = asyncio.Event()
    sent_body = False
    status, headers, chunks = 500, [], []

    async def receive() -> dict[str, Any]:
        nonlocal sent_body
        if not sent_body:
            sent_body = True
            return {"type": "http.request", "body": body, "more_body": False}
        await done.wait()
        return {"type": "http.disconnect"}

    async def send(message: dict[str, Any]) -> None:
        nonlocal status, headers
        if message["type"] == "http.response.start":
            status, headers = int(message["status"]), encode_headers(list(message.get("headers", [])))
        elif message["type"] == "http.response.body":
            chunks.append(message.get("body", b""))

    try:
        await app(scope, receive, send)
    except Exception:
        # The app's error handler has logged the traceback and sent its 500 before re-raising (Starlette's
        # ServerErrorMiddleware): that answer goes back. Only if nothing was sent is this a failure of its own.
        if not chunks:
            log.exception("request failed in the worker before any response")
            payload = problem_bytes(problem(500, "internal server error", instance=scope.get("path")))
            return 500, [["content-type", PROBLEM_JSON], ["content-length", str(len(payload))]], payload
    finally:
        done.set()
    return status, headers, b"".join(chunks)


class _Lifespan:
    """Drives an ASGI app's lifespan (startup before the first request, shutdown after the last)."""

    def __init__(self, app: Any) -> None:
        self.app = app
        self.to_app: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self.from_app: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self.task: asyncio.Task[None] | None = None

    async def startup(self) -> None:
        scope = {"type": "lifespan", "asgi": {"version": "3.0", "spec_version": "2.0"}}
        self.task = asyncio.create_task(self.app(scope, self.to_app.get, self.from_app.put))
        await self.to_app.put({"type": "lifespan.startup"})
        message = await self.from_app.get()
        if message["type"] != "lifespan.startup.complete":
            raise RuntimeError(f"worker start-up failed: {message.get('message', message['type'])}")

    async def shutdown(self) -> None:
        await self.to_app.put({"type": "lifespan.shutdown"})
        await self.from_app.get()
        if self.task is not None:
            with contextlib.suppress(Exception):
                await self.task


class WorkerSync:
    """One worker's link to the others through the control directory (see the module docstring)."""

    def __init__(self, control_dir: Path, metrics: Metrics) -> None:
        self.control_dir = control_dir
        self.metrics = metrics
        self.pid = os.getpid()
        self._seen = 0  # the newest reload generation this worker has applied (or published)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._state: ServingHolder | None = None

    def start(self, state: ServingHolder) -> None:
        """Follow any reload published before this worker started, then sync in a background thread."""
        self._state = state
        self._follow()
        self._refresh_metrics()
        self._thread = threading.Thread(target=self._run, name="worker-sync", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self._refresh_metrics()

    def publish_reload(self, source: BundleSource | None, features: Path | None = None) -> None:
        """Tell the other workers to serve the bundle ``source`` (None: keep theirs) with the feature set
        ``features`` (a directory, a pointer already resolved; None: keep theirs), as this worker now does. A worker
        already serving one of them does not load it again."""
        generation = time.time_ns()
        self._seen = generation
        data = {
            "generation": generation,
            "source": source_to_json(source) if source is not None else None,
            "features": str(features) if features is not None else None,
        }
        _write_json(self.control_dir / RELOAD_FILE, data)
        log.info(
            "reload published to the other workers",
            extra={"source": str(source), "features": str(features), "generation": generation},
        )

    def _run(self) -> None:
        while not self._stop.wait(SYNC_INTERVAL_S):
            try:
                self._follow()
                self._refresh_metrics()
            except Exception:  # never let the sync thread die; the next tick tries again
                log.exception("worker sync failed")

    def _refresh_metrics(self) -> None:
        self.metrics.refresh()

    def _follow(self) -> None:
        data = _read_json(self.control_dir / RELOAD_FILE)
        if data is None or int(data["generation"]) <= self._seen or self._state is None:
            return
        self._seen = int(data["generation"])
        source = source_from_json(data["source"]) if data.get("source") else None
        features = Path(data["features"]) if data.get("features") else None
        serving = self._state.state
        if serving is not None:
            # The same source is not loaded again, unless it is a registry alias: what it names moves (a reload
            # after 'promote' publishes the same models:/name@champion this worker started with).
            if source is not None and serving.model is not None and source == serving.bundle_source:
                source = source if is_alias(source) else None
            if features is not None and features == serving.features.path:
                features = None
        if source is None and features is None:
            return
        try:
            new = self._state.reload(source, features, keep_bundle=source is None).state
        except Exception:  # logged and kept for /readyz by the holder; the old state keeps serving
            return
        if new.model is not None:
            self.metrics.set_model(new.model.bundle.bundle_id, new.model.source, new.fs.feature_set_id)


def _write_json(path: Path, data: dict[str, Any]) -> None:
    write_bytes_atomic(path, json.dumps(data).encode("utf-8"))  # other workers read it while it is replaced


def _read_json(path: Path) -> dict[str, Any] | None:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None
