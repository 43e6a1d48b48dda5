"""The world's truth for campaigns contracted later (``audiencefit.training.world_truth``): outcomes are drawn by the
generator's own function, expected values match the ones it recorded for past campaigns, and refactoring the generator
left its files byte-identical."""

from __future__ import annotations

import hashlib
from dataclasses import replace
from datetime import date, timedelta
from pathlib import Path

import numpy as np
import polars as pl
import pytest

from audiencefit.features.errors import InputError
from audiencefit.features.schemas import TABLES
from audiencefit.features.synthetic import story
from audiencefit.features.synthetic.world import default_brand_count
from audiencefit.training.world_truth import (
    draw_outcomes,
    expected_outcomes,
    load_truth,
    overlap_and_fit,
    true_conversions,
    true_engagement_rate,
)
from tests.conftest import SMALL_WORLD_CREATORS, SMALL_WORLD_SEED

# sha256 of the small world's campaigns (150 creators, seed 11, 10 followers each) as CSV, without the
# recommendation_id column added later (always null for the generator's past picks), as generated before the
# outcome draw was shared with draw_outcomes (commit 28db338; there campaigns.parquet itself hashed to
# d80d664ec078…). CSV, not the parquet bytes, so that a new nullable column or a parquet writer change does not
# hide or fake a change in the drawn outcomes.
CAMPAIGNS_CSV_SHA256 = "d5541f0d4f6d1b2132a84f56554c31eb49894c16ddf3cfd239d27cc23b890019"
EXPECTED = ("expected_reach", "expected_engagement_rate", "expected_clicks", "expected_conversions", "expected_revenue")


def test_the_generators_campaigns_are_byte_identical(small_world: Path) -> None:
    campaigns = pl.read_parquet(small_world / "campaigns.parquet")
    assert campaigns["recommendation_id"].null_count() == campaigns.height
    digest = hashlib.sha256(campaigns.drop("recommendation_id").write_csv().encode()).hexdigest()
    assert digest == CAMPAIGNS_CSV_SHA256


def _past(world: Path) -> pl.DataFrame:
    return pl.read_parquet(world / "campaigns.parquet").join(
        pl.read_parquet(world / "truth" / "campaigns.parquet"), on=["campaign_id", "segment_id", "creator_id"]
    )


def test_expected_outcomes_reproduce_the_generators_past_campaigns(small_world: Path) -> None:
    truth = load_truth(small_world)
    past = _past(small_world)
    checked = 0
    for (brand, segment, start), group in past.group_by("brand_id", "segment_id", "start_date", maintain_order=True):
        ours = expected_outcomes(truth, str(brand), str(segment), group["creator_id"].to_list(), start)
        for column in ("true_fit", *EXPECTED):
            np.testing.assert_allclose(ours[column].to_numpy(), group[column].to_numpy(), rtol=1e-5, err_msg=column)
        er = true_engagement_rate(truth, [str(segment)], group["creator_id"].to_list())
        np.testing.assert_allclose(er, group["expected_engagement_rate"].to_numpy(), rtol=1e-5)
        checked += group.height
    assert checked == past.height > 50


def test_true_fit_matches_truth_fit_table(small_world: Path) -> None:
    truth = load_truth(small_world)
    fit = truth.fit.filter(pl.col("segment_id") == "br0001-s1").sort("creator_id")
    _, ours = overlap_and_fit(truth, "br0001-s1", truth.rows(fit["creator_id"].to_list()))
    # truth/fit keeps 15 mantissa bits (tables.truth_fit_frame): relative precision 3e-5.
    np.testing.assert_allclose(ours, fit["true_fit"].to_numpy(), rtol=1e-4, atol=1e-7)


def test_true_conversions_is_the_campaign_formula_at_the_export(small_world: Path) -> None:
    truth = load_truth(small_world)
    ids = sorted(truth.creator_row)[:40]
    at_export = expected_outcomes(truth, "br0002", "br0002-s1", ids, truth.export_day)
    np.testing.assert_allclose(
        true_conversions(truth, "br0002", ["br0002-s1"], ids), at_export["expected_conversions"].to_numpy(), rtol=1e-4
    )


