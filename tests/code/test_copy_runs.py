"""``features update`` copies carried matrix rows run by run (``audiencefit.features.update.copy_runs``)."""

from __future__ import annotations

import numpy as np
import pytest

from audiencefit.features.update import copy_runs


@pytest.mark.parametrize("seed", range(8))
def test_copy_runs_equals_a_gather(seed: int) -> None:
    """features update copies carried rows run by run; the result is the gather ``out[at] = source[rows]``."""
    rng = np.random.default_rng(seed)
    source = rng.normal(size=(300, 5)).astype(np.float32)
    n = 250
    kept = np.sort(rng.choice(n, size=int(rng.integers(0, n)), replace=False))  # target rows, ascending
    rows = np.sort(rng.choice(300, size=kept.size, replace=False))  # source rows, ascending, with gaps
    if seed % 2:
        rows = np.arange(kept.size) + 7  # one long run in the source, broken only by the targets
    expected = np.zeros((n, 5), dtype=np.float32)
    expected[kept] = source[rows]
    got = np.zeros((n, 5), dtype=np.float32)
    copy_runs(source, rows, got, kept)
    np.testing.assert_array_equal(got, expected)
    with pytest.raises(ValueError, match="source rows"):
        copy_runs(source, rows[:-1], got, kept) if kept.size else copy_runs(source, np.array([1]), got, kept)
