"""``POST /admin/reload``: load a new model bundle beside the serving one and swap it in (admin key)."""

from __future__ import annotations

import logging
from pathlib import Path

from fastapi import APIRouter, Body, Response, status
from fastapi.responses import JSONResponse

from serving.deps import MetricsDep, StateDep, SyncDep
from serving.schemas import ReloadRequest, ReloadResponse
from serving.security import AdminKey
from serving.state import BundleSource

router = APIRouter(prefix="/admin", tags=["admin"], dependencies=[AdminKey])
log = logging.getLogger(__name__)


@router.post("/reload", response_model=ReloadResponse, responses={409: {"model": ReloadResponse}})
def reload(
    state: StateDep,
    metrics: MetricsDep,
    sync: SyncDep,
    req: ReloadRequest | None = Body(None),  # noqa: B008
) -> Response:
    """Load, verify and swap in a bundle (path, registry URI, or the configured source); 409 keeps the old one.
    With several worker processes the others follow within a second."""
    req = req or ReloadRequest()
    source: BundleSource | None = Path(req.bundle_path) if req.bundle_path else req.model_uri
    serving = state.models.current
    try:
        previous, new = state.models.reload(source)
    except Exception:
        metrics.observe_reload("failed")
        body = ReloadResponse(
            ok=False,
            serving_bundle_id=serving.bundle.bundle_id if serving else None,
            previous_bundle_id=serving.bundle.bundle_id if serving else None,
            error=state.models.last_error,
        )
        return JSONResponse(body.model_dump(), status_code=status.HTTP_409_CONFLICT)
    metrics.observe_reload("ok")
    metrics.set_model(new.bundle.bundle_id, new.source, state.fs.feature_set_id)
    if sync is not None:
        sync.publish_reload(source if source is not None else state.models.default_source)
    body = ReloadResponse(
        ok=True,
        serving_bundle_id=new.bundle.bundle_id,
        previous_bundle_id=previous.bundle.bundle_id if previous else None,
    )
    return JSONResponse(body.model_dump())
