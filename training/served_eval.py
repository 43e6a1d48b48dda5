"""The forecasts' error on the population the service ranks, in a synthetic world (issue #18, section 1).

The test split measures the models on creators marketers picked in the past. The service applies them to what
retrieval picks: for each brand of the world, the top-N candidates ``AudienceSearch`` returns (default filters),
scored by ``audiencefit.models.scoring.score_creators`` — the one scoring path of the API, the batch jobs and the
planner. Here those forecasts are compared with the world's truth (``audiencefit.training.world_truth``), for the
segment each creator was matched to (``matched_segment``, the pair the forecast is for):

- ``served_sigma_log_conv`` / ``served_sigma_log_er``: standard deviation of log(predicted / true expected) after
  removing each brand's median (what ranking within a brand sees; ``audiencefit.training.plan_eval``'s "model σ");
  ``served_sd_log_*``: the raw standard deviation; ``served_bias_log_*``: the mean of log(predicted / true).
- ``served_ndcg20``: NDCG@20 per brand of the ranking by predicted conversions, gains = true expected
  conversions, averaged over brands.
- ``served_coverage_conv_p10_p90`` / ``served_coverage_er_p10_p90``: share of realised outcomes inside the
  forecast's p10–p90 band (0.8 when calibrated). A band is for a realised outcome, so each candidate's campaign is
  drawn once with ``world_truth.draw_outcomes`` (fixed seed) starting at the world's export; outcomes the draw
  leaves untracked (as brands do) are left out.

    python -m audiencefit.training.served_eval --world DIR --features DIR --bundle DIR [--candidates 300] [--seed N]
        [--out FILE]
"""

from __future__ import annotations

import argparse
import logging
import math
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from audiencefit.features.errors import InputError
from audiencefit.features.featureset import FeatureSet, load_feature_set
from audiencefit.models.estimators import ModelSet
from audiencefit.models.index import default_index_dir, load_index
from audiencefit.models.pair_features import BrandQuery
from audiencefit.models.query import Filters, Segment, embed_segments, query_embedder
from audiencefit.models.retrieval import AudienceSearch
from audiencefit.models.scoring import score_creators
from audiencefit.training.evaluate import ndcg
from audiencefit.training.world_truth import WorldTruth, draw_outcomes, load_truth, matched_truth

log = logging.getLogger(__name__)

DEFAULT_CANDIDATES = 300
DEFAULT_SEED = 0
NDCG_K = 20
PREFIX = "served_"
METRICS = (
    "sigma_log_conv",
    "sd_log_conv",
    "bias_log_conv",
    "sigma_log_er",
    "sd_log_er",
    "bias_log_er",
    "ndcg20",
    "coverage_conv_p10_p90",
    "coverage_er_p10_p90",
)
_FLOOR = 1e-9


@dataclass(frozen=True)
class ServedBrand:
    """One brand's request as the service would see it, its retrieved candidates and their scores."""

    brand_id: str
    segment_ids: list[str]
    query: BrandQuery
    rows: np.ndarray  # feature-set rows of the candidates, in retrieval order
    scored: pl.DataFrame  # score_creators' frame, one row per candidate in ``rows`` order


@dataclass(frozen=True)
class ServedPopulation:
    """Metrics on the served population (keys ``served_<metric>``), per brand, and per candidate."""

    metrics: dict[str, float]
    per_brand: pl.DataFrame
    candidates: pl.DataFrame
    seconds: float


def audience_search(fs: FeatureSet) -> AudienceSearch:
    """The service's search over the feature set and the index stored with it (``InputError`` without one)."""
    index_dir = default_index_dir(fs)
    if not index_dir.is_dir():
        raise InputError(f"the feature set has no index at {index_dir}: run `audiencefit index` first")
    return AudienceSearch(
        fs, load_index(fs, "audience", index_dir), load_index(fs, "content", index_dir), query_embedder(fs)
    )


