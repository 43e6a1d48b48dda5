"""Scoring: (brand query, creators) → fit, predictions with bands, price and cost per conversion.

This is the single place that turns a brand's segments and a set of creators into what a marketer sees. The
API, the batch jobs and the planner all call :func:`score_creators`; training builds its features with the same
``pair_features`` and predicts with the same ``ModelSet.predict``.
"""

from __future__ import annotations

from typing import Literal

import numpy as np
import polars as pl

from models.estimators import FeatureMatrix, ModelSet
from models.pair_features import FEATURE_COLUMNS, BrandQuery, CreatorView, fit_scores, pair_feature_array, view_arrays

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
    # The features of pair_features, as the matrix it builds its frame from (same numbers, no frame round trip).
    feats = pair_feature_array(view, pair_rows, seg_idx, query)
    # Every pair's conversions choose the creator's best segment; the full predictions (bands, engagement, price)
    # are then made for that pair only: the same numbers as predicting every pair, at a fraction of the cost.
    conv = models.predict_conversions(FeatureMatrix.of_array(feats, FEATURE_COLUMNS), threads=threads)
    best = np.argmax(conv.reshape(n, n_seg), axis=1)  # first segment wins ties: deterministic
    picked = feats[np.arange(n) * n_seg + best]
    arrays = view_arrays(view)
    quoted = arrays.columns(("rate_per_post",))["rate_per_post"].to_numpy()[rows].astype(np.float64)
    preds = models.predict(FeatureMatrix.of_array(picked, FEATURE_COLUMNS), quoted_price=quoted, threads=threads)
    scores = fit_scores(view, rows, query)
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
