"""Why a forecast is what it is: each feature's contribution (LightGBM's SHAP values, ``pred_contrib=True``).

The models predict on a log scale (log engagement rate, log conversions with a log exposure offset, log price), so
contributions add up in logs and multiply the forecast: a contribution of +0.3 means the feature's value raised the
forecast ×e^0.3 ≈ ×1.35 against the model's average row. For every row the terms add up exactly (to float
precision) to the log of the forecast the service gives (tested):

    log(forecast) = baseline + exposure + Σ contribution(feature)

- ``baseline``: the trees' expected value over their training rows (plus the log of the overall rate for the
  conversion model);
- ``exposure``: the conversion forecast's log exposure (followers × share of the audience in the segment, or the
  funnel's follower count and segment share; :func:`audiencefit.models.estimators.exposure_offset`), 0 for the other
  targets;
- one term per feature: summed over every model behind the forecast (a funnel's three stages).

Only the central forecast is explained (the ``mean`` models); bands come from quantile models and the negative
binomial around it.
"""

from __future__ import annotations

from typing import Literal

import numpy as np
import polars as pl

from audiencefit.models.estimators import (
    FUNNEL_STAGES,
    FUNNEL_STRUCTURE,
    FeatureMatrix,
    GBMRegressor,
    ModelSet,
    Rows,
    exposure_offset,
    follower_offset,
    stage_share,
)
from audiencefit.models.pair_features import FEATURE_COLUMNS, BrandQuery, CreatorView, pair_features

Target = Literal["conversions", "engagement_rate", "price"]
TARGETS: tuple[Target, ...] = ("conversions", "engagement_rate", "price")
BASELINE = "(baseline)"
EXPOSURE = "(exposure)"
CONTRIBUTION_SCHEMA = pl.Schema(
    {"row": pl.Int64(), "term": pl.String(), "value": pl.Float64(), "contribution": pl.Float64()}
)


def _shap(model: GBMRegressor, rows: FeatureMatrix) -> np.ndarray:
    """(n, len(model.columns) + 1): each column's SHAP value on the link scale, the trees' expected value last."""
    x = rows.take(model.columns)
    out = model.booster().predict(x, pred_contrib=True, num_threads=1)
    return np.asarray(out, dtype=np.float64).reshape(len(x), len(model.columns) + 1)


def _models_of(models: ModelSet, target: Target) -> list[GBMRegressor]:
    if target == "conversions":
        return list(models.conversion_models().values())
    parts = models.engagement_ if target == "engagement_rate" else models.price_
    if "mean" not in parts:
        raise RuntimeError("ModelSet is not fitted")
    return [parts["mean"]]


def _exposure(models: ModelSet, rows: FeatureMatrix, target: Target) -> np.ndarray:
    n = len(rows)
    if target != "conversions":
        return np.zeros(n)
    if models.conversion_structure == FUNNEL_STRUCTURE:
        return follower_offset(rows) + sum((stage_share(rows, s) for s in FUNNEL_STAGES), start=np.zeros(n))
    return exposure_offset(rows, models.exposure)


def feature_contributions(models: ModelSet, frame: Rows, target: Target = "conversions") -> pl.DataFrame:
    """Long frame (``row``, ``term``, ``value``, ``contribution``), one row per input row and term: the baseline,
    the exposure and every feature of ``models.columns`` (``value`` is the feature's value, null for the other two
    terms). ``contribution`` is on the log scale of ``target``; per row they add up to the log of the forecast.

    ``frame``: feature rows as :meth:`ModelSet.predict` takes them (a frame with the feature columns, or a
    :class:`FeatureMatrix`). A price explained here is the model's price, before any quoted price replaces it.
    """
    if target not in TARGETS:
        raise ValueError(f"target must be one of {', '.join(TARGETS)}, got {target!r}")
    if not models.is_fitted():
        raise RuntimeError("ModelSet is not fitted")
    rows = frame if isinstance(frame, FeatureMatrix) else FeatureMatrix(frame, models.columns)
    n, columns = len(rows), models.columns
    position = {c: i for i, c in enumerate(columns)}
    per_feature = np.zeros((n, len(columns)))
    baseline = np.zeros(n)
    for model in _models_of(models, target):
        shap = _shap(model, rows)
        for j, column in enumerate(model.columns):
            per_feature[:, position[column]] += shap[:, j]
        baseline += shap[:, -1] + model.base_
    exposure = _exposure(models, rows, target)
    values = rows.take(columns)
    terms = [BASELINE, EXPOSURE, *columns]
    k = len(terms)
    return pl.DataFrame(
        {
            "row": np.repeat(np.arange(n, dtype=np.int64), k),
            "term": terms * n,
            "value": np.column_stack([np.full((n, 2), np.nan), values]).reshape(-1),
            "contribution": np.column_stack([baseline, exposure, per_feature]).reshape(-1),
        },
        schema=CONTRIBUTION_SCHEMA,
    ).with_columns(pl.col("value").fill_nan(None))


def top_contributions(contributions: pl.DataFrame, row: int, k: int = 10) -> pl.DataFrame:
    """One row's ``k`` features with the largest effect (by |contribution|, ties by name), with ``factor`` =
    e^contribution (how many times the feature multiplied the forecast), then the baseline and exposure terms."""
    last = contributions.height // max(contributions["term"].n_unique(), 1) - 1
    if not 0 <= row <= last:
        raise ValueError(f"row {row} is not in the contributions (rows 0–{last})")
    mine = contributions.filter(pl.col("row") == row).with_columns(factor=pl.col("contribution").exp())
    fixed = mine.filter(pl.col("term").is_in([BASELINE, EXPOSURE]))
    features = mine.filter(~pl.col("term").is_in([BASELINE, EXPOSURE]))
    ranked = features.with_columns(size=pl.col("contribution").abs()).sort(["size", "term"], descending=[True, False])
    return pl.concat([ranked.head(k).drop("size"), fixed]).drop("row")


def explain_scored(
    view: CreatorView, models: ModelSet, query: BrandQuery, scored: pl.DataFrame, target: Target = "conversions"
) -> pl.DataFrame:
    """:func:`feature_contributions` for the creators of a scoring frame (``audiencefit.models.scoring.top_creators``'
    ``scored``: columns ``row``, the creator's feature-set row, ``creator_id`` and ``matched_segment``), each for
    the segment its forecast is for: the pair features the service computed, from the same function. Adds
    ``creator_id``; ``row`` is the position in ``scored``."""
    missing = [c for c in ("row", "creator_id", "matched_segment") if c not in scored.columns]
    if missing:
        raise ValueError(f"the scoring frame lacks {missing} (pass top_creators(...).scored)")
    labels = {segment.label: j for j, segment in enumerate(query.segments)}
    unknown = sorted(set(scored["matched_segment"].to_list()) - set(labels))
    if unknown:
        raise ValueError(f"matched segments {unknown} are not segments of the query")
    rows = scored["row"].to_numpy().astype(np.int64)
    segment_index = np.array([labels[m] for m in scored["matched_segment"].to_list()], dtype=np.int64)
    features = pair_features(view, rows, segment_index, query).select(FEATURE_COLUMNS)
    ids = scored.select(pl.int_range(pl.len(), dtype=pl.Int64).alias("row"), "creator_id")
    return feature_contributions(models, features, target).join(ids, on="row", how="left", maintain_order="left")
