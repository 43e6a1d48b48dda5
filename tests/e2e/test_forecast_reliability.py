"""Say when a forecast cannot be trusted (issue #18 §4): a bundle trained on one world, served over the creators of
another, says so in /readyz, /v1/model, every answer and the batch manifest; the same world, and another seed of
it, do not.

The bundle is the session's ``model_world`` (600 creators, seed 5, trained by ``audiencefit.training.train``). "Another
world" is what real exports look like (``audiencefit.features.synthetic.export_like``: creators and posts only, half the
bios missing, engagement counts rescaled with noise), not another generator seed: a second seed of the same world must
NOT be flagged.
"""

from __future__ import annotations

import json
import logging
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from audiencefit.features.errors import InputError
from audiencefit.features.featureset import load_feature_set
from audiencefit.features.synthetic.export_like import write_export_like
from audiencefit.models.bundle import BUNDLE_FILE, FEATURE_SUMMARY, content_id, load_bundle
from audiencefit.models.drift import NUMERIC, check_features
from audiencefit.settings import Settings
from tests.conftest import MODEL_WORLD_SEED, HashingEmbedder
from tests.e2e.conftest import API_KEY, SEGMENTS, UNLIMITED

OTHER_SEED = MODEL_WORLD_SEED + 7
OTHER_CREATORS = 200
FOLLOWERS_PER_CREATOR = 8  # model_world's


def _features(world: Path, out: Path, settings: Settings) -> Path:
    from audiencefit.features.build import build_feature_set
    from audiencefit.models.index import build_and_save

    build_feature_set(world, out, settings=settings, embedder=HashingEmbedder())
    build_and_save(load_feature_set(out), settings)
    return out


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Feature sets to serve: another seed of model_world's synthetic world, and that world as a real export."""
    from audiencefit.features.synthetic import generate_world

    root = tmp_path_factory.mktemp("reliability")
    settings = Settings(data_dir=root / "data")
    world = root / "world"
    generate_world(world, n_creators=OTHER_CREATORS, seed=OTHER_SEED, followers_per_creator=FOLLOWERS_PER_CREATOR)
    export = write_export_like(world, root / "export", seed=0)
    return {
        "world": world,
        "other_seed": _features(world, root / "fs-other-seed", settings),
        "export": _features(export, root / "fs-export", settings),
    }


def _client(features: Path, bundle: Path, tmp: Path) -> Iterator[TestClient]:
    from audiencefit.serving.app import create_app

    settings = Settings(data_dir=tmp / "data", api_keys=[API_KEY], **UNLIMITED)
    app = create_app(settings, features_dir=features, bundle_source=bundle)
    with TestClient(app, raise_server_exceptions=False) as client:
        client.headers["X-API-Key"] = API_KEY
        yield client


@pytest.fixture(scope="module")
def same_world(model_world, tmp_path_factory) -> Iterator[TestClient]:
    yield from _client(model_world["features"], model_world["bundle"], tmp_path_factory.mktemp("same"))


@pytest.fixture(scope="module")
def real_export(model_world, served, tmp_path_factory) -> Iterator[TestClient]:
    yield from _client(served["export"], model_world["bundle"], tmp_path_factory.mktemp("export"))


BRIEF = {"description": "Protein snacks for people who train", "segments": SEGMENTS, "k": 10}
PLAN = {"description": "Protein snacks for people who train", "segments": SEGMENTS, "budget": 5_000.0}


def _ids(client: TestClient, n: int) -> list[str]:
    return [c["creator_id"] for c in client.post("/v1/recommendations", json={**BRIEF, "k": n}).json()["creators"]]


def test_training_stores_a_summary_of_its_creators(model_world):
    summary = load_bundle(model_world["bundle"]).feature_summary
    assert isinstance(summary, dict)
    assert summary["creators"] == load_feature_set(model_world["features"]).creators.height
    assert set(summary["numeric"]) == set(NUMERIC)
    assert set(summary["categorical"]) == {"platform", "language", "country"}


