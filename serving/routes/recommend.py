"""``POST /v1/recommendations`` and ``POST /v1/score``.

Routes are sync ``def``: FastAPI runs them in its thread pool, so embedding and scoring never block the event loop.
``/v1/score`` with unknown creator ids is a 404 whose detail lists every unknown id (nothing is scored).
"""

from __future__ import annotations

from fastapi import APIRouter, HTTPException, Response, status

from serving.deps import ModelDep, StateDep
from serving.pipeline import recommend, score_ids, unknown_ids, versions
from serving.schemas import RecommendationRequest, RecommendationResponse, ScoreRequest, ScoreResponse
from serving.security import ApiKey

router = APIRouter(prefix="/v1", tags=["recommendations"], dependencies=[ApiKey])


@router.post("/recommendations", response_model=RecommendationResponse)
def recommendations(req: RecommendationRequest, state: StateDep, model: ModelDep) -> Response:
    """Creators whose audience fits the brand, ranked by the objective, with predictions and reasons."""
    result = recommend(state, model, req)
    body = RecommendationResponse(
        objective=req.objective,
        count=len(result.creators),
        creators=result.creators,
        empty_reason=result.empty_reason,
        versions=versions(state, model),
    )
    # Serialised here, from the validated model: FastAPI would dump it, validate the dump again and serialise that
    # (about 0.4 ms for k=20, on the hottest route). The declared response_model still documents the schema.
    return Response(body.model_dump_json(), media_type="application/json")


@router.post(
    "/score",
    response_model=ScoreResponse,
    responses={404: {"description": "Unknown creator ids; the detail lists them all."}},
)
def score(req: ScoreRequest, state: StateDep, model: ModelDep) -> ScoreResponse:
    """Predictions and reasons for the given creators, in the order given."""
    missing = unknown_ids(state, req.creator_ids)
    if missing:
        raise HTTPException(
            status.HTTP_404_NOT_FOUND, {"message": f"{len(missing)} unknown creator id(s)", "unknown_ids": missing}
        )
    creators = score_ids(state, model, req, req.creator_ids)
    return ScoreResponse(count=len(creators), creators=creators, versions=versions(state, model))