def served_candidates(
    world: Path, truth: WorldTruth, fs: FeatureSet, search: AudienceSearch, models: ModelSet, n: int
) -> Iterator[ServedBrand]:
    """For every brand of the world (segments in segment_id order), the top ``n`` candidates of the search with
    default filters, scored as the API scores them: the brand asks with its segments, description, handles and
    hashtags. Brands whose search comes back empty are skipped."""
    brands = {r["brand_id"]: r for r in pl.read_parquet(world / "brands.parquet").iter_rows(named=True)}
    for brand_id, segs in truth.segments.sort("segment_id").group_by("brand_id", maintain_order=True):
        brand = str(brand_id[0])
        segments = [
            Segment(
                text=r["description"],
                weight=r["weight"],
                countries=tuple((r["countries"] or "").split()),
                segment_id=r["segment_id"],
            )
            for r in segs.iter_rows(named=True)
        ]
        found = search.search(segments, Filters(), n)
        if found.empty_reason:
            continue
        info = brands.get(brand, {})
        description = (info.get("description") or "").strip()
        brand_vector = embed_segments([Segment(text=description)], search.embedder)[0] if description else None
        terms = tuple(
            t.lower().lstrip("@#") for field in ("handles", "hashtags") for t in (info.get(field) or "").split()
        )
        query = BrandQuery(
            found.segments,
            found.segment_vectors,
            brand_vector=brand_vector if brand_vector is not None and brand_vector.any() else None,
            brand_terms=terms,
        )
        scored = score_creators(fs, models, query, found.rows)
        yield ServedBrand(brand, [s.segment_id or "" for s in segments], query, found.rows, scored)


def _brand_truth(truth: WorldTruth, served: ServedBrand, rng: np.random.Generator | None) -> pl.DataFrame:
    """Per candidate: the forecasts, the truth for its matched segment and (with ``rng``) one drawn campaign."""
    scored = served.scored
    ids = scored["creator_id"].to_list()
    matched = scored["matched_segment"].to_list()
    true_conv, true_er = matched_truth(truth, served.brand_id, matched, ids)
    drawn_conv = np.full(len(ids), np.nan)
    drawn_er = np.full(len(ids), np.nan)
    position = {c: i for i, c in enumerate(ids)}
    if rng is not None:
        for segment_id in dict.fromkeys(matched):  # first-seen order: deterministic draws
            members = [c for c, s in zip(ids, matched, strict=True) if s == segment_id]
            at = np.array([position[c] for c in members], dtype=np.int64)
            drawn = draw_outcomes(truth, served.brand_id, segment_id, members, truth.export_day, rng)
            followers = truth.followers[truth.rows(members)].astype(np.float64)
            drawn_conv[at] = drawn["conversions"].cast(pl.Float64).fill_null(np.nan).to_numpy()
            interactions = (drawn["likes"] + drawn["comments"]).cast(pl.Float64).fill_null(np.nan).to_numpy()
            drawn_er[at] = interactions / np.maximum(followers, 1.0)
    return pl.DataFrame(
        {
            "brand_id": [served.brand_id] * len(ids),
            "creator_id": ids,
            "matched_segment": matched,
            "rank": np.arange(1, len(ids) + 1),
            "pred_conv": scored["conversions"].to_numpy(),
            "pred_conv_p10": scored["conversions_p10"].to_numpy(),
            "pred_conv_p90": scored["conversions_p90"].to_numpy(),
            "true_conv": true_conv,
            "drawn_conv": drawn_conv,
            "pred_er": scored["engagement_rate"].to_numpy(),
            "pred_er_p10": scored["engagement_rate_p10"].to_numpy(),
            "pred_er_p90": scored["engagement_rate_p90"].to_numpy(),
            "true_er": true_er,
            "drawn_er": drawn_er,
        }
    )


def _log_ratio(pred: np.ndarray, true: np.ndarray) -> np.ndarray:
    out: np.ndarray = np.log(np.maximum(pred, _FLOOR) / np.maximum(true, _FLOOR))
    return out


def _coverage(lo: np.ndarray, hi: np.ndarray, drawn: np.ndarray) -> float:
    seen = np.isfinite(drawn)
    if not seen.any():
        return float("nan")
    return float(np.mean((drawn[seen] >= lo[seen]) & (drawn[seen] <= hi[seen])))


def log_error(frame: pl.DataFrame, kind: str) -> dict[str, float]:
    """``sigma_log_<kind>`` (each brand's median removed), ``sd_log_<kind>`` and ``bias_log_<kind>`` of
    log(pred_<kind> / true_<kind>) over the rows of ``frame`` (columns brand_id, pred_<kind>, true_<kind>)."""
    if frame.height == 0:
        raise InputError("no forecasts to compare with the truth")
    centred, raw = [], []
    for _, group in frame.group_by("brand_id", maintain_order=True):
        ratio = _log_ratio(group[f"pred_{kind}"].to_numpy(), group[f"true_{kind}"].to_numpy())
        centred.append(ratio - np.median(ratio))
        raw.append(ratio)
    every = np.concatenate(raw)
    return {
        f"sigma_log_{kind}": float(np.std(np.concatenate(centred))),
        f"sd_log_{kind}": float(np.std(every)),
        f"bias_log_{kind}": float(np.mean(every)),
    }


