"""Campaign planner: the best set of creators for a budget, aware of audience overlap.

The value of a set is not the sum of its members: people who follow several of them are reached once and buy at
most once. With the community estimate of ``audiencefit.models.overlap`` (creator i covers a share Q[i, c] of community
c's N[c] people, independently of the others):

- unique reach of S in a segment = Σ_c w[c] · N[c] · (1 − Π_{i∈S} (1 − Q[i, c])), w = the segment's weight of c;
- expected conversions of S = Σ_c N[c] · E[max ρ over the creators of S that reach a person of c]: each person
  buys at most once, from the most persuasive creator that reaches them (ρ_i = creator i's expected conversions
  per audience member). One creator alone gives exactly its predicted conversions.

Both are monotone submodular, so greedy selection by marginal gain per cost (with lazy evaluation: a candidate's
gain can only shrink as the set grows), compared with the best single creator, is within a constant factor of the
optimum under a budget. Ties are broken by creator id: the same input gives the same plan.

Work per plan is bounded whatever the budget: at most ``MAX_CANDIDATES`` candidates, at most ``MAX_CREATORS``
creators in a plan, and at most ``MAX_WORK`` units of greedy work (one unit = one creator's term in one evaluation of
the objective, i.e. a pass over the communities). Evaluating a set of s creators costs s units, so the work grows as
candidates × plan size². Measured on a 1,500-creator test world (docs/architecture.md): a budget of 1e9 took
1.5–1.7 s and planned 300 creators before these bounds, 0.24–0.5 s and 100 creators with them. A greedy pass that runs
out of work stops with the creators it has chosen (a valid plan, within the budget).
"""

from __future__ import annotations

import heapq
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal

import numpy as np
import polars as pl

from audiencefit.features.errors import InputError
from audiencefit.features.featureset import FeatureSet
from audiencefit.models.estimators import ModelSet
from audiencefit.models.overlap import audience_model
from audiencefit.models.pair_features import BrandQuery, segment_cluster_membership
from audiencefit.models.query import Filters, Segment
from audiencefit.models.retrieval import AudienceSearch
from audiencefit.models.scoring import score_creators

PlanObjective = Literal["conversions", "reach"]
MAX_CANDIDATES = 300  # creators retrieved and scored for a plan
DEFAULT_CANDIDATES = MAX_CANDIDATES
MAX_CREATORS = 100  # the most creators one plan may have (also the plan size when max_creators is not given)
MAX_WORK = 40_000  # greedy work units per plan (module docstring); a 100-creator plan took 20–25k (1,500 creators)

log = logging.getLogger(__name__)


class PlanError(InputError):
    """A plan request whose constraints cannot be met; ``constraint`` names the one that fails."""

    def __init__(self, constraint: str, message: str) -> None:
        super().__init__(f"{constraint}: {message}")
        self.constraint = constraint


@dataclass(frozen=True)
class Constraints:
    """What the plan must respect. ``min_segment_reach`` maps segment labels to unique in-segment people."""

    budget: float
    min_creators: int = 1
    max_creators: int | None = None
    min_segment_reach: dict[str, float] = field(default_factory=dict)


@dataclass(frozen=True)
class Candidates:
    """Creators the plan may use, with predictions and their estimated community coverage; row-aligned."""

    creator_ids: list[str]
    price: np.ndarray
    price_p10: np.ndarray
    price_p90: np.ndarray
    conversions: np.ndarray
    conversions_p10: np.ndarray
    conversions_p90: np.ndarray
    engagements: np.ndarray
    engagements_p10: np.ndarray
    engagements_p90: np.ndarray
    coverage: np.ndarray  # (n, C): share of community c's people in creator i's real audience
    pool: np.ndarray  # (C,) people per community
    segment_weights: np.ndarray  # (n_segments, C)
    segment_labels: list[str]
    matched_segments: list[str] | None = None  # each creator's best segment (score_creators' matched_segment)

    def __len__(self) -> int:
        return len(self.creator_ids)

    @property
    def per_person(self) -> np.ndarray:
        """ρ: expected conversions per member of each creator's audience."""
        audience = self.coverage @ self.pool
        return np.asarray(np.divide(self.conversions, audience, out=np.zeros(len(self)), where=audience > 0))


