"""The one function that turns (brand segment, creator) pairs into model features.

Training (on point-in-time snapshots), the API and the batch jobs all call :func:`pair_features`, so the
features a model was trained on and the ones it is served can never disagree. The column list and order are
part of every trained model (``FEATURE_COLUMNS``) and are checked when a bundle loads.

Everything that depends on the creator alone (the creator columns, audience geography, languages, the terms each
creator used) is turned into arrays once per view (:func:`view_arrays`) and gathered per request; what depends on
the pair is matrix work over the unique creators × the query's segments. A request over a few hundred creators
and a batch over every creator therefore run the same code, and neither runs a query per segment.
"""

from __future__ import annotations

import threading
import weakref
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Generic, Protocol, TypeVar

import numpy as np
import polars as pl

from audiencefit.features.schemas import PLATFORMS
from audiencefit.models.query import Segment

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


T = TypeVar("T")


class IdentityCache(Generic[T]):
    """Values keyed on an object's identity, dropped when the object is collected.

    Objects that cannot be weakly referenced get a fresh value on every call (never a stale one: an id can be
    reused once its object is gone, so every hit is checked against a weak reference).
    """

    def __init__(self) -> None:
        self._entries: dict[int, tuple[weakref.ref[Any], T]] = {}

    def get(self, owner: object, make: Callable[[], T]) -> T:
        """The value for ``owner``, made by ``make()`` on first use."""
        key = id(owner)
        hit = self._entries.get(key)
        if hit is not None and hit[0]() is owner:
            return hit[1]
        value = make()
        try:
            ref = weakref.ref(owner)
        except TypeError:
            return value
        weakref.finalize(owner, self._entries.pop, key, None)
        self._entries[key] = (ref, value)
        return value


