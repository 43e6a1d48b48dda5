"""Compiled tree models (audiencefit.models.forest): the same bits as LightGBM, a verified cache, the same
predictions."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import polars as pl
import pytest
from scipy.stats import nbinom

from audiencefit.models.bundle import load_bundle
from audiencefit.models.estimators import negbin_quantiles
from audiencefit.models.forest import compile_forest, compile_forests, forest_key, is_cached
from audiencefit.models.pair_features import FEATURE_COLUMNS


@pytest.fixture(scope="module")
def bundle(model_world):
    return load_bundle(model_world["bundle"])


@pytest.fixture(scope="module")
def cache(tmp_path_factory) -> Path:
    """One compiled-model cache for the module: each model is compiled once (seconds), then loaded."""
    return Path(tmp_path_factory.mktemp("forests"))


@pytest.fixture(scope="module")
def inputs(model_world) -> np.ndarray:
    """Real training rows plus random rows with NaNs and values far outside the training range."""
    real = pl.read_parquet(model_world["trainset"]).select(FEATURE_COLUMNS).to_numpy().astype(np.float64)
    rng = np.random.default_rng(3)
    noise = rng.normal(0.0, 3.0, size=(2_000, len(FEATURE_COLUMNS))) * np.abs(np.nanmean(real, axis=0) + 1.0)
    noise[rng.random(noise.shape) < 0.1] = np.nan
    return np.vstack([real, noise])


def test_every_compiled_model_predicts_lightgbms_numbers_bit_for_bit(bundle, inputs, cache):
    for name, model in bundle.models.regressors().items():
        x = np.ascontiguousarray(inputs[:, [FEATURE_COLUMNS.index(c) for c in model.columns]])
        expected = model.booster().predict(x, raw_score=True, num_threads=1)
        forest = compile_forest(model.to_text(), cache)
        for threads in (1, 2):
            got = forest.predict(x, threads)
            assert np.array_equal(got, expected), f"{name}: compiled trees differ from LightGBM"


def test_model_set_predictions_do_not_depend_on_the_predictor(model_world, inputs, cache):
    frame = pl.DataFrame(inputs, schema=list(FEATURE_COLUMNS), orient="row")
    plain = load_bundle(model_world["bundle"]).models
    compiled = load_bundle(model_world["bundle"]).models
    compiled.compile(cache)
    assert all(m.compiled_ is not None for m in compiled.regressors().values())
    assert all(m.compiled_ is None for m in plain.regressors().values())
    assert compiled.predict(frame).equals(plain.predict(frame))


def test_the_cache_is_reused_and_a_damaged_object_is_compiled_again(bundle, inputs, tmp_path):
    model = bundle.models.conversions_
    text = model.to_text()
    x = np.ascontiguousarray(inputs[:, [FEATURE_COLUMNS.index(c) for c in model.columns]])
    expected = model.booster().predict(x, raw_score=True)
    first = compile_forest(text, tmp_path)
    obj = tmp_path / f"{forest_key(text)}.o"
    sidecar = json.loads((tmp_path / f"{forest_key(text)}.json").read_text())
    assert obj.is_file() and sidecar["trees"] > 0
    stamp = obj.stat().st_mtime_ns
    again = compile_forest(text, tmp_path)  # loaded, not compiled: the object is untouched
    assert obj.stat().st_mtime_ns == stamp
    assert np.array_equal(again.predict(x), expected) and np.array_equal(first.predict(x), expected)
    # A truncated object fails its checksum: it is never loaded, a fresh one replaces it.
    obj.write_bytes(obj.read_bytes()[:100])
    repaired = compile_forest(text, tmp_path)
    assert np.array_equal(repaired.predict(x), expected)
    assert len(obj.read_bytes()) > 100
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")], "temporary files left behind"


def test_the_cache_key_changes_with_the_model():
    assert forest_key("tree a") != forest_key("tree b")
    assert forest_key("tree a") == forest_key("tree a")


def test_a_forest_refuses_a_matrix_of_the_wrong_width(bundle, cache):
    model = bundle.models.conversions_
    forest = compile_forest(model.to_text(), cache)
    with pytest.raises(ValueError, match="feature columns"):
        forest.predict(np.zeros((3, len(model.columns) + 1)))


def test_negative_binomial_quantiles_equal_scipy_stats():
    rng = np.random.default_rng(0)
    mu = np.exp(rng.normal(0.0, 3.0, 50_000))
    mu[:5] = [np.nan, 0.0, 1e-12, 1e9, np.inf]
    for theta in (1e-3, 0.7, 3.2, 1e6):
        lo, hi = negbin_quantiles(mu, theta, (0.1, 0.9))
        p = theta / (theta + np.maximum(mu, 1e-9))
        assert np.array_equal(lo, nbinom.ppf(0.1, theta, p), equal_nan=True)
        assert np.array_equal(hi, nbinom.ppf(0.9, theta, p), equal_nan=True)
    with pytest.raises(ValueError):
        negbin_quantiles(mu, 1.0, (0.0, 0.9))


def test_models_missing_from_the_cache_compile_in_worker_processes(bundle, inputs, tmp_path):
    models = [bundle.models.conversions_, bundle.models.engagement_["mean"]]
    forests = compile_forests([m.to_text() for m in models], tmp_path, workers=2)
    assert all(is_cached(m.to_text(), tmp_path) for m in models)
    for model, forest in zip(models, forests, strict=True):
        x = np.ascontiguousarray(inputs[:, [FEATURE_COLUMNS.index(c) for c in model.columns]])
        assert np.array_equal(forest.predict(x), model.booster().predict(x, raw_score=True))


def test_a_failed_compile_falls_back_to_lightgbm_with_the_same_numbers(model_world, inputs, monkeypatch, caplog):
    from audiencefit.models import estimators
    from audiencefit.serving.state import compile_trees
    from audiencefit.settings import Settings

    def broken(*args, **kwargs):
        raise RuntimeError("LLVM cannot target this CPU")

    monkeypatch.setattr(estimators, "compile_forests", broken)
    bundle = load_bundle(model_world["bundle"])
    settings = Settings(data_dir=model_world["data"], compiled_trees=True)
    with caplog.at_level("WARNING"):
        assert compile_trees(bundle, settings) is False
    assert "predicting with LightGBM" in caplog.text
    assert all(m.compiled_ is None for m in bundle.models.regressors().values())
    frame = pl.DataFrame(inputs[:200], schema=list(FEATURE_COLUMNS), orient="row")
    assert bundle.models.predict(frame).equals(load_bundle(model_world["bundle"]).models.predict(frame))


@pytest.mark.parametrize("how", ["not installed", "fails to import"])
def test_without_lleaves_or_llvmlite_the_service_predicts_with_lightgbm(model_world, inputs, monkeypatch, caplog, how):
    """The ``compiled-trees`` extra left out (its llvmlite pin conflicts with the environment, e.g. numba), or an
    llvmlite whose native library does not load: serving falls back to LightGBM's predictor, the same numbers."""
    import sys
    from importlib.metadata import PackageNotFoundError

    from audiencefit.models import forest
    from audiencefit.serving.state import compile_trees
    from audiencefit.settings import Settings

    # An entry of None in sys.modules makes `import name` raise ImportError, as a missing or broken package does.
    for name in ("lleaves", "llvmlite", "llvmlite.binding"):
        monkeypatch.setitem(sys.modules, name, None)
    forest._host.cache_clear()  # the host key imports llvmlite (cached once a compile ran in this process)
    if how == "not installed":

        def no_distribution(name: str) -> str:
            raise PackageNotFoundError(name)

        monkeypatch.setattr(forest, "version", no_distribution)
    bundle = load_bundle(model_world["bundle"])
    settings = Settings(data_dir=model_world["data"], compiled_trees=True)
    with caplog.at_level("WARNING"):
        assert compile_trees(bundle, settings) is False
    assert "predicting with LightGBM" in caplog.text and "audiencefit[compiled-trees]" in caplog.text
    assert all(m.compiled_ is None for m in bundle.models.regressors().values())
    frame = pl.DataFrame(inputs[:200], schema=list(FEATURE_COLUMNS), orient="row")
    assert bundle.models.predict(frame).equals(load_bundle(model_world["bundle"]).models.predict(frame))
    forest._host.cache_clear()  # computed again, with the real llvmlite, by the tests after this one


def test_the_compiled_trees_code_imports_without_lleaves():
    """Nothing imports lleaves or llvmlite at module level: models, serving and the CLI load without them (in a
    fresh process, so that no module of this one is loaded twice)."""
    import subprocess
    import sys

    code = (
        "import sys\n"
        "for name in ('lleaves', 'llvmlite', 'llvmlite.binding'):\n"
        "    sys.modules[name] = None\n"
        "import audiencefit.models.forest, audiencefit.models.estimators\n"
        "import audiencefit.serving.state, audiencefit.serving.app, audiencefit.cli\n"
    )
    root = Path(__file__).resolve().parents[2]
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=root, capture_output=True, text=True, timeout=120, check=False
    )
    assert done.returncode == 0, done.stderr
