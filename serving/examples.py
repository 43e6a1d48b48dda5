"""The examples the OpenAPI document shows for each endpoint: a request body and a 200 answer, built from the
response models themselves (so an example that stops matching its schema fails at import, and the test of the
document checks every one against the schema it illustrates). The numbers are of the demo world's size and kind."""

from __future__ import annotations

from typing import Any

from audiencefit.serving.schemas import (
    Band,
    CreatorProfile,
    CreatorScore,
    Explanation,
    ForecastReliability,
    ForecastReliabilityReport,
    GeoShare,
    Health,
    InputShiftOut,
    Lookalike,
    LookalikesResponse,
    ModelInfo,
    OverlapResponse,
    PlannedCreator,
    PlanResponse,
    Readiness,
    RecommendationResponse,
    RecommendedCreator,
    ReloadResponse,
    ScoreResponse,
    SegmentFit,
    Topic,
    Versions,
)

SEGMENT = "people training for their first marathon or trail race"
OK = ForecastReliability(level="ok", reasons=[])
VERSIONS = Versions(
    bundle_id="acb1ede8bd907b04",
    model_source="models:/audiencefit@champion (audiencefit-v1)",
    feature_set_id="4f1c653c1548c3c2",
    feature_version="2",
    embedder_id="minilm-l6-v2/aligned-edaa5973c34c",
)
TOPIC = Topic(cluster_id=13, terms=["trail", "running", "marathon", "hiking"], audience_share=0.0526, relevance=1.0)


def _creator(**extra: Any) -> dict[str, Any]:
    return dict(
        rank=1,
        creator_id="c000412",
        handle="trailmaria",
        platform="instagram",
        followers=86_481,
        country="ES",
        language="es",
        fit=0.3671,
        segments=[SegmentFit(segment=SEGMENT, fit=0.4312, audience_share=0.0543, audience_source="followers")],
        matched_segment=SEGMENT,
        engagement_rate=Band(expected=0.0099, p10=0.0044, p90=0.0216),
        conversions=Band(expected=29.96, p10=20.0, p90=40.0),
        price=Band(expected=909.63, p10=455.25, p90=1095.13),
        price_source="model",
        cost_per_conversion=30.36,
        audience_quality=95.1,
        audience_source="followers",
        brand_mentions=0,
        mentions_brand=False,
        explanation=Explanation(
            matched_segment=SEGMENT,
            reasons=[
                f"Audience matches “{SEGMENT}”: good fit (0.43); about 5% of the audience belongs to this segment.",
                "Audience interests driving the match: trail, running, marathon (5% of audience).",
                "Audience quality 95/100 (audience from a follower sample).",
            ],
            topics=[TOPIC],
            captions=["mi group ride favorito del mes #trailrunning"],
        ),
        quality_source="followers+engagement",
        **extra,
    )


