"""The planner evaluation's noise bar (audiencefit.training.plan_eval.loses_beyond_noise) on hand-made numbers."""

from __future__ import annotations

import polars as pl

from audiencefit.training.plan_eval import loses_beyond_noise, losses, summarise


def judged(planner: float, other: float, shared: float) -> bool:
    frame = pl.DataFrame({"p": [planner], "o": [other], "s": [shared]})
    return bool(frame.select(loses_beyond_noise(pl.col("p"), pl.col("o"), pl.col("s"))).item())


def test_a_loss_within_poisson_noise_is_not_counted() -> None:
    # 10 vs 14 expected conversions, nothing shared: 4 < 2·√24 ≈ 9.8.
    assert not judged(10.0, 14.0, 0.0)


def test_a_loss_beyond_poisson_noise_is_counted() -> None:
    # 2 vs 22: 20 > 2·√24 ≈ 9.8.
    assert judged(2.0, 22.0, 0.0)


def test_shared_creators_cancel_so_the_bar_tightens() -> None:
    # 40 vs 50: beyond noise only when most of both plans is the same creators (2·√(90 − 2·40) ≈ 6.3 < 10).
    assert not judged(40.0, 50.0, 0.0)
    assert judged(40.0, 50.0, 40.0)


def test_winning_or_tying_is_never_a_loss() -> None:
    assert not judged(30.0, 30.0, 30.0)
    assert not judged(30.0, 5.0, 0.0)


def test_summary_and_listing_count_the_same_losses() -> None:
    rows = pl.DataFrame(
        {
            "brand_id": ["b1", "b1", "b2", "b2"],
            "budget": [300.0, 300.0, 300.0, 300.0],
            "method": ["planner", "top-k followers", "planner", "top-k followers"],
            "creators": [3, 1, 2, 1],
            "cost": [290.0, 300.0, 280.0, 300.0],
            "true_reach": [1_000.0, 900.0, 800.0, 700.0],
            "true_conversions": [2.0, 22.0, 10.0, 14.0],
            "shared_conversions": [2.0, 0.0, 10.0, 0.0],
        }
    )
    table = summarise(rows)
    counted = table.filter(pl.col("method") == "top-k followers")["planner_losses_beyond_noise"].item()
    assert counted == 1
    listed = losses(rows)
    assert listed["brand_id"].to_list() == ["b1"]
