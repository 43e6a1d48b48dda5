"""Matrix products whose rows do not depend on the rows around them.

BLAS blocks a product by its shape, so ``a @ b`` gives a row's values with last bits that change with the number
of rows in ``a`` and the row's position among them. A feature build split into partitions (or spread over workers)
must give the same bytes whatever the split, so where a batch's rows become features, :func:`exact_matmul` is used:
each row of ``a`` is scaled by a power of two to within ±1 (exact), both sides are rounded to a grid of ``2**-g``
(``g`` = 21 at 384 inner dimensions: below float32's resolution of the result), and the product runs in float64,
where every product and partial sum of grid values is exact. The sum is then the same in any order, kernel, block
or thread count, and BLAS keeps most of its speed (about twice a float32 product).
"""

from __future__ import annotations

import math

import numpy as np
from numpy.typing import NDArray

_MANTISSA_BITS = 53
CHUNK_ROWS = 16_384  # rows per float64 block (~50 MB at 384 dimensions)


def exact_matmul(a: NDArray[np.floating], b: NDArray[np.floating]) -> NDArray[np.float32]:
    """``a @ b`` in float32, each row a function of that row of ``a`` and of ``b`` only (see the module docstring)."""
    left = np.asarray(a, dtype=np.float32)
    right = np.asarray(b, dtype=np.float32)
    if left.ndim != 2 or right.ndim != 2 or left.shape[1] != right.shape[0]:
        raise ValueError(f"cannot multiply shapes {left.shape} and {right.shape}")
    n, inner = left.shape
    # |row| ≤ 2**g and |b| ≤ 2**g on the grid: products ≤ 2**2g, a sum of `inner` of them < 2**(bits + 2g) ≤ 2**52.
    bits = max(1, math.ceil(math.log2(max(inner, 2))))
    grid = (_MANTISSA_BITS - 1 - bits) // 2
    b_max = float(np.abs(right).max()) if right.size else 0.0
    b_exp = math.frexp(b_max)[1]  # b_max < 2**b_exp
    right_grid = np.rint(right.astype(np.float64) * math.ldexp(1.0, grid - b_exp))
    out = np.empty((n, right.shape[1]), dtype=np.float32)
    for start in range(0, n, CHUNK_ROWS):
        block = left[start : start + CHUNK_ROWS].astype(np.float64)
        row_max = np.abs(block).max(axis=1) if inner else np.zeros(len(block))
        row_exp = np.frexp(row_max)[1].astype(np.float64)  # row_max < 2**row_exp (0 for a zero row)
        block = np.rint(block * np.exp2(grid - row_exp)[:, None])
        exact = block @ right_grid
        out[start : start + len(block)] = exact * np.exp2(row_exp + b_exp - 2 * grid)[:, None]
    return out
