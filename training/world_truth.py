"""What a synthetic world's ``truth/`` says about campaigns: expected outcomes, plan values and drawn outcomes.

Evaluation (``audiencefit.training.plan_eval``, ``audiencefit.training.served_eval``) compares forecasts with these; a
simulation of contracting the creators the service recommends draws their outcomes with :func:`draw_outcomes`, by the
same function the generator drew the world's past campaigns with
(``audiencefit.features.synthetic.story.campaign_outcomes``), so the two cannot diverge. ``truth/`` is never read by the
pipeline or the service.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date
from pathlib import Path

import numpy as np
import polars as pl

from audiencefit.features.errors import InputError
from audiencefit.features.export import read_export_manifest
from audiencefit.features.schemas import TABLES
from audiencefit.features.synthetic import story
from audiencefit.features.synthetic.locale import COUNTRY_CODES, COUNTRY_WEIGHTS
from audiencefit.features.synthetic.story import PLATFORM_CTR, PLATFORM_REACH, PLATFORMS, community_audience
from audiencefit.features.synthetic.tables import campaign_rows

# truth/creators columns added with generator version 3; older worlds cannot draw outcomes.
DRAW_COLUMNS = ("er_real", "comment_ratio", "price_noise")
_EPOCH = date(1970, 1, 1)


@dataclass(frozen=True)
class WorldTruth:
    """What evaluation needs from ``truth/``: each creator's audience per community, pools, true conversions, and
    the latent quantities a campaign outcome depends on."""

    creator_row: dict[str, int]
    audience: np.ndarray  # (n, C) true real audience per community
    pool: np.ndarray  # (C,)
    community_topic: np.ndarray  # (C,)
    community_country: list[str]
    real: np.ndarray
    platform: np.ndarray
    fit: pl.DataFrame  # segment_id, creator_id, true_fit
    segments: pl.DataFrame  # segment_id, brand_id, topic_mix, countries
    conversion_factor: dict[str, float]
    # Campaign drivers (audiencefit.features.synthetic.story.CampaignDrivers), one entry per creator row.
    followers: np.ndarray  # follower count at the export (the creators table)
    authenticity: np.ndarray
    base_engagement_rate: np.ndarray  # er_real × authenticity
    growth: np.ndarray  # yearly log growth of the follower count
    home_share: np.ndarray
    country: np.ndarray  # index into COUNTRY_CODES (the true country)
    audience_topics: np.ndarray  # (n, T) topic mix of the real followers
    order_value: dict[str, float]
    export_day: date
    er_real: np.ndarray | None = None  # None: a world generated before these were stored (DRAW_COLUMNS)
    comment_ratio: np.ndarray | None = None
    price_noise: np.ndarray | None = None

    def rows(self, creator_ids: Sequence[str]) -> np.ndarray:
        """Creator rows of ``creator_ids``; unknown ids are an ``InputError`` naming them."""
        unknown = [c for c in creator_ids if c not in self.creator_row]
        if unknown:
            raise InputError(f"creators not in the world's truth: {', '.join(unknown[:5])}")
        return np.array([self.creator_row[c] for c in creator_ids], dtype=np.int64)


def load_truth(world: Path) -> WorldTruth:
    if not (world / "truth").is_dir():
        raise InputError(f"{world} has no truth/ directory: not a generated synthetic world")
    tc = pl.read_parquet(world / "truth" / "creators.parquet")
    com = pl.read_parquet(world / "truth" / "communities.parquet").sort("community")
    country_index = {c: i for i, c in enumerate(COUNTRY_CODES)}
    country = np.array([country_index[c] for c in tc["country"].to_list()], dtype=np.int64)
    audience_topics = np.asarray(tc["audience_topics"].to_list(), dtype=np.float64)
    audience = community_audience(
        tc["real_followers"].to_numpy(), audience_topics, country, tc["home_share"].to_numpy()
    ).reshape(tc.height, -1)
    creators = pl.read_parquet(world / "creators.parquet").select("creator_id", "platform", "followers")
    aligned = creators.join(tc.select("creator_id"), on="creator_id", how="right")
    segs = pl.read_parquet(world / "truth" / "segments.parquet").join(
        pl.read_parquet(world / "segments.parquet").select("segment_id", "countries", "description", "weight"),
        on="segment_id",
    )
    brands = pl.read_parquet(world / "truth" / "brands.parquet")
    export = read_export_manifest(world)
    has_draw = all(c in tc.columns for c in DRAW_COLUMNS)
    return WorldTruth(
        creator_row={c: i for i, c in enumerate(tc["creator_id"].to_list())},
        audience=audience,
        pool=com["pool_size"].to_numpy().astype(np.float64),
        community_topic=com["topic_id"].to_numpy(),
        community_country=com["country"].to_list(),
        real=tc["real_followers"].to_numpy(),
        platform=np.array([PLATFORMS.index(p) for p in aligned["platform"].to_list()], dtype=np.int64),
        fit=pl.read_parquet(world / "truth" / "fit.parquet"),
        segments=segs,
        conversion_factor=dict(zip(brands["brand_id"].to_list(), brands["conversion_factor"].to_list(), strict=True)),
        followers=aligned["followers"].to_numpy().astype(np.int64),
        authenticity=tc["authenticity"].to_numpy(),
        base_engagement_rate=tc["base_engagement_rate"].to_numpy(),
        growth=tc["yearly_growth"].to_numpy(),
        home_share=tc["home_share"].to_numpy(),
        country=country,
        audience_topics=audience_topics,
        order_value=dict(zip(brands["brand_id"].to_list(), brands["order_value"].to_list(), strict=True)),
        export_day=(export or story.EXPORT_INSTANT).date(),
        er_real=tc["er_real"].to_numpy() if has_draw else None,
        comment_ratio=tc["comment_ratio"].to_numpy() if has_draw else None,
        price_noise=tc["price_noise"].to_numpy() if has_draw else None,
    )


def segment_weights(truth: WorldTruth, segment_ids: list[str]) -> np.ndarray:
    """(C,) 1 for communities inside any of the segments (one of its topics, in its target countries), else 0."""
    out = np.zeros(len(truth.pool))
    for rec in truth.segments.filter(pl.col("segment_id").is_in(segment_ids)).iter_rows(named=True):
        topics = {t for t, w in enumerate(rec["topic_mix"]) if w > 0}
        targets = set((rec["countries"] or "").split())
        inside = np.array(
            [
                t in topics and (not targets or g in targets)
                for t, g in zip(truth.community_topic.tolist(), truth.community_country, strict=True)
            ]
        )
        out = np.maximum(out, inside.astype(np.float64))
    return out


def true_conversions(truth: WorldTruth, brand_id: str, segment_ids: list[str], creator_ids: list[str]) -> np.ndarray:
    """Each creator's expected conversions for the brand alone (the world's campaign formula at the export, for the
    brand's best segment)."""
    fit = (
        truth.fit.filter(pl.col("segment_id").is_in(segment_ids) & pl.col("creator_id").is_in(creator_ids))
        .group_by("creator_id")
        .agg(pl.col("true_fit").max())
    )
    best = dict(zip(fit["creator_id"].to_list(), fit["true_fit"].cast(pl.Float64).to_list(), strict=True))
    rows = np.array([truth.creator_row[c] for c in creator_ids], dtype=np.int64)
    f = np.array([best.get(c, 0.0) for c in creator_ids])
    real, platform = truth.real[rows], truth.platform[rows]
    reach = real * np.clip(0.3 * (np.maximum(real, 1.0) / 5000.0) ** -0.12 * PLATFORM_REACH[platform], 0.03, 0.85)
    ctr = 0.012 * PLATFORM_CTR[platform] * (0.08 + 2.6 * f)
    cvr = np.clip(0.06 * truth.conversion_factor[brand_id] * (0.2 + 2.4 * f), 0.0, 0.5)
    out: np.ndarray = reach * ctr * cvr
    return out


