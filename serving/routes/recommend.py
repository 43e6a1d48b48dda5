"""``POST /v1/recommendations`` and ``POST /v1/score``.

Every recommendation gets a ``recommendation_id`` (uuid4, hex) and each creator its ``propensity`` and ``explored``
(``audiencefit.models.explore``); what was shown is handed to the recommendation log (``audiencefit.models.reclog``)
without waiting.

The routes are ``async def`` and run their CPU-bound part through ``ComputeDep``
(``audiencefit.serving.deps.get_compute``): in the thread pool, so embedding and scoring never block an event loop that
has other requests to take, or inline in a worker process that the front gives one request at a time. ``/v1/score`` with
unknown creator ids is a 404 whose detail lists every unknown id (nothing is scored).
"""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Body, Response, status

from audiencefit.serving import examples
from audiencefit.serving.deps import ComputeDep, ModelDep, StateDep
from audiencefit.serving.openapi import error_responses, example_response
from audiencefit.serving.pipeline import (
    reading_out,
    recommend,
    response_reliability,
    score_ids,
    shown_record,
    unknown_ids,
    versions,
)
from audiencefit.serving.problems import ProblemError
from audiencefit.serving.schemas import (
    RANKED_BY,
    RecommendationRequest,
    RecommendationResponse,
    ScoreRequest,
    ScoreResponse,
)
from audiencefit.serving.security import ApiKey
from audiencefit.serving.state import AppState, ServingModel

router = APIRouter(
    prefix="/v1",
    tags=["recommendations"],
    dependencies=[ApiKey],
    responses=error_responses(401, 403, 413, 415, 422, 503),
)
Recommendation = Annotated[
    RecommendationRequest,
    Body(openapi_examples={"runners": {"summary": "A running-shoe brand", "value": examples.RECOMMENDATION_REQUEST}}),
]
Scoring = Annotated[
    ScoreRequest,
    Body(openapi_examples={"one creator": {"summary": "Score one creator", "value": examples.SCORE_REQUEST}}),
]


def recommendation_json(state: AppState, model: ServingModel, req: RecommendationRequest) -> str:
    """The response body of ``POST /v1/recommendations``, serialised; what it shows goes to the recommendation log
    (queued: the answer never waits for the log, and a failing log never fails it)."""
    result = recommend(state, model, req)
    recommendation_id = uuid.uuid4().hex
    body = RecommendationResponse(
        recommendation_id=recommendation_id,
        objective=req.objective,
        ranked_by=RANKED_BY[req.objective],
        count=len(result.creators),
        creators=result.creators,
        empty_reason=result.empty_reason,
        versions=versions(state, model),
        forecast_reliability=response_reliability(model.reliability, result.rows),
        brief_reading=result.reading,
    )
    state.log_shown(lambda: shown_record(state, model, req, result, recommendation_id))
    # Serialised here, from the validated model: FastAPI would dump it, validate the dump again and serialise that
    # (about 0.4 ms for k=20, on the hottest route). The declared response_model still documents the schema.
    return body.model_dump_json()


@router.post(
    "/recommendations",
    response_model=RecommendationResponse,
    responses=example_response(examples.RECOMMENDATION.model_dump(mode="json")),
)
async def recommendations(req: Recommendation, state: StateDep, model: ModelDep, compute: ComputeDep) -> Response:
    """Creators whose audience fits the brand, ranked by the objective, with predictions and reasons."""
    return Response(await compute(recommendation_json, state, model, req), media_type="application/json")


def score_json(state: AppState, model: ServingModel, req: ScoreRequest) -> str:
    """The response body of ``POST /v1/score`` for known creator ids, serialised (as the recommendations' body,
    so that validating and serialising up to 500 creators happens where the scoring does, not on the event loop)."""
    creators = score_ids(state, model, req, req.creator_ids)
    rows = [state.search.row(cid) for cid in req.creator_ids]
    return ScoreResponse(
        count=len(creators),
        creators=creators,
        versions=versions(state, model),
        forecast_reliability=response_reliability(model.reliability, rows),
        brief_reading=reading_out(req),
    ).model_dump_json()


@router.post(
    "/score",
    response_model=ScoreResponse,
    responses={**example_response(examples.SCORE.model_dump(mode="json")), **error_responses(404)},
)
async def score(req: Scoring, state: StateDep, model: ModelDep, compute: ComputeDep) -> Response:
    """Predictions and reasons for the given creators, in the order given."""
    missing = unknown_ids(state, req.creator_ids)
    if missing:
        raise ProblemError(
            status.HTTP_404_NOT_FOUND,
            f"{len(missing)} unknown creator id(s): nothing was scored",
            kind="unknown-creator",
            unknown_ids=missing,
        )
    return Response(await compute(score_json, state, model, req), media_type="application/json")
