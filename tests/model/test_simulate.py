"""``audiencefit simulate``: the loop through the real service, log, training and registry, on the small world.

Fits use few boosting rounds (as the API fixtures do): these tests check the loop, not the model's quality."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import numpy as np
import polars as pl
import pytest

from audiencefit.features.errors import InputError
from audiencefit.models.reclog import read_shown
from audiencefit.simulate import ROUNDS_FILE, SimulationConfig, round_dates, simulate

FIT_ROUNDS = 30
VOLATILE = ("seconds",)


def _run(world: Path, features: Path, out: Path, data: Path) -> pl.DataFrame:
    from audiencefit.models import estimators
    from audiencefit.settings import Settings

    settings = Settings(data_dir=data, seed=3)
    config = SimulationConfig(world, features, out, rounds=1, brands=3, picks=4, exploration=0.5, seed=5)
    fit_rounds = estimators._fit_rounds
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(
            estimators, "_fit_rounds", lambda p, x, y, init, rounds, w=None: fit_rounds(p, x, y, init, FIT_ROUNDS, w)
        )
        return simulate(config, settings)


@pytest.fixture(scope="module")
def runs(small_world: Path, small_features: Path, tmp_path_factory: pytest.TempPathFactory):
    root = tmp_path_factory.mktemp("simulate")
    before = os.environ.get("MLFLOW_TRACKING_URI")
    given = (small_world / "campaigns.parquet").read_bytes()
    first = _run(small_world, small_features, root / "a", root / "data")
    second = _run(small_world, small_features, root / "b", root / "data")
    assert (small_world / "campaigns.parquet").read_bytes() == given  # the world given is left alone
    return root, first, second, before


def test_every_model_gets_a_row_and_the_campaigns_grow_by_what_was_contracted(runs, small_world: Path) -> None:
    root, first, _, _ = runs
    assert first["rounds_seen"].to_list() == [0, 1]
    assert first["model_version"].to_list() == ["1", "2"]
    on_disk = pl.read_csv(root / "a" / ROUNDS_FILE)
    assert on_disk["rounds_seen"].to_list() == [0, 1]
    # 3 brands × 4 picks contracted from the first model's answers; the last model's are measured only.
    assert first["contracted"].to_list() == [12.0, None]
    past = pl.read_parquet(small_world / "campaigns.parquet")
    assert past["recommendation_id"].null_count() == past.height
    grown = pl.read_parquet(root / "a" / "world" / "campaigns.parquet")
    assert grown.height == past.height + 12
    new = grown.filter(pl.col("recommendation_id").is_not_null())
    assert new.height == 12
    # The loop's campaigns are dated in the weeks before the export, one date per round.
    export = pl.read_parquet(root / "a" / "world" / "truth" / "creators.parquet")  # the copy carries the truth
    assert export.height > 0
    assert sorted(set(new["start_date"].to_list())) == round_dates(_export_day(root / "a" / "world"), 1, 7)
    # Nobody is shown again to a brand that contracted them: not the past campaigns' creators, and the last
    # model's answers leave out the creators contracted in the round before.
    assert new.select("brand_id", "creator_id").is_unique().all()
    assert not new.join(past, on=["brand_id", "creator_id"], how="semi").height
    # Per model one fixed answer per brand (past exclusions only, the same seed), and per round one more.
    shown = read_shown(f"sqlite:///{root / 'a' / 'recommendations.db'}")
    answers = shown.group_by("recommendation_id", maintain_order=True).agg("brand_id", "creator_id")
    assert answers.height == 9 and shown.height == 36
    fixed_first, live, fixed_last = answers[0:3], answers[3:6], answers[6:9]
    assert set(live["recommendation_id"]) == set(new["recommendation_id"])
    # The live round's answers were asked as the first fixed ones; the last model's fixed answers may show the
    # creators contracted in the round (the pool is the same for every model), a live ask would not.
    assert fixed_first["brand_id"].to_list() == live["brand_id"].to_list() == fixed_last["brand_id"].to_list()
    # Every metric of the loop is there and finite where it must be.
    for name in ("rec_sigma_log_conv", "rec_bias_log_conv", "served_sigma_log_conv", "plan_model_sigma"):
        assert np.isfinite(first[name].to_numpy()).all(), name
    assert np.isfinite(first["true_conv_per_dollar"].to_numpy()[:1]).all()
    assert np.isfinite(first["pool_true_conv_per_dollar"].to_numpy()).all()


def _export_day(world: Path):
    from audiencefit.training.world_truth import load_truth

    return load_truth(world).export_day


def test_campaigns_carry_the_ids_the_log_holds_and_training_joins_and_weights_them(runs) -> None:
    root, first, _, _ = runs
    grown = pl.read_parquet(root / "a" / "world" / "campaigns.parquet").filter(
        pl.col("recommendation_id").is_not_null()
    )
    shown = read_shown(f"sqlite:///{root / 'a' / 'recommendations.db'}")
    # Two models × 3 fixed answers and one round × 3 live answers, 4 creators each.
    assert shown["recommendation_id"].n_unique() == 9 and shown.height == 36
    joined = grown.join(shown, on=["recommendation_id", "creator_id"], how="inner")
    assert joined.height == grown.height  # every contracted creator was shown under its campaign's id
    assert (joined["segment_id"] == joined["segment"]).all() and (joined["brand_id"] == joined["brand_id_right"]).all()
    # Exploration at 0.5: 2 of 4 picks by rank (propensity 1), 2 sampled (propensity < 1).
    assert joined["explored"].sum() == 6 and (joined.filter(pl.col("explored"))["propensity"] < 1).all()
    assert (joined.filter(~pl.col("explored"))["propensity"] == 1).all()
    # Each retraining found in the log every campaign the loop had appended so far.
    assert first["joined_from_log"].to_list() == [0.0, 12.0]
    # The time split puts the loop's (newest) campaigns in the test split; the served model is refitted on every
    # row, and its weights are those of every row: the explored picks weigh more than the ranked ones.
    from audiencefit.models.bundle import read_meta

    training = read_meta(root / "a" / "bundles" / "round-1")["training"]
    assert training["refit_all"] is True and training["bundle_rows"] == first["train_rows"][1]
    assert training["bundle_rows"] >= training["train_rows"] + training["test_rows"]
    assert first["ess_recommended"][1] > 0


def test_the_simulation_is_deterministic_for_a_seed(runs) -> None:
    root, first, second, _ = runs
    assert first.drop(VOLATILE).equals(second.drop(VOLATILE))
    a, b = (pl.read_parquet(root / run / "world" / "campaigns.parquet").drop("recommendation_id") for run in ("a", "b"))
    assert a.equals(b)  # ids are random per answer (uuid4); everything drawn is the same


def test_the_simulation_uses_its_own_tracking_store_and_puts_the_environment_back(runs) -> None:
    root, _, _, before = runs
    assert os.environ.get("MLFLOW_TRACKING_URI") == before
    assert (root / "a" / "mlflow.db").is_file()
    assert not (root / "data" / "mlflow.db").exists()  # the settings' own store is never written


def test_a_round_leaves_out_everybody_contracted_and_the_fixed_pool_only_the_past() -> None:
    from audiencefit.simulate import MAX_EXCLUDE, Brand

    brand = Brand("b", {}, ["p1", "p2"], past=2)
    brand.contracted.extend(["r1", "r2"])
    assert brand.exclude() == ["p1", "p2", "r1", "r2"]
    assert brand.exclude(pool=True) == ["p1", "p2"]
    many = Brand("m", {}, [f"c{i}" for i in range(MAX_EXCLUDE + 5)], past=3)
    assert many.exclude() == [f"c{i}" for i in range(5, MAX_EXCLUDE + 5)]  # the API's bound: the newest


def test_bad_inputs_are_refused_before_anything_is_written(
    small_world: Path, small_features: Path, tmp_path: Path
) -> None:
    from audiencefit.settings import Settings

    settings = Settings(data_dir=tmp_path / "data")
    used = tmp_path / "used"
    used.mkdir()
    (used / "x").write_text("x")
    with pytest.raises(InputError, match=r"--out .* not an empty directory"):
        simulate(SimulationConfig(small_world, small_features, used), settings)
    no_truth = tmp_path / "world"
    shutil.copytree(small_world, no_truth, ignore=shutil.ignore_patterns("truth"))
    with pytest.raises(InputError, match="no truth/"):
        simulate(SimulationConfig(no_truth, small_features, tmp_path / "o1"), settings)
    for bad, message in (
        ({"rounds": 0}, "--rounds"),
        ({"picks": 500}, "--picks"),
        ({"exploration": float("nan")}, "--exploration"),
        ({"exploration": 0.9}, "--exploration"),
        ({"budgets": (100.0, -1.0)}, "--budgets"),
    ):
        with pytest.raises(InputError, match=message):
            simulate(SimulationConfig(small_world, small_features, tmp_path / "o2", **bad), settings)  # type: ignore[arg-type]
    assert not (tmp_path / "o1").exists() and not (tmp_path / "o2").exists()
