"""Exploration: a share of a recommendation's slots given to creators the model ranks lower, with known propensities.

The service shows what its model ranks best; the outcomes it later learns from are then only on creators the model
already liked, so its errors elsewhere are never seen. With an exploration share ε and ``k`` results,
``m = round(ε·k)`` slots (half up) are exploratory:

- the top ``k − m`` candidates by the objective are shown as without exploration (propensity 1);
- the ``m`` others are Thompson-sampled from the remaining candidates (the *pool*) with the forecast's own
  uncertainty: ``R`` joint draws of every pool candidate's objective are made from its predictive distribution
  (:func:`gamma_sampler` for expected conversions, :func:`lognormal_sampler` for engagements), each draw picks its
  top ``m``, and one of the ``R`` draws, chosen uniformly, is shown.

A pool candidate's propensity is the share of the ``R`` draws that pick it: given the draws, that is exactly the
probability that it is shown (the shown draw is uniform among them), so every shown creator has a propensity of at
least ``1/R``, and the propensities over the whole pool sum to ``m``. Training can weight an outcome by
``1/propensity`` (or use the propensity in a doubly robust estimate) to correct for how the creator came to be shown.

Everything is seeded: the same candidates, objective values, share and seed give the same picks. The service seeds
with the request's ``seed`` or a hash of the request (:func:`derive_seed`); batch jobs and simulations call
:func:`select` with their own. Pure numpy: no I/O, no model.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

DRAWS = 1000  # joint Thompson draws per request: propensities are multiples of 1/DRAWS
MAX_SHARE = 0.5  # at most half of a list is exploratory: a brand still gets the model's best creators first
Z90 = 1.2815515655446004  # standard normal 90th percentile: a p10–p90 band is 2·Z90 standard deviations wide

Sampler = Callable[[np.random.Generator, np.ndarray, int], np.ndarray]
"""``sampler(rng, pool, draws)``: a ``(draws, len(pool))`` array of sampled objective values for the candidates at
positions ``pool`` (draws are rows: one joint sample of every pool candidate per row)."""


@dataclass(frozen=True)
class Exploration:
    """What a request asks for: the share of exploratory slots, the seed, the number of joint draws."""

    share: float
    seed: int
    draws: int = DRAWS

    def __post_init__(self) -> None:
        if not (isinstance(self.share, float | int) and 0.0 <= self.share <= MAX_SHARE):
            raise ValueError(f"exploration share must be in [0, {MAX_SHARE}], got {self.share!r}")
        if self.draws < 1:
            raise ValueError(f"exploration draws must be at least 1, got {self.draws}")


@dataclass(frozen=True)
class Selection:
    """What to show, in response order, and how likely each shown candidate was (positions into the candidates)."""

    order: np.ndarray  # candidate positions shown: the exploited ones by the objective, then the explored ones
    propensity: np.ndarray  # P(shown) of each shown candidate, in (0, 1]
    explored: np.ndarray  # bool: shown by exploration, not by rank
    pool: np.ndarray  # candidate positions exploration chose from (every one not shown by rank)
    pool_propensity: np.ndarray  # P(shown) of each pool candidate: sums to ``slots``
    slots: int  # exploratory slots filled (m, or fewer when the pool is smaller)
    draws: int


def exploratory_slots(share: float, k: int) -> int:
    """``round(share · k)``, halves rounded up (Python's ``round`` would send 0.5 to 0 and 2.5 to 2)."""
    return math.floor(share * k + 0.5 + 1e-9)


def derive_seed(content: bytes) -> int:
    """A seed from a request's content (63 bits of its SHA-256): the same request explores the same way."""
    return int.from_bytes(hashlib.sha256(content).digest()[:8], "big") >> 1


def rank_order(key: np.ndarray, ids: np.ndarray) -> np.ndarray:
    """Positions by ``key`` descending, ties by id ascending (``audiencefit.models.scoring``'s order)."""
    return np.lexsort((ids, -np.asarray(key, dtype=np.float64)))


def select(
    key: np.ndarray, ids: np.ndarray, k: int, exploration: Exploration | None, sampler: Sampler | None
) -> Selection:
    """The ``k`` candidates to show (fewer when there are fewer), ``round(share·k)`` of them Thompson-sampled.

    ``key`` is each candidate's objective (its expected value), ``ids`` its id (ties), ``sampler`` draws objective
    values from each candidate's predictive distribution (needed only when a slot is exploratory).
    """
    key = np.asarray(key, dtype=np.float64)
    n = len(key)
    if len(ids) != n:
        raise ValueError(f"{len(ids)} ids for {n} candidates")
    if k < 1:
        raise ValueError(f"k must be at least 1, got {k}")
    ranked = rank_order(key, ids)
    m = exploratory_slots(exploration.share, k) if exploration is not None else 0
    top = ranked[: min(k - m, n)]
    pool = ranked[len(top) :]
    slots = min(m, len(pool))
    draws = exploration.draws if exploration is not None else DRAWS
    if slots == 0:
        return _selection(top, np.empty(0, np.int64), pool, np.zeros(len(pool)), 0, draws, key, ids)
    if slots == len(pool):  # every remaining candidate is shown, whatever the draws
        return _selection(top, pool, pool, np.ones(len(pool)), slots, draws, key, ids)
    assert exploration is not None
    if sampler is None:
        raise ValueError("exploration needs a sampler of the objective's predictive distribution")
    rng = np.random.default_rng(exploration.seed)
    samples = np.asarray(sampler(rng, pool, draws))
    if samples.shape != (draws, len(pool)):
        raise ValueError(f"sampler returned shape {samples.shape}, expected {(draws, len(pool))}")
    picks = top_per_row(np.nan_to_num(samples, nan=-np.inf), slots)
    counts = np.bincount(picks.reshape(-1), minlength=len(pool))
    pool_propensity = counts / draws
    shown = int(rng.integers(draws))
    return _selection(top, pool[picks[shown]], pool, pool_propensity, slots, draws, key, ids)


SMALL_TOP = 8  # up to this many slots, repeated argmax beats argpartition (measured: 0.9 vs 8.8 ms, 1000×184)


def top_per_row(samples: np.ndarray, m: int) -> np.ndarray:
    """The column positions of each row's ``m`` largest values (``(rows, m)``; their order within a row is not
    meaningful): repeated argmax for a few, ``argpartition`` for more; deterministic for the same input."""
    if m > SMALL_TOP:
        return np.argpartition(-samples, m - 1, axis=1)[:, :m]
    work = samples.copy()
    rows = np.arange(samples.shape[0])
    out = np.empty((samples.shape[0], m), dtype=np.int64)
    for i in range(m):
        best = np.argmax(work, axis=1)
        out[:, i] = best
        work[rows, best] = -np.inf
    return out


def _selection(
    top: np.ndarray,
    explored: np.ndarray,
    pool: np.ndarray,
    pool_propensity: np.ndarray,
    slots: int,
    draws: int,
    key: np.ndarray,
    ids: np.ndarray,
) -> Selection:
    explored = explored[rank_order(key[explored], ids[explored])]  # shown by the objective within the explored
    where = {int(p): i for i, p in enumerate(pool)}
    propensity = np.concatenate([np.ones(len(top)), pool_propensity[[where[int(p)] for p in explored]]])
    return Selection(
        order=np.concatenate([top, explored]).astype(np.int64),
        propensity=propensity.astype(np.float64),
        explored=np.concatenate([np.zeros(len(top), bool), np.ones(len(explored), bool)]),
        pool=pool.astype(np.int64),
        pool_propensity=np.asarray(pool_propensity, dtype=np.float64),
        slots=slots,
        draws=draws,
    )


def gamma_sampler(mean: np.ndarray, theta: float) -> Sampler:
    """Expected conversions drawn from the conversion model's own uncertainty about them.

    The model's predictive distribution of a count is a negative binomial with mean μ and dispersion θ (its p10–p90
    band, ``audiencefit.models.estimators``), i.e. a Poisson whose rate is Gamma(shape θ, scale μ/θ): the draws are of
    that rate.
    """
    mean = np.maximum(np.asarray(mean, dtype=np.float64), 1e-12)
    if not theta > 0:
        raise ValueError(f"theta must be positive, got {theta}")

    scale = (mean / theta).astype(np.float32)

    def sample(rng: np.random.Generator, pool: np.ndarray, draws: int) -> np.ndarray:
        # float32: the draws only order candidates, and single precision halves the sampling time
        draw = rng.standard_gamma(theta, size=(draws, len(pool)), dtype=np.float32)
        return np.asarray(draw * scale[pool])

    return sample


def lognormal_sampler(mean: np.ndarray, p10: np.ndarray, p90: np.ndarray) -> Sampler:
    """Values drawn log-normally around ``mean`` with the spread of their p10–p90 band (σ = log(p90/p10) / 2·z₀.₉).

    ``mean``, ``p10`` and ``p90`` are per candidate (``p90 ≥ p10 > 0``; a collapsed band draws the mean itself).
    """
    mean = np.maximum(np.asarray(mean, dtype=np.float64), 1e-300)
    lo = np.maximum(np.asarray(p10, dtype=np.float64), 1e-300)
    hi = np.maximum(np.asarray(p90, dtype=np.float64), lo)
    sigma = np.log(hi / lo) / (2 * Z90)

    def sample(rng: np.random.Generator, pool: np.ndarray, draws: int) -> np.ndarray:
        z = rng.standard_normal((draws, len(pool)), dtype=np.float32)
        return np.asarray(mean[pool] * np.exp(sigma[pool] * z), dtype=np.float64)

    return sample
