"""Per-creator statistics from posts, computed "as of" an instant.

Every function here is a pure ``pl.LazyFrame -> pl.LazyFrame`` transform over validated frames (column names of
``audiencefit.features.schemas``): no IO, and the output is deterministic (rows follow the order of ``creators``, or are
sorted).

Point-in-time rule: with ``as_of`` set, only posts with ``posted_at < as_of`` and followers with ``observed_at`` null
or ``< as_of`` are used, so adding later rows never changes a feature. A naive ``as_of`` is read as UTC.

Caveat: the creator's follower count is the one exported with the creators table (no history exists), so
engagement rates of old posts are divided by today's count.

Caption terms (:func:`creator_terms`) follow the rules of
``audiencefit.features.text.extract_hashtags/extract_mentions``, vectorised with polars' (Rust) regexes:

- the caption is NFKC-normalised (stylised letters such as 𝓵𝓸𝓿𝓮 become plain), then e-mail addresses, URLs and
  bare links (``bit.ly/x``, ``shop.example.com``) are removed, so ``me@mail.com`` is no mention and
  ``https://x.com/#top`` no hashtag;
- hashtag: ``#`` not preceded by a word character, ``&``, ``#`` or ``@`` (so ``&#39;`` and ``a#b`` are not tags),
  followed by one or more Unicode word characters (letters of any script, combining marks, digits, ``_``,
  ZWJ/ZWNJ): ``#café`` → ``café``, ``#料理`` → ``料理``, ``#भारत`` → ``भारत``; the tag ends at the first other
  character (punctuation, space, emoji, another ``#``);
- mention: ``@`` not preceded by a word character, ``@`` or ``#``, followed by word characters and dots (the
  ``[A-Za-z0-9_.]`` handle alphabet of the big platforms, plus letters of other scripts as ``audiencefit.features.text``
  accepts them, so ``@josé`` is ``josé``, not a truncated ``jos``), with trailing dots removed (``@anna.`` at the
  end of a sentence → ``anna``); a mention of dots only is dropped.
- both are lower-cased (Unicode-aware) and stored without ``#``/``@``; ``count`` is the number of posts that
  use the term (a term repeated within one caption counts once).

Known difference from the Python extractor: ``@a.@b`` yields only ``a`` here (the regex engine has no
look-behind, so the separating character is consumed by the previous match); HTML entities are not unescaped.
"""

from __future__ import annotations

from datetime import UTC, datetime

import numpy as np
import polars as pl

from audiencefit.features.schemas import UTC_DATETIME

# Rust regexes have no look-behind: the character before '#'/'@' is matched (or the start of the text) and
# removed afterwards. Rust's Unicode \w includes combining marks and ZWJ/ZWNJ, like the Python tag class.
HASHTAG_PATTERN = r"(?:^|[^\w&#@])#\w+"
MENTION_PATTERN = r"(?:^|[^\w@#])@[\w.]+"
# Links are removed before extraction (same definitions as audiencefit.features.text).
_EMAIL_PATTERN = r"[\w.+-]+@[\w-]+(?:\.[\w-]+)+"
_URL_PATTERN = r"(?i)\b(?:https?://|ftp://|www\.)\S+"
_BARE_DOMAIN_PATTERN = (
    r"(?i)\b(?:[a-z0-9][a-z0-9-]*\.)+"
    r"(?:com|net|org|io|co|ly|ee|me|gl|gg|tv|app|info|biz|shop|store|link|page|site|xyz|bio|us|uk|de|fr|es|it"
    r"|nl|br|in|jp|ru|au|ca)\b(?:/\S*)?"
)

# Follower tiers, upper bounds exclusive; the last tier is open-ended.
FOLLOWER_TIERS: tuple[tuple[str, int | None], ...] = (
    ("sub-1k", 1_000),
    ("nano", 10_000),
    ("micro", 100_000),
    ("mid", 500_000),
    ("macro", 1_000_000),
    ("mega", None),
)

_DAY_MS = 86_400_000.0
_PER_DAY_MS = 1.0 / _DAY_MS  # see _post_level: multiply, never divide by a scalar


def _utc(as_of: datetime) -> datetime:
    """Naive instants are UTC by contract; aware ones are converted."""
    return as_of.replace(tzinfo=UTC) if as_of.tzinfo is None else as_of.astimezone(UTC)


def _as_of_lit(as_of: datetime) -> pl.Expr:
    return pl.lit(_utc(as_of), dtype=UTC_DATETIME)


def filter_as_of(posts: pl.LazyFrame, as_of: datetime | None) -> pl.LazyFrame:
    """Posts published strictly before ``as_of`` (all posts when ``as_of`` is None)."""
    if as_of is None:
        return posts
    return posts.filter(pl.col("posted_at") < _as_of_lit(as_of))