class ViewArrays:
    """Per-view lookups, computed once per view (see :func:`view_arrays`) and read-only afterwards."""

    def __init__(self, view: CreatorView) -> None:
        creators = view.creators
        n = creators.height
        self.n = n
        self.row_of: dict[str, int] = {cid: i for i, cid in enumerate(creators["creator_id"].to_list())}
        self.creator_block = _creator_block(creators).to_numpy().astype(np.float64)  # nulls → NaN
        share = creators["suspicious_share"].fill_null(strategy="mean").fill_null(0.0).to_numpy()
        self.authentic = np.clip(1.0 - share, 0.0, 1.0).astype(np.float32)
        self.has_content = _nonzero_rows(view.content)
        self.has_bio = _nonzero_rows(view.bio)
        countries = creators["country"].to_list()
        self.country: list[str | None] = countries
        self.country_codes = {c: i for i, c in enumerate(sorted({x for x in countries if x is not None}))}
        self.country_code = np.array([self.country_codes[x] if x is not None else -1 for x in countries], np.int64)
        languages = creators["language"].to_list()
        self.language_codes = {lang: i for i, lang in enumerate(sorted({x for x in languages if x is not None}))}
        self.language = np.array([self.language_codes.get(x, -1) if x is not None else -1 for x in languages])
        # The language most creators of each country use (ties: alphabetical), learned from the data.
        dominant = (
            creators.filter(pl.col("country").is_not_null() & pl.col("language").is_not_null())
            .group_by("country", "language")
            .agg(n=pl.len())
            .sort(["country", "n", "language"], descending=[False, True, False])
            .group_by("country", maintain_order=True)
            .agg(pl.col("language").first())
        )
        self.dominant_language: dict[str, str] = dict(zip(dominant["country"], dominant["language"], strict=True))
        geo = view.audience_geo.filter(pl.col("dimension") == "country").select("creator_id", "value", "share")
        self._geo_rows = np.array([self.row_of.get(c, -1) for c in geo["creator_id"].to_list()], dtype=np.int64)
        self._geo_values = geo["value"].to_numpy()
        self._geo_share = geo["share"].cast(pl.Float64).to_numpy()
        keep = self._geo_rows >= 0
        self.has_geo = np.bincount(self._geo_rows[keep], minlength=n) > 0
        self._country_share: dict[str, np.ndarray] = {}
        self._creators = creators
        self._selected: dict[tuple[str, ...], pl.DataFrame] = {}
        self._numpy: dict[str, np.ndarray] = {}
        self._per_creator: IdentityCache[tuple[dict[str, np.ndarray], np.ndarray]] = IdentityCache()
        self._terms_view = view.terms
        self._terms: tuple[pl.Series, np.ndarray, np.ndarray] | None = None
        self._term_scans = 0
        self._mentions: dict[tuple[str, ...], np.ndarray] = {}
        self._ids: pl.DataFrame | None = None
        self._lock = threading.Lock()

    def numpy(self, name: str) -> np.ndarray:
        """One creators column as a numpy array, converted once."""
        got = self._numpy.get(name)
        if got is None:
            got = self._numpy[name] = self._creators[name].to_numpy()
        return got

    def columns(self, names: tuple[str, ...]) -> pl.DataFrame:
        """``creators.select(names)``, selected once (requests then only gather rows)."""
        got = self._selected.get(names)
        if got is None:
            got = self._selected[names] = self._creators.select(names)
        return got

    def per_creator(
        self,
        owner: object,
        rows: np.ndarray,
        compute: Callable[[np.ndarray], dict[str, np.ndarray]],
    ) -> dict[str, np.ndarray]:
        """Values that depend on the creator and on ``owner`` only (e.g. a model's price), computed once per creator.

        ``compute(rows)`` returns arrays aligned with ``rows``; rows not seen before are computed, the others are
        read back. Entries are dropped with their owner.
        """
        values, done = self._per_creator.get(owner, lambda: ({}, np.zeros(self.n, dtype=bool)))
        missing = np.unique(rows[~done[rows]])
        if len(missing):
            for name, got in compute(missing).items():
                if name not in values:
                    values[name] = np.full(self.n, np.nan)
                values[name][missing] = got
            done[missing] = True
        return {name: column[rows] for name, column in values.items()}

    def country_share(self, country: str) -> np.ndarray:
        """(n,) share of each creator's follower sample in ``country`` (0 without a sample); built on first use."""
        got = self._country_share.get(country)
        if got is None:
            hit = (self._geo_values == country) & (self._geo_rows >= 0)
            got = np.bincount(self._geo_rows[hit], weights=self._geo_share[hit], minlength=self.n)
            self._country_share[country] = got
        return got

    def term_counts(self, term: str) -> tuple[np.ndarray, np.ndarray]:
        """(rows, counts) of the creators who used ``term``, by row.

        Rent or buy: the first lookups scan the terms table (~10 ms each at 100k creators); after
        ``TERM_SCANS_BEFORE_INDEX`` of them a sorted index over every term is built (seconds at 100k creators) and
        later lookups are binary searches. A batch job with a few brands never pays for the index; a service
        answering many requests builds it once. Both ways give the same arrays.
        """
        if self._terms is None:
            with self._lock:
                if self._terms is None and self._term_scans >= TERM_SCANS_BEFORE_INDEX:
                    self._terms = self._index_terms(self._terms_view)
                self._term_scans += 1
        if self._terms is None:
            names, rows, counts = self._index_terms(self._terms_view.filter(pl.col("term") == term))
        else:
            names, rows, counts = self._terms
        start = int(names.search_sorted(term, "left"))
        stop = int(names.search_sorted(term, "right"))
        return rows[start:stop], counts[start:stop]

    def mention_totals(self, terms: tuple[str, ...]) -> np.ndarray:
        """(n,) how often each creator used any of ``terms`` (sorted, unique), summed; computed once per term set
        and kept (a brand's terms are the same for every chunk of a batch job and every request of a brand), at
        most ``MENTION_SETS_KEPT`` sets (8 bytes per creator each)."""
        got = self._mentions.get(terms)
        if got is None:
            got = np.zeros(self.n, dtype=np.float64)
            for term in terms:
                hit_rows, counts = self.term_counts(term)
                np.add.at(got, hit_rows, counts)
            with self._lock:
                if len(self._mentions) >= MENTION_SETS_KEPT:
                    self._mentions.pop(next(iter(self._mentions)))
                self._mentions[terms] = got
        return got

    def _index_terms(self, terms: pl.DataFrame) -> tuple[pl.Series, np.ndarray, np.ndarray]:
        """(term, row, count) sorted by term then row: a term's creators are one slice, found by binary search.
        Terms stay a polars string column (one buffer), not a numpy array of Python strings: at a million creators
        the index has ~54M rows, which as Python objects were GBs per process."""
        if self._ids is None:
            self._ids = pl.DataFrame(
                {"creator_id": list(self.row_of), "row": np.fromiter(self.row_of.values(), np.int64, len(self.row_of))}
            )
        indexed = (
            terms.join(self._ids, on="creator_id", how="inner")
            .group_by("term", "row")
            .agg(n=pl.col("count").sum())
            .sort("term", "row")
        )
        return (
            indexed["term"],
            indexed["row"].to_numpy().astype(np.int64),
            indexed["n"].cast(pl.Float64).to_numpy(),
        )


