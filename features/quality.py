"""Audience quality: how authentic a creator's audience and engagement look (unsupervised, 0–100).

No labels exist in real exports, so the score is a documented combination of signals used across the industry
(fake-follower audits, engagement-rate benchmarks by size), never a fitted model. Pure ``pl.LazyFrame``
transforms; callers apply ``audiencefit.features.stats.filter_followers_as_of`` first for a point-in-time score.

**Follower signals** (:func:`follower_flags`, per sampled follower; an unknown count is no evidence):

- ``flag_no_bio``: bio missing or blank (soft: many real lurkers have none);
- ``flag_few_posts``: fewer than 3 posts of their own (soft, same reason);
- ``flag_follow_ratio``: follows more than 10 × as many accounts as follow them, and more than 500 (follow-back
  farming);
- ``flag_mass_following``: follows more than 5,000 accounts, near the platforms' caps (hard: a person does not
  read 5,000 feeds);
- ``flag_spam_bio``: bio with link-bait or promotion phrases (``SPAM_BIO_PATTERN``: "dm for promo", "free
  followers", "check my link", crypto/forex/investment pitches, follow-for-follow) (hard);
- ``suspicious``: a hard signal, or at least two signals.

**Engagement anomaly** (:func:`audience_quality`, 0–1). Three components, each measured against the creators in
the same frame so that nothing depends on a platform's absolute engagement level:

- low engagement for size: ``er_residual`` = ln(median ER) − expected ln(ER) at the creator's ln(followers).
  The expectation is a weighted least-squares line through the per-bin medians of ln(ER) (bins of half a decade
  of followers, weights = creators per bin): medians resist the bought-follower outliers the score looks for,
  and the line captures the well-known fall of ER with size. Bought followers inflate the denominator without
  engaging, so the residual goes down;
- ``likes_spikiness`` unusually high (bought likes arrive in bursts on some posts);
- ``comment_like_ratio`` unusual in either direction (bought likes without comments, or comment pods).

Each is turned into a robust z-score (median and 1.4826 × MAD over the frame, with the scale floored at 0.25
log-units so a homogeneous frame does not turn small differences into anomalies), then ramped:
``clip((z − 1) / 2, 0, 1)``: nothing within one robust SD (ordinary variation), full at three. The anomaly is the
weighted mean of the available components, weights 0.5 (low ER, the most established signal) and 0.25 each.

**Score**. follower part = 1 − suspicious share, where the share is shrunk toward the frame's median share with a
pseudo-count of ``SHRINK_FOLLOWERS`` (10) followers, so that a sample of 3 cannot swing the score; engagement
part = 1 − anomaly. ``audience_quality = 100 × (0.6 × follower part + 0.4 × engagement part)`` with a sample
(``quality_source = 'followers+engagement'``): the sample looks at the audience directly, while engagement also
moves with niche and content, so it gets less weight. Without a sample the score is ``100 × engagement part``
('engagement'); with a sample but no usable posts it is ``100 × follower part`` ('followers'); with neither it is
null (source null).
"""

from __future__ import annotations

import math

import numpy as np
import polars as pl

SPAM_BIO_PATTERN = (
    r"(?i)\b(?:"
    r"dm\s*(?:me\s*)?(?:for|4)\s*(?:promo\w*|collab\w*|shout\s*outs?|s/o)"
    r"|free\s+(?:followers|likes)"
    r"|(?:get|gain|buy)\s+(?:more\s+|real\s+)?(?:followers|likes)"
    r"|check\s+(?:out\s+)?my\s+link"
    r"|click\s+(?:the\s+|my\s+)?link"
    r"|crypto\w*|bitcoin|forex|binary\s+options|investment\s+(?:tips|returns|platform)"
    r"|follow\s*(?:4|for)\s*follow|f4f|l4l"
    r")"
)
MIN_FOLLOWING_FOR_RATIO = 500
FOLLOW_RATIO = 10
MASS_FOLLOWING = 5_000
FEW_POSTS = 3  # fewer than this many own posts

SHRINK_FOLLOWERS = 10.0
FOLLOWER_WEIGHT = 0.6
COMPONENT_WEIGHTS = {"low_er": 0.5, "spikiness": 0.25, "comment_ratio": 0.25}
MIN_SCALE = 0.25  # log-units: a deviation below ~28 % is ordinary whatever the frame's spread
CLR_FLOOR = 1e-4  # comments per like; zero comments is read as this (extreme but finite)
_BIN_WIDTH = math.log(10) / 2  # half a decade of followers


