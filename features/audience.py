"""Per-creator vector representations: bio, recency-weighted content, and audience.

Pure numpy transforms: vectors and row-to-creator indices in, per-creator matrices out. The audience of a
creator is represented twice: a mean vector of its (authentic-looking) followers' profile embeddings, and a
distribution over audience interest clusters (k-means over a key-ordered sample of the follower vectors,
``audiencefit.features.cluster_sample``), so a consumer can estimate the
share of an audience that belongs to a segment. Creators without a usable follower sample get an audience
inferred from their content and are flagged ``audience_source = "content"``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from audiencefit.features.exact_matmul import exact_matmul

F32 = NDArray[np.float32]
I64 = NDArray[np.int64]
BoolArr = NDArray[np.bool_]

# Similarity-to-probability sharpness used when an audience distribution must be inferred from a single
# content vector: cosine differences between interest clusters are small (0.05–0.3), so a temperature of
# 0.05 turns them into a distribution that is peaked but not one-hot.
INFERRED_TEMPERATURE = 0.05


def l2_normalise(matrix: F32) -> F32:
    """Rows scaled to unit length; all-zero rows stay zero (they mean "no representation")."""
    norms = np.linalg.norm(matrix, axis=1, keepdims=True)
    out = np.divide(matrix, norms, out=np.zeros_like(matrix), where=norms > 0)
    return np.asarray(out, dtype=np.float32)


_ROUNDS = 64
"""Rounds of :func:`row_sums` before the rows left go through ``np.add.at``."""


def row_sums(
    vectors: F32, group: I64, n_groups: int, weights: NDArray[np.float64] | None = None
) -> NDArray[np.float64]:
    """(n_groups, dim) float64: per group, the sum of its rows of ``vectors`` (times ``weights`` when given), added in
    row order: bit for bit ``np.add.at(sums, group, vectors.astype(np.float64) * weights[:, None])``.

    ``np.add.at`` on rows was a sixth of a cold feature build (py-spy, 20k creators). Here the rows go in rounds:
    round r adds every group's r-th row (in row order) at once, and within a round no two rows share a group, so
    a plain fancy-indexed add is safe. Each group still receives its rows one by one in the same order, so the
    sums are the same numbers. After :data:`_ROUNDS` rounds the rows left (of the rare groups with more rows: a
    creator with a large follower sample) go through ``np.add.at`` in row order, so no group costs a round per row.
    """
    dim = vectors.shape[1] if vectors.ndim == 2 else 0
    sums = np.zeros((n_groups, dim), dtype=np.float64)
    group = np.asarray(group, dtype=np.int64)
    if len(group) == 0:
        return sums
    if weights is not None and len(weights) != len(group):
        raise ValueError(f"{len(weights)} weights for {len(group)} rows")
    order = np.argsort(group, kind="stable")  # by group, row order kept within each
    ordered = group[order]
    starts = np.flatnonzero(np.r_[True, ordered[1:] != ordered[:-1]])
    sizes = np.diff(np.r_[starts, len(ordered)])
    rank = np.empty(len(ordered), dtype=np.int64)
    rank[order] = np.arange(len(ordered)) - np.repeat(starts, sizes)  # each row's place within its group
    by_rank = np.argsort(rank, kind="stable")
    bounds = np.r_[0, np.cumsum(np.bincount(rank))]
    w = None if weights is None else np.asarray(weights, dtype=np.float64)
    for r in range(min(len(bounds) - 1, _ROUNDS)):
        rows = by_rank[bounds[r] : bounds[r + 1]]
        part = vectors[rows].astype(np.float64)
        if w is not None:
            part *= w[rows][:, None]
        sums[group[rows]] += part
    if len(bounds) - 1 > _ROUNDS:
        # The few groups with more rows than rounds: the rest of their rows in row order (which, within a group, is
        # the order of their places), after the rounds, as np.add.at adds them.
        rest = np.sort(by_rank[bounds[_ROUNDS] :])
        part = vectors[rest].astype(np.float64)
        if w is not None:
            part *= w[rest][:, None]
        np.add.at(sums, group[rest], part)
    return sums


def group_weighted_mean(vectors: F32, group: I64, weights: NDArray[np.float64], n_groups: int) -> tuple[F32, BoolArr]:
    """Weighted mean of ``vectors`` rows per ``group`` index, L2-normalised.

    Returns the (n_groups, dim) matrix and a mask of groups that received any positive weight.
    """
    sums = row_sums(vectors, group, n_groups, weights)
    totals = np.bincount(group, weights=weights, minlength=n_groups) if len(group) else np.zeros(n_groups)
    has = totals > 0
    return l2_normalise(sums.astype(np.float32)), has


def audience_with_content_prior(follower_vectors: F32, group: I64, content: F32, prior_strength: float) -> F32:
    """Audience vector per creator: the sum of its followers' unit profile vectors plus ``prior_strength``
    pseudo-followers who look like the creator's content, normalised.

    A follower sample is small and most profile texts say little ("be kind", "22", a city): summing unit vectors
    lets a coherent audience (many profiles pointing the same way) dominate while generic profiles, pointing in
    scattered directions, cancel out; the content prior keeps a sparse or noisy sample from swinging the estimate.
    """
    n, _ = content.shape
    sums = row_sums(follower_vectors, group, n)
    return l2_normalise((sums + prior_strength * content.astype(np.float64)).astype(np.float32))


def recency_weights(rank_from_newest: I64, half_life_posts: float) -> NDArray[np.float64]:
    """Exponential decay by post rank (0 = newest): a post ``half_life_posts`` older weighs half as much."""
    return np.power(0.5, rank_from_newest.astype(np.float64) / max(half_life_posts, 1e-9))


@dataclass(frozen=True)
class AudienceClusters:
    """Audience interest clusters fitted over follower vectors."""

    centroids: F32  # (k, dim), unit rows

    @property
    def k(self) -> int:
        return int(self.centroids.shape[0])

    def similarities(self, vectors: F32) -> F32:
        """Cosine of each row with each centroid, (n, k); each value depends on its row alone.

        Through ``audiencefit.features.exact_matmul``, not a plain ``vectors @ centroids.T``: BLAS gives a row last bits
        that change with the rows around it, and a partitioned feature build must give the same bytes whatever its
        partitions.
        """
        vectors = np.asarray(vectors, dtype=np.float32)
        if vectors.ndim != 2 or vectors.shape[1] != self.centroids.shape[1]:
            raise ValueError(
                f"vectors of shape {vectors.shape}, the centroids have {self.centroids.shape[1]} dimensions"
            )
        return exact_matmul(vectors, self.centroids.T)

    def assign(self, vectors: F32) -> I64:
        """Nearest centroid (by cosine) of each row."""
        if len(vectors) == 0:
            return np.zeros(0, dtype=np.int64)
        return np.asarray(np.argmax(self.similarities(vectors), axis=1), dtype=np.int64)

    def soft_assign(self, vectors: F32, temperature: float = INFERRED_TEMPERATURE) -> F32:
        """A distribution over clusters for each row (softmax of cosine / temperature)."""
        logits = self.similarities(vectors) / temperature
        logits -= logits.max(axis=1, keepdims=True)
        expd = np.exp(logits)
        return np.asarray(expd / expd.sum(axis=1, keepdims=True), dtype=np.float32)


def fit_audience_clusters(vectors: F32, k: int, seed: int, *, max_points_per_centroid: int = 256) -> AudienceClusters:
    """Spherical k-means over follower vectors (FAISS), deterministic for a seed.

    A sample of ``k * max_points_per_centroid`` points is enough to place the centroids; every follower is then
    assigned to its nearest centroid. The feature build passes at most that many
    (``audiencefit.features.cluster_sample``), so FAISS's own random subsampling never runs there. With fewer points
    than ``k`` the number of clusters shrinks to fit.
    """
    import faiss

    n, dim = vectors.shape
    if n == 0:
        raise ValueError("cannot fit audience clusters on zero vectors")
    k_eff = max(1, min(k, n))
    km = faiss.Kmeans(
        dim,
        k_eff,
        niter=20,
        seed=seed,
        spherical=True,
        max_points_per_centroid=max_points_per_centroid,
        min_points_per_centroid=1,
        verbose=False,
    )
    # One thread: the training sample is small, and OpenMP threads spinning on a busy 2-core machine made this
    # step 50x slower (measured: 1.2 s vs 0.024 s for 4k points).
    threads = faiss.omp_get_max_threads()
    faiss.omp_set_num_threads(1)
    try:
        km.train(np.ascontiguousarray(vectors, dtype=np.float32))
    finally:
        faiss.omp_set_num_threads(threads)
    centroids = l2_normalise(np.asarray(km.centroids, dtype=np.float32))
    # Canonical order (by first coordinate, then the rest) so equal fits give identical cluster ids.
    order = np.lexsort(centroids.T[::-1])
    return AudienceClusters(centroids=np.ascontiguousarray(centroids[order]))


def cluster_distribution(assignments: I64, group: I64, n_groups: int, k: int) -> tuple[F32, I64]:
    """Share of each group's members in each cluster, and the member count per group."""
    counts = np.zeros((n_groups, k), dtype=np.float64)
    if len(group):
        np.add.at(counts, (group, assignments), 1.0)
    totals = counts.sum(axis=1)
    dist = np.divide(counts, totals[:, None], out=np.zeros_like(counts), where=totals[:, None] > 0)
    return dist.astype(np.float32), totals.astype(np.int64)
