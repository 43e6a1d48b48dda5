"""How low can the conversion error on the served population go with today's features? (issue #18)

``audiencefit.training.served_eval`` measures the served model's error on the candidates the service ranks. This asks
what a model could reach there *if it had the labels it lacks*: for every brand of a synthetic world, the top-N
candidates of the search (as served_eval picks them) get their pair features (``audiencefit.models.pair_features``, the
model's inputs, for the matched segment) and their true expected conversions from the world's truth — labels
without noise, on exactly the population served. A LightGBM regression of log(true conversions) on the features
is then scored out of fold:

- ``by_brand``: folds of whole brands — a brand the model never saw, as a new client is;
- ``by_creator``: random folds of candidates with the brand as a categorical feature — the brands recur, as in
  ``audiencefit simulate``'s rounds.

Each gives ``sigma_log_conv`` (each brand's median removed, as ``served_sigma_log_conv``) and ``bias_log_conv``.
No loop, weighting or amount of campaign data can bring a model with these inputs below these figures on this
population: they are a floor set by the features, the noise-free labels and the trees (a lower bound only for
this model family; a better learner could go lower). Beside them, the served model's own error on the same rows.

    python -m audiencefit.training.feature_ceiling --world DIR --features DIR --bundle DIR [--candidates 300]
        [--folds 5]
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import polars as pl

from audiencefit.features.errors import InputError
from audiencefit.features.featureset import FeatureSet, load_feature_set
from audiencefit.models.estimators import ModelSet
from audiencefit.models.pair_features import FEATURE_COLUMNS, pair_features
from audiencefit.training.served_eval import DEFAULT_CANDIDATES, audience_search, log_error, served_candidates
from audiencefit.training.world_truth import load_truth, matched_truth

ROUNDS = 400
_FLOOR = 1e-9


@dataclass(frozen=True)
class Ceiling:
    rows: int
    brands: int
    metrics: dict[str, float]  # <scheme>_sigma_log_conv, <scheme>_bias_log_conv for served, by_brand, by_creator


def served_rows(world: Path, fs: FeatureSet, models: ModelSet, candidates: int) -> pl.DataFrame:
    """Per served candidate: brand_id, the model's inputs for its matched segment, the served prediction
    (``pred_conv``) and the truth (``true_conv``)."""
    truth = load_truth(world)
    frames = []
    for served in served_candidates(world, truth, fs, audience_search(fs), models, candidates):
        matched = served.scored["matched_segment"].to_list()
        position = {s.segment_id: i for i, s in enumerate(served.query.segments)}
        seg_idx = np.array([position[m] for m in matched], dtype=np.int64)
        true, _ = matched_truth(truth, served.brand_id, matched, served.scored["creator_id"].to_list())
        frames.append(
            pair_features(fs, served.rows, seg_idx, served.query)
            .select(FEATURE_COLUMNS)
            .with_columns(
                brand_id=pl.lit(served.brand_id),
                pred_conv=served.scored["conversions"],
                true_conv=pl.Series(true),
            )
        )
    if not frames:
        raise InputError(f"no brand of {world} retrieved any candidate")
    return pl.concat(frames)


def _spread(log_pred: np.ndarray, log_true: np.ndarray, brands: np.ndarray) -> tuple[float, float]:
    """σ (each brand's median removed) and bias of log(pred / true), as ``served_eval.log_error`` reads them."""
    error = log_error(
        pl.DataFrame({"brand_id": brands, "pred_conv": np.exp(log_pred), "true_conv": np.exp(log_true)}), "conv"
    )
    return error["sigma_log_conv"], error["bias_log_conv"]


def _fit_predict(
    x: np.ndarray, y: np.ndarray, train: np.ndarray, seed: int, categorical: list[int], rounds: int
) -> np.ndarray:
    import lightgbm as lgb

    from audiencefit.models.estimators import _lgb_params

    params = _lgb_params("regression", seed)
    data = lgb.Dataset(x[train], y[train], categorical_feature=categorical or "auto", free_raw_data=False)
    booster = lgb.train(params, data, num_boost_round=rounds)
    return np.asarray(booster.predict(x[~train]))


def ceiling(frame: pl.DataFrame, folds: int = 5, seed: int = 0, rounds: int = ROUNDS) -> Ceiling:
    """The out-of-fold error of a model trained on the served population's true conversions (module docstring)."""
    if folds < 2:
        raise InputError(f"folds must be at least 2, got {folds}")
    brands = frame["brand_id"].to_numpy()
    unique = np.unique(brands)
    if len(unique) < folds:
        raise InputError(f"{len(unique)} brands cannot make {folds} folds of whole brands")
    x = frame.select(FEATURE_COLUMNS).cast(pl.Float64).to_numpy()
    y = np.log(np.maximum(frame["true_conv"].to_numpy(), _FLOOR))
    rng = np.random.default_rng(seed)
    metrics: dict[str, float] = {}
    served = np.log(np.maximum(frame["pred_conv"].to_numpy(), _FLOOR))
    metrics["served_sigma_log_conv"], metrics["served_bias_log_conv"] = _spread(served, y, brands)
    by_brand = np.zeros_like(y)
    for held in np.array_split(rng.permutation(unique), folds):
        test = np.isin(brands, held)
        by_brand[test] = _fit_predict(x, y, ~test, seed, [], rounds)
    metrics["by_brand_sigma_log_conv"], metrics["by_brand_bias_log_conv"] = _spread(by_brand, y, brands)
    codes = np.searchsorted(unique, brands).astype(np.float64)
    xb = np.column_stack([x, codes])
    by_creator = np.zeros_like(y)
    for held in np.array_split(rng.permutation(len(y)), folds):
        test = np.zeros(len(y), dtype=bool)
        test[held] = True
        by_creator[test] = _fit_predict(xb, y, ~test, seed, [xb.shape[1] - 1], rounds)
    metrics["by_creator_sigma_log_conv"], metrics["by_creator_bias_log_conv"] = _spread(by_creator, y, brands)
    return Ceiling(frame.height, len(unique), metrics)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--world", type=Path, required=True, help="A synthetic world with its truth/.")
    parser.add_argument("--features", type=Path, required=True, help="Its feature set, with the index.")
    parser.add_argument("--bundle", type=Path, required=True, help="The served model (picks the candidates).")
    parser.add_argument("--candidates", type=int, default=DEFAULT_CANDIDATES, help="Top-N candidates per brand.")
    parser.add_argument("--folds", type=int, default=5, help="Cross-validation folds (at least 2).")
    parser.add_argument("--seed", type=int, default=0, help="Seed of the folds and the fits.")
    args = parser.parse_args(argv)
    if args.candidates < 1:
        parser.error("--candidates must be at least 1")
    from audiencefit.models.bundle import load_bundle

    fs = load_feature_set(args.features)
    frame = served_rows(args.world, fs, load_bundle(args.bundle).models, args.candidates)
    result = ceiling(frame, args.folds, args.seed)
    sys.stdout.write(f"rows\t{result.rows}\nbrands\t{result.brands}\n")
    for name, value in result.metrics.items():
        sys.stdout.write(f"{name}\t{value:.4f}\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
