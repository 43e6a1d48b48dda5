"""Retrieval on real data whose truth is a creator category: does a brief find the creators of its audience?

Every brief of ``audiencefit.training.category_briefs`` is asked three ways, as a marketer would send it:

- ``brief``: the whole brief as one segment (product words and audience together);
- ``audience clause``: the audience clause alone;
- ``brief + audience clause``: two segments of equal weight, the clause and the brief (the service combines
  segments by their weights, as ``AudienceSearch`` does).

Every creator of the feature set is ranked (no follower filter: a real export's counts are the source's, not
audiencefit's range); the relevant creators are those whose primary category (``truth/categories.parquet`` of
``audiencefit.training.real_data``, or any parquet with ``creator_id``, ``category`` and optionally ``primary``) is the
brief's. Metrics per brief: NDCG@k (binary gains) and precision@k, the share of the top k in the category,
divided by min(k, relevant creators) so that a small category can still reach 1. Chance is the category's share
of the pool.

    python -m audiencefit.training.category_eval --features DIR [DIR ...] --truth PATH [--k 50] [--by-language]

With several feature sets (one per embedding backend, built from the same export) it prints one table row per
backend, condition and method, then each backend's paired difference to the first one given (mean over briefs and
its standard error).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import polars as pl

from audiencefit.features.embed import Embedder
from audiencefit.features.errors import InputError
from audiencefit.features.featureset import FeatureSet, load_feature_set
from audiencefit.models.query import Segment, embed_segments
from audiencefit.training.category_briefs import YOUTUBE_BRIEFS, CategoryBrief
from audiencefit.training.real_data import read_truth
from audiencefit.training.retrieval_eval import ScoreFn, ndcg_at, score_audience, score_keywords


def score_content(fs: FeatureSet, segments: list[Segment], seg_vecs: np.ndarray, rows: np.ndarray) -> np.ndarray:
    """Cosine of each segment with the creator's content vector (recent captions)."""
    return np.asarray(seg_vecs @ np.asarray(fs.content)[rows].T)


CONDITIONS = ("brief", "audience clause", "brief + audience clause")

METHODS: dict[str, ScoreFn] = {
    "audience fit (audiencefit)": score_audience,
    "content similarity": score_content,
    "hashtag/keyword match": score_keywords,
}


def segments_for(brief: CategoryBrief, condition: str) -> list[Segment]:
    """The segments a brief is sent as under ``condition`` (one of :data:`CONDITIONS`)."""
    if condition == "brief":
        return [Segment(text=brief.brief, weight=1.0)]
    if condition == "audience clause":
        return [Segment(text=brief.audience, weight=1.0)]
    if condition == "brief + audience clause":
        return [Segment(text=brief.audience, weight=1.0), Segment(text=brief.brief, weight=1.0)]
    raise ValueError(f"unknown condition {condition!r}; expected one of {', '.join(CONDITIONS)}")


def primary_categories(fs: FeatureSet, truth: pl.DataFrame) -> np.ndarray:
    """Each feature set row's primary category ("" where the truth has none)."""
    if "primary" in truth.columns:
        truth = truth.filter(pl.col("primary"))
    dup = truth.filter(pl.col("creator_id").is_duplicated())["creator_id"].unique()
    if dup.len():
        raise InputError(f"truth: {dup.len()} creator(s) with more than one primary category, e.g. {dup[0]!r}")
    frame = pl.DataFrame({"creator_id": fs.creators["creator_id"]}).join(
        truth.select("creator_id", "category"), on="creator_id", how="left"
    )
    return frame["category"].fill_null("").to_numpy().astype(str)


def combined_scores(
    fs: FeatureSet, method: ScoreFn, segments: list[Segment], embedder: Embedder, rows: np.ndarray
) -> np.ndarray:
    """One score per row: the segments' scores averaged by segment weight."""
    vecs = embed_segments(segments, embedder)
    per_segment = method(fs, segments, vecs, rows)
    weights = np.array([s.weight for s in segments], dtype=np.float64)
    return np.asarray(weights @ per_segment / weights.sum())


def precision_at(order: np.ndarray, relevant: np.ndarray, k: int) -> float:
    """Share of the top k that is relevant, out of the most that could be (min(k, relevant count))."""
    possible = min(k, int(relevant.sum()))
    return float(relevant[order[:k]].sum()) / possible if possible else 0.0


def evaluate_categories(
    fs: FeatureSet,
    truth: pl.DataFrame,
    embedder: Embedder,
    *,
    briefs: Sequence[CategoryBrief] = YOUTUBE_BRIEFS,
    methods: dict[str, ScoreFn] | None = None,
    conditions: Sequence[str] = CONDITIONS,
    k: int = 50,
) -> pl.DataFrame:
    """One row per brief, condition and method: NDCG@k, precision@k, relevant count and chance precision."""
    categories = primary_categories(fs, truth)
    rows = np.arange(fs.creators.height)
    present = set(categories.tolist())
    if not any(b.category in present for b in briefs):
        raise InputError("truth: none of the briefs' categories is the primary category of a creator in the features")
    records = []
    for brief in briefs:
        relevant = categories == brief.category
        if not relevant.any():
            continue
        for condition in conditions:
            segments = segments_for(brief, condition)
            for name, method in (methods or METHODS).items():
                scores = combined_scores(fs, method, segments, embedder, rows)
                order = np.lexsort((rows, -scores))
                records.append(
                    {
                        "category": brief.category,
                        "language": brief.language,
                        "condition": condition,
                        "method": name,
                        f"ndcg@{k}": ndcg_at(order, relevant.astype(np.float64), k),
                        f"precision@{k}": precision_at(order, relevant, k),
                        "relevant": int(relevant.sum()),
                        "chance": float(relevant.mean()),
                    }
                )
    return pl.DataFrame(records)


