"""Exploration (models/explore.py): which creators are shown, and how likely each was."""

from __future__ import annotations

import numpy as np
import pytest

from audiencefit.models.explore import (
    DRAWS,
    Exploration,
    derive_seed,
    exploratory_slots,
    gamma_sampler,
    lognormal_sampler,
    select,
)


def _candidates(n: int = 60, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    key = rng.lognormal(0.0, 1.0, n)
    ids = np.array([f"c{i:04d}" for i in range(n)], dtype=object)
    return key, ids


@pytest.mark.parametrize(("share", "k", "m"), [(0.0, 20, 0), (0.1, 20, 2), (0.5, 1, 1), (0.25, 10, 3), (0.5, 5, 3)])
def test_slots_round_half_up(share: float, k: int, m: int) -> None:
    assert exploratory_slots(share, k) == m


def test_without_exploration_the_answer_is_the_ranking_with_propensity_one() -> None:
    key, ids = _candidates()
    sel = select(key, ids, 10, None, None)
    assert list(sel.order) == list(np.argsort(-key)[:10])
    assert np.all(sel.propensity == 1.0) and not sel.explored.any()
    same = select(key, ids, 10, Exploration(share=0.0, seed=3), gamma_sampler(key, 2.0))
    assert list(same.order) == list(sel.order) and same.slots == 0


@pytest.mark.parametrize("theta", [0.5, 3.0, 1e6])
def test_propensities_over_the_pool_sum_to_the_slots_and_shown_ones_are_at_least_one_draw(theta: float) -> None:
    key, ids = _candidates()
    k, share = 20, 0.25
    sel = select(key, ids, k, Exploration(share=share, seed=11), gamma_sampler(key, theta))
    m = exploratory_slots(share, k)
    assert sel.slots == m == 5
    assert len(sel.order) == k and len(set(sel.order.tolist())) == k
    ranked = np.argsort(-key)
    # the top k − m are the ranking's, in its order, with propensity 1
    assert list(sel.order[: k - m]) == list(ranked[: k - m])
    assert np.all(sel.propensity[: k - m] == 1.0) and not sel.explored[: k - m].any()
    # the m others come from the rest (the pool), each with a propensity ≥ 1/R, and the pool's sum to m
    assert sel.explored[k - m :].all()
    assert set(sel.pool.tolist()) == set(ranked[k - m :].tolist())
    assert set(sel.order[k - m :].tolist()) <= set(sel.pool.tolist())
    assert sel.pool_propensity.sum() == pytest.approx(m, abs=1e-9)
    assert np.all(sel.propensity[k - m :] >= 1 / DRAWS)
    assert np.all((sel.pool_propensity >= 0) & (sel.pool_propensity <= 1))
    where = {int(p): i for i, p in enumerate(sel.pool)}
    for pos, p in zip(sel.order[k - m :], sel.propensity[k - m :], strict=True):
        assert p == sel.pool_propensity[where[int(pos)]]


def test_same_seed_same_picks_other_seed_other_picks() -> None:
    key, ids = _candidates()
    ex = Exploration(share=0.5, seed=42)
    a = select(key, ids, 10, ex, gamma_sampler(key, 1.0))
    b = select(key, ids, 10, ex, gamma_sampler(key, 1.0))
    assert list(a.order) == list(b.order) and np.array_equal(a.pool_propensity, b.pool_propensity)
    others = {tuple(select(key, ids, 10, Exploration(0.5, s), gamma_sampler(key, 1.0)).order) for s in range(8)}
    assert len(others) > 1


def test_propensity_is_the_frequency_of_being_shown() -> None:
    """Over many seeds, how often a pool candidate is shown matches its mean propensity (the shown draw is one of
    the R draws, chosen uniformly): the propensities are the probabilities of the procedure, not a heuristic."""
    key, ids = _candidates(n=12, seed=5)
    k, runs = 6, 400
    shown = np.zeros(len(key))
    expected = np.zeros(len(key))
    for seed in range(runs):
        sel = select(key, ids, k, Exploration(share=0.5, seed=seed, draws=200), gamma_sampler(key, 1.5))
        shown[sel.order[sel.explored]] += 1
        expected[sel.pool] += sel.pool_propensity
    assert shown.sum() == 3 * runs and expected.sum() == pytest.approx(3 * runs)
    # binomial noise: sd ≤ sqrt(runs/4) = 10 per candidate
    assert np.max(np.abs(shown - expected)) < 45


def test_a_more_uncertain_or_better_candidate_is_explored_more() -> None:
    key = np.array([10.0, 9.0, 1.0, 1.0, 0.5])
    ids = np.array(["a", "b", "c", "d", "e"], dtype=object)
    sel = select(key, ids, 2, Exploration(share=0.5, seed=1), gamma_sampler(key, 2.0))
    pool = {str(ids[p]): q for p, q in zip(sel.pool, sel.pool_propensity, strict=True)}
    assert pool["b"] > pool["c"] > pool["e"] > 0
    # lognormal within a band: a lower mean with a wide band still wins some draws against a narrow one
    mean = np.array([5.0, 0.5, 1.0])
    names = ["x", "wide", "narrow"]
    sampler = lognormal_sampler(mean, np.array([4.0, 0.05, 0.9]), np.array([6.0, 5.0, 1.1]))
    sel = select(mean, np.array(names, dtype=object), 2, Exploration(0.5, 3), sampler)
    assert names[int(sel.order[0])] == "x" and sel.slots == 1
    props = {names[int(p)]: float(q) for p, q in zip(sel.pool, sel.pool_propensity, strict=True)}
    assert props["wide"] + props["narrow"] == pytest.approx(1.0)
    assert 0.2 < props["wide"] < 0.5 < props["narrow"]  # P(0.5·e^(σz) > ~1) with σ = 1.8: about 0.35


def test_small_pool_is_shown_whole_and_few_candidates_are_all_shown() -> None:
    key, ids = _candidates(n=7)
    sel = select(key, ids, 6, Exploration(share=0.5, seed=0), gamma_sampler(key, 1.0))
    assert sel.slots == 3 and len(sel.pool) == 4
    sel = select(key, ids, 10, Exploration(share=0.5, seed=0), gamma_sampler(key, 1.0))
    assert sel.slots == 2 and len(sel.order) == 7 and np.all(sel.propensity == 1.0)  # pool of 2 for 5 slots


def test_bad_inputs_are_refused() -> None:
    with pytest.raises(ValueError, match="share"):
        Exploration(share=0.6, seed=1)
    key, ids = _candidates(n=10)
    with pytest.raises(ValueError, match="sampler"):
        select(key, ids, 4, Exploration(share=0.5, seed=1), None)
    with pytest.raises(ValueError, match="shape"):
        select(key, ids, 4, Exploration(share=0.5, seed=1), lambda rng, pool, draws: np.zeros((draws, 1)))


def test_derived_seed_depends_on_the_content_only() -> None:
    assert derive_seed(b"a request") == derive_seed(b"a request") != derive_seed(b"another")
    assert 0 <= derive_seed(b"x") < 2**63


@pytest.mark.parametrize("m", [1, 3, 8, 9, 20])
def test_top_per_row_finds_each_rows_largest(m: int) -> None:
    from audiencefit.models.explore import top_per_row

    x = np.random.default_rng(m).standard_normal((50, 40)).astype(np.float32)
    got = top_per_row(x, m)
    want = np.argsort(-x, axis=1)[:, :m]
    assert [set(r) for r in got.tolist()] == [set(r) for r in want.tolist()]