def test_draw_outcomes_draws_as_the_generator_does(small_world: Path) -> None:
    """The same drivers and random stream give the same campaign, whether the generator's latent arrays or the
    truth tables supply them."""
    creators = story.draw_creators(np.random.default_rng([SMALL_WORLD_SEED, 1]), SMALL_WORLD_CREATORS, 10)
    brands = story.draw_brands(np.random.default_rng([SMALL_WORLD_SEED, 2]), default_brand_count(SMALL_WORLD_CREATORS))
    truth = load_truth(small_world)
    segment = int(np.flatnonzero(brands.seg_brand == 3)[0])  # br0003-s1
    ci = np.arange(0, SMALL_WORLD_CREATORS, 3, dtype=np.int64)
    start = truth.export_day - timedelta(days=10)
    start_day = np.full(len(ci), (start - date(1970, 1, 1)).days, dtype=np.int64)
    seg = np.full(len(ci), segment)
    drivers = story.CampaignDrivers(
        followers=story.followers_at(creators, ci, start_day * story.DAY_US),
        authenticity=creators.authenticity[ci],
        er_real=creators.er_real[ci],
        platform=creators.platform[ci],
        comment_ratio=creators.comment_ratio[ci],
        price_noise=creators.price_noise[ci],
        overlap=story.interest_overlap(creators.audience[ci], brands, seg),
        fit=story.true_fit(creators, ci, brands, seg),
        conversion_factor=brands.conversion_factor[brands.seg_brand[seg]],
        order_value=brands.order_value[brands.seg_brand[seg]],
    )
    generator = story.campaign_outcomes(np.random.default_rng(99), start_day, drivers)
    ids = [f"cr{i:06d}" for i in ci.tolist()]
    drawn = draw_outcomes(truth, "br0003", "br0003-s1", ids, start, np.random.default_rng(99))
    assert drawn.schema == TABLES["campaigns"].polars_schema
    assert drawn["creator_id"].to_list() == ids and (drawn["start_date"] == start).all()
    assert not drawn["campaign_id"].str.starts_with("cp").any() and drawn["campaign_id"].is_unique().all()
    for column in ("impressions", "reach", "likes", "comments", "clicks", "conversions"):
        values = getattr(generator, column)
        expected = [None if v < 0 else v for v in values.tolist()]
        assert drawn[column].to_list() == expected, column
    np.testing.assert_allclose(drawn["cost"].to_numpy(), generator.cost, rtol=1e-12)
    revenue = drawn["revenue"].fill_null(np.nan).to_numpy()
    np.testing.assert_allclose(revenue, generator.revenue, rtol=1e-9, equal_nan=True)
    # Deterministic for a seed, different for another.
    again = draw_outcomes(truth, "br0003", "br0003-s1", ids, start, np.random.default_rng(99))
    assert again.equals(drawn)
    assert not draw_outcomes(truth, "br0003", "br0003-s1", ids, start, np.random.default_rng(100)).equals(drawn)


def test_drawn_outcomes_average_to_the_expected_ones(small_world: Path) -> None:
    truth = load_truth(small_world)
    ids = sorted(truth.creator_row)
    start = truth.export_day - timedelta(days=7)
    expected = expected_outcomes(truth, "br0000", "br0000-s1", ids, start)
    rng = np.random.default_rng(3)
    draws = [draw_outcomes(truth, "br0000", "br0000-s1", ids, start, rng) for _ in range(60)]
    both = pl.concat(draws)
    followers = np.tile(truth.followers[truth.rows(ids)], len(draws)).astype(np.float64)
    reach = both["reach"].drop_nulls().mean()
    assert reach == pytest.approx(expected["expected_reach"].mean(), rel=0.05)
    er = ((both["likes"] + both["comments"]).to_numpy() / followers)[both["likes"].is_not_null().to_numpy()]
    # The generator's ER is per follower at the start; a week of growth is well within the tolerance.
    assert er.mean() == pytest.approx(expected["expected_engagement_rate"].mean(), rel=0.05)
    conv = both["conversions"].drop_nulls().mean()
    assert conv == pytest.approx(expected["expected_conversions"].mean(), rel=0.1)


def test_draw_outcomes_refuses_what_the_world_cannot_answer(small_world: Path) -> None:
    truth = load_truth(small_world)
    ids = ["cr000001", "cr000002"]
    rng = np.random.default_rng(0)
    with pytest.raises(InputError, match="belongs to brand 'br0000'"):
        draw_outcomes(truth, "br0001", "br0000-s1", ids, truth.export_day, rng)
    with pytest.raises(InputError, match="after the world's export"):
        draw_outcomes(truth, "br0000", "br0000-s1", ids, truth.export_day + timedelta(days=1), rng)
    with pytest.raises(InputError, match="not in the world's truth: nobody"):
        draw_outcomes(truth, "br0000", "br0000-s1", ["nobody"], truth.export_day, rng)
    with pytest.raises(InputError, match="repeat a creator"):
        draw_outcomes(truth, "br0000", "br0000-s1", ids + ids[:1], truth.export_day, rng)
    with pytest.raises(InputError, match="regenerate it with the same seed"):
        draw_outcomes(replace(truth, er_real=None), "br0000", "br0000-s1", ids, truth.export_day, rng)
    with pytest.raises(InputError, match="segment 'nope'"):
        draw_outcomes(truth, "br0000", "nope", ids, truth.export_day, rng)
