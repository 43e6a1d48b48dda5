"""Frames of the synthetic world: latent arrays and rendered text in, polars frames matching the contracts out.

The six input tables follow ``audiencefit.features.schemas`` exactly; the ``truth/`` tables (never read by the pipeline)
follow ``TRUTH_SCHEMAS`` below.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import polars as pl

from audiencefit.features.schemas import AGE_BANDS, GENDERS, TABLES
from audiencefit.features.synthetic import story
from audiencefit.features.synthetic.locale import COUNTRY_CODES, COUNTRY_WEIGHTS
from audiencefit.features.synthetic.story import (
    FOLLOWER_BOT,
    LANGUAGES,
    LOCAL_CAPTIONS,
    PLATFORMS,
    Brands,
    Campaigns,
    Creators,
    FloatArr,
    Followers,
    IntArr,
    Posts,
)
from audiencefit.features.synthetic.text import (
    CaptionStyle,
    Picker,
    brand_description,
    brand_handles,
    brand_hashtags,
    brand_name,
    caption,
    caption_style,
    creator_bio,
    creator_handle,
    follower_bio,
    follower_handle,
    segment_description,
)
from audiencefit.features.synthetic.topics import TOPICS

_F32_LIST = pl.List(pl.Float32())
TRUTH_SCHEMAS: dict[str, pl.Schema] = {
    "truth/creators": pl.Schema(
        {
            "creator_id": pl.String(),
            "inflated": pl.Boolean(),
            "authenticity": pl.Float64(),
            "base_engagement_rate": pl.Float64(),
            "primary_topic": pl.String(),
            "content_topics": _F32_LIST,
            "audience_topics": _F32_LIST,
            "audience_mismatched": pl.Boolean(),
            "real_followers": pl.Float64(),
            "country": pl.String(),
            "home_share": pl.Float64(),
            "yearly_growth": pl.Float64(),
            "quoted_price": pl.Float64(),
            # What a campaign's outcome depends on besides the above
            # (audiencefit.features.synthetic.story.CampaignDrivers).
            "er_real": pl.Float64(),
            "comment_ratio": pl.Float64(),
            "price_noise": pl.Float64(),
        }
    ),
    "truth/fit": pl.Schema({"segment_id": pl.String(), "creator_id": pl.String(), "true_fit": pl.Float32()}),
    "truth/campaigns": pl.Schema(
        {
            "campaign_id": pl.String(),
            "segment_id": pl.String(),
            "creator_id": pl.String(),
            "true_fit": pl.Float64(),
            "expected_reach": pl.Float64(),
            "expected_engagement_rate": pl.Float64(),
            "expected_clicks": pl.Float64(),
            "expected_conversions": pl.Float64(),
            "expected_revenue": pl.Float64(),
        }
    ),
    "truth/followers": pl.Schema(
        {
            "creator_id": pl.String(),
            "follower_id": pl.String(),
            "is_bot": pl.Boolean(),
            "kind": pl.String(),
            "interest_topic": pl.String(),
        }
    ),
    "truth/communities": pl.Schema(
        {
            "community": pl.Int64(),
            "topic_id": pl.Int64(),
            "topic": pl.String(),
            "country": pl.String(),
            "country_weight": pl.Float64(),
            "pool_size": pl.Int64(),
            "demand": pl.Float64(),
            "follows": pl.Float64(),
        }
    ),
    "truth/topics": pl.Schema(
        {
            "topic_id": pl.Int64(),
            "name": pl.String(),
            "label": pl.String(),
            "keywords": pl.List(pl.String()),
            "related": pl.List(pl.String()),
        }
    ),
    "truth/segments": pl.Schema(
        {
            "segment_id": pl.String(),
            "brand_id": pl.String(),
            "primary_topic": pl.String(),
            "topic_mix": _F32_LIST,
        }
    ),
    "truth/brands": pl.Schema(
        {
            "brand_id": pl.String(),
            "primary_topic": pl.String(),
            "secondary_topic": pl.String(),
            "order_value": pl.Float64(),
            "conversion_factor": pl.Float64(),
        }
    ),
}
INPUT_SCHEMAS: dict[str, pl.Schema] = {name: TABLES[name].polars_schema for name in TABLES}
_KINDS = ("real", "inactive", "bot")
_TOPIC_NAMES = [t.name for t in TOPICS]


def creator_id(i: int) -> str:
    return f"cr{i:06d}"


def _nonneg_or_null(name: str) -> pl.Expr:
    """-1 marks a null in the integer latent arrays."""
    return pl.when(pl.col(name) >= 0).then(pl.col(name)).otherwise(None).alias(name)


def _utc(name: str) -> pl.Expr:
    return _nonneg_or_null(name).cast(pl.Datetime("us")).dt.replace_time_zone("UTC").alias(name)


def _codes(values: IntArr, vocabulary: tuple[str, ...]) -> list[str | None]:
    return [vocabulary[v] if v >= 0 else None for v in values.tolist()]


def _f32_lists(name: str, matrix: FloatArr) -> pl.Series:
    return pl.Series(name, matrix.astype(np.float32)).arr.to_list()


# -------------------------------------------------------------------------------------------------- brands


@dataclass(frozen=True)
class BrandTexts:
    """Rendered text of brands and segments (needed before posts: captions mention brand handles)."""

    ids: list[str]
    names: list[str]
    descriptions: list[str | None]
    handles: list[list[str]]
    hashtags: list[list[str]]
    seg_ids: list[str]
    seg_descriptions: list[str]
    seg_countries: list[str | None]


def render_brands(p: Picker, brands: Brands) -> BrandTexts:
    """Names, handles, hashtags and descriptions of every brand and segment."""
    taken: set[str] = set()
    ids, names, descriptions, handles, hashtags = [], [], [], [], []
    for b in range(brands.n):
        topic = TOPICS[brands.primary_topic[b]]
        second = TOPICS[brands.secondary_topic[b]] if brands.secondary_topic[b] >= 0 else None
        name = brand_name(p, topic, taken)
        ids.append(f"br{b:04d}")
        names.append(name)
        desc = brand_description(p, name, topic, second, int(brands.home_country[b]))
        descriptions.append(None if p.chance(0.05) else desc)
        handles.append(brand_handles(p, name))
        hashtags.append(brand_hashtags(p, name))
    rank = np.zeros(brands.n, dtype=np.int64)
    seg_ids, seg_desc, seg_countries = [], [], []
    for s in range(brands.n_segments):
        b = int(brands.seg_brand[s])
        rank[b] += 1
        seg_ids.append(f"{ids[b]}-s{rank[b]}")
        t1, t2 = brands.seg_topics[s]
        countries = [int(c) for c in np.flatnonzero(brands.seg_countries[s])]
        seg_desc.append(
            segment_description(
                p,
                TOPICS[t1],
                TOPICS[t2] if t2 >= 0 else None,
                demo=int(brands.seg_demo[s]),
                countries=countries,
                geo_in_text=bool(brands.seg_geo_in_text[s]),
            )
        )
        seg_countries.append(" ".join(COUNTRY_CODES[c] for c in countries) if countries else None)
    return BrandTexts(ids, names, descriptions, handles, hashtags, seg_ids, seg_desc, seg_countries)


def brands_frame(bt: BrandTexts) -> pl.DataFrame:
    """The ``brands`` input table."""
    return pl.DataFrame(
        {
            "brand_id": bt.ids,
            "name": bt.names,
            "description": bt.descriptions,
            "handles": [" ".join(h) for h in bt.handles],
            "hashtags": [" ".join(h) for h in bt.hashtags],
        },
        schema=INPUT_SCHEMAS["brands"],
    )


def segments_frame(bt: BrandTexts, brands: Brands) -> pl.DataFrame:
    """The ``segments`` input table."""
    return pl.DataFrame(
        {
            "segment_id": bt.seg_ids,
            "brand_id": [bt.ids[b] for b in brands.seg_brand.tolist()],
            "description": bt.seg_descriptions,
            "countries": bt.seg_countries,
            "weight": brands.seg_weight,
        },
        schema=INPUT_SCHEMAS["segments"],
    )


def truth_segments_frame(bt: BrandTexts, brands: Brands) -> pl.DataFrame:
    return pl.DataFrame(
        [
            pl.Series("segment_id", bt.seg_ids),
            pl.Series("brand_id", [bt.ids[b] for b in brands.seg_brand.tolist()]),
            pl.Series("primary_topic", [_TOPIC_NAMES[t] for t in brands.seg_topics[:, 0].tolist()]),
            _f32_lists("topic_mix", brands.seg_mix),
        ]
    )


def truth_brands_frame(bt: BrandTexts, brands: Brands) -> pl.DataFrame:
    return pl.DataFrame(
        {
            "brand_id": bt.ids,
            "primary_topic": [_TOPIC_NAMES[t] for t in brands.primary_topic.tolist()],
            "secondary_topic": _codes(brands.secondary_topic, tuple(_TOPIC_NAMES)),
            "order_value": brands.order_value,
            "conversion_factor": brands.conversion_factor,
        },
        schema=TRUTH_SCHEMAS["truth/brands"],
    )


# ----------------------------------------------------------------------------------------------- campaigns


def campaign_id(i: int) -> str:
    return f"cp{i:06d}"


def campaigns_frame(campaigns: Campaigns, bt: BrandTexts) -> pl.DataFrame:
    """The ``campaigns`` input table (outcome columns null where the brand did not track them)."""
    return campaign_rows(
        [campaign_id(i) for i in range(campaigns.n)],
        [bt.ids[b] for b in campaigns.brand.tolist()],
        [bt.seg_ids[s] for s in campaigns.segment.tolist()],
        [creator_id(c) for c in campaigns.creator.tolist()],
        campaigns.start_day,
        campaigns,
    )


def campaign_rows(
    campaign_ids: list[str],
    brand_ids: list[str],
    segment_ids: list[str],
    creator_ids: list[str],
    start_day: IntArr,
    outcomes: Campaigns | story.CampaignOutcomes,
) -> pl.DataFrame:
    """Rows of the ``campaigns`` input table from drawn outcomes (-1 / NaN become nulls)."""
    frame = pl.DataFrame(
        {
            "campaign_id": campaign_ids,
            "brand_id": brand_ids,
            "segment_id": segment_ids,
            "creator_id": creator_ids,
            "start_date": start_day.astype(np.int32),
            "cost": outcomes.cost,
            "impressions": outcomes.impressions,
            "reach": outcomes.reach,
            "likes": outcomes.likes,
            "comments": outcomes.comments,
            "clicks": outcomes.clicks,
            "conversions": outcomes.conversions,
            "revenue": outcomes.revenue,
            "recommendation_id": pl.Series([None] * len(campaign_ids), dtype=pl.String),  # past picks, not ours
        }
    )
    ints = ["impressions", "reach", "likes", "comments", "clicks", "conversions"]
    return frame.with_columns(
        pl.col("start_date").cast(pl.Date()),
        *[_nonneg_or_null(c) for c in ints],
        pl.col("revenue").fill_nan(None),
    ).cast(INPUT_SCHEMAS["campaigns"])


def truth_campaigns_frame(campaigns: Campaigns, bt: BrandTexts) -> pl.DataFrame:
    return pl.DataFrame(
        {
            "campaign_id": [campaign_id(i) for i in range(campaigns.n)],
            "segment_id": [bt.seg_ids[s] for s in campaigns.segment.tolist()],
            "creator_id": [creator_id(c) for c in campaigns.creator.tolist()],
            "true_fit": campaigns.fit,
            "expected_reach": campaigns.expected_reach,
            "expected_engagement_rate": campaigns.expected_engagement_rate,
            "expected_clicks": campaigns.expected_clicks,
            "expected_conversions": campaigns.expected_conversions,
            "expected_revenue": campaigns.expected_revenue,
        },
        schema=TRUTH_SCHEMAS["truth/campaigns"],
    )


# ------------------------------------------------------------------------------------------------ creators


@dataclass(frozen=True)
class CreatorTexts:
    """Rendered handles and bios of one chunk of creators, and how each writes captions."""

    lo: int
    handles: list[str]
    bios: list[str | None]
    styles: list[CaptionStyle]


def render_creators(p: Picker, creators: Creators, lo: int, hi: int) -> CreatorTexts:
    handles: list[str] = []
    bios: list[str | None] = []
    styles: list[CaptionStyle] = []
    for i in range(lo, hi):
        lang = LANGUAGES[creators.language[i]]
        topic = TOPICS[creators.primary_topic[i]]
        order = np.argsort(-creators.content[i])
        second = TOPICS[order[1]] if creators.content[i, order[1]] > 0 else topic
        handle = creator_handle(p, topic=topic, language=lang)
        handles.append(handle)
        styles.append(caption_style(p))
        if creators.bio_missing[i]:
            bios.append(None if p.chance(0.85) else "")
            continue
        local = lang if LOCAL_CAPTIONS[creators.language[i]] else None
        bios.append(
            creator_bio(
                p, topic=topic, second=second, local_lang=local, country=int(creators.country[i]), handle=handle
            )
        )
    return CreatorTexts(lo, handles, bios, styles)


def creators_frame(creators: Creators, texts: CreatorTexts, extra_posts: IntArr) -> pl.DataFrame:
    """The ``creators`` input table for one chunk; ``extra_posts`` counts campaign posts per creator."""
    lo, hi = texts.lo, texts.lo + len(texts.handles)
    sl = slice(lo, hi)
    price = story.price_per_post(
        creators.followers[sl].astype(np.float64),
        creators.base_engagement_rate[sl],
        creators.platform[sl],
        creators.price_noise[sl],
    )
    country = np.where(creators.country_null[sl], -1, creators.country[sl])
    language = np.where(creators.language_null[sl], -1, creators.language[sl])
    frame = pl.DataFrame(
        {
            "creator_id": [creator_id(i) for i in range(lo, hi)],
            "handle": texts.handles,
            "platform": [PLATFORMS[v] for v in creators.platform[sl].tolist()],
            "bio": texts.bios,
            "followers": creators.followers[sl],
            "following": np.where(creators.following_null[sl], -1, creators.following[sl]),
            "post_count": np.where(creators.post_count_null[sl], -1, creators.lifetime_posts[sl] + extra_posts[sl]),
            "country": _codes(country, COUNTRY_CODES),
            "language": _codes(language, LANGUAGES),
            "rate_per_post": np.where(creators.quotes_rate[sl], price, np.nan),
        }
    )
    return frame.with_columns(
        _nonneg_or_null("following"), _nonneg_or_null("post_count"), pl.col("rate_per_post").fill_nan(None)
    ).cast(INPUT_SCHEMAS["creators"])


def truth_creators_frame(creators: Creators, lo: int, hi: int) -> pl.DataFrame:
    sl = slice(lo, hi)
    real = creators.followers[sl] * creators.authenticity[sl]
    return pl.DataFrame(
        [
            pl.Series("creator_id", [creator_id(i) for i in range(lo, hi)]),
            pl.Series("inflated", creators.inflated[sl]),
            pl.Series("authenticity", creators.authenticity[sl]),
            pl.Series("base_engagement_rate", creators.base_engagement_rate[sl]),
            pl.Series("primary_topic", [_TOPIC_NAMES[t] for t in creators.primary_topic[sl].tolist()]),
            _f32_lists("content_topics", creators.content[sl]),
            _f32_lists("audience_topics", creators.audience[sl]),
            pl.Series("audience_mismatched", creators.mismatched[sl]),
            pl.Series("real_followers", real),
            pl.Series("country", [COUNTRY_CODES[c] for c in creators.country[sl].tolist()]),
            pl.Series("home_share", creators.home_share[sl]),
            pl.Series("yearly_growth", creators.growth[sl]),
            pl.Series(
                "quoted_price",
                story.price_per_post(
                    creators.followers[sl].astype(np.float64),
                    creators.base_engagement_rate[sl],
                    creators.platform[sl],
                    creators.price_noise[sl],
                ),
            ),
            pl.Series("er_real", creators.er_real[sl]),
            pl.Series("comment_ratio", creators.comment_ratio[sl]),
            pl.Series("price_noise", creators.price_noise[sl]),
        ]
    )


# --------------------------------------------------------------------------------------------------- posts


def posts_frame(p: Picker, posts: Posts, creators: Creators, texts: CreatorTexts, bt: BrandTexts) -> pl.DataFrame:
    """The ``posts`` input table for one chunk, rendering every caption."""
    lo = texts.lo
    counts = np.bincount(posts.creator - lo, minlength=len(texts.handles))
    rank = np.arange(posts.n) - np.repeat(np.cumsum(counts) - counts, counts)
    captions: list[str | None] = []
    ids: list[str] = []
    handles = texts.handles
    creator_l, topic_l, kind_l = posts.creator.tolist(), posts.topic.tolist(), posts.kind.tolist()
    sponsored_l, brand_l, campaign_l, local_l = (
        posts.sponsored.tolist(),
        posts.brand.tolist(),
        posts.campaign.tolist(),
        posts.local.tolist(),
    )
    platform_l = [PLATFORMS[v] for v in creators.platform[posts.creator].tolist()]
    for j, c in enumerate(creator_l):
        ids.append(f"{creator_id(c)}-p{int(rank[j]):03d}")
        lang_i = int(creators.language[c])
        b = brand_l[j]
        brand_handle = brand_tag = None
        if b >= 0:
            both = campaign_l[j] >= 0 or p.chance(0.3)
            if both or p.chance(0.6):
                brand_handle = p.pick(bt.handles[b])
            if both or brand_handle is None:
                brand_tag = p.pick(bt.hashtags[b])
        captions.append(
            caption(
                p,
                topic=TOPICS[topic_l[j]],
                kind=kind_l[j],
                local_lang=LANGUAGES[lang_i] if local_l[j] and LOCAL_CAPTIONS[lang_i] else None,
                platform=platform_l[j],
                country=int(creators.country[c]),
                handle=handles[c - lo],
                sponsored=sponsored_l[j],
                brand_handle=brand_handle,
                brand_tag=brand_tag,
                friend=p.pick(handles) if p.chance(0.12) else None,
                language=LANGUAGES[lang_i],
                style=texts.styles[c - lo],
            )
        )
    frame = pl.DataFrame(
        {
            "post_id": ids,
            "creator_id": [creator_id(c) for c in creator_l],
            "posted_at": posts.posted_us,
            "caption": pl.Series(captions, dtype=pl.String()),
            "likes": posts.likes,
            "comments": posts.comments,
            "views": posts.views,
            "sponsored": posts.sponsored,
        }
    )
    return frame.with_columns(_utc("posted_at"), _nonneg_or_null("views")).cast(INPUT_SCHEMAS["posts"])


# ----------------------------------------------------------------------------------------------- followers


def member_id(community: int, member: int) -> str:
    """The follower id of a community member: the same person has the same id in every creator's sample."""
    return f"fan-{community:03d}-{member:07d}"


