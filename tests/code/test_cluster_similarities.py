"""Cluster similarities are exact: a row's cosines do not depend on the rows computed with it (the partitioned
feature build relies on it for byte-identical files), and they match a plain float product to float32 precision."""

from __future__ import annotations

import numpy as np
import pytest

from audiencefit.features.audience import AudienceClusters, l2_normalise
from audiencefit.features.exact_matmul import exact_matmul


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


def test_zero_rows_score_zero_and_shapes_must_fit():
    rng = np.random.default_rng(4)
    clusters = _clusters(rng, k=3, dim=8)
    assert np.array_equal(clusters.similarities(np.zeros((2, 8), dtype=np.float32)), np.zeros((2, 3)))
    with pytest.raises(ValueError, match="dimensions"):
        clusters.similarities(np.zeros((1, 5), dtype=np.float32))


@pytest.mark.parametrize("scale", [1e-6, 1.0, 37.0, 3e4])
def test_exact_matmul_is_row_independent_at_any_magnitude(scale: float):
    rng = np.random.default_rng(5)
    a = (rng.standard_normal((3_000, 384)) * scale).astype(np.float32)
    a[10] = 0.0
    b = (rng.standard_normal((384, 50)) * 3).astype(np.float32)
    whole = exact_matmul(a, b)
    assert whole.dtype == np.float32 and whole.shape == (3_000, 50)
    for lo, hi in ((1, 3_000), (9, 12), (2_047, 2_049)):
        assert np.array_equal(exact_matmul(a[lo:hi], b), whole[lo:hi])
    reference = a.astype(np.float64) @ b.astype(np.float64)
    assert np.abs(whole - reference).max() <= 1e-5 * np.abs(reference).max()
    assert not whole[10].any()


def test_the_static_to_minilm_map_embeds_a_text_the_same_in_any_batch():
    from audiencefit.features.embed_backends.static import apply_linear_map

    rng = np.random.default_rng(6)
    vectors = l2_normalise(rng.standard_normal((200, 384)).astype(np.float32))
    affine = (rng.standard_normal((385, 384)) * 0.2).astype(np.float32)
    batch = apply_linear_map(vectors, affine)
    alone = np.concatenate([apply_linear_map(vectors[i : i + 1], affine) for i in range(200)])
    assert np.array_equal(batch, alone)
    assert np.array_equal(apply_linear_map(vectors[64:128], affine), batch[64:128])
