"""Train the engagement, conversion and price models from past campaigns, evaluate them, write a bundle.

``train_models`` is the whole job without tracking: point-in-time training set → time/creator-grouped split →
fit on the older campaigns → evaluation table against the baselines on the newer ones → bundle on disk. The
served model is the one evaluated (trained on the training split only), so the table describes exactly what
serves. MLflow logging and registration (``training.tracking``) wrap this.
"""

from __future__ import annotations

import hashlib
import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import polars as pl

from audiencefit.settings import Settings
from features.dataset import load_dataset
from features.embed_cache import EmbeddingCache
from features.errors import InputError
from features.featureset import load_feature_set
from models.bundle import FEATURE_SUMMARY, save_bundle
from models.drift import summarize_features
from models.estimators import ModelSet
from models.pair_features import FEATURE_COLUMNS
from models.query import query_embedder
from training.evaluate import Split, beats_baselines, evaluation_table, price_metrics, time_group_split
from training.trainset import TrainingSet, build_training_set

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


def data_fingerprint(frame: pl.DataFrame) -> str:
    """Hash of the training set's content (row order fixed), recorded with the model."""
    return hashlib.sha256(frame.hash_rows(seed=0).to_numpy().tobytes()).hexdigest()[:16]


def train_models(
    data_dir: Path,
    features_dir: Path,
    settings: Settings,
    *,
    out_dir: Path | None = None,
    test_share: float = 0.2,
    progress: bool = True,
) -> TrainResult:
    """Train, evaluate and write a bundle; raises ``InputError`` when the data cannot support training."""
    if not 0.05 <= test_share <= 0.5:
        raise InputError(f"test share must be within 0.05–0.5, got {test_share}")
    started = time.perf_counter()
    fs = load_feature_set(features_dir, verify_checksums=False)
    embedder = query_embedder(fs)
    dataset = load_dataset(data_dir, secret=settings.follower_id_secret.get_secret_value())
    cache = EmbeddingCache(settings.embedding_cache_dir, embedder.id, embedder.dim)
    training_set = build_training_set(dataset, embedder=embedder, cache=cache, settings=settings, progress=progress)
    split = time_group_split(training_set.frame, test_share)
    if split.train.height < MIN_TRAIN_ROWS or split.test.height < MIN_TEST_ROWS:
        raise InputError(
            f"too few past campaigns to train and evaluate honestly: {split.train.height} training rows "
            f"(need {MIN_TRAIN_ROWS}) and {split.test.height} test rows (need {MIN_TEST_ROWS})"
        )
    models = ModelSet(FEATURE_COLUMNS, seed=settings.seed).fit(split.train)
    table = evaluation_table(models, split)
    wins = beats_baselines(table)
    price = price_metrics(models, split.test)
    params: dict[str, Any] = {
        "seed": settings.seed,
        "test_share": test_share,
        "snapshot_days": settings.training_snapshot_days,
        "train_rows": split.train.height,
        "test_rows": split.test.height,
        "train_end": str(split.train["start_date"].max()),
        "test_start": str(split.test["start_date"].min()),
        "n_features": len(FEATURE_COLUMNS),
        "embedder_id": embedder.id,
        "feature_set_id": fs.feature_set_id,
        "data_fingerprint": data_fingerprint(training_set.frame),
    }
    out = out_dir or settings.data_dir / "bundles" / "latest"
    meta = save_bundle(
        models,
        out,
        embedder_id=embedder.id,
        extra={
            "training": params,
            "evaluation": table.to_dicts(),
            "beats_baselines": wins,
            "price_metrics": price,
            # The creators the models were trained among, summarised for the service's drift check (models.drift).
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
    return TrainResult(out, meta, training_set, split, models, table, wins, price, params)