@dataclass(frozen=True)
class PlanCreator:
    creator_id: str
    price: float
    price_p10: float
    price_p90: float
    conversions: float  # predicted alone
    engagements: float
    marginal_conversions: float  # what removing it from the plan would lose
    marginal_reach: float  # unique in-segment people it alone brings to the plan
    gain_per_cost: float  # objective gain per unit of price when it was picked
    matched_segment: str = ""  # the segment it is expected to convert best in ("" when unknown)


@dataclass(frozen=True)
class Plan:
    objective: PlanObjective
    creators: list[PlanCreator]
    total_cost: float
    total_cost_p10: float
    total_cost_p90: float
    conversions: float
    conversions_p10: float
    conversions_p90: float
    conversions_without_overlap: float
    engagements: float
    engagements_p10: float
    engagements_p90: float
    unique_reach: float  # unique real people reached, any segment
    segment_reach: dict[str, float]
    candidates: int


# ---------------------------------------------------------------------------------------------- objectives


def segment_reach(c: Candidates, chosen: list[int]) -> np.ndarray:
    """(n_segments,) expected unique in-segment people reached by ``chosen``."""
    if not chosen:
        return np.zeros(len(c.segment_labels))
    reached = c.pool * (1.0 - np.prod(1.0 - c.coverage[chosen], axis=0))
    return np.asarray(c.segment_weights @ reached, dtype=np.float64)


def reach_value(c: Candidates, chosen: list[int]) -> float:
    """Unique people reached in any of the segments (a person counts once, at its best segment weight)."""
    if not chosen:
        return 0.0
    reached = c.pool * (1.0 - np.prod(1.0 - c.coverage[chosen], axis=0))
    return float(c.segment_weights.max(axis=0) @ reached)


def conversions_value(c: Candidates, chosen: list[int], rho: np.ndarray | None = None) -> float:
    """Expected conversions: each person buys at most once, from the most persuasive creator reaching them."""
    if not chosen:
        return 0.0
    rho = c.per_person if rho is None else rho
    order = sorted(chosen, key=lambda i: (-rho[i], c.creator_ids[i]))
    missed = np.ones(c.coverage.shape[1])
    total = 0.0
    for i in order:
        total += rho[i] * float((c.coverage[i] * missed) @ c.pool)
        missed = missed * (1.0 - c.coverage[i])
    return total


def _value(c: Candidates, chosen: list[int], objective: PlanObjective, rho: np.ndarray) -> float:
    return conversions_value(c, chosen, rho) if objective == "conversions" else reach_value(c, chosen)


# ----------------------------------------------------------------------------------------------- selection


def _check(c: Candidates, k: Constraints) -> None:
    if not np.isfinite(k.budget) or k.budget <= 0:
        raise PlanError("budget", f"must be a positive amount, got {k.budget}")
    if k.min_creators < 1:
        raise PlanError("min_creators", f"must be at least 1, got {k.min_creators}")
    if k.max_creators is not None and k.max_creators > MAX_CREATORS:
        raise PlanError("max_creators", f"at most {MAX_CREATORS} creators per plan, got {k.max_creators}")
    if k.min_creators > MAX_CREATORS:
        raise PlanError("min_creators", f"at most {MAX_CREATORS} creators per plan, got {k.min_creators}")
    if k.max_creators is not None and k.max_creators < k.min_creators:
        raise PlanError(
            "max_creators", f"max_creators ({k.max_creators}) is below min_creators ({k.min_creators}): contradictory"
        )
    unknown = sorted(set(k.min_segment_reach) - set(c.segment_labels))
    if unknown:
        raise PlanError(
            "min_segment_reach", f"unknown segment(s) {unknown}; the request's segments are {c.segment_labels}"
        )
    bad = {s: v for s, v in k.min_segment_reach.items() if not np.isfinite(v) or v < 0}
    if bad:
        raise PlanError("min_segment_reach", f"targets must be non-negative numbers of people, got {bad}")
    if len(c) == 0:
        raise PlanError("filters", "no eligible creator fits the segments and filters")
    cheapest = float(np.min(c.price))
    if k.budget < cheapest:
        raise PlanError(
            "budget", f"{k.budget:,.2f} is below the cheapest eligible creator's expected price ({cheapest:,.2f})"
        )
    if k.min_creators > len(c):
        raise PlanError("min_creators", f"{k.min_creators} creators required, only {len(c)} are eligible")
    floor = float(np.sort(c.price)[: k.min_creators].sum())
    if floor > k.budget:
        raise PlanError(
            "min_creators",
            f"the {k.min_creators} cheapest eligible creators cost {floor:,.2f} together, above the budget of "
            f"{k.budget:,.2f}",
        )


