"""``audiencefit serve``: run the recommendation API with uvicorn.

Threads and workers on the 2-core machine this targets:

- One uvicorn worker (one process). Every worker would hold its own copy of the feature set, the indexes and the
  embedding model, and the CPU-bound work already uses both cores.
- Routes that embed or score are sync ``def``; FastAPI runs them in the anyio thread pool, capped at
  ``--threads`` (default 4) so a burst queues instead of oversubscribing the cores. numpy/faiss/torch release the
  GIL in their kernels, so a few threads overlap usefully; many threads only add contention.
- Native thread pools are capped per process: ``OMP_NUM_THREADS``, ``MKL_NUM_THREADS``, ``OPENBLAS_NUM_THREADS``
  and ``POLARS_MAX_THREADS`` default to 1 here (set before numpy, faiss, LightGBM and polars load): with several
  request threads each doing its own small matrix work, one native thread per request thread avoids 4×2 threads
  fighting over 2 cores (and polars' pool spinning up for frames of a few hundred rows). Raise them
  (environment) for a single heavy client. torch is never imported by the service with the ONNX backends.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated

import typer

from audiencefit.cli._app import DEFAULT_MODEL_URI, app, model_source
from features.errors import InputError

SINGLE_THREAD_ENV = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS", "POLARS_MAX_THREADS")


@app.command("serve")
def serve(
    features: Annotated[Path, typer.Option("--features", help="Feature set directory (with its index/).")],
    host: Annotated[str, typer.Option("--host", help="Interface to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option("--port", min=1, max=65535, help="TCP port to listen on.")] = 8000,
    bundle: Annotated[
        Path | None, typer.Option("--bundle", help="Model bundle directory (instead of the registry).")
    ] = None,
    model_uri: Annotated[
        str | None,
        typer.Option("--model-uri", help=f"Registered model to serve (default {DEFAULT_MODEL_URI} without --bundle)."),
    ] = None,
    data: Annotated[
        Path | None,
        typer.Option("--data", help="Raw data directory; enables caption quotes in explanations."),
    ] = None,
    index_dir: Annotated[
        Path | None, typer.Option("--index-dir", help="Index directory. Default: <features>/index.")
    ] = None,
    threads: Annotated[
        int, typer.Option("--threads", min=1, max=64, help="Thread pool size for request handling.")
    ] = 4,
) -> None:
    """Serve the recommendation API (refuses to start without an API key configured)."""
    from audiencefit.settings import get_settings

    settings = get_settings()
    if not settings.api_keys:
        raise InputError(
            "no API key configured: set AUDIENCEFIT_API_KEYS (comma-separated) before starting the server; "
            "every /v1 request must send one in the X-API-Key header"
        )
    source = model_source(bundle, model_uri, model_flag="--model-uri", default=DEFAULT_MODEL_URI)
    if not features.is_dir():
        raise InputError(f"--features {features}: not a directory")
    for var in SINGLE_THREAD_ENV:
        os.environ.setdefault(var, "1")

    import uvicorn

    from serving.app import create_app

    api = create_app(
        settings,
        features_dir=features,
        bundle_source=source,
        index_dir=index_dir,
        data_dir=data,
        threads=threads,
    )
    uvicorn.run(api, host=host, port=port, workers=1, log_config=None, proxy_headers=False)
