"""Cluster similarities are exact: a row's cosines do not depend on the rows computed with it (the partitioned
feature build relies on it for byte-identical files), and they match a plain float product to float32 precision."""

from __future__ import annotations

import numpy as np
import pytest

from features.audience import AudienceClusters, l2_normalise


def _clusters(rng: np.random.Generator, k: int = 24, dim: int = 384) -> AudienceClusters:
    return AudienceClusters(centroids=l2_normalise(rng.standard_normal((k, dim)).astype(np.float32)))


def test_a_rows_similarities_do_not_depend_on_its_neighbours():
    rng = np.random.default_rng(3)
    clusters = _clusters(rng)
    vectors = l2_normalise(rng.standard_normal((20_000, 384)).astype(np.float32))
    whole = clusters.similarities(vectors)
    for lo, hi in ((1, 20_000), (7, 9_000), (16_383, 16_390), (5, 6)):
        assert np.array_equal(clusters.similarities(vectors[lo:hi]), whole[lo:hi])
    # The plain BLAS product is not position-independent, but the exact one stays within float32 precision of it.
    assert np.abs(whole - vectors @ clusters.centroids.T).max() < 1e-5
    assert np.array_equal(clusters.assign(vectors[3:4]), clusters.assign(vectors)[3:4])
    soft = clusters.soft_assign(vectors)
    assert np.allclose(soft.sum(axis=1), 1.0, atol=1e-5)
    assert np.array_equal(clusters.soft_assign(vectors[100:200]), soft[100:200])


def test_zero_rows_score_zero_and_out_of_range_components_are_refused():
    rng = np.random.default_rng(4)
    clusters = _clusters(rng, k=3, dim=8)
    assert np.array_equal(clusters.similarities(np.zeros((2, 8), dtype=np.float32)), np.zeros((2, 3)))
    with pytest.raises(ValueError, match="within ±2"):
        clusters.similarities(np.full((1, 8), 3.0, dtype=np.float32))
    with pytest.raises(ValueError, match="dimensions"):
        clusters.similarities(np.zeros((1, 5), dtype=np.float32))
