"""The conversion model's exposure: the estimated audience in the segment, and bundles trained before it."""

from __future__ import annotations

import json

import numpy as np
import polars as pl
import pytest

from audiencefit.models.estimators import (
    CONVERSION_COLUMNS,
    EXPOSURE_FLOOR,
    FOLLOWER_EXPOSURE,
    SEGMENT_EXPOSURE,
    FeatureMatrix,
    ModelSet,
    exposure_offset,
)
from audiencefit.models.pair_features import FEATURE_COLUMNS


def _frame(n: int, rng: np.random.Generator, fit: np.ndarray | float) -> pl.DataFrame:
    """Feature rows with every column (random), labels, and conversions ∝ followers × audience fit."""
    followers = np.exp(rng.uniform(7.0, 11.0, n))
    data = {c: rng.uniform(0.0, 1.0, n) for c in FEATURE_COLUMNS}
    data["log_followers"] = np.log1p(followers)
    data["audience_fit"] = np.broadcast_to(np.asarray(fit, dtype=np.float64), (n,)).copy()
    data["country_share"] = np.ones(n)
    data["followers"] = followers
    data["conversions"] = rng.poisson(followers * data["audience_fit"] * 2e-3).astype(np.float64)
    data["engagement_rate"] = rng.uniform(0.01, 0.05, n)
    data["cost"] = followers * 0.01
    return pl.DataFrame(data)


def test_segment_exposure_is_followers_times_the_estimated_share_in_segment() -> None:
    frame = pl.DataFrame(
        {
            "log_followers": np.log1p([1000.0, 1000.0, 5000.0, 5000.0]),
            "audience_fit": [0.4, 0.4, -0.1, None],
            "country_share": [1.0, 0.5, 1.0, None],
        }
    )
    expected = np.log([1000 * 0.4, 1000 * 0.2, 5000 * EXPOSURE_FLOOR, 5000 * EXPOSURE_FLOOR])
    np.testing.assert_allclose(exposure_offset(frame, SEGMENT_EXPOSURE), expected, rtol=1e-12)
    np.testing.assert_allclose(exposure_offset(frame, FOLLOWER_EXPOSURE), np.log([1000, 1000, 5000, 5000]))
    matrix = FeatureMatrix(frame, ("log_followers", "audience_fit", "country_share"))
    np.testing.assert_allclose(exposure_offset(matrix, SEGMENT_EXPOSURE), expected, rtol=1e-12)
    with pytest.raises(ValueError, match="unknown conversion exposure"):
        exposure_offset(frame, "views")


def test_predicted_conversions_scale_with_the_audience_in_segment_beyond_the_campaigns_seen() -> None:
    """Past campaigns cover a narrow range of audience fit; the creators a plan draws from fit better. Trees alone
    cannot extrapolate (a follower exposure predicts the same beyond the last split); the segment exposure carries
    the audience term, so twice the in-segment audience predicts twice the conversions."""
    rng = np.random.default_rng(3)
    train = _frame(600, rng, rng.uniform(0.05, 0.2, 600))
    probe = _frame(200, np.random.default_rng(4), 0.2)
    double = probe.with_columns(audience_fit=pl.lit(0.4))

    def ratio(exposure: str) -> float:
        models = ModelSet(FEATURE_COLUMNS, seed=0, exposure=exposure).fit(train)
        return float(models.predict_conversions(double).sum() / models.predict_conversions(probe).sum())

    assert ratio(SEGMENT_EXPOSURE) == pytest.approx(2.0, rel=0.02)
    assert ratio(FOLLOWER_EXPOSURE) < 1.2


def test_the_exposure_is_saved_and_bundles_without_one_predict_with_followers() -> None:
    rng = np.random.default_rng(5)
    train = _frame(300, rng, rng.uniform(0.05, 0.5, 300))
    models = ModelSet(FEATURE_COLUMNS, seed=0).fit(train)
    assert models.exposure == SEGMENT_EXPOSURE
    assert models.conversions_ is not None and models.conversions_.columns == CONVERSION_COLUMNS
    files = models.to_files()
    again = ModelSet.from_files(files)
    assert again.exposure == SEGMENT_EXPOSURE
    np.testing.assert_array_equal(again.predict_conversions(train), models.predict_conversions(train))
    # A bundle written before the exposure was recorded (format 1) was trained on log(followers).
    meta = json.loads(files["models.json"])
    del meta["exposure"]
    old = ModelSet.from_files({**files, "models.json": json.dumps(meta)})
    assert old.exposure == FOLLOWER_EXPOSURE
    raw = old.conversions_.predict_raw(train, exposure_offset(train, FOLLOWER_EXPOSURE)) if old.conversions_ else None
    np.testing.assert_allclose(old.predict_conversions(train), np.exp(raw))
    meta["exposure"] = "views"
    with pytest.raises(ValueError, match="unknown conversion exposure"):
        ModelSet.from_files({**files, "models.json": json.dumps(meta)})
