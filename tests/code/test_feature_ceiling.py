"""audiencefit.training.feature_ceiling: the out-of-fold error of a model given the served population's true labels."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest

from audiencefit.features.errors import InputError
from audiencefit.models.pair_features import FEATURE_COLUMNS
from audiencefit.training.feature_ceiling import ceiling


def _frame(label_noise: float, seed: int = 0) -> pl.DataFrame:
    rng = np.random.default_rng(seed)
    n_brands, per_brand = 10, 60
    n = n_brands * per_brand
    x = rng.normal(size=(n, len(FEATURE_COLUMNS)))
    log_true = 2.0 * x[:, 0] + 0.5 * x[:, 1] + label_noise * rng.normal(size=n)
    served = log_true + rng.normal(size=n)  # a served model off by σ = 1
    return pl.DataFrame(x, schema=list(FEATURE_COLUMNS)).with_columns(
        brand_id=pl.Series([f"b{i // per_brand}" for i in range(n)]),
        true_conv=pl.Series(np.exp(log_true)),
        pred_conv=pl.Series(np.exp(served)),
    )


def test_labels_the_features_determine_are_learned_far_below_the_served_error() -> None:
    result = ceiling(_frame(label_noise=0.0), folds=5, rounds=150)
    assert result.rows == 600 and result.brands == 10
    assert result.metrics["served_sigma_log_conv"] == pytest.approx(1.0, abs=0.08)
    assert result.metrics["by_brand_sigma_log_conv"] < 0.35
    assert result.metrics["by_creator_sigma_log_conv"] < 0.35
    assert abs(result.metrics["by_brand_bias_log_conv"]) < 0.1


def test_what_the_features_do_not_carry_stays_in_the_ceiling() -> None:
    # Half of log(true) is noise no feature sees: no model of these inputs gets below it.
    result = ceiling(_frame(label_noise=1.0), folds=5, rounds=150)
    assert result.metrics["by_brand_sigma_log_conv"] > 0.95
    assert result.metrics["by_creator_sigma_log_conv"] > 0.95


def test_too_few_brands_or_folds_are_refused() -> None:
    with pytest.raises(InputError, match="folds must be at least 2"):
        ceiling(_frame(0.0), folds=1)
    with pytest.raises(InputError, match="cannot make 20 folds"):
        ceiling(_frame(0.0), folds=20)
