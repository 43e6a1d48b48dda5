"""Every command's --help reads as a person writes it: no Python types (``<list[str]>``, ``<int range>``), no
machine bounds (``4611686018427387904``), and a help text for every flag."""

from __future__ import annotations

import re

import pytest
import typer
from typer.testing import CliRunner

import audiencefit.cli  # noqa: F401  (registers the commands)
from audiencefit.cli._app import app, human_type


def _command_paths() -> list[list[str]]:
    paths: list[list[str]] = []

    def walk(command: object, path: list[str]) -> None:
        paths.append(path)
        for name, sub in sorted(getattr(command, "commands", {}).items()):
            walk(sub, [*path, name])

    walk(typer.main.get_command(app), [])
    return paths


COMMANDS = _command_paths()
# Typer's labels of a Python type: <int>, <int range>, <float>, <str>, <path>, <list[str]>, <bool>, <datetime>...
PYTHON_TYPE = re.compile(r"<(?:list\[|(?:int|float|str|bool|path|file|uuid|datetime|tuple)(?: range)?>)", re.I)
ARTEFACTS = {
    "a Python type label": PYTHON_TYPE,
    "a Python annotation": re.compile(r"list\[|NoneType|typing\.|Optional\[|<function|<class|\bEnum\b"),
    "a number no one reads (a machine bound as default or range)": re.compile(r"\d{11,}"),
    "a dynamic default": re.compile(r"\(dynamic\)"),
    "an argument in braces on the usage line": re.compile(r"^Usage: .*\{", re.M),
}


def test_every_command_is_walked() -> None:
    names = {" ".join(p) for p in COMMANDS}
    assert {"", "serve", "score", "plan", "lookalikes", "features build", "models build", "index build"} <= names


@pytest.mark.parametrize("path", COMMANDS, ids=lambda p: " ".join(p) or "audiencefit")
def test_help_shows_no_python_artefacts(path: list[str]) -> None:
    result = CliRunner().invoke(app, [*path, "--help"], terminal_width=100)
    assert result.exit_code == 0, result.output
    for what, pattern in ARTEFACTS.items():
        found = pattern.search(result.output)
        assert found is None, f"'{' '.join(['audiencefit', *path])} --help' shows {what}: {found and found.group(0)!r}"


@pytest.mark.parametrize("path", COMMANDS, ids=lambda p: " ".join(p) or "audiencefit")
def test_every_flag_and_argument_has_a_help_text(path: list[str]) -> None:
    command = typer.main.get_command(app)
    for name in path:
        command = command.commands[name]  # type: ignore[attr-defined]
    for param in command.params:
        if not getattr(param, "hidden", False):
            assert (getattr(param, "help", None) or "").strip(), f"{' '.join(path)}: {param.name} has no help"


def test_the_labels_a_person_reads() -> None:
    assert human_type("list[str]") == "TEXT"
    assert human_type("int range") == "INTEGER"
    assert human_type("float") == "NUMBER"
    assert human_type("path") == "PATH"
    assert human_type("audience|content") == "[audience|content]"
    assert human_type("list[instagram|tiktok]") == "[instagram|tiktok]"


def test_the_help_test_catches_what_typer_prints_by_default() -> None:
    """The patterns find the artefacts this test exists for (so a pattern that matches nothing fails here)."""
    for sample in ("--segment <list[str]>", "--k <int range>", "--features <path>", "--creator <str>"):
        assert PYTHON_TYPE.search(sample), sample
    machine_bound = ARTEFACTS["a number no one reads (a machine bound as default or range)"]
    assert machine_bound.search("[0<=x<=4611686018427387904]")
    for prose in ("Default: <features>/index.", "brand_id=<id>/part-0.parquet", "<data_dir>/demo"):
        assert not PYTHON_TYPE.search(prose), prose


@pytest.mark.parametrize(
    ("args", "shown"),
    [
        (["lookalikes", "--help"], "--by [audience|content]"),
        (["search", "--help"], "--platform [instagram|tiktok|youtube"),
        (["promote", "--help"], "--metric [ndcg20_brand|spearman_er"),
        (["search", "--help"], "--segment TEXT"),
        (["plan", "--help"], "--budget NUMBER"),
        (["validate", "--help"], "DIR  Directory holding the input tables"),
    ],
)
def test_choices_are_choices_and_kinds_are_words(args: list[str], shown: str) -> None:
    result = CliRunner().invoke(app, args, terminal_width=200)
    assert shown in result.output, result.output


@pytest.mark.parametrize(
    ("args", "flag"),
    [
        (["lookalikes", "--features", "f", "--creator", "c", "--by", "captions"], "--by"),
        (["search", "--features", "f", "--segment", "x", "--platform", "myspace"], "--platform"),
        (["promote", "--metric", "accuracy"], "--metric"),
    ],
)
def test_a_value_outside_a_choice_is_refused_with_exit_2(args: list[str], flag: str) -> None:
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 2, result.output
    assert f"Invalid value for '{flag}'" in result.output


def test_the_choices_agree_with_what_the_code_accepts() -> None:
    from audiencefit.cli.index_cmd import PlatformChoice
    from audiencefit.cli.train_cmd import PromoteMetric
    from audiencefit.features.schemas import PLATFORMS
    from audiencefit.training.promote import DIRECTION

    assert [p.value for p in PlatformChoice] == list(PLATFORMS)
    assert [m.value for m in PromoteMetric] == list(DIRECTION)


@pytest.mark.parametrize("value", ["99999999999999999999", "-1", "ten"])
def test_follower_bounds_still_refuse_what_the_machine_cannot_hold(value: str) -> None:
    result = CliRunner().invoke(app, ["lookalikes", "--features", "f", "--creator", "c", "--max-followers", value])
    assert result.exit_code == 2, result.output
    assert "Invalid value for '--max-followers'" in result.output
