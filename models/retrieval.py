"""Candidate retrieval: from every creator to the few hundred whose audience fits a brand's segments.

Per segment, the audience index returns the best-fitting allowed creators; the union is re-scored exactly for
every segment, so each candidate carries an audience-fit score per segment, the estimated share of its audience
that belongs to each segment, and one combined fit (segment weights, and target countries when given).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal

import numpy as np
import polars as pl

from features.embed import Embedder
from features.errors import InputError
from features.featureset import FeatureSet
from models.index import VectorIndex
from models.query import (
    Filters,
    Segment,
    allowed_mask,
    describe_empty,
    embed_segments,
    validate_filters,
    validate_segments,
)

# Sharpness of "does interest cluster k belong to the segment": a cluster 0.05 less similar to the segment than
# the segment's best cluster counts e^-1 ≈ 0.37 as much.
SHARE_TEMPERATURE = 0.05
# When a segment targets countries and a creator has no audience geography, its own country stands in:
# in the targets → 1, elsewhere → this, unknown → half way.
OTHER_COUNTRY_FACTOR = 0.2


@dataclass(frozen=True)
class Candidates:
    """Retrieved creators, best combined fit first; arrays are row-aligned."""

    segments: list[Segment]
    rows: np.ndarray  # feature set rows
    creator_ids: list[str]
    fit: np.ndarray  # combined audience fit
    segment_fit: np.ndarray  # (n, n_segments)
    segment_share: np.ndarray  # (n, n_segments): estimated share of the audience in each segment
    empty_reason: str | None = None
    segment_vectors: np.ndarray = field(default_factory=lambda: np.zeros((0, 0), np.float32))

    def __len__(self) -> int:
        return len(self.rows)

    def to_frame(self) -> pl.DataFrame:
        return pl.DataFrame(
            {
                "creator_id": self.creator_ids,
                "row": self.rows,
                "fit": self.fit,
                "segment_fit": self.segment_fit.tolist(),
                "segment_share": self.segment_share.tolist(),
            },
            schema_overrides={"segment_fit": pl.List(pl.Float32), "segment_share": pl.List(pl.Float32)},
        )


def segment_cluster_membership(segment_vectors: np.ndarray, centroids: np.ndarray) -> np.ndarray:
    """(n_segments, k): how much each audience interest cluster belongs to each segment, best cluster = 1."""
    sims = segment_vectors @ centroids.T
    return np.asarray(np.exp((sims - sims.max(axis=1, keepdims=True)) / SHARE_TEMPERATURE), dtype=np.float32)


def country_factors(fs: FeatureSet, rows: np.ndarray, countries: Sequence[str]) -> np.ndarray:
    """Share of each creator's audience in ``countries`` (its own country as a proxy without a follower sample)."""
    if not countries:
        return np.ones(len(rows), dtype=np.float32)
    ids = fs.creators["creator_id"].gather(rows)
    geo = (
        fs.audience_geo.filter((pl.col("dimension") == "country") & pl.col("creator_id").is_in(ids.implode()))
        .group_by("creator_id")
        .agg(share=pl.col("share").filter(pl.col("value").is_in(list(countries))).sum())
    )
    own = fs.creators.select("creator_id", "country")[rows]
    joined = own.join(geo, on="creator_id", how="left", maintain_order="left").with_columns(
        fallback=pl.when(pl.col("country").is_null())
        .then(0.5 + 0.5 * OTHER_COUNTRY_FACTOR)
        .when(pl.col("country").is_in(list(countries)))
        .then(1.0)
        .otherwise(OTHER_COUNTRY_FACTOR)
    )
    return joined.select(pl.coalesce("share", "fallback"))["share"].to_numpy().astype(np.float32)


