"""``POST /admin/reload``: load a new model bundle beside the serving one and swap it in (admin key)."""

from __future__ import annotations

import logging
from pathlib import Path

from fastapi import APIRouter, Body, HTTPException, Response, status
from fastapi.responses import JSONResponse

from features.errors import InputError
from serving.deps import MetricsDep, StateDep, SyncDep
from serving.schemas import RELOAD_SOURCES, ReloadRequest, ReloadResponse
from serving.security import AdminKey
from serving.state import BundleSource, ReloadRefusedError

router = APIRouter(prefix="/admin", tags=["admin"], dependencies=[AdminKey])
log = logging.getLogger(__name__)

DESCRIPTION = f"""The body names {RELOAD_SOURCES}:

- `{{"bundle_path": "/abs/dir"}}`: a bundle directory, which must lie under a reload root (setting
  `AUDIENCEFIT_RELOAD_ROOTS`; default `<data_dir>/bundles`, `<data_dir>/registry-cache` and the directory of the
  bundle the service started with). Outside them: 403, the same answer whether the path exists or not.
- `{{"model_uri": "models:/audiencefit@champion"}}`: a registered model version (alias or number).
- `{{"source": "configured"}}`: the source the service was started with.

No body, `{{}}`, two sources or an unknown field: 422. The bundle is verified (every file listed in bundle.json with
its sha256, nothing outside its directory, the id recomputed from the content) and checked against the feature set
before it is swapped in; if anything fails, 409 and the previous bundle keeps serving. With several worker
processes the others load the same source, with the same checks, within a second."""


@router.post(
    "/reload",
    response_model=ReloadResponse,
    responses={
        403: {"description": "Wrong admin key, or a bundle_path outside the reload roots."},
        409: {"model": ReloadResponse},
    },
    description=DESCRIPTION,
    openapi_extra={"requestBody": {"required": True}},
)
def reload(
    state: StateDep,
    metrics: MetricsDep,
    sync: SyncDep,
    req: ReloadRequest | None = Body(None),  # noqa: B008  (None answered below with a 422 naming the choices)
) -> Response:
    """Load, verify and swap in a bundle (path, registry URI, or the configured source); 409 keeps the old one."""
    if req is None:
        raise InputError(f"a JSON body is required: {RELOAD_SOURCES}")
    source: BundleSource | None = Path(req.bundle_path) if req.bundle_path is not None else req.model_uri
    serving = state.models.current
    try:
        previous, new = state.models.reload(source)
    except ReloadRefusedError as exc:
        metrics.observe_reload("refused")
        raise HTTPException(status.HTTP_403_FORBIDDEN, str(exc)) from None
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
