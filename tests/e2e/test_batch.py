"""Batch scoring (``audiencefit score``): same scores as the API, resumable after a kill, Ray = local, bad input.

Runs on the small world's feature set (hashing embedder) with the API tests' bundles. The kill test runs the
command in a child process (the hashing backend registered first) and SIGKILLs it between two partitions.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import polars as pl
import pytest
from typer.testing import CliRunner

import audiencefit.cli  # noqa: F401  (registers the commands)
from audiencefit.cli._app import app
from audiencefit.features.errors import InputError
from tests.e2e.conftest import make_client

ROOT = Path(__file__).resolve().parents[2]
SEGMENTS = [
    {"id": "fitness", "text": "fitness fans who lift weights and run", "weight": 2.0},
    {"id": "cooking", "text": "home cooks who love baking recipes", "countries": ["US", "GB"]},
]
BRAND = {
    "brand_id": "acme",
    "description": "Protein snacks for people who train",
    "segments": SEGMENTS,
    "brand_handles": ["@acme"],
    "branded_hashtags": ["#running"],
}
TEXTS = [
    "parents of toddlers who like outdoor play",
    "gamers who stream strategy games",
    "runners training for a marathon",
    "students who cook cheap vegan meals",
    "travellers who love city breaks",
    "photographers shooting film cameras",
]


def brands_file(path: Path, n_extra: int = 0, brand: dict | None = None) -> Path:
    rows = [brand or BRAND]
    for i in range(n_extra):
        rows.append(
            {
                "brand_id": f"b{i:02d}",
                "segments": [{"text": TEXTS[i % len(TEXTS)]}, {"text": TEXTS[(i + 1) % len(TEXTS)], "weight": 0.5}],
                "objective": ["conversions", "engagement", "fit"][i % 3],
            }
        )
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def score(*args: str | Path) -> Any:
    result = CliRunner().invoke(app, ["score", "--no-progress", *map(str, args)])
    return result


def partitions(out: Path) -> dict[str, bytes]:
    return {p.parent.name: p.read_bytes() for p in sorted(out.glob("brand_id=*/part-0.parquet"))}


@pytest.fixture(scope="module")
def client(api_settings, small_features: Path, bundles):
    yield from make_client(api_settings, small_features, bundles[0])


@pytest.fixture(params=[False, True], ids=["lightgbm", "compiled-trees"])
def batch_predictor(request, monkeypatch):
    """The batch job's tree predictor: LightGBM's own, or the trees compiled to native code
    (audiencefit.models.forest)."""
    from audiencefit.settings import get_settings

    monkeypatch.setenv("AUDIENCEFIT_COMPILED_TREES", str(request.param).lower())
    get_settings.cache_clear()
    yield request.param
    get_settings.cache_clear()


def test_batch_scores_equal_the_api(tmp_path, small_features, bundles, client, batch_predictor):
    """The API serves with LightGBM's predictor here; the batch job with the same or with compiled trees."""
    out = tmp_path / "out"
    result = score("--brands", brands_file(tmp_path / "b.jsonl"), "--features", small_features,
                   "--bundle", bundles[0], "--out", out)  # fmt: skip
    assert result.exit_code == 0, result.output
    batch = pl.read_parquet(out / "brand_id=acme" / "part-0.parquet")
    assert batch["rank"].to_list() == list(range(1, batch.height + 1))
    assert batch["followers"].is_between(1_000, 100_000).all()  # the default filter, as in the API

    # /v1/score for the batch's creators: every number identical.
    ids = batch["creator_id"].head(40).to_list()
    body = {k: v for k, v in BRAND.items() if k != "brand_id"} | {"creator_ids": ids}
    resp = client.post("/v1/score", json=body)
    assert resp.status_code == 200, resp.text
    api = {c["creator_id"]: c for c in resp.json()["creators"]}
    for row in batch.head(40).iter_rows(named=True):
        c = api[row["creator_id"]]
        assert c["fit"] == row["fit"]
        assert c["matched_segment"] == row["matched_segment"]
        assert [s["fit"] for s in c["segments"]] == row["segment_fit"]
        assert [s["audience_share"] for s in c["segments"]] == row["segment_share"]
        for name in ("engagement_rate", "conversions", "price"):
            assert (c[name]["expected"], c[name]["p10"], c[name]["p90"]) == (
                row[name], row[f"{name}_p10"], row[f"{name}_p90"]
            )  # fmt: skip
        assert c["cost_per_conversion"] == row["cost_per_conversion"]
        assert c["brand_mentions"] == row["brand_mentions"]

    # /v1/recommendations ranks the same creators in the same order.
    rec = client.post("/v1/recommendations", json={k: v for k, v in BRAND.items() if k != "brand_id"} | {"k": 15})
    assert rec.status_code == 200, rec.text
    assert [c["creator_id"] for c in rec.json()["creators"]] == batch["creator_id"].head(15).to_list()

    manifest = json.loads((out / "_manifest.json").read_text())
    assert manifest["model"]["bundle_id"] == resp.json()["versions"]["bundle_id"]
    assert manifest["features"]["feature_set_id"] == resp.json()["versions"]["feature_set_id"]
    assert manifest["totals"]["rows"] == batch.height
    assert manifest["brands"][0]["pairs"] == batch.height * len(SEGMENTS)
    assert manifest["input"]["sha256"]


