"""The latent generative story of the synthetic creator world, vectorised with numpy.

Every random quantity of the world is drawn here, as arrays; ``text.py`` only turns them into strings and
``tables.py`` into frames. ``docs/synthetic-world.md`` describes each variable and distribution, in the same
order as this module.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from datetime import UTC, datetime

import numpy as np
import numpy.typing as npt

from audiencefit.features.synthetic.locale import COUNTRIES, COUNTRY_WEIGHTS, N_COUNTRIES
from audiencefit.features.synthetic.topics import N_TOPICS, POPULARITY, TOPICS, related_matrix

FloatArr = npt.NDArray[np.float64]
F32Arr = npt.NDArray[np.float32]
IntArr = npt.NDArray[np.int64]
BoolArr = npt.NDArray[np.bool_]

# The instant the world was "exported": fixed, so the same seed always gives the same files.
EXPORT_INSTANT = datetime(2026, 6, 30, tzinfo=UTC)
DAY_US = 86_400_000_000
HOUR_US = 3_600_000_000
EXPORT_US = int(EXPORT_INSTANT.timestamp()) * 1_000_000
EXPORT_DAY = EXPORT_US // DAY_US  # days since 1970-01-01

PLATFORMS = ("instagram", "tiktok", "youtube")
PLATFORM_SHARES = np.array([0.62, 0.25, 0.13])
PLATFORM_ER = np.array([1.0, 1.35, 0.65])  # interactions per follower, relative to instagram
PLATFORM_PRICE = np.array([1.0, 0.85, 2.2])  # price per post, relative to instagram
PLATFORM_REACH = np.array([1.0, 1.4, 0.8])  # share of followers a sponsored post reaches
PLATFORM_CTR = np.array([1.0, 0.7, 1.4])  # link clicks per reached account

LANGUAGES = ("en", "es", "pt", "de", "fr", "it", "id", "nl")
_LANG_INDEX = {code: i for i, code in enumerate(LANGUAGES)}
COUNTRY_LANGUAGE = np.array([_LANG_INDEX[c.language] for c in COUNTRIES], dtype=np.int64)
# Languages with a caption phrase bank ("nl" creators caption in English).
LOCAL_CAPTIONS = np.array([code in {"es", "pt", "de", "fr", "it", "id"} for code in LANGUAGES])

AGE_BAND_COUNT = 7
TOPIC_FEMALE = np.array([t.female_share for t in TOPICS])
TOPIC_AGE = np.array([t.age_mean for t in TOPICS])

FOLLOWER_REAL, FOLLOWER_INACTIVE, FOLLOWER_BOT = 0, 1, 2
POST_TEXT, POST_EMPTY, POST_EMOJI, POST_HASHTAGS = 0, 1, 2, 3


def _mean_one_lognormal(rng: np.random.Generator, sigma: float, size: int) -> FloatArr:
    """Multiplicative noise with mean 1, so expected outcomes stay interpretable."""
    return np.exp(rng.normal(-0.5 * sigma**2, sigma, size))


def _choice(rng: np.random.Generator, probs: FloatArr, size: int) -> IntArr:
    return rng.choice(len(probs), size=size, p=probs / probs.sum()).astype(np.int64)


def _categorical_rows(rng: np.random.Generator, probs: FloatArr) -> IntArr:
    """One category per row of an (m, k) matrix of non-negative weights (rows need not sum to 1)."""
    cum = np.cumsum(probs, axis=1)
    u = rng.random(probs.shape[0]) * cum[:, -1]
    idx = (cum <= u[:, None]).sum(axis=1)
    return np.asarray(np.minimum(idx, probs.shape[1] - 1), dtype=np.int64)


def _row_normalise(m: FloatArr) -> FloatArr:
    total = m.sum(axis=1, keepdims=True)
    return np.asarray(np.divide(m, total, out=np.zeros_like(m), where=total > 0), dtype=np.float64)


def _rank_within(groups_sizes: IntArr) -> IntArr:
    """0, 1, …, size-1 for each group, concatenated."""
    total = int(groups_sizes.sum())
    starts = np.repeat(np.cumsum(groups_sizes) - groups_sizes, groups_sizes)
    return np.arange(total, dtype=np.int64) - starts


# --------------------------------------------------------------------------------------------------- creators


@dataclass(frozen=True)
class Creators:
    """Latent and observed attributes of every creator, index-aligned."""

    n: int
    platform: IntArr  # index into PLATFORMS
    country: IntArr  # index into COUNTRIES (the true country, even when the export hides it)
    language: IntArr  # index into LANGUAGES
    local_share: FloatArr  # share of captions written in the creator's own language
    home_share: FloatArr  # share of real followers from the creator's country
    content: FloatArr  # (n, T) topic mix of what the creator posts
    audience: FloatArr  # (n, T) topic mix of what the real followers are interested in
    mismatched: BoolArr  # audience mostly in a different niche than the content
    primary_topic: IntArr
    followers: IntArr  # follower count shown at export
    inflated: BoolArr
    authenticity: FloatArr  # share of followers that are real people
    er_real: FloatArr  # expected interactions per real follower on an organic post
    growth: FloatArr  # yearly log growth of the follower count
    comment_ratio: FloatArr  # comments per like
    sponsored_share: FloatArr
    n_posts: IntArr  # organic posts in the export
    window_days: FloatArr  # how far back the creator's exported posts go
    bursty: BoolArr  # posts in bursts rather than on a schedule
    mention_propensity: FloatArr  # chance an organic post tags a brand
    price_noise: FloatArr
    quotes_rate: BoolArr  # rate_per_post is published
    following: IntArr
    lifetime_posts: IntArr
    sample_size: IntArr  # follower profiles in the export sample (0 = no sample)
    bio_missing: BoolArr
    following_null: BoolArr
    post_count_null: BoolArr
    country_null: BoolArr
    language_null: BoolArr

    @property
    def base_engagement_rate(self) -> FloatArr:
        """Expected (likes + comments) / followers of a mature organic post at export."""
        return self.er_real * self.authenticity


def price_per_post(followers: FloatArr, engagement_rate: FloatArr, platform: IntArr, noise: FloatArr) -> FloatArr:
    """Quoted price of one sponsored post: sub-linear in followers, rising with engagement, by platform."""
    raw = 25.0 * (followers / 1000.0) ** 0.8 * (np.maximum(engagement_rate, 1e-4) / 0.03) ** 0.3
    return np.asarray(np.maximum(15.0, np.round(raw * PLATFORM_PRICE[platform] * noise / 5.0) * 5.0), dtype=np.float64)


def draw_creators(rng: np.random.Generator, n: int, followers_per_creator: int) -> Creators:
    """Draw every creator's latent attributes."""
    rel = related_matrix()
    rel_norm = _row_normalise(rel)
    platform = _choice(rng, PLATFORM_SHARES, n)
    country = _choice(rng, COUNTRY_WEIGHTS, n)
    language = COUNTRY_LANGUAGE[country].copy()
    language[(language != 0) & (rng.random(n) < 0.12)] = 0  # some non-English creators post in English
    local_share = np.where(LOCAL_CAPTIONS[language], rng.uniform(0.5, 0.95, n), 0.0)
    home_share = rng.uniform(0.5, 0.9, n)

    # Content: 1-3 topics, the extra ones usually related to the first, weights Dirichlet.
    n_topics = rng.choice(np.array([1, 2, 3]), size=n, p=[0.35, 0.40, 0.25])
    chosen = np.zeros((n, N_TOPICS), dtype=bool)
    first = _choice(rng, POPULARITY, n)
    chosen[np.arange(n), first] = True
    for k in (2, 3):
        near = _row_normalise(chosen.astype(np.float64) @ rel)
        probs = 0.65 * near + 0.35 * POPULARITY[None, :]
        probs[chosen] = 0.0
        pick = _categorical_rows(rng, probs)
        need = n_topics >= k
        chosen[np.flatnonzero(need), pick[need]] = True
    alpha = np.where(chosen, 1.6, 1.0)
    alpha[np.arange(n), first] = 3.5
    gammas = rng.gamma(alpha) * chosen
    content = _row_normalise(gammas)
    primary = content.argmax(axis=1).astype(np.int64)

    # Audience: mostly the content mix, drifting toward related and random topics; ~10% in another niche.
    noise = _row_normalise(rng.gamma(0.35, size=(n, N_TOPICS)))
    drift = 0.6 * _row_normalise(content @ rel_norm) + 0.4 * noise
    keep = rng.beta(7.0, 3.0, n)[:, None]
    mismatched = rng.random(n) < 0.10
    niche_probs = np.where(chosen, 0.0, POPULARITY[None, :])
    niche = _categorical_rows(rng, niche_probs)
    niche_mix = 0.25 * drift
    niche_mix[np.arange(n), niche] += 0.75
    audience = np.where(mismatched[:, None], 0.2 * content + 0.8 * niche_mix, keep * content + (1 - keep) * drift)
    audience = 0.97 * audience + 0.03 * POPULARITY[None, :]
    audience = _row_normalise(audience)

    # Size: log-normal follower count, concentrated in 1k-100k.
    log_followers = np.clip(rng.normal(3.95, 0.58, n), 2.0, 6.3)
    followers = np.round(10.0**log_followers).astype(np.int64)
    inflated = rng.random(n) < 0.08
    authenticity = np.where(inflated, 0.12 + 0.68 * rng.beta(3.0, 3.0, n), 1.0 - rng.beta(1.5, 22.0, n))
    # Per real follower, engagement falls with the size the account appears to have (bought followers do not
    # make the real ones more engaged), so inflated accounts engage less for their size.
    er_real = 0.07 * (followers / 2000.0) ** -0.33 * PLATFORM_ER[platform] * np.exp(rng.normal(0.0, 0.4, n))
    er_real = np.clip(er_real, 0.003, 0.4)

    n_posts = np.minimum(3 + rng.poisson(10.0 * rng.gamma(2.0, 0.5, n)), 90).astype(np.int64)
    window_days = np.where(rng.random(n) < 0.7, 730.0, rng.uniform(90.0, 730.0, n))
    has_sample = (rng.random(n) < 0.9) & (followers_per_creator > 0)
    sizes = np.maximum(1, np.round(followers_per_creator * rng.uniform(0.6, 1.8, n))).astype(np.int64)
    following = np.round(np.exp(rng.normal(np.log(650.0), 0.8, n)) * np.where(inflated, 2.5, 1.0))
    lifetime = n_posts + rng.poisson(n_posts * rng.uniform(0.5, 8.0, n))
    return Creators(
        n=n,
        platform=platform,
        country=country,
        language=language,
        local_share=local_share,
        home_share=home_share,
        content=content,
        audience=audience,
        mismatched=mismatched,
        primary_topic=primary,
        followers=followers,
        inflated=inflated,
        authenticity=authenticity,
        er_real=er_real,
        growth=np.clip(rng.normal(0.18, 0.25, n), -0.4, 1.5),
        comment_ratio=rng.uniform(0.02, 0.05, n),
        sponsored_share=rng.uniform(0.05, 0.15, n),
        n_posts=n_posts,
        window_days=window_days,
        bursty=rng.random(n) < 0.4,
        mention_propensity=rng.beta(1.0, 14.0, n),
        price_noise=np.exp(rng.normal(0.0, 0.3, n)),
        quotes_rate=rng.random(n) < 0.5,
        following=following.astype(np.int64),
        lifetime_posts=lifetime.astype(np.int64),
        sample_size=np.where(has_sample, sizes, 0),
        bio_missing=rng.random(n) < 0.15,
        following_null=rng.random(n) < 0.05,
        post_count_null=rng.random(n) < 0.05,
        country_null=rng.random(n) < 0.06,
        language_null=rng.random(n) < 0.08,
    )


