"""Shared fixtures. The embedding model and the small synthetic world are built once per test session."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.hashing_embedder import HashingEmbedder
from tests.hashing_embedder import register as _register_hashing_backend

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
# Compiling a bundle's trees takes ~10 s, and compiled trees give LightGBM's numbers bit for bit
# (tests/model/test_forest.py), so by default the suite serves with LightGBM's own predictor; the tests of compiled
# trees, and one end-to-end test through the app and the batch job, turn them on. Compiled models go to one cache
# for the whole session.
os.environ.setdefault("AUDIENCEFIT_COMPILED_TREES", "false")
if "AUDIENCEFIT_FOREST_CACHE" not in os.environ:
    import tempfile

    os.environ["AUDIENCEFIT_FOREST_CACHE"] = tempfile.mkdtemp(prefix="audiencefit-test-forests-")

_SETTINGS_PREFIXES = ("AUDIENCEFIT_", "MLFLOW_")
_SESSION_SETTINGS_ENV = {k: v for k, v in os.environ.items() if k.startswith(_SETTINGS_PREFIXES)}
"""The settings' variables as the session started (with the defaults above), before any test set its own."""

SMALL_WORLD_CREATORS = 150
SMALL_WORLD_SEED = 11

_register_hashing_backend()


@pytest.fixture(autouse=True)
def _tracking_uri_put_back() -> Iterator[None]:
    """``mlflow.set_tracking_uri`` (called by training in process) also sets ``MLFLOW_TRACKING_URI``, which every
    later ``Settings`` would then read: a test's store leaking into the next tests. Put the variable back."""
    before = os.environ.get("MLFLOW_TRACKING_URI")
    yield
    if os.environ.get("MLFLOW_TRACKING_URI") != before:
        if before is None:
            os.environ.pop("MLFLOW_TRACKING_URI", None)
        else:
            os.environ["MLFLOW_TRACKING_URI"] = before


@pytest.fixture()
def hashing_embedder() -> HashingEmbedder:
    return HashingEmbedder()


@pytest.fixture(scope="session")
def small_world(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small synthetic world (raw tables + truth/), generated once per session. Treat as read-only."""
    from audiencefit.features.synthetic import generate_world

    out = tmp_path_factory.mktemp("world") / "demo"
    generate_world(out, n_creators=SMALL_WORLD_CREATORS, seed=SMALL_WORLD_SEED, followers_per_creator=10)
    return out


@pytest.fixture()
def isolated_settings(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """Settings whose data directory (embedding cache, MLflow store) lives in this test's tmp_path."""
    from audiencefit.settings import Settings, get_settings

    monkeypatch.setenv("AUDIENCEFIT_DATA_DIR", str(tmp_path / "data"))
    get_settings.cache_clear()
    yield Settings()
    get_settings.cache_clear()


@pytest.fixture(scope="session")
def small_features(small_world: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A feature set (hashing embedder) of the small world, with its indexes. Treat as read-only."""
    from audiencefit.features.build import build_feature_set
    from audiencefit.features.featureset import load_feature_set
    from audiencefit.models.index import build_and_save
    from audiencefit.settings import Settings

    root = tmp_path_factory.mktemp("features")
    settings = Settings(data_dir=root / "data")
    out = root / "fs"
    build_feature_set(small_world, out, settings=settings, embedder=HashingEmbedder())
    build_and_save(load_feature_set(out), settings)
    return out


@pytest.fixture(scope="session")
def small_training(
    small_world: Path, small_features: Path, tmp_path_factory: pytest.TempPathFactory
) -> Callable[[int], Any]:
    """``audiencefit.training.train.train_models`` on the small world with the default settings but the seed given:
    trained once per seed for the session (a few seconds each), e.g. ``small_training(7)``. Read-only: a test logs the
    result to a store of its own (``audiencefit.training.tracking.log_training(result, its_settings)``)."""
    from audiencefit.settings import Settings
    from audiencefit.training.train import train_models

    root = tmp_path_factory.mktemp("small-training")
    trained: dict[int, Any] = {}

    def train(seed: int) -> Any:
        if seed not in trained:
            with pytest.MonkeyPatch.context() as mp:  # the session's settings, whatever the test asking first set
                for name in [n for n in os.environ if n.startswith(_SETTINGS_PREFIXES)]:
                    mp.delenv(name)
                for name, value in _SESSION_SETTINGS_ENV.items():
                    mp.setenv(name, value)
                settings = Settings(data_dir=root / "data", seed=seed)
                trained[seed] = train_models(
                    small_world, small_features, settings, out_dir=root / f"bundle-seed-{seed}", progress=False
                )
        return trained[seed]

    return train


MODEL_WORLD_CREATORS = 600
MODEL_WORLD_SEED = 5


@pytest.fixture(scope="session")
def model_world(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A 600-creator world with a hashing-embedder feature set, indexes and a trained bundle (session-wide).

    Keys: world, features, bundle, trainset (parquet), data (the settings data dir with its embedding cache).
    Read-only.
    """
    from audiencefit.features.build import build_feature_set
    from audiencefit.features.featureset import load_feature_set
    from audiencefit.features.synthetic import generate_world
    from audiencefit.models.index import build_and_save
    from audiencefit.settings import Settings
    from audiencefit.training.train import train_models

    root = tmp_path_factory.mktemp("model-world")
    world = root / "world"
    generate_world(world, n_creators=MODEL_WORLD_CREATORS, seed=MODEL_WORLD_SEED, followers_per_creator=8)
    settings = Settings(data_dir=root / "data")
    features = root / "features"
    build_feature_set(world, features, settings=settings, embedder=HashingEmbedder())
    build_and_save(load_feature_set(features), settings)
    result = train_models(world, features, settings, out_dir=root / "bundle", progress=False)
    result.training_set.frame.write_parquet(root / "trainset.parquet")
    return {
        "world": world,
        "features": features,
        "bundle": result.bundle_dir,
        "data": root / "data",
        "trainset": root / "trainset.parquet",
    }