def followers_frames(
    p: Picker, followers: Followers, creators: Creators, members: IntArr | None = None
) -> tuple[pl.DataFrame, pl.DataFrame]:
    """The ``followers`` input table and its ``truth/followers`` twin for one chunk.

    ``members`` (from ``story.draw_members``) gives real followers their community member id; handles are still
    rendered for every row (so the text stream, and hence every bio, is the same with or without members); bots
    and inactive accounts get their handle plus ``#<creator index>``, unique across the world.
    """
    community = (
        np.asarray(followers.interest * len(COUNTRY_CODES) + followers.true_country, dtype=np.int64)
        if members is not None
        else None
    )
    ids: list[str] = []
    bios: list[str | None] = []
    seen: set[str] = set()
    previous = -1
    creator_l, kind_l, country_l = followers.creator.tolist(), followers.kind.tolist(), followers.country.tolist()
    interest_l, interest2_l = followers.interest.tolist(), followers.interest2.tolist()
    has_bio_l, spam_l, local_l = followers.has_bio.tolist(), followers.spam_bio.tolist(), followers.local.tolist()
    for j, c in enumerate(creator_l):
        if c != previous:
            seen = set()
            previous = c
        country = country_l[j]
        lang_i = int(story.COUNTRY_LANGUAGE[country]) if country >= 0 else int(creators.language[c])
        interest = TOPICS[interest_l[j]] if interest_l[j] >= 0 else None
        handle = follower_handle(p, bot=kind_l[j] == FOLLOWER_BOT, language=LANGUAGES[lang_i], topic=interest)
        while handle in seen:  # follower ids are unique per creator
            handle = f"{handle}{p.between(0, 9)}"
        seen.add(handle)
        if members is None or community is None:
            ids.append(handle)
        elif members[j] >= 0:
            ids.append(member_id(int(community[j]), int(members[j])))
        else:  # bots and inactive accounts belong to one creator: their ids never meet another sample's
            ids.append(f"{handle}#{c}")
        bios.append(
            follower_bio(
                p,
                kind=kind_l[j],
                has_bio=has_bio_l[j],
                spam=spam_l[j],
                interest=interest,
                interest2=TOPICS[interest2_l[j]] if interest2_l[j] >= 0 else None,
                local_lang=LANGUAGES[lang_i] if local_l[j] and LOCAL_CAPTIONS[lang_i] else None,
                country=country,
            )
        )
    creator_ids = [creator_id(c) for c in creator_l]
    frame = pl.DataFrame(
        {
            "creator_id": creator_ids,
            "follower_id": ids,
            "bio": pl.Series(bios, dtype=pl.String()),
            "followers": followers.followers,
            "following": followers.following,
            "post_count": followers.post_count,
            "country": _codes(followers.country, COUNTRY_CODES),
            "age_band": _codes(followers.age_band, AGE_BANDS),
            "gender": _codes(followers.gender, GENDERS),
            "observed_at": followers.observed_us,
        },
        schema_overrides={"country": pl.String(), "age_band": pl.String(), "gender": pl.String()},
    )
    frame = frame.with_columns(
        _nonneg_or_null("followers"), _nonneg_or_null("following"), _nonneg_or_null("post_count"), _utc("observed_at")
    ).cast(INPUT_SCHEMAS["followers"])
    truth = pl.DataFrame(
        {
            "creator_id": creator_ids,
            "follower_id": ids,
            "is_bot": followers.is_bot,
            "kind": [_KINDS[k] for k in kind_l],
            "interest_topic": _codes(followers.interest, tuple(_TOPIC_NAMES)),
        },
        schema=TRUTH_SCHEMAS["truth/followers"],
    )
    return frame, truth