def test_rerun_skips_finished_partitions_and_rescores_changed_brands(tmp_path, small_features, bundles):
    brands = brands_file(tmp_path / "b.jsonl", n_extra=3)
    out = tmp_path / "out"
    args = ("--features", small_features, "--bundle", bundles[0], "--out", out)
    assert score("--brands", brands, *args).exit_code == 0
    first = partitions(out)
    assert len(first) == 4
    again = score("--brands", brands, *args)
    assert again.exit_code == 0, again.output
    totals = json.loads((out / "_manifest.json").read_text())["totals"]
    assert (totals["skipped"], totals["scored"]) == (4, 0)
    assert partitions(out) == first

    changed = dict(BRAND, segments=[SEGMENTS[0]])
    brands_file(brands, n_extra=3, brand=changed)
    assert score("--brands", brands, *args).exit_code == 0
    manifest = json.loads((out / "_manifest.json").read_text())
    assert [b["status"] for b in manifest["brands"]] == ["scored", "skipped", "skipped", "skipped"]
    assert partitions(out)["brand_id=acme"] != first["brand_id=acme"]
    # Another model: every partition is rescored.
    assert score("--brands", brands, "--features", small_features, "--bundle", bundles[1], "--out", out).exit_code == 0
    assert json.loads((out / "_manifest.json").read_text())["totals"]["scored"] == 4


_CHILD = """
import sys
from tests.conftest import _register_hashing_backend
_register_hashing_backend()
from audiencefit.cli import main
sys.argv = ["audiencefit", *sys.argv[1:]]
main()
"""


def test_killed_run_resumes_to_identical_output_without_partial_files(tmp_path, small_features, bundles):
    brands = brands_file(tmp_path / "b.jsonl", n_extra=11)
    common = ["--brands", str(brands), "--features", str(small_features), "--bundle", str(bundles[0])]
    reference = tmp_path / "reference"
    assert score(*common, "--out", reference).exit_code == 0

    out = tmp_path / "out"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    # Small chunks make each brand take a while, so the kill lands between partitions.
    cmd = [sys.executable, "-c", _CHILD, "score", "--no-progress", "--chunk-rows", "2", *common, "--out", str(out)]
    proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and proc.poll() is None and len(partitions(out)) < 2:
        time.sleep(0.005)
    if proc.poll() is not None:
        pytest.fail(f"the run ended before it could be killed: {proc.stderr.read().decode()[-2000:]}")
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    done = partitions(out)
    assert 2 <= len(done) < 12, "killed between partitions"
    assert not (out / "_manifest.json").exists()
    for name, data in done.items():  # what is there is complete: identical to the uninterrupted run
        assert data == partitions(reference)[name]

    resumed = score(*common, "--out", out)
    assert resumed.exit_code == 0, resumed.output
    assert partitions(out) == partitions(reference)
    assert sorted(p.name for p in out.iterdir()) == sorted(p.name for p in reference.iterdir())  # nothing else
    totals = json.loads((out / "_manifest.json").read_text())["totals"]
    assert totals["skipped"] >= len(done) and totals["scored"] + totals["skipped"] == 12


