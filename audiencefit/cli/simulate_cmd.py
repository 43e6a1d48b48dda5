"""``audiencefit simulate``: rounds of recommend → contract → outcomes → retrain → promote on a synthetic world."""

from __future__ import annotations

import math
import sys
from pathlib import Path
from typing import Annotated, Any

import typer

from audiencefit.cli._app import app
from audiencefit.cli._types import finite, finite_number

# audiencefit.simulate's bounds, not imported here (it pulls polars into every CLI start);
# tests/code/test_cli_flags.py checks that they agree.
MAX_ROUNDS = 50
MAX_PICKS = 200
MAX_SHARE = 0.5

SHOWN = (
    "rounds_seen",
    "model_version",
    "rec_sigma_log_conv",
    "rec_bias_log_conv",
    "rec_sigma_log_er",
    "pool_true_conv_per_dollar",
    "true_conv_per_dollar",
    "served_sigma_log_conv",
    "served_bias_log_conv",
    "served_ndcg20",
    "plan_losses_vs_topk_conv",
    "plan_oracle_losses_at_sigma",
)


def _print_row(row: dict[str, Any]) -> None:
    def cell(value: object) -> str:
        if isinstance(value, float):
            return f"{value:.3f}" if math.isfinite(value) else "—"
        return str(value)

    parts = [f"{name}={cell(row[name])}" for name in SHOWN if name in row]
    sys.stdout.write("model after " + ", ".join(parts) + "\n")
    sys.stdout.flush()


def _budgets(text: str) -> tuple[float, ...]:
    try:
        values = tuple(finite_number(part) for part in text.split(",") if part.strip())
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint="--budgets") from None
    if not values or any(v <= 0 for v in values):
        raise typer.BadParameter(f"{text!r}: give positive comma-separated numbers", param_hint="--budgets")
    return values


@app.command("simulate")
def simulate(
    world: Annotated[
        Path, typer.Option("--world", help="A synthetic world (from 'demo' or the generator), with its truth/.")
    ],
    features: Annotated[
        Path, typer.Option("--features", help="The world's feature set, with its index (from 'features build').")
    ],
    out: Annotated[
        Path,
        typer.Option(
            "--out",
            help="New or empty directory for everything the simulation writes: a copy of the world whose campaigns "
            "grow, its own MLflow store, the recommendation log, bundles, rounds.csv.",
        ),
    ],
    rounds: Annotated[
        int, typer.Option("--rounds", min=1, max=MAX_ROUNDS, help="Rounds of recommend → contract → retrain.")
    ] = 3,
    brands: Annotated[
        int,
        typer.Option("--brands", min=1, help="Brands that ask each round (chosen by --seed; all when fewer)."),
    ] = 24,
    picks: Annotated[
        int, typer.Option("--picks", min=1, max=MAX_PICKS, help="Creators each brand is shown and contracts per round.")
    ] = 10,
    exploration: Annotated[
        float,
        typer.Option(
            "--exploration",
            parser=finite(min=0.0, max=MAX_SHARE),
            help=f"Share (0–{MAX_SHARE}) of each answer given to exploratory (Thompson-sampled) picks; 0 = rank only.",
        ),
    ] = 0.0,
    seed: Annotated[
        int, typer.Option("--seed", min=0, help="Seed of the brands chosen, the exploration and the outcomes.")
    ] = 0,
    round_days: Annotated[
        int, typer.Option("--round-days", min=1, max=60, help="Days between rounds (the last ends at the export).")
    ] = 7,
    budgets: Annotated[
        str, typer.Option("--budgets", help="Comma-separated budgets of the planner check per round.")
    ] = "300,1000,3000",
    noise_seeds: Annotated[
        int, typer.Option("--noise-seeds", min=1, max=100, help="Noise draws of the oracle at the model's σ.")
    ] = 4,
) -> None:
    """Close the loop on a synthetic world: each round the brands ask the service (in process, the registry's
    champion), contract what they are shown, get outcomes drawn from the world's truth as campaigns with the
    answers' recommendation ids, and a model is retrained on every campaign and promoted. One line per model:
    its error on the creators it recommended, the conversions per dollar of what was contracted, its error on the
    served population and the planner's losses; all of it in <out>/rounds.csv and MLflow (experiment
    audiencefit-simulate)."""
    from audiencefit.settings import get_settings
    from audiencefit.simulate import SimulationConfig
    from audiencefit.simulate import simulate as run

    config = SimulationConfig(
        world=world,
        features=features,
        out=out,
        rounds=rounds,
        brands=brands,
        picks=picks,
        exploration=exploration,
        seed=seed,
        round_days=round_days,
        budgets=_budgets(budgets),
        noise_seeds=noise_seeds,
    )
    run(config, get_settings(), on_row=_print_row)
    sys.stdout.write(
        f"rounds: {out / 'rounds.csv'}; MLflow store: {out / 'mlflow.db'} (experiment audiencefit-simulate)\n"
    )
