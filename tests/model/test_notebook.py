"""The analysts' notebooks run through a real Jupyter kernel (nbclient on ipykernel) on a small world laid out as
``make run`` lays out the data dir, from a working directory elsewhere: they find the data, register, promote,
explain and show their plots inline and their tables as tables."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

from tests.notebooks import NOTEBOOKS, kernel_env, outputs, run_notebook


@pytest.fixture(scope="module")
def project(small_world: Path, small_features: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``<root>/data`` with the demo world and its feature set where ``make run`` puts them; ``<root>/elsewhere/deeper``
    is where the kernels start."""
    root = tmp_path_factory.mktemp("notebook-project")
    (root / "data").mkdir()
    (root / "data" / "demo").symlink_to(small_world, target_is_directory=True)
    (root / "data" / "features").symlink_to(small_features, target_is_directory=True)
    (root / "elsewhere" / "deeper").mkdir(parents=True)
    return root


@pytest.fixture()
def kernel(project: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The kernels' environment: a relative AUDIENCEFIT_DATA_DIR (found from the working directory), MLflow
    under it (no MLFLOW_TRACKING_URI), nothing set for the notebooks' own parameters."""
    kernel_env(tmp_path / "jupyter", monkeypatch)
    monkeypatch.setenv("AUDIENCEFIT_DATA_DIR", "data")
    # Training's check on the served population (audiencefit.training.served_eval, minutes on a shared CI core) is
    # tested on its own; here it would only slow the notebooks down.
    monkeypatch.setenv("AUDIENCEFIT_SERVED_EVAL_CANDIDATES", "0")
    for name in [n for n in os.environ if n.startswith("RETRAIN_")] + ["MLFLOW_TRACKING_URI"]:
        monkeypatch.delenv(name, raising=False)
    return project / "elsewhere" / "deeper"


def test_retrain_runs_in_a_kernel_and_registers_and_promotes(project: Path, kernel: Path) -> None:
    from audiencefit.models.registry import current_version
    from audiencefit.settings import Settings

    notebook = run_notebook("retrain.py", kernel)

    settings = Settings(data_dir=project / "data")
    assert (project / "data" / "mlflow.db").is_file()  # the project's store, not one in the kernel's directory
    assert not (kernel / "data").exists()
    # No champion existed, so the first challenger is promoted.
    assert current_version("challenger", settings=settings) == "1"
    assert current_version("champion", settings=settings) == "1"
    printed = "".join(outputs(notebook, "stream"))
    assert "registered audiencefit v1 as challenger" in printed and "promoted: " in printed
    # Plots inline (gain, calibration, importance), tables as tables (parameters, campaigns, evaluation, comparison).
    assert len(outputs(notebook, "image/png")) >= 3
    tables = outputs(notebook, "text/html")
    assert len(tables) >= 4 and all("<table" in t for t in tables)
    assert any("audiencefit model" in t for t in tables)
    assert "Downloading artifacts" not in printed and "Warning" not in printed


def test_notebooks_are_percent_format_without_outputs() -> None:
    for path in sorted(NOTEBOOKS.glob("*.py")):
        text = path.read_text(encoding="utf-8")
        assert text.count("# %%") >= 5, path
        assert "format_name: percent" in text, path
        assert "matplotlib.use(" not in text, path  # the kernel's inline backend shows the plots
        compile(text, str(path), "exec")
        # A kernel started in notebooks/ has it on sys.path: a notebook named like a standard module (inspect.py)
        # would shadow it there (and crashes mypy).
        assert path.stem not in sys.stdlib_module_names, path


def test_inspect_runs_in_a_kernel_and_explains_compares_and_checks_outcomes(
    project: Path,
    kernel: Path,
    small_world: Path,
    small_features: Path,
    small_training,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from audiencefit.settings import Settings
    from audiencefit.training import promote as promotion
    from audiencefit.training.tracking import log_training

    # A champion (v1) and a different challenger (v2, another seed), as two retrains leave them (the session's
    # trainings of the small world, logged to this project's store).
    data = project / "inspect-data"
    data.mkdir()
    (data / "demo").symlink_to(small_world, target_is_directory=True)
    (data / "features").symlink_to(small_features, target_is_directory=True)
    for seed in (7, 8):
        settings = Settings(data_dir=data, seed=seed, served_eval_candidates=0)
        log_training(small_training(seed), settings)
        if seed == 7:
            assert promotion.promote(settings).promoted

    monkeypatch.setenv("AUDIENCEFIT_DATA_DIR", "inspect-data")
    notebook = run_notebook("inspect_models.py", kernel)

    printed = "".join(outputs(notebook, "stream"))
    tables = outputs(notebook, "text/html")
    # 1. the champion's first creator explained: the terms add up to the forecast served
    line = next(t for t in printed.splitlines() if " ranks #1: " in t)
    forecast, served = line.split(": ", 1)[1].split(" expected conversions (served: ")
    assert forecast == served.split(")")[0]
    assert any("factor" in t and "(baseline)" in t for t in tables)
    # 2. champion v1 and challenger v2: their logged metrics and rankings side by side
    assert any("ndcg20_brand" in t and "challenger" in t for t in tables)
    assert any("rank_champion" in t and "rank_challenger" in t for t in tables)
    # 3. forecasts against the campaigns since the champion's training data
    assert "campaigns started after" in printed and "nothing to compare" not in printed
    assert any("conversions_in_band" in t for t in tables)
    # Plots inline: the contributions and the calibration.
    assert len(outputs(notebook, "image/png")) >= 2
    assert "Downloading artifacts" not in printed and "Warning" not in printed
