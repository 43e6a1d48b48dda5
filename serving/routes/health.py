"""``/healthz``, ``/readyz``, ``/metrics`` (no key: probes and scrapers) and ``GET /v1/model`` (API key).

The keyless three reveal no admin input, error text, path or exception message: ``/healthz`` says the process
answers, ``/readyz`` which part is loaded, the bundle and feature set ids and whether the last reload failed (and
when), ``/metrics`` request counts and latencies by route template, reload outcomes, the bundle serving (ids,
not its source) and the standard process and GC metrics of each process. All take ``GET`` only (405 with
``Allow`` otherwise, ``audiencefit.serving.gate``)."""

from __future__ import annotations

import os
from typing import Any

from fastapi import APIRouter, Request, Response, status
from fastapi.responses import JSONResponse, PlainTextResponse

from audiencefit.serving import examples
from audiencefit.serving.deps import MetricsDep, ModelDep, StateDep
from audiencefit.serving.metrics import CONTENT_TYPE
from audiencefit.serving.openapi import error_responses, example_response
from audiencefit.serving.schemas import ForecastReliabilityReport, Health, ModelInfo, Readiness
from audiencefit.serving.security import ApiKey
from audiencefit.serving.state import ServingHolder

router = APIRouter(tags=["operations"])
model_router = APIRouter(
    prefix="/v1", tags=["operations"], dependencies=[ApiKey], responses=error_responses(401, 403, 503)
)


@router.get("/healthz", response_model=Health, responses=example_response(examples.HEALTH.model_dump(mode="json")))
def healthz() -> Health:
    """Liveness: the process answers."""
    return Health(status="ok")


@router.get(
    "/readyz",
    response_model=Readiness,
    responses={
        **example_response(examples.READY.model_dump(mode="json")),
        503: {"model": Readiness, "description": "Not ready: the same fields say which part is missing."},
    },
)
def readyz(request: Request) -> Response:
    """Readiness: features, indexes and a model are loaded (503 otherwise); the ids serving; whether the last
    reload failed."""
    holder: ServingHolder | None = getattr(request.app.state, "serving", None)
    state = holder.state if holder is not None else None  # one read: the ids below belong together
    model = state.model if state else None
    body = Readiness(
        ready=state is not None and model is not None,
        features=state is not None,
        index=state is not None and state.search.audience.n == state.fs.creators.height,
        model=model is not None,
        bundle_id=model.bundle.bundle_id if model else None,
        feature_set_id=state.fs.feature_set_id if state else None,
        last_reload_failed=holder is not None and holder.last_error is not None,
        last_reload_at=holder.last_reload_at if holder else None,
        worker_pid=os.getpid(),
        forecast_reliability=model.reliability.level if model else None,
    )
    code = status.HTTP_200_OK if body.ready and body.index else status.HTTP_503_SERVICE_UNAVAILABLE
    return JSONResponse(body.model_dump(), status_code=code)


@router.get(
    "/metrics",
    response_class=PlainTextResponse,
    responses={
        200: {"description": "Prometheus text exposition.", "content": {"text/plain": {"example": examples.METRICS}}}
    },
)
def metrics(m: MetricsDep) -> Response:
    """Prometheus metrics: request counts, latency histograms, the model serving, process and GC metrics (every
    worker process of the service)."""
    return Response(m.render(), media_type=CONTENT_TYPE)


@model_router.get(
    "/model", response_model=ModelInfo, responses=example_response(examples.MODEL.model_dump(mode="json"))
)
def model_info(state: StateDep, model: ModelDep) -> ModelInfo:
    """The model bundle and feature set serving, the bundle's source, versions and evaluation summary."""
    meta: dict[str, Any] = model.bundle.meta
    return ModelInfo(
        bundle_id=model.bundle.bundle_id,
        model_source=model.source,
        loaded_at=model.loaded_at,
        created_at=meta.get("created_at"),
        feature_set_id=state.fs.feature_set_id,
        feature_set_loaded_at=state.features.loaded_at,
        feature_version=model.bundle.feature_version,
        embedder_id=model.bundle.embedder_id,
        training=dict(meta.get("training", {})),
        evaluation=list(meta.get("evaluation", [])),
        beats_baselines=dict(meta.get("beats_baselines", {})),
        recommendation_log=(
            {"backend": state.reclog.backend, **state.reclog.counts()} if state.reclog is not None else None
        ),
        forecast_reliability=ForecastReliabilityReport.model_validate(model.reliability.to_json()),
    )
