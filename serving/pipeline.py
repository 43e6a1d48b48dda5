"""From a validated request to ranked, explained creators: validate → retrieve → score → rank → explain.

Synchronous and CPU-bound (embedding, scoring); the routes call it through ``audiencefit.serving.deps.get_compute``: in
the thread pool, or on the event loop of a worker that the front gives one request at a time.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import numpy as np
import polars as pl

from audiencefit.features.embed import Embedder
from audiencefit.features.errors import InputError
from audiencefit.models.brief import BriefReading as Reading
from audiencefit.models.brief import read_brief
from audiencefit.models.drift import Reliability
from audiencefit.models.explore import Exploration, derive_seed
from audiencefit.models.pair_features import BrandQuery
from audiencefit.models.query import Filters, Segment, embed_segments, validate_segments
from audiencefit.models.reclog import Shown, ShownCreator
from audiencefit.models.scoring import reported, score_creators, top_creators
from audiencefit.serving.explain import Explainer, cluster_terms
from audiencefit.serving.schemas import (
    Band,
    BrandIn,
    BriefReading,
    BriefSegmentOut,
    CreatorScore,
    FiltersIn,
    ForecastReliability,
    RecommendationRequest,
    RecommendedCreator,
    SegmentFit,
    Versions,
)
from audiencefit.serving.state import AppState, ServingModel

log = logging.getLogger(__name__)

MIN_CANDIDATES = 200
CANDIDATES_PER_RESULT = 5


@dataclass(frozen=True)
class Scored:
    creators: list[RecommendedCreator]
    empty_reason: str | None
    segments: list[Segment]  # as validated (what the log records)
    candidates: int = 0  # eligible candidates the creators were picked from
    exploration: float = 0.0  # the share of exploratory slots asked for
    rows: tuple[int, ...] = ()  # the creators' feature-set rows (for the response's forecast reliability)
    reading: BriefReading | None = None  # how a description without segments was read


def exploration_of(req: RecommendationRequest) -> Exploration | None:
    """The request's exploration with its seed: the one given, else one derived from the request's content (so
    the same request is answered the same way); None without exploration."""
    if req.exploration is None or req.exploration.share == 0:
        return None
    seed = req.exploration.seed
    if seed is None:
        seed = derive_seed(req.model_dump_json().encode("utf-8"))
    return Exploration(share=req.exploration.share, seed=seed)


def versions(state: AppState, model: ServingModel) -> Versions:
    """Which model and features produced a response."""
    return Versions(
        bundle_id=model.bundle.bundle_id,
        model_source=model.source,
        feature_set_id=state.fs.feature_set_id,
        feature_version=state.fs.version,
        embedder_id=state.fs.embedder_id,
    )


def read_description(brand: BrandIn) -> Reading | None:
    """How a description sent without segments is read (``audiencefit.models.brief.read_brief``); None with segments."""
    if brand.segments:
        return None
    return read_brief(brand.description or "")


def to_segments(brand: BrandIn) -> list[Segment]:
    """The request's segments; with only a description, the segments read from it (``read_description``): its
    audience clauses, or the whole description as the one segment when it names no audience."""
    if brand.segments:
        segs = [
            Segment(text=s.text, weight=s.weight, countries=tuple(s.countries), segment_id=s.id) for s in brand.segments
        ]
    else:
        reading = read_description(brand)
        assert reading is not None
        segs = [Segment(text=s.text, weight=s.weight, segment_id=s.id) for s in reading.segments]
    return validate_segments(segs)


def reading_out(brand: BrandIn) -> BriefReading | None:
    """The response's ``brief_reading``: how a description without segments was read (None with segments)."""
    reading = read_description(brand)
    if reading is None:
        return None
    return BriefReading(
        segments=[
            BriefSegmentOut(id=s.id, text=s.text, weight=s.weight, role=s.role, source=s.source)
            for s in reading.segments
        ],
        product=reading.product,
        language=reading.language,
        fallback=reading.fallback,
        note=reading.note,
    )


def to_filters(f: FiltersIn) -> Filters:
    return Filters(
        min_followers=f.min_followers,
        max_followers=f.max_followers,
        platforms=tuple(f.platforms),
        countries=tuple(f.countries),
        languages=tuple(f.languages),
        min_audience_quality=f.min_audience_quality,
        exclude=tuple(f.exclude),
    )


def brand_terms(brand: BrandIn) -> tuple[str, ...]:
    """Handles and hashtags as stored in the feature set's terms: lower case, without @ or #."""
    terms = {t.strip().lstrip("@#").lower() for t in (*brand.brand_handles, *brand.branded_hashtags)}
    return tuple(sorted(t for t in terms if t))


