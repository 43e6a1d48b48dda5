"""Retrieval quality and end-to-end search latency on a generated world's feature set.

Quality: ``audiencefit.training.retrieval_eval.evaluate_retrieval`` (recall@100 and NDCG@50 of the truly best-fitting
creators per segment, every segment of the world as a query) for audiencefit and the baselines on the same
queries; audiencefit must beat every baseline on both metrics. Latency: ``AudienceSearch.search`` for two-segment
queries (a brand's segments, with their target countries, default filters), including embedding the segment texts,
as the service answers them; the embedding share is timed separately.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from benchmarks.common import Goal, Results, console, fmt, latency_ms, print_table, stopwatch

AUDIENCEFIT = "audience fit (audiencefit)"


@dataclass(frozen=True)
class RetrievalBenchConfig:
    """The feature set to evaluate, the world (with ``truth/``) it was built from, and latency samples."""

    features: Path
    world: Path
    repeats: int = 100
    k: int = 50
    budget_s: float = 60.0  # stop timing after this long (a loaded machine makes each call slow), min 20 calls


def two_segment_queries(world: Path) -> list[list[Any]]:
    """Per brand with at least two segments, its first two as :class:`audiencefit.models.query.Segment` (with
    countries)."""
    from audiencefit.models.query import Segment

    seg = pl.read_parquet(world / "segments.parquet").sort("segment_id")
    queries = []
    for _, group in seg.group_by("brand_id", maintain_order=True):
        rows = group.head(2).to_dicts()
        if len(rows) == 2:
            queries.append(
                [
                    Segment(
                        text=r["description"],
                        weight=float(r["weight"] or 1.0),
                        countries=tuple((r["countries"] or "").split()),
                        segment_id=r["segment_id"],
                    )
                    for r in rows
                ]
            )
    return queries


def beats_baselines(table: pl.DataFrame) -> dict[str, dict[str, bool]]:
    """For each metric, whether audiencefit beats each baseline (strictly)."""
    from audiencefit.training.retrieval_eval import BASELINES

    metrics = [c for c in table.columns if c.startswith(("recall@", "ndcg@"))]
    by_method = {r["method"]: r for r in table.to_dicts()}
    ours = by_method[AUDIENCEFIT]
    return {m: {b: bool(ours[m] > by_method[b][m]) for b in BASELINES if b in by_method} for m in metrics}


def run_retrieval(config: RetrievalBenchConfig) -> Results:
    """Evaluate retrieval quality and time two-segment searches; prints both tables."""
    from audiencefit.features.featureset import load_feature_set
    from audiencefit.models.index import build_index
    from audiencefit.models.query import embed_segments, query_embedder
    from audiencefit.models.retrieval import AudienceSearch
    from audiencefit.settings import get_settings
    from audiencefit.training.retrieval_eval import evaluate_retrieval

    res = Results("retrieval", {"features": str(config.features), "world": str(config.world), "k": config.k})
    fs = load_feature_set(config.features)
    res.config |= {"feature_set_id": fs.feature_set_id, "embedder_id": fs.embedder_id, "creators": fs.creators.height}
    with stopwatch() as t_load:
        embedder = query_embedder(fs)
    with stopwatch() as t_eval:
        table = evaluate_retrieval(fs, config.world, embedder)
    res.results["evaluation"] = table.to_dicts()
    res.results["evaluation_s"] = t_eval["s"]
    res.results["embedder_load_s"] = t_load["s"]
    metrics = [c for c in table.columns if c.startswith(("recall@", "ndcg@"))]
    first = table.row(0, named=True)
    print_table(
        f"retrieval quality: {first['segments']} segments, {first['creators']:,} eligible creators "
        f"({fs.creators.height:,} in the feature set)",
        ("method", *metrics),
        [(r["method"], *[fmt(r[m], ".4f") for m in metrics]) for r in table.to_dicts()],
    )
    wins = beats_baselines(table)
    res.results["beats_baselines"] = wins
    for metric, per_baseline in wins.items():
        ours = float(table.filter(pl.col("method") == AUDIENCEFIT)[metric][0])
        best_base = max(per_baseline, key=lambda b: float(table.filter(pl.col("method") == b)[metric][0]), default=None)
        best_value = float(table.filter(pl.col("method") == best_base)[metric][0]) if best_base else float("nan")
        res.goals.append(
            Goal(
                "retrieval",
                f"audiencefit beats every baseline on {metric}",
                f"{ours:.4f} vs best baseline {best_value:.4f} ({best_base})",
                all(per_baseline.values()),
            )
        )

    # End-to-end search latency.
    settings = get_settings()
    with stopwatch() as t_index:
        search = AudienceSearch(
            fs, build_index(fs, "audience", settings), build_index(fs, "content", settings), embedder
        )
    queries = two_segment_queries(config.world)
    if not queries:
        console.print("retrieval: no brand with two segments in this world; latency not measured")
        return res
    for q in queries[:3]:
        search.search(q, k=config.k)  # warm-up
    total: list[float] = []
    embed: list[float] = []
    returned = []
    started = time.perf_counter()
    for i in range(config.repeats):
        if i >= 20 and time.perf_counter() - started > config.budget_s:
            break
        q = queries[i % len(queries)]
        t0 = time.perf_counter()
        found = search.search(q, k=config.k)
        total.append(time.perf_counter() - t0)
        returned.append(len(found))
        t0 = time.perf_counter()
        embed_segments(q, embedder)  # the query-embedding share of the call, timed on its own
        embed.append(time.perf_counter() - t0)
    lat, emb = latency_ms(total), latency_ms(embed)
    res.results["search"] = {
        "queries": len(queries),
        "calls": len(total),
        "k": config.k,
        "index_build_s": t_index["s"],
        "index_type": search.audience.index_type,
        "search_ms": lat,
        "embed_segments_ms": emb,
        "mean_returned": float(np.mean(returned)),
    }
    print_table(
        f"AudienceSearch.search, 2-segment queries ({len(queries)} brands, {len(total)} calls, k={config.k}, "
        f"{search.audience.index_type} index over {fs.creators.height:,} creators)",
        ("part", "p50 ms", "p95 ms", "p99 ms", "mean ms"),
        [
            ("search (end to end)", *[fmt(lat[q], ".1f") for q in ("p50", "p95", "p99", "mean")]),
            ("of which: embed 2 segment texts", *[fmt(emb[q], ".1f") for q in ("p50", "p95", "p99", "mean")]),
        ],
    )
    res.goals.append(
        Goal(
            "retrieval",
            "2-segment AudienceSearch.search latency (no target)",
            f"p50 {lat['p50']:.1f} ms, p95 {lat['p95']:.1f} ms ({fs.creators.height:,} creators)",
            None,
        )
    )
    return res