RECOMMENDATION_REQUEST = {
    "description": "Acme makes lightweight trail-running shoes.",
    "segments": [{"text": SEGMENT, "weight": 2.0, "countries": ["ES", "PT"]}],
    "k": 10,
    "objective": "conversions",
    "filters": {"min_followers": 5_000, "max_followers": 100_000, "min_audience_quality": 60},
    "budget": 2_000,
    "brand_handles": ["@acme"],
}
RECOMMENDATION = RecommendationResponse(
    recommendation_id="5f0c2a9e4b7d4e1c9a3f6b8d2e1c0a77",
    objective="conversions",
    ranked_by="conversions.expected: expected conversions from one sponsored post",
    count=1,
    creators=[RecommendedCreator(**_creator(propensity=1.0, explored=False, ranking_value=29.96))],
    versions=VERSIONS,
    forecast_reliability=OK,
)
SCORE_REQUEST = {"segments": [{"text": SEGMENT}], "creator_ids": ["c000412"]}
SCORE = ScoreResponse(count=1, creators=[CreatorScore(**_creator())], versions=VERSIONS, forecast_reliability=OK)
PLAN_REQUEST = {
    "segments": [{"text": SEGMENT, "id": "runners"}],
    "budget": 5_000,
    "objective": "conversions",
    "max_creators": 5,
    "min_segment_reach": {"runners": 2_000},
}
PLAN = PlanResponse(
    recommendation_id="0b6f3c1d2e4a4f5b8c7d9e0f1a2b3c4d",
    objective="conversions",
    count=1,
    creators=[
        PlannedCreator(
            creator_id="c000412",
            handle="trailmaria",
            platform="instagram",
            followers=86_481,
            price=Band(expected=909.63, p10=455.25, p90=1095.13),
            conversions=29.96,
            engagements=856.2,
            marginal_conversions=29.96,
            marginal_reach=4_695.0,
            gain_per_cost=0.0329,
            propensity=1.0,
            explored=False,
        )
    ],
    total_cost=Band(expected=909.63, p10=455.25, p90=1095.13),
    budget=5_000,
    conversions=Band(expected=29.96, p10=20.0, p90=40.0),
    conversions_without_overlap=29.96,
    engagements=Band(expected=856.2, p10=380.5, p90=1868.0),
    unique_reach=81_204.0,
    segment_reach={"runners": 4_695.0},
    candidates=400,
    versions=VERSIONS,
    forecast_reliability=OK,
)
PROFILE = CreatorProfile(
    creator_id="c000412",
    handle="trailmaria",
    platform="instagram",
    followers=86_481,
    following=512,
    country="ES",
    language="es",
    follower_tier="micro",
    rate_per_post=None,
    statistics={"n_posts": 30, "er_median": 0.0101, "posts_per_week": 2.5, "days_since_last_post": 3},
    audience_quality=95.1,
    quality_source="followers+engagement",
    audience_source="followers",
    audience_topics=[TOPIC],
    audience_countries=[GeoShare(value="ES", share=0.62), GeoShare(value="MX", share=0.11)],
    feature_set_id=VERSIONS.feature_set_id,
)
LOOKALIKES = LookalikesResponse(
    creator_id="c000412",
    by="audience",
    count=1,
    creators=[
        Lookalike(creator_id="c001877", handle="montanaleo", platform="instagram", followers=41_022, similarity=0.91)
    ],
)
OVERLAP = OverlapResponse(
    creator_a="c000412",
    creator_b="c001877",
    real_audience_a=78_900.0,
    real_audience_b=37_300.0,
    shared_audience=4_120.0,
    from_representation=3_870.0,
    shared_sample_keys=14,
    sample_size_a=1_000,
    sample_size_b=1_000,
    jaccard=0.0367,
    share_of_a=0.0522,
    share_of_b=0.1105,
)
MODEL = ModelInfo(
    bundle_id=VERSIONS.bundle_id,
    model_source=VERSIONS.model_source,
    loaded_at="2026-12-04T09:00:00+00:00",
    created_at="2026-12-03T18:12:44+00:00",
    feature_set_id=VERSIONS.feature_set_id,
    feature_set_loaded_at="2026-12-04T09:00:00+00:00",
    feature_version=VERSIONS.feature_version,
    embedder_id=VERSIONS.embedder_id,
    training={"creators": 2_400, "campaigns": 9_812},
    evaluation=[{"metric": "served_ndcg20", "split": "test", "value": 0.71}],
    beats_baselines={"served_ndcg20": True},
    recommendation_log={"backend": "sqlite", "written": 120, "dropped": 0, "failed": 0, "queued": 0},
    forecast_reliability=ForecastReliabilityReport(
        level="ok",
        reasons=[],
        statistic="PSI over training deciles (numeric) or categories, plus a missing-value bin",
        threshold="PSI >= 0.25 and above the chi-squared 99.99th percentile / n_eff",
        creators_served=3_000,
        creators_trained=2_400,
        creators_out_of_range=0,
        inputs=[
            InputShiftOut(
                feature="followers",
                psi=0.012,
                threshold=0.25,
                shifted=False,
                served="median 24,100",
                training="median 23,800",
            )
        ],
    ),
)
HEALTH = Health(status="ok")
READY = Readiness(
    ready=True,
    features=True,
    index=True,
    model=True,
    bundle_id=VERSIONS.bundle_id,
    feature_set_id=VERSIONS.feature_set_id,
    last_reload_failed=False,
    last_reload_at=None,
    worker_pid=4242,
    forecast_reliability="ok",
)
RELOAD_REQUEST = {"model_uri": "models:/audiencefit@champion"}
RELOAD = ReloadResponse(
    ok=True,
    serving_bundle_id="9d1e7f20c3b4a5e6",
    previous_bundle_id=VERSIONS.bundle_id,
    serving_feature_set_id=VERSIONS.feature_set_id,
    previous_feature_set_id=VERSIONS.feature_set_id,
)
METRICS = (
    "# HELP audiencefit_http_requests_total HTTP requests by method, route and status.\n"
    "# TYPE audiencefit_http_requests_total counter\n"
    'audiencefit_http_requests_total{method="POST",route="/v1/recommendations",status="200"} 120\n'
)