class AudienceSearch:
    """Retrieval over one feature set; holds the indexes and the embedder, loaded once."""

    def __init__(self, fs: FeatureSet, audience: VectorIndex, content: VectorIndex, embedder: Embedder) -> None:
        if audience.feature_set_id != fs.feature_set_id or content.feature_set_id != fs.feature_set_id:
            raise InputError("index and feature set differ: rebuild the index for this feature set")
        if embedder.id != fs.embedder_id:
            raise InputError(
                f"the feature set was embedded with {fs.embedder_id!r} but the query embedder is {embedder.id!r}"
            )
        self.fs = fs
        self.audience = audience
        self.content = content
        self.embedder = embedder
        self._ids = fs.creators["creator_id"].to_list()
        self._row_of = {cid: i for i, cid in enumerate(self._ids)}

    def score_rows(
        self, segments: Sequence[Segment], segment_vectors: np.ndarray, rows: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Exact per-segment fit, audience share and combined fit for the given rows."""
        seg_fit = self.audience.vectors[rows] @ segment_vectors.T
        membership = segment_cluster_membership(segment_vectors, self.fs.centroids)
        share = np.asarray(self.fs.audience_dist[rows], dtype=np.float32) @ membership.T
        geo = np.stack([country_factors(self.fs, rows, s.countries) for s in segments], axis=1)
        weights = np.array([s.weight for s in segments], dtype=np.float32)
        combined = (seg_fit * geo) @ weights / weights.sum()
        return seg_fit.astype(np.float32), np.clip(share, 0.0, 1.0).astype(np.float32), combined.astype(np.float32)

    def search(
        self,
        segments: Sequence[Segment],
        filters: Filters | None = None,
        k: int = 50,
        *,
        candidates_per_segment: int | None = None,
    ) -> Candidates:
        """The ``k`` allowed creators whose real audience best fits the segments."""
        if k < 1:
            raise InputError(f"k must be at least 1, got {k}")
        segs = validate_segments(segments)
        flt = validate_filters(filters or Filters())
        allowed = allowed_mask(self.fs, flt)
        seg_vecs = embed_segments(segs, self.embedder)
        if not allowed.any():
            return self._empty(segs, seg_vecs, describe_empty(self.fs, flt))
        per_segment = candidates_per_segment or max(4 * k, 200)
        _, found = self.audience.search(seg_vecs, per_segment, allowed)
        rows = np.unique(found[found >= 0])
        seg_fit, share, combined = self.score_rows(segs, seg_vecs, rows)
        order = np.lexsort((rows, -combined))[:k]  # ties broken by row: deterministic
        rows = rows[order]
        return Candidates(
            segments=segs,
            rows=rows,
            creator_ids=[self._ids[r] for r in rows],
            fit=combined[order],
            segment_fit=seg_fit[order],
            segment_share=share[order],
            segment_vectors=seg_vecs,
        )

    def _empty(self, segs: list[Segment], seg_vecs: np.ndarray, reason: str) -> Candidates:
        n = len(segs)
        return Candidates(
            segs,
            np.zeros(0, np.int64),
            [],
            np.zeros(0, np.float32),
            np.zeros((0, n), np.float32),
            np.zeros((0, n), np.float32),
            empty_reason=reason,
            segment_vectors=seg_vecs,
        )

    def row(self, creator_id: str) -> int:
        try:
            return self._row_of[creator_id]
        except KeyError:
            raise InputError(f"unknown creator {creator_id!r}") from None

    def lookalikes(
        self,
        creator_id: str,
        *,
        by: Literal["audience", "content"] = "audience",
        k: int = 20,
        filters: Filters | None = None,
    ) -> pl.DataFrame:
        """Creators most similar to ``creator_id`` by audience or by content (the creator itself excluded)."""
        if k < 1:
            raise InputError(f"k must be at least 1, got {k}")
        row = self.row(creator_id)
        index = self.audience if by == "audience" else self.content
        query = index.vectors[row]
        norm = float(np.linalg.norm(query))
        schema = {"creator_id": pl.String, "similarity": pl.Float32}
        if norm == 0:
            return pl.DataFrame(schema=schema)
        allowed = allowed_mask(self.fs, validate_filters(filters or Filters(min_followers=0, max_followers=2**62)))
        allowed[row] = False
        scores, rows = index.search((query / norm)[None, :], k, allowed)
        keep = rows[0] >= 0
        return pl.DataFrame(
            {"creator_id": [self._ids[r] for r in rows[0][keep]], "similarity": scores[0][keep]}, schema=schema
        )