def test_the_same_world_is_not_flagged(same_world):
    assert same_world.get("/readyz").json()["forecast_reliability"] == "ok"
    report = same_world.get("/v1/model").json()["forecast_reliability"]
    assert report["level"] == "ok" and report["reasons"] == []
    assert report["creators_out_of_range"] == 0
    assert not any(i["shifted"] for i in report["inputs"])
    body = same_world.post("/v1/recommendations", json=BRIEF).json()
    assert body["count"] > 0
    assert body["forecast_reliability"] == {"level": "ok", "reasons": []}
    assert all(c["forecast_reliability"] is None for c in body["creators"])


def test_another_seed_of_the_same_world_is_not_flagged(model_world, served):
    """False alarms make users ignore the flag: a second draw of the same world must pass."""
    reliability = check_features(
        load_bundle(model_world["bundle"]).feature_summary, load_feature_set(served["other_seed"])
    )
    assert reliability.level == "ok", reliability.reasons
    assert max(i.psi for i in reliability.inputs) < min(i.threshold for i in reliability.inputs)


def test_a_real_export_is_flagged_everywhere(real_export, served):
    assert real_export.get("/readyz").status_code == 200  # still ready: the flag informs, it does not refuse
    assert real_export.get("/readyz").json()["forecast_reliability"] == "low"
    report = real_export.get("/v1/model").json()["forecast_reliability"]
    assert report["level"] == "low"
    shifted = {i["feature"] for i in report["inputs"] if i["shifted"]}
    assert {"audience_from_followers", "er_median", "has_bio"} <= shifted
    assert any("median engagement rate" in r for r in report["reasons"])
    assert any("audience quality is computed from engagement only" in r for r in report["reasons"])
    rec = real_export.post("/v1/recommendations", json=BRIEF).json()
    assert rec["count"] > 0
    assert rec["forecast_reliability"]["level"] == "low"
    assert rec["forecast_reliability"]["reasons"][: len(report["reasons"])] == report["reasons"]
    ids = _ids(real_export, 3)
    score = real_export.post("/v1/score", json={"segments": SEGMENTS, "creator_ids": ids}).json()
    assert score.get("forecast_reliability", {}).get("level") == "low", score
    plan = real_export.post("/v1/plans", json=PLAN).json()
    assert plan["forecast_reliability"]["level"] == "low", plan


def test_creators_outside_the_training_range_are_flagged_one_by_one(model_world, served, real_export):
    fs = load_feature_set(served["export"])
    reliability = check_features(load_bundle(model_world["bundle"]).feature_summary, fs)
    outside = reliability.out_of_range_rows()
    inside = sorted(set(range(fs.creators.height)) - set(outside.tolist()))
    assert len(outside) and inside
    ids = fs.creators["creator_id"].to_list()
    chosen = [ids[int(outside[0])], ids[inside[0]]]
    body = real_export.post("/v1/score", json={"segments": SEGMENTS, "creator_ids": chosen}).json()
    first, second = body["creators"]
    assert first["forecast_reliability"]["level"] == "low"
    assert any(
        "anything the model was trained on" in r or "unknown for this creator" in r
        for r in first["forecast_reliability"]["reasons"]
    )
    assert second["forecast_reliability"] is None
    assert any("1 of the 2 creator(s) in this answer" in r for r in body["forecast_reliability"]["reasons"])


def test_without_follower_data_the_figures_say_so(real_export, same_world):
    body = real_export.post("/v1/recommendations", json=BRIEF).json()
    for c in body["creators"]:
        assert c["audience_source"] == "content"
        assert c["quality_source"] == "engagement"
        assert all(s["audience_source"] == "content" for s in c["segments"])
        reasons = c["explanation"]["reasons"]
        # In the sentences that state the figures, not in one trailing phrase.
        assert "fit" in reasons[0] and "no follower data" in reasons[0].split(";")[0]
        assert "belongs to this segment, also estimated from the creator's own posts" in reasons[0]
        interests = next(r for r in reasons if r.startswith(("Audience interests", "No audience interest")))
        assert interests.startswith(("Audience interests driving the match, estimated", "No audience interest"))
        assert "no follower data" in interests
        quality = next(r for r in reasons if r.startswith("Audience quality"))
        assert "computed from engagement only, as there is no follower sample" in quality
    body = same_world.post("/v1/recommendations", json=BRIEF).json()
    with_sample = [c for c in body["creators"] if c["audience_source"] == "followers"]
    assert with_sample
    for c in with_sample:
        assert c["quality_source"] == "followers+engagement"
        assert "no follower data" not in " ".join(c["explanation"]["reasons"])
        quality = next(r for r in c["explanation"]["reasons"] if r.startswith("Audience quality"))
        assert "computed from a follower sample and engagement" in quality


