"""Injected dependencies: the loaded state and the serving model, as ``Annotated`` aliases for routes.

All ``async def``: they only read attributes, and FastAPI would run a sync dependency in its thread pool (one
thread hop per dependency per request)."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, HTTPException, Request, status

from serving.metrics import Metrics
from serving.state import AppState, ServingModel
from serving.workers import WorkerSync


async def get_state(request: Request) -> AppState:
    """The state loaded in the lifespan (503 while it is not loaded)."""
    state: AppState | None = getattr(request.app.state, "serving", None)
    if state is None:
        raise HTTPException(status.HTTP_503_SERVICE_UNAVAILABLE, "the service is starting; try again shortly")
    return state


StateDep = Annotated[AppState, Depends(get_state)]


async def get_model(state: StateDep) -> ServingModel:
    """The model serving right now, read once per request (a reload mid-request does not affect it)."""
    model = state.models.current
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
