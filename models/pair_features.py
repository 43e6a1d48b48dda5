"""The one function that turns (brand segment, creator) pairs into model features.

Training (on point-in-time snapshots), the API and the batch jobs all call :func:`pair_features`, so the
features a model was trained on and the ones it is served can never disagree. The column list and order are
part of every trained model (``FEATURE_COLUMNS``) and are checked when a bundle loads.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

import numpy as np
import polars as pl

from features.schemas import PLATFORMS
from models.query import Segment

# Sharpness of "does interest cluster k belong to the segment": a cluster 0.05 less similar to the segment than
# the segment's best cluster counts e^-1 ≈ 0.37 as much.
SHARE_TEMPERATURE = 0.05
# When a segment targets countries and a creator has no audience geography, its own country stands in:
# in the targets → 1, elsewhere → this, unknown → half way.
OTHER_COUNTRY_FACTOR = 0.2

CREATOR_COLUMNS = (
    "log_followers",
    "following_ratio",
    "n_posts",
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
    "days_since_last_post",
    "suspicious_share",
    "follower_sample_size",
    "er_residual",
    "engagement_anomaly",
    "audience_quality",
    "has_bio",
    "audience_from_followers",
    "platform_code",
)
PAIR_COLUMNS = (
    "audience_fit",
    "audience_fit_raw",
    "audience_share",
    "content_sim",
    "bio_sim",
    "brand_content_sim",
    "brand_bio_sim",
    "country_share",
    "language_match",
    "brand_mentions",
)
FEATURE_COLUMNS = CREATOR_COLUMNS + PAIR_COLUMNS


class CreatorView(Protocol):
    """What pair features read: a feature set, or a point-in-time snapshot computed the same way."""

    @property
    def creators(self) -> pl.DataFrame: ...
    @property
    def terms(self) -> pl.DataFrame: ...
    @property
    def audience_geo(self) -> pl.DataFrame: ...
    @property
    def bio(self) -> np.ndarray: ...
    @property
    def content(self) -> np.ndarray: ...
    @property
    def audience(self) -> np.ndarray: ...
    @property
    def audience_dist(self) -> np.ndarray: ...
    @property
    def centroids(self) -> np.ndarray: ...


@dataclass(frozen=True)
class BrandQuery:
    """A brand's request, embedded once: its segments, its own description, its handles and hashtags."""

    segments: list[Segment]
    segment_vectors: np.ndarray  # (n_segments, dim), unit rows
    brand_vector: np.ndarray | None = None  # (dim,) the brand description, unit, or None
    brand_terms: tuple[str, ...] = ()  # lower-case handles and hashtags, without @/#


def authentic_share(view: CreatorView) -> np.ndarray:
    """Estimated share of each creator's audience that is real (1 − suspicious share; the mean when unknown)."""
    share = view.creators["suspicious_share"].fill_null(strategy="mean").fill_null(0.0).to_numpy()
    return np.clip(1.0 - share, 0.0, 1.0).astype(np.float32)


def segment_cluster_membership(segment_vectors: np.ndarray, centroids: np.ndarray) -> np.ndarray:
    """(n_segments, k): how much each audience interest cluster belongs to each segment, best cluster = 1."""
    sims = segment_vectors @ centroids.T
    return np.asarray(np.exp((sims - sims.max(axis=1, keepdims=True)) / SHARE_TEMPERATURE), dtype=np.float32)


def country_factors(view: CreatorView, rows: np.ndarray, countries: Sequence[str]) -> np.ndarray:
    """Share of each creator's audience in ``countries`` (its own country as a proxy without a follower sample)."""
    if not countries:
        return np.ones(len(rows), dtype=np.float32)
    ids = view.creators["creator_id"].gather(rows)
    geo = (
        view.audience_geo.filter((pl.col("dimension") == "country") & pl.col("creator_id").is_in(ids.implode()))
        .group_by("creator_id")
        .agg(share=pl.col("share").filter(pl.col("value").is_in(list(countries))).sum())
    )
    own = view.creators.select("creator_id", "country")[rows]
    joined = own.join(geo, on="creator_id", how="left", maintain_order="left").with_columns(
        fallback=pl.when(pl.col("country").is_null())
        .then(0.5 + 0.5 * OTHER_COUNTRY_FACTOR)
        .when(pl.col("country").is_in(list(countries)))
        .then(1.0)
        .otherwise(OTHER_COUNTRY_FACTOR)
    )
    return joined.select(pl.coalesce("share", "fallback"))["share"].to_numpy().astype(np.float32)


@dataclass(frozen=True)
class FitScores:
    """Per (row, segment): audience fit (real audience), raw cosine, estimated audience share, country share."""

    fit: np.ndarray  # (n_rows, n_segments) authenticity-weighted similarity
    raw: np.ndarray
    share: np.ndarray
    country: np.ndarray

    def combined(self, weights: np.ndarray) -> np.ndarray:
        """One fit per row: segment fits × country share, averaged with the segment weights."""
        return np.asarray((self.fit * self.country) @ weights / weights.sum(), dtype=np.float32)