def population_metrics(candidates: pl.DataFrame, prefix: str = PREFIX) -> tuple[dict[str, float], pl.DataFrame]:
    """The metrics of the module docstring, named ``<prefix><metric>``, and one row per brand, from per-candidate
    forecasts, truth and realised outcomes (columns of :func:`_brand_truth`: brand_id, pred_/true_/drawn_ conv and
    er, pred_*_p10/p90; a realised outcome may be NaN)."""
    if candidates.height == 0:
        raise InputError("no served candidates to evaluate")
    rows: list[dict[str, Any]] = []
    for (brand_id,), group in candidates.group_by("brand_id", maintain_order=True):
        row: dict[str, Any] = {"brand_id": brand_id, "candidates": group.height}
        for kind in ("conv", "er"):
            error = log_error(group, kind)
            row[f"sigma_log_{kind}"] = error[f"sigma_log_{kind}"]
            row[f"bias_log_{kind}"] = error[f"bias_log_{kind}"]
            row[f"coverage_{kind}_p10_p90"] = _coverage(
                group[f"pred_{kind}_p10"].to_numpy(),
                group[f"pred_{kind}_p90"].to_numpy(),
                group[f"drawn_{kind}"].to_numpy(),
            )
        row["ndcg20"] = ndcg(group["pred_conv"].to_numpy(), group["true_conv"].to_numpy(), NDCG_K)
        row["true_conv_mean"] = float(group["true_conv"].mean() or 0.0)  # type: ignore[arg-type]
        row["pred_conv_mean"] = float(group["pred_conv"].mean() or 0.0)  # type: ignore[arg-type]
        rows.append(row)
    per_brand = pl.DataFrame(rows)
    metrics: dict[str, float] = {}
    for kind in ("conv", "er"):
        metrics.update(log_error(candidates, kind))
        metrics[f"coverage_{kind}_p10_p90"] = _coverage(
            candidates[f"pred_{kind}_p10"].to_numpy(),
            candidates[f"pred_{kind}_p90"].to_numpy(),
            candidates[f"drawn_{kind}"].to_numpy(),
        )
    brand_ndcgs = per_brand["ndcg20"].to_numpy()
    metrics["ndcg20"] = float(np.nanmean(brand_ndcgs)) if np.isfinite(brand_ndcgs).any() else float("nan")
    ordered = {f"{prefix}{name}": metrics[name] for name in METRICS}
    return ordered, per_brand


def served_population(
    world: Path,
    fs: FeatureSet,
    models: ModelSet,
    *,
    search: AudienceSearch | None = None,
    candidates: int = DEFAULT_CANDIDATES,
    seed: int = DEFAULT_SEED,
) -> ServedPopulation:
    """Retrieve, score and compare with the truth for every brand of ``world`` (see the module docstring).

    Coverage needs outcomes drawn from the truth; a world generated before the truth held what a draw needs
    (``world_truth.DRAW_COLUMNS``) gets NaN coverage and the other metrics."""
    if candidates < 1:
        raise InputError(f"candidates must be at least 1, got {candidates}")
    started = time.perf_counter()
    truth = load_truth(world)
    search = search or audience_search(fs)
    rng = np.random.default_rng(seed) if truth.er_real is not None else None
    if rng is None:
        log.warning("served population: this world cannot draw outcomes (old truth/); coverage left out")
    frames = [
        _brand_truth(truth, served, rng) for served in served_candidates(world, truth, fs, search, models, candidates)
    ]
    if not frames:
        raise InputError(f"no brand of {world} retrieved any candidate")
    every = pl.concat(frames)
    metrics, per_brand = population_metrics(every)
    return ServedPopulation(metrics, per_brand, every, time.perf_counter() - started)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--world", type=Path, required=True)
    parser.add_argument("--features", type=Path, required=True)
    parser.add_argument("--bundle", type=Path, required=True)
    parser.add_argument("--candidates", type=int, default=DEFAULT_CANDIDATES)
    parser.add_argument(
        "--seed",
        type=int,
        default=None,
        help="Seed of the drawn outcomes (coverage); default: the settings' seed, as training uses.",
    )
    parser.add_argument("--out", type=Path, default=None, help="Write the per-candidate rows as parquet.")
    args = parser.parse_args(argv)
    from audiencefit.models.bundle import load_bundle
    from audiencefit.settings import get_settings

    seed = get_settings().seed if args.seed is None else args.seed
    fs = load_feature_set(args.features)
    result = served_population(args.world, fs, load_bundle(args.bundle).models, candidates=args.candidates, seed=seed)
    if args.out is not None:
        result.candidates.write_parquet(args.out)
    for name, value in result.metrics.items():
        sys.stdout.write(f"{name}\t{value:.4f}\n" if math.isfinite(value) else f"{name}\t\n")
    sys.stdout.write(f"brands\t{result.per_brand.height}\nseconds\t{result.seconds:.1f}\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