def _reserve_ok(c: Candidates, chosen: list[int], j: int, remaining: float, min_creators: int) -> bool:
    """Can the plan still reach ``min_creators`` after buying ``j``?"""
    still = min_creators - len(chosen) - 1
    if still <= 0:
        return True
    taken = set(chosen) | {j}
    others = np.sort(np.array([c.price[i] for i in range(len(c)) if i not in taken]))
    return len(others) >= still and float(others[:still].sum()) <= remaining - float(c.price[j]) + 1e-9


def _greedy(
    c: Candidates,
    k: Constraints,
    value: Callable[[list[int]], float],
    chosen: list[int],
    *,
    lazy: bool,
    work: _Work,
    stop_when: float | None = None,
) -> tuple[list[int], dict[int, float]]:
    """Add creators by marginal gain per cost while the budget, ``max_creators`` (at most ``MAX_CREATORS``) and the
    work left allow (and the gain is > 0).

    With ``stop_when``, stops once the value reaches it. Returns the set and each added creator's gain per cost.
    """
    chosen = list(chosen)
    ratios: dict[int, float] = {}
    spent = float(sum(c.price[i] for i in chosen))
    current = float(value(chosen))
    cap = min(k.max_creators if k.max_creators is not None else MAX_CREATORS, MAX_CREATORS, len(c))
    ids = c.creator_ids

    def gain(j: int) -> float:
        work.left -= len(chosen) + 1
        return float(value([*chosen, j])) - current

    pool = [j for j in range(len(c)) if j not in set(chosen)]
    heap: list[tuple[float, str, int]] = []
    if lazy:
        heap = [(-np.inf, ids[j], j) for j in pool]  # upper bounds: evaluated on first pop
        heapq.heapify(heap)
    deferred: list[tuple[float, str, int]] = []
    while len(chosen) < cap and (stop_when is None or current < stop_when - 1e-9):
        remaining = k.budget - spent
        pick: tuple[float, int] | None = None
        if work.left <= 0:
            log.info("plan stopped at its work limit", extra={"creators": len(chosen), "work": MAX_WORK})
            break
        if lazy:
            while heap and work.left > 0:
                _, _, j = heapq.heappop(heap)
                if c.price[j] > remaining + 1e-9:
                    continue  # never affordable again
                ratio = gain(j) / max(float(c.price[j]), 1e-9)
                if heap and (-ratio, ids[j]) > heap[0][:2]:
                    heapq.heappush(heap, (-ratio, ids[j], j))  # stale: re-queue with its fresh bound
                    continue
                if not _reserve_ok(c, chosen, j, remaining, k.min_creators):
                    deferred.append((-ratio, ids[j], j))
                    continue
                pick = (ratio, j)
                break
        else:
            best: tuple[float, str, int] | None = None
            for j in pool:
                if j in chosen or c.price[j] > remaining + 1e-9:
                    continue
                if not _reserve_ok(c, chosen, j, remaining, k.min_creators):
                    continue
                key = (-gain(j) / max(float(c.price[j]), 1e-9), ids[j], j)
                if best is None or key[:2] < best[:2]:
                    best = key
            if best is not None:
                pick = (-best[0], best[2])
        if pick is None or (pick[0] <= 0 and len(chosen) >= k.min_creators):
            break
        ratio, j = pick
        chosen.append(j)
        ratios[j] = ratio
        spent += float(c.price[j])
        current = float(value(chosen))
        if lazy and deferred:
            for item in deferred:
                heapq.heappush(heap, item)
            deferred = []
    return chosen, ratios