def summarise(table: pl.DataFrame, by: Sequence[str] = ("condition", "method")) -> pl.DataFrame:
    """Mean of every metric over the briefs, per group."""
    metrics = [c for c in table.columns if c.startswith(("ndcg@", "precision@"))]
    return (
        table.group_by(list(by), maintain_order=True)
        .agg(
            *[pl.col(m).mean() for m in metrics],
            *([pl.col("chance").mean()] if "chance" in table.columns else []),
            pl.len().alias("briefs"),
        )
        .sort(list(by), maintain_order=True)
    )


def paired_differences(
    table: pl.DataFrame,
    reference: str,
    method: str = "audience fit (audiencefit)",
    keys: Sequence[str] = ("category", "language", "condition"),
) -> pl.DataFrame:
    """Per backend and condition: mean over briefs of (backend − ``reference``) on each metric, with its standard
    error (paired by brief: the briefs vary far more than the backends, so unpaired means hide real gaps).

    ``keys`` name one query (a brief here; a world segment in ``audiencefit.training.backend_eval``) under one
    condition.
    """
    metrics = [c for c in table.columns if c.startswith(("recall@", "ndcg@", "precision@"))]
    keys = list(keys)
    rows = table.filter(pl.col("method") == method)
    ref = rows.filter(pl.col("backend") == reference).select(*keys, *[pl.col(m).alias(f"{m} ref") for m in metrics])
    joined = rows.filter(pl.col("backend") != reference).join(ref, on=keys, how="inner")
    diffs = [(pl.col(m) - pl.col(f"{m} ref")).alias(m) for m in metrics]
    return (
        joined.select("backend", "condition", *diffs)
        .group_by("backend", "condition", maintain_order=True)
        .agg(
            *[pl.col(m).mean().alias(f"{m} − {reference}") for m in metrics],
            *[(pl.col(m).std() / pl.len().sqrt()).alias(f"{m} se") for m in metrics],
            pl.len().alias("briefs"),
        )
        .sort("backend", "condition", maintain_order=True)
    )


def markdown(table: pl.DataFrame) -> str:
    """A table as GitHub markdown (floats with 3 decimals)."""
    head = "| " + " | ".join(table.columns) + " |\n|" + "---|" * len(table.columns) + "\n"
    lines = [
        "| " + " | ".join(f"{v:.3f}" if isinstance(v, float) else str(v) for v in row) + " |"
        for row in table.iter_rows()
    ]
    return head + "\n".join(lines) + "\n"


def add_query_models_option(parser: argparse.ArgumentParser) -> None:
    """``--query-models``: evaluate each feature set once per query transformer (this module's and backend_eval's)."""
    parser.add_argument(
        "--query-models",
        nargs="+",
        choices=["int8", "fp32"],
        help="Evaluate each feature set once per query transformer (minilm-aligned's query_model setting); "
        "default: the setting's only.",
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument(
        "--features",
        type=Path,
        nargs="+",
        required=True,
        help="Feature set(s) of one export, e.g. one per embedding backend (the backend is read from each).",
    )
    parser.add_argument(
        "--truth", type=Path, required=True, help="Category truth parquet: creator_id, category[, primary]."
    )
    parser.add_argument("--k", type=int, default=50, help="Cut-off of NDCG@k and precision@k (default 50).")
    parser.add_argument("--by-language", action="store_true", help="Also break the means down by brief language.")
    parser.add_argument("--json", type=Path, default=None, help="Also write every per-brief row to this JSON file.")
    add_query_models_option(parser)
    args = parser.parse_args(argv)
    if args.k < 1:
        parser.error("--k must be at least 1")
    from audiencefit.models.query import query_variants

    try:
        truth = read_truth(args.truth)
        tables = []
        for path in args.features:
            fs = load_feature_set(path)
            for backend, embedder in query_variants(fs, args.query_models):
                table = evaluate_categories(fs, truth, embedder, k=args.k)
                tables.append(table.with_columns(pl.lit(backend).alias("backend")))
    except InputError as exc:
        sys.stderr.write(f"error: {exc}\n")
        return 2
    full = pl.concat(tables)
    if args.json:
        full.write_json(args.json)
    sys.stdout.write(markdown(summarise(full, ("backend", "condition", "method"))))
    if args.by_language:
        sys.stdout.write("\n" + markdown(summarise(full, ("backend", "language", "condition", "method"))))
    backends = full["backend"].unique(maintain_order=True).to_list()
    if len(backends) > 1:
        sys.stdout.write("\n" + markdown(paired_differences(full, backends[0])))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