# ----------------------------------------------------------------------------------------------- truth fit


def truth_fit_frame(creators: Creators, brands: Brands, bt: BrandTexts, lo: int, hi: int) -> pl.DataFrame:
    """True fit of creators ``lo``..``hi-1`` with every segment of ``brands``, creator-major.

    ``brands`` may hold the first segments only (:meth:`Brands.first_segments`); ``bt`` names all of them.
    """
    idx = np.arange(lo, hi)
    fit = story.true_fit(creators, idx, brands).astype(np.float32)  # (rows, S)
    # Keep 15 of 23 mantissa bits (relative precision 3e-5): plenty for a label, and a third smaller on disk.
    fit = (fit.view(np.uint32) & np.uint32(0xFFFFFF00)).view(np.float32)
    s = brands.n_segments
    segment_ids = pl.Series("segment_id", bt.seg_ids[:s], dtype=pl.String())
    creator_ids = pl.Series("creator_id", [creator_id(i) for i in range(lo, hi)], dtype=pl.String())
    return pl.DataFrame(
        [
            segment_ids.gather(np.tile(np.arange(s), hi - lo)),
            creator_ids.gather(np.repeat(np.arange(hi - lo), s)),
            pl.Series("true_fit", fit.reshape(-1)),
        ]
    )


