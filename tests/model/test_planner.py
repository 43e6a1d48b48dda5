"""Behaviour of the campaign planner on small hand-made candidate sets (no feature set, no model)."""

from __future__ import annotations

import numpy as np
import pytest

from audiencefit.models.planner import (
    Candidates,
    Constraints,
    PlanError,
    conversions_value,
    make_plan,
    reach_value,
    select,
)


def candidates(n: int = 12, seed: int = 0, communities: int = 6) -> Candidates:
    rng = np.random.default_rng(seed)
    pool = rng.uniform(5_000, 20_000, communities)
    coverage = rng.dirichlet(np.full(communities, 0.5), n) * rng.uniform(0.05, 0.4, (n, 1))
    coverage = np.clip(coverage * 3, 0, 0.9)
    conv = rng.uniform(2, 30, n)
    price = np.round(rng.uniform(50, 400, n), 0)
    eng = rng.uniform(100, 2_000, n)
    return Candidates(
        creator_ids=[f"c{i:02d}" for i in range(n)],
        price=price,
        price_p10=price,
        price_p90=price,
        conversions=conv,
        conversions_p10=conv * 0.5,
        conversions_p90=conv * 1.6,
        engagements=eng,
        engagements_p10=eng * 0.7,
        engagements_p90=eng * 1.3,
        coverage=coverage,
        pool=pool,
        segment_weights=np.stack([np.r_[np.ones(3), np.zeros(communities - 3)], np.r_[np.zeros(3), np.ones(3)]]),
        segment_labels=["a", "b"],
    )


def with_duplicate(c: Candidates, of: int) -> Candidates:
    """``c`` plus one creator with exactly the audience, price and predictions of creator ``of``."""

    def add(arr: np.ndarray) -> np.ndarray:
        return np.concatenate([arr, arr[of : of + 1]])

    return Candidates(
        creator_ids=[*c.creator_ids, "zz-dup"],
        price=add(c.price),
        price_p10=add(c.price_p10),
        price_p90=add(c.price_p90),
        conversions=add(c.conversions),
        conversions_p10=add(c.conversions_p10),
        conversions_p90=add(c.conversions_p90),
        engagements=add(c.engagements),
        engagements_p10=add(c.engagements_p10),
        engagements_p90=add(c.engagements_p90),
        coverage=add(c.coverage),
        pool=c.pool,
        segment_weights=c.segment_weights,
        segment_labels=c.segment_labels,
    )


@pytest.mark.parametrize("budget", [150.0, 600.0, 1_500.0])
@pytest.mark.parametrize("objective", ["conversions", "reach"])
def test_budget_is_respected_and_plan_is_deterministic(budget: float, objective: str) -> None:
    c = candidates()
    first = make_plan(c, Constraints(budget=budget), objective)  # type: ignore[arg-type]
    again = make_plan(candidates(), Constraints(budget=budget), objective)  # type: ignore[arg-type]
    assert first == again
    assert first.total_cost <= budget + 1e-9
    assert first.creators
    assert first.conversions <= first.conversions_without_overlap + 1e-9
    assert first.conversions_p10 <= first.conversions <= first.conversions_p90
    for pc in first.creators:
        assert 0 <= pc.marginal_conversions <= pc.conversions + 1e-9


def test_one_creator_alone_gives_its_predicted_conversions() -> None:
    c = candidates()
    for i in range(len(c)):
        assert conversions_value(c, [i]) == pytest.approx(c.conversions[i])


def test_duplicate_audience_is_worth_less_than_a_fresh_one() -> None:
    c = with_duplicate(candidates(), of=3)
    dup = len(c) - 1
    base = [3]
    gain_dup = conversions_value(c, [*base, dup]) - conversions_value(c, base)
    assert gain_dup < 0.7 * c.conversions[dup]  # it mostly reaches people creator 3 already reaches
    assert reach_value(c, [*base, dup]) - reach_value(c, base) < 0.7 * reach_value(c, [dup])
    plan = make_plan(c, Constraints(budget=float(c.price.sum())))
    both = {"c03", "zz-dup"} <= {p.creator_id for p in plan.creators}
    if both:
        marg = {p.creator_id: p.marginal_conversions for p in plan.creators}
        assert marg["zz-dup"] < c.conversions[dup] and marg["c03"] < c.conversions[3]


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("objective", ["conversions", "reach"])
def test_lazy_greedy_equals_plain_greedy(seed: int, objective: str) -> None:
    c = candidates(n=15, seed=seed)
    for budget in (300.0, 900.0):
        for k in (Constraints(budget=budget), Constraints(budget=budget, min_creators=2, max_creators=4)):
            assert select(c, k, objective, lazy=True) == select(c, k, objective, lazy=False)  # type: ignore[arg-type]


def test_creator_limits_and_segment_coverage_are_met() -> None:
    c = candidates(n=15, seed=3)
    plan = make_plan(c, Constraints(budget=2_000.0, min_creators=3, max_creators=3))
    assert len(plan.creators) == 3
    target = 0.9 * make_plan(c, Constraints(budget=2_000.0), "reach").segment_reach["b"]
    covered = make_plan(c, Constraints(budget=2_000.0, min_segment_reach={"b": target}))
    assert covered.segment_reach["b"] >= target


@pytest.mark.parametrize(
    ("constraints", "name"),
    [
        (Constraints(budget=10.0), "budget"),
        (Constraints(budget=1_000.0, min_creators=5, max_creators=2), "max_creators"),
        (Constraints(budget=1_000.0, min_creators=50), "min_creators"),
        (Constraints(budget=120.0, min_creators=8), "min_creators"),
        (Constraints(budget=1_000.0, min_segment_reach={"nope": 10.0}), "min_segment_reach"),
        (Constraints(budget=200.0, min_segment_reach={"a": 1e9}), "min_segment_reach[a]"),
    ],
)
def test_infeasible_constraints_are_named(constraints: Constraints, name: str) -> None:
    with pytest.raises(PlanError) as err:
        make_plan(candidates(), constraints)
    assert err.value.constraint == name
    assert str(err.value).startswith(f"{name}: ")


def test_plan_size_and_work_are_bounded_whatever_the_budget() -> None:
    """A budget that buys every candidate used to plan all of them (work ~ candidates x plan size^2); now a plan has
    at most MAX_CREATORS creators, and a greedy pass that runs out of work stops with a valid plan."""
    from audiencefit.models import planner

    c = candidates(n=160, seed=3)
    huge = Constraints(budget=1e12)
    plan = make_plan(c, huge, max_work=10**9)
    assert len(plan.creators) == planner.MAX_CREATORS  # 160 without the cap
    assert len(make_plan(c, huge).creators) <= planner.MAX_CREATORS
    with pytest.raises(PlanError, match="max_creators"):
        make_plan(c, Constraints(budget=1e12, max_creators=planner.MAX_CREATORS + 1))
    small = make_plan(c, huge, max_work=2_000)  # the first few picks evaluate every candidate once
    assert 1 <= len(small.creators) < len(plan.creators)
    assert small.total_cost <= huge.budget
