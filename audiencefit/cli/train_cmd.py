"""``audiencefit train`` and ``audiencefit promote``: train, track and register; move the champion alias."""

from __future__ import annotations

import sys
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from audiencefit.cli._app import app
from audiencefit.cli._types import finite
from audiencefit.logs import redact_url

if TYPE_CHECKING:
    import polars as pl

    from audiencefit.training.train import TrainResult


def _print_table(frame: pl.DataFrame, title: str) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title=title)
    for col in frame.columns:
        table.add_column(col, overflow="fold")
    for row in frame.iter_rows():
        table.add_row(*("" if v is None else f"{v:.3f}" if isinstance(v, float) else str(v) for v in row))
    console = Console() if sys.stdout.isatty() else Console(width=200)
    console.print(table)


def _print_loop(result: TrainResult) -> None:
    """What came from our own recommendations: the log join, the weights, the error on those creators."""
    shown, weights, rec = result.shown, result.weights, result.recommended
    if shown.with_id:
        sys.stdout.write(
            f"recommendation log: {shown.joined} of {shown.with_id} campaign rows with a recommendation_id joined "
            f"({shown.missing_id} unknown ids, {shown.creator_not_shown} creators not shown, "
            f"{shown.segment_mismatch} segment and {shown.brand_mismatch} brand disagreements)\n"
        )
        for warning in shown.warnings():
            sys.stdout.write(f"  warning: {warning}\n")
    sys.stdout.write(
        f"propensity weights: {weights.recommended} training rows from recommendations, effective sample size "
        f"{weights.ess_recommended:.1f}, {weights.clipped} clipped at {weights.max_weight:g}\n"
    )
    if rec.reason is not None:
        sys.stdout.write(f"recommended_* metrics absent: {rec.reason}\n")
    else:
        values = ", ".join(f"{k}={v:.0f}" if k.endswith("_rows") else f"{k}={v:.3f}" for k, v in rec.metrics.items())
        sys.stdout.write(f"on test campaigns from recommendations: {values}\n")


@app.command("train")
def train(
    data: Annotated[Path, typer.Option("--data", help="Raw data directory with past campaigns (e.g. the demo world).")],
    features: Annotated[Path, typer.Option("--features", help="Feature set directory (from 'features build').")],
    test_share: Annotated[
        float,
        typer.Option(
            "--test-share",
            parser=finite(min=0.05, max=0.5),
            help="Share of the newest campaigns held out for testing.",
        ),
    ] = 0.2,
    register: Annotated[
        bool,
        typer.Option(
            "--register/--no-register",
            help="Register the model as 'audiencefit' with alias 'challenger' (default) or only log the run.",
        ),
    ] = True,
    refit_all: Annotated[
        bool,
        typer.Option(
            "--refit-all/--no-refit-all",
            help="After the held-out evaluation, fit again on every campaign and serve that fit (the newest "
            "campaigns, e.g. from your latest recommendations, then teach the served model; the evaluation table "
            "describes the same recipe on the older rows). Default: serve the evaluated fit.",
        ),
    ] = False,
) -> None:
    """Train the engagement, conversion and price models, evaluate them against baselines, log to MLflow."""
    from audiencefit.models.registry import check_reachable
    from audiencefit.settings import get_settings
    from audiencefit.training.tracking import log_training
    from audiencefit.training.train import train_models

    settings = get_settings()
    check_reachable(settings.tracking_uri)  # a tracking server that is down fails now, not after the training
    result = train_models(data, features, settings, test_share=test_share, refit_all=refit_all)
    tracked = log_training(result, settings, register=register)
    _print_table(result.table, "evaluation on held-out campaigns (model first, then baselines)")
    if result.served is not None:
        import polars as pl

        served = result.served
        _print_table(
            pl.DataFrame([{k.removeprefix("served_"): v for k, v in served.metrics.items()}]),
            f"served_*: on the population the service ranks (top {settings.served_eval_candidates} candidates of "
            f"{served.per_brand.height} brands) against the world's truth, {served.seconds:.0f} s",
        )
    if result.refit is not None:
        sys.stdout.write(
            f"served model: refitted on all {result.training_set.frame.height} campaigns after the evaluation "
            f"(the table is the same recipe on the {result.split.train.height} training-split rows)\n"
        )
    wins = ", ".join(f"{k}={'yes' if v else 'NO'}" for k, v in result.wins.items())
    sys.stdout.write(f"beats every baseline: {wins}\n")
    sys.stdout.write(f"price: {', '.join(f'{k}={v:.3f}' for k, v in result.price.items())}\n")
    _print_loop(result)
    sys.stdout.write(f"mlflow run: {tracked.run_id} (tracking {redact_url(settings.tracking_uri)})\n")
    if tracked.url is not None:
        sys.stdout.write(f"run page: {tracked.url}\n")
    if tracked.model_version is not None:
        sys.stdout.write(f"registered: models:/audiencefit/{tracked.model_version} (alias challenger)\n")


# audiencefit.training.promote.DIRECTION's keys, not imported: training pulls mlflow into every CLI start;
# tests/code/test_cli_flags.py checks that the two agree.
class PromoteMetric(StrEnum):
    ndcg20_brand = "ndcg20_brand"
    spearman_er = "spearman_er"
    spearman_conversions = "spearman_conversions"
    mae_log_er = "mae_log_er"
    poisson_deviance = "poisson_deviance"


@app.command("promote")
def promote(
    margin: Annotated[
        float,
        typer.Option(
            "--margin",
            parser=finite(min=0.0),
            help="How much better (absolute, in the metric's units) the challenger must be.",
        ),
    ] = 0.0,
    metric: Annotated[
        PromoteMetric,
        typer.Option(
            "--metric",
            help="Metric compared on the challenger's held-out set: ndcg20_brand, spearman_er, "
            "spearman_conversions (higher is better), mae_log_er, poisson_deviance (lower is better).",
        ),
    ] = PromoteMetric.ndcg20_brand,
    force: Annotated[bool, typer.Option("--force", help="Promote the challenger even if it does not win.")] = False,
    rollback: Annotated[
        bool, typer.Option("--rollback", help="Move 'champion' back to the previous champion version instead.")
    ] = False,
) -> None:
    """Move the 'champion' alias to the current 'challenger' if it beats the champion; exit 1 if it does not."""
    from audiencefit.settings import get_settings
    from audiencefit.training import promote as promotion

    settings = get_settings()
    if rollback:
        done = promotion.rollback(settings)
        sys.stdout.write(done.reason + "\n")
        return
    outcome = promotion.promote(settings, metric=metric.value, margin=margin, force=force)
    if outcome.comparison is not None:
        _print_table(promotion.table(outcome.comparison), f"{metric.value} on the same held-out rows")
    if not outcome.promoted:
        stream = sys.stdout if outcome.comparison is None else sys.stderr
        stream.write(("" if outcome.comparison is None else "refused: ") + outcome.reason + "\n")
        if outcome.comparison is not None:
            raise typer.Exit(1)
        return
    sys.stdout.write(outcome.reason + "\n")