TERM_SCANS_BEFORE_INDEX = 64
MENTION_SETS_KEPT = 64


def _nonzero_rows(vectors: np.ndarray) -> np.ndarray:
    """Rows that are not all zeros (a creator without the text has a zero vector)."""
    out: np.ndarray = np.any(np.asarray(vectors) != 0, axis=1)
    return out


_ARRAYS: IdentityCache[ViewArrays] = IdentityCache()


def view_arrays(view: CreatorView) -> ViewArrays:
    """The :class:`ViewArrays` of ``view``, computed on first use and kept while the view lives.

    A feature set is loaded once per process and snapshots once per training date, so this is computed once per
    view; views that cannot be weakly referenced are recomputed on every call.
    """
    return _ARRAYS.get(view, lambda: ViewArrays(view))


def authentic_share(view: CreatorView) -> np.ndarray:
    """Estimated share of each creator's audience that is real (1 − suspicious share; the mean when unknown)."""
    return view_arrays(view).authentic


def row_products(matrix: np.ndarray, rows: np.ndarray, targets: np.ndarray) -> np.ndarray:
    """(len(rows), len(targets)) float32 dot products of ``matrix[rows]`` with each target row.

    Computed in float64 and rounded to float32: a float32 product's value would depend on how BLAS blocks the
    matrix (its shape), so a creator scored in a chunk of 300, in a request of 1,000 or in a batch of 20,000
    could differ in the last bit. In float64 the summation order changes the result far below float32's
    resolution, so the rounded values agree whatever the chunking (training, API, batch and Ray alike).
    """
    left = np.asarray(matrix[rows], dtype=np.float64)
    return (left @ np.asarray(targets, dtype=np.float64).T).astype(np.float32)


def segment_cluster_membership(segment_vectors: np.ndarray, centroids: np.ndarray) -> np.ndarray:
    """(n_segments, k): how much each audience interest cluster belongs to each segment, best cluster = 1."""
    sims = segment_vectors @ centroids.T
    return np.asarray(np.exp((sims - sims.max(axis=1, keepdims=True)) / SHARE_TEMPERATURE), dtype=np.float32)


def country_factors(view: CreatorView, rows: np.ndarray, countries: Sequence[str]) -> np.ndarray:
    """Share of each creator's audience in ``countries`` (its own country as a proxy without a follower sample)."""
    rows = np.asarray(rows, dtype=np.int64)
    if not countries:
        return np.ones(len(rows), dtype=np.float32)
    arrays = view_arrays(view)
    targets = set(countries)
    share = np.zeros(len(rows), dtype=np.float64)
    for country in sorted(targets):
        share += arrays.country_share(country)[rows]
    own = arrays.country_code[rows]
    target_codes = [arrays.country_codes[c] for c in sorted(targets) if c in arrays.country_codes]
    fallback = np.where(
        own < 0, 0.5 + 0.5 * OTHER_COUNTRY_FACTOR, np.where(np.isin(own, target_codes), 1.0, OTHER_COUNTRY_FACTOR)
    )
    return np.where(arrays.has_geo[rows], share, fallback).astype(np.float32)


