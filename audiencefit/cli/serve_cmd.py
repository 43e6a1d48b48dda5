"""``audiencefit serve``: run the recommendation API with uvicorn.

Threads and workers on the 2-core machine this targets:

- ``--workers`` processes (default 2 = the cores here). A request is CPU-bound and largely Python, so one
  process keeps only about 1.4 of 2 cores busy (the GIL); two use both. A front process takes the HTTP
  connections and hands each request to the worker with the fewest in flight (``audiencefit.serving.dispatch``:
  connections stay open, so sharing the socket between workers would split the load by connection, not by request). Each
  worker holds its own copy of the feature set, indexes and embedding model, and they stay one service through
  a shared control directory: ``/metrics`` reads every process's metrics (``prometheus_client``'s multiprocess
  mode, in a directory of that run) and a reload on one is followed by all (``audiencefit.serving.workers``). The front
  gives a worker ``--in-flight`` requests at a time (default 1) and keeps the others in one first-come-first-served
  line, so a request goes to the first worker that frees up. Tree models
  are compiled once, before the workers start. ``--workers 1`` runs the app in one process, with no front.
- Routes that embed or score run that work in the anyio thread pool, capped at ``--threads`` (default 4) so a
  burst queues instead of oversubscribing the cores, and the event loop keeps taking requests meanwhile. numpy/
  faiss/torch release the GIL in their kernels, so a few threads overlap usefully; many threads only add
  contention. A worker given one request at a time (``--in-flight 1``, the default) runs ``/v1/recommendations``
  and ``/v1/score`` on its own event loop instead: nothing else waits on that loop (the front's loop takes the
  connections), and the thread hop would only add CPU and latency (``audiencefit.serving.deps.get_compute``).
- Native thread pools are capped per process: ``OMP_NUM_THREADS``, ``MKL_NUM_THREADS``, ``OPENBLAS_NUM_THREADS``
  and ``POLARS_MAX_THREADS`` default to 1 here (set before numpy, faiss, LightGBM and polars load): with several
  request threads each doing its own small matrix work, one native thread per request thread avoids 4×2 threads
  fighting over 2 cores (and polars' pool spinning up for frames of a few hundred rows). Raise them
  (environment) for a single heavy client. torch is never imported by the service with the ONNX backends. With
  several workers the query embedder (onnxruntime) also gets one thread per worker (``AUDIENCEFIT_EMBED_THREADS``
  defaults to 1 there): 6.7 instead of 7.4 ms of CPU per new query text.
- The front (or the single process) and every worker run on uvloop, and uvicorn parses HTTP with httptools:
  with asyncio's loop and the pure-Python h11 parser the same requests cost 0.5–0.9 ms more CPU each.
- How requests arrive (the front, or the single process): a request's head must arrive within
  ``AUDIENCEFIT_HTTP_HEADER_TIMEOUT_S`` and fit in ``AUDIENCEFIT_HTTP_MAX_HEADER_BYTES``
  (``audiencefit.serving.protocol``), at most ``AUDIENCEFIT_HTTP_MAX_CONNECTIONS`` are taken at once; the key, route and
  method are checked before the body is read (``audiencefit.serving.gate``), and the body must arrive whole within
  ``AUDIENCEFIT_HTTP_BODY_TIMEOUT_S`` (``audiencefit.serving.limits``): a cut-off body is dropped, never computed.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import signal
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from audiencefit.children import pid_alive
from audiencefit.cli._app import BundleOpt, ModelOpt, ModelUriOpt, app, model_source
from audiencefit.features.errors import InputError
from audiencefit.logs import JsonFormatter
from audiencefit.serving.dispatch import DEFAULT_IN_FLIGHT

if TYPE_CHECKING:
    from audiencefit.settings import Settings

log = logging.getLogger(__name__)

DEFAULT_WORKERS = 2  # the cores of the machine this targets (see the module docstring)
# uvloop and httptools (C event loop and HTTP parser), named rather than left to uvicorn's "auto", so that a
# missing one fails the start instead of quietly costing 0.5–0.9 ms of CPU per request (docs/benchmarks.md).
UVICORN_FAST: dict[str, Any] = {"loop": "uvloop", "http": "httptools"}
SINGLE_THREAD_ENV = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS", "POLARS_MAX_THREADS")


@app.command("serve")
def serve(
    features: Annotated[Path, typer.Option("--features", help="Feature set directory (with its index/).")],
    host: Annotated[str, typer.Option("--host", help="Interface to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option("--port", min=1, max=65535, help="TCP port to listen on.")] = 8000,
    bundle: BundleOpt = None,
    model: ModelOpt = None,
    model_uri: ModelUriOpt = None,
    data: Annotated[
        Path | None,
        typer.Option(
            "--data",
            help="Raw data directory to quote captions from in explanations. Default: the recent captions the "
            "feature set keeps (feature sets built before it kept them have none).",
        ),
    ] = None,
    index_dir: Annotated[
        Path | None, typer.Option("--index-dir", help="Index directory. Default: <features>/index.")
    ] = None,
    threads: Annotated[
        int, typer.Option("--threads", min=1, max=64, help="Thread pool size for request handling, per worker.")
    ] = 4,
    workers: Annotated[
        int,
        typer.Option(
            "--workers", min=1, max=16, help="Worker processes (each loads its own copy of features, index, models)."
        ),
    ] = DEFAULT_WORKERS,
    in_flight: Annotated[
        int,
        typer.Option(
            "--in-flight",
            min=1,
            max=64,
            help="Requests the front gives one worker at a time (with --workers > 1); the others wait in the "
            "front, first come first served.",
        ),
    ] = DEFAULT_IN_FLIGHT,
) -> None:
    """Serve the recommendation API (refuses to start without an API key configured)."""
    from audiencefit.settings import get_settings

    settings = get_settings()
    if not settings.api_keys:
        raise InputError(
            "no API key configured: set AUDIENCEFIT_API_KEYS (comma-separated) before starting the server; "
            "every /v1 request must send one in the X-API-Key header"
        )
    source = model_source(bundle, model, model_uri)
    if not features.is_dir():
        raise InputError(f"--features {features}: not a directory")
    for var in SINGLE_THREAD_ENV:
        os.environ.setdefault(var, "1")

    import uvicorn

    if workers == 1:
        from audiencefit.serving.app import create_app
        from audiencefit.serving.metrics import MULTIPROCESS_ENV

        if os.environ.pop(MULTIPROCESS_ENV, None) is not None:  # one process: its own registry, nothing shared
            log.info("one process: %s is not used", MULTIPROCESS_ENV)

        api = create_app(
            settings,
            features_dir=features,
            bundle_source=source,
            index_dir=index_dir,
            data_dir=data,
            threads=threads,
            exit_on_load_error=True,
        )
        uvicorn.run(api, host=host, port=port, **_uvicorn_options(settings))
        return
    from audiencefit.serving.dispatch import front_app
    from audiencefit.serving.workers import source_to_json

    _compile_before_workers(source, settings)
    # One onnxruntime thread per worker, as for the native pools above: the workers already use every core.
    os.environ.setdefault("AUDIENCEFIT_EMBED_THREADS", "1")
    control_dir = make_control_dir()
    from audiencefit.serving.metrics import use_multiprocess_dir

    # prometheus_client's multiprocess files of this run (the front's and every worker's): removed with the control
    # directory when the service stops; the workers find it in the environment they inherit.
    metrics_dir = control_dir / METRICS_DIR
    metrics_dir.mkdir()
    use_multiprocess_dir(metrics_dir)
    root = logging.getLogger()
    options = {
        "features_dir": str(features),
        "bundle_source": source_to_json(source),
        "index_dir": str(index_dir) if index_dir else None,
        "data_dir": str(data) if data else None,
        "threads": threads,
        "control_dir": str(control_dir),
        "parent_pid": os.getpid(),  # the workers end with this process, even if it is SIGKILLed
        "log_level": logging.getLevelName(root.level),
        "log_format": "json" if any(isinstance(h.formatter, JsonFormatter) for h in root.handlers) else "console",
    }
    try:
        front = front_app(workers, control_dir, options, settings, in_flight=in_flight)
        with exit_on_stop_signals():
            uvicorn.run(front, host=host, port=port, **_uvicorn_options(settings))
    finally:
        shutil.rmtree(control_dir, ignore_errors=True)


CONTROL_PREFIX = "audiencefit-serve-"
METRICS_DIR = "metrics"
MAX_SOCKET_PATH = 100  # AF_UNIX socket paths are limited to 107 bytes on Linux (103 on macOS)


def make_control_dir() -> Path:
    """A new private control directory (``<tmp>/audiencefit-serve-<pid>-<random>``), after removing those of
    earlier runs that were killed (SIGKILL gives no chance to clean up): theirs name a process that is gone."""
    root = Path(tempfile.gettempdir())
    if len(f"{root}/{CONTROL_PREFIX}{os.getpid()}-xxxxxxxx/front.sock") > MAX_SOCKET_PATH and Path("/tmp").is_dir():
        root = Path("/tmp")  # the front's Unix socket lives there: a long TMPDIR would fail the start
    for stale in root.glob(f"{CONTROL_PREFIX}*"):
        parts = stale.name[len(CONTROL_PREFIX) :].split("-", 1)
        try:
            mine = stale.is_dir() and not stale.is_symlink() and stale.stat().st_uid == os.getuid()
        except OSError:
            continue
        if mine and len(parts) == 2 and parts[0].isdigit() and not pid_alive(int(parts[0])):
            shutil.rmtree(stale, ignore_errors=True)
    return Path(tempfile.mkdtemp(prefix=f"{CONTROL_PREFIX}{os.getpid()}-", dir=root))


@contextlib.contextmanager
def exit_on_stop_signals() -> Iterator[None]:
    """SIGTERM and SIGINT end the process through ``SystemExit`` (so ``finally`` blocks run) once uvicorn has shut
    down: uvicorn re-raises the signal it caught after its graceful shutdown, and with the default handler in
    place SIGTERM would end the process there, before the control directory is removed."""

    def stop(signum: int, frame: object) -> None:
        raise SystemExit(128 + signum)

    previous = {sig: signal.signal(sig, stop) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def _uvicorn_options(settings: Settings) -> dict[str, Any]:
    """How uvicorn takes connections, for the front or the single process: httptools with a deadline and a size cap
    on each request's head (``audiencefit.serving.protocol``; uvicorn has neither), at most ``http_max_connections`` at
    once (503 above). The body's size and time limits, and the key check before it, are the app's
    (``audiencefit.serving.gate``, ``audiencefit.serving.limits``)."""
    from audiencefit.serving.protocol import guarded_protocol

    return {
        "workers": 1,
        "log_config": None,
        "proxy_headers": False,
        **UVICORN_FAST,
        "http": guarded_protocol(settings.http_header_timeout_s, settings.http_max_header_bytes),
        "limit_concurrency": settings.http_max_connections,
        "ws": "none",  # no route takes a WebSocket: an upgrade request is an HTTP request like any other
        "server_header": False,  # no "server: uvicorn": nothing about the software to anyone without a key
    }


def _compile_before_workers(source: Path | str, settings: Settings) -> None:
    """Download a registry model into the registry cache and compile the bundle's tree models into the shared
    cache once, so the workers find both there instead of each downloading and compiling the same model at the
    same time. Any failure is left to the workers (they log it and serve, or exit as a single process would)."""
    if not settings.compiled_trees and not isinstance(source, str):  # a directory, nothing to compile: load nothing
        return
    from audiencefit.models.bundle import load_bundle
    from audiencefit.serving.state import compile_trees, resolve_source

    try:
        path = resolve_source(source, settings)  # a models:/ URI: downloaded from the tracking server once, here
        if settings.compiled_trees:
            compile_trees(load_bundle(path), settings)
    except Exception as exc:
        log.warning("could not prepare the model before starting the workers", extra={"error": str(exc)})