def _segment(truth: WorldTruth, segment_id: str) -> dict[str, object]:
    found = truth.segments.filter(pl.col("segment_id") == segment_id)
    if found.height == 0:
        raise InputError(f"segment {segment_id!r} is not in the world's truth")
    return found.row(0, named=True)


def overlap_and_fit(truth: WorldTruth, segment_id: str, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Interest overlap of each creator's real audience with the segment and the true fit (authentic share ×
    overlap × share of the audience in the segment's countries), as ``story.true_fit`` computes them."""
    seg = _segment(truth, segment_id)
    mix = np.asarray(seg["topic_mix"], dtype=np.float64)
    overlap = np.minimum(truth.audience_topics[rows], mix[None, :]).sum(axis=1)
    targets = [COUNTRY_CODES.index(c) for c in str(seg["countries"] or "").split()]
    if targets:
        at_home = np.isin(truth.country[rows], targets)
        home = truth.home_share[rows]
        geo = home * at_home + (1.0 - home) * float(COUNTRY_WEIGHTS[targets].sum())
    else:
        geo = np.ones(len(rows))
    fit: np.ndarray = truth.authenticity[rows] * overlap * geo
    return overlap, fit


def _best_segment(
    truth: WorldTruth, segment_ids: Sequence[str], rows: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per creator: index into ``segment_ids`` of the segment it fits best (first on ties), its overlap and fit."""
    if not segment_ids:
        raise InputError("no segment given")
    parts = [overlap_and_fit(truth, s, rows) for s in segment_ids]
    fits = np.stack([p[1] for p in parts])
    overlaps = np.stack([p[0] for p in parts])
    best = np.argmax(fits, axis=0)
    cols = np.arange(len(rows))
    return best, overlaps[best, cols], fits[best, cols]


def true_engagement_rate(truth: WorldTruth, segment_ids: Sequence[str], creator_ids: Sequence[str]) -> np.ndarray:
    """Each creator's expected engagement rate ((likes + comments) / followers) of a sponsored post for the segment
    of ``segment_ids`` it fits best (one segment: that segment) — the world's campaign formula
    (``story.expected_engagement_rate``); it does not depend on the date."""
    rows = truth.rows(creator_ids)
    _, overlap, fit = _best_segment(truth, segment_ids, rows)
    er_real = (
        truth.er_real[rows]
        if truth.er_real is not None
        else truth.base_engagement_rate[rows] / np.maximum(truth.authenticity[rows], 1e-12)
    )
    drivers = story.CampaignDrivers(
        followers=truth.followers[rows].astype(np.float64),
        authenticity=truth.authenticity[rows],
        er_real=er_real,
        platform=truth.platform[rows],
        comment_ratio=np.zeros(len(rows)),
        price_noise=np.ones(len(rows)),
        overlap=overlap,
        fit=fit,
        conversion_factor=np.ones(len(rows)),
        order_value=np.ones(len(rows)),
    )
    return story.expected_engagement_rate(drivers)


def matched_truth(
    truth: WorldTruth, brand_id: str, matched_segments: Sequence[str], creator_ids: Sequence[str]
) -> tuple[np.ndarray, np.ndarray]:
    """(true expected conversions, true engagement rate) of each creator for the segment it was matched to
    (``matched_segments[i]`` for ``creator_ids[i]``), as the service's forecast for that pair is meant."""
    ids = list(creator_ids)
    conv = np.zeros(len(ids))
    er = np.zeros(len(ids))
    for segment_id in dict.fromkeys(matched_segments):
        at = np.array([i for i, s in enumerate(matched_segments) if s == segment_id], dtype=np.int64)
        members = [ids[i] for i in at]
        conv[at] = true_conversions(truth, brand_id, [segment_id], members)
        er[at] = true_engagement_rate(truth, [segment_id], members)
    return conv, er


def campaign_drivers(
    truth: WorldTruth, brand_id: str, segment_id: str, creator_ids: Sequence[str], start_date: date
) -> tuple[np.ndarray, story.CampaignDrivers]:
    """(start day per creator, drivers) of campaigns of ``creator_ids`` for the brand's segment starting on
    ``start_date``; everything is validated here."""
    if truth.er_real is None or truth.comment_ratio is None or truth.price_noise is None:
        raise InputError(
            f"this world's truth/creators lacks {', '.join(DRAW_COLUMNS)} (generated before generator version 3): "
            "regenerate it with the same seed (the input tables come out identical) to draw outcomes"
        )
    if brand_id not in truth.conversion_factor:
        raise InputError(f"brand {brand_id!r} is not in the world's truth")
    seg = _segment(truth, segment_id)
    if seg["brand_id"] != brand_id:
        raise InputError(f"segment {segment_id!r} belongs to brand {seg['brand_id']!r}, not {brand_id!r}")
    if not isinstance(start_date, date):
        raise InputError(f"start_date must be a date, got {type(start_date).__name__}")
    if start_date > truth.export_day:
        raise InputError(f"start_date {start_date} is after the world's export ({truth.export_day})")
    if len(set(creator_ids)) != len(creator_ids):
        raise InputError("creator_ids repeat a creator: one campaign per creator")
    rows = truth.rows(creator_ids)
    overlap, fit = overlap_and_fit(truth, segment_id, rows)
    start_day = np.full(len(rows), (start_date - _EPOCH).days, dtype=np.int64)
    n = len(rows)
    drivers = story.CampaignDrivers(
        followers=story.followers_back(truth.followers[rows], truth.growth[rows], start_day * story.DAY_US),
        authenticity=truth.authenticity[rows],
        er_real=truth.er_real[rows],
        platform=truth.platform[rows],
        comment_ratio=truth.comment_ratio[rows],
        price_noise=truth.price_noise[rows],
        overlap=overlap,
        fit=fit,
        conversion_factor=np.full(n, truth.conversion_factor[brand_id]),
        order_value=np.full(n, truth.order_value[brand_id]),
    )
    return start_day, drivers


def expected_outcomes(
    truth: WorldTruth, brand_id: str, segment_id: str, creator_ids: Sequence[str], start_date: date
) -> pl.DataFrame:
    """Per creator: expected reach, engagement rate, clicks, conversions and revenue of a campaign for the brand's
    segment starting on ``start_date`` (the columns of ``truth/campaigns``)."""
    _, d = campaign_drivers(truth, brand_id, segment_id, creator_ids, start_date)
    reach, ctr, cvr = story.expected_conversion_parts(d)
    clicks = reach * ctr
    return pl.DataFrame(
        {
            "creator_id": list(creator_ids),
            "true_fit": d.fit,
            "expected_reach": reach,
            "expected_engagement_rate": story.expected_engagement_rate(d),
            "expected_clicks": clicks,
            "expected_conversions": clicks * cvr,
            "expected_revenue": clicks * cvr * d.order_value,
        }
    )


def draw_outcomes(
    truth: WorldTruth,
    brand_id: str,
    segment_id: str,
    creator_ids: Sequence[str],
    start_date: date,
    rng: np.random.Generator,
    *,
    campaign_ids: Sequence[str] | None = None,
) -> pl.DataFrame:
    """One campaign per creator for the brand's segment starting on ``start_date``, drawn exactly as the generator
    drew the world's past campaigns (``story.campaign_outcomes``: outcomes, price, and the outcomes brands fail to
    track left null). Rows of the ``campaigns`` input table; ``campaign_ids`` default to
    ``<segment_id>-<yyyymmdd>-<creator_id>``, which cannot collide with the generator's ``cp…`` ids."""
    start_day, drivers = campaign_drivers(truth, brand_id, segment_id, creator_ids, start_date)
    ids = (
        list(campaign_ids)
        if campaign_ids is not None
        else [f"{segment_id}-{start_date:%Y%m%d}-{c}" for c in creator_ids]
    )
    if len(ids) != len(creator_ids) or len(set(ids)) != len(ids):
        raise InputError("campaign_ids must give one distinct id per creator")
    outcomes = story.campaign_outcomes(rng, start_day, drivers)
    frame = campaign_rows(ids, [brand_id] * len(ids), [segment_id] * len(ids), list(creator_ids), start_day, outcomes)
    # Columns the contract gained since (nullable) are left null; the order is the contract's.
    schema = TABLES["campaigns"].polars_schema
    missing = [pl.lit(None, dtype=dtype).alias(name) for name, dtype in schema.items() if name not in frame.columns]
    return frame.with_columns(missing).select(list(schema.names()))


def true_plan_value(
    truth: WorldTruth, creator_ids: list[str], conversions: np.ndarray, weights: np.ndarray
) -> tuple[float, float]:
    """(true unique in-segment reach, true expected conversions) of a plan: people in several audiences count once
    and buy at most once, from the most persuasive creator reaching them."""
    if not creator_ids:
        return 0.0, 0.0
    rows = np.array([truth.creator_row[c] for c in creator_ids], dtype=np.int64)
    share = np.clip(truth.audience[rows] / truth.pool[None, :], 0.0, 1.0)
    reach = float(weights @ (truth.pool * (1.0 - np.prod(1.0 - share, axis=0))))
    rho = conversions / np.maximum(truth.real[rows], 1e-9)
    missed = np.ones(len(truth.pool))
    total = 0.0
    for i in np.argsort(-rho, kind="stable"):
        total += rho[i] * float((share[i] * missed) @ truth.pool)
        missed *= 1.0 - share[i]
    return reach, total