def brand_query(
    embedder: Embedder, brand: BrandIn, segments: list[Segment], seg_vecs: np.ndarray | None = None
) -> BrandQuery:
    """The embedded query for a brand: its segments' vectors, its description's vector, handles and hashtags.

    ``seg_vecs`` are the segments' vectors when a search has embedded them already. The API and the batch jobs
    both build their queries here.
    """
    if seg_vecs is None:
        seg_vecs = embed_segments(segments, embedder)
    brand_vector = None
    if brand.description and brand.description.strip():
        # The whole description, as the models were trained with (the brands' descriptions), whatever segments were
        # read from it; when it is the one segment, it is embedded already.
        same = len(segments) == 1 and segments[0].text == brand.description
        vec = seg_vecs[0] if same else embed_segments([Segment(text=brand.description)], embedder)[0]
        brand_vector = vec if np.any(vec) else None
    return BrandQuery(segments, seg_vecs, brand_vector=brand_vector, brand_terms=brand_terms(brand))


def recommend(state: AppState, model: ServingModel, req: RecommendationRequest) -> Scored:
    """The top ``req.k`` creators for the brand, ranked by the objective; empty with a reason when none fits."""
    segments = to_segments(req)
    reading = reading_out(req)
    share = req.exploration.share if req.exploration is not None else 0.0
    n_candidates = max(CANDIDATES_PER_RESULT * req.k, MIN_CANDIDATES)
    found = state.search.search(segments, to_filters(req.filters), n_candidates)
    if found.empty_reason:
        return Scored([], found.empty_reason, segments, 0, share, reading=reading)
    query = brand_query(state.search.embedder, req, found.segments, found.segment_vectors)
    top = top_creators(
        state.fs,
        model.bundle.models,
        query,
        found.rows,
        objective=req.objective,
        k=req.k,
        budget=req.budget,
        require_mention=req.require_mention,
        exploration=exploration_of(req),
    )
    segs = list(found.segments)
    if top.mentioning == 0:
        reason = f"none of the {len(found)} best-fitting creators mentioned {list(query.brand_terms)}"
        return Scored([], reason, segs, 0, share, reading=reading)
    if top.affordable == 0:
        reason = f"no candidate's expected price is within the budget of {req.budget:,.2f}"
        return Scored([], reason, segs, 0, share, reading=reading)
    shown = []
    for rec, fields in row_fields(state, query, top.scored, model.reliability):
        creator = RecommendedCreator(
            **fields, propensity=float(rec["propensity"]), explored=bool(rec["explored"]), ranking_value=0.0
        )
        creator.ranking_value = objective_key(req.objective, creator)
        shown.append(creator)
    rows = tuple(int(r) for r in top.scored["row"].to_list())
    return Scored(shown, None, segs, top.affordable, share, rows, reading)


def objective_key(objective: str, creator: CreatorScore) -> float:
    """The number a recommendation is ranked by (``audiencefit.models.scoring.rank``), for one shown creator."""
    if objective == "conversions":
        return creator.conversions.expected
    if objective == "engagement":
        return creator.engagement_rate.expected * float(creator.followers or 0)
    return creator.fit


def segments_json(segments: list[Segment]) -> list[dict[str, Any]]:
    return [{"id": s.label, "text": s.text, "weight": s.weight, "countries": list(s.countries)} for s in segments]


def shown_record(
    state: AppState, model: ServingModel, req: RecommendationRequest, result: Scored, recommendation_id: str
) -> Shown:
    """What the recommendation log keeps of one answer (``audiencefit.models.reclog``)."""
    return Shown(
        recommendation_id=recommendation_id,
        created_at=now_iso(),
        kind="recommendation",
        segments=segments_json(result.segments),
        objective=req.objective,
        bundle_id=model.bundle.bundle_id,
        model_source=model.source,
        feature_set_id=state.fs.feature_set_id,
        candidates=result.candidates,
        brand_id=req.brand_id,
        k=req.k,
        budget=req.budget,
        exploration=result.exploration,
        creators=[
            ShownCreator(
                rank=c.rank,
                creator_id=c.creator_id,
                segment=c.matched_segment,
                score=objective_key(req.objective, c),
                conversions=c.conversions.expected,
                engagement_rate=c.engagement_rate.expected,
                price=c.price.expected,
                propensity=c.propensity,
                explored=c.explored,
            )
            for c in result.creators
        ],
    )


def now_iso() -> str:
    """Now, UTC, ISO 8601 with milliseconds (the log's ``created_at``)."""
    return datetime.now(UTC).isoformat(timespec="milliseconds")


WARM_UP_BRIEF = "people who follow creators for everyday tips and honest product reviews"


def warm_up(state: AppState) -> None:
    """Answer one brief on a new state before any client does (start-up and every reload, before the swap).

    The first request otherwise pays for what is built on first use: per-view arrays, the default filters' mask,
    the query text's vector, modules imported lazily (measured on the 100k world: 416 ms for the first request,
    22–26 ms for the next ones). Does nothing without a model; its answer is discarded. A failure is logged and
    the state serves as it would have without the warm-up (a bundle that loads is not refused here).
    """
    model = state.model
    if model is None:
        return
    started = time.perf_counter()
    try:
        result = recommend(state, model, RecommendationRequest(description=WARM_UP_BRIEF))
    except Exception:
        log.exception("the warm-up brief failed; the first requests will show the same error")
        return
    log.info(
        "warmed up with one brief",
        extra={"seconds": round(time.perf_counter() - started, 3), "creators": len(result.creators)},
    )