def followers_at(creators: Creators, idx: IntArr, instant_us: IntArr) -> FloatArr:
    """Follower count of creators ``idx`` at ``instant_us``, by their growth rate back from the export."""
    return followers_back(creators.followers[idx], creators.growth[idx], instant_us)


def followers_back(followers_at_export: IntArr, growth: FloatArr, instant_us: IntArr) -> FloatArr:
    """Follower count at ``instant_us`` of creators with ``followers_at_export`` and yearly log ``growth``."""
    years = (EXPORT_US - instant_us) / (365.25 * DAY_US)
    out: FloatArr = followers_at_export.astype(np.float64) * np.exp(-growth * years)
    return out


# ----------------------------------------------------------------------------------------- brands, segments


@dataclass(frozen=True)
class Brands:
    """Brands and their segments. Segment arrays are indexed by segment, brand arrays by brand."""

    n: int
    primary_topic: IntArr
    secondary_topic: IntArr  # -1 when the brand has one topic
    home_country: IntArr
    order_value: FloatArr  # median basket in USD
    conversion_factor: FloatArr  # how well the brand's shop converts, relative
    seg_brand: IntArr
    seg_topics: IntArr  # (S, 2) topic ids, -1 for none
    seg_weights: FloatArr  # (S, 2) mix weights of seg_topics
    seg_countries: BoolArr  # (S, C) targeted countries; all False = anywhere
    seg_weight: FloatArr  # the segment's importance within its brand
    seg_demo: IntArr  # index of a demographic phrase, -1 for none
    seg_geo_in_text: BoolArr  # description names the target countries

    @property
    def n_segments(self) -> int:
        return len(self.seg_brand)

    @property
    def seg_mix(self) -> FloatArr:
        """(S, T) topic mix of each segment."""
        mix = np.zeros((self.n_segments, N_TOPICS))
        for k in range(2):
            has = self.seg_topics[:, k] >= 0
            mix[np.flatnonzero(has), self.seg_topics[has, k]] += self.seg_weights[has, k]
        return mix

    def first_segments(self, k: int) -> Brands:
        """The same brands with only segments ``0..k-1`` (all of them when ``k`` is at least their number)."""
        if k >= self.n_segments:
            return self
        return dataclasses.replace(
            self,
            seg_brand=self.seg_brand[:k],
            seg_topics=self.seg_topics[:k],
            seg_weights=self.seg_weights[:k],
            seg_countries=self.seg_countries[:k],
            seg_weight=self.seg_weight[:k],
            seg_demo=self.seg_demo[:k],
            seg_geo_in_text=self.seg_geo_in_text[:k],
        )

    @property
    def brand_mix(self) -> FloatArr:
        """(B, T) topic mix of each brand: its segments' mixes weighted by importance."""
        mix = np.zeros((self.n, N_TOPICS))
        np.add.at(mix, self.seg_brand, self.seg_mix * self.seg_weight[:, None])
        return _row_normalise(mix)


