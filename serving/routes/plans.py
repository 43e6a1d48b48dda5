"""``POST /v1/plans``: the best set of creators for a budget, aware of audience overlap
(``audiencefit.models.planner``).

Every plan gets a ``recommendation_id`` and is written to the recommendation log (``audiencefit.models.reclog``) like a
recommendation; its creators are chosen deterministically (propensity 1). Exploration on plans takes share 0 only
(a 422 otherwise): the probability that a creator is in a plan drawn from the forecast's uncertainty is not computed.

A constraint that cannot be met (budget below the cheapest eligible creator, contradictory creator counts, an
unknown or unreachable segment) is a 422 whose message starts with the constraint's name.
"""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Body

from audiencefit.models.planner import Constraints, Plan, plan_for_brand
from audiencefit.models.query import Segment, embed_segments
from audiencefit.models.reclog import Shown, ShownCreator
from audiencefit.serving import examples
from audiencefit.serving.deps import ModelDep, StateDep
from audiencefit.serving.openapi import error_responses, example_response
from audiencefit.serving.pipeline import (
    brand_terms,
    creator_reliability,
    now_iso,
    reading_out,
    response_reliability,
    segments_json,
    to_filters,
    to_segments,
    versions,
)
from audiencefit.serving.schemas import Band, PlannedCreator, PlanRequest, PlanResponse
from audiencefit.serving.security import ApiKey
from audiencefit.serving.state import AppState, ServingModel

router = APIRouter(
    prefix="/v1", tags=["plans"], dependencies=[ApiKey], responses=error_responses(401, 403, 413, 415, 422, 503)
)
Planning = Annotated[
    PlanRequest,
    Body(openapi_examples={"runners": {"summary": "A budget of 5,000 USD", "value": examples.PLAN_REQUEST}}),
]


def make_plan(state: AppState, model: ServingModel, req: PlanRequest) -> Plan:
    """Validate the request's segments and filters, then plan over the best-fitting eligible creators."""
    segments = to_segments(req)
    brand_vector = None
    if req.description and req.description.strip():
        vec = embed_segments([Segment(text=req.description)], state.search.embedder)[0]
        brand_vector = vec if vec.any() else None
    constraints = Constraints(
        budget=req.budget,
        min_creators=req.min_creators,
        max_creators=req.max_creators,
        min_segment_reach=dict(req.min_segment_reach),
    )
    return plan_for_brand(
        state.search,
        model.bundle.models,
        segments,
        to_filters(req.filters),
        constraints,
        req.objective,
        brand_vector=brand_vector,
        brand_terms=brand_terms(req),
    )


@router.post("/plans", response_model=PlanResponse, responses=example_response(examples.PLAN.model_dump(mode="json")))
def plans(req: Planning, state: StateDep, model: ModelDep) -> PlanResponse:
    """The set of creators that maximises expected conversions (or unique reach) within the budget."""
    plan = make_plan(state, model, req)
    recommendation_id = uuid.uuid4().hex
    profile = {
        r["creator_id"]: r
        for r in state.fs.creators.select("creator_id", "handle", "platform", "followers").iter_rows(named=True)
    }
    rows = [state.search.row(c.creator_id) for c in plan.creators]
    creators = [
        PlannedCreator(
            creator_id=c.creator_id,
            handle=profile[c.creator_id]["handle"],
            platform=profile[c.creator_id]["platform"],
            followers=profile[c.creator_id]["followers"],
            price=Band(expected=c.price, p10=c.price_p10, p90=c.price_p90),
            conversions=c.conversions,
            engagements=c.engagements,
            marginal_conversions=c.marginal_conversions,
            marginal_reach=c.marginal_reach,
            gain_per_cost=c.gain_per_cost,
            propensity=1.0,
            explored=False,
            forecast_reliability=creator_reliability(model.reliability, row),
        )
        for c, row in zip(plan.creators, rows, strict=True)
    ]
    state.log_shown(lambda: plan_record(state, model, req, plan, creators, recommendation_id))
    return PlanResponse(
        recommendation_id=recommendation_id,
        objective=plan.objective,
        count=len(creators),
        creators=creators,
        total_cost=Band(expected=plan.total_cost, p10=plan.total_cost_p10, p90=plan.total_cost_p90),
        budget=req.budget,
        conversions=Band(expected=plan.conversions, p10=plan.conversions_p10, p90=plan.conversions_p90),
        conversions_without_overlap=plan.conversions_without_overlap,
        engagements=Band(expected=plan.engagements, p10=plan.engagements_p10, p90=plan.engagements_p90),
        unique_reach=plan.unique_reach,
        segment_reach=plan.segment_reach,
        candidates=plan.candidates,
        versions=versions(state, model),
        forecast_reliability=response_reliability(model.reliability, rows),
        brief_reading=reading_out(req),
    )


def plan_record(
    state: AppState,
    model: ServingModel,
    req: PlanRequest,
    plan: Plan,
    creators: list[PlannedCreator],
    recommendation_id: str,
) -> Shown:
    """What the recommendation log keeps of a plan: its creators in plan order, scored by the gain per unit of cost
    that picked them."""
    return Shown(
        recommendation_id=recommendation_id,
        created_at=now_iso(),
        kind="plan",
        segments=segments_json(to_segments(req)),
        objective=plan.objective,
        bundle_id=model.bundle.bundle_id,
        model_source=model.source,
        feature_set_id=state.fs.feature_set_id,
        candidates=plan.candidates,
        brand_id=req.brand_id,
        budget=req.budget,
        exploration=0.0,
        creators=[
            ShownCreator(
                rank=i + 1,
                creator_id=c.creator_id,
                segment=c.matched_segment,
                score=c.gain_per_cost,
                conversions=c.conversions,
                engagement_rate=(c.engagements / shown.followers) if shown.followers else None,
                price=c.price,
                propensity=shown.propensity,
                explored=shown.explored,
            )
            for i, (c, shown) in enumerate(zip(plan.creators, creators, strict=True))
        ],
    )