@dataclass(frozen=True)
class FitScores:
    """Per (row, segment): audience fit (real audience), raw cosine, estimated audience share, country share."""

    fit: np.ndarray  # (n_rows, n_segments) authenticity-weighted similarity
    raw: np.ndarray
    share: np.ndarray
    country: np.ndarray

    def take(self, index: np.ndarray) -> FitScores:
        """These scores for rows ``index`` (e.g. each creator's row among the unique rows they were computed for)."""
        return FitScores(self.fit[index], self.raw[index], self.share[index], self.country[index])

    def combined(self, weights: np.ndarray) -> np.ndarray:
        """One fit per row: segment fits × country share, averaged with the segment weights."""
        # float64, like row_products: the result must not depend on how many rows are scored together.
        w = np.asarray(weights, dtype=np.float64)
        return np.asarray((self.fit.astype(np.float64) * self.country) @ w / w.sum(), dtype=np.float32)


def fit_scores(view: CreatorView, rows: np.ndarray, query: BrandQuery) -> FitScores:
    """Audience fit of the given creators for every segment of the query."""
    seg = query.segment_vectors
    raw = row_products(view.audience, rows, seg)
    fit = raw * authentic_share(view)[rows][:, None]
    membership = segment_cluster_membership(seg, view.centroids)
    share = np.clip(row_products(view.audience_dist, rows, membership), 0.0, 1.0)
    country = np.stack([country_factors(view, rows, s.countries) for s in query.segments], axis=1)
    return FitScores(fit.astype(np.float32), raw.astype(np.float32), share.astype(np.float32), country)


def combined_fit_estimate(view: CreatorView, rows: np.ndarray, query: BrandQuery, weights: np.ndarray) -> np.ndarray:
    """``fit_scores(view, rows, query).combined(weights)`` to within float32 rounding, for choosing among many rows.

    Only what the combined fit reads (no audience share), with float32 products from numpy's own loop: ~2× cheaper
    over a request's ~1,600 candidates, and still the same number for a row whatever other rows are scored with it
    and whatever BLAS or thread count the machine has (no BLAS call).
    """
    seg = np.asarray(query.segment_vectors, dtype=np.float32)
    raw = np.einsum("nd,sd->ns", view.audience[rows], seg)
    fit = raw * authentic_share(view)[rows][:, None]
    country = np.stack([country_factors(view, rows, s.countries) for s in query.segments], axis=1)
    w = np.asarray(weights, dtype=np.float64)
    return np.asarray((fit.astype(np.float64) * country) @ w / w.sum(), dtype=np.float32)


def brand_mention_counts(view: CreatorView, rows: np.ndarray, brand_terms: Sequence[str]) -> np.ndarray:
    """How often each creator used one of the brand's handles or hashtags (posts, before the feature cut-off)."""
    rows = np.asarray(rows, dtype=np.int64)
    if not brand_terms:
        return np.zeros(len(rows), dtype=np.float32)
    total = view_arrays(view).mention_totals(tuple(sorted(set(brand_terms))))
    out: np.ndarray = total[rows].astype(np.float32)
    return out


def _creator_block(creators: pl.DataFrame) -> pl.DataFrame:
    """The creator half of the features: feature-set columns as floats, plus two encodings."""
    platform_code = {p: float(i) for i, p in enumerate(PLATFORMS)}
    derived = {
        "audience_from_followers": (pl.col("audience_source") == "followers").cast(pl.Float64),
        "platform_code": pl.col("platform").replace_strict(platform_code, default=float(len(PLATFORMS))),
    }
    return creators.select([derived.get(name, pl.col(name).cast(pl.Float64)).alias(name) for name in CREATOR_COLUMNS])


def _similarity(vectors: np.ndarray, rows: np.ndarray, has: np.ndarray, targets: np.ndarray) -> np.ndarray:
    """(len(rows), len(targets)) cosine of stored unit vectors with unit targets; NaN where a creator has none."""
    sims = row_products(vectors, rows, targets)
    out: np.ndarray = np.where(has[rows][:, None], sims.astype(np.float64), np.nan)
    return out


