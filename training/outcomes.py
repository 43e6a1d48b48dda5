"""Forecasts against what happened: a model's forecasts for the campaigns that started after the last campaign it
was fitted on, next to their observed outcomes.

Each campaign's features are computed as training computes them (``audiencefit.training.trainset``: a point-in-time
snapshot at or before its start, so nothing the campaign produced reaches them) and forecast by the bundle's models (the
numbers ``ModelSet.predict`` gives the service for that pair). The comparison uses the evaluation table's metric
code (``audiencefit.training.evaluate.score_forecast``: Poisson deviance, calibration = Σ forecast / Σ observed, the
share of outcomes inside the p10–p90 bands, NDCG@20 per brand) and the calibration deciles of
``audiencefit.training.plots``.

"Since" is the bundle's ``fitted_through`` date (recorded by ``audiencefit train``); bundles from before it was
recorded use ``train_end`` when they were fitted on the training split only.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, replace
from datetime import date
from pathlib import Path
from typing import Any

import polars as pl

from audiencefit.features.dataset import load_dataset
from audiencefit.features.embed_cache import EmbeddingCache
from audiencefit.features.errors import InputError
from audiencefit.features.featureset import load_feature_set
from audiencefit.models.bundle import Bundle
from audiencefit.models.query import query_embedder
from audiencefit.settings import Settings
from audiencefit.training.evaluate import Forecast, model_forecast, score_forecast
from audiencefit.training.plots import calibration_by_decile
from audiencefit.training.trainset import build_training_set

log = logging.getLogger(__name__)

OUTCOME_SCHEMA = pl.Schema(
    {
        "campaign_id": pl.String(),
        "brand_id": pl.String(),
        "creator_id": pl.String(),
        "start_date": pl.Date(),
        "conversions_forecast": pl.Float64(),
        "conversions_p10": pl.Float64(),
        "conversions_p90": pl.Float64(),
        "conversions": pl.Float64(),
        "engagement_rate_forecast": pl.Float64(),
        "engagement_rate": pl.Float64(),
        "conversions_in_band": pl.Boolean(),
    }
)


@dataclass(frozen=True)
class ForecastOutcomes:
    """A bundle's forecasts for the campaigns since ``since`` and what they observed."""

    since: date  # campaigns that started after this day
    rows: pl.DataFrame  # one row per campaign (OUTCOME_SCHEMA), by start date then id
    metrics: dict[str, float]  # score_forecast's metrics over the rows with an observed outcome
    calibration: pl.DataFrame  # mean forecast and observed conversions per decile of the forecast


def fitted_through(meta: dict[str, Any]) -> date:
    """The start date of the last campaign a bundle's models were fitted on (``InputError`` when the bundle does
    not say: one refitted on every campaign before the date was recorded)."""
    training = meta.get("training")
    if not isinstance(training, dict):
        raise InputError("the bundle records no training parameters; cannot tell which campaigns came after it")
    value = training.get("fitted_through")
    if value is None and not training.get("refit_all", False):
        value = training.get("train_end")
    if not isinstance(value, str) or not value:
        raise InputError(
            "the bundle does not record the last campaign it was fitted on (refitted on every campaign before "
            "'fitted_through' was recorded); retrain it, or pass since= explicitly"
        )
    try:
        return date.fromisoformat(value[:10])
    except ValueError:
        raise InputError(f"the bundle's fitted-through date {value!r} is not an ISO date") from None


def compare_outcomes(rows: pl.DataFrame) -> tuple[dict[str, float], pl.DataFrame]:
    """Metrics (``score_forecast``'s, plus how many campaigns and how many with an observed outcome) and calibration
    deciles of forecast rows (OUTCOME_SCHEMA) against their observed outcomes."""
    forecast = Forecast(
        rows["engagement_rate_forecast"].to_numpy(),
        rows["conversions_forecast"].to_numpy(),
        None,
        (rows["conversions_p10"].to_numpy(), rows["conversions_p90"].to_numpy()),
    )
    scored = score_forecast("forecast", rows, forecast)
    metrics = {k: float(v) for k, v in scored.items() if isinstance(v, int | float)}
    metrics["campaigns"] = float(rows.height)
    metrics["campaigns_observed"] = float(rows["conversions"].is_not_null().sum())
    calibration = calibration_by_decile(rows["conversions_forecast"].to_numpy(), rows["conversions"].to_numpy())
    return metrics, calibration


def forecasts_since(
    bundle: Bundle,
    data_dir: Path,
    features_dir: Path,
    settings: Settings,
    *,
    since: date | None = None,
    progress: bool = False,
) -> ForecastOutcomes:
    """The bundle's forecasts for every campaign of ``data_dir`` that started after ``since`` (default: the
    bundle's :func:`fitted_through`), with their observed outcomes and the comparison.

    ``features_dir``: the feature set whose embedder the bundle was trained with (its query embedder embeds the
    briefs). ``InputError`` when the data has no campaign after ``since``.
    """
    since = since if since is not None else fitted_through(bundle.meta)
    fs = load_feature_set(features_dir, verify_checksums=False)
    bundle.check_compatible(fs)
    dataset = load_dataset(data_dir, secret=settings.follower_id_secret.get_secret_value())
    if dataset.campaigns is None or dataset.campaigns.height == 0:
        raise InputError(f"{data_dir}: no campaigns table, or no rows in it: nothing to compare the forecasts with")
    later = dataset.campaigns.filter(pl.col("start_date") > since)
    if later.height == 0:
        last = str(dataset.campaigns["start_date"].max())
        raise InputError(
            f"{data_dir}: no campaign started after {since} (the last one started {last}): add the outcomes of "
            "campaigns since to campaigns.parquet"
        )
    embedder = query_embedder(fs)
    cache = EmbeddingCache(settings.embedding_cache_dir, embedder.id, embedder.dim)
    frame = build_training_set(
        replace(dataset, campaigns=later), embedder=embedder, cache=cache, settings=settings, progress=progress
    ).frame
    forecast = model_forecast(bundle.models, frame)
    if forecast.conv_band is None:
        raise RuntimeError("the models gave no conversion band")
    conv_lo, conv_hi = forecast.conv_band
    rows = pl.DataFrame(
        {
            "campaign_id": frame["campaign_id"],
            "brand_id": frame["brand_id"],
            "creator_id": frame["creator_id"],
            "start_date": frame["start_date"].cast(pl.Date),
            "conversions_forecast": forecast.conversions,
            "conversions_p10": conv_lo,
            "conversions_p90": conv_hi,
            "conversions": frame["conversions"],
            "engagement_rate_forecast": forecast.engagement_rate,
            "engagement_rate": frame["engagement_rate"],
        },
    ).with_columns(
        conversions_in_band=pl.col("conversions").is_between(pl.col("conversions_p10"), pl.col("conversions_p90"))
    )
    rows = rows.select(OUTCOME_SCHEMA.names()).cast(OUTCOME_SCHEMA)
    metrics, calibration = compare_outcomes(rows)
    log.info("forecasts compared with outcomes", extra={"since": str(since), **metrics})
    return ForecastOutcomes(since, rows, metrics, calibration)
