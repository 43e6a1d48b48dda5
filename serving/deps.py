"""Injected dependencies: the loaded state, the serving model and how to run CPU-bound work, as ``Annotated``
aliases for routes.

All ``async def``: they only read attributes, and FastAPI would run a sync dependency in its thread pool (one
thread hop per dependency per request)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Annotated, ParamSpec, Protocol, TypeVar

from fastapi import Depends, HTTPException, Request, status
from starlette.concurrency import run_in_threadpool

from audiencefit.serving.metrics import Metrics
from audiencefit.serving.state import AppState, ServingHolder, ServingModel
from audiencefit.serving.workers import WorkerSync


async def get_holder(request: Request) -> ServingHolder:
    """What keeps the serving state and reloads it (503 while the lifespan has not loaded it)."""
    holder: ServingHolder | None = getattr(request.app.state, "serving", None)
    if holder is None or holder.state is None:
        raise HTTPException(status.HTTP_503_SERVICE_UNAVAILABLE, "the service is starting; try again shortly")
    return holder


HolderDep = Annotated[ServingHolder, Depends(get_holder)]


async def get_state(holder: HolderDep) -> AppState:
    """The serving state (feature set, indexes, captions, model), read once per request: every dependency and the
    route get this same object (FastAPI caches a dependency within a request), so a reload mid-request does not
    affect it."""
    state = holder.state
    assert state is not None  # get_holder answered 503 otherwise
    return state


StateDep = Annotated[AppState, Depends(get_state)]


async def get_model(state: StateDep) -> ServingModel:
    """The model of the request's state (a reload mid-request does not affect it)."""
    model = state.model
    if model is None:
        raise HTTPException(status.HTTP_503_SERVICE_UNAVAILABLE, "no model bundle is loaded; see /readyz")
    return model


ModelDep = Annotated[ServingModel, Depends(get_model)]


async def get_metrics(request: Request) -> Metrics:
    metrics: Metrics = request.app.state.metrics
    return metrics


MetricsDep = Annotated[Metrics, Depends(get_metrics)]


async def get_sync(request: Request) -> WorkerSync | None:
    """The link to the other worker processes (None when the service runs as one process)."""
    sync: WorkerSync | None = getattr(request.app.state, "sync", None)
    return sync


SyncDep = Annotated[WorkerSync | None, Depends(get_sync)]


P = ParamSpec("P")
T = TypeVar("T")


class Compute(Protocol):
    """Runs a route's CPU-bound call: ``await compute(fn, *args)``."""

    def __call__(self, fn: Callable[P, T], /, *args: P.args, **kwargs: P.kwargs) -> Awaitable[T]: ...


async def _in_thread(fn: Callable[P, T], /, *args: P.args, **kwargs: P.kwargs) -> T:
    return await run_in_threadpool(fn, *args, **kwargs)


async def _on_loop(fn: Callable[P, T], /, *args: P.args, **kwargs: P.kwargs) -> T:
    return fn(*args, **kwargs)


async def get_compute(request: Request) -> Compute:
    """How the hot routes run their CPU-bound part.

    In the thread pool, so that the event loop keeps taking requests while one computes (one process, or a worker
    given several requests at a time). On the event loop itself when this process is a worker that the front gives
    one request at a time (``create_app(compute_inline=True)``): nothing else is waiting on its loop then (the
    next request comes only once this one is answered), and skipping the thread hop and the GIL hand-overs between
    the loop thread and a pool thread saves CPU and latency (measured at 100 req/s on the 100k world: 0.2–0.6 ms of
    server CPU and 1–3 ms of median latency per request, docs/benchmarks.md).
    """
    inline = getattr(request.app.state, "compute_inline", False)
    return _on_loop if inline else _in_thread


ComputeDep = Annotated[Compute, Depends(get_compute)]
