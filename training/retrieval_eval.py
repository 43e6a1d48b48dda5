"""Retrieval evaluation on a synthetic world's truth: does a ranking find the creators whose audience really fits?

For every segment of the world, creators in the default follower range are ranked by a method's score and
compared with ``truth/fit.parquet``: recall@100 (share of the 100 truly best-fitting creators found in the top
100) and NDCG@50 (graded by true fit). The same queries are answered by the honest baselines: bio-only similarity
(what the public peer does), hashtag/keyword match, most-followed-first, and content similarity.

Only evaluation reads ``truth/``; the pipeline never does.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import polars as pl

from audiencefit.features.embed import Embedder
from audiencefit.features.featureset import FeatureSet
from audiencefit.features.text import prepare_text, tag_words
from audiencefit.models.pair_features import BrandQuery, country_factors, fit_scores, segment_cluster_membership
from audiencefit.models.query import Filters, Segment, allowed_mask, embed_segments

_STOP = frozenset(
    "the and for who with their them they that this from into about love want wants like likes people "
    "young adults audience fans lovers enthusiasts interested looking ".split()
)


def recall_at(pred_rows: np.ndarray, true_rows: np.ndarray, k: int) -> float:
    """Share of the k truly best rows found among the k predicted best."""
    return len(set(pred_rows[:k].tolist()) & set(true_rows[:k].tolist())) / max(min(k, len(true_rows)), 1)


def ndcg_at(pred_order: np.ndarray, gains: np.ndarray, k: int) -> float:
    """NDCG@k of an ordering of row positions, graded by ``gains`` (indexed by position)."""
    discounts = 1.0 / np.log2(np.arange(2, k + 2))
    top = pred_order[:k]
    dcg = float(np.sum(gains[top] * discounts[: len(top)]))
    ideal = np.sort(gains)[::-1][:k]
    idcg = float(np.sum(ideal * discounts[: len(ideal)]))
    return dcg / idcg if idcg > 0 else 0.0


@dataclass(frozen=True)
class WorldQueries:
    """The world's segments as queries, and the true fit of every eligible creator for each."""

    segments: list[Segment]
    rows: np.ndarray  # eligible feature set rows
    truth: np.ndarray  # (n_segments, n_rows) true fit


def load_world_queries(fs: FeatureSet, world_dir: Path, filters: Filters | None = None) -> WorldQueries:
    seg = pl.read_parquet(world_dir / "segments.parquet").sort("segment_id")
    segments = [
        Segment(
            text=r["description"],
            weight=1.0,
            countries=tuple((r["countries"] or "").split()),
            segment_id=r["segment_id"],
        )
        for r in seg.iter_rows(named=True)
    ]
    rows = np.flatnonzero(allowed_mask(fs, filters or Filters()))
    ids = fs.creators["creator_id"].gather(rows)
    fit = pl.read_parquet(world_dir / "truth" / "fit.parquet", columns=["segment_id", "creator_id", "true_fit"])
    matrix = (
        fit.filter(pl.col("creator_id").is_in(ids.implode()))
        .pivot(on="segment_id", index="creator_id", values="true_fit")
        .join(pl.DataFrame({"creator_id": ids}), on="creator_id", how="right")
    )
    truth = np.stack([matrix[s.segment_id or ""].fill_null(0.0).to_numpy() for s in segments]).astype(np.float64)
    return WorldQueries(segments, rows, truth)


ScoreFn = Callable[[FeatureSet, list[Segment], np.ndarray, np.ndarray], np.ndarray]


def _geo(fs: FeatureSet, segments: list[Segment], rows: np.ndarray) -> np.ndarray:
    return np.stack([country_factors(fs, rows, s.countries) for s in segments])


def score_audience(fs: FeatureSet, segments: list[Segment], seg_vecs: np.ndarray, rows: np.ndarray) -> np.ndarray:
    """audiencefit's audience fit: real-audience-weighted similarity × target-country share (as the service)."""
    scores = fit_scores(fs, rows, BrandQuery(segments, seg_vecs))
    return np.asarray((scores.fit * scores.country).T)


def score_audience_share(fs: FeatureSet, segments: list[Segment], seg_vecs: np.ndarray, rows: np.ndarray) -> np.ndarray:
    """Estimated share of the audience in the segment (interest-cluster distribution) × country share."""
    membership = segment_cluster_membership(seg_vecs, fs.centroids)
    return np.asarray((membership @ np.asarray(fs.audience_dist[rows]).T) * _geo(fs, segments, rows))


def _cosine_scorer(matrix: str) -> ScoreFn:
    def score(fs: FeatureSet, segments: list[Segment], seg_vecs: np.ndarray, rows: np.ndarray) -> np.ndarray:
        return np.asarray(seg_vecs @ np.asarray(getattr(fs, matrix))[rows].T)

    return score