def score_ids(state: AppState, model: ServingModel, brand: BrandIn, creator_ids: list[str]) -> list[CreatorScore]:
    """Predictions for known creator ids, in the order given (callers check the ids first)."""
    segments = to_segments(brand)
    query = brand_query(state.search.embedder, brand, segments)
    rows = np.array([state.search.row(cid) for cid in creator_ids], dtype=np.int64)
    scored = score_creators(state.fs, model.bundle.models, query, rows).with_columns(row=pl.Series(rows))
    return build_rows(state, query, scored, model.reliability)


def response_reliability(reliability: Reliability, rows: tuple[int, ...] | list[int]) -> ForecastReliability:
    """A response's ``forecast_reliability``: the serving model's over the feature set (computed at load), plus how
    many of the creators shown lie outside the training range (read from the precomputed flags)."""
    return ForecastReliability(level=reliability.level, reasons=reliability.response_reasons(rows))


def creator_reliability(reliability: Reliability, row: int) -> ForecastReliability | None:
    """One creator's ``forecast_reliability``: "low" with the inputs out of the training range, None when all are in."""
    reasons = reliability.creator_reasons(row)
    return ForecastReliability(level="low", reasons=reasons) if reasons else None


def unknown_ids(state: AppState, creator_ids: list[str]) -> list[str]:
    out = []
    for cid in creator_ids:
        try:
            state.search.row(cid)
        except InputError:
            out.append(cid)
    return out


def _num(value: Any) -> float | None:
    if value is None:
        return None
    x = float(value)
    return x if math.isfinite(x) else None


def _band(rec: dict[str, Any], name: str) -> Band:
    return Band(
        expected=_num(rec[name]) or 0.0, p10=_num(rec[f"{name}_p10"]) or 0.0, p90=_num(rec[f"{name}_p90"]) or 0.0
    )


def build_rows(
    state: AppState, query: BrandQuery, scored: pl.DataFrame, reliability: Reliability | None = None
) -> list[CreatorScore]:
    """Response rows (with explanations) for scored creators, in frame order; each creator outside the training
    range (``reliability``'s precomputed flags) carries its own ``forecast_reliability``."""
    return [CreatorScore(**fields) for _, fields in row_fields(state, query, scored, reliability)]


def row_fields(
    state: AppState, query: BrandQuery, scored: pl.DataFrame, reliability: Reliability | None = None
) -> Iterator[tuple[dict[str, Any], dict[str, Any]]]:
    """(the scored row, the fields of its response row with explanations), for scored creators in frame order."""
    labels = [s.label for s in query.segments]
    explainer = Explainer.for_request(
        state.fs,
        cluster_terms(state.fs),
        labels,
        [s.text for s in query.segments],
        query.segment_vectors,
        state.captions,
    )
    # Rounded once, by the expression the batch job uses too: the fields carry these figures and the reasons quote
    # them (audiencefit.serving.explain).
    for i, rec in enumerate(reported(scored).iter_rows(named=True)):
        mentions = int(rec["brand_mentions"] or 0)
        quality = _num(rec["audience_quality"])
        segment_fit = [float(f) for f in rec["segment_fit"]]
        segment_share = [float(x) for x in rec["segment_share"]]
        row = int(rec["row"])
        quality_source = rec["quality_source"]  # what audience_quality was computed from
        yield (
            rec,
            dict(
                rank=i + 1,
                creator_id=rec["creator_id"],
                handle=rec["handle"],
                platform=rec["platform"],
                followers=rec["followers"],
                country=rec["country"],
                language=rec["language"],
                fit=_num(rec["fit"]) or 0.0,
                segments=[
                    SegmentFit(segment=label, fit=f, audience_share=s, audience_source=rec["audience_source"])
                    for label, f, s in zip(labels, segment_fit, segment_share, strict=True)
                ],
                matched_segment=rec["matched_segment"],
                engagement_rate=_band(rec, "engagement_rate"),
                conversions=_band(rec, "conversions"),
                price=_band(rec, "price"),
                price_source=rec["price_source"],
                cost_per_conversion=_num(rec["cost_per_conversion"]),
                audience_quality=quality,
                audience_source=rec["audience_source"],
                brand_mentions=mentions,
                mentions_brand=mentions > 0,
                explanation=explainer.explain(
                    creator_id=rec["creator_id"],
                    row=row,
                    matched=rec["matched_segment"],
                    segment_fit=segment_fit,
                    segment_share=segment_share,
                    brand_mentions=mentions,
                    audience_quality=quality,
                    audience_source=rec["audience_source"],
                    quality_source=quality_source,
                ),
                quality_source=quality_source,
                forecast_reliability=creator_reliability(reliability, row) if reliability is not None else None,
            ),
        )
