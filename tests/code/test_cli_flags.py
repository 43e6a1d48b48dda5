"""Every float flag refuses non-finite values at parse time (click's FloatRange lets NaN through any bound)."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

import audiencefit.cli  # noqa: F401  (registers the commands)
from audiencefit.cli._app import app
from audiencefit.cli._types import finite, finite_number

NON_FINITE = ["nan", "NaN", "inf", "-inf", "Infinity", "1e309"]

# (arguments before the flag, the flag): each command is given its required flags with values that are never read,
# since a flag's value is converted before the command runs.
FLOAT_FLAGS = [
    (["plan", "--features", "f", "--brand", "b.json"], "--budget"),
    (["train", "--data", "d", "--features", "f"], "--test-share"),
    (["promote"], "--margin"),
    (["search", "--features", "f", "--segment", "runners"], "--weight"),
    (["search", "--features", "f", "--segment", "runners"], "--min-quality"),
    (["simulate", "--world", "w", "--features", "f", "--out", "o"], "--exploration"),
]


@pytest.mark.parametrize(("args", "flag"), FLOAT_FLAGS)
@pytest.mark.parametrize("value", NON_FINITE)
def test_a_float_flag_refuses_non_finite_values_with_exit_2(args: list[str], flag: str, value: str) -> None:
    result = CliRunner().invoke(app, [*args, flag, value])
    assert result.exit_code == 2, result.output
    assert f"Invalid value for '{flag}'" in result.output
    assert "finite" in result.output or "not in the range" in result.output


@pytest.mark.parametrize(
    ("args", "value"),
    [
        (["plan", "--features", "f", "--brand", "b.json", "--budget"], "0.001"),
        (["search", "--features", "f", "--segment", "x", "--min-quality"], "-1"),
        (["search", "--features", "f", "--segment", "x", "--min-quality"], "101"),
        (["train", "--data", "d", "--features", "f", "--test-share"], "0.9"),
    ],
)
def test_a_float_flag_keeps_its_bounds(args: list[str], value: str) -> None:
    result = CliRunner().invoke(app, [*args, value])
    assert result.exit_code == 2, result.output
    assert "not in the range" in result.output


def test_finite_float_converts_ordinary_values() -> None:
    assert finite(min=0, max=1)("0.25") == 0.25
    assert finite()(3.0) == 3.0
    assert finite_number("1e3") == 1000.0
    for bad in ["nan", "inf", "1e309", "ten"]:
        with pytest.raises(ValueError, match="number"):
            finite_number(bad)


def test_min_segment_reach_refuses_non_finite_people(tmp_path) -> None:
    brand = tmp_path / "brand.json"
    brand.write_text('{"segments": [{"text": "runners"}]}')
    result = CliRunner().invoke(
        app,
        [
            *("plan", "--features", str(tmp_path), "--brand", str(brand), "--budget", "100"),
            *("--bundle", str(tmp_path), "--min-segment-reach", "runners=nan"),
        ],
    )
    assert result.exit_code != 0
    assert "--min-segment-reach" in str(result.exception) or "--min-segment-reach" in result.output


def test_plan_flags_share_the_planners_creator_limit() -> None:
    from audiencefit.cli import plan_cmd
    from audiencefit.models.planner import MAX_CREATORS

    assert plan_cmd.MAX_CREATORS == MAX_CREATORS


@pytest.mark.parametrize("value", [*NON_FINITE, "300,nan", "-5", "0", "300,,ten", ""])
def test_simulate_budgets_refuse_what_is_not_a_positive_finite_number(value: str) -> None:
    result = CliRunner().invoke(app, ["simulate", "--world", "w", "--features", "f", "--out", "o", "--budgets", value])
    assert result.exit_code == 2, result.output
    assert "--budgets" in result.output


def test_simulate_flags_share_the_simulations_and_the_apis_limits() -> None:
    from audiencefit import simulate
    from audiencefit.cli import simulate_cmd
    from audiencefit.models.explore import MAX_SHARE
    from audiencefit.serving.schemas import MAX_K

    assert simulate_cmd.MAX_ROUNDS == simulate.MAX_ROUNDS
    assert simulate_cmd.MAX_PICKS == simulate.MAX_PICKS == MAX_K
    assert simulate_cmd.MAX_SHARE == simulate.MAX_SHARE == MAX_SHARE


@pytest.mark.parametrize(
    "args",
    [
        ["demo-data", "--creators", "99999999999999999999"],
        ["demo-data", "--creators", "10", "--followers-per-creator", "99999999999999999999"],
        ["demo-data", "--creators", "10", "--brands", "99999999999999999999"],
        ["demo-data", "--creators", "10", "--seed", "99999999999999999999"],
        ["search", "--features", "f", "--segment", "x", "--max-followers", "99999999999999999999"],
        ["plan", "--features", "f", "--brand", "b.json", "--budget", "10", "--max-creators", "101"],
        ["validate", "d", "--max-issues", "99999999999999999999"],
        ["features", "build", "--data", "d", "--out", "o", "--partition-creators", "99999999999999999999"],
    ],
)
def test_an_integer_flag_too_large_for_the_machine_is_refused_with_exit_2(args: list[str]) -> None:
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 2, result.output
    assert "Invalid value for '--" in result.output and "less than or equal to" in result.output


MODEL_COMMANDS = ["serve", "score", "plan"]


@pytest.mark.parametrize("command", MODEL_COMMANDS)
def test_every_command_that_loads_a_model_takes_the_same_flags(command: str) -> None:
    shown = CliRunner().invoke(app, [command, "--help"], terminal_width=200)
    assert shown.exit_code == 0, shown.output
    assert "--bundle DIR" in shown.output and "--model URI" in shown.output
    assert "models:/audiencefit@champion" in shown.output  # the default, the same everywhere
    assert "--model-uri" not in shown.output  # the deprecated name is read but not shown


def test_no_model_flag_means_the_champion_and_model_uri_is_a_warned_alias(tmp_path, caplog) -> None:
    from audiencefit.cli._app import DEFAULT_MODEL_URI, model_source
    from audiencefit.features.errors import InputError

    assert model_source(None, None) == DEFAULT_MODEL_URI
    assert model_source(None, "models:/audiencefit/3") == "models:/audiencefit/3"
    assert model_source(tmp_path, None) == tmp_path
    with caplog.at_level("WARNING", logger="audiencefit.cli"):
        assert model_source(None, None, "models:/audiencefit/2") == "models:/audiencefit/2"
    assert "--model-uri is deprecated" in caplog.text and "use --model" in caplog.text
    both = [(tmp_path, "models:/a/1", None), (None, "models:/a/1", "models:/a/2"), (tmp_path, None, "models:/a/1")]
    for args in both:
        with pytest.raises(InputError, match="not both"):
            model_source(*args)
    with pytest.raises(InputError, match=r"--bundle .*not a directory"):
        model_source(tmp_path / "missing", None)


def test_the_deprecated_flag_still_works_on_the_command_line_and_says_so(tmp_path) -> None:
    result = CliRunner().invoke(
        app,
        [
            *("score", "--brands", str(tmp_path / "b.jsonl"), "--features", str(tmp_path / "missing")),
            *("--out", str(tmp_path / "out"), "--model-uri", "models:/audiencefit@champion"),
        ],
    )
    # The model source is read first (with its warning), then the missing feature set stops the command.
    assert "--model-uri is deprecated" in result.stderr
    assert "--features" in str(result.exception) and "not a directory" in str(result.exception)
    assert not (tmp_path / "out").exists()