def test_low_reliability_is_a_structured_warning_at_start(model_world, served, caplog):
    from audiencefit.serving.state import load_serving_model

    settings = Settings()
    with caplog.at_level(logging.WARNING, logger="audiencefit.serving.state"):
        load_serving_model(model_world["bundle"], load_feature_set(served["export"]), settings)
    records = [r for r in caplog.records if getattr(r, "forecast_reliability", None) == "low"]
    assert len(records) == 1 and records[0].levelno == logging.WARNING
    assert "audience_from_followers" in " ".join(records[0].shifted_inputs)
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="audiencefit.serving.state"):
        load_serving_model(model_world["bundle"], load_feature_set(model_world["features"]), settings)
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]


def _without_summary(bundle: Path, out: Path) -> Path:
    shutil.copytree(bundle, out)
    meta = json.loads((out / BUNDLE_FILE).read_text())
    del meta[FEATURE_SUMMARY]
    meta["bundle_id"] = content_id(meta)
    (out / BUNDLE_FILE).write_text(json.dumps(meta))
    return out


def test_a_bundle_without_a_summary_loads_with_reliability_unknown(model_world, tmp_path):
    from audiencefit.serving.state import load_serving_model

    old = _without_summary(model_world["bundle"], tmp_path / "old")
    model = load_serving_model(old, load_feature_set(model_world["features"]), Settings())
    assert model.reliability.level == "unknown"
    assert "retrain" in model.reliability.reasons[0]
    assert model.reliability.creator_reasons(0) == []


def test_a_damaged_summary_is_refused_with_its_field_named(model_world, tmp_path):
    bad = tmp_path / "bad"
    shutil.copytree(model_world["bundle"], bad)
    meta = json.loads((bad / BUNDLE_FILE).read_text())
    meta[FEATURE_SUMMARY]["numeric"]["er_median"]["shares"] = [0.5]
    meta["bundle_id"] = content_id(meta)
    (bad / BUNDLE_FILE).write_text(json.dumps(meta))
    with pytest.raises(InputError, match=r"feature_summary.*'er_median'"):
        check_features(load_bundle(bad).feature_summary, load_feature_set(model_world["features"]))


def test_the_batch_manifest_records_the_reliability(model_world, served, tmp_path):
    from audiencefit.models.query import query_embedder
    from audiencefit.serving.batch import LocalScorer, read_brands, run_batch

    brands = tmp_path / "brands.jsonl"
    brands.write_text(json.dumps({"brand_id": "acme", "segments": SEGMENTS}) + "\n", encoding="utf-8")
    bundle = load_bundle(model_world["bundle"])
    for name, level in (("export", "low"), ("other_seed", "ok")):
        fs = load_feature_set(served[name])
        summary = run_batch(
            read_brands(brands),
            brands_path=brands,
            fs=fs,
            bundle=bundle,
            model_source=str(model_world["bundle"]),
            embedder=query_embedder(fs),
            out=tmp_path / f"out-{name}",
            scorer=LocalScorer(fs, bundle, chunk_rows=10_000),
            progress=False,
        )
        manifest = json.loads((tmp_path / f"out-{name}" / "_manifest.json").read_text())
        assert manifest["forecast_reliability"]["level"] == level
        assert manifest == summary.manifest
        assert manifest["forecast_reliability"]["creators_served"] == fs.creators.height
