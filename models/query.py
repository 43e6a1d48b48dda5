"""What a brand asks for: audience segments and filters, validated, and turned into vectors and row masks."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import partial

import numpy as np
import polars as pl

from audiencefit.features.embed import Embedder, embed_texts, for_queries, get_embedder
from audiencefit.features.errors import InputError
from audiencefit.features.featureset import FeatureSet
from audiencefit.features.schemas import PLATFORMS
from audiencefit.features.text import is_meaningful, prepare_text
from audiencefit.models.remembered import Remembered

DEFAULT_MIN_FOLLOWERS = 1_000
DEFAULT_MAX_FOLLOWERS = 100_000


@dataclass(frozen=True)
class Segment:
    """A target audience: free text, optionally example customer/follower profiles, a weight, target countries."""

    text: str
    weight: float = 1.0
    countries: tuple[str, ...] = ()
    examples: tuple[str, ...] = ()
    segment_id: str | None = None

    @property
    def label(self) -> str:
        return self.segment_id or self.text[:60]


@dataclass(frozen=True)
class Filters:
    """Which creators may be returned. Applied inside the search, not by dropping results afterwards."""

    min_followers: int = DEFAULT_MIN_FOLLOWERS
    max_followers: int = DEFAULT_MAX_FOLLOWERS
    platforms: tuple[str, ...] = ()
    countries: tuple[str, ...] = ()
    languages: tuple[str, ...] = ()
    min_audience_quality: float = 0.0
    exclude: tuple[str, ...] = field(default_factory=tuple)


def validate_segments(segments: Sequence[Segment]) -> list[Segment]:
    """Every segment needs meaningful text (or examples) and a positive weight; problems are reported together."""
    if not segments:
        raise InputError("no segment given: describe at least one target audience")
    problems: list[str] = []
    cleaned: list[Segment] = []
    for i, seg in enumerate(segments):
        name = f"segment {i + 1}" + (f" ({seg.segment_id})" if seg.segment_id else "")
        text_ok = is_meaningful(prepare_text(seg.text))
        examples = tuple(e for e in seg.examples if is_meaningful(prepare_text(e)))
        if not text_ok and not examples:
            problems.append(f"{name}: text is empty or has no words to match ({seg.text!r})")
        if not np.isfinite(seg.weight) or seg.weight < 1e-6:
            problems.append(f"{name}: weight must be a positive number (at least 1e-6), got {seg.weight}")
        countries = tuple(c.strip().upper() for c in seg.countries if c.strip())
        bad = [c for c in countries if len(c) != 2 or not c.isalpha()]
        if bad:
            problems.append(f"{name}: countries must be ISO 3166-1 alpha-2 codes, got {bad}")
        cleaned.append(
            Segment(text=seg.text, weight=seg.weight, countries=countries, examples=examples, segment_id=seg.segment_id)
        )
    if problems:
        raise InputError("; ".join(problems))
    return cleaned


def validate_filters(filters: Filters) -> Filters:
    problems: list[str] = []
    if filters.min_followers < 0:
        problems.append(f"min_followers must be ≥ 0, got {filters.min_followers}")
    if filters.max_followers < filters.min_followers:
        problems.append(f"max_followers ({filters.max_followers}) is below min_followers ({filters.min_followers})")
    platforms = tuple(p.strip().lower() for p in filters.platforms if p.strip())
    unknown = sorted(set(platforms) - set(PLATFORMS))
    if unknown:
        problems.append(f"unknown platform(s) {unknown}; known: {list(PLATFORMS)}")
    if not 0 <= filters.min_audience_quality <= 100:
        problems.append(f"min_audience_quality must be within 0–100, got {filters.min_audience_quality}")
    if problems:
        raise InputError("; ".join(problems))
    return Filters(
        min_followers=filters.min_followers,
        max_followers=filters.max_followers,
        platforms=platforms,
        countries=tuple(c.strip().upper() for c in filters.countries if c.strip()),
        languages=tuple(lang.strip().lower() for lang in filters.languages if lang.strip()),
        min_audience_quality=filters.min_audience_quality,
        exclude=tuple(filters.exclude),
    )


def allowed_mask(fs: FeatureSet, filters: Filters) -> np.ndarray:
    """Boolean mask over the feature set's rows: the creators the filters allow."""
    c = fs.creators
    expr = pl.col("followers").is_between(filters.min_followers, filters.max_followers)
    if filters.platforms:
        expr &= pl.col("platform").is_in(list(filters.platforms))
    if filters.countries:
        expr &= pl.col("country").is_in(list(filters.countries))
    if filters.languages:
        expr &= pl.col("language").str.to_lowercase().is_in(list(filters.languages))
    if filters.min_audience_quality > 0:
        expr &= pl.col("audience_quality").fill_null(0.0) >= filters.min_audience_quality
    if filters.exclude:
        expr &= ~pl.col("creator_id").is_in(list(filters.exclude))
    return c.select(expr.fill_null(False).alias("ok"))["ok"].to_numpy().astype(bool)