def test_ray_engine_gives_the_local_engines_output(tmp_path, small_features, bundles):
    ray = pytest.importorskip("ray")
    brands = brands_file(tmp_path / "b.jsonl", n_extra=2)
    common = ["--brands", brands, "--features", small_features, "--bundle", bundles[0]]
    assert score(*common, "--out", tmp_path / "local").exit_code == 0
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        result = score(*common, "--out", tmp_path / "ray", "--engine", "ray", "--chunk-rows", "17")
    finally:
        ray.shutdown()
    assert result.exit_code == 0, result.output
    assert partitions(tmp_path / "ray") == partitions(tmp_path / "local")
    assert json.loads((tmp_path / "ray" / "_manifest.json").read_text())["options"]["engine"] == "ray"


def test_top_scores_only_the_best_fitting_candidates(tmp_path, small_features, bundles):
    out = tmp_path / "out"
    result = score("--brands", brands_file(tmp_path / "b.jsonl"), "--features", small_features,
                   "--bundle", bundles[0], "--out", out, "--top", "12")  # fmt: skip
    assert result.exit_code == 0, result.output
    scored = pl.read_parquet(out / "brand_id=acme" / "part-0.parquet")
    assert scored.height == 12
    # A scored partition and an empty one (no eligible creator) have the same columns and types.
    from audiencefit.serving.batch import OUTPUT_SCHEMA, empty_output

    assert dict(scored.schema) == OUTPUT_SCHEMA
    assert dict(empty_output().schema) == OUTPUT_SCHEMA


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        ('{"brand_id": "x", "segments": [{"text": "a", "wieght": 2}]}\n', "line 1: segments.0.wieght: Extra inputs"),
        ('{"brand_id": "x/../y", "description": "d"}\n', "line 1: brand_id: String should match pattern"),
        ('{"brand_id": "x"}\n', "give a brand description or at least one segment"),
        ('{"brand_id": "x", "description": "d"}\n{"brand_id": "x", "description": "e"}\n', "repeats line 1"),
        ('{"brand_id": "x", "description": "d"}\nnot json\n', "line 2: not valid JSON"),
        ('{"brand_id": "x", "description": "d", "filters": {"min_followers": -1}}\n', "filters.min_followers"),
        ("\n\n", "no brands in the file"),
    ],
)
def test_bad_brands_file_is_refused_before_anything_is_written(tmp_path, small_features, bundles, content, expected):
    brands = tmp_path / "brands.jsonl"
    brands.write_text(content, encoding="utf-8")
    out = tmp_path / "out"
    result = score("--brands", brands, "--features", small_features, "--bundle", bundles[0], "--out", out)
    assert isinstance(result.exception, InputError)
    assert expected in str(result.exception)
    assert str(brands) in str(result.exception)
    assert not out.exists()


def test_mismatched_feature_set_is_refused_before_anything_is_written(tmp_path, small_features, bundles):
    other = tmp_path / "features"
    shutil.copytree(small_features, other)
    manifest = json.loads((other / "manifest.json").read_text())
    manifest["embedder_id"] = "some-other-embedder/v9"
    (other / "manifest.json").write_text(json.dumps(manifest))
    out = tmp_path / "out"
    result = score("--brands", brands_file(tmp_path / "b.jsonl"), "--features", other, "--bundle", bundles[0],
                   "--out", out)  # fmt: skip
    assert isinstance(result.exception, InputError)
    assert "some-other-embedder/v9" in str(result.exception)
    assert not out.exists()


def test_unknown_model_alias_is_refused_before_anything_is_written(tmp_path, small_features, monkeypatch):
    from audiencefit.settings import get_settings

    monkeypatch.setenv("AUDIENCEFIT_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'mlflow.db'}")
    get_settings.cache_clear()
    out = tmp_path / "out"
    try:
        result = score("--brands", brands_file(tmp_path / "b.jsonl"), "--features", small_features,
                       "--model", "models:/audiencefit@nonexistent", "--out", out)  # fmt: skip
    finally:
        get_settings.cache_clear()
    # An empty registry here; with a registered model the message lists its aliases (tests/model/test_registry.py).
    assert isinstance(result.exception, InputError)
    assert "no registered model 'audiencefit'" in str(result.exception)
    assert not out.exists()


def test_out_dir_with_foreign_files_is_refused(tmp_path, small_features, bundles):
    out = tmp_path / "out"
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    result = score("--brands", brands_file(tmp_path / "b.jsonl"), "--features", small_features,
                   "--bundle", bundles[0], "--out", out)  # fmt: skip
    assert isinstance(result.exception, InputError)
    assert "notes.txt" in str(result.exception)
    assert sorted(p.name for p in out.iterdir()) == ["notes.txt"]