N_DEMOGRAPHICS = 8


def draw_brands(rng: np.random.Generator, n_brands: int) -> Brands:
    """Draw brands, each with 1-3 segments whose topic mixes come from the brand's categories."""
    rel_norm = _row_normalise(related_matrix())
    primary = _choice(rng, POPULARITY, n_brands)
    secondary = np.where(rng.random(n_brands) < 0.6, _categorical_rows(rng, rel_norm[primary]), -1)
    n_seg = rng.choice(np.array([1, 2, 3]), size=n_brands, p=[0.3, 0.45, 0.25])
    seg_brand = np.repeat(np.arange(n_brands), n_seg)
    s = len(seg_brand)
    rank = _rank_within(n_seg.astype(np.int64))

    b_primary, b_secondary = primary[seg_brand], secondary[seg_brand]
    r = rng.random(s)
    wander = _categorical_rows(rng, rel_norm[b_primary])
    t1 = np.where(rank == 0, b_primary, np.where((r < 0.45) & (b_secondary >= 0), b_secondary, b_primary))
    t1 = np.where((rank > 0) & (r >= 0.8), wander, t1)
    probs2 = 0.7 * rel_norm[t1] + 0.3 * POPULARITY[None, :]
    probs2[np.arange(s), t1] = 0.0
    t2 = np.where(rng.random(s) < 0.55, _categorical_rows(rng, probs2), -1)
    w1 = np.where(t2 >= 0, rng.beta(5.0, 2.0, s), 1.0)

    home = _choice(rng, COUNTRY_WEIGHTS, n_brands)
    countries = np.zeros((s, N_COUNTRIES), dtype=bool)
    targeted = rng.random(s) < 0.4
    n_targets = rng.choice(np.array([1, 2, 3]), size=s, p=[0.5, 0.3, 0.2])
    for i in np.flatnonzero(targeted):
        if rng.random() < 0.7:
            countries[i, home[seg_brand[i]]] = True
        while countries[i].sum() < n_targets[i]:
            countries[i, _choice(rng, COUNTRY_WEIGHTS, 1)[0]] = True
    weight = np.round(rng.uniform(0.5, 2.0, s) * np.where(rank == 0, 1.5, 1.0), 2)
    return Brands(
        n=n_brands,
        primary_topic=primary,
        secondary_topic=secondary.astype(np.int64),
        home_country=home,
        order_value=np.exp(rng.normal(np.log(45.0), 0.45, n_brands)),
        conversion_factor=np.exp(rng.normal(0.0, 0.3, n_brands)),
        seg_brand=seg_brand.astype(np.int64),
        seg_topics=np.stack([t1, t2], axis=1).astype(np.int64),
        seg_weights=np.stack([w1, 1.0 - w1], axis=1) * np.stack([np.ones(s), t2 >= 0], axis=1),
        seg_countries=countries,
        seg_weight=weight,
        seg_demo=np.where(rng.random(s) < 0.5, rng.integers(0, N_DEMOGRAPHICS, s), -1).astype(np.int64),
        seg_geo_in_text=rng.random(s) < 0.7,
    )


# ------------------------------------------------------------------------------------------------ true fit


