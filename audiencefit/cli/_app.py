"""The Typer application and its command groups; command modules register on these."""

from __future__ import annotations

from pathlib import Path

import typer

from features.errors import InputError

DEFAULT_MODEL_URI = "models:/audiencefit@champion"

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
models_app = typer.Typer(
    help="Build or check the embedding model artifacts (ONNX models, static vectors, alignment map).",
    no_args_is_help=True,
)
app.add_typer(models_app, name="models")


def model_source(bundle: Path | None, model: str | None, *, model_flag: str, default: str | None) -> Path | str:
    """What a command scores with: a bundle directory or a registry URI (``default`` when neither is given).

    Both given, a bundle path that is not a directory, or neither without a default: ``InputError``.
    """
    if bundle is not None and model is not None:
        raise InputError(f"give --bundle or {model_flag}, not both")
    if bundle is not None:
        if not bundle.is_dir():
            raise InputError(f"--bundle {bundle}: not a directory")
        return bundle
    source = model or default
    if source is None:
        raise InputError(f"give exactly one of --bundle or {model_flag}")
    return source
