"""The planner evaluation's floor (``audiencefit.training.plan_eval --oracle-noise``) on the small world: planning from
given conversions is the same code path as planning from the model's, noisy oracles are reproducible, and the model's
error ignores a per-brand scale."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from audiencefit.features.featureset import load_feature_set
from audiencefit.models.index import default_index_dir, load_index
from audiencefit.models.query import query_embedder
from audiencefit.models.retrieval import AudienceSearch
from audiencefit.training.plan_eval import BrandCase, brand_cases, compare_plans, model_error, oracle_noise

BUDGETS = (300.0, 1_000.0)


@pytest.fixture(scope="module")
def cases(small_world: Path, small_features: Path, bundles):
    fs = load_feature_set(small_features)
    directory = default_index_dir(fs)
    search = AudienceSearch(
        fs, load_index(fs, "audience", directory), load_index(fs, "content", directory), query_embedder(fs)
    )
    return brand_cases(small_world, fs, search, bundles[0])


def test_planning_from_the_models_own_numbers_changes_nothing(cases):
    truth, brands = cases
    assert brands
    as_served = compare_plans(truth, brands, BUDGETS)
    assert as_served.height > 0
    given = compare_plans(truth, brands, BUDGETS, [b.candidates.conversions for b in brands])
    assert given.equals(as_served)


def test_oracle_noise_is_reproducible_and_moves_the_plans(cases):
    truth, brands = cases
    first = oracle_noise(truth, brands, BUDGETS, (0.0, 2.0), seeds=2)
    assert first.height == 4 and set(first["sigma"]) == {0.0, 2.0}
    assert first.equals(oracle_noise(truth, brands, BUDGETS, (0.0, 2.0), seeds=2))
    # σ = 0: the noise draws change nothing.
    zero = first.filter(first["sigma"] == 0.0).drop("noise_seed")
    assert zero[0].equals(zero[1])
    # Planning from the truth takes different creators than planning from the model.
    truthful = compare_plans(truth, brands, BUDGETS, [b.true_conversions for b in brands])
    assert not truthful.equals(compare_plans(truth, brands, BUDGETS))


def test_model_error_ignores_a_scale_per_brand(cases):
    _, brands = cases
    scaled: list[BrandCase] = [
        replace(b, candidates=replace(b.candidates, conversions=b.true_conversions * (3.0 + i)))
        for i, b in enumerate(brands)
    ]
    assert model_error(scaled) == pytest.approx(0.0, abs=1e-9)
    assert model_error(brands) > 0
    noisy = [
        replace(b, candidates=replace(b.candidates, conversions=b.true_conversions * np.exp(noise)))
        for b, noise in (
            (b, np.random.default_rng(i).normal(0.0, 1.0, len(b.candidates))) for i, b in enumerate(brands)
        )
    ]
    assert 0.7 < model_error(noisy) < 1.3
