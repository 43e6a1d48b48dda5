"""``POST /admin/reload``: load a new model bundle and/or feature set beside the serving ones and swap them in
(admin key)."""

from __future__ import annotations

import logging
from pathlib import Path

from fastapi import APIRouter, Body, Request, Response, status
from fastapi.responses import JSONResponse

from audiencefit.features.errors import InputError
from audiencefit.serving import examples
from audiencefit.serving.deps import HolderDep, MetricsDep, SyncDep
from audiencefit.serving.openapi import error_responses, example_response
from audiencefit.serving.problems import ProblemError, problem, problem_response
from audiencefit.serving.schemas import RELOAD_SOURCES, ReloadRequest, ReloadResponse
from audiencefit.serving.security import AdminKey
from audiencefit.serving.state import BundleSource, ReloadRefusedError

router = APIRouter(
    prefix="/admin", tags=["admin"], dependencies=[AdminKey], responses=error_responses(401, 403, 413, 415, 422, 503)
)
log = logging.getLogger(__name__)

DESCRIPTION = f"""The body names {RELOAD_SOURCES}.

A bundle:

- `{{"bundle_path": "/abs/dir"}}`: a bundle directory, which must lie under a reload root (setting
  `AUDIENCEFIT_RELOAD_ROOTS`; default `<data_dir>/bundles`, `<data_dir>/registry-cache` and the directory of the
  bundle the service started with). Outside them: 403, the same answer whether the path exists or not.
- `{{"model_uri": "models:/audiencefit@champion"}}`: a registered model version (alias or number).
- `{{"source": "configured"}}`: the source the service was started with.

A feature set (with the index stored in its `index/`):

- `{{"feature_set_path": "/abs/dir"}}`: a feature set directory, or a directory whose `CURRENT` file names one of
  its subdirectories (a pointer, replaced atomically by whoever publishes a new set). It must lie under a
  feature-set reload root (setting `AUDIENCEFIT_FEATURE_RELOAD_ROOTS`; default `<data_dir>/features` and the
  directory holding the feature set the service started with). Outside them: 403.
- `{{"feature_set": "configured"}}`: the feature set the service was started with, loaded again (a `CURRENT`
  pointer there is read again).

No body, `{{}}`, two bundle sources, two feature sets or an unknown field: 422. A bundle is verified (every file
listed in bundle.json with its sha256, nothing outside its directory, the id recomputed from the content); a
feature set is verified as at start-up (every file's checksum, the id recomputed) and its audience and content
indexes loaded (checksums, built from this very feature set). The model that will serve (the new bundle, or the
serving one when none is given) is then checked against the feature set that will serve (feature version,
embedder); only when everything passes are feature set, indexes, captions and model swapped in together, so a
request is answered wholly by the old ones or wholly by the new ones. If anything fails, 409 and the previous ones
keep serving. With several worker processes the others load the same bundle and feature set (a pointer as this
worker resolved it), with the same checks, within a second."""


@router.post(
    "/reload",
    response_model=ReloadResponse,
    responses={
        **example_response(examples.RELOAD.model_dump(mode="json")),
        **error_responses(409),
        403: {
            **error_responses(403)[403],
            "description": "Wrong admin key, or a bundle_path or feature_set_path outside the reload roots.",
        },
    },
    description=DESCRIPTION,
    openapi_extra={"requestBody": {"required": True}},
)
def reload(
    request: Request,
    holder: HolderDep,
    metrics: MetricsDep,
    sync: SyncDep,
    req: ReloadRequest | None = Body(  # noqa: B008  (None answered below with a 422 naming the choices)
        None, openapi_examples={"champion": {"summary": "The registry's champion", "value": examples.RELOAD_REQUEST}}
    ),
) -> Response:
    """Load, verify and swap in a bundle and/or a feature set with its index; 409 keeps the old ones serving."""
    if req is None:
        raise InputError(f"a JSON body is required: {RELOAD_SOURCES}")
    source: BundleSource | None = Path(req.bundle_path) if req.bundle_path is not None else req.model_uri
    features: Path | None = Path(req.feature_set_path) if req.feature_set_path is not None else None
    if req.feature_set == "configured":
        features = holder.default_features
    serving = holder.state
    try:
        done = holder.reload(source, features, keep_bundle=not req.has_bundle)
    except ReloadRefusedError as exc:
        metrics.observe_reload("refused")
        raise ProblemError(status.HTTP_403_FORBIDDEN, str(exc), kind="forbidden") from None
    except Exception:
        metrics.observe_reload("failed")
        bundle_id = serving.model.bundle.bundle_id if serving and serving.model else None
        feature_set_id = serving.fs.feature_set_id if serving else None
        failed = ReloadResponse(
            ok=False,
            serving_bundle_id=bundle_id,
            previous_bundle_id=bundle_id,
            serving_feature_set_id=feature_set_id,
            previous_feature_set_id=feature_set_id,
            error=holder.last_error,
        )
        detail = holder.last_error or "the reload failed"
        return problem_response(
            problem(409, detail, kind="reload-failed", instance=request.url.path, **failed.model_dump())
        )
    metrics.observe_reload("ok")
    new = done.state
    if new.model is not None:
        metrics.set_model(new.model.bundle.bundle_id, new.model.source, new.fs.feature_set_id)
    if sync is not None:  # what serves now, whole: a worker that starts later begins with both
        sync.publish_reload(new.bundle_source, new.features.path)
    body = ReloadResponse(
        ok=True,
        serving_bundle_id=new.model.bundle.bundle_id if new.model else None,
        previous_bundle_id=done.previous_bundle_id,
        serving_feature_set_id=new.fs.feature_set_id,
        previous_feature_set_id=done.previous_feature_set_id,
    )
    return JSONResponse(body.model_dump())