def fit_scores(view: CreatorView, rows: np.ndarray, query: BrandQuery) -> FitScores:
    """Audience fit of the given creators for every segment of the query."""
    seg = query.segment_vectors
    raw = np.asarray(view.audience[rows], dtype=np.float32) @ seg.T
    fit = raw * authentic_share(view)[rows][:, None]
    membership = segment_cluster_membership(seg, view.centroids)
    share = np.clip(np.asarray(view.audience_dist[rows], dtype=np.float32) @ membership.T, 0.0, 1.0)
    country = np.stack([country_factors(view, rows, s.countries) for s in query.segments], axis=1)
    return FitScores(fit.astype(np.float32), raw.astype(np.float32), share.astype(np.float32), country)


def _dominant_languages(view: CreatorView, countries: Sequence[str]) -> set[str]:
    """Languages most used by creators of the target countries (learned from the data, not a fixed table)."""
    if not countries:
        return set()
    langs = (
        view.creators.filter(pl.col("country").is_in(list(countries)) & pl.col("language").is_not_null())
        .group_by("country", "language")
        .agg(n=pl.len())
        .sort(["country", "n", "language"], descending=[False, True, False])
        .group_by("country", maintain_order=True)
        .agg(pl.col("language").first())
    )
    return set(langs["language"].to_list())


def brand_mention_counts(view: CreatorView, rows: np.ndarray, brand_terms: Sequence[str]) -> np.ndarray:
    """How often each creator used one of the brand's handles or hashtags (posts, before the feature cut-off)."""
    if not brand_terms:
        return np.zeros(len(rows), dtype=np.float32)
    ids = view.creators["creator_id"].gather(rows)
    counts = (
        view.terms.filter(pl.col("term").is_in(list(brand_terms)) & pl.col("creator_id").is_in(ids.implode()))
        .group_by("creator_id")
        .agg(n=pl.col("count").sum())
    )
    joined = pl.DataFrame({"creator_id": ids}).join(counts, on="creator_id", how="left", maintain_order="left")
    return joined["n"].fill_null(0).to_numpy().astype(np.float32)


def _creator_block(creators: pl.DataFrame) -> pl.DataFrame:
    """The creator half of the features: feature-set columns as floats, plus two encodings."""
    platform_code = {p: float(i) for i, p in enumerate(PLATFORMS)}
    derived = {
        "audience_from_followers": (pl.col("audience_source") == "followers").cast(pl.Float64),
        "platform_code": pl.col("platform").replace_strict(platform_code, default=float(len(PLATFORMS))),
    }
    return creators.select([derived.get(name, pl.col(name).cast(pl.Float64)).alias(name) for name in CREATOR_COLUMNS])


def pair_features(view: CreatorView, rows: np.ndarray, segment_index: np.ndarray, query: BrandQuery) -> pl.DataFrame:
    """Model features for each pair (creator ``rows[i]``, segment ``segment_index[i]`` of ``query``).

    Returns a frame with exactly ``FEATURE_COLUMNS`` (float64; null where undefined), row-aligned with the pairs.
    """
    rows = np.asarray(rows, dtype=np.int64)
    segment_index = np.asarray(segment_index, dtype=np.int64)
    unique_rows, inverse = np.unique(rows, return_inverse=True)
    scores = fit_scores(view, unique_rows, query)
    pick = (inverse, segment_index)
    seg_vecs = query.segment_vectors[segment_index]
    content = np.asarray(view.content, dtype=np.float32)[rows]
    has_content = np.linalg.norm(content, axis=1) > 0
    bio = np.asarray(view.bio, dtype=np.float32)[rows]
    has_bio = np.linalg.norm(bio, axis=1) > 0
    content_sim = np.where(has_content, np.sum(content * seg_vecs, axis=1), np.nan)
    bio_sim = np.where(has_bio, np.sum(bio * seg_vecs, axis=1), np.nan)
    if query.brand_vector is not None:
        brand_sim = np.where(has_content, content @ query.brand_vector, np.nan)
        brand_bio_sim = np.where(has_bio, bio @ query.brand_vector, np.nan)
    else:
        brand_sim = brand_bio_sim = np.full(len(rows), np.nan)
    languages = view.creators["language"].to_numpy()[rows]
    lang_match = np.full(len(rows), np.nan)
    for s, segment in enumerate(query.segments):
        dominant = _dominant_languages(view, segment.countries)
        if dominant:
            hit = segment_index == s
            lang_match[hit] = [1.0 if lang in dominant else 0.0 for lang in languages[hit]]
    mentions = brand_mention_counts(view, unique_rows, query.brand_terms)[inverse]

    pair = pl.DataFrame(
        {
            "audience_fit": scores.fit[pick].astype(np.float64),
            "audience_fit_raw": scores.raw[pick].astype(np.float64),
            "audience_share": scores.share[pick].astype(np.float64),
            "content_sim": content_sim.astype(np.float64),
            "bio_sim": bio_sim.astype(np.float64),
            "brand_content_sim": brand_sim.astype(np.float64),
            "brand_bio_sim": brand_bio_sim.astype(np.float64),
            "country_share": scores.country[pick].astype(np.float64),
            "language_match": lang_match,
            "brand_mentions": mentions.astype(np.float64),
        }
    ).with_columns(pl.all().fill_nan(None))
    creator = _creator_block(view.creators[rows])
    out = pl.concat([creator, pair], how="horizontal")
    return out.select(FEATURE_COLUMNS)
