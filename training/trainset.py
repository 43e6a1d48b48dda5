"""Point-in-time training sets from past campaigns.

Each row is one creator contracted for one brand segment. Its features are computed by the feature pipeline
(``audiencefit.features.build.compute_features``) *as of a snapshot at or before the campaign's start* — snapshots are
taken every ``settings.training_snapshot_days`` days on a fixed grid — and turned into model features by
``audiencefit.models.pair_features.pair_features``, the same function the service and the batch jobs call. Nothing
observed after the snapshot (posts, followers, the campaign's own outcome) can reach a feature.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import numpy as np
import polars as pl
from rich.progress import Progress

from audiencefit.features.build import compute_features
from audiencefit.features.dataset import Dataset
from audiencefit.features.embed import Embedder, embed_texts, for_queries
from audiencefit.features.embed_cache import EmbeddingCache
from audiencefit.features.errors import InputError
from audiencefit.models.pair_features import FEATURE_COLUMNS, BrandQuery, pair_features
from audiencefit.models.query import Segment
from audiencefit.settings import Settings

log = logging.getLogger(__name__)

SNAPSHOT_ANCHOR = datetime(2000, 1, 3, tzinfo=UTC)  # a Monday; snapshots fall on this grid
LABEL_COLUMNS = ("engagement_rate", "conversions", "clicks", "reach", "cost", "revenue")
# recommendation_id: the service's answer the creator was contracted from (null for other picks); training joins it
# to the recommendation log (audiencefit.training.shown) to weight the row by how the creator came to be shown.
KEY_COLUMNS = (
    "campaign_id",
    "brand_id",
    "segment_id",
    "creator_id",
    "start_date",
    "as_of",
    "followers",
    "recommendation_id",
)


def snapshot_for(start: datetime, every_days: int) -> datetime:
    """The latest snapshot instant at or before ``start`` on the fixed grid."""
    step = timedelta(days=every_days)
    return SNAPSHOT_ANCHOR + ((start - SNAPSHOT_ANCHOR) // step) * step


def brand_queries(dataset: Dataset, embedder: Embedder, cache: EmbeddingCache | None) -> dict[str, BrandQuery]:
    """One embedded query per brand: its segments (in segment_id order), description, handles and hashtags."""
    if dataset.brands is None or dataset.segments is None:
        raise InputError("training needs brands and segments tables next to campaigns")
    segments = dataset.segments.sort("segment_id")
    # Descriptions are queries; an asymmetric backend embeds them with its query side (whose vectors the cache,
    # keyed on the stored-text side, must not hold).
    query = for_queries(embedder)
    query_cache = cache if query is embedder else None
    seg_vecs = embed_texts(segments["description"].to_list(), query, query_cache, progress=False).vectors
    brands = dataset.brands.sort("brand_id")
    brand_vecs = embed_texts(brands["description"].to_list(), query, query_cache, progress=False)
    queries: dict[str, BrandQuery] = {}
    for i, brand in enumerate(brands.iter_rows(named=True)):
        mask = (segments["brand_id"] == brand["brand_id"]).to_numpy()
        segs = [
            Segment(
                text=r["description"],
                weight=float(r["weight"]),
                countries=tuple((r["countries"] or "").split()),
                segment_id=r["segment_id"],
            )
            for r in segments.filter(pl.Series(mask)).iter_rows(named=True)
        ]
        terms = tuple(t.lower().lstrip("@#") for field in ("handles", "hashtags") for t in (brand[field] or "").split())
        queries[brand["brand_id"]] = BrandQuery(
            segments=segs,
            segment_vectors=seg_vecs[mask],
            brand_vector=brand_vecs.vectors[i] if brand_vecs.valid[i] else None,
            brand_terms=terms,
        )
    return queries


def campaign_labels(campaigns: pl.DataFrame, creators: pl.DataFrame) -> pl.DataFrame:
    """Outcome labels per campaign row: sponsored engagement rate ((likes+comments)/followers), the funnel's counts
    (reach, clicks, conversions), cost and revenue."""
    return campaigns.join(creators.select("creator_id", "followers"), on="creator_id", how="left").select(
        "campaign_id",
        "followers",
        engagement_rate=pl.when(pl.col("followers") > 0).then(
            (pl.col("likes") + pl.col("comments")) / pl.col("followers")
        ),
        conversions=pl.col("conversions").cast(pl.Float64),
        clicks=pl.col("clicks").cast(pl.Float64),
        reach=pl.col("reach").cast(pl.Float64),
        cost=pl.col("cost"),
        revenue=pl.col("revenue"),
    )


@dataclass(frozen=True)
class TrainingSet:
    """Features (``FEATURE_COLUMNS``), keys and labels, one row per campaign; sorted by start date then id."""

    frame: pl.DataFrame

    @property
    def features(self) -> pl.DataFrame:
        return self.frame.select(FEATURE_COLUMNS)


def build_training_set(
    dataset: Dataset,
    *,
    embedder: Embedder,
    cache: EmbeddingCache | None,
    settings: Settings,
    progress: bool = True,
) -> TrainingSet:
    """Point-in-time features and labels for every past campaign in ``dataset``."""
    if dataset.campaigns is None or dataset.campaigns.height == 0:
        raise InputError("no past campaigns: training needs a campaigns table with at least one row")
    queries = brand_queries(dataset, embedder, cache)
    campaigns = dataset.campaigns.with_columns(
        _start=pl.col("start_date").cast(pl.Datetime("us", "UTC")),
    ).sort("start_date", "campaign_id")
    as_of = [snapshot_for(s, settings.training_snapshot_days) for s in campaigns["_start"].to_list()]
    campaigns = campaigns.with_columns(as_of=pl.Series(as_of, dtype=pl.Datetime("us", "UTC")))
    labels = campaign_labels(campaigns, dataset.creators)
    snapshots = campaigns["as_of"].unique().sort().to_list()

    parts: list[pl.DataFrame] = []
    with Progress(disable=not progress) as bar:
        task = bar.add_task("point-in-time snapshots", total=len(snapshots))
        for snapshot in snapshots:
            view = compute_features(
                dataset, as_of=snapshot, embedder=embedder, cache=cache, settings=settings, progress=False
            )
            row_of = {cid: i for i, cid in enumerate(view.creators["creator_id"].to_list())}
            batch = campaigns.filter(pl.col("as_of") == snapshot)
            for brand_id, group in batch.group_by("brand_id", maintain_order=True):
                query = queries[str(brand_id[0])]
                seg_pos = {s.segment_id: j for j, s in enumerate(query.segments)}
                rows = np.array([row_of[c] for c in group["creator_id"].to_list()], dtype=np.int64)
                seg_idx = np.array([seg_pos[s] for s in group["segment_id"].to_list()], dtype=np.int64)
                feats = pair_features(view, rows, seg_idx, query)
                keys = group.select(
                    "campaign_id", "brand_id", "segment_id", "creator_id", "start_date", "as_of", "recommendation_id"
                )
                parts.append(pl.concat([keys, feats], how="horizontal"))
            bar.advance(task)
    frame = (
        pl.concat(parts)
        .join(labels, on="campaign_id", how="left")
        .select(*KEY_COLUMNS, *FEATURE_COLUMNS, *LABEL_COLUMNS)
        .sort("start_date", "campaign_id")
    )
    log.info("training set built", extra={"rows": frame.height, "snapshots": len(snapshots)})
    return TrainingSet(frame)
