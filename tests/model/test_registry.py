"""MLflow tracking, registry aliases, champion/challenger promotion and bundle resolution, on a temporary store.

One model trained on the session's small world (hashing embedder, tests/conftest.py ``small_training``) is shared
by the module; promotion tests register the same bundle again as a second version, which cannot beat the first on
the same rows.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from pydantic import SecretStr

from audiencefit.features.errors import InputError

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A private MLflow store and data dir for this module (environment restored afterwards)."""
    from audiencefit.settings import get_settings

    root = tmp_path_factory.mktemp("mlflow")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{root / 'mlflow.db'}")
        mp.setenv("AUDIENCEFIT_DATA_DIR", str(root / "data"))
        get_settings.cache_clear()
        yield root
    get_settings.cache_clear()


@pytest.fixture(scope="module")
def settings(store: Path):
    from audiencefit.settings import Settings

    return Settings(data_dir=store / "data")


@pytest.fixture(scope="module")
def trained(small_training, settings):
    """The session's training of the small world with these settings' seed (the default, 7)."""
    return small_training(settings.seed)


@pytest.fixture(scope="module")
def tracked(trained, settings):
    from audiencefit.training.tracking import log_training

    return log_training(trained, settings)


def test_train_registers_version_with_challenger_alias(tracked, trained, settings, store: Path) -> None:
    from mlflow import MlflowClient

    from audiencefit.models.registry import current_version

    assert tracked.model_version == "1"
    assert current_version("challenger", settings=settings) == "1"
    assert current_version("champion", settings=settings) is None
    c = MlflowClient(tracking_uri=settings.tracking_uri)
    run = c.get_run(tracked.run_id)
    assert run.data.params["train_rows"] == str(trained.split.train.height)
    assert run.data.metrics["ndcg20_brand"] == pytest.approx(trained.table["ndcg20_brand"][0])
    assert {f"beats_{k}" for k in trained.wins} <= set(run.data.metrics)
    logged = {a.path for a in c.list_artifacts(tracked.run_id)} | {
        a.path for a in c.list_artifacts(tracked.run_id, "plots")
    }
    assert {"evaluation.csv", "evaluation.md", "test_set.parquet", "plots/calibration_conversions.png"} <= logged
    assert {"plots/gain_conversions.png", "plots/feature_importance.png"} <= logged
    # Models from code: the logged model holds the wrapper's source and the bundle's text files, no pickle.
    files = [p for p in (store / "data" / "mlartifacts").rglob("*") if p.is_file()]
    assert any(p.name == "mlflow_model.py" for p in files)
    assert not [p for p in files if p.suffix in {".pkl", ".pickle"} or "cloudpickle" in p.name]


def test_training_on_a_synthetic_world_measures_the_served_population(tracked, trained, settings) -> None:
    """train_models scores the top candidates of every brand and compares them with the world's truth; the
    metrics go into the bundle's meta, the result and the MLflow run (with one CSV row per brand)."""
    import json

    from mlflow import MlflowClient

    from audiencefit.training.served_eval import METRICS

    served = trained.served
    assert served is not None
    names = [f"served_{m}" for m in METRICS]
    assert list(served.metrics) == names
    assert served.per_brand.height >= 5
    assert served.candidates.height <= settings.served_eval_candidates * served.per_brand.height
    # A model, not an oracle: some error, and a ranking better than nothing.
    assert 0.0 < served.metrics["served_sigma_log_conv"] < 5.0
    assert 0.0 < served.metrics["served_ndcg20"] <= 1.0
    assert 0.0 <= served.metrics["served_coverage_conv_p10_p90"] <= 1.0
    meta = json.loads((trained.bundle_dir / "bundle.json").read_text())
    assert meta["served_population"]["metrics"]["served_sigma_log_conv"] == pytest.approx(
        served.metrics["served_sigma_log_conv"]
    )
    c = MlflowClient(tracking_uri=settings.tracking_uri)
    run = c.get_run(tracked.run_id)
    for name in names:
        assert run.data.metrics[name] == pytest.approx(served.metrics[name]), name
    assert "served_population.csv" in {a.path for a in c.list_artifacts(tracked.run_id)}


def test_served_population_is_deterministic_for_a_seed(trained, settings, small_world: Path, small_features) -> None:
    from audiencefit.features.featureset import load_feature_set
    from audiencefit.training.served_eval import served_population

    fs = load_feature_set(small_features)
    n = settings.served_eval_candidates
    again = served_population(small_world, fs, trained.models, candidates=n, seed=settings.seed)
    assert again.metrics == trained.served.metrics
    assert again.candidates.equals(trained.served.candidates)
    other = served_population(small_world, fs, trained.models, candidates=n, seed=settings.seed + 1)
    assert not other.candidates["drawn_conv"].equals(again.candidates["drawn_conv"])
    assert other.metrics["served_sigma_log_conv"] == again.metrics["served_sigma_log_conv"]  # no draw in it


