"""The training set is point in time: nothing observed after a campaign's start reaches its features."""

from __future__ import annotations

import shutil
from datetime import timedelta

import polars as pl
import pytest

from audiencefit.features.dataset import load_dataset
from audiencefit.features.embed_cache import EmbeddingCache
from audiencefit.models.pair_features import FEATURE_COLUMNS
from audiencefit.training.trainset import build_training_set, snapshot_for

SECRET = "test-secret"


def _build(world, settings, embedder):
    dataset = load_dataset(world, secret=SECRET)
    cache = EmbeddingCache(settings.embedding_cache_dir, embedder.id, embedder.dim)
    return build_training_set(dataset, embedder=embedder, cache=cache, settings=settings, progress=False).frame


def test_snapshots_never_fall_after_the_start():
    from datetime import UTC, datetime

    for day in range(1, 60):
        start = datetime(2026, 1, 1, tzinfo=UTC) + timedelta(days=day)
        snap = snapshot_for(start, 14)
        assert snap <= start and start - snap < timedelta(days=14)


@pytest.fixture(scope="module")
def leak_setup(small_world, tmp_path_factory):
    root = tmp_path_factory.mktemp("leak")
    world = root / "world"
    shutil.copytree(small_world, world)
    return world


def test_no_leakage_from_after_the_campaign_start(leak_setup, isolated_settings, hashing_embedder):
    world = leak_setup
    before = _build(world, isolated_settings, hashing_embedder)
    assert before.height > 0 and (before["as_of"] <= before["start_date"].cast(pl.Datetime("us", "UTC"))).all()

    # After the campaigns start: a viral post mentioning the brand, new bot followers, and different outcomes.
    # (Injected after the newest start: a post between two campaigns is, rightly, seen by the later one.)
    campaigns = pl.read_parquet(world / "campaigns.parquet")
    after_all = pl.lit(campaigns["start_date"].max()).cast(pl.Datetime("us", "UTC"))
    brands = pl.read_parquet(world / "brands.parquet")
    posts = pl.read_parquet(world / "posts.parquet")
    late = (
        campaigns.join(brands.select("brand_id", "handles"), on="brand_id")
        .select(
            pl.concat_str(pl.lit("late-"), pl.col("campaign_id")).alias("post_id"),
            "creator_id",
            (after_all + pl.duration(hours=1)).alias("posted_at"),
            pl.concat_str(pl.lit("loving this #ad @"), pl.col("handles").str.split(" ").list.first()).alias("caption"),
            pl.lit(10**6, dtype=pl.Int64).alias("likes"),
            pl.lit(10**4, dtype=pl.Int64).alias("comments"),
            pl.lit(None, dtype=pl.Int64).alias("views"),
            pl.lit(True).alias("sponsored"),
        )
        .unique("post_id")
    )
    pl.concat([posts, late.select(posts.columns).cast(posts.schema)]).write_parquet(world / "posts.parquet")
    followers = pl.read_parquet(world / "followers.parquet")
    bots = campaigns.select(
        "creator_id",
        pl.concat_str(pl.lit("bot-"), pl.col("campaign_id")).alias("follower_id"),
        pl.lit("dm for promo free followers").alias("bio"),
        pl.lit(3, dtype=pl.Int64).alias("followers"),
        pl.lit(7000, dtype=pl.Int64).alias("following"),
        pl.lit(0, dtype=pl.Int64).alias("post_count"),
        pl.lit(None, dtype=pl.String).alias("country"),
        pl.lit(None, dtype=pl.String).alias("age_band"),
        pl.lit(None, dtype=pl.String).alias("gender"),
        (after_all + pl.duration(days=1)).alias("observed_at"),
    )
    pl.concat([followers, bots.cast(followers.schema)]).write_parquet(world / "followers.parquet")
    campaigns.with_columns(pl.col("conversions") * 10, pl.col("likes") * 3, pl.col("clicks") + 100).write_parquet(
        world / "campaigns.parquet"
    )

    after = _build(world, isolated_settings, hashing_embedder)
    cols = ["campaign_id", *FEATURE_COLUMNS]
    assert before.select(cols).equals(after.select(cols))
    assert not before["conversions"].equals(after["conversions"])  # the labels did change
