"""Retrieval of a synthetic world per embedding backend, with segments sent as a marketer would send a brief.

``audiencefit.training.retrieval_eval`` asks each segment's own text. Here the same truth (``truth/fit.parquet``) is
asked three ways, the conditions of ``audiencefit.training.category_eval`` on real data:

- ``audience clause``: the segment's description alone (``retrieval_eval``'s query);
- ``brief``: the brand's description (what it sells) and the segment's description as one text;
- ``brief + audience clause``: two segments of equal weight, the segment's description and that one text.

Metrics are those of ``retrieval_eval`` (recall@100 of the truly best-fitting creators, NDCG@50 graded by true
fit) over the creators in the default follower range, for audiencefit's audience fit and content similarity.

    python -m audiencefit.training.backend_eval --world DIR --features DIR [DIR ...]

Each feature set is one build of the world with one backend (``audiencefit features build --embedder``). With
several, it also prints each backend's paired difference to the first one given (audience fit; mean over the
world's segments and its standard error).
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
from audiencefit.training.category_eval import (
    CONDITIONS,
    add_query_models_option,
    markdown,
    paired_differences,
    score_content,
)
from audiencefit.training.retrieval_eval import ScoreFn, load_world_queries, ndcg_at, recall_at, score_audience

METHODS: dict[str, ScoreFn] = {"audience fit (audiencefit)": score_audience, "content similarity": score_content}


def brand_briefs(world_dir: Path, segments: Sequence[Segment]) -> list[str]:
    """For each segment, its brand's description and its own description as one text (the brief)."""
    seg = pl.read_parquet(world_dir / "segments.parquet", columns=["segment_id", "brand_id"])
    brands = pl.read_parquet(world_dir / "brands.parquet", columns=["brand_id", "description"])
    by_segment = dict(seg.join(brands, on="brand_id", how="left").select("segment_id", "description").iter_rows())
    return [" ".join(t for t in (by_segment.get(s.segment_id) or "", s.text) if t).strip() for s in segments]


def query_segments(segment: Segment, brief: str, condition: str) -> list[Segment]:
    """The segments one world segment is sent as under ``condition``."""
    countries = segment.countries
    if condition == "audience clause":
        return [segment]
    if condition == "brief":
        return [Segment(text=brief, weight=1.0, countries=countries)]
    if condition == "brief + audience clause":
        return [
            Segment(text=segment.text, weight=1.0, countries=countries),
            Segment(text=brief, weight=1.0, countries=countries),
        ]
    raise ValueError(f"unknown condition {condition!r}; expected one of {', '.join(CONDITIONS)}")


def evaluate_segments(
    fs: FeatureSet,
    world_dir: Path,
    embedder: Embedder,
    *,
    methods: dict[str, ScoreFn] | None = None,
    conditions: Sequence[str] = CONDITIONS,
    k_recall: int = 100,
    k_ndcg: int = 50,
) -> pl.DataFrame:
    """One row per condition, method and world segment: recall@k and NDCG@k of that segment's ranking."""
    queries = load_world_queries(fs, world_dir)
    briefs = brand_briefs(world_dir, queries.segments)
    records = []
    for condition in conditions:
        for name, method in (methods or METHODS).items():
            for i, segment in enumerate(queries.segments):
                segs = query_segments(segment, briefs[i], condition)
                vecs = embed_segments(segs, embedder)
                weights = np.array([s.weight for s in segs], dtype=np.float64)
                scores = weights @ method(fs, segs, vecs, queries.rows) / weights.sum()
                gains = queries.truth[i]
                pred = np.lexsort((np.arange(len(gains)), -scores))
                records.append(
                    {
                        "condition": condition,
                        "method": name,
                        "segment": segment.segment_id or str(i),
                        f"recall@{k_recall}": recall_at(pred, np.argsort(-gains, kind="stable"), k_recall),
                        f"ndcg@{k_ndcg}": ndcg_at(pred, gains, k_ndcg),
                    }
                )
    return pl.DataFrame(records)


def summarise_segments(per_segment: pl.DataFrame) -> pl.DataFrame:
    """Mean of every metric over the segments, per condition and method (in the order first seen)."""
    metrics = [c for c in per_segment.columns if c.startswith(("recall@", "ndcg@"))]
    return per_segment.group_by("condition", "method", maintain_order=True).agg(
        *[pl.col(m).mean() for m in metrics], pl.len().alias("segments")
    )


def evaluate_conditions(
    fs: FeatureSet,
    world_dir: Path,
    embedder: Embedder,
    *,
    methods: dict[str, ScoreFn] | None = None,
    conditions: Sequence[str] = CONDITIONS,
    k_recall: int = 100,
    k_ndcg: int = 50,
) -> pl.DataFrame:
    """Mean recall@k and NDCG@k over the world's segments, per condition and method."""
    per_segment = evaluate_segments(
        fs, world_dir, embedder, methods=methods, conditions=conditions, k_recall=k_recall, k_ndcg=k_ndcg
    )
    return summarise_segments(per_segment)


def paired_by_segment(per_segment: pl.DataFrame, reference: str) -> pl.DataFrame:
    """Each backend's mean difference to ``reference`` over the same segments (audience fit), with its standard
    error: the segments vary far more than the backends, so unpaired means hide real gaps."""
    return paired_differences(per_segment, reference, keys=("segment", "condition")).rename({"briefs": "segments"})


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--world", type=Path, required=True, help="A synthetic world with its truth/.")
    parser.add_argument(
        "--features", type=Path, nargs="+", required=True, help="Feature set(s) of that world, one per backend."
    )
    add_query_models_option(parser)
    args = parser.parse_args(argv)
    from audiencefit.models.query import query_variants

    if not (args.world / "truth" / "fit.parquet").is_file():
        parser.error(f"--world {args.world}: no truth/fit.parquet (a world written by audiencefit demo-data)")
    try:
        tables = []
        for path in args.features:
            fs = load_feature_set(path)
            for backend, embedder in query_variants(fs, args.query_models):
                table = evaluate_segments(fs, args.world, embedder)
                tables.append(table.select(pl.lit(backend).alias("backend"), pl.all()))
    except InputError as exc:
        sys.stderr.write(f"error: {exc}\n")
        return 2
    full = pl.concat(tables)
    backends = full["backend"].unique(maintain_order=True).to_list()
    summary = pl.concat(
        summarise_segments(full.filter(pl.col("backend") == b).drop("backend")).select(
            pl.lit(b).alias("backend"), pl.all()
        )
        for b in backends
    )
    sys.stdout.write(markdown(summary))
    if len(backends) > 1:
        sys.stdout.write("\n" + markdown(paired_by_segment(full, backends[0])))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
