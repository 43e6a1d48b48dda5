"""The Typer application and its command groups; command modules register on these."""

from __future__ import annotations

import logging
import re
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any

import typer
from typer.core import TyperCommand

from audiencefit.features.errors import InputError

DEFAULT_MODEL_URI = "models:/audiencefit@champion"

# The model a command uses, with the same flags on serve, score and plan: --bundle DIR or --model URI (default the
# champion). --model-uri was serve's name for --model; it is still read, hidden from --help, with a warning.
BundleOpt = Annotated[
    Path | None,
    typer.Option("--bundle", metavar="DIR", help="Model bundle directory (from 'train'), instead of --model."),
]
ModelOpt = Annotated[
    str | None,
    typer.Option(
        "--model",
        metavar="URI",
        help=f"Registered model: models:/NAME@ALIAS or models:/NAME/VERSION. Default: {DEFAULT_MODEL_URI} "
        "unless --bundle is given.",
    ),
]
ModelUriOpt = Annotated[
    str | None, typer.Option("--model-uri", metavar="URI", hidden=True, help="Deprecated name of --model.")
]

# Typer labels a value with its Python type (``<list[str]>``, ``<int range>``, ``<path>``); --help names it as a
# person reads it instead: what the value is (an option's metavar, e.g. ``DIR``), else its kind in words, with the
# choices of a choice in brackets.
_TYPE_LABEL = re.compile(r"<([^<>]+)>")
_REQUIRED_ARG = re.compile(r"^\{([^{}]+)\}")
_WORDS = {"int": "INTEGER", "int range": "INTEGER", "float": "NUMBER", "float range": "NUMBER", "str": "TEXT"}


def human_type(label: str) -> str:
    """``list[str]`` → ``TEXT``, ``int range`` → ``INTEGER``, ``path`` → ``PATH``, ``a|b`` → ``[a|b]``."""
    inner = label.removeprefix("list[").removesuffix("]") if label.startswith("list[") else label
    if "|" in inner:
        return f"[{inner}]"
    return _WORDS.get(inner, inner.upper().replace(" ", "-"))


class HumanCommand(TyperCommand):
    """A command whose --help shows each value's kind in words (see :func:`human_type`), and its usage line a
    required argument as ``DIR`` (Typer writes ``{DIR}``; an optional one stays ``[DIR]``)."""

    def collect_usage_pieces(self, ctx: Any) -> list[str]:
        return [_REQUIRED_ARG.sub(r"\1", piece) for piece in super().collect_usage_pieces(ctx)]

    def format_options(self, ctx: Any, formatter: Any) -> None:
        sections: dict[str, list[tuple[str, str]]] = {"Arguments": [], "Options": []}
        for param in self.get_params(ctx):
            record = param.get_help_record(ctx)
            if record is None:
                continue
            names, text = record
            if param.param_type_name == "argument" and param.metavar is not None:
                names = _TYPE_LABEL.sub("", names).rstrip()  # "DIR <path>": the metavar already says it
            names = _TYPE_LABEL.sub(lambda m: human_type(m.group(1)), names)
            sections["Arguments" if param.param_type_name == "argument" else "Options"].append((names, text))
        for title, rows in sections.items():
            if rows:
                with formatter.section(title):
                    formatter.write_dl(rows)


class HumanTyper(typer.Typer):
    """``typer.Typer`` whose commands are :class:`HumanCommand` unless a command asks for another class."""

    # Forwards every argument of typer.Typer.command unchanged; only the default of ``cls`` differs.
    def command(  # type: ignore[override]
        self, *args: Any, **kwargs: Any
    ) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
        kwargs.setdefault("cls", HumanCommand)
        return super().command(*args, **kwargs)


app = HumanTyper(
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
features_app = HumanTyper(help="Build feature sets from raw creator data.", no_args_is_help=True)
app.add_typer(features_app, name="features")
index_app = HumanTyper(help="Build the FAISS audience and content indexes.", no_args_is_help=True)
app.add_typer(index_app, name="index")
models_app = HumanTyper(
    help="Build or check the embedding model artifacts (ONNX models, static vectors, alignment map).",
    no_args_is_help=True,
)
app.add_typer(models_app, name="models")


def model_source(bundle: Path | None, model: str | None, model_uri: str | None = None) -> Path | str:
    """What a command scores with: the ``--bundle`` directory, the ``--model`` URI, or the champion when neither is
    given. ``model_uri`` is the deprecated ``--model-uri`` (read as ``--model``, with a warning).

    Two of them given, or a bundle path that is not a directory: ``InputError``.
    """
    if model_uri is not None:
        logging.getLogger("audiencefit.cli").warning(
            "--model-uri is deprecated and will be removed: use --model (same value)", extra={"model": model_uri}
        )
        if model is not None:
            raise InputError("give --model or its deprecated name --model-uri, not both")
        model = model_uri
    if bundle is not None and model is not None:
        raise InputError("give --bundle or --model, not both")
    if bundle is not None:
        if not bundle.is_dir():
            raise InputError(f"--bundle {bundle}: not a directory")
        return bundle
    return model or DEFAULT_MODEL_URI