def follower_flags(followers: pl.LazyFrame) -> pl.LazyFrame:
    """The followers frame with boolean inauthenticity signals, ``n_flags`` and ``suspicious`` appended."""
    bio = pl.col("bio")
    following = pl.col("following")
    flags = {
        "flag_no_bio": bio.is_null() | (bio.str.strip_chars().str.len_chars() == 0),
        "flag_follow_ratio": (following > FOLLOW_RATIO * pl.col("followers")) & (following > MIN_FOLLOWING_FOR_RATIO),
        "flag_few_posts": pl.col("post_count") < FEW_POSTS,
        "flag_mass_following": following > MASS_FOLLOWING,
        "flag_spam_bio": bio.str.contains(SPAM_BIO_PATTERN),
    }
    return (
        followers.with_columns(**{name: expr.fill_null(False) for name, expr in flags.items()})
        .with_columns(n_flags=pl.sum_horizontal(*(pl.col(n).cast(pl.Int32) for n in flags)))
        .with_columns(
            suspicious=(pl.col("n_flags") >= 2) | pl.col("flag_mass_following") | pl.col("flag_spam_bio"),
        )
    )


def _robust_z(x: pl.Expr) -> pl.Expr:
    """(x − median) / max(1.4826 · MAD, MIN_SCALE) over the whole frame; null stays null."""
    center = x.median()
    scale = pl.max_horizontal(1.4826 * (x - center).abs().median(), pl.lit(MIN_SCALE))
    return (x - center) / scale


def _ramp(z: pl.Expr) -> pl.Expr:
    return ((z - 1.0) / 2.0).clip(0.0, 1.0)


def _expected_log_er(base: pl.LazyFrame) -> pl.LazyFrame:
    """One row: intercept and slope of expected ln(ER) against ln(followers) (nulls when nothing to fit).

    A weighted least-squares line through the per-size-bin medians. The few bin medians are collected and the
    line is fitted in numpy: polars may sum floats in a different order from run to run, and the score must be
    bit-for-bit reproducible.
    """
    bins = (
        base.filter(pl.col("_log_er").is_not_null())
        .group_by((pl.col("_log_f") / _BIN_WIDTH).floor().alias("_bin"))
        .agg(xm=pl.col("_log_f").median(), ym=pl.col("_log_er").median(), w=pl.len().cast(pl.Float64))
        .sort("_bin")
        .collect()
    )
    schema = {"_slope": pl.Float64, "_intercept": pl.Float64}
    if bins.height == 0:
        return pl.LazyFrame({"_slope": [None], "_intercept": [None]}, schema=schema)
    x, y, w = (bins[c].to_numpy().astype(np.float64) for c in ("xm", "ym", "w"))
    mx, my = float(np.dot(w, x) / w.sum()), float(np.dot(w, y) / w.sum())
    sxx = float(np.dot(w, (x - mx) ** 2))
    # One bin (all creators of a similar size): a flat expectation, the median itself.
    slope = float(np.dot(w, (x - mx) * (y - my)) / sxx) if sxx > 0 else 0.0
    return pl.LazyFrame({"_slope": [slope], "_intercept": [my - slope * mx]}, schema=schema)


def follower_sample_summary(followers: pl.LazyFrame) -> pl.LazyFrame:
    """Per creator with a (as-of filtered) follower sample: suspicious_share and follower_sample_size.

    The per-creator half of :func:`audience_quality`: it needs only that creator's followers, so a partitioned build
    computes it partition by partition and :func:`quality_from_creators` combines the creator-level rows.
    """
    return (
        follower_flags(followers)
        .group_by("creator_id")
        .agg(
            suspicious_share=pl.col("suspicious").cast(pl.Float64).mean(),
            follower_sample_size=pl.len().cast(pl.Int64),
        )
    )


QUALITY_INPUTS = (
    "creator_id",
    "followers",
    "er_median",
    "likes_spikiness",
    "comment_like_ratio",
    "suspicious_share",
    "follower_sample_size",
)
"""The creator-level columns :func:`quality_from_creators` reads."""