def filter_followers_as_of(followers: pl.LazyFrame, as_of: datetime | None) -> pl.LazyFrame:
    """Followers seen strictly before ``as_of``; a null ``observed_at`` means "before any cut-off" and is kept."""
    if as_of is None:
        return followers
    return followers.filter(pl.col("observed_at").is_null() | (pl.col("observed_at") < _as_of_lit(as_of)))


def sample_followers(followers: pl.LazyFrame, cap: int) -> pl.LazyFrame:
    """At most ``cap`` followers per creator: those with the smallest ``follower_id``, in the input order.

    ``follower_id`` holds the keyed-hash pseudonym (``audiencefit.features.pseudonymise``), so this is a uniform random
    sample, the same in every build under one secret (no random state), and coordinated: a person kept in one creator's
    sample is kept in every other sample it ranks in, so audience overlap between samples stays measurable.
    Creators with at most ``cap`` followers keep every row.
    """
    if cap < 1:
        raise ValueError(f"cap must be at least 1, got {cap}")
    rank = pl.col("follower_id").rank("ordinal").over("creator_id")
    return followers.filter(rank <= cap)


def newest_posts(posts: pl.LazyFrame, cap: int) -> pl.LazyFrame:
    """At most ``cap`` posts per creator: the newest (ties on ``posted_at`` broken by ``post_id``), in input order."""
    if cap < 1:
        raise ValueError(f"cap must be at least 1, got {cap}")
    newer = pl.struct(pl.col("posted_at"), pl.col("post_id")).rank("ordinal", descending=True).over("creator_id")
    return posts.filter(newer <= cap)


def follower_tier(followers: pl.Expr) -> pl.Expr:
    """Size tier label of a follower count (null count → null tier)."""
    expr: pl.Expr = pl.lit(None, dtype=pl.String())
    for label, upper in reversed(FOLLOWER_TIERS):
        below = followers.is_not_null() if upper is None else followers < upper
        expr = pl.when(below).then(pl.lit(label)).otherwise(expr)
    return expr


def _recent_posts(window: pl.LazyFrame, recent_n: int) -> pl.LazyFrame:
    """The last ``recent_n`` posts of each creator, oldest first (ties on ``posted_at`` broken by ``post_id``)."""
    ordered = window.sort(["creator_id", "posted_at", "post_id"])
    from_end = (pl.len() - 1 - pl.int_range(pl.len())).over("creator_id")
    return ordered.filter(from_end < recent_n)


def _post_level(recent: pl.LazyFrame, creators: pl.LazyFrame) -> pl.LazyFrame:
    """Per-post engagement rate and helpers; rates need a positive follower count."""
    has_followers = pl.col("_followers") > 0
    er = pl.when(has_followers).then((pl.col("likes") + pl.col("comments")) / pl.col("_followers"))
    return (
        recent.join(
            creators.select("creator_id", pl.col("followers").alias("_followers")),
            on="creator_id",
            how="left",
            maintain_order="left",
        )
        .with_columns(
            _er=er,
            _vpf=pl.when(has_followers & pl.col("views").is_not_null()).then(pl.col("views") / pl.col("_followers")),
            # Times the reciprocal, not divided: polars divides a one-row frame by a scalar exactly and longer
            # ones by multiplying with the reciprocal, and a creator's numbers must not depend on its partition.
            _t_days=pl.col("posted_at").dt.epoch("ms") * _PER_DAY_MS,
        )
        # log ER is only defined for posts with some engagement; zero-engagement posts drop out of the trend.
        .with_columns(_log_er=pl.when(pl.col("_er") > 0).then(pl.col("_er").log()))
    )


def _aggregations() -> list[pl.Expr]:
    n = pl.len()
    t = pl.col("_t_days")
    span = t.max() - t.min()

    gaps = t.diff().drop_nulls()
    gap_cv = pl.when((n >= 3) & (gaps.mean() > 0)).then(gaps.std() / gaps.mean())

    likes_sum = pl.col("likes").sum()
    likes_median = pl.col("likes").median()
    er_sponsored = pl.col("_er").filter(pl.col("sponsored")).median()
    er_organic = pl.col("_er").filter(~pl.col("sponsored")).median()

    return [
        n.alias("n_posts"),
        pl.col("_er").median().alias("er_median"),
        pl.col("_er").mean().alias("er_mean"),
        # The span is floored at one week: one post (or a burst on one day) reads as n posts per week, not infinity.
        (7.0 * n / pl.max_horizontal(span, pl.lit(7.0))).alias("posts_per_week"),
        gap_cv.alias("gap_cv"),
        pl.when(likes_sum > 0).then(pl.col("comments").sum() / likes_sum).alias("comment_like_ratio"),
        pl.col("sponsored").cast(pl.Float64).mean().alias("sponsored_share"),
        pl.when((er_organic > 0) & er_sponsored.is_not_null())
        .then(er_sponsored / er_organic)
        .alias("sponsored_er_ratio"),
        pl.when(likes_median > 0).then(pl.col("likes").max() / likes_median).alias("likes_spikiness"),
        pl.col("_vpf").median().alias("views_per_follower"),
        pl.col("posted_at").max().alias("last_post_at"),
    ]


