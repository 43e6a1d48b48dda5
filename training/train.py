"""Train the engagement, conversion and price models from past campaigns, evaluate them, write a bundle.

``train_models`` is the whole job without tracking: point-in-time training set → time/creator-grouped split →
fit on the older campaigns → evaluation table against the baselines on the newer ones → bundle on disk. By default
the served model is the one evaluated (trained on the training split only), so the table describes exactly what
serves. With ``refit_all`` the model is fitted again on every campaign after the evaluation and that refit is what
the bundle holds: the newest campaigns (a team's latest recommendations, which the time split always puts in the
test split) then teach the served model too, at the price that the table describes the same recipe fitted on
fewer, older rows. The bundle's meta says which (``training.refit_all``). MLflow logging and registration
(``audiencefit.training.tracking``) wrap this.
"""

from __future__ import annotations

import hashlib
import logging
import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import polars as pl

from audiencefit.features.dataset import load_dataset
from audiencefit.features.embed import for_queries
from audiencefit.features.embed_cache import EmbeddingCache
from audiencefit.features.errors import InputError
from audiencefit.features.featureset import FeatureSet, load_feature_set
from audiencefit.models.bundle import FEATURE_SUMMARY, save_bundle
from audiencefit.models.drift import summarize_features
from audiencefit.models.estimators import ModelSet
from audiencefit.models.index import default_index_dir
from audiencefit.models.pair_features import FEATURE_COLUMNS
from audiencefit.models.query import query_embedder
from audiencefit.settings import Settings
from audiencefit.training.evaluate import (
    RecommendedEval,
    Split,
    beats_baselines,
    evaluation_table,
    price_metrics,
    recommended_metrics,
    time_group_split,
)
from audiencefit.training.served_eval import ServedPopulation, served_population
from audiencefit.training.shown import ShownJoin, attach_shown, propensities
from audiencefit.training.trainset import TrainingSet, build_training_set
from audiencefit.training.weights import PropensityWeights, ipw_weights

log = logging.getLogger(__name__)

MIN_TRAIN_ROWS = 50
MIN_TEST_ROWS = 10


@dataclass(frozen=True)
class TrainResult:
    bundle_dir: Path
    bundle_meta: dict[str, Any]
    training_set: TrainingSet
    split: Split
    models: ModelSet
    table: pl.DataFrame  # evaluation table: the model first, then the baselines
    wins: dict[str, bool]  # headline metric → the model beats every baseline
    price: dict[str, float]
    params: dict[str, Any]
    shown: ShownJoin  # how the campaigns' recommendation ids met the recommendation log
    # The served fit's sample weights (all 1 without rows from recommendations): the training split's, or every
    # row's with refit_all.
    weights: PropensityWeights
    recommended: RecommendedEval  # recommended_* metrics on test rows from recommendations, or why there are none
    # The error on the population the service ranks (audiencefit.training.served_eval); None when the data is not a
    # synthetic world with its truth, or the feature set has no index.
    served: ServedPopulation | None = None
    # With refit_all: the models fitted on every row, which the bundle holds (``models`` is the evaluated fit).
    refit: ModelSet | None = None


def data_fingerprint(frame: pl.DataFrame) -> str:
    """Hash of the training set's content (row order fixed), recorded with the model."""
    return hashlib.sha256(frame.hash_rows(seed=0).to_numpy().tobytes()).hexdigest()[:16]


def served_check(data_dir: Path, fs: FeatureSet, models: ModelSet, settings: Settings) -> ServedPopulation | None:
    """``audiencefit.training.served_eval`` on a synthetic world (``truth/`` beside the tables) whose feature set has
    its index; otherwise None, with one info line saying why."""
    if settings.served_eval_candidates == 0:
        log.info("served population not measured: served_eval_candidates is 0")
        return None
    if not (data_dir / "truth").is_dir():
        log.info("served population not measured: no truth/ in the data dir (not a synthetic world)")
        return None
    if not default_index_dir(fs).is_dir():
        log.info("served population not measured: the feature set has no index (audiencefit index builds it)")
        return None
    served = served_population(data_dir, fs, models, candidates=settings.served_eval_candidates, seed=settings.seed)
    log.info(
        "served population measured",
        extra={"brands": served.per_brand.height, "seconds": round(served.seconds, 1), **served.metrics},
    )
    return served


