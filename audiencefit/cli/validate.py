"""``audiencefit validate DIR``: check input tables against the data contracts, report every problem, write nothing."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from audiencefit.cli._app import app
from audiencefit.cli.features_cmd import EXPORT_TIME_HELP, parse_as_of


@app.command(
    "validate",
    help=(
        "Check every input table in DIR (creators, posts, followers, brands, segments, campaigns as .parquet, "
        ".csv, .jsonl, .ndjson or .json) against the data contracts and print every problem with its file, row "
        "and column. Exit code 0 when all tables are valid, 2 otherwise. Writes nothing."
    ),
)
def validate_command(
    data_dir: Annotated[
        Path,
        typer.Argument(metavar="DIR", help="Directory holding the input tables, e.g. creators.csv and posts.parquet."),
    ],
    max_issues: Annotated[
        int,
        typer.Option(
            "--max-issues", min=0, max=1_000_000, help="Print at most N problems per file (0 prints all of them)."
        ),
    ] = 100,
    export_time: Annotated[str | None, typer.Option("--export-time", help=EXPORT_TIME_HELP)] = None,
) -> None:
    """Validate the input tables in DIR."""
    from rich.console import Console
    from rich.table import Table

    from audiencefit.features.dataset import validate_dir
    from audiencefit.features.export import format_instant

    report = validate_dir(data_dir, export_time=parse_as_of(export_time, "--export-time"))
    console = Console(highlight=False, soft_wrap=True)
    summary = Table(title=f"Input tables in {data_dir}", title_justify="left")
    for heading, justify in (("table", "left"), ("file", "left"), ("rows", "right"), ("status", "left")):
        summary.add_column(heading, justify=justify)  # type: ignore[arg-type]
    for table in report.tables:
        problems = f" ({len(table.issues)} problem(s))" if table.issues else ""
        summary.add_row(
            table.table,
            table.file.name if table.file is not None else "-",
            "-" if table.rows is None else f"{table.rows:,}",
            table.status + problems,
        )
    console.print(summary, markup=False)
    if report.export is not None:
        typer.echo(f"Export instant: {format_instant(report.export.instant)} (from {report.export.source})")
    if report.problems:
        typer.echo(f"\n{data_dir}: invalid")
        for problem in report.problems:
            typer.echo(f"  {problem}")

    for table in report.tables:
        if not table.issues and not table.warnings:
            continue
        label = table.file.name if table.file is not None else table.table
        typer.echo(f"\n{label}: {table.status}")
        lines = [str(issue) for issue in table.issues] + [str(w) for w in table.warnings]
        shown = lines if max_issues == 0 else lines[:max_issues]
        for line in shown:
            typer.echo(f"  {line}")
        if len(shown) < len(lines):
            typer.echo(f"  … and {len(lines) - len(shown)} more (use --max-issues 0 to see all)")
    if report.warnings:
        typer.echo("\nother files:")
        for warning in report.warnings:
            typer.echo(f"  {warning}")

    n_errors = len(report.errors)
    if n_errors:
        n_files = sum(1 for t in report.tables if t.issues) + (1 if report.problems else 0)
        typer.echo(f"\nINVALID: {n_errors} problem(s) in {n_files} table(s). Nothing was written.")
        raise typer.Exit(code=2)
    typer.echo(f"\nVALID: {len(report.tables)} table(s) match the data contracts.")