def test_train_command_prints_the_served_population_after_the_test_split(trained, monkeypatch) -> None:
    from typer.testing import CliRunner

    import audiencefit.cli
    import audiencefit.training.tracking
    import audiencefit.training.train
    from audiencefit.cli._app import app
    from audiencefit.training.tracking import TrackedRun

    monkeypatch.setattr(audiencefit.training.train, "train_models", lambda *a, **k: trained)
    monkeypatch.setattr(
        audiencefit.training.tracking, "log_training", lambda *a, **k: TrackedRun("r1", "e1", "models:/m", None)
    )
    out = CliRunner().invoke(app, ["train", "--data", "d", "--features", "f", "--no-register"])
    assert out.exit_code == 0, out.output
    split = out.output.index("evaluation on held-out campaigns")
    served = out.output.index("on the population the service ranks")
    assert split < served < out.output.index("beats every baseline")
    assert f"{trained.served.metrics['served_sigma_log_conv']:.3f}" in out.output[served:]


def test_served_population_is_skipped_without_truth_or_index(
    trained, settings, small_world: Path, small_features: Path, tmp_path: Path, caplog
) -> None:
    import logging
    import shutil

    from audiencefit.features.featureset import load_feature_set
    from audiencefit.training.train import served_check

    fs = load_feature_set(small_features)
    no_truth = tmp_path / "world"
    shutil.copytree(small_world, no_truth, ignore=shutil.ignore_patterns("truth"))
    no_index = tmp_path / "features"
    shutil.copytree(small_features, no_index, ignore=shutil.ignore_patterns("index"))
    with caplog.at_level(logging.INFO, logger="audiencefit.training.train"):
        assert served_check(no_truth, fs, trained.models, settings) is None
        assert served_check(small_world, load_feature_set(no_index), trained.models, settings) is None
        assert (
            served_check(small_world, fs, trained.models, settings.model_copy(update={"served_eval_candidates": 0}))
            is None
        )
    said = [r.getMessage() for r in caplog.records if r.name == "audiencefit.training.train"]
    assert any("no truth/" in m for m in said) and any("no index" in m for m in said)
    assert any("served_eval_candidates is 0" in m for m in said)


def test_resolve_bundle_downloads_once_and_loads(tracked, trained, settings, monkeypatch) -> None:
    import mlflow.artifacts

    from audiencefit.models.bundle import load_bundle
    from audiencefit.models.registry import resolve_bundle

    path = resolve_bundle("models:/audiencefit@challenger", settings=settings)
    assert path == settings.data_dir / "registry-cache" / f"audiencefit-v1-{tracked.run_id}"
    bundle = load_bundle(path)
    test = trained.split.test
    assert bundle.models.predict(test).equals(trained.models.predict(test))

    def no_download(**_: object) -> str:
        raise AssertionError("a cached bundle was downloaded again")

    monkeypatch.setattr(mlflow.artifacts, "download_artifacts", no_download)
    assert resolve_bundle("models:/audiencefit/1", settings=settings) == path


def test_pyfunc_model_serves_bundle_predictions(tracked, trained, settings) -> None:
    import mlflow.pyfunc

    from audiencefit.models.pair_features import FEATURE_COLUMNS

    model = mlflow.pyfunc.load_model(tracked.model_uri)
    frame = trained.split.test.select(FEATURE_COLUMNS).head(8)
    served = model.predict(frame.to_pandas())
    expected = trained.models.predict(frame)
    np.testing.assert_allclose(served["conversions"].to_numpy(), expected["conversions"].to_numpy())
    assert set(expected.columns) <= set(served.columns)


