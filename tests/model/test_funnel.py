"""The funnel conversion model: reach × click rate × conversion rate, each stage from the campaigns' own counts."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
import pytest

from audiencefit.models import estimators
from audiencefit.models.bundle import FUNNEL_BUNDLE_FORMAT, load_bundle, save_bundle
from audiencefit.models.estimators import (
    DIRECT_STRUCTURE,
    FUNNEL_STAGES,
    FUNNEL_STRUCTURE,
    MIN_STAGE_ROWS,
    QUANTILES,
    ModelSet,
    calibrated_dispersion,
    exposure_offset,
    negbin_quantiles,
)
from audiencefit.models.pair_features import FEATURE_COLUMNS

STAGE = {s.name: s for s in FUNNEL_STAGES}


def _campaigns(n: int, seed: int) -> pl.DataFrame:
    """Feature rows (random) and funnel counts: reach share falls with size, clicks and purchases rise with fit;
    some campaigns did not report their reach, or their clicks and conversions."""
    rng = np.random.default_rng(seed)
    followers = np.exp(rng.uniform(7.0, 11.0, n))
    data = {c: rng.uniform(0.0, 1.0, n) for c in FEATURE_COLUMNS}
    fit = rng.uniform(0.05, 0.6, n)
    data.update(log_followers=np.log1p(followers), audience_fit=fit, country_share=np.ones(n), followers=followers)
    reach = rng.poisson(followers * 0.3 * (followers / 5_000.0) ** -0.15).astype(np.float64)
    clicks = rng.poisson(reach * 0.01 * (0.1 + 2.0 * fit)).astype(np.float64)
    conversions = rng.binomial(clicks.astype(np.int64), 0.05 * (0.2 + 2.0 * fit)).astype(np.float64)
    reach[rng.random(n) < 0.1] = np.nan
    unreported = rng.random(n) < 0.05
    clicks[unreported] = np.nan
    conversions[unreported] = np.nan
    data.update(reach=reach, clicks=clicks, conversions=conversions)
    data.update(engagement_rate=rng.uniform(0.01, 0.05, n), cost=followers * 0.01)
    return pl.DataFrame(data)


@pytest.fixture(scope="module", autouse=True)
def _few_rounds() -> Iterator[None]:
    """At most 60 boosting rounds per model: what is tested here does not depend on the count, test time does."""
    fit_rounds = estimators._fit_rounds

    def few(
        params: dict[str, Any],
        x: np.ndarray,
        y: np.ndarray,
        init: np.ndarray | None,
        rounds: int,
        weight: np.ndarray | None = None,
    ) -> Any:
        return fit_rounds(params, x, y, init, min(rounds, 60), weight)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(estimators, "_fit_rounds", few)
        yield


@pytest.fixture(scope="module")
def train() -> pl.DataFrame:
    return _campaigns(300, 1)


@pytest.fixture(scope="module")
def funnel(train: pl.DataFrame) -> ModelSet:
    return ModelSet(FEATURE_COLUMNS, seed=0, conversion_structure=FUNNEL_STRUCTURE).fit(train)


def test_the_funnel_predicts_reach_times_click_rate_times_conversion_rate(
    funnel: ModelSet, train: pl.DataFrame
) -> None:
    assert funnel.conversions_ is None
    assert set(funnel.conversion_models()) == {"funnel_reach", "funnel_clicks", "funnel_conversions"}
    stages = funnel.predict_stages(train)
    np.testing.assert_array_equal(funnel.predict_conversions(train), stages["conversions"])
    assert np.all(stages["clicks"] < stages["reach"]) and np.all(stages["conversions"] < stages["clicks"])
    # Each stage is learned from its own counts: the totals come out at the campaigns' levels.
    for count in ("reach", "clicks", "conversions"):
        seen = np.isfinite(train[count].to_numpy())
        assert stages[count][seen].sum() == pytest.approx(np.nansum(train[count].to_numpy()), rel=0.1)
    predicted = funnel.predict(train)
    assert predicted["conversions"].to_numpy().tolist() == stages["conversions"].tolist()
    assert (predicted["conversions_p10"] <= predicted["conversions"]).all()
    assert (predicted["conversions"] <= predicted["conversions_p90"]).all()


def test_a_funnel_bundle_saves_and_loads_with_the_same_predictions(
    funnel: ModelSet, train: pl.DataFrame, tmp_path: Path
) -> None:
    files = funnel.to_files()
    assert json.loads(files["models.json"])["conversion_structure"] == FUNNEL_STRUCTURE
    again = ModelSet.from_files(files)
    assert again.conversion_structure == FUNNEL_STRUCTURE
    np.testing.assert_array_equal(again.predict_conversions(train), funnel.predict_conversions(train))
    meta = save_bundle(funnel, tmp_path / "bundle", embedder_id="test", extra={})
    assert meta["format"] == FUNNEL_BUNDLE_FORMAT  # code that knows only the direct model refuses it
    loaded = load_bundle(tmp_path / "bundle").models
    assert loaded.conversion_structure == FUNNEL_STRUCTURE
    np.testing.assert_array_equal(loaded.predict(train).to_numpy(), funnel.predict(train).to_numpy())
    # A funnel bundle missing a stage is refused by name.
    meta_json = json.loads(files["models.json"])
    del meta_json["models"]["funnel_clicks"]
    with pytest.raises(ValueError, match="without its stage"):
        ModelSet.from_files({**files, "models.json": json.dumps(meta_json)})
    meta_json["conversion_structure"] = "cascade"
    with pytest.raises(ValueError, match="unknown conversion structure"):
        ModelSet.from_files({**files, "models.json": json.dumps(meta_json)})


def test_bundles_without_a_structure_load_as_the_direct_model(funnel: ModelSet, train: pl.DataFrame) -> None:
    """Every bundle written before the structure was recorded has one conversion model over the exposure."""
    files = dict(funnel.to_files())
    meta = json.loads(files["models.json"])
    del meta["conversion_structure"]
    # An earlier bundle's layout: one Poisson model, conversions_mean (any tree model over its columns will do).
    meta["models"]["conversions_mean"] = meta["models"].pop("funnel_conversions")
    files["conversions_mean.txt"] = files.pop("funnel_conversions.txt")
    for name in ("funnel_reach", "funnel_clicks"):
        del meta["models"][name], files[f"{name}.txt"]
    old = ModelSet.from_files({**files, "models.json": json.dumps(meta)})
    assert old.conversion_structure == DIRECT_STRUCTURE and not old.funnel_ and old.conversions_ is not None
    expected = np.exp(old.conversions_.predict_raw(train, exposure_offset(train, old.exposure)))
    np.testing.assert_array_equal(old.predict_conversions(train), expected)
    assert "conversion_structure" not in json.loads(old.to_files()["models.json"])  # and saves as it was
    del meta["models"]["conversions_mean"]
    with pytest.raises(ValueError, match="'conversions_mean' missing"):
        ModelSet.from_files({**files, "models.json": json.dumps(meta)})


def test_the_funnels_directions_hold_for_every_creator(funnel: ModelSet, train: pl.DataFrame) -> None:
    """More audience fit never lowers expected clicks or conversions; a larger account reaches a smaller (never
    larger) share of its followers; a more suspicious audience never raises any stage."""
    probe = train.head(60)

    def stages_along(column: str, values: np.ndarray) -> dict[str, np.ndarray]:
        runs = [funnel.predict_stages(probe.with_columns(pl.lit(float(v)).alias(column))) for v in values]
        return {k: np.stack([r[k] for r in runs]) for k in runs[0]}  # (len(values), rows)

    fit = stages_along("audience_fit", np.linspace(0.0, 1.0, 21))
    assert np.all(np.diff(fit["conversions"], axis=0) >= -1e-9 * fit["conversions"][1:])
    assert np.all(np.diff(fit["clicks"], axis=0) >= -1e-9 * fit["clicks"][1:])
    assert np.all(fit["conversions"][-1] > fit["conversions"][0])  # and it does move: fit matters in the data

    sizes = np.linspace(7.0, 12.0, 21)
    size = stages_along("log_followers", sizes)
    reach_share = size["reach"] / np.expm1(sizes)[:, None]
    assert np.all(np.diff(reach_share, axis=0) <= 1e-9 * reach_share[1:])
    assert np.all(reach_share[-1] < reach_share[0])

    fake = stages_along("suspicious_share", np.linspace(0.0, 1.0, 11))
    for values in fake.values():
        assert np.all(np.diff(values, axis=0) <= 1e-9 * values[1:])


def test_a_stage_learns_only_from_campaigns_reporting_its_count_and_exposure(train: pl.DataFrame) -> None:
    models = ModelSet(FEATURE_COLUMNS, seed=0, conversion_structure=FUNNEL_STRUCTURE)
    # Unreported counts are left out, not read as zero: the stage fitted on the frame with nulls is the stage
    # fitted on the reporting rows alone (the same model text).
    for stage in FUNNEL_STAGES:
        reporting = pl.col(stage.count).is_not_null()
        if stage.exposure is not None:
            reporting &= pl.col(stage.exposure).is_not_null() & (pl.col(stage.exposure) > 0)
        with_nulls = models._fit_stage(stage, train).to_text()
        assert with_nulls == models._fit_stage(stage, train.filter(reporting)).to_text()
    # The clicks stage needs the reach as its exposure: campaigns without it do not teach click rates, but their
    # clicks and conversions still teach conversion rates.
    no_reach = train.with_columns(reach=pl.when(pl.arange(0, train.height) < 290).then(None).otherwise(pl.col("reach")))
    with pytest.raises(ValueError, match=rf"funnel stage 'clicks' needs at least {MIN_STAGE_ROWS} campaigns"):
        models._fit_stage(STAGE["clicks"], no_reach)
    models._fit_stage(STAGE["conversions"], no_reach)


def test_feature_importance_reads_every_funnel_stage(funnel: ModelSet) -> None:
    from audiencefit.training.plots import feature_importance

    table = feature_importance(funnel)
    assert table["gain_conversions"].sum() == pytest.approx(1.0)  # each stage's share of its gain, averaged
    reach_only = {"views_per_follower", "er_median"} & set(FUNNEL_STAGES[0].columns)
    assert table.filter(pl.col("feature").is_in(list(reach_only)))["gain_conversions"].sum() > 0


def test_the_funnels_band_is_calibrated_on_newer_rows() -> None:
    """θ gives the narrowest band covering 80% of held-out counts (the next narrower one covers less); the band of
    the θ the counts were drawn with covers more than 80% (inclusive bounds on counts), and is at least as wide."""
    rng = np.random.default_rng(7)
    mu = np.exp(rng.uniform(-1.0, 3.0, 3_000))
    y = rng.negative_binomial(2.0, 2.0 / (2.0 + mu)).astype(np.float64)

    def covered(theta: float) -> float:
        lo, hi = negbin_quantiles(mu, theta, QUANTILES)
        return float(np.mean((y >= np.minimum(lo, mu)) & (y <= np.maximum(hi, mu))))

    theta = calibrated_dispersion(y, mu)
    assert theta >= 2.0
    assert covered(2.0) >= covered(theta) >= 0.8 > covered(theta * 1.2)