def score_keywords(fs: FeatureSet, segments: list[Segment], seg_vecs: np.ndarray, rows: np.ndarray) -> np.ndarray:
    """Hashtag/keyword match: Σ over the segment's words of log(1 + the creator's uses of hashtags holding it)."""
    ids = fs.creators["creator_id"].gather(rows)
    tags = fs.terms.filter((pl.col("kind") == "hashtag") & pl.col("creator_id").is_in(ids.implode()))
    tag_rows = [
        (cid, w, n)
        for cid, term, n in tags.select("creator_id", "term", "count").iter_rows()
        for w in {term, *tag_words(term)}
    ]
    counts: dict[str, dict[str, int]] = {}
    for cid, w, n in tag_rows:
        counts.setdefault(cid, {}).setdefault(w.lower(), 0)
        counts[cid][w.lower()] += int(n)
    out = np.zeros((len(segments), len(rows)))
    for i, seg in enumerate(segments):
        words = {w for w in re.findall(r"[^\W\d_]{3,}", prepare_text(seg.text).lower()) if w not in _STOP}
        for j, cid in enumerate(ids.to_list()):
            c = counts.get(cid)
            if c:
                out[i, j] = sum(np.log1p(c.get(w, 0)) for w in words)
    return out


def score_followers(fs: FeatureSet, segments: list[Segment], seg_vecs: np.ndarray, rows: np.ndarray) -> np.ndarray:
    followers = fs.creators["followers"].to_numpy()[rows].astype(np.float64)
    return np.tile(followers, (len(segments), 1))


METHODS: dict[str, ScoreFn] = {
    "audience fit (audiencefit)": score_audience,
    "audience share (clusters)": score_audience_share,
    "content similarity": _cosine_scorer("content"),
    "bio-only similarity (public peer)": _cosine_scorer("bio"),
    "hashtag/keyword match": score_keywords,
    "most-followed-first": score_followers,
}
BASELINES = ("bio-only similarity (public peer)", "hashtag/keyword match", "most-followed-first")


def evaluate_retrieval(
    fs: FeatureSet,
    world_dir: Path,
    embedder: Embedder,
    *,
    methods: dict[str, ScoreFn] | None = None,
    k_recall: int = 100,
    k_ndcg: int = 50,
) -> pl.DataFrame:
    """Mean recall@k and NDCG@k over the world's segments for each method (one row per method)."""
    queries = load_world_queries(fs, world_dir)
    seg_vecs = embed_segments(queries.segments, embedder)
    records = []
    for name, fn in (methods or METHODS).items():
        scores = fn(fs, queries.segments, seg_vecs, queries.rows)
        recalls, ndcgs = [], []
        for i in range(len(queries.segments)):
            gains = queries.truth[i]
            true_order = np.argsort(-gains, kind="stable")
            pred_order = np.lexsort((np.arange(len(gains)), -scores[i]))
            recalls.append(recall_at(pred_order, true_order, k_recall))
            ndcgs.append(ndcg_at(pred_order, gains, k_ndcg))
        records.append(
            {
                "method": name,
                f"recall@{k_recall}": float(np.mean(recalls)),
                f"ndcg@{k_ndcg}": float(np.mean(ndcgs)),
                "segments": len(queries.segments),
                "creators": len(queries.rows),
            }
        )
    return pl.DataFrame(records)


def main(argv: list[str] | None = None) -> int:
    """Command line: ``python -m audiencefit.training.retrieval_eval --features F --world W`` prints one row per
    method."""
    import argparse

    from audiencefit.features.featureset import load_feature_set
    from audiencefit.models.query import query_embedder

    parser = argparse.ArgumentParser(
        prog="python -m audiencefit.training.retrieval_eval",
        description="Recall@k and NDCG@k of audiencefit and the baselines on a synthetic world's truth.",
    )
    parser.add_argument("--features", type=Path, required=True, help="feature set built from the world (directory)")
    parser.add_argument("--world", type=Path, required=True, help="the generated world, with its truth/ directory")
    parser.add_argument("--k-recall", type=int, default=100, help="k of recall@k (default 100)")
    parser.add_argument("--k-ndcg", type=int, default=50, help="k of NDCG@k (default 50)")
    args = parser.parse_args(argv)
    if not (args.world / "truth" / "fit.parquet").is_file():
        parser.error(f"--world {args.world}: no truth/fit.parquet (only generated worlds carry their truth)")
    fs = load_feature_set(args.features)
    table = evaluate_retrieval(fs, args.world, query_embedder(fs), k_recall=args.k_recall, k_ndcg=args.k_ndcg)
    with pl.Config(tbl_rows=-1, tbl_cols=-1, tbl_width_chars=160, float_precision=4, tbl_hide_dataframe_shape=True):
        print(f"feature set {fs.feature_set_id} ({fs.embedder_id}), world {args.world}")  # noqa: T201
        print(table)  # noqa: T201
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
