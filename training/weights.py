"""Inverse-propensity weights for training rows that came from our own recommendations.

A campaign whose creator the service showed (``campaigns.recommendation_id`` joined to the recommendation log,
``audiencefit.training.shown``) carries the probability ``p`` that creator had of being shown for that request. Rows
with a small ``p`` stand for many candidates like them that were not shown; weighting each by ``1 / p`` makes the
recommended rows, together, describe the population the service ranks rather than the creators it happened to
put first. Three choices, argued in docs/evaluation.md ("Learning from our own recommendations"):

- **clipped** at ``max_weight`` (``1 / p`` above it becomes ``max_weight``; counted as ``clipped``): one outcome of
  a creator shown with probability 0.001 would otherwise count as a thousand campaigns, and a single overdispersed
  count would set a leaf. Clipping trades a bounded bias (toward the shown population) for bounded variance.
- **self-normalised** over the recommended rows: their weights are rescaled to mean 1, so the recommended rows
  keep, as a group, the influence their count gives them, and only their mix is corrected.
- rows not from recommendations (no id, or an id the log does not know) keep weight 1: how those creators were
  picked is unknown, so nothing can correct it.
- optionally (``share``, ``AUDIENCEFIT_RECOMMENDED_WEIGHT_SHARE``; off by default), the recommended rows as a group
  are given at least that share of the total weight: they are the only rows drawn from the population the model
  is applied to, and a few hundred of them among thousands of past picks move a fit little. Their mix stays the
  propensities'.

The function is pure: propensities in, weights and their diagnostics out.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

DEFAULT_MAX_WEIGHT = 20.0  # the default of settings.ipw_max_weight


@dataclass(frozen=True)
class PropensityWeights:
    """Sample weights, one per row, and how they came about."""

    weights: np.ndarray  # 1 for rows not from recommendations; mean 1 over the recommended rows
    recommended: int  # rows with a propensity (from a recommendation)
    clipped: int  # recommended rows whose 1/p exceeded max_weight
    max_weight: float
    ess: float  # Kish effective sample size of all rows, (Σw)² / Σw² (= the row count when every weight is 1)
    ess_recommended: float  # the same over the recommended rows only (0 when there are none)
    share_factor: float = 1.0  # how much the recommended rows were scaled up to reach ``share`` (1: not at all)

    @property
    def uniform(self) -> bool:
        """Every weight is 1 (no recommended rows, or all with the same propensity): fitting ignores them."""
        return bool(np.allclose(self.weights, 1.0, rtol=0.0, atol=1e-12))

    def summary(self) -> dict[str, float | int]:
        return {
            "ipw_recommended_rows": self.recommended,
            "ipw_clipped": self.clipped,
            "ipw_max_weight": self.max_weight,
            "ipw_ess": round(self.ess, 2),
            "ipw_ess_recommended": round(self.ess_recommended, 2),
            "ipw_share_factor": round(self.share_factor, 4),
        }


def kish_ess(weights: np.ndarray) -> float:
    """Kish's effective sample size (Σw)² / Σw²: how many equally weighted rows the weighted rows are worth."""
    w = np.asarray(weights, dtype=np.float64)
    total = float(np.sum(w**2))
    return float(np.sum(w)) ** 2 / total if total > 0 else 0.0


def ipw_weights(
    propensity: np.ndarray, max_weight: float = DEFAULT_MAX_WEIGHT, share: float = 0.0
) -> PropensityWeights:
    """Clipped, self-normalised inverse-propensity weights.

    ``propensity`` has one value per row: the probability in (0, 1] that the row's creator was shown, or NaN for a
    row that did not come from a recommendation (weight 1). With ``share`` in (0, 1), the recommended rows are
    scaled up (never down), together, until they hold that share of the total weight. Raises ``ValueError`` for a
    propensity outside (0, 1], a ``max_weight`` below 1 or a ``share`` outside [0, 1).
    """
    if not (np.isfinite(max_weight) and max_weight >= 1.0):
        raise ValueError(f"max_weight must be a number ≥ 1, got {max_weight}")
    if not (np.isfinite(share) and 0.0 <= share < 1.0):
        raise ValueError(f"share must be within [0, 1), got {share}")
    p = np.asarray(propensity, dtype=np.float64)
    if p.ndim != 1:
        raise ValueError(f"propensity must be one value per row, got shape {p.shape}")
    shown = ~np.isnan(p)
    bad = shown & ~((p > 0.0) & (p <= 1.0))
    if bad.any():
        first = int(np.flatnonzero(bad)[0])
        raise ValueError(
            f"{int(bad.sum())} propensities are outside (0, 1] (row {first} has {p[first]}); a shown creator's "
            "probability of being shown must be positive and at most 1"
        )
    weights = np.ones(len(p), dtype=np.float64)
    n = int(shown.sum())
    clipped = 0
    if n:
        inverse = 1.0 / p[shown]
        clipped = int(np.sum(inverse > max_weight))
        inverse = np.minimum(inverse, max_weight)
        weights[shown] = inverse * (n / float(np.sum(inverse)))
    factor = 1.0
    others = len(p) - n
    if share > 0.0 and n and others:
        factor = max(1.0, share / (1.0 - share) * others / n)  # Σw_rec = n·factor; Σw_other = others
        weights[shown] *= factor
    return PropensityWeights(
        weights=weights,
        recommended=n,
        clipped=clipped,
        max_weight=float(max_weight),
        ess=kish_ess(weights),
        ess_recommended=kish_ess(weights[shown]) if n else 0.0,
        share_factor=factor,
    )