def interest_overlap(mix: FloatArr, brands: Brands, segs: IntArr | None = None) -> FloatArr:
    """Histogram intersection sum_t min(mix_t, segment_t) of each row of ``mix`` with each segment.

    Returns (rows, segments) for all segments, or (rows,) pairwise when ``segs`` gives one segment per row.
    Segments have at most two topics, so this touches two columns instead of T.
    """
    if segs is None:
        out = np.zeros((mix.shape[0], brands.n_segments))
        for k in range(2):
            topics, weights = brands.seg_topics[:, k], brands.seg_weights[:, k]
            has = topics >= 0
            out[:, has] += np.minimum(mix[:, topics[has]], weights[has][None, :])
        return out
    pair = np.zeros(mix.shape[0])
    for k in range(2):
        topics, weights = brands.seg_topics[segs, k], brands.seg_weights[segs, k]
        has = topics >= 0
        pair[has] += np.minimum(mix[np.flatnonzero(has), topics[has]], weights[has])
    return pair


def country_share(creators: Creators, idx: IntArr, brands: Brands, segs: IntArr | None = None) -> FloatArr:
    """Share of each creator's real audience living in each segment's target countries (1 when untargeted)."""
    anywhere = np.asarray(~brands.seg_countries.any(axis=1), dtype=np.bool_)
    abroad = brands.seg_countries.astype(np.float64) @ COUNTRY_WEIGHTS  # (S,)
    home = creators.home_share[idx]
    if segs is None:
        at_home = brands.seg_countries[:, creators.country[idx]].T  # (rows, S)
        share = home[:, None] * at_home + (1.0 - home[:, None]) * abroad[None, :]
        return np.where(anywhere[None, :], 1.0, share)
    at_home_pair = brands.seg_countries[segs, creators.country[idx]]
    share_pair = home * at_home_pair + (1.0 - home) * abroad[segs]
    return np.where(anywhere[segs], 1.0, share_pair)


def true_fit(creators: Creators, idx: IntArr, brands: Brands, segs: IntArr | None = None) -> FloatArr:
    """True fit = authentic share × interest overlap with the segment × share of audience in its countries."""
    auth = creators.authenticity[idx]
    overlap = interest_overlap(creators.audience[idx], brands, segs)
    geo = country_share(creators, idx, brands, segs)
    return (auth[:, None] if segs is None else auth) * overlap * geo


# ----------------------------------------------------------------------------------------------- campaigns


@dataclass(frozen=True)
class Campaigns:
    """Past campaigns, sorted by start date. Null outcomes are -1 (ints) or NaN (floats)."""

    segment: IntArr
    brand: IntArr
    creator: IntArr
    start_day: IntArr  # days since 1970-01-01
    post_us: IntArr  # when the sponsored post went out
    fit: FloatArr
    cost: FloatArr
    impressions: IntArr
    reach: IntArr
    likes: IntArr
    comments: IntArr
    clicks: IntArr
    conversions: IntArr
    revenue: FloatArr
    expected_reach: FloatArr
    expected_engagement_rate: FloatArr
    expected_clicks: FloatArr
    expected_conversions: FloatArr
    expected_revenue: FloatArr

    @property
    def n(self) -> int:
        return len(self.segment)


def _campaign_counts(rng: np.random.Generator, brands: Brands, n_creators: int) -> IntArr:
    """Campaigns per segment: about 0.7 × n_creators in total, at least 3 per segment, at most n_creators."""
    share = brands.seg_weight * rng.gamma(2.0, 0.5, brands.n_segments)
    counts = np.round(0.7 * n_creators * share / share.sum())
    return np.asarray(np.clip(counts, min(3, n_creators), n_creators), dtype=np.int64)


def draw_campaigns(rng: np.random.Generator, creators: Creators, brands: Brands) -> Campaigns:
    """Pick creators for each segment the way marketers do, then draw the outcomes from the latent causes."""
    n = creators.n
    counts = _campaign_counts(rng, brands, n)
    log_size = np.log10(creators.followers)
    all_idx = np.arange(n)
    # One contiguous row per topic: this loop runs once per segment over every creator (quadratic in the world's
    # size), and a strided column gather of the (n, T) mix would dominate it. Same values, same operations.
    content_by_topic = np.ascontiguousarray(creators.content.T)
    # Marketers see content, not audience: perceived fit is content overlap, blurred, plus a taste for size.
    seg_list: list[IntArr] = []
    creator_list: list[IntArr] = []
    for s in range(brands.n_segments):
        targets = brands.seg_countries[s]
        visible = np.where(targets[creators.country], 1.0, 0.25) if targets.any() else np.ones(n)
        content_overlap = np.zeros(n)
        for k in range(2):
            if brands.seg_topics[s, k] >= 0:
                content_overlap += np.minimum(content_by_topic[brands.seg_topics[s, k]], brands.seg_weights[s, k])
        perceived = content_overlap * visible + rng.normal(0.0, 0.08, n)
        score = 6.0 * perceived + 1.0 * log_size + rng.gumbel(size=n)
        k = int(counts[s])
        top = np.argpartition(-score, k - 1)[:k] if k < n else all_idx
        creator_list.append(np.sort(top))
        seg_list.append(np.full(k, s, dtype=np.int64))
    seg = np.concatenate(seg_list)
    ci = np.concatenate(creator_list).astype(np.int64)

    lo = np.maximum(EXPORT_DAY - 548, EXPORT_DAY - creators.window_days[ci].astype(np.int64) + 30)
    start_day = rng.integers(lo, EXPORT_DAY - 14 + 1).astype(np.int64)
    order = np.lexsort((ci, seg, start_day))
    seg, ci, start_day = seg[order], ci[order], start_day[order]
    fit = true_fit(creators, ci, brands, seg)
    drivers = CampaignDrivers(
        followers=followers_at(creators, ci, start_day * DAY_US),
        authenticity=creators.authenticity[ci],
        er_real=creators.er_real[ci],
        platform=creators.platform[ci],
        comment_ratio=creators.comment_ratio[ci],
        price_noise=creators.price_noise[ci],
        overlap=interest_overlap(creators.audience[ci], brands, seg),
        fit=fit,
        conversion_factor=brands.conversion_factor[brands.seg_brand[seg]],
        order_value=brands.order_value[brands.seg_brand[seg]],
    )
    out = campaign_outcomes(rng, start_day, drivers)
    return Campaigns(
        segment=seg,
        brand=brands.seg_brand[seg],
        creator=ci,
        start_day=start_day,
        post_us=out.post_us,
        fit=fit,
        cost=out.cost,
        impressions=out.impressions,
        reach=out.reach,
        likes=out.likes,
        comments=out.comments,
        clicks=out.clicks,
        conversions=out.conversions,
        revenue=out.revenue,
        expected_reach=out.expected_reach,
        expected_engagement_rate=out.expected_engagement_rate,
        expected_clicks=out.expected_clicks,
        expected_conversions=out.expected_conversions,
        expected_revenue=out.expected_revenue,
    )