def test_a_version_logged_under_the_old_module_names_loads_as_a_pyfunc(tracked, trained, tmp_path) -> None:
    # Versions logged before issue 21 keep a wrapper whose source imports the top-level ``models`` package, which
    # is no longer installed: within ``legacy_module_names`` those names are audiencefit's modules.
    import sys

    import mlflow.artifacts
    import mlflow.pyfunc

    import audiencefit.models.bundle
    from audiencefit.legacy_names import legacy_module_names
    from audiencefit.models.pair_features import FEATURE_COLUMNS

    local = Path(mlflow.artifacts.download_artifacts(tracked.model_uri, dst_path=str(tmp_path)))
    [wrapper] = [p for p in local.rglob("mlflow_model.py")]
    logged = wrapper.read_text(encoding="utf-8")
    old = logged.replace("from audiencefit.models", "from models")  # the wrapper as versions before it read
    assert old.count("\nfrom models") == 2 and "audiencefit" not in old.split("class ")[0]
    wrapper.write_text(old, encoding="utf-8")

    def old_names() -> dict[str, object]:
        return {name: module for name, module in sys.modules.items() if name.split(".")[0] == "models"}

    before = old_names()
    with legacy_module_names():
        model = mlflow.pyfunc.load_model(str(local))
    # The old names were audiencefit's modules themselves, and are gone again after the block.
    assert isinstance(model.unwrap_python_model().bundle, audiencefit.models.bundle.Bundle)
    assert old_names() == before
    assert audiencefit.models.bundle.__spec__.name == "audiencefit.models.bundle"
    frame = trained.split.test.select(FEATURE_COLUMNS).head(8)
    served = model.predict(frame.to_pandas())
    expected = trained.models.predict(frame)
    np.testing.assert_allclose(served["conversions"].to_numpy(), expected["conversions"].to_numpy())
    # The optional quoted rate goes through MLflow's schema and replaces the model's price.
    quoted = frame.to_pandas().assign(rate_per_post=[250.0] + [float("nan")] * (frame.height - 1))
    priced = model.predict(quoted)
    assert priced["price"].iloc[0] == 250.0 and priced["price_source"].iloc[0] == "quoted"
    assert (priced["price_source"].iloc[1:] == "model").all()


def test_unknown_alias_or_model_is_a_clear_input_error(tracked, settings) -> None:
    from audiencefit.models.registry import resolve_bundle

    with pytest.raises(InputError, match=r"no alias 'nope'.*challenger→v1"):
        resolve_bundle("models:/audiencefit@nope", settings=settings)
    with pytest.raises(InputError, match=r"no registered model 'other'.*audiencefit"):
        resolve_bundle("models:/other@champion", settings=settings)
    with pytest.raises(InputError, match="expected"):
        resolve_bundle("runs:/abc/model", settings=settings)


