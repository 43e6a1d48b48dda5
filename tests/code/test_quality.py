"""Follower inauthenticity flags and the audience quality score on hand-built frames."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta
from typing import Any

import polars as pl
import pytest

from audiencefit.features.quality import audience_quality, follower_flags
from audiencefit.features.schemas import CREATORS, FOLLOWERS, POSTS
from audiencefit.features.stats import creator_stats

T0 = datetime(2024, 3, 1, tzinfo=UTC)
FLAGS = ["flag_no_bio", "flag_follow_ratio", "flag_few_posts", "flag_mass_following", "flag_spam_bio"]


def followers_frame(*rows: dict[str, Any]) -> pl.LazyFrame:
    defaults = {"creator_id": "a", "bio": "runner and coffee lover", "followers": 300, "following": 400,
                "post_count": 50, "country": None, "age_band": None, "gender": None, "observed_at": None}  # fmt: skip
    full = [defaults | {"follower_id": f"f{i}"} | r for i, r in enumerate(rows)]
    return pl.LazyFrame(full, schema=FOLLOWERS.polars_schema)


def creators_frame(followers: dict[str, int]) -> pl.LazyFrame:
    rows = [{"creator_id": c, "handle": c, "platform": "instagram", "followers": f} for c, f in followers.items()]
    return pl.LazyFrame(rows, schema=CREATORS.polars_schema)


def posts_frame(likes: dict[str, list[int]], comments_per_like: float = 0.1) -> pl.LazyFrame:
    rows = [
        {
            "post_id": f"{c}-{i}",
            "creator_id": c,
            "posted_at": T0 + timedelta(days=i),
            "likes": n,
            "comments": round(n * comments_per_like),
            "sponsored": False,
        }
        for c, series in likes.items()
        for i, n in enumerate(series)
    ]
    return pl.LazyFrame(rows, schema=POSTS.polars_schema)


def flags_of(**row: Any) -> dict[str, Any]:
    out = follower_flags(followers_frame(row)).collect().to_dicts()
    return out[0]


# ---------------------------------------------------------------- follower flags


def test_authentic_follower_has_no_flag() -> None:
    f = flags_of()
    assert [f[k] for k in FLAGS] == [False] * 5
    assert f["n_flags"] == 0
    assert f["suspicious"] is False


@pytest.mark.parametrize(
    ("row", "flag"),
    [
        ({"bio": None}, "flag_no_bio"),
        ({"bio": "   \n"}, "flag_no_bio"),
        ({"followers": 40, "following": 600}, "flag_follow_ratio"),
        ({"post_count": 0}, "flag_few_posts"),
        ({"post_count": 2}, "flag_few_posts"),
        ({"following": 5_001, "followers": 2_000}, "flag_mass_following"),
        ({"bio": "DM for PROMO 💸"}, "flag_spam_bio"),
    ],
)
def test_each_signal(row: dict[str, Any], flag: str) -> None:
    f = flags_of(**row)
    assert f[flag] is True
    assert [k for k in FLAGS if f[k]] == [flag]


def test_follow_ratio_needs_both_conditions() -> None:
    assert flags_of(followers=10, following=400)["flag_follow_ratio"] is False  # 40× but only 400 followed
    assert flags_of(followers=100, following=900)["flag_follow_ratio"] is False  # 900 but only 9×
    assert flags_of(followers=0, following=501)["flag_follow_ratio"] is True


def test_unknown_counts_are_no_evidence() -> None:
    f = flags_of(followers=None, following=None, post_count=None)
    assert [f[k] for k in FLAGS] == [False] * 5


@pytest.mark.parametrize(
    "bio",
    ["dm me for collab", "FREE followers here", "Check my link 👇", "crypto trader | 10x", "Bitcoin signals daily",
     "forex mentor", "follow4follow", "gain more followers fast", "click the link below"],
)  # fmt: skip
def test_spam_bios(bio: str) -> None:
    assert flags_of(bio=bio)["flag_spam_bio"] is True


@pytest.mark.parametrize(
    "bio",
    ["mum of two, loves baking", "Marketing manager in Lyon", "link in bio for my recipes", "promoted to captain!",
     "cryptic crosswords fan", "Deutsch lernen 🇩🇪"],
)  # fmt: skip
def test_ordinary_bios_are_not_spam(bio: str) -> None:
    assert flags_of(bio=bio)["flag_spam_bio"] is False


def test_suspicious_needs_two_soft_signals_or_one_hard() -> None:
    assert flags_of(bio=None)["suspicious"] is False  # a lurker without bio
    assert flags_of(bio=None, post_count=0)["suspicious"] is True  # two soft signals
    assert flags_of(following=6_000, followers=3_000)["suspicious"] is True  # hard: mass following
    assert flags_of(bio="free followers!!")["suspicious"] is True  # hard: spam bio


def test_flags_keep_input_columns() -> None:
    out = follower_flags(followers_frame({}, {})).collect()
    assert out.columns[: len(FOLLOWERS.column_names)] == FOLLOWERS.column_names
    assert out.height == 2


# ---------------------------------------------------------------- audience quality


def world() -> tuple[pl.LazyFrame, pl.LazyFrame, pl.LazyFrame]:
    """Creators on an exact ER–size power law (ER halves per decade), four per size bin; 'low' has 1/4 the ER."""
    sizes = {1000: 88, 10_000: 440, 100_000: 2200}  # (likes + comments) / followers = 0.088, 0.044, 0.022
    followers: dict[str, int] = {}
    likes: dict[str, list[int]] = {}
    for size, n_likes in sizes.items():
        for k in range(4):
            followers[f"c{size}_{k}"] = size
            likes[f"c{size}_{k}"] = [n_likes * 10 // 11] * 5
    likes["c10000_3"] = [100] * 5  # the 'low' creator: ER 0.011 instead of 0.044
    creators = creators_frame(followers)
    posts = posts_frame(likes)
    return creators, posts, creator_stats(creators, posts, as_of=None)


def test_er_residual_is_zero_on_the_size_curve_and_negative_below_it() -> None:
    creators, _, stats = world()
    out = audience_quality(creators, stats, None).collect()
    residual = dict(zip(out["creator_id"], out["er_residual"], strict=True))
    assert residual.pop("c10000_3") == pytest.approx(math.log(0.25))
    assert all(abs(r) < 1e-9 for r in residual.values())


def test_low_engagement_for_size_lowers_score_without_a_sample() -> None:
    creators, _, stats = world()
    out = audience_quality(creators, stats, None).collect()
    assert out["quality_source"].unique().to_list() == ["engagement"]
    assert out["suspicious_share"].null_count() == out.height
    assert out["follower_sample_size"].to_list() == [0] * out.height
    low = out.filter(pl.col("creator_id") == "c10000_3").row(0, named=True)
    others = out.filter(pl.col("creator_id") != "c10000_3")
    # the low-ER component saturates (z far beyond 3) and carries half the anomaly weight
    assert low["engagement_anomaly"] == pytest.approx(0.5)
    assert low["audience_quality"] == pytest.approx(50.0)
    assert others["audience_quality"].to_list() == [100.0] * others.height


def test_spiky_likes_raise_the_anomaly() -> None:
    creators, _, _ = world()
    posts = posts_frame({"c1000_0": [80] * 5, "c1000_1": [80] * 5, "c1000_2": [80] * 4 + [800], "c1000_3": [80] * 5})
    creators = creators.filter(pl.col("creator_id").str.starts_with("c1000_"))
    out = audience_quality(creators, creator_stats(creators, posts, as_of=None), None).collect()
    anomaly = dict(zip(out["creator_id"], out["engagement_anomaly"], strict=True))
    assert anomaly["c1000_2"] > 0.2
    assert anomaly["c1000_0"] == anomaly["c1000_1"] == anomaly["c1000_3"] == 0.0


def test_bot_heavy_sample_scores_lower_than_authentic_one() -> None:
    creators, _, stats = world()
    authentic = [{"creator_id": "c1000_0"} for _ in range(20)]
    bots = [{"creator_id": "c1000_1", "bio": None, "post_count": 0, "followers": 3, "following": 4000}] * 14
    bots += [{"creator_id": "c1000_1"}] * 6
    out = audience_quality(creators, stats, followers_frame(*authentic, *bots)).collect()
    rows = {r["creator_id"]: r for r in out.to_dicts()}
    good, bad = rows["c1000_0"], rows["c1000_1"]
    assert good["suspicious_share"] == 0.0
    assert bad["suspicious_share"] == pytest.approx(0.7)
    assert good["follower_sample_size"] == bad["follower_sample_size"] == 20
    assert good["quality_source"] == bad["quality_source"] == "followers+engagement"
    assert bad["audience_quality"] < good["audience_quality"] - 20
    # creators absent from the sample fall back to engagement only
    assert rows["c10000_0"]["quality_source"] == "engagement"
    assert rows["c10000_0"]["follower_sample_size"] == 0
    assert out["audience_quality"].is_between(0, 100).all()


def test_score_combination_with_shrunk_share() -> None:
    creators, _, stats = world()
    sample = [{"creator_id": "c1000_0"}] * 10 + [{"creator_id": "c1000_1", "bio": "free followers"}] * 10
    out = audience_quality(creators, stats, followers_frame(*sample)).collect()
    bad = out.filter(pl.col("creator_id") == "c1000_1").row(0, named=True)
    # share 1.0 with n=10 shrunk toward the median share 0.5 with pseudo-count 10 → 0.75; engagement part is 1
    assert bad["audience_quality"] == pytest.approx(100 * (0.6 * 0.25 + 0.4 * 1.0))


def test_sample_without_posts_uses_followers_only_and_nothing_gives_null() -> None:
    creators = creators_frame({"a": 5000, "b": 5000})
    stats = creator_stats(creators, posts_frame({}), as_of=None)
    out = audience_quality(creators, stats, followers_frame({"creator_id": "a"})).collect()
    a, b = out.to_dicts()
    assert a["quality_source"] == "followers"
    assert a["audience_quality"] == pytest.approx(100.0)
    assert a["engagement_anomaly"] is None
    assert b["quality_source"] is None
    assert b["audience_quality"] is None
    assert b["er_residual"] is None


def test_zero_followers_creator_has_null_residual() -> None:
    creators = creators_frame({"a": 0, "b": 2000, "c": 3000})
    posts = posts_frame({"a": [5, 5], "b": [50, 50], "c": [60, 60]})
    out = audience_quality(creators, creator_stats(creators, posts, as_of=None), None).collect()
    assert out["er_residual"][0] is None
    assert out["engagement_anomaly"][0] is not None  # spikiness and comment ratio still defined
    assert out["audience_quality"].null_count() == 0
