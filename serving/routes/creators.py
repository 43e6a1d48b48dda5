"""``GET /v1/creators/{id}``, ``GET /v1/creators/{id}/lookalikes`` and ``GET /v1/creators/{a}/overlap/{b}``."""

from __future__ import annotations

import math
from typing import Annotated, Any, Literal

import polars as pl
from fastapi import APIRouter, Path, Query, status

from audiencefit.features.errors import InputError
from audiencefit.models.overlap import overlap_of
from audiencefit.models.query import Filters
from audiencefit.serving import examples
from audiencefit.serving.deps import StateDep
from audiencefit.serving.explain import cluster_terms, top_topics
from audiencefit.serving.openapi import error_responses, example_response
from audiencefit.serving.problems import ProblemError
from audiencefit.serving.schemas import MAX_K, CreatorProfile, GeoShare, Lookalike, LookalikesResponse, OverlapResponse
from audiencefit.serving.security import ApiKey
from audiencefit.serving.state import AppState

router = APIRouter(
    prefix="/v1/creators", tags=["creators"], dependencies=[ApiKey], responses=error_responses(401, 403, 404, 422, 503)
)

STATISTICS = (
    "post_count",
    "n_posts",
    "er_median",
    "er_mean",
    "er_trend",
    "posts_per_week",
    "gap_cv",
    "comment_like_ratio",
    "sponsored_share",
    "sponsored_er_ratio",
    "likes_spikiness",
    "views_per_follower",
    "days_since_last_post",
    "suspicious_share",
    "follower_sample_size",
    "engagement_anomaly",
)
CreatorId = Annotated[str, Path(min_length=1, max_length=128, description="Creator id.")]


def _clean(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def _row(state: AppState, creator_id: str) -> int:
    try:
        return state.search.row(creator_id)
    except InputError:
        raise ProblemError(
            status.HTTP_404_NOT_FOUND,
            f"unknown creator {creator_id!r}",
            kind="unknown-creator",
            unknown_ids=[creator_id],
        ) from None


@router.get(
    "/{creator_id}", response_model=CreatorProfile, responses=example_response(examples.PROFILE.model_dump(mode="json"))
)
def creator(creator_id: CreatorId, state: StateDep) -> CreatorProfile:
    """A creator's profile, statistics, audience quality and main audience interests."""
    row = _row(state, creator_id)
    c = state.fs.creators.row(row, named=True)
    geo = (
        state.fs.audience_geo.filter((pl.col("creator_id") == creator_id) & (pl.col("dimension") == "country"))
        .sort(["share", "value"], descending=[True, False])
        .head(5)
    )
    return CreatorProfile(
        creator_id=creator_id,
        handle=c.get("handle"),
        platform=c.get("platform"),
        followers=c.get("followers"),
        following=c.get("following"),
        country=c.get("country"),
        language=c.get("language"),
        follower_tier=c.get("follower_tier"),
        rate_per_post=_clean(c.get("rate_per_post")),
        statistics={k: _clean(c[k]) for k in STATISTICS if k in c},
        audience_quality=_clean(c.get("audience_quality")),
        quality_source=c.get("quality_source"),
        audience_source=c.get("audience_source"),
        audience_topics=top_topics(state.fs, row, cluster_terms(state.fs), None, n=5),
        audience_countries=[GeoShare(value=v, share=float(s)) for v, s in geo.select("value", "share").iter_rows()],
        feature_set_id=state.fs.feature_set_id,
    )


@router.get(
    "/{creator_id}/lookalikes",
    response_model=LookalikesResponse,
    responses=example_response(examples.LOOKALIKES.model_dump(mode="json")),
)
def lookalikes(
    creator_id: CreatorId,
    state: StateDep,
    by: Annotated[Literal["audience", "content"], Query(description="Similar audience or similar content.")] = (
        "audience"
    ),
    k: Annotated[int, Query(ge=1, le=MAX_K, description="How many creators to return.")] = 20,
) -> LookalikesResponse:
    """Creators most similar to this one by audience or by content (any follower count)."""
    _row(state, creator_id)
    frame = state.search.lookalikes(creator_id, by=by, k=k, filters=Filters(min_followers=0, max_followers=2**62))
    profile = state.fs.creators.select("creator_id", "handle", "platform", "followers")
    joined = frame.join(profile, on="creator_id", how="left", maintain_order="left")
    creators = [Lookalike(**rec) for rec in joined.iter_rows(named=True)]
    return LookalikesResponse(creator_id=creator_id, by=by, count=len(creators), creators=creators)


@router.get(
    "/{creator_id}/overlap/{other_id}",
    response_model=OverlapResponse,
    responses=example_response(examples.OVERLAP.model_dump(mode="json")),
)
def overlap(creator_id: CreatorId, other_id: CreatorId, state: StateDep) -> OverlapResponse:
    """Estimated shared real audience of two creators (audience interests, countries and follower samples)."""
    est = overlap_of(state.fs, _row(state, creator_id), _row(state, other_id))
    return OverlapResponse(**vars(est))