def test_corrupted_cached_bundle_is_refused(tracked, settings) -> None:
    from audiencefit.models.bundle import load_bundle
    from audiencefit.models.registry import resolve_bundle

    path = resolve_bundle("models:/audiencefit@challenger", settings=settings)
    target = sorted((path / "models").glob("*.txt"))[0]
    original = target.read_bytes()
    flipped = bytearray(original)
    flipped[len(flipped) // 2] ^= 0x01
    target.write_bytes(bytes(flipped))
    try:
        with pytest.raises(InputError, match="checksum mismatch"):
            load_bundle(resolve_bundle("models:/audiencefit@challenger", settings=settings))
    finally:
        target.write_bytes(original)
    load_bundle(path)


def test_promote_refuse_force_and_rollback(tracked, trained, settings) -> None:
    from typer.testing import CliRunner

    import audiencefit.cli  # noqa: F401  (registers the commands)
    from audiencefit.cli._app import app
    from audiencefit.models.registry import current_version
    from audiencefit.settings import get_settings
    from audiencefit.training import promote as promotion
    from audiencefit.training.tracking import log_training

    get_settings.cache_clear()  # the CLI reads the module's store from the environment
    runner = CliRunner()
    first = runner.invoke(app, ["promote"])
    assert first.exit_code == 0, first.output
    assert current_version("champion", settings=settings) == "1"

    # The same bundle again as v2: equal on the same rows, so it does not beat the champion by > 0.
    second = log_training(trained, settings)
    assert second.model_version == "2"
    assert current_version("challenger", settings=settings) == "2"
    refused = runner.invoke(app, ["promote", "--metric", "poisson_deviance"])
    assert refused.exit_code == 1
    assert "challenger v2" in refused.output and "champion v1" in refused.output
    assert current_version("champion", settings=settings) == "1"
    comparison = promotion.compare(settings, metric="poisson_deviance")
    assert comparison.challenger_value == pytest.approx(comparison.champion_value)
    assert comparison.test_rows == trained.split.test.height

    forced = runner.invoke(app, ["promote", "--force"])
    assert forced.exit_code == 0, forced.output
    assert current_version("champion", settings=settings) == "2"
    assert promotion.history(settings) == ["1"]

    back = runner.invoke(app, ["promote", "--rollback"])
    assert back.exit_code == 0, back.output
    assert current_version("champion", settings=settings) == "1"
    assert promotion.history(settings) == []
    with pytest.raises(InputError, match="no previous champion"):
        promotion.rollback(settings)
    with pytest.raises(InputError, match="cannot compare"):
        promotion.compare(settings, metric="calibration")


def test_better_challenger_passes_the_bar() -> None:
    from audiencefit.training.promote import Comparison

    def cmp(chal: float, champ: float, higher: bool, margin: float = 0.0) -> Comparison:
        return Comparison("m", higher, margin, 10, "2", chal, "1", champ)

    assert cmp(0.6, 0.5, True).passed
    assert not cmp(0.6, 0.5, True, margin=0.2).passed
    assert not cmp(0.5, 0.6, True).passed
    assert cmp(1.0, 2.0, False).passed
    assert not cmp(2.0, 1.0, False).passed
    assert not cmp(float("nan"), 1.0, False).passed


def _register_copy(settings, name: str, edit) -> str:
    """Register, as model ``name``, a copy of v1's logged model whose MLmodel dict ``edit`` changes; its URI."""
    import mlflow.artifacts
    import yaml

    from audiencefit.models.registry import client

    c = client(settings)
    location = c.get_model_version_download_uri("audiencefit", "1")
    # The copy lies in the local artifact store: a version stored elsewhere is refused (test below).
    dst = settings.data_dir / "mlartifacts" / "copies" / name
    local = Path(mlflow.artifacts.download_artifacts(artifact_uri=location, dst_path=str(dst)))
    mlmodel = yaml.safe_load((local / "MLmodel").read_text())
    edit(mlmodel)
    (local / "MLmodel").write_text(yaml.safe_dump(mlmodel))
    c.create_registered_model(name)
    version = c.create_model_version(name, source=local.as_uri())
    return f"models:/{name}/{version.version}"


def test_mlmodel_artifact_path_climbing_out_is_refused_and_nothing_moves(tracked, settings, store: Path, tmp_path):
    from audiencefit.models.registry import cache_dir, resolve_bundle

    # Where '../../../../victim' leads from the downloaded model (<data_dir>/registry-cache/.<name>-v1.tmp-*/model/
    # artifacts): <data_dir>/victim.
    victim = settings.data_dir / "victim"
    victim.mkdir()
    (victim / "bundle.json").write_text("{}")
    (victim / "keep.txt").write_text("not the registry's to move")

    def climb(mlmodel: dict) -> None:
        mlmodel["flavors"]["python_function"]["artifacts"]["bundle"]["path"] = "../../../../victim"

    uri = _register_copy(settings, "climber", climb)
    with pytest.raises(InputError, match=r"MLmodel, field 'flavors\.python_function\.artifacts\.bundle\.path'.*climbs"):
        resolve_bundle(uri, settings=settings)
    assert (victim / "keep.txt").read_text() == "not the registry's to move"  # still in place
    assert (victim / "bundle.json").is_file()
    assert not (cache_dir(settings) / "climber-v1").exists()
    assert not [p for p in cache_dir(settings).iterdir() if p.name.startswith(".climber")]  # no temp left


def test_mlmodel_bundle_with_unlisted_or_outside_files_never_reaches_the_cache(tracked, settings, tmp_path):
    import json

    from audiencefit.models.registry import cache_dir, resolve_bundle

    def absolute(mlmodel: dict) -> None:
        mlmodel["flavors"]["python_function"]["artifacts"]["bundle"]["path"] = str(tmp_path)

    with pytest.raises(InputError, match="absolute path"):
        resolve_bundle(_register_copy(settings, "absolute", absolute), settings=settings)

    # A bundle whose bundle.json lists a file outside it: refused before the copy, the cache stays empty.
    def keep(mlmodel: dict) -> None:
        pass

    uri = _register_copy(settings, "outsider", keep)
    rel = next((settings.data_dir / "mlartifacts" / "copies" / "outsider").rglob("bundle.json"))
    meta = json.loads(rel.read_text())
    meta["files"]["../../../../etc/passwd"] = "0" * 64
    rel.write_text(json.dumps(meta))
    with pytest.raises(InputError, match="climbs out"):
        resolve_bundle(uri, settings=settings)
    assert not (cache_dir(settings) / "outsider-v1").exists()


def test_version_stored_outside_the_local_artifact_store_is_refused(tracked, settings, tmp_path):
    import shutil

    import mlflow.artifacts

    from audiencefit.models.registry import cache_dir, client, resolve_bundle

    c = client(settings)
    location = c.get_model_version_download_uri("audiencefit", "1")
    local = Path(mlflow.artifacts.download_artifacts(artifact_uri=location, dst_path=str(tmp_path / "elsewhere")))
    c.create_registered_model("elsewhere")
    c.create_model_version("elsewhere", source=local.as_uri())
    with pytest.raises(InputError, match="not under the local artifact store"):
        resolve_bundle("models:/elsewhere/1", settings=settings)
    assert not (cache_dir(settings) / "elsewhere-v1").exists()
    shutil.rmtree(tmp_path / "elsewhere")


def test_service_serves_and_reloads_the_champion_from_the_registry(tracked, settings, small_features: Path) -> None:
    """``make run``'s last step: serve models:/audiencefit@champion; reloads by URI and by the configured source."""
    from fastapi.testclient import TestClient

    from audiencefit.models.registry import current_version
    from audiencefit.serving.app import create_app
    from audiencefit.training.promote import _set_champion

    if current_version("champion", settings=settings) is None:
        _set_champion(settings, "audiencefit", "1", None, "test")
    api = settings.model_copy(update={"api_keys": [SecretStr("k" * 20)], "admin_api_keys": [SecretStr("a" * 20)]})
    app = create_app(api, features_dir=small_features, bundle_source="models:/audiencefit@champion")
    with TestClient(app, raise_server_exceptions=False) as client:
        ready = client.get("/readyz").json()
        assert ready["ready"] is True and ready["last_reload_failed"] is False, ready
        admin = {"X-API-Key": "a" * 20}
        for body in ({"source": "configured"}, {"model_uri": "models:/audiencefit/1"}):
            resp = client.post("/admin/reload", json=body, headers=admin)
            assert resp.status_code == 200, resp.text
        cached = next((settings.data_dir / "registry-cache").glob("audiencefit-v1-*"))
        assert client.post("/admin/reload", json={"bundle_path": str(cached)}, headers=admin).status_code == 200


def test_registry_cache_tells_two_tracking_stores_apart(
    tracked, trained, settings, store: Path, small_training, monkeypatch
) -> None:
    """Version numbers restart in every tracking store: the same data directory used with another store (a fresh
    mlflow.db, a simulation's) must not serve the first store's cached v1 for the second store's v1."""
    from audiencefit.models.bundle import load_bundle
    from audiencefit.models.registry import resolve_bundle
    from audiencefit.training.tracking import log_training

    first = resolve_bundle("models:/audiencefit/1", settings=settings)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{store / 'other-mlflow.db'}")
    other = settings.model_copy(update={"seed": 8})
    retrained = small_training(other.seed)  # the same data, another seed: another bundle
    assert retrained.bundle_meta["bundle_id"] != trained.bundle_meta["bundle_id"]
    assert log_training(retrained, other).model_version == "1"
    second = resolve_bundle("models:/audiencefit/1", settings=other)
    assert second != first and second.parent == first.parent
    assert load_bundle(second).bundle_id == retrained.bundle_meta["bundle_id"]
    monkeypatch.undo()
    assert resolve_bundle("models:/audiencefit/1", settings=settings) == first
    assert load_bundle(first).bundle_id == trained.bundle_meta["bundle_id"]


def test_plan_without_a_model_flag_plans_with_the_champion(tracked, settings, small_features: Path, tmp_path) -> None:
    """The README's example, ``audiencefit plan --features F --brand brand.json --budget 5000``: no --model, no
    --bundle, so the champion plans (as ``score`` and ``serve`` do)."""
    import json

    from typer.testing import CliRunner

    import audiencefit.cli  # noqa: F401  (registers the commands)
    from audiencefit.cli._app import app
    from audiencefit.models.registry import current_version
    from audiencefit.settings import get_settings
    from audiencefit.training.promote import _set_champion

    if current_version("champion", settings=settings) is None:
        _set_champion(settings, "audiencefit", "1", None, "test")
    get_settings.cache_clear()  # the CLI reads the module's store from the environment
    brand = tmp_path / "brand.json"
    brand.write_text(json.dumps({"segments": [{"text": "fitness fans who lift weights and run marathons"}]}))
    args = ["plan", "--features", str(small_features), "--brand", str(brand), "--budget", "5000"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, (result.output, result.exception)
    plan = json.loads(result.stdout)
    assert plan["creators"], plan
    assert 0 < plan["total_cost"] <= 5000
    again = CliRunner().invoke(app, [*args, "--model", "models:/audiencefit@champion"])
    assert again.exit_code == 0 and json.loads(again.stdout) == plan
