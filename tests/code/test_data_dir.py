"""audiencefit.settings.locate_data_dir: the project's data dir from any working directory (notebooks, scripts)."""

from __future__ import annotations

from pathlib import Path

import pytest

import audiencefit.settings as settings_module
from audiencefit.settings import get_settings, locate_data_dir, located_settings

CHECKOUT = Path(settings_module.__file__).resolve().parents[1]


def test_an_absolute_data_dir_is_kept(tmp_path: Path) -> None:
    assert locate_data_dir(tmp_path / "elsewhere", tmp_path / "a") == tmp_path / "elsewhere"


def test_a_relative_data_dir_is_found_in_the_start_or_a_parent(tmp_path: Path) -> None:
    (tmp_path / "audiencefit-data").mkdir()
    deep = tmp_path / "notebooks" / "sub"
    deep.mkdir(parents=True)
    assert locate_data_dir(Path("audiencefit-data"), deep) == tmp_path / "audiencefit-data"
    # The nearest one wins.
    (tmp_path / "notebooks" / "audiencefit-data").mkdir()
    assert locate_data_dir(Path("audiencefit-data"), deep) == tmp_path / "notebooks" / "audiencefit-data"


def test_without_one_on_the_way_up_it_is_the_checkouts(tmp_path: Path) -> None:
    assert (CHECKOUT / "pyproject.toml").is_file()
    assert locate_data_dir(Path("no-such-data-dir-anywhere"), tmp_path) == CHECKOUT / "no-such-data-dir-anywhere"


def test_located_settings_make_data_dir_and_the_mlflow_store_absolute(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "data").mkdir()
    (tmp_path / "notebooks").mkdir()
    monkeypatch.setenv("AUDIENCEFIT_DATA_DIR", "data")
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.chdir(tmp_path / "notebooks")
    get_settings.cache_clear()
    try:
        settings = located_settings()
    finally:
        get_settings.cache_clear()
    assert settings.data_dir == tmp_path / "data"
    assert settings.demo_dir == tmp_path / "data" / "demo"
    assert settings.tracking_uri == f"sqlite:///{tmp_path / 'data' / 'mlflow.db'}"