def _er_trend(post_level: pl.DataFrame, recent_n: int) -> pl.DataFrame:
    """creator_id, er_trend: least-squares slope of ln(ER) against time (per 30 days) of each creator's posts.

    In numpy, every sum in post order (sequential over a fixed ``recent_n`` columns): polars' grouped sums of
    derived expressions change in the last bit with a group's position in the frame, and a creator's statistics
    must not depend on which creators are computed with it (a partitioned build gives the same bytes).
    ``post_level`` is sorted by creator, then post time.
    """
    valid = post_level.filter(pl.col("_log_er").is_not_null()).select("creator_id", "_t_days", "_log_er")
    if valid.height == 0:
        return pl.DataFrame(schema={"creator_id": pl.String, "er_trend": pl.Float64})
    runs = valid.select(pl.col("creator_id").rle()).unnest("creator_id")
    lengths = runs["len"].to_numpy().astype(np.int64)
    if lengths.max() > recent_n:
        raise ValueError(f"a creator has {lengths.max()} recent posts, more than recent_n={recent_n}")
    n_groups = len(lengths)
    group = np.repeat(np.arange(n_groups), lengths)
    position = np.arange(valid.height) - np.repeat(np.cumsum(lengths) - lengths, lengths)
    mask = np.zeros((n_groups, recent_n), dtype=bool)
    t = np.zeros((n_groups, recent_n))
    y = np.zeros((n_groups, recent_n))
    mask[group, position] = True
    t[group, position] = valid["_t_days"].to_numpy()
    y[group, position] = valid["_log_er"].to_numpy()

    def in_order(matrix: np.ndarray) -> np.ndarray:
        total = np.zeros(n_groups)
        for j in range(recent_n):
            total += matrix[:, j]
        return total

    count = lengths.astype(np.float64)
    t_centered = np.where(mask, t - (in_order(t) / count)[:, None], 0.0)
    y_centered = np.where(mask, y - (in_order(y) / count)[:, None], 0.0)
    sxx = in_order(t_centered * t_centered)
    sxy = in_order(t_centered * y_centered)
    defined = (lengths >= 4) & (sxx > 0)
    slope = np.divide(sxy, sxx, out=np.zeros(n_groups), where=defined) * 30.0
    return pl.DataFrame({"creator_id": runs["value"], "_slope": slope, "_defined": defined}).select(
        "creator_id", pl.when(pl.col("_defined")).then(pl.col("_slope")).alias("er_trend")
    )


def days_since(reference: pl.Expr, instant: pl.Expr) -> pl.Expr:
    """(reference − instant) in days, as ``days_since_last_post`` measures it (null when either is null): times
    the reciprocal of a day, the same bits whatever the frame's length (see ``_PER_DAY_MS``)."""
    return (reference - instant).dt.total_milliseconds() * _PER_DAY_MS


