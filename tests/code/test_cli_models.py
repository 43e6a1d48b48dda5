"""``audiencefit models build``: its help, its refusals (exit 2 naming the flag), the order it builds in."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from audiencefit.cli import main
from audiencefit.cli._app import app
from audiencefit.cli.models_cmd import build_order


def _run(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str]:
    monkeypatch.setattr(sys, "argv", ["audiencefit", "models", "build", *args])
    with pytest.raises(SystemExit) as exit_info:
        main()
    return int(exit_info.value.code or 0), capsys.readouterr().err


def test_help_explains_every_flag() -> None:
    result = CliRunner().invoke(app, ["models", "build", "--help"])
    assert result.exit_code == 0
    for flag in ("--backend", "--all", "--data-dir", "--progress", "--no-progress", "--check"):
        assert flag in result.output
    assert "AUDIENCEFIT_EMBEDDER" in result.output and "AUDIENCEFIT_DATA_DIR" in result.output


def test_models_lists_its_build_command() -> None:
    result = CliRunner().invoke(app, ["models", "--help"])
    assert result.exit_code == 0 and "build" in result.output


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--backend", "no-such-backend"], "--backend 'no-such-backend'"),
        (["--all", "--backend", "minilm-aligned"], "--backend or --all"),
    ],
)
def test_bad_flags_exit_2_naming_the_flag_and_write_nothing(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path, args: list[str], message: str
) -> None:
    code, err = _run(monkeypatch, capsys, "--data-dir", str(tmp_path / "data"), *args)
    assert code == 2
    assert message in err
    assert not (tmp_path / "data").exists()


def test_a_data_dir_that_is_a_file_is_refused(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    file = tmp_path / "a-file"
    file.write_text("x", encoding="utf-8")
    code, err = _run(monkeypatch, capsys, "--data-dir", str(file))
    assert code == 2
    assert f"--data-dir {file}: exists and is not a directory" in err


def test_an_unknown_flag_is_a_usage_error() -> None:
    result = CliRunner().invoke(app, ["models", "build", "--fast"])
    assert result.exit_code == 2
    assert "No such option" in result.output


def test_dependencies_come_first_and_once() -> None:
    # The aligned backend's queries go through the query_model setting's transformer: built after it.
    aligned = ["minilm-onnx-fp32", "minilm-static", "minilm-aligned"]
    assert build_order(["minilm-aligned"], "int8") == [*aligned, "minilm-onnx-int8"]
    assert build_order(["minilm-aligned"], "fp32") == ["minilm-onnx-fp32", "minilm-static", "minilm-aligned"]
    assert build_order(["minilm-aligned", "minilm-hybrid"], "fp32") == [
        "minilm-onnx-fp32",
        "minilm-static",
        "minilm-aligned",
        "minilm-onnx-int8",
        "minilm-hybrid",
    ]
