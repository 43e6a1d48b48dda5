"""JSON handed to the CLI (brand files) is parsed strictly: every hostile shape is a listed problem, exit 2."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

import audiencefit.cli  # noqa: F401  (registers the commands)
from audiencefit.cli._app import app
from audiencefit.features.errors import InputError
from audiencefit.features.untrusted_json import parse_json
from audiencefit.serving.batch import read_brands

HOSTILE = {
    "nan": ('{"segments": [{"text": "runners", "weight": NaN}]}', "NaN is not a JSON number"),
    "infinity": ('{"segments": [{"text": "runners", "weight": -Infinity}]}', "-Infinity is not a JSON number"),
    "overflow": ('{"segments": [{"text": "runners", "weight": 1e309}]}', "1e309 is too large"),
    "deep": ("[" * 200_000 + "]" * 200_000, "nested deeper than"),
    "digits": ('{"k": ' + "9" * 5000 + "}", "too many digits"),
    "surrogate": ('{"segments": [{"text": "\\ud800"}]}', "lone surrogate"),
    "truncated": ('{"segments": [', "not valid JSON"),
}


@pytest.mark.parametrize("name", sorted(HOSTILE))
def test_parse_json_turns_every_hostile_shape_into_a_value_error(name: str) -> None:
    text, message = HOSTILE[name]
    with pytest.raises(ValueError, match=message):
        parse_json(text)


def test_parse_json_keeps_ordinary_json() -> None:
    assert parse_json('{"a": [1, 2.5, "x", null, true]}') == {"a": [1, 2.5, "x", None, True]}
    assert parse_json("[" * 64 + "]" * 64) is not None


@pytest.mark.parametrize("name", sorted(HOSTILE))
def test_a_brands_file_lists_a_hostile_line_with_its_number(tmp_path: Path, name: str) -> None:
    text, message = HOSTILE[name]
    path = tmp_path / "brands.jsonl"
    path.write_text('{"brand_id": "a", "segments": [{"text": "runners"}]}\n' + text + "\n", encoding="utf-8")
    with pytest.raises(InputError) as err:
        read_brands(path)
    assert "line 2:" in str(err.value)
    assert message.split()[0] in str(err.value)


@pytest.mark.parametrize("name", sorted(HOSTILE))
def test_plan_reports_a_hostile_brand_file_with_exit_2(tmp_path: Path, name: str) -> None:
    text, _ = HOSTILE[name]
    brand = tmp_path / "brand.json"
    brand.write_text(text, encoding="utf-8")
    args = ["plan", "--features", str(tmp_path), "--brand", str(brand), "--budget", "100", "--bundle", str(tmp_path)]
    result = CliRunner().invoke(app, args)
    # The command raises InputError; main() prints it and exits 2 (CliRunner shows the exception itself).
    assert isinstance(result.exception, InputError), result.exception
    assert result.exception.exit_code == 2
    assert str(brand) in str(result.exception)


def test_plan_reports_a_brand_that_fails_validation_without_a_traceback(tmp_path: Path) -> None:
    brand = tmp_path / "brand.json"
    brand.write_text('{"segments": [{"text": "runners"}], "k": "many"}', encoding="utf-8")
    args = ["plan", "--features", str(tmp_path), "--brand", str(brand), "--budget", "100", "--bundle", str(tmp_path)]
    result = CliRunner().invoke(app, args)
    assert isinstance(result.exception, InputError), result.exception
    assert "k" in str(result.exception)