def creator_stats(
    creators: pl.LazyFrame, posts: pl.LazyFrame, *, as_of: datetime | None, recent_n: int = 30
) -> pl.LazyFrame:
    """One row per creator of ``creators`` with activity and engagement statistics as of ``as_of``.

    Post statistics use the creator's last ``recent_n`` posts before ``as_of`` ("recent posts"); a creator with
    no such post has ``n_posts = 0`` and null statistics. Columns and when they are null:

    - ``n_posts``: recent posts used (≤ ``recent_n``); ``n_posts_total``: all posts before ``as_of``.
    - ``er_median``, ``er_mean``: engagement rate per post = (likes + comments) / followers; null when
      followers ≤ 0 or no posts.
    - ``er_trend``: least-squares slope of ln(ER) against time, per 30 days (+0.1 ≈ ER grows ~10 % a month);
      fitted on recent posts with ER > 0; null with fewer than 4 such posts or all at one instant.
    - ``posts_per_week``: 7 · n / max(span in days, 7), span = last − first recent post; null without posts.
    - ``gap_cv``: sample std / mean of the gaps between consecutive recent posts; null with < 3 posts or when
      all posts share one instant.
    - ``comment_like_ratio``: Σ comments / Σ likes; null when Σ likes = 0.
    - ``sponsored_share``: share of recent posts that are sponsored.
    - ``sponsored_er_ratio``: median ER of sponsored / median ER of organic posts; null when either group is
      empty, ER is undefined, or the organic median is 0.
    - ``likes_spikiness``: max likes / median likes (1 = flat; large = a spike); null when median likes is 0.
    - ``views_per_follower``: median of views / followers over posts reporting views; null with no views.
    - ``last_post_at``; ``days_since_last_post``: (as_of − last post) in days; null when ``as_of`` is None.
      Recency needs a stated instant (``audiencefit.features.build`` passes the export instant): the newest timestamp in
      the data is no such instant, since one post dated 9999-12-31 would make every other creator look inactive.
    - ``follower_tier``: 'sub-1k' < 1k ≤ 'nano' < 10k ≤ 'micro' < 100k ≤ 'mid' < 500k ≤ 'macro' < 1M ≤ 'mega'.
    - ``log_followers``: ln(1 + followers) (defined at 0); ``following_ratio``: following / followers, null
      when followers is 0 or following is unknown.
    """
    if recent_n < 1:
        raise ValueError(f"recent_n must be at least 1, got {recent_n}")
    window = filter_as_of(posts, as_of)
    totals = window.group_by("creator_id").agg(pl.len().alias("n_posts_total"))
    post_level = _post_level(_recent_posts(window, recent_n), creators).collect()
    per_creator = (
        post_level.lazy()
        .group_by("creator_id")
        .agg(_aggregations())
        .join(_er_trend(post_level, recent_n).lazy(), on="creator_id", how="left")
    )

    reference = pl.LazyFrame({"_ref": [_utc(as_of) if as_of is not None else None]}, schema={"_ref": UTC_DATETIME})

    followers = pl.col("followers")
    stats_cols = [
        "er_median",
        "er_mean",
        "er_trend",
        "posts_per_week",
        "gap_cv",
        "comment_like_ratio",
        "sponsored_share",
        "sponsored_er_ratio",
        "likes_spikiness",
        "views_per_follower",
        "last_post_at",
    ]
    return (
        creators.select("creator_id", "followers", "following")
        .join(totals, on="creator_id", how="left", maintain_order="left")
        .join(per_creator, on="creator_id", how="left", maintain_order="left")
        .join(reference, how="cross", maintain_order="left")
        .select(
            "creator_id",
            pl.col("n_posts").fill_null(0).cast(pl.Int64),
            pl.col("n_posts_total").fill_null(0).cast(pl.Int64),
            *stats_cols,
            days_since(pl.col("_ref"), pl.col("last_post_at")).alias("days_since_last_post"),
            follower_tier(followers).alias("follower_tier"),
            followers.cast(pl.Float64).log1p().alias("log_followers"),
            pl.when(followers > 0).then(pl.col("following") / followers).alias("following_ratio"),
        )
    )


def _terms(window: pl.LazyFrame, kind: str, pattern: str, clean: pl.Expr) -> pl.LazyFrame:
    return window.select(
        "creator_id",
        "posted_at",
        pl.lit(kind).alias("kind"),
        pl.col("_text")
        .str.extract_all(pattern)
        .list.eval(clean.str.to_lowercase())
        .list.eval(pl.element().filter(pl.element().str.len_chars() > 0))
        .list.unique()
        .alias("term"),
    ).explode("term")


def creator_terms(posts: pl.LazyFrame, *, as_of: datetime | None) -> pl.LazyFrame:
    """Hashtags and mentions each creator used in captions before ``as_of`` (rules in the module docstring).

    Long frame sorted by (creator_id, kind, term): creator_id, kind ('mention' | 'hashtag'), term (lower case,
    without '#'/'@'), count (posts using it), last_used_at (latest such post). Posts without a caption or without
    terms contribute no rows.
    """
    text = (
        pl.col("caption")
        .str.normalize("NFKC")
        .str.replace_all(_EMAIL_PATTERN, " ")
        .str.replace_all(_URL_PATTERN, " ")
        .str.replace_all(_BARE_DOMAIN_PATTERN, " ")
    )
    window = filter_as_of(posts, as_of).select("creator_id", "posted_at", text.alias("_text"))
    hashtags = _terms(window, "hashtag", HASHTAG_PATTERN, pl.element().str.replace(r"^[^#]*#", ""))
    mentions = _terms(
        window, "mention", MENTION_PATTERN, pl.element().str.replace(r"^[^@]*@", "").str.strip_chars_end(".")
    )
    return (
        pl.concat([hashtags, mentions])
        .drop_nulls("term")
        .group_by("creator_id", "kind", "term")
        .agg(pl.len().cast(pl.Int64).alias("count"), pl.col("posted_at").max().alias("last_used_at"))
        .sort("creator_id", "kind", "term")
    )
