"""Fixtures for the API tests: model bundles trained in seconds on the small world's feature set, and apps.

The bundles are fitted on synthetic labels with few boosting rounds (not on past campaigns, which takes minutes):
these tests check the service, not the model's quality. Serving code never imports ``training``; neither do these
fixtures.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import polars as pl
import pytest
from fastapi.testclient import TestClient

API_KEY = "test-key-0123456789"
ADMIN_KEY = "admin-key-0123456789"
SEGMENT_TEXTS = (
    "young parents interested in baby products and family life",
    "fitness fans who lift weights and run marathons",
    "home cooks who love baking and recipes",
    "gamers streaming video games",
)


TEST_ROUNDS = 30


def train_bundle(features_dir: Path, out: Path, seed: int) -> Path:
    """Fit a ModelSet on every (creator, segment) pair of the feature set with synthetic labels; save a bundle."""
    from audiencefit.features.embed import get_embedder
    from audiencefit.features.featureset import load_feature_set
    from audiencefit.models import estimators
    from audiencefit.models.estimators import ModelSet
    from audiencefit.models.pair_features import FEATURE_COLUMNS, BrandQuery, pair_features
    from audiencefit.models.query import Segment, embed_segments

    fs = load_feature_set(features_dir)
    embedder = get_embedder(str(fs.manifest["embedder_backend"]))
    segs = [Segment(text=t) for t in SEGMENT_TEXTS]
    query = BrandQuery(segs, embed_segments(segs, embedder))
    n = fs.creators.height
    rows = np.repeat(np.arange(n), len(segs))
    seg_idx = np.tile(np.arange(len(segs)), n)
    feats = pair_features(fs, rows, seg_idx, query)
    rng = np.random.default_rng(seed)
    followers = fs.creators["followers"].to_numpy()[rows].astype(float)
    fit = feats["audience_fit"].fill_null(0).to_numpy()
    er = fs.creators["er_median"].fill_null(0.03).to_numpy()[rows] * rng.lognormal(0, 0.3, len(rows))
    conversions = rng.poisson(followers * 0.002 * np.exp(2 * fit))
    cost = np.maximum(followers * 0.02 * rng.lognormal(0, 0.2, len(rows)), 5.0)
    frame = feats.with_columns(
        engagement_rate=pl.Series(er), conversions=pl.Series(conversions.astype(float)), cost=pl.Series(cost)
    )
    fit_rounds = estimators._fit_rounds
    with pytest.MonkeyPatch.context() as mp:  # a few rounds are enough to serve; 600 take a minute here
        mp.setattr(
            estimators, "_fit_rounds", lambda p, x, y, init, rounds, w=None: fit_rounds(p, x, y, init, TEST_ROUNDS, w)
        )
        models = ModelSet(FEATURE_COLUMNS, seed=seed).fit(frame)
    save(models, out, fs.embedder_id, seed)
    return out


def save(models, out: Path, embedder_id: str, seed: int) -> None:
    from audiencefit.models.bundle import save_bundle

    save_bundle(
        models,
        out,
        embedder_id=embedder_id,
        extra={
            "training": {"seed": seed, "labels": "synthetic (test)"},
            "evaluation": [{"model": "test", "mae": 0.0}],
            "beats_baselines": {"conversions": True},
        },
    )


@pytest.fixture(scope="session")
def bundles(small_features: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """Two different valid bundles for the small feature set."""
    from audiencefit.features.featureset import load_feature_set
    from audiencefit.models.bundle import load_bundle

    root = tmp_path_factory.mktemp("bundles")
    first = train_bundle(small_features, root / "a", seed=1)
    # The second: the same trees with another conversion dispersion (other bands, other checksums, other id).
    models = load_bundle(first).models
    models.theta_ *= 1.5
    save(models, root / "b", load_feature_set(small_features).embedder_id, seed=2)
    return first, root / "b"


@pytest.fixture(scope="session")
def api_settings(tmp_path_factory: pytest.TempPathFactory):
    from audiencefit.settings import Settings

    return Settings(
        data_dir=tmp_path_factory.mktemp("api-data"),
        api_keys=[API_KEY, "other-key"],
        admin_api_keys=[ADMIN_KEY],
        **UNLIMITED,
    )


# Rate limits high enough never to refuse a test's requests (the limiter still runs); tests/e2e/test_rate_limits.py
# sets low ones.
UNLIMITED = {
    "rate_limit_per_second": 100_000.0,
    "rate_limit_burst": 100_000,
    "rate_limit_plans_per_second": 100_000.0,
    "rate_limit_plans_burst": 100_000,
    "rate_limit_address_per_second": 100_000.0,
    "rate_limit_address_burst": 100_000,
}
UNLIMITED_ENV = {f"AUDIENCEFIT_{name.upper()}": str(value) for name, value in UNLIMITED.items()}


def make_client(settings, features: Path, bundle: Path, data: Path | None = None) -> Iterator[TestClient]:
    from audiencefit.serving.app import create_app

    app = create_app(settings, features_dir=features, bundle_source=bundle, data_dir=data)
    with TestClient(app, raise_server_exceptions=False) as client:
        client.headers["X-API-Key"] = API_KEY
        yield client


SEGMENTS = [
    {"text": "fitness fans who lift weights and run", "weight": 2.0, "id": "fitness"},
    {"text": "home cooks who love baking recipes", "id": "cooking"},
]
"""Two segments the small world's creators fit, for requests in the API tests."""


@pytest.fixture(scope="module")
def client(api_settings, small_features: Path, small_world: Path, bundles) -> Iterator[TestClient]:
    """The real app on the small world's feature set with the first bundle (captions from the raw data)."""
    yield from make_client(api_settings, small_features, bundles[0], data=small_world)
