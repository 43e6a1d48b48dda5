"""The retraining notebook runs end to end as a script on the small world and registers (and promotes) a model."""

from __future__ import annotations

import runpy
from pathlib import Path

import pytest

NOTEBOOK = Path(__file__).resolve().parents[2] / "notebooks" / "retrain.py"


@pytest.mark.filterwarnings("ignore::UserWarning")
def test_retrain_notebook_registers_and_promotes(
    small_world: Path, small_features: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from audiencefit.settings import Settings, get_settings
    from models.registry import current_version

    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'mlflow.db'}")
    monkeypatch.setenv("AUDIENCEFIT_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("RETRAIN_DATA_DIR", str(small_world))
    monkeypatch.setenv("RETRAIN_FEATURES_DIR", str(small_features))
    monkeypatch.setenv("RETRAIN_PROMOTE", "1")
    monkeypatch.setenv("MPLBACKEND", "Agg")
    get_settings.cache_clear()
    try:
        namespace = runpy.run_path(str(NOTEBOOK), run_name="__main__")
    finally:
        get_settings.cache_clear()

    settings = Settings(data_dir=tmp_path / "data")
    assert namespace["tracked"].model_version == "1"
    assert current_version("challenger", settings=settings) == "1"
    # No champion existed, so the first challenger is promoted.
    assert namespace["outcome"].promoted
    assert current_version("champion", settings=settings) == "1"
    assert namespace["comparison"].test_rows > 0


def test_notebook_is_percent_format_without_outputs() -> None:
    text = NOTEBOOK.read_text(encoding="utf-8")
    assert text.count("# %%") >= 5
    assert "format_name: percent" in text
    compile(text, str(NOTEBOOK), "exec")
