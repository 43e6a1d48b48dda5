"""Candidate retrieval: from every creator to the few hundred whose audience fits a brand's segments.

Per segment, the audience index returns the best-fitting allowed creators; the union is re-scored exactly for
every segment, so each candidate carries an audience-fit score per segment, the estimated share of its audience
that belongs to each segment, and one combined fit (segment weights, and target countries when given).
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import polars as pl

from audiencefit.features.embed import Embedder
from audiencefit.features.errors import InputError
from audiencefit.features.featureset import FeatureSet
from audiencefit.models.index import VectorIndex
from audiencefit.models.pair_features import BrandQuery, combined_fit_estimate, fit_scores
from audiencefit.models.query import (
    Filters,
    Segment,
    allowed_mask,
    describe_empty,
    embed_segments,
    validate_filters,
    validate_segments,
)
from audiencefit.models.remembered import Remembered

MASKS_REMEMBERED = 256  # distinct filter sets whose row masks a search keeps (n bytes each)
# Segments whose index search a search keeps (rows found for one segment vector, filter set and depth: 8 bytes a row,
# ~6 KB for the API's 800 per segment): marketers re-run saved segments, in new combinations.
SEGMENT_SEARCHES_REMEMBERED = 2048
# Briefs whose shortlist a search keeps (the k rows chosen by the fit estimate among the segments' union: 8 bytes a
# row): a brief sent again skips the estimate over its ~1,600 candidates, whose row gather was 7 % of a request.
SHORTLISTS_REMEMBERED = 2048


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


def sorted_unique(values: np.ndarray) -> np.ndarray:
    """``np.unique(values)`` of a 1-d integer array by sorting: numpy 2's hashing ``unique`` took ~290 µs for a
    request's ~2,400 candidate rows, a sort and a comparison ~55."""
    ordered = np.sort(values)
    if len(ordered) < 2:
        return ordered
    keep = np.empty(len(ordered), dtype=bool)
    keep[0] = True
    np.not_equal(ordered[1:], ordered[:-1], out=keep[1:])
    return ordered[keep]


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
        # Requests repeat their filters (most use the defaults): each distinct filter's row mask is kept (read-only,
        # least recently used out) instead of being computed again over every creator.
        self._masks: Remembered[Filters, np.ndarray] = Remembered(MASKS_REMEMBERED)
        self._found: Remembered[tuple[bytes, Filters, int], np.ndarray] = Remembered(SEGMENT_SEARCHES_REMEMBERED)
        self._shortlists: Remembered[tuple[Any, ...], np.ndarray] = Remembered(SHORTLISTS_REMEMBERED)

    def allowed(self, filters: Filters) -> np.ndarray:
        """``allowed_mask(fs, filters)`` for validated filters, remembered (the same array for the same filters)."""
        return self._masks.get(filters, lambda: allowed_mask(self.fs, filters))

    def segment_rows(self, vector: np.ndarray, filters: Filters, allowed: np.ndarray, k: int) -> np.ndarray:
        """The rows the audience index finds for one segment vector among the ``allowed`` rows of ``filters``
        (read-only; remembered, least recently used out: a segment's answer depends on that segment alone)."""
        vec = np.ascontiguousarray(vector, dtype=np.float32)

        def search() -> np.ndarray:
            # Only the rows are used: the search scores the union again, for every segment.
            _, found = self.audience.search(vec[None, :], k, allowed, exact_scores=False)
            return np.asarray(found[0])

        return self._found.get((hashlib.blake2b(vec.tobytes(), digest_size=16).digest(), filters, k), search)

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
        allowed = self.allowed(flt)
        seg_vecs = embed_segments(segs, self.embedder)
        if not allowed.any():
            return self._empty(segs, seg_vecs, describe_empty(self.fs, flt))
        per_segment = candidates_per_segment or max(4 * k, 200)
        query = BrandQuery(segs, seg_vecs)
        weights = np.array([s.weight for s in segs], dtype=np.float32)
        # What the shortlist depends on: the segments' vectors, weights and countries, the filters and the depths.
        key = (
            hashlib.blake2b(np.ascontiguousarray(seg_vecs, dtype=np.float32).tobytes(), digest_size=16).digest(),
            weights.tobytes(),
            tuple(s.countries for s in segs),
            flt,
            k,
            per_segment,
        )
        kept = self._shortlists.get(key, lambda: self._shortlist(query, weights, flt, allowed, k, per_segment))
        scores = fit_scores(self.fs, kept, query)
        combined = scores.combined(weights)
        order = np.lexsort((kept, -combined))
        rows = kept[order]
        return Candidates(
            segments=segs,
            rows=rows,
            creator_ids=[self._ids[r] for r in rows],
            fit=combined[order],
            segment_fit=scores.fit[order],
            segment_share=scores.share[order],
            segment_vectors=seg_vecs,
        )

    def _shortlist(
        self, query: BrandQuery, weights: np.ndarray, flt: Filters, allowed: np.ndarray, k: int, per_segment: int
    ) -> np.ndarray:
        """The ``k`` best rows (sorted) of the union of the segments' searches by an estimate of the combined fit."""
        found = np.concatenate([self.segment_rows(v, flt, allowed, per_segment) for v in query.segment_vectors])
        union = sorted_unique(found[found >= 0])
        estimate = combined_fit_estimate(self.fs, union, query, weights)
        return np.sort(union[np.lexsort((union, -estimate))[:k]])  # ties broken by row: deterministic

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
