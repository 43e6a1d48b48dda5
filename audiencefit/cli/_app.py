"""The Typer application and its command groups; command modules register on these."""

from __future__ import annotations

import typer

app = typer.Typer(
    name="audiencefit",
    help=(
        "audiencefit: find the micro-influencers whose audience fits a brand, and predict their engagement "
        "and conversions before contracting."
    ),
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)
features_app = typer.Typer(help="Build feature sets from raw creator data.", no_args_is_help=True)
app.add_typer(features_app, name="features")
index_app = typer.Typer(help="Build the FAISS audience and content indexes.", no_args_is_help=True)
app.add_typer(index_app, name="index")
