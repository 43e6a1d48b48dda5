"""audiencefit.training.outcomes: a bundle's forecasts for the campaigns after its training data, against what they
observed."""

from __future__ import annotations

from datetime import date

import numpy as np
import polars as pl
import pytest

from audiencefit.features.errors import InputError
from audiencefit.models.bundle import load_bundle
from audiencefit.settings import Settings
from audiencefit.training.evaluate import model_forecast
from audiencefit.training.outcomes import OUTCOME_SCHEMA, fitted_through, forecasts_since


@pytest.fixture(scope="module")
def bundle(model_world):
    return load_bundle(model_world["bundle"])


@pytest.fixture(scope="module")
def outcomes(model_world, bundle):
    settings = Settings(data_dir=model_world["data"])
    return forecasts_since(bundle, model_world["world"], model_world["features"], settings)


def test_the_campaigns_since_are_those_after_the_last_one_fitted(model_world, bundle, outcomes) -> None:
    training = bundle.meta["training"]
    assert training["refit_all"] is False
    assert str(outcomes.since) == training["fitted_through"] == training["train_end"][:10]
    campaigns = pl.read_parquet(model_world["world"] / "campaigns.parquet")
    later = campaigns.filter(pl.col("start_date") > outcomes.since)
    assert later.height > 0
    assert sorted(outcomes.rows["campaign_id"].to_list()) == sorted(later["campaign_id"].to_list())
    assert outcomes.rows.schema == OUTCOME_SCHEMA


def test_forecasts_are_the_models_numbers_on_the_point_in_time_features(model_world, bundle, outcomes) -> None:
    trainset = pl.read_parquet(model_world["trainset"])
    same = trainset.join(outcomes.rows.select("campaign_id"), on="campaign_id", how="semi").sort("campaign_id")
    mine = outcomes.rows.sort("campaign_id")
    expected = model_forecast(bundle.models, same)
    np.testing.assert_allclose(mine["conversions_forecast"].to_numpy(), expected.conversions, rtol=1e-9)
    np.testing.assert_allclose(mine["conversions"].to_numpy(), same["conversions"].to_numpy())
    inside = (mine["conversions"] >= mine["conversions_p10"]) & (mine["conversions"] <= mine["conversions_p90"])
    assert mine["conversions_in_band"].to_list() == inside.to_list()


def test_the_comparison_reads_as_the_evaluation_table(outcomes) -> None:
    metrics = outcomes.metrics
    observed = outcomes.rows.filter(pl.col("conversions").is_not_null())
    assert metrics["campaigns"] == outcomes.rows.height and metrics["campaigns_observed"] == observed.height
    assert metrics["calibration"] == pytest.approx(
        observed["conversions_forecast"].sum() / observed["conversions"].sum()
    )
    assert metrics["coverage_conv_p10_p90"] == pytest.approx(observed["conversions_in_band"].mean())
    assert outcomes.calibration["rows"].sum() == observed.height


def test_no_campaign_since_and_an_unknown_fitting_date_are_explained(model_world, bundle) -> None:
    settings = Settings(data_dir=model_world["data"])
    with pytest.raises(InputError, match="no campaign started after 2100-01-01"):
        forecasts_since(bundle, model_world["world"], model_world["features"], settings, since=date(2100, 1, 1))
    with pytest.raises(InputError, match="does not record the last campaign"):
        fitted_through({"training": {"refit_all": True, "train_end": "2025-01-01"}})
    with pytest.raises(InputError, match="no training parameters"):
        fitted_through({})
    assert fitted_through({"training": {"refit_all": False, "train_end": "2025-03-04 00:00:00"}}) == date(2025, 3, 4)
