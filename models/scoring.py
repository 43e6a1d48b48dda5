"""Scoring: (brand query, creators) → fit, predictions with bands, price and cost per conversion.

This is the single place that turns a brand's segments and a set of creators into what a marketer sees. The
API, the batch jobs and the planner all call :func:`score_creators`; training builds its features with the same
``pair_features`` and predicts with the same ``ModelSet.predict``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np
import polars as pl

from audiencefit.models.estimators import FeatureMatrix, ModelSet
from audiencefit.models.explore import Exploration, Sampler, gamma_sampler, lognormal_sampler, select
from audiencefit.models.pair_features import (
    CREATOR_COLUMNS,
    FEATURE_COLUMNS,
    BrandQuery,
    CreatorView,
    FitScores,
    pair_feature_parts,
    view_arrays,
)

Objective = Literal["conversions", "engagement", "fit"]
PROFILE: tuple[str, ...] = (
    "creator_id",
    "handle",
    "platform",
    "followers",
    "country",
    "language",
    "audience_quality",
    "audience_source",
    "quality_source",
)


def score_creators(
    view: CreatorView, models: ModelSet, query: BrandQuery, rows: np.ndarray, *, threads: int = 1
) -> pl.DataFrame:
    """One row per creator (in ``rows`` order): profile, audience fit per segment, and the predictions for the
    segment where the creator is expected to convert best (``matched_segment``).

    Creators are scored independently of each other, so scoring ``rows`` in chunks gives the same rows.
    ``threads`` is LightGBM's thread count (batch jobs); it does not change any number.
    """
    rows = np.asarray(rows, dtype=np.int64)
    n, n_seg = len(rows), len(query.segments)
    if n == 0:
        return pl.DataFrame()
    pair_rows = np.repeat(rows, n_seg)
    seg_idx = np.tile(np.arange(n_seg), n)
    # The features of pair_features, as the matrix it builds its frame from (same numbers, no frame round trip),
    # and the audience fit it computed on the way (shown per segment below).
    feats, unique_scores, inverse = pair_feature_parts(view, pair_rows, seg_idx, query)
    conv = models.predict_conversions(FeatureMatrix.of_array(feats, FEATURE_COLUMNS), threads=threads)
    return _scored(view, models, query, rows, feats, unique_scores.take(inverse[::n_seg]), conv, threads=threads)


def _scored(
    view: CreatorView,
    models: ModelSet,
    query: BrandQuery,
    rows: np.ndarray,
    feats: np.ndarray,
    scores: FitScores,
    conv: np.ndarray,
    *,
    threads: int = 1,
) -> pl.DataFrame:
    """:func:`score_creators` from its pair features (``feats``: every creator's pairs, creator-major), each
    creator's fit ``scores`` and every pair's expected conversions."""
    n, n_seg = len(rows), len(query.segments)
    # Every pair's conversions choose the creator's best segment; the full predictions (bands, engagement, price)
    # are then made for that pair only: the same numbers as predicting every pair, at a fraction of the cost.
    best = np.argmax(conv.reshape(n, n_seg), axis=1)  # first segment wins ties: deterministic
    picked_at = np.arange(n) * n_seg + best
    picked = feats[picked_at]
    arrays = view_arrays(view)
    quoted = arrays.numpy("rate_per_post")[rows].astype(np.float64)
    # Price reads creator columns only: computed once per creator and model, whatever the brand (batch runs score
    # every creator for every brand; requests see the same creators again).
    price = arrays.per_creator(
        models,
        rows,
        lambda r: models.price_bands(FeatureMatrix.of_array(arrays.creator_block[r], CREATOR_COLUMNS), threads=threads),
    )
    preds = models.predict(
        FeatureMatrix.of_array(picked, FEATURE_COLUMNS),
        quoted_price=quoted,
        threads=threads,
        price=price,
        conversions=conv[picked_at],
    )
    weights = np.array([s.weight for s in query.segments], dtype=np.float32)
    labels = np.array([s.label for s in query.segments], dtype=object)
    columns = [
        pl.Series("fit", scores.combined(weights).astype(np.float64)),
        pl.Series("matched_segment", labels[best], dtype=pl.String),
        pl.Series("segment_fit", scores.fit.astype(np.float64)).cast(pl.List(pl.Float64)),
        pl.Series("segment_share", scores.share.astype(np.float64)).cast(pl.List(pl.Float64)),
        pl.Series("brand_mentions", picked[:, FEATURE_COLUMNS.index("brand_mentions")]),
    ]
    return arrays.columns(PROFILE)[rows].hstack([*columns, *preds.get_columns()])


@dataclass(frozen=True)
class Top:
    """The best ``k`` creators, fully scored, and how many candidates each filter left."""

    scored: pl.DataFrame  # score_creators' columns plus ``row``, ``propensity``, ``explored``, in response order
    mentioning: int  # candidates left by require_mention (all of them without it)
    affordable: int  # of those, the ones whose expected price is within the budget (all without one)
    pool_propensity: np.ndarray | None = None  # with exploration: P(shown) of every candidate not shown by rank


def top_creators(
    view: CreatorView,
    models: ModelSet,
    query: BrandQuery,
    rows: np.ndarray,
    *,
    objective: Objective,
    k: int,
    budget: float | None = None,
    require_mention: bool = False,
    exploration: Exploration | None = None,
) -> Top:
    """``rank(score_creators(rows), objective, budget).head(k)``, with bands and explanations' inputs computed
    only for the ``k`` creators returned.

    Ranking needs one number per candidate (expected conversions, engagements or fit, and the expected price
    under a budget); those come from the same models on the same features, so the rows and their order are
    exactly those of scoring every candidate fully (tested), at a fraction of the cost for a request.

    With ``exploration``, ``round(share·k)`` of the ``k`` are Thompson-sampled from the other eligible candidates
    (``audiencefit.models.explore``) with the forecast's own uncertainty: the conversion model's Gamma rate for
    conversions, the engagement band for engagements (objective ``fit`` has no forecast to be unsure about: refused).
    Every row carries its ``propensity`` (1 for those shown by rank) and whether it was ``explored``.
    """
    if exploration is not None and exploration.share > 0 and objective == "fit":
        raise ValueError("exploration samples a forecast's uncertainty: use objective 'conversions' or 'engagement'")
    rows = np.asarray(rows, dtype=np.int64)
    n, n_seg = len(rows), len(query.segments)
    if n == 0:
        return Top(pl.DataFrame(), 0, 0)
    pair_rows, seg_idx = np.repeat(rows, n_seg), np.tile(np.arange(n_seg), n)
    feats, unique_scores, inverse = pair_feature_parts(view, pair_rows, seg_idx, query)
    conv = models.predict_conversions(FeatureMatrix.of_array(feats, FEATURE_COLUMNS)).reshape(n, n_seg)
    best = np.argmax(conv, axis=1)
    picked = FeatureMatrix.of_array(feats[np.arange(n) * n_seg + best], FEATURE_COLUMNS)
    keep = np.ones(n, dtype=bool)
    if require_mention:
        keep &= picked.column("brand_mentions") > 0
    mentioning = int(keep.sum())
    arrays = view_arrays(view)
    if budget is not None:
        quoted = arrays.numpy("rate_per_post")[rows].astype(np.float64)
        keep &= models.predict_price(picked, quoted) <= budget
    if objective == "conversions":
        key = conv[np.arange(n), best]
    elif objective == "engagement":
        key = models.predict_engagement_rate(picked) * arrays.numpy("followers")[rows]
    else:
        weights = np.array([s.weight for s in query.segments], dtype=np.float32)
        key = unique_scores.take(inverse[::n_seg]).combined(weights).astype(np.float64)
    ids = arrays.numpy("creator_id")[rows]
    kept = np.flatnonzero(keep)
    sampler: Sampler | None = None
    if exploration is None or exploration.share == 0:
        exploration = None
    elif objective == "conversions":
        sampler = gamma_sampler(key[kept], models.theta_)
    elif objective == "engagement":
        sampler = _engagement_sampler(models, picked, kept, arrays.numpy("followers")[rows][kept])
    # rank's order (objective, then creator id), with the exploratory slots filled after the others
    selection = select(key[kept], ids[kept], k, exploration, sampler)
    order = kept[selection.order]
    chosen = rows[order]
    # The k returned are scored from the pair features and conversions computed above (a pair's features do not
    # depend on which other pairs are computed with it, so these are score_creators' numbers).
    pairs = (order[:, None] * n_seg + np.arange(n_seg)).reshape(-1)
    scores = unique_scores.take(inverse[pairs[::n_seg]])
    scored = _scored(view, models, query, chosen, feats[pairs], scores, conv.reshape(-1)[pairs])
    # hstack, not with_columns: eager (with_columns plans and collects a lazy query, ~0.5 ms a request)
    scored = scored.hstack(
        [
            pl.Series("row", chosen, dtype=pl.Int64),
            pl.Series("propensity", selection.propensity, dtype=pl.Float64),
            pl.Series("explored", selection.explored, dtype=pl.Boolean),
        ]
    )
    pool = selection.pool_propensity if selection.slots else None
    return Top(scored, mentioning, int(keep.sum()), pool)


def _engagement_sampler(models: ModelSet, picked: FeatureMatrix, kept: np.ndarray, followers: np.ndarray) -> Sampler:
    """Engagements (rate × followers) drawn log-normally within the engagement band; the band (two quantile
    models) is predicted only for the candidates exploration draws from."""

    def sample(rng: np.random.Generator, pool: np.ndarray, draws: int) -> np.ndarray:
        rows = FeatureMatrix.of_array(np.ascontiguousarray(picked.array[kept[pool]]), tuple(picked.index))
        band = models.engagement_rate_bands(rows)
        size = np.asarray(followers[pool], dtype=np.float64)
        every = np.arange(len(pool))
        inner = lognormal_sampler(band["mean"] * size, band["q10"] * size, band["q90"] * size)
        return inner(rng, every, draws)

    return sample


FIT_DIGITS = 3  # per-segment fit and audience share are reported to this many decimals
QUALITY_DIGITS = 1  # audience quality (0–100) to this many


def reported(scored: pl.DataFrame) -> pl.DataFrame:
    """The figures as every consumer reports them (API fields, the reasons quoting them, batch output): per-segment
    fit and audience share rounded to :data:`FIT_DIGITS` decimals, audience quality to :data:`QUALITY_DIGITS`.
    One expression for all of them, so the API and the batch job can never print different numbers."""
    present = set(scored.columns)
    exprs = [
        pl.col(name).list.eval(pl.element().cast(pl.Float64).round(FIT_DIGITS))
        for name in ("segment_fit", "segment_share")
        if name in present
    ]
    if "audience_quality" in present:
        exprs.append(pl.col("audience_quality").cast(pl.Float64).round(QUALITY_DIGITS))
    return scored.with_columns(exprs) if exprs else scored


def rank(scored: pl.DataFrame, objective: Objective, *, budget: float | None = None) -> pl.DataFrame:
    """Order scored creators by the objective (expected conversions, expected engagements, or audience fit),
    dropping creators whose expected price alone exceeds ``budget``; ties broken by creator id."""
    if scored.height == 0:
        return scored
    key = {
        "conversions": pl.col("conversions"),
        "engagement": pl.col("engagement_rate") * pl.col("followers"),
        "fit": pl.col("fit"),
    }[objective]
    out = scored.with_columns(_key=key)
    if budget is not None:
        out = out.filter(pl.col("price") <= budget)
    return out.sort(["_key", "creator_id"], descending=[True, False]).drop("_key")