def train_models(
    data_dir: Path,
    features_dir: Path,
    settings: Settings,
    *,
    out_dir: Path | None = None,
    test_share: float = 0.2,
    progress: bool = True,
    refit_all: bool = False,
) -> TrainResult:
    """Train, evaluate and write a bundle; raises ``InputError`` when the data cannot support training.

    ``refit_all``: after the evaluation, fit the same recipe on every row (training and test split) and write that
    to the bundle (see the module docstring)."""
    if not 0.05 <= test_share <= 0.5:
        raise InputError(f"test share must be within 0.05–0.5, got {test_share}")
    started = time.perf_counter()
    fs = load_feature_set(features_dir, verify_checksums=False)
    embedder = query_embedder(fs)
    dataset = load_dataset(data_dir, secret=settings.follower_id_secret.get_secret_value())
    cache = EmbeddingCache(settings.embedding_cache_dir, embedder.id, embedder.dim)
    training_set = build_training_set(dataset, embedder=embedder, cache=cache, settings=settings, progress=progress)
    # Close the loop: rows whose creator the service showed get what was shown (propensity, rank, model).
    joined, shown = attach_shown(training_set.frame, settings.recommendation_log_target)
    for warning in shown.warnings():
        log.warning(warning)
    training_set = TrainingSet(joined)
    split = time_group_split(training_set.frame, test_share)
    if split.train.height < MIN_TRAIN_ROWS or split.test.height < MIN_TEST_ROWS:
        raise InputError(
            f"too few past campaigns to train and evaluate honestly: {split.train.height} training rows "
            f"(need {MIN_TRAIN_ROWS}) and {split.test.height} test rows (need {MIN_TEST_ROWS})"
        )
    weights = ipw_weights(propensities(split.train), settings.ipw_max_weight, settings.recommended_weight_share)
    models = ModelSet(FEATURE_COLUMNS, seed=settings.seed, conversion_structure=settings.conversion_structure).fit(
        split.train, sample_weight=None if weights.uniform else weights.weights
    )
    table = evaluation_table(models, split)
    wins = beats_baselines(table)
    price = price_metrics(models, split.test)
    recommended = recommended_metrics(models, split.test)
    refit = None
    if refit_all:
        # The served fit's weights are what the run reports: those of every row.
        weights = ipw_weights(
            propensities(training_set.frame), settings.ipw_max_weight, settings.recommended_weight_share
        )
        refit = ModelSet(FEATURE_COLUMNS, seed=settings.seed, conversion_structure=settings.conversion_structure).fit(
            training_set.frame, sample_weight=None if weights.uniform else weights.weights
        )
        log.info("models refitted on every campaign", extra={"rows": training_set.frame.height})
    serving_models = refit if refit is not None else models
    served = served_check(data_dir, fs, serving_models, settings)
    params: dict[str, Any] = {
        "seed": settings.seed,
        "test_share": test_share,
        "snapshot_days": settings.training_snapshot_days,
        "train_rows": split.train.height,
        "test_rows": split.test.height,
        "train_end": str(split.train["start_date"].max()),
        # The last campaign the bundle's models were fitted on: campaigns after it are new to them
        # (audiencefit.training.outcomes compares their forecasts with what they observed).
        "fitted_through": str((training_set.frame if refit_all else split.train)["start_date"].max()),
        "test_start": str(split.test["start_date"].min()),
        "n_features": len(FEATURE_COLUMNS),
        "conversion_structure": settings.conversion_structure,
        "embedder_id": embedder.id,
        # Brand descriptions went through this query transformer; serving warns when it embeds with another.
        "query_embedder_id": for_queries(embedder).id,
        "feature_set_id": fs.feature_set_id,
        "refit_all": refit_all,
        "bundle_rows": training_set.frame.height if refit_all else split.train.height,
        "data_fingerprint": data_fingerprint(training_set.frame),
        **shown.summary(),
        **weights.summary(),
        "recommended_test_rows": recommended.rows,
    }
    out = out_dir or settings.data_dir / "bundles" / "latest"
    meta = save_bundle(
        serving_models,
        out,
        embedder_id=embedder.id,
        extra={
            "training": params,
            "evaluation": table.to_dicts(),
            "beats_baselines": wins,
            "price_metrics": price,
            "recommended_metrics": recommended.metrics,
            "recommended_metrics_absent": recommended.reason,
            **({"served_population": served_meta(served)} if served is not None else {}),
            # The creators the models were trained among, summarised for the service's drift check
            # (audiencefit.models.drift).
            FEATURE_SUMMARY: summarize_features(fs),
        },
    )
    log.info(
        "models trained",
        extra={
            "bundle": str(out),
            "bundle_id": meta["bundle_id"],
            "train_rows": split.train.height,
            "test_rows": split.test.height,
            "seconds": round(time.perf_counter() - started, 1),
            **{f"beats_{k}": v for k, v in wins.items()},
        },
    )
    return TrainResult(
        out, meta, training_set, split, models, table, wins, price, params, shown, weights, recommended, served, refit
    )


def served_meta(served: ServedPopulation) -> dict[str, Any]:
    """What a bundle records of the served population: the metrics (NaN as null) and how it was measured."""
    return {
        "metrics": {k: (v if math.isfinite(v) else None) for k, v in served.metrics.items()},
        "brands": served.per_brand.height,
        "candidates": served.candidates.height,
        "seconds": round(served.seconds, 1),
    }