def audience_quality(creators: pl.LazyFrame, stats: pl.LazyFrame, followers: pl.LazyFrame | None) -> pl.LazyFrame:
    """Per creator (order of ``creators``): suspicious_share, follower_sample_size, er_residual,
    engagement_anomaly, audience_quality (0–100, higher = more authentic) and quality_source.

    ``stats`` is the output of ``audiencefit.features.stats.creator_stats``; ``followers`` the (as-of filtered) follower
    sample, or None. The combination and its reasons are in the module docstring. Nulls: suspicious_share without
    a sample; er_residual when ER or followers is not positive or nothing could be fitted; engagement_anomaly when
    no component is defined (no posts).
    """
    if followers is None:
        sample = creators.select(
            "creator_id",
            suspicious_share=pl.lit(None, dtype=pl.Float64),
            follower_sample_size=pl.lit(0, dtype=pl.Int64),
        )
    else:
        sample = follower_sample_summary(followers)
    base = (
        creators.select("creator_id", "followers")
        .join(
            stats.select("creator_id", "er_median", "likes_spikiness", "comment_like_ratio"),
            on="creator_id",
            how="left",
            maintain_order="left",
        )
        .join(sample, on="creator_id", how="left", maintain_order="left")
    )
    return quality_from_creators(base)


def quality_from_creators(table: pl.LazyFrame) -> pl.LazyFrame:
    """The global half of :func:`audience_quality`, on one creator-level row per creator (:data:`QUALITY_INPUTS`;
    a null ``follower_sample_size`` means no sample): the medians, MADs and the expected-ER line are taken over every
    row of ``table``, so it must hold all creators of the feature set. Output rows follow ``table``'s order."""
    er = pl.col("er_median")
    f = pl.col("followers")
    base = table.select(*QUALITY_INPUTS).with_columns(
        pl.col("follower_sample_size").fill_null(0),
        _log_f=pl.when(f > 0).then(f.cast(pl.Float64).log()),
        _log_er=pl.when((er > 0) & (f > 0)).then(er.log()),
    )

    components = {
        "low_er": _ramp(-_robust_z(pl.col("er_residual"))),
        "spikiness": _ramp(_robust_z(pl.col("likes_spikiness").log())),
        "comment_ratio": _ramp(_robust_z(pl.col("comment_like_ratio").clip(lower_bound=CLR_FLOOR).log()).abs()),
    }
    weighted = pl.sum_horizontal(*(pl.col(f"_c_{k}") * w for k, w in COMPONENT_WEIGHTS.items()))
    weight_present = pl.sum_horizontal(
        *(pl.col(f"_c_{k}").is_not_null().cast(pl.Float64) * w for k, w in COMPONENT_WEIGHTS.items())
    )

    n = pl.col("follower_sample_size").cast(pl.Float64)
    share = pl.col("suspicious_share")
    shrunk = (n * share + SHRINK_FOLLOWERS * share.median()) / (n + SHRINK_FOLLOWERS)
    has_sample = share.is_not_null()
    has_engagement = pl.col("engagement_anomaly").is_not_null()
    follower_part = 1.0 - pl.col("_shrunk_share")
    engagement_part = 1.0 - pl.col("engagement_anomaly")

    return (
        base.join(_expected_log_er(base), how="cross", maintain_order="left")
        .with_columns(er_residual=pl.col("_log_er") - (pl.col("_intercept") + pl.col("_slope") * pl.col("_log_f")))
        .with_columns(**{f"_c_{k}": expr for k, expr in components.items()})
        .with_columns(
            engagement_anomaly=pl.when(weight_present > 0).then(weighted / weight_present),
            _shrunk_share=shrunk,
        )
        .select(
            "creator_id",
            "suspicious_share",
            "follower_sample_size",
            "er_residual",
            "engagement_anomaly",
            pl.when(has_sample & has_engagement)
            .then(100.0 * (FOLLOWER_WEIGHT * follower_part + (1.0 - FOLLOWER_WEIGHT) * engagement_part))
            .when(has_sample)
            .then(100.0 * follower_part)
            .when(has_engagement)
            .then(100.0 * engagement_part)
            .alias("audience_quality"),
            pl.when(has_sample & has_engagement)
            .then(pl.lit("followers+engagement"))
            .when(has_sample)
            .then(pl.lit("followers"))
            .when(has_engagement)
            .then(pl.lit("engagement"))
            .alias("quality_source"),
        )
    )
