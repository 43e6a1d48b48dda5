"""audiencefit.models.drift's pure parts: the statistic, the sampling bound, the summary's validation, per-creator
reasons."""

from __future__ import annotations

import math

import numpy as np
import pytest

from audiencefit.features.errors import InputError
from audiencefit.models import drift
from audiencefit.models.drift import NUMERIC, PSI_SHIFT, Reliability, check_features, psi, sampling_bound


def test_psi_is_zero_for_the_same_shares_and_matches_a_hand_computed_case():
    shares = np.array([0.25, 0.25, 0.5])
    assert psi(shares, shares * 4000, n_train=4000) == pytest.approx(0.0, abs=1e-12)
    # Served 50/25/25 against trained 25/25/50 (smoothing of half a creator is negligible at 10^6 creators).
    got = psi(shares, np.array([0.5, 0.25, 0.25]) * 1e6, n_train=10**6)
    expected = (0.5 - 0.25) * math.log(0.5 / 0.25) + (0.25 - 0.5) * math.log(0.25 / 0.5)
    assert got == pytest.approx(expected, rel=1e-4)
    assert expected > PSI_SHIFT


def test_psi_is_finite_when_a_bin_is_empty_on_one_side():
    value = psi(np.array([1.0, 0.0]), np.array([0.0, 100.0]), n_train=100)
    assert math.isfinite(value) and value > 5


def test_the_sampling_bound_shrinks_with_size_and_exceeds_the_null_mean():
    small, large = sampling_bound(11, 600, 150), sampling_bound(11, 3000, 3000)
    assert small > large
    # Under no shift PSI·n_eff ≈ χ²(bins − 1), whose mean is bins − 1: the 99.99th percentile lies well above it.
    assert small * (600 * 150 / 750) > 10 * 2.5
    # Measured on synthetic draws: the PSI of the same distribution sampled twice stays under the bound.
    rng = np.random.default_rng(0)
    train, served = rng.lognormal(size=600), rng.lognormal(size=150)
    edges = np.unique(np.quantile(train, drift.DECILES))
    shares = drift._bin_counts(train, edges) / len(train)
    shares = np.append(shares, 0.0)
    counts = np.append(drift._bin_counts(served, edges), 0.0)
    assert psi(shares, counts, 600) < max(PSI_SHIFT, sampling_bound(len(shares), 600, 150))


def _summary() -> dict:
    entry = {"missing": 0.0, "edges": [1.0, 2.0], "shares": [0.3, 0.4, 0.3], "min": 0.0, "max": 3.0}
    return {
        "method": drift.SUMMARY_METHOD,
        "version": drift.SUMMARY_VERSION,
        "creators": 100,
        "numeric": {"er_median": entry},
        "categorical": {"language": {"shares": {"en": 1.0}}},
    }


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        (lambda s: s.update(method="ks"), "not a 'quantile-bins-psi' summary"),
        (lambda s: s.update(version=99), "version 99"),
        (lambda s: s.update(creators=0), "'creators' must be a positive integer"),
        (lambda s: s.update(creators=True), "'creators' must be a positive integer"),
        (lambda s: s["numeric"]["er_median"].update(shares=[1.0]), "1 shares for 2 edges"),
        (lambda s: s["numeric"]["er_median"].update(edges=[2.0, 1.0]), "ascending"),
        (lambda s: s["numeric"]["er_median"].update(edges=[1.0, float("nan")]), "finite numbers"),
        (lambda s: s["numeric"]["er_median"].update(max="high"), "finite numbers"),
        (lambda s: s["categorical"]["language"].update(shares=[1.0]), "category → share"),
        (lambda s: s.update(numeric=[]), "must be objects"),
    ],
)
def test_a_damaged_summary_is_refused_naming_what_is_wrong(damage, message):
    summary = _summary()
    damage(summary)
    with pytest.raises(InputError, match="feature_summary") as info:
        drift._check_summary(summary)
    assert message in str(info.value)


def test_a_summary_that_is_not_an_object_is_refused():
    with pytest.raises(InputError, match="feature_summary"):
        check_features(["not", "a", "summary"], view=None)  # type: ignore[arg-type]


def test_creator_reasons_name_the_inputs_out_of_range_in_words():
    codes = np.zeros((3, len(NUMERIC)), dtype=np.int8)
    er = NUMERIC.index("er_median")
    codes[1, er] = drift.ABOVE
    codes[2, NUMERIC.index("suspicious_share")] = drift.UNSEEN_MISSING
    reliability = Reliability(
        level="ok",
        reasons=(),
        range_codes=codes,
        training_range={"er_median": (0.001, 0.12), "suspicious_share": (0.0, 0.5)},
    )
    assert reliability.creator_reasons(0) == []
    assert reliability.creator_reasons(1) == [
        "median engagement rate is above anything the model was trained on (highest 12.00%)"
    ]
    assert reliability.creator_reasons(2) == [
        "suspicious share of the follower sample is unknown for this creator, and was known for every training creator"
    ]
    assert reliability.creator_reasons(99) == []
    assert list(reliability.out_of_range_rows()) == [1, 2]
    assert reliability.response_reasons([0, 1]) == [
        "1 of the 2 creator(s) in this answer have inputs outside the range the model was trained on; their own "
        "forecast_reliability says which"
    ]
    assert reliability.response_reasons([0]) == []


def test_an_unknown_reliability_flags_no_creator():
    unknown = drift.unknown(10)
    assert unknown.level == "unknown" and unknown.creator_reasons(3) == []
    assert unknown.response_reasons([1, 2]) == list(unknown.reasons)
    assert unknown.to_json()["creators_out_of_range"] == 0
