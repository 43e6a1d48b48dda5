"""pyproject.toml as the installed setuptools reads it: the license an SPDX expression, without deprecation; one
top-level package, audiencefit."""

from __future__ import annotations

import shutil
import tomllib
import warnings
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
LINKED = ("features", "models", "training", "serving")  # at the root, linked into audiencefit/


def _metadata_of_a_copy(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[Path, list[str]]:
    """The wheel metadata setuptools prepares for a copy of the checkout's layout (pyproject, README, empty
    packages at the root linked into audiencefit/ as in the checkout): nothing is written into the checkout.
    Returns the dist-info directory and the warnings setuptools gave."""
    setuptools_build = pytest.importorskip("setuptools.build_meta")
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, tmp_path / name)
    for package in ("audiencefit", *LINKED):
        (tmp_path / package).mkdir()
        (tmp_path / package / "__init__.py").write_text("")
    for package in LINKED:
        (tmp_path / "audiencefit" / package).symlink_to(f"../{package}", target_is_directory=True)
    (tmp_path / "meta").mkdir()
    monkeypatch.chdir(tmp_path)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        dist_info = setuptools_build.prepare_metadata_for_build_wheel(str(tmp_path / "meta"))
    return tmp_path / "meta" / dist_info, [str(w.message) for w in caught]


def test_license_is_an_spdx_expression_setuptools_accepts_without_warning(tmp_path, monkeypatch) -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    assert project["project"]["license"] == "Apache-2.0"
    dist_info, caught = _metadata_of_a_copy(tmp_path, monkeypatch)
    assert [w for w in caught if "license" in w.lower()] == []
    metadata = (dist_info / "METADATA").read_text(encoding="utf-8")
    assert "License-Expression: Apache-2.0" in metadata


def test_the_only_top_level_package_is_audiencefit(tmp_path, monkeypatch) -> None:
    # features, models, training and serving install as audiencefit.<name> (issue 21), never as names of their own
    # that would clash with another project's ``models``; the package data follows the new names.
    dist_info, _ = _metadata_of_a_copy(tmp_path, monkeypatch)
    assert (dist_info / "top_level.txt").read_text(encoding="utf-8").split() == ["audiencefit"]
    setuptools = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["tool"]["setuptools"]
    assert setuptools["packages"]["find"]["include"] == ["audiencefit*"]
    assert set(setuptools["package-data"]) <= {"*", *(f"audiencefit.{p}" for p in LINKED)}