def topics_frame() -> pl.DataFrame:
    """``truth/topics``: every interest topic with its keywords."""
    return pl.DataFrame(
        {
            "topic_id": [t.id for t in TOPICS],
            "name": [t.name for t in TOPICS],
            "label": [t.label for t in TOPICS],
            "keywords": [list(t.keywords) for t in TOPICS],
            "related": [list(t.related) for t in TOPICS],
        },
        schema=TRUTH_SCHEMAS["truth/topics"],
    )


def communities_frame(communities: story.Communities) -> pl.DataFrame:
    """``truth/communities``: every (topic, country) pool with its size and its creators' demand."""
    grid_t, grid_g = np.meshgrid(np.arange(len(TOPICS)), np.arange(len(COUNTRY_CODES)), indexing="ij")
    t: IntArr = grid_t.reshape(-1).astype(np.int64)
    g: IntArr = grid_g.reshape(-1).astype(np.int64)
    return pl.DataFrame(
        {
            "community": communities.index(t, g),
            "topic_id": t,
            "topic": [_TOPIC_NAMES[i] for i in t.tolist()],
            "country": [COUNTRY_CODES[i] for i in g.tolist()],
            "country_weight": COUNTRY_WEIGHTS[g],
            "pool_size": communities.pool_size.reshape(-1),
            "demand": communities.demand.reshape(-1),
            "follows": communities.follows.reshape(-1),
        },
        schema=TRUTH_SCHEMAS["truth/communities"],
    )