@dataclass(frozen=True)
class CampaignDrivers:
    """What one sponsored post's outcome depends on, one entry per campaign (creator × segment × start)."""

    followers: FloatArr  # the creator's follower count at the start (:func:`followers_at`)
    authenticity: FloatArr
    er_real: FloatArr
    platform: IntArr
    comment_ratio: FloatArr
    price_noise: FloatArr
    overlap: FloatArr  # interest overlap of the creator's real audience with the segment
    fit: FloatArr  # true fit with the segment (:func:`true_fit`)
    conversion_factor: FloatArr  # of the segment's brand
    order_value: FloatArr  # of the segment's brand


@dataclass(frozen=True)
class CampaignOutcomes:
    """Realised outcomes (-1 / NaN where the brand did not track them) and their expectations."""

    post_us: IntArr
    cost: FloatArr
    impressions: IntArr
    reach: IntArr
    likes: IntArr
    comments: IntArr
    clicks: IntArr
    conversions: IntArr
    revenue: FloatArr
    expected_reach: FloatArr
    expected_engagement_rate: FloatArr
    expected_clicks: FloatArr
    expected_conversions: FloatArr
    expected_revenue: FloatArr


def expected_engagement_rate(d: CampaignDrivers) -> FloatArr:
    """Expected (likes + comments) of the sponsored post per follower at the start."""
    real0 = d.followers * d.authenticity
    out: FloatArr = real0 * d.er_real * 0.75 * (0.55 + 0.9 * d.overlap) / d.followers
    return out


def expected_conversion_parts(d: CampaignDrivers) -> tuple[FloatArr, FloatArr, FloatArr]:
    """(expected reach, click rate per reached account, conversion rate per click) of the sponsored post."""
    real0 = d.followers * d.authenticity
    reach_rate = np.clip(0.3 * (real0 / 5000.0) ** -0.12 * PLATFORM_REACH[d.platform], 0.03, 0.85)
    ctr = 0.012 * PLATFORM_CTR[d.platform] * (0.08 + 2.6 * d.fit)
    cvr = np.clip(0.06 * d.conversion_factor * (0.2 + 2.4 * d.fit), 0.0, 0.5)
    return real0 * reach_rate, ctr, cvr


def campaign_outcomes(rng: np.random.Generator, start_day: IntArr, d: CampaignDrivers) -> CampaignOutcomes:
    """Draw each campaign's post time, outcomes and price from its drivers: the one outcome model of the world,
    used for past campaigns (:func:`draw_campaigns`) and for campaigns contracted later
    (``audiencefit.training.world_truth.draw_outcomes``)."""
    m = len(start_day)
    post_us = start_day * DAY_US + (rng.uniform(0.3, 6.0, m) * DAY_US).astype(np.int64)

    platform = d.platform
    f0 = d.followers
    real0 = f0 * d.authenticity

    expected_reach, ctr, cvr = expected_conversion_parts(d)
    reach = rng.poisson(expected_reach * _mean_one_lognormal(rng, 0.3, m))
    impressions = np.round(reach * (1.1 + rng.gamma(2.0, 0.2, m))).astype(np.int64)

    expected_eng = real0 * d.er_real * 0.75 * (0.55 + 0.9 * d.overlap)
    interactions = rng.poisson(expected_eng * _mean_one_lognormal(rng, 0.35, m))
    c_ratio = d.comment_ratio
    comments = rng.binomial(interactions, c_ratio / (1.0 + c_ratio))
    likes = interactions - comments

    clicks = rng.poisson(reach * ctr * _mean_one_lognormal(rng, 0.4, m))
    conversions = rng.binomial(clicks, np.clip(cvr * _mean_one_lognormal(rng, 0.3, m), 0.0, 0.9))
    order_value = d.order_value
    basket_noise = np.exp(rng.normal(0.0, 0.25, m) / np.sqrt(np.maximum(conversions, 1)))
    revenue = np.round(conversions * order_value * basket_noise, 2)

    er0 = d.er_real * d.authenticity
    cost = np.round(price_per_post(f0, er0, platform, d.price_noise) * _mean_one_lognormal(rng, 0.2, m), 2)
    expected_clicks = expected_reach * ctr
    expected_conversions = expected_clicks * cvr

    # Brands do not track everything: some outcomes are missing, in blocks as in real reports.
    no_reach = rng.random(m) < 0.06
    no_engagement = rng.random(m) < 0.03
    no_clicks = rng.random(m) < 0.05
    no_revenue = no_clicks | (rng.random(m) < 0.03)
    return CampaignOutcomes(
        post_us=post_us,
        cost=np.maximum(cost, 10.0),
        impressions=np.where(no_reach, -1, impressions),
        reach=np.where(no_reach, -1, reach).astype(np.int64),
        likes=np.where(no_engagement, -1, likes).astype(np.int64),
        comments=np.where(no_engagement, -1, comments).astype(np.int64),
        clicks=np.where(no_clicks, -1, clicks).astype(np.int64),
        conversions=np.where(no_clicks, -1, conversions).astype(np.int64),
        revenue=np.where(no_revenue, np.nan, revenue),
        expected_reach=expected_reach,
        expected_engagement_rate=expected_eng / f0,
        expected_clicks=expected_clicks,
        expected_conversions=expected_conversions,
        expected_revenue=expected_conversions * order_value,
    )


# --------------------------------------------------------------------------------------------------- posts


