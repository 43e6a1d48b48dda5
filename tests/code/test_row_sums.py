"""``audiencefit.features.audience.row_sums``: per-group sums of vector rows, the numbers ``np.add.at`` gives."""

from __future__ import annotations

import numpy as np
import pytest

from audiencefit.features.audience import audience_with_content_prior, group_weighted_mean, row_sums


def _add_at(vectors: np.ndarray, group: np.ndarray, n_groups: int, weights: np.ndarray | None) -> np.ndarray:
    sums = np.zeros((n_groups, vectors.shape[1]), dtype=np.float64)
    scaled = vectors.astype(np.float64) if weights is None else vectors.astype(np.float64) * weights[:, None]
    np.add.at(sums, group, scaled)
    return sums


@pytest.mark.parametrize("seed", range(12))
def test_row_sums_are_bit_for_bit_np_add_at(seed: int) -> None:
    rng = np.random.default_rng(seed)
    n_groups = int(rng.integers(1, 200))
    n = int(rng.integers(0, 4000))
    group = rng.integers(0, n_groups, n)
    if seed % 3 == 0:
        group = np.sort(group)  # creators' rows usually arrive together
    if seed % 4 == 1:
        group[: n // 2] = 0  # one creator with half the rows: more rows than rounds
    if seed % 4 == 2:
        group[rng.random(n) < 0.3] = n_groups - 1  # a large group spread over the rows
    vectors = (rng.standard_normal((n, 9)) * 10.0 ** rng.integers(-3, 4, (n, 1))).astype(np.float32)
    weights = rng.random(n) if seed % 2 else None
    expected = _add_at(vectors, group, n_groups, weights)
    got = row_sums(vectors, group, n_groups, weights)
    assert got.dtype == np.float64 and got.shape == (n_groups, 9)
    np.testing.assert_array_equal(got, expected)


def test_groups_without_rows_stay_zero_and_no_rows_give_zeros() -> None:
    vectors = np.ones((3, 4), dtype=np.float32)
    sums = row_sums(vectors, np.array([4, 4, 1]), 6)
    assert sums[[0, 2, 3, 5]].sum() == 0 and sums[4].tolist() == [2.0] * 4 and sums[1].tolist() == [1.0] * 4
    empty = row_sums(np.zeros((0, 4), dtype=np.float32), np.zeros(0, dtype=np.int64), 3)
    assert empty.shape == (3, 4) and not empty.any()


def test_weights_of_another_length_are_refused() -> None:
    with pytest.raises(ValueError, match="2 weights for 3 rows"):
        row_sums(np.ones((3, 4), dtype=np.float32), np.array([0, 1, 1]), 2, np.ones(2))


def test_the_audience_means_use_them_unchanged() -> None:
    rng = np.random.default_rng(5)
    vectors = rng.standard_normal((500, 16)).astype(np.float32)
    group = rng.integers(0, 40, 500)
    weights = rng.random(500)
    means, has = group_weighted_mean(vectors, group, weights, 41)
    sums = _add_at(vectors, group, 41, weights).astype(np.float32)
    norms = np.linalg.norm(sums, axis=1, keepdims=True)
    np.testing.assert_array_equal(means, np.divide(sums, norms, out=np.zeros_like(sums), where=norms > 0))
    np.testing.assert_array_equal(has, np.bincount(group, weights=weights, minlength=41) > 0)
    assert not has[40]
    content = rng.standard_normal((40, 16)).astype(np.float32)
    prior = audience_with_content_prior(vectors, group, content, 2.0)
    raw = (_add_at(vectors, group, 40, None) + 2.0 * content.astype(np.float64)).astype(np.float32)
    raw_norms = np.linalg.norm(raw, axis=1, keepdims=True)
    np.testing.assert_array_equal(prior, np.divide(raw, raw_norms, out=np.zeros_like(raw), where=raw_norms > 0))
