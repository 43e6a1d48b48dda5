"""pyproject.toml as the installed setuptools reads it: the license an SPDX expression, without deprecation."""

from __future__ import annotations

import shutil
import tomllib
import warnings
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def test_license_is_an_spdx_expression_setuptools_accepts_without_warning(tmp_path, monkeypatch) -> None:
    setuptools_build = pytest.importorskip("setuptools.build_meta")
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    assert project["project"]["license"] == "Apache-2.0"
    # The metadata of a copy (pyproject, README, empty packages): nothing is written into the checkout.
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, tmp_path / name)
    for package in ("audiencefit", "features", "models", "training", "serving"):
        (tmp_path / package).mkdir()
        (tmp_path / package / "__init__.py").write_text("")
    (tmp_path / "meta").mkdir()
    monkeypatch.chdir(tmp_path)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        dist_info = setuptools_build.prepare_metadata_for_build_wheel(str(tmp_path / "meta"))
    about_license = [str(w.message) for w in caught if "license" in str(w.message).lower()]
    assert about_license == []
    metadata = (tmp_path / "meta" / dist_info / "METADATA").read_text(encoding="utf-8")
    assert "License-Expression: Apache-2.0" in metadata