@dataclass
class _Work:
    """Greedy work units left for one plan (``MAX_WORK``), shared by its passes."""

    left: int


def select(
    c: Candidates,
    k: Constraints,
    objective: PlanObjective = "conversions",
    *,
    lazy: bool = True,
    max_work: int = MAX_WORK,
) -> list[int]:
    """The creators (candidate indices, in the order picked) of the plan; raises ``PlanError`` when infeasible."""
    return _select(c, k, objective, lazy=lazy, max_work=max_work)[0]


def _select(
    c: Candidates, k: Constraints, objective: PlanObjective, *, lazy: bool, max_work: int = MAX_WORK
) -> tuple[list[int], dict[int, float]]:
    _check(c, k)
    work = _Work(max_work)
    rho = c.per_person
    chosen: list[int] = []
    ratios: dict[int, float] = {}
    if k.min_segment_reach:
        # Coverage first: greedy on the truncated coverage Σ_s min(reach_s, target_s) (also submodular).
        labels = c.segment_labels
        targets = np.array([k.min_segment_reach.get(s, 0.0) for s in labels])

        def covered(sel: list[int]) -> float:
            return float(np.minimum(segment_reach(c, sel), targets).sum())

        chosen, ratios = _greedy(c, k, covered, [], lazy=lazy, work=work, stop_when=float(targets.sum()))
        reached = segment_reach(c, chosen)
        short = [(s, t, r) for s, t, r in zip(labels, targets, reached, strict=True) if r < t - 1e-6]
        if short:
            s, t, r = short[0]
            raise PlanError(
                f"min_segment_reach[{s}]",
                f"{t:,.0f} unique people required; the best plan found within the budget and creator limits "
                f"reaches {r:,.0f}",
            )

    def objective_value(sel: list[int]) -> float:
        return _value(c, sel, objective, rho)

    chosen, more = _greedy(c, k, objective_value, chosen, lazy=lazy, work=work)
    ratios |= more
    # The best single affordable creator can beat greedy-by-ratio (one expensive, excellent creator).
    if not k.min_segment_reach and k.min_creators <= 1:
        singles = [(-objective_value([j]), c.creator_ids[j], j) for j in range(len(c)) if c.price[j] <= k.budget]
        best = min(singles)
        if -best[0] > objective_value(chosen) + 1e-9:
            j = best[2]
            chosen, ratios = [j], {j: -best[0] / max(float(c.price[j]), 1e-9)}
    if len(chosen) < k.min_creators:
        raise PlanError("min_creators", f"only {len(chosen)} creators fit the budget and limits")
    return chosen, ratios


def _band(expected: float, lo: np.ndarray, hi: np.ndarray, mid: np.ndarray, scale: float) -> tuple[float, float]:
    """p10/p90 of a sum of independent creators' outcomes (normal approximation of their bands), scaled."""
    down = float(np.sqrt(np.sum((scale * (mid - lo)) ** 2)))
    up = float(np.sqrt(np.sum((scale * (hi - mid)) ** 2)))
    return max(0.0, expected - down), expected + up


