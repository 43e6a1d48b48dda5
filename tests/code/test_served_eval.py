"""The served-population metrics (``audiencefit.training.served_eval.population_metrics``) on constructed cases with
known answers."""

from __future__ import annotations

import math

import numpy as np
import polars as pl
import pytest

from audiencefit.features.errors import InputError
from audiencefit.training.evaluate import ndcg as ndcg_at
from audiencefit.training.served_eval import METRICS, population_metrics


def frame(true_conv: np.ndarray, pred_conv: np.ndarray, brands: list[str], **extra: np.ndarray) -> pl.DataFrame:
    n = len(true_conv)
    true_er = np.linspace(0.01, 0.05, n)
    columns: dict[str, object] = {
        "brand_id": brands,
        "true_conv": true_conv,
        "pred_conv": pred_conv,
        "pred_conv_p10": pred_conv * 0.5,
        "pred_conv_p90": pred_conv * 2.0,
        "drawn_conv": true_conv,
        "true_er": true_er,
        "pred_er": true_er * 2.0,
        "pred_er_p10": true_er,
        "pred_er_p90": true_er * 3.0,
        "drawn_er": true_er * 1.5,
    }
    columns.update(extra)
    return pl.DataFrame(columns)


def test_a_constant_factor_is_bias_without_spread() -> None:
    rng = np.random.default_rng(0)
    true = rng.gamma(2.0, 3.0, 60)
    metrics, per_brand = population_metrics(frame(true, true * math.exp(0.5), ["a"] * 30 + ["b"] * 30))
    assert list(metrics) == [f"served_{m}" for m in METRICS]
    assert metrics["served_bias_log_conv"] == pytest.approx(0.5)
    assert metrics["served_sigma_log_conv"] == pytest.approx(0.0, abs=1e-12)
    assert metrics["served_sd_log_conv"] == pytest.approx(0.0, abs=1e-12)
    assert metrics["served_bias_log_er"] == pytest.approx(math.log(2.0))
    assert metrics["served_sigma_log_er"] == pytest.approx(0.0, abs=1e-12)
    # Ranked by a constant multiple of the truth: the ideal order.
    assert metrics["served_ndcg20"] == pytest.approx(1.0)
    assert per_brand["brand_id"].to_list() == ["a", "b"] and per_brand["candidates"].to_list() == [30, 30]
    renamed, _ = population_metrics(frame(true, true * math.exp(0.5), ["a"] * 30 + ["b"] * 30), "recommended_")
    assert renamed == {k.replace("served_", "recommended_"): v for k, v in metrics.items()}


def test_a_scale_per_brand_leaves_sigma_but_not_sd() -> None:
    true = np.full(40, 4.0)
    pred = np.concatenate([np.full(20, 4.0 * math.exp(-1.0)), np.full(20, 4.0 * math.exp(1.0))])
    metrics, per_brand = population_metrics(frame(true, pred, ["a"] * 20 + ["b"] * 20))
    assert metrics["served_sigma_log_conv"] == pytest.approx(0.0, abs=1e-12)  # each brand's median removed
    assert metrics["served_sd_log_conv"] == pytest.approx(1.0)
    assert metrics["served_bias_log_conv"] == pytest.approx(0.0, abs=1e-12)
    assert per_brand["bias_log_conv"].to_list() == pytest.approx([-1.0, 1.0])


def test_noise_of_known_sigma_is_measured() -> None:
    rng = np.random.default_rng(1)
    true = rng.gamma(2.0, 3.0, 20_000)
    pred = true * np.exp(0.7 * rng.standard_normal(true.size))
    metrics, _ = population_metrics(frame(true, pred, ["a"] * true.size))
    assert metrics["served_sigma_log_conv"] == pytest.approx(0.7, rel=0.03)
    assert metrics["served_bias_log_conv"] == pytest.approx(0.0, abs=0.02)


def test_coverage_counts_drawn_outcomes_inside_the_band_and_skips_untracked_ones() -> None:
    true = np.arange(1.0, 11.0)
    pred = true.copy()
    # Band [p/2, 2p]: 1.0·p is inside, 3·p is outside; NaN (not tracked) is left out.
    drawn = np.array([1.0, 3.0, 1.0, 3.0, 1.0, 3.0, 1.0, 1.0, np.nan, np.nan]) * true
    metrics, per_brand = population_metrics(frame(true, pred, ["a"] * 10, drawn_conv=drawn))
    assert metrics["served_coverage_conv_p10_p90"] == pytest.approx(5 / 8)
    assert metrics["served_coverage_er_p10_p90"] == pytest.approx(1.0)
    assert per_brand["coverage_conv_p10_p90"].to_list() == pytest.approx([5 / 8])


def test_ndcg_by_hand() -> None:
    gains = np.arange(30.0)
    assert ndcg_at(gains, gains) == pytest.approx(1.0)
    # The only gain ranked third: 1/log2(4) of the ideal.
    assert ndcg_at(np.array([3.0, 2.0, 1.0]), np.array([0.0, 0.0, 1.0])) == pytest.approx(0.5)
    # Only the top 20 count.
    assert ndcg_at(-gains, np.r_[1.0, np.zeros(29)]) == pytest.approx(1.0)
    assert ndcg_at(gains, np.r_[1.0, np.zeros(29)]) == 0.0
    # Ties keep the candidates' order (retrieval's), so the result does not depend on luck.
    assert ndcg_at(np.zeros(2), np.array([0.0, 1.0])) == pytest.approx(1.0 / np.log2(3.0))
    assert math.isnan(ndcg_at(gains, np.zeros(30)))


def test_no_candidates_is_an_input_error() -> None:
    empty = frame(np.zeros(0), np.zeros(0), [])
    with pytest.raises(InputError, match="no served candidates"):
        population_metrics(empty)