@dataclass(frozen=True)
class Posts:
    """Posts of a chunk of creators, sorted by creator then time."""

    creator: IntArr
    posted_us: IntArr
    topic: IntArr
    likes: IntArr
    comments: IntArr
    views: IntArr  # -1 = not reported
    sponsored: BoolArr
    brand: IntArr  # brand mentioned, -1 for none
    campaign: IntArr  # campaign this post delivered, -1 for none
    local: BoolArr  # caption in the creator's own language
    kind: IntArr  # POST_TEXT, POST_EMPTY, POST_EMOJI, POST_HASHTAGS

    @property
    def n(self) -> int:
        return len(self.creator)


MENTION_BLOCK = 4_000_000  # (post, brand) logits drawn at once when picking mentioned brands, to bound memory


def _mentioned_brands(rng: np.random.Generator, affinity: FloatArr, rows: IntArr, block: int = MENTION_BLOCK) -> IntArr:
    """The brand each post mentions: argmax of ``12 · affinity[rows] + Gumbel`` over brands, post by post.

    ``affinity`` is (creators, brands) and ``rows`` the creator row of each mentioning post. The Gumbel noise is
    drawn in blocks of about ``block`` values: each value takes one draw from the stream in C order, so the blocks
    give exactly the draws, and the picks, of one (posts, brands) array, without holding posts × brands noise and
    logits (≈ 9k × 8k per chunk at a million creators).
    """
    n_rows, n_brands = len(rows), affinity.shape[1]
    step = max(1, block // max(1, n_brands))
    out = np.empty(n_rows, dtype=np.int64)
    for start in range(0, n_rows, step):
        end = min(n_rows, start + step)
        logits = 12.0 * affinity[rows[start:end]] + rng.gumbel(size=(end - start, n_brands))
        out[start:end] = logits.argmax(axis=1)
    return out


def draw_posts(
    rng: np.random.Generator,
    creators: Creators,
    lo: int,
    hi: int,
    *,
    brands: Brands,
    campaigns: Campaigns,
    mention_block: int = MENTION_BLOCK,
) -> Posts:
    """Draw the posts of creators ``lo``..``hi-1``: schedule, engagement, views, sponsorship, brand mentions.

    ``mention_block`` bounds the brand-mention noise held at once; it changes no draw (:func:`_mentioned_brands`).
    """
    idx = np.arange(lo, hi)
    sizes = creators.n_posts[idx]
    ci = np.repeat(idx, sizes)
    p = len(ci)
    rank = _rank_within(sizes)

    # When: regular posters spread evenly over their window, bursty ones cluster around 1-4 moments.
    regular_x = (rank + 0.5 + rng.normal(0.0, 0.3, p)) / sizes[ci - lo]
    centres = rng.random((hi - lo, 4))
    n_bursts = rng.integers(1, 5, hi - lo)
    burst = np.floor(rng.random(p) * n_bursts[ci - lo]).astype(np.int64)
    bursty_x = centres[ci - lo, burst] + rng.laplace(0.0, 0.04, p)
    x = np.clip(np.where(creators.bursty[ci], bursty_x, regular_x), 0.0, 1.0)
    day_index = np.floor(creators.window_days[ci] * (1.0 - x)).astype(np.int64) + 1
    peaks = np.array([8.0, 12.5, 19.0, 21.0])
    hour = np.clip(peaks[rng.integers(0, 4, p)] + rng.normal(0.0, 1.2, p), 0.0, 23.99)
    posted = EXPORT_US - day_index * DAY_US + (hour * HOUR_US).astype(np.int64)
    sponsored = rng.random(p) < creators.sponsored_share[ci]

    # Campaign deliveries of these creators become sponsored posts (after the campaign start: features as of
    # the start date must not see them).
    in_chunk = np.flatnonzero((campaigns.creator >= lo) & (campaigns.creator < hi))
    c_ci = campaigns.creator[in_chunk]
    ci = np.concatenate([ci, c_ci])
    posted = np.concatenate([posted, campaigns.post_us[in_chunk]])
    sponsored = np.concatenate([sponsored, np.ones(len(in_chunk), dtype=bool)])
    campaign = np.concatenate([np.full(p, -1), in_chunk]).astype(np.int64)
    total = len(ci)

    age_days = (EXPORT_US - posted) / DAY_US
    real_t = followers_at(creators, ci, posted) * creators.authenticity[ci]
    maturity = 1.0 - np.exp(-2.0 * age_days)  # likes still arriving on the newest posts
    quality = _mean_one_lognormal(rng, 0.5, total)
    lam = real_t * creators.er_real[ci] * np.where(sponsored, 0.75, 1.0) * quality * maturity
    c_ratio = creators.comment_ratio[ci] * np.exp(rng.normal(0.0, 0.3, total))
    likes = rng.poisson(lam / (1.0 + c_ratio))
    comments = rng.poisson(lam * c_ratio / (1.0 + c_ratio))
    spike = creators.inflated[ci] & (campaign < 0) & (rng.random(total) < 0.12)  # bought likes
    likes = np.where(spike, np.round(likes * rng.uniform(3.0, 8.0, total)), likes).astype(np.int64)
    is_c = campaign >= 0
    c_likes, c_comments = campaigns.likes[campaign[is_c]], campaigns.comments[campaign[is_c]]
    likes[is_c] = np.where(c_likes >= 0, c_likes, likes[is_c])
    comments[is_c] = np.where(c_comments >= 0, c_comments, comments[is_c])

    platform = creators.platform[ci]
    view_rate = np.select(
        [platform == 1, platform == 2],
        [np.exp(rng.normal(np.log(0.9), 1.0, total)), np.exp(rng.normal(np.log(0.3), 0.7, total))],
        np.exp(rng.normal(np.log(0.5), 0.8, total)),
    )
    views = np.maximum(np.round(real_t * view_rate * maturity), 3 * (likes + comments)).astype(np.int64)
    reports_views = (platform > 0) | (rng.random(total) < 0.35)  # instagram: reels only
    views = np.where(reports_views, views, -1)

    topic = _categorical_rows(rng, creators.content[ci])
    topic[is_c] = brands.seg_topics[campaigns.segment[campaign[is_c]], 0]

    # Brand mentions: sponsored posts usually tag a brand; organic ones sometimes, more when the audience fits.
    affinity = creators.audience[idx] @ brands.brand_mix.T  # (creators in chunk, B)
    best = affinity.max(axis=1)
    organic_p = creators.mention_propensity[ci] * np.clip(0.3 + 2.0 * best[ci - lo], 0.0, 1.5)
    mentions = np.where(sponsored, rng.random(total) < 0.75, rng.random(total) < organic_p) & ~is_c
    brand = np.full(total, -1, dtype=np.int64)
    rows = np.flatnonzero(mentions)
    if len(rows) and brands.n:
        brand[rows] = _mentioned_brands(rng, affinity, ci[rows] - lo, mention_block)
    brand[is_c] = campaigns.brand[campaign[is_c]]

    kind = _choice(rng, np.array([0.88, 0.035, 0.035, 0.05]), total)
    kind[sponsored] = POST_TEXT
    local = rng.random(total) < creators.local_share[ci]

    order = np.lexsort((posted, ci))
    return Posts(
        creator=ci[order],
        posted_us=posted[order],
        topic=topic[order],
        likes=likes[order],
        comments=comments[order].astype(np.int64),
        views=views[order],
        sponsored=sponsored[order],
        brand=brand[order],
        campaign=campaign[order],
        local=local[order],
        kind=kind[order],
    )


# ----------------------------------------------------------------------------------------------- followers


@dataclass(frozen=True)
class Followers:
    """The sampled follower profiles of a chunk of creators. Nulls are -1."""

    creator: IntArr
    kind: IntArr  # FOLLOWER_REAL, FOLLOWER_INACTIVE, FOLLOWER_BOT
    interest: IntArr  # main interest topic, -1 when the profile shows none
    interest2: IntArr
    country: IntArr  # index into COUNTRIES, -1 = not disclosed
    age_band: IntArr  # index into AGE_BANDS, -1 = unknown
    gender: IntArr  # index into GENDERS, -1 = unknown
    followers: IntArr
    following: IntArr
    post_count: IntArr
    observed_us: IntArr  # -1 = followed before any cut-off
    has_bio: BoolArr
    spam_bio: BoolArr  # bots only: the bio is spam rather than a plausible one
    local: BoolArr  # bio in the follower's country language
    true_country: IntArr  # where the follower lives, even when the profile hides it

    @property
    def n(self) -> int:
        return len(self.creator)

    @property
    def is_bot(self) -> BoolArr:
        return np.asarray(self.kind != FOLLOWER_REAL, dtype=np.bool_)


def _lognormal_int(rng: np.random.Generator, median: float, sigma: float, size: int) -> IntArr:
    return np.round(np.exp(rng.normal(np.log(median), sigma, size))).astype(np.int64)


def draw_followers(rng: np.random.Generator, creators: Creators, lo: int, hi: int) -> Followers:
    """Draw the follower sample of creators ``lo``..``hi-1``: real fans, inactive accounts and bots."""
    idx = np.arange(lo, hi)
    sizes = creators.sample_size[idx]
    ci = np.repeat(idx, sizes)
    m = len(ci)
    rel_norm = _row_normalise(related_matrix())

    real = rng.random(m) < creators.authenticity[ci]
    bot_share = np.where(creators.inflated[ci], 0.85, 0.4)
    kind = np.where(real, FOLLOWER_REAL, np.where(rng.random(m) < bot_share, FOLLOWER_BOT, FOLLOWER_INACTIVE))
    is_real, is_bot = kind == FOLLOWER_REAL, kind == FOLLOWER_BOT

    interest = _categorical_rows(rng, creators.audience[ci]) if m else np.zeros(0, dtype=np.int64)
    second_probs = 0.5 * rel_norm[interest] + 0.5 * POPULARITY[None, :]
    second_probs[np.arange(m), interest] = 0.0
    interest2 = _categorical_rows(rng, second_probs) if m else np.zeros(0, dtype=np.int64)
    interest = np.where(is_real, interest, -1)
    interest2 = np.where(is_real & (rng.random(m) < 0.45), interest2, -1)

    home = creators.country[ci]
    elsewhere = _choice(rng, COUNTRY_WEIGHTS, m)
    country = np.where(rng.random(m) < creators.home_share[ci], home, elsewhere)
    true_country = country.copy()
    country_null = rng.random(m) < np.select([is_real, is_bot], [0.15, 0.88], 0.5)
    country = np.where(country_null, -1, country)

    topic_for_demo = np.where(interest >= 0, interest, creators.primary_topic[ci])
    age = np.clip(np.round(TOPIC_AGE[topic_for_demo] + rng.normal(0.0, 1.1, m)), 0, AGE_BAND_COUNT - 1)
    age_null = rng.random(m) < np.select([is_real, is_bot], [0.3, 0.95], 0.7)
    female = rng.random(m) < TOPIC_FEMALE[topic_for_demo]
    gender = np.where(female, 0, 1)
    gender = np.where(rng.random(m) < 0.08, np.where(rng.random(m) < 0.25, 2, 3), gender)
    gender_null = rng.random(m) < np.select([is_real, is_bot], [0.25, 0.95], 0.7)

    f_real = _lognormal_int(rng, 250.0, 1.3, m)
    f_bot = np.where(rng.random(m) < 0.7, rng.integers(0, 150, m), _lognormal_int(rng, 300.0, 1.0, m))
    n_followers = np.select([is_real, is_bot], [f_real, f_bot], rng.integers(0, 40, m))
    g_bot = np.where(rng.random(m) < 0.8, rng.integers(1500, 7500, m), _lognormal_int(rng, 900.0, 0.7, m))
    n_following = np.select(
        [is_real, is_bot], [_lognormal_int(rng, 450.0, 0.9, m), g_bot], _lognormal_int(rng, 150.0, 0.8, m)
    )
    p_real = np.where(rng.random(m) < 0.15, rng.integers(0, 6, m), _lognormal_int(rng, 90.0, 1.2, m))
    p_bot = np.where(rng.random(m) < 0.7, rng.integers(0, 4, m), rng.integers(5, 31, m))
    n_posts = np.select([is_real, is_bot], [p_real, p_bot], rng.integers(0, 4, m))

    # Observed-following instants: real fans arrive over time (more recently, as creators grow); bought bots
    # arrive in one to three bursts.
    recent = EXPORT_US - (730.0 * rng.random(m) ** 1.6 * DAY_US).astype(np.int64)
    burst_days = rng.uniform(20.0, 600.0, (hi - lo, 3))
    which = rng.integers(0, 3, m)
    burst_us = EXPORT_US - (burst_days[ci - lo, which] * DAY_US).astype(np.int64)
    burst_us = np.minimum(burst_us + (rng.exponential(1.5, m) * DAY_US).astype(np.int64), EXPORT_US - 1)
    bought = is_bot & creators.inflated[ci]
    observed = np.where(bought, burst_us, recent)
    observed_null = rng.random(m) < np.where(bought, 0.15, np.where(is_real, 0.4, 0.5))

    has_bio = rng.random(m) < np.select([is_real, is_bot], [0.72, 0.65], 0.15)
    spam_bio = is_bot & (rng.random(m) < 0.85)
    local = rng.random(m) < 0.6

    def nullable(values: IntArr, p_null: float) -> IntArr:
        return np.where(rng.random(m) < p_null, -1, values).astype(np.int64)

    return Followers(
        creator=ci,
        kind=kind.astype(np.int64),
        interest=interest.astype(np.int64),
        interest2=interest2.astype(np.int64),
        country=country.astype(np.int64),
        age_band=np.where(age_null, -1, age).astype(np.int64),
        gender=np.where(gender_null, -1, gender).astype(np.int64),
        followers=nullable(n_followers, 0.05),
        following=nullable(n_following, 0.05),
        post_count=nullable(n_posts, 0.05),
        observed_us=np.where(observed_null, -1, observed).astype(np.int64),
        has_bio=has_bio,
        spam_bio=spam_bio,
        local=local,
        true_country=true_country.astype(np.int64),
    )


# --------------------------------------------------------------------------------------------- communities
#
# Real followers are people, and people follow several creators: every real follower belongs to one community,
# the pool of people interested in one topic and living in one country. A creator's real audience in community
# c = (topic t, country g) is a random subset of the pool, of size
#
#     a[i, c] = real_followers[i] × audience[i, t] × (home_share[i] · [g = country[i]] + (1 − home_share[i]) · w[g])
#
# (w = world country weights), drawn independently of other creators. The pool size N[c] = demand[c] / κ[c]
# (demand = Σ_i a[i, c]; κ[c] = 4 · LN₁(0.4), how many of the world's creators an average member follows), and
# never below 1.5 · max_i a[i, c] or 50. Everything here uses its own random stream, so no other draw changes.

COMMUNITY_FOLLOWS = 4.0  # mean number of the world's creators one community member follows
COMMUNITY_SPREAD = 0.4  # σ of the log-normal spread of that number across communities
MIN_POOL = 50


@dataclass(frozen=True)
class Communities:
    """Pool size and demand of every (topic, country) community; arrays are (T, N_COUNTRIES)."""

    pool_size: IntArr
    demand: FloatArr
    follows: FloatArr  # κ: creators of the world an average member follows

    def index(self, topic: IntArr, country: IntArr) -> IntArr:
        """Flat community index (topic-major) of (topic, country) pairs."""
        return np.asarray(topic * N_COUNTRIES + country, dtype=np.int64)


def community_audience(real_followers: FloatArr, audience: FloatArr, country: IntArr, home_share: FloatArr) -> FloatArr:
    """(n, T, N_COUNTRIES) expected real audience of each creator in each community: ``a[i, t, g]``."""
    geo = (1.0 - home_share)[:, None] * COUNTRY_WEIGHTS[None, :]
    geo[np.arange(len(country)), country] += home_share
    out: FloatArr = (real_followers[:, None] * audience)[:, :, None] * geo[:, None, :]
    return out


def draw_communities(rng: np.random.Generator, creators: Creators, chunk: int = 5000) -> Communities:
    """Size every community's pool from the demand of the world's creators (see the comment above)."""
    real = creators.followers.astype(np.float64) * creators.authenticity
    demand = np.zeros((N_TOPICS, N_COUNTRIES))
    largest = np.zeros((N_TOPICS, N_COUNTRIES))
    for lo in range(0, creators.n, chunk):
        sl = slice(lo, min(creators.n, lo + chunk))
        a = community_audience(real[sl], creators.audience[sl], creators.country[sl], creators.home_share[sl])
        demand += a.sum(axis=0)
        largest = np.maximum(largest, a.max(axis=0))
    follows = COMMUNITY_FOLLOWS * _mean_one_lognormal(rng, COMMUNITY_SPREAD, N_TOPICS * N_COUNTRIES).reshape(
        N_TOPICS, N_COUNTRIES
    )
    pool = np.maximum(np.maximum(np.ceil(demand / follows), np.ceil(1.5 * largest)), MIN_POOL).astype(np.int64)
    return Communities(pool_size=pool, demand=demand, follows=follows)


def draw_members(rng: np.random.Generator, followers: Followers, communities: Communities) -> IntArr:
    """Which pool member each real sampled follower is (-1 for bots and inactive accounts).

    A uniform member of a creator's random subset of the pool is a uniform member of the pool, and subsets of
    different creators are independent, so members are drawn uniformly from the pool, distinct within a creator.
    """
    members = np.full(followers.n, -1, dtype=np.int64)
    real = np.flatnonzero(followers.kind == FOLLOWER_REAL)
    if len(real) == 0:
        return members
    community = communities.index(followers.interest[real], followers.true_country[real])
    size = communities.pool_size.reshape(-1)[community]
    draw = np.floor(rng.random(len(real)) * size).astype(np.int64)
    for _ in range(100):  # redraw the rare repeats within one creator and community
        key = np.stack([followers.creator[real], community, draw], axis=1)
        _, first, counts = np.unique(key, axis=0, return_index=True, return_counts=True)
        dup = np.ones(len(real), dtype=bool)
        dup[first] = False
        if not dup.any() or counts.max() == 1:
            break
        draw[dup] = np.floor(rng.random(int(dup.sum())) * size[dup]).astype(np.int64)
    members[real] = draw
    return members