def pair_features(view: CreatorView, rows: np.ndarray, segment_index: np.ndarray, query: BrandQuery) -> pl.DataFrame:
    """Model features for each pair (creator ``rows[i]``, segment ``segment_index[i]`` of ``query``).

    Returns a frame with exactly ``FEATURE_COLUMNS`` (float64; null where undefined), row-aligned with the pairs.
    """
    array = pair_feature_array(view, rows, segment_index, query)
    return pl.DataFrame([pl.Series(name, array[:, j], nan_to_null=True) for j, name in enumerate(FEATURE_COLUMNS)])


def pair_feature_array(view: CreatorView, rows: np.ndarray, segment_index: np.ndarray, query: BrandQuery) -> np.ndarray:
    """:func:`pair_features` as a float64 matrix (columns ``FEATURE_COLUMNS``, NaN where undefined).

    The same numbers without building a frame: scoring hands this straight to the models.
    """
    return pair_feature_parts(view, rows, segment_index, query)[0]


def pair_feature_parts(
    view: CreatorView, rows: np.ndarray, segment_index: np.ndarray, query: BrandQuery
) -> tuple[np.ndarray, FitScores, np.ndarray]:
    """(:func:`pair_feature_array`, the :func:`fit_scores` it used for ``np.unique(rows)``, and each pair's index
    into those unique rows): callers that also show the fit reuse it instead of computing it again."""
    arrays = view_arrays(view)
    rows = np.asarray(rows, dtype=np.int64)
    segment_index = np.asarray(segment_index, dtype=np.int64)
    unique_rows, inverse = np.unique(rows, return_inverse=True)
    inverse = inverse.reshape(-1)
    scores = fit_scores(view, unique_rows, query)
    pick = (inverse, segment_index)
    # One product per stored matrix: the segments and, when there is one, the brand's description as a last target
    # (each similarity is its own dot product, so stacking targets changes no number).
    targets = query.segment_vectors
    n_seg = len(query.segments)
    if query.brand_vector is not None:
        brand = np.asarray(query.brand_vector, dtype=np.float32)[None, :]
        targets = np.vstack([np.asarray(targets, dtype=np.float32), brand])
    content = _similarity(view.content, unique_rows, arrays.has_content, targets)
    bio = _similarity(view.bio, unique_rows, arrays.has_bio, targets)
    content_sim, bio_sim = content[pick], bio[pick]
    if query.brand_vector is not None:
        brand_sim, brand_bio_sim = content[inverse, n_seg], bio[inverse, n_seg]
    else:
        brand_sim = brand_bio_sim = np.full(len(rows), np.nan)
    # Does the creator write in a language most creators of the segment's target countries use?
    by_segment = np.full((len(unique_rows), len(query.segments)), np.nan)
    creator_language = arrays.language[unique_rows]
    for s, segment in enumerate(query.segments):
        dominant = {arrays.dominant_language[c] for c in segment.countries if c in arrays.dominant_language}
        if dominant:
            codes = [arrays.language_codes[lang] for lang in sorted(dominant)]
            by_segment[:, s] = np.isin(creator_language, codes).astype(np.float64)
    lang_match = by_segment[pick]
    mentions = brand_mention_counts(view, unique_rows, query.brand_terms)[inverse]

    # One C-ordered float64 matrix, filled in place: the creator block (the first columns) by whole rows, each
    # pair column once; the models read it as it is.
    out = np.empty((len(rows), len(FEATURE_COLUMNS)), dtype=np.float64)
    out[:, : len(CREATOR_COLUMNS)] = arrays.creator_block[rows]
    columns: dict[str, np.ndarray] = {
        "audience_fit": scores.fit[pick].astype(np.float64),
        "audience_fit_raw": scores.raw[pick].astype(np.float64),
        "audience_share": scores.share[pick].astype(np.float64),
        "content_sim": content_sim,
        "bio_sim": bio_sim,
        "brand_content_sim": brand_sim,
        "brand_bio_sim": brand_bio_sim,
        "country_share": scores.country[pick].astype(np.float64),
        "language_match": lang_match,
        "brand_mentions": mentions.astype(np.float64),
    }
    for j, name in enumerate(PAIR_COLUMNS, start=len(CREATOR_COLUMNS)):
        out[:, j] = columns[name]
    return out, scores, inverse