def make_plan(
    c: Candidates,
    k: Constraints,
    objective: PlanObjective = "conversions",
    *,
    lazy: bool = True,
    max_work: int = MAX_WORK,
) -> Plan:
    """Select the plan and describe it: per creator price and marginal value, totals with bands, reach."""
    chosen, ratios = _select(c, k, objective, lazy=lazy, max_work=max_work)
    rho = c.per_person
    total_conv = conversions_value(c, chosen, rho)
    total_reach = reach_value(c, chosen)
    alone = float(c.conversions[chosen].sum())
    scale = total_conv / alone if alone > 0 else 1.0
    creators = []
    for j in sorted(chosen, key=lambda i: (-ratios.get(i, 0.0), c.creator_ids[i])):
        rest = [i for i in chosen if i != j]
        creators.append(
            PlanCreator(
                creator_id=c.creator_ids[j],
                price=float(c.price[j]),
                price_p10=float(c.price_p10[j]),
                price_p90=float(c.price_p90[j]),
                conversions=float(c.conversions[j]),
                engagements=float(c.engagements[j]),
                marginal_conversions=total_conv - conversions_value(c, rest, rho),
                marginal_reach=total_reach - reach_value(c, rest),
                gain_per_cost=float(ratios.get(j, 0.0)),
                matched_segment=c.matched_segments[j] if c.matched_segments is not None else "",
            )
        )
    idx = np.array(chosen, dtype=np.int64)
    conv_band = _band(total_conv, c.conversions_p10[idx], c.conversions_p90[idx], c.conversions[idx], scale)
    eng = float(c.engagements[idx].sum())
    eng_band = _band(eng, c.engagements_p10[idx], c.engagements_p90[idx], c.engagements[idx], 1.0)
    everyone = float(c.pool @ (1.0 - np.prod(1.0 - c.coverage[idx], axis=0)))
    reach = segment_reach(c, chosen)
    return Plan(
        objective=objective,
        creators=creators,
        total_cost=float(c.price[idx].sum()),
        total_cost_p10=float(c.price_p10[idx].sum()),
        total_cost_p90=float(c.price_p90[idx].sum()),
        conversions=total_conv,
        conversions_p10=conv_band[0],
        conversions_p90=conv_band[1],
        conversions_without_overlap=alone,
        engagements=eng,
        engagements_p10=eng_band[0],
        engagements_p90=eng_band[1],
        unique_reach=everyone,
        segment_reach={s: float(r) for s, r in zip(c.segment_labels, reach, strict=True)},
        candidates=len(c),
    )


# ---------------------------------------------------------------------------------------------- candidates


def candidates_from_scores(fs: FeatureSet, scored: pl.DataFrame, rows: np.ndarray, query: BrandQuery) -> Candidates:
    """Planner candidates from ``score_creators`` output (rows of ``fs``, in the same order)."""
    rows = np.asarray(rows, dtype=np.int64)
    model = audience_model(fs)
    membership = segment_cluster_membership(query.segment_vectors, fs.centroids).astype(np.float64)  # (S, k)
    weights = np.stack(
        [
            np.outer(membership[s], model.country_weights(seg.countries)).reshape(-1)
            for s, seg in enumerate(query.segments)
        ]
    )
    followers = scored["followers"].fill_null(0).to_numpy().astype(np.float64)

    def col(name: str) -> np.ndarray:
        return scored[name].fill_null(0.0).fill_nan(0.0).to_numpy().astype(np.float64)

    return Candidates(
        creator_ids=scored["creator_id"].to_list(),
        price=np.maximum(col("price"), 1e-6),
        price_p10=col("price_p10"),
        price_p90=col("price_p90"),
        conversions=col("conversions"),
        conversions_p10=col("conversions_p10"),
        conversions_p90=col("conversions_p90"),
        engagements=col("engagement_rate") * followers,
        engagements_p10=col("engagement_rate_p10") * followers,
        engagements_p90=col("engagement_rate_p90") * followers,
        coverage=model.coverage(rows),
        pool=model.pool,
        segment_weights=weights,
        segment_labels=[s.label for s in query.segments],
        matched_segments=scored["matched_segment"].to_list(),
    )


def plan_for_brand(
    search: AudienceSearch,
    models: ModelSet,
    segments: list[Segment],
    filters: Filters,
    constraints: Constraints,
    objective: PlanObjective = "conversions",
    *,
    brand_vector: np.ndarray | None = None,
    brand_terms: tuple[str, ...] = (),
    n_candidates: int = DEFAULT_CANDIDATES,
) -> Plan:
    """Retrieve the best-fitting eligible creators, score them, and plan: what the API, the CLI and the
    evaluation all call."""
    found = search.search(segments, filters, n_candidates)
    if found.empty_reason:
        raise PlanError("filters", found.empty_reason)
    query = BrandQuery(found.segments, found.segment_vectors, brand_vector=brand_vector, brand_terms=brand_terms)
    scored = score_creators(search.fs, models, query, found.rows)
    return make_plan(candidates_from_scores(search.fs, scored, found.rows, query), constraints, objective)