def describe_empty(fs: FeatureSet, filters: Filters) -> str:
    """Why no creator passes the filters: the filter that removes the most, in words."""
    n = fs.creators.height
    checks = {
        f"followers within {filters.min_followers:,}–{filters.max_followers:,}": Filters(
            min_followers=filters.min_followers, max_followers=filters.max_followers
        ),
    }
    if filters.platforms:
        checks[f"platform in {list(filters.platforms)}"] = Filters(0, 2**62, platforms=filters.platforms)
    if filters.countries:
        checks[f"country in {list(filters.countries)}"] = Filters(0, 2**62, countries=filters.countries)
    if filters.languages:
        checks[f"language in {list(filters.languages)}"] = Filters(0, 2**62, languages=filters.languages)
    if filters.min_audience_quality > 0:
        checks[f"audience quality ≥ {filters.min_audience_quality:g}"] = Filters(
            0, 2**62, min_audience_quality=filters.min_audience_quality
        )
    parts = [f"{label}: {int(allowed_mask(fs, f).sum()):,} of {n:,}" for label, f in checks.items()]
    return "no creator passes every filter (" + "; ".join(parts) + ")"


class QueryVectors:
    """Query texts' vectors, each embedded on its own and remembered (least recently used out, ``capacity`` in all).

    Marketers send the same segments again and again (other filters, budgets, objectives, pages), so a request
    usually finds its texts here and skips the transformer (~2.6 ms of CPU per text). A text is always embedded
    alone, never in a padded batch with others, so its vector depends on the text only: a remembered vector is
    bit for bit the one a fresh embedding would give, and answers never depend on which requests came before.
    Thread-safe; keyed by the query embedder's id and the prepared text.
    """

    def __init__(self, capacity: int = 4096) -> None:
        self._vectors: Remembered[tuple[str, str], np.ndarray] = Remembered(capacity)

    def __len__(self) -> int:
        return len(self._vectors)

    def get(self, texts: Sequence[str], embedder: Embedder) -> np.ndarray:
        """(len(texts), dim) float32: each text's query vector (zeros for a text with nothing to embed)."""
        out = np.zeros((len(texts), embedder.dim), dtype=np.float32)
        for i, text in enumerate(texts):
            prepared = prepare_text(text)
            if is_meaningful(prepared):
                out[i] = self._vectors.get((embedder.id, prepared), partial(_embed_alone, text, embedder))
        return out


def _embed_alone(text: str, embedder: Embedder) -> np.ndarray:
    """One text's vector, embedded in a batch of its own."""
    vector: np.ndarray = embed_texts([text], embedder, None, progress=False).vectors[0]
    return vector


QUERY_VECTORS = QueryVectors()


def embed_segments(segments: Sequence[Segment], embedder: Embedder) -> np.ndarray:
    """One unit vector per segment: its text (a query) and the mean of its example profiles (stored-like), averaged."""
    texts = [s.text for s in segments]
    text_vecs = QUERY_VECTORS.get(texts, for_queries(embedder))
    out = np.zeros((len(segments), embedder.dim), dtype=np.float32)
    for i, seg in enumerate(segments):
        parts = [text_vecs[i]] if np.any(text_vecs[i]) else []
        if seg.examples:
            ex = embed_texts(list(seg.examples), embedder, None, progress=False)
            if ex.valid.any():
                mean = ex.vectors[ex.valid].mean(axis=0)
                parts.append(mean / max(float(np.linalg.norm(mean)), 1e-12))
        if parts:
            v = np.mean(parts, axis=0)
            out[i] = v / max(float(np.linalg.norm(v)), 1e-12)
    return out


def query_embedder(fs: FeatureSet, query_model: str | None = None) -> Embedder:
    """The embedder that made ``fs`` (queries must live in the same vector space as the creators).

    ``query_model`` ("int8" or "fp32", the ``query_model`` setting's values) loads the backend with that query
    transformer instead of the setting's, for evaluations that compare the two on one feature set.
    """
    backend = fs.manifest.get("embedder_backend")
    if not backend:
        raise InputError(f"{fs.path}: the manifest does not say which embedder built it; rebuild the features")
    from audiencefit.features.embed_backends import CARRIED_DIR, SPECS

    # A feature set of a fast backend carries the artifacts its queries need (features build copies them): a serving
    # host given the feature set uses those, checked, and needs no <data_dir>/models of its own.
    carried = fs.path / CARRIED_DIR if str(backend) in SPECS and (fs.path / CARRIED_DIR).is_dir() else None
    if query_model is None:
        if carried is None:
            embedder = get_embedder(str(backend))
        else:
            from audiencefit.features.embed_backends import carried_embedder

            embedder = carried_embedder(str(backend), carried)
    else:
        from audiencefit.features.embed_backends import QUERY_MODELS, load_embedder
        from audiencefit.settings import get_settings

        if query_model not in QUERY_MODELS:
            raise InputError(f"query model {query_model!r}: expected one of {sorted(QUERY_MODELS)}")
        embedder = load_embedder(
            str(backend), get_settings().model_copy(update={"query_model": query_model}), carried=carried
        )
    if embedder.id != fs.embedder_id:
        raise InputError(
            f"{fs.path}: embedded with {fs.embedder_id!r}, but backend {backend!r} is now {embedder.id!r}; "
            "rebuild the features"
        )
    return embedder


def query_variants(fs: FeatureSet, query_models: Sequence[str] | None) -> list[tuple[str, Embedder]]:
    """``(label, embedder)`` per query transformer to evaluate ``fs`` with: the setting's alone (label: the
    backend) when ``query_models`` is empty, else one per model (label: "<backend> (queries <model>)")."""
    backend = str(fs.manifest.get("embedder_backend"))
    if not query_models:
        return [(backend, query_embedder(fs))]
    return [(f"{backend} (queries {q})", query_embedder(fs, q)) for q in query_models]
