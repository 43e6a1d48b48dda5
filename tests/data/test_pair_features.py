"""Per-view lookups of pair features: the same answers however they are computed."""

from __future__ import annotations

import numpy as np
import polars as pl

import audiencefit.models.pair_features as pf
from audiencefit.features.featureset import load_feature_set


def test_term_lookups_give_the_same_counts_before_and_after_the_index_is_built(small_features, monkeypatch):
    fs = load_feature_set(small_features)
    terms = fs.terms.group_by("term").agg(pl.len().alias("n")).sort(["n", "term"], descending=[True, False])
    probes = [*terms["term"].head(6).to_list(), "no-such-term"]
    monkeypatch.setattr(pf, "TERM_SCANS_BEFORE_INDEX", 3)
    arrays = pf.ViewArrays(fs)
    scanned = [arrays.term_counts(t) for t in probes[:3]]
    assert arrays._terms is None  # three lookups: scans only
    indexed = [arrays.term_counts(t) for t in probes[:3]]
    assert arrays._terms is not None  # the fourth lookup built the index
    for (rows_a, counts_a), (rows_b, counts_b) in zip(scanned, indexed, strict=True):
        assert np.array_equal(rows_a, rows_b) and np.array_equal(counts_a, counts_b)
        assert len(rows_a) > 0 and np.all(np.diff(rows_a) > 0)
    # Against a direct count from the table.
    row_of = fs.row_of()
    for term in probes:
        rows, counts = arrays.term_counts(term)
        expected = fs.terms.filter(pl.col("term") == term).group_by("creator_id").agg(pl.col("count").sum())
        want = dict(zip([row_of[c] for c in expected["creator_id"]], expected["count"].to_list(), strict=True))
        assert dict(zip(rows.tolist(), counts.tolist(), strict=True)) == {r: float(n) for r, n in want.items()}


def test_the_combined_fit_estimate_matches_the_exact_one_and_ignores_which_rows_are_scored(small_features):
    from audiencefit.models.pair_features import BrandQuery, combined_fit_estimate, fit_scores
    from audiencefit.models.query import Segment

    fs = load_feature_set(small_features)
    rng = np.random.default_rng(5)
    seg = rng.normal(size=(3, fs.audience.shape[1])).astype(np.float32)
    seg /= np.linalg.norm(seg, axis=1, keepdims=True)
    countries = fs.creators["country"].drop_nulls().unique().sort().to_list()[:2]
    query = BrandQuery(
        [Segment("a"), Segment("b", weight=2.0, countries=tuple(countries)), Segment("c", weight=0.5)], seg
    )
    weights = np.array([1.0, 2.0, 0.5], dtype=np.float32)
    rows = np.sort(rng.choice(fs.creators.height, min(400, fs.creators.height), replace=False))
    estimate = combined_fit_estimate(fs, rows, query, weights)
    np.testing.assert_allclose(estimate, fit_scores(fs, rows, query).combined(weights), rtol=1e-5, atol=1e-6)
    # A row's estimate does not depend on the other rows scored with it (the search's cut is reproducible).
    for part in (rows[:1], rows[7:130], rows[::3]):
        np.testing.assert_array_equal(combined_fit_estimate(fs, part, query, weights), estimate[np.isin(rows, part)])
