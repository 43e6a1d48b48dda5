"""Creator statistics and caption terms on hand-built frames: each value checked exactly, edge cases included."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta
from typing import Any

import polars as pl
import pytest
from polars.testing import assert_frame_equal

from audiencefit.features.schemas import CREATORS, FOLLOWERS, POSTS
from audiencefit.features.stats import (
    creator_stats,
    creator_terms,
    filter_as_of,
    filter_followers_as_of,
    newest_posts,
    sample_followers,
)

T0 = datetime(2024, 3, 1, tzinfo=UTC)


def creators_frame(*rows: dict[str, Any]) -> pl.LazyFrame:
    defaults = {"handle": "h", "platform": "instagram", "bio": None, "following": 100, "post_count": None,
                "country": None, "language": None, "rate_per_post": None}  # fmt: skip
    full = [defaults | {"handle": r["creator_id"]} | r for r in rows]
    return pl.LazyFrame(full, schema=CREATORS.polars_schema)


def posts_frame(*rows: dict[str, Any]) -> pl.LazyFrame:
    defaults = {"caption": None, "comments": 0, "views": None, "sponsored": False}
    full = [defaults | {"post_id": f"{r['creator_id']}-{i}"} | r for i, r in enumerate(rows)]
    return pl.LazyFrame(full, schema=POSTS.polars_schema)


def post(creator_id: str, day: float, likes: int, **more: Any) -> dict[str, Any]:
    return {"creator_id": creator_id, "posted_at": T0 + timedelta(days=day), "likes": likes, **more}


def one(frame: pl.LazyFrame, creator_id: str = "a") -> dict[str, Any]:
    rows = frame.filter(pl.col("creator_id") == creator_id).collect().to_dicts()
    assert len(rows) == 1
    return rows[0]


def stats_for(posts: list[dict[str, Any]], followers: int = 1000, **kwargs: Any) -> dict[str, Any]:
    kwargs.setdefault("as_of", None)
    out = creator_stats(creators_frame({"creator_id": "a", "followers": followers}), posts_frame(*posts), **kwargs)
    return one(out)


# ---------------------------------------------------------------- engagement rate


def test_engagement_rate_median_and_mean() -> None:
    s = stats_for([post("a", 0, 10), post("a", 1, 20, comments=0), post("a", 2, 50, comments=10)])
    # ER = 0.01, 0.02, 0.06
    assert s["er_median"] == pytest.approx(0.02)
    assert s["er_mean"] == pytest.approx(0.03)
    assert s["n_posts"] == 3
    assert s["n_posts_total"] == 3


def test_zero_followers_gives_null_rates_not_errors() -> None:
    s = stats_for([post("a", 0, 10, views=100), post("a", 1, 20)], followers=0)
    assert s["er_median"] is None
    assert s["er_mean"] is None
    assert s["views_per_follower"] is None
    assert s["following_ratio"] is None
    assert s["log_followers"] == 0.0
    assert s["follower_tier"] == "sub-1k"
    # statistics that do not need followers are still computed
    assert s["likes_spikiness"] == pytest.approx(20 / 15)


def test_creator_without_posts_gets_nulls_and_zero_counts() -> None:
    creators = creators_frame({"creator_id": "a", "followers": 5000}, {"creator_id": "b", "followers": 2000})
    out = creator_stats(creators, posts_frame(post("b", 0, 10)), as_of=None)
    a = one(out, "a")
    assert a["n_posts"] == 0
    assert a["n_posts_total"] == 0
    for col in ("er_median", "er_mean", "er_trend", "posts_per_week", "gap_cv", "comment_like_ratio",
                "sponsored_share", "sponsored_er_ratio", "likes_spikiness", "views_per_follower", "last_post_at",
                "days_since_last_post"):  # fmt: skip
        assert a[col] is None, col
    assert a["follower_tier"] == "nano"
    assert a["log_followers"] == pytest.approx(math.log1p(5000))
    assert a["following_ratio"] == pytest.approx(100 / 5000)


def test_one_row_per_creator_in_creators_order() -> None:
    creators = creators_frame(*({"creator_id": c, "followers": 1000} for c in ("z", "a", "m")))
    posts = posts_frame(post("a", 0, 1), post("a", 1, 2), post("m", 0, 3))
    out = creator_stats(creators, posts, as_of=None).collect()
    assert out["creator_id"].to_list() == ["z", "a", "m"]
    assert out["n_posts"].to_list() == [0, 2, 1]


def test_single_post() -> None:
    s = stats_for([post("a", 0, 30, comments=3)])
    assert s["n_posts"] == 1
    assert s["er_median"] == pytest.approx(0.033)
    assert s["posts_per_week"] == pytest.approx(1.0)  # span floored at one week
    assert s["gap_cv"] is None
    assert s["er_trend"] is None
    assert s["likes_spikiness"] == pytest.approx(1.0)
    assert s["comment_like_ratio"] == pytest.approx(0.1)
    assert s["days_since_last_post"] is None  # as_of None: no stated instant, no recency


# ---------------------------------------------------------------- trend, cadence


def test_er_trend_is_log_slope_per_30_days() -> None:
    # ER doubles every 30 days: slope of ln(ER) = ln 2 per 30 days.
    s = stats_for([post("a", 30 * k, 10 * 2**k) for k in range(4)])
    assert s["er_trend"] == pytest.approx(math.log(2))


def test_er_trend_needs_four_posts_with_engagement() -> None:
    assert stats_for([post("a", 30 * k, 10 * 2**k) for k in range(3)])["er_trend"] is None
    # four posts, but one has zero engagement (log undefined) → only three usable
    posts = [post("a", 30 * k, 10 * 2**k) for k in range(3)] + [post("a", 120, 0)]
    assert stats_for(posts)["er_trend"] is None


def test_posts_per_week_and_gap_cv() -> None:
    # three posts on days 0, 1, 4: gaps 1 and 3 days
    s = stats_for([post("a", 0, 1), post("a", 1, 1), post("a", 4, 1)])
    assert s["posts_per_week"] == pytest.approx(3.0)  # span 4 days floored at 7
    assert s["gap_cv"] == pytest.approx(math.sqrt(2) / 2)  # std (ddof=1) √2 over mean 2
    s = stats_for([post("a", 0, 1), post("a", 7, 1), post("a", 14, 1)])
    assert s["posts_per_week"] == pytest.approx(1.5)
    assert s["gap_cv"] == pytest.approx(0.0)


def test_gap_cv_null_with_two_posts() -> None:
    assert stats_for([post("a", 0, 1), post("a", 3, 1)])["gap_cv"] is None


# ---------------------------------------------------------------- ratios


def test_comment_like_ratio_and_zero_likes() -> None:
    s = stats_for([post("a", 0, 10, comments=1), post("a", 1, 30, comments=7)])
    assert s["comment_like_ratio"] == pytest.approx(8 / 40)
    s = stats_for([post("a", 0, 0, comments=3), post("a", 1, 0)])
    assert s["comment_like_ratio"] is None
    assert s["likes_spikiness"] is None  # median likes 0


def test_sponsored_share_and_ratio() -> None:
    posts = [post("a", 0, 10), post("a", 1, 30), post("a", 2, 5, sponsored=True), post("a", 3, 15, sponsored=True)]
    s = stats_for(posts)
    assert s["sponsored_share"] == pytest.approx(0.5)
    assert s["sponsored_er_ratio"] == pytest.approx(0.010 / 0.020)


def test_all_sponsored_or_none_sponsored_gives_null_ratio() -> None:
    s = stats_for([post("a", 0, 10, sponsored=True), post("a", 1, 20, sponsored=True)])
    assert s["sponsored_share"] == 1.0
    assert s["sponsored_er_ratio"] is None
    s = stats_for([post("a", 0, 10), post("a", 1, 20)])
    assert s["sponsored_share"] == 0.0
    assert s["sponsored_er_ratio"] is None


def test_likes_spikiness() -> None:
    s = stats_for([post("a", 0, 10), post("a", 1, 10), post("a", 2, 50)])
    assert s["likes_spikiness"] == pytest.approx(5.0)


def test_views_per_follower_median_and_no_views() -> None:
    s = stats_for([post("a", 0, 1, views=100), post("a", 1, 1), post("a", 2, 1, views=300)])
    assert s["views_per_follower"] == pytest.approx(0.2)
    assert stats_for([post("a", 0, 1), post("a", 1, 1)])["views_per_follower"] is None


@pytest.mark.parametrize(
    ("followers", "tier"),
    [(0, "sub-1k"), (999, "sub-1k"), (1_000, "nano"), (9_999, "nano"), (10_000, "micro"), (99_999, "micro"),
     (100_000, "mid"), (499_999, "mid"), (500_000, "macro"), (999_999, "macro"), (1_000_000, "mega"),
     (50_000_000, "mega")],
)  # fmt: skip
def test_follower_tiers(followers: int, tier: str) -> None:
    assert stats_for([], followers=followers)["follower_tier"] == tier


# ---------------------------------------------------------------- recent window and as_of


def test_recent_n_uses_last_posts_only() -> None:
    posts = [post("a", 0, 1000), post("a", 1, 10), post("a", 2, 20), post("a", 3, 30)]
    s = stats_for(posts, recent_n=3)
    assert s["n_posts"] == 3
    assert s["n_posts_total"] == 4
    assert s["er_median"] == pytest.approx(0.02)
    assert s["likes_spikiness"] == pytest.approx(1.5)


def test_recent_n_must_be_positive() -> None:
    with pytest.raises(ValueError, match="recent_n"):
        stats_for([], recent_n=0)


def test_as_of_cut_ignores_later_posts() -> None:
    creators = creators_frame({"creator_id": "a", "followers": 1000}, {"creator_id": "b", "followers": 800})
    base = [post("a", 0, 10), post("a", 2, 40, comments=2), post("a", 5, 20, views=90), post("b", 1, 7)]
    later = [post("a", 10, 99_999, sponsored=True), post("b", 10, 5), post("c", 11, 1)]
    as_of = T0 + timedelta(days=10)  # a post exactly at as_of is not "before" it
    before = creator_stats(creators, posts_frame(*base), as_of=as_of).collect()
    after = creator_stats(creators, posts_frame(*base, *later), as_of=as_of).collect()
    assert_frame_equal(before, after)
    a = before.row(0, named=True)
    assert a["n_posts"] == 3
    assert a["days_since_last_post"] == pytest.approx(5.0)
    assert a["last_post_at"] == T0 + timedelta(days=5)


def test_naive_as_of_is_utc() -> None:
    posts = [post("a", 0, 10), post("a", 1, 10)]
    naive = (T0 + timedelta(hours=12)).replace(tzinfo=None)
    s = stats_for(posts, as_of=naive)
    assert s["n_posts"] == 1
    assert s["days_since_last_post"] == pytest.approx(0.5)


def test_days_since_last_post_is_never_measured_from_the_newest_timestamp_in_the_data() -> None:
    # Issue #17: one post dated 9999-12-31 made every other creator 2.9 million days inactive.
    creators = creators_frame({"creator_id": "a", "followers": 1000}, {"creator_id": "b", "followers": 1000})
    posts = posts_frame(
        post("a", 0, 1), {"creator_id": "b", "posted_at": datetime(9999, 12, 31, tzinfo=UTC), "likes": 1}
    )
    out = creator_stats(creators, posts, as_of=None)
    assert one(out, "a")["days_since_last_post"] is None
    assert one(out, "b")["days_since_last_post"] is None
    stated = creator_stats(creators, posts_frame(post("a", 0, 1), post("b", 3, 1)), as_of=T0 + timedelta(days=4))
    assert one(stated, "a")["days_since_last_post"] == pytest.approx(4.0)
    assert one(stated, "b")["days_since_last_post"] == pytest.approx(1.0)


def test_filter_as_of_none_keeps_everything() -> None:
    posts = posts_frame(post("a", 0, 1), post("a", 9, 1))
    assert filter_as_of(posts, None).collect().height == 2
    assert filter_as_of(posts, T0 + timedelta(days=9)).collect().height == 1


def test_filter_followers_as_of_keeps_null_observed_at() -> None:
    rows = [
        {"creator_id": "a", "follower_id": "1", "observed_at": None},
        {"creator_id": "a", "follower_id": "2", "observed_at": T0},
        {"creator_id": "a", "follower_id": "3", "observed_at": T0 + timedelta(days=1)},
    ]
    followers = pl.LazyFrame(rows, schema=FOLLOWERS.polars_schema)
    kept = filter_followers_as_of(followers, T0 + timedelta(days=1)).collect()
    assert kept["follower_id"].to_list() == ["1", "2"]
    assert filter_followers_as_of(followers, None).collect().height == 3


# ---------------------------------------------------------------- caption terms


def terms(*captions: str | None, as_of: datetime | None = None) -> list[tuple[str, str, int]]:
    posts = posts_frame(*(post("a", i, 1, caption=c) for i, c in enumerate(captions)))
    out = creator_terms(posts, as_of=as_of).collect()
    return list(zip(out["kind"], out["term"], out["count"], strict=True))


def test_hashtags_are_unicode_aware_and_lower_cased() -> None:
    found = terms("Dinner #Café #料理 #भारत and #Vegan_Recipes! #𝓵𝓸𝓿𝓮")
    assert found == [
        ("hashtag", "café", 1),
        ("hashtag", "love", 1),
        ("hashtag", "vegan_recipes", 1),
        ("hashtag", "भारत", 1),
        ("hashtag", "料理", 1),
    ]


def test_hashtag_boundaries() -> None:
    # a tag ends at punctuation/emoji/another '#'; '#' inside a word, an HTML entity or a URL is not a tag
    found = terms("#one,#two🔥 #three#four a#b &#39; https://x.com/#top #")
    assert found == [("hashtag", "one", 1), ("hashtag", "three", 1), ("hashtag", "two", 1)]


def test_mentions_strip_trailing_dot_and_skip_emails() -> None:
    found = terms("Thanks @Anna.Lee. and @bob_x, mail me@mail.com or @... @José")
    assert found == [("mention", "anna.lee", 1), ("mention", "bob_x", 1), ("mention", "josé", 1)]


def test_term_count_is_posts_using_it_and_last_used_at() -> None:
    posts = posts_frame(
        post("a", 0, 1, caption="#run #run @coach"),
        post("a", 2, 1, caption="#RUN again"),
        post("a", 5, 1, caption=None),
        post("b", 1, 1, caption="#run"),
    )
    out = creator_terms(posts, as_of=None).collect()
    assert out.select("creator_id", "kind", "term", "count").rows() == [
        ("a", "hashtag", "run", 2),
        ("a", "mention", "coach", 1),
        ("b", "hashtag", "run", 1),
    ]
    assert out["last_used_at"].to_list() == [T0 + timedelta(days=2), T0, T0 + timedelta(days=1)]


def test_terms_respect_as_of() -> None:
    assert terms("#old", "#new", as_of=T0 + timedelta(days=1)) == [("hashtag", "old", 1)]


def test_no_captions_gives_empty_frame_with_schema() -> None:
    out = creator_terms(posts_frame(post("a", 0, 1)), as_of=None).collect()
    assert out.height == 0
    assert out.columns == ["creator_id", "kind", "term", "count", "last_used_at"]


# ---------------------------------------------------------------- per-creator bounds (issue #17, item 10)


def test_sample_followers_keeps_the_smallest_pseudonyms_per_creator_in_input_order() -> None:
    followers = pl.LazyFrame(
        {"creator_id": ["a"] * 5 + ["b"] * 3 + ["c"], "follower_id": ["e", "a", "d", "b", "c", "d", "z", "a", "q"]}
    )
    kept = sample_followers(followers, 3).collect()
    assert kept.rows() == [("a", "a"), ("a", "b"), ("a", "c"), ("b", "d"), ("b", "z"), ("b", "a"), ("c", "q")]
    # Coordinated: person 'a' is kept for both creators; 'd' ranks 4th for creator a and is dropped there only.
    assert sample_followers(followers, 100).collect().equals(followers.collect())  # under the cap: unchanged
    with pytest.raises(ValueError, match="at least 1"):
        sample_followers(followers, 0)


def test_newest_posts_keeps_the_last_posts_per_creator() -> None:
    posts = posts_frame(post("a", 0, 1), post("a", 2, 1), post("a", 1, 1), post("b", 0, 1))
    kept = newest_posts(posts, 2).collect()
    assert kept["post_id"].to_list() == ["a-1", "a-2", "b-3"]
    assert newest_posts(posts, 10).collect().equals(posts.collect())
