"""``audiencefit models build``: build the embedding artifacts up front (``make install`` and ``make run`` call it).

Without it the first command that embeds (``features build``, ``serve``) builds them on the way; with it that
cost is paid once, visibly: one progress bar per artifact with an ETA, a log line saying what is built and about
how long it takes, and nothing from the third-party libraries the builders use.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Annotated

import typer

from audiencefit.cli._app import models_app
from audiencefit.features.errors import InputError

logger = logging.getLogger("audiencefit.cli")


def build_order(keys: list[str], query_model: str) -> list[str]:
    """``keys`` and every artifact they are built from, each once, dependencies first; an aligned backend also
    needs the transformer that embeds its queries (the ``query_model`` setting), after it."""
    from audiencefit.features.embed_backends import QUERY_MODELS, SPECS

    order: list[str] = []

    def visit(key: str) -> None:
        for dep in SPECS[key].depends:
            visit(dep)
        if key not in order:
            order.append(key)
        if SPECS[key].kind == "aligned":
            visit(QUERY_MODELS[query_model])

    for key in keys:
        visit(key)
    return order


@models_app.command("build")
def build(
    backend: Annotated[
        list[str] | None,
        typer.Option(
            "--backend",
            metavar="BACKEND",
            help="Embedding backend whose artifacts to build (repeatable; with what it is built from). "
            "Default: the AUDIENCEFIT_EMBEDDER setting (minilm-aligned unless set).",
        ),
    ] = None,
    all_backends: Annotated[
        bool, typer.Option("--all", help="Build the artifacts of every registered fast backend.")
    ] = False,
    data_dir: Annotated[
        Path | None,
        typer.Option(
            "--data-dir",
            help="Data directory whose models/ receives the artifacts. Default: the AUDIENCEFIT_DATA_DIR setting.",
        ),
    ] = None,
    progress: Annotated[
        bool | None,
        typer.Option(
            "--progress/--no-progress",
            help="One progress bar per artifact on stderr. Default: shown when stderr is a terminal.",
            show_default=False,
        ),
    ] = None,
    check: Annotated[
        bool,
        typer.Option("--check", help="Build nothing: say which artifacts are ready, exit 1 if any is not."),
    ] = False,
) -> None:
    """Build (or check) the embedding model artifacts in the data directory; already built ones are only checked."""
    from audiencefit.features.embed_backends import SPECS, ensure_artifacts
    from audiencefit.features.embed_backends.artifacts import (
        ArtifactError,
        backend_id,
        check_artifacts,
        expected_source,
        models_dir,
    )
    from audiencefit.features.embed_backends.build_report import (
        BuildReporter,
        LogReporter,
        RichReporter,
        default_reporter,
    )
    from audiencefit.settings import get_settings

    if all_backends and backend:
        raise InputError("give --backend or --all, not both")
    settings = get_settings()
    if data_dir is not None:
        if data_dir.exists() and not data_dir.is_dir():
            raise InputError(f"--data-dir {data_dir}: exists and is not a directory")
        settings = settings.model_copy(update={"data_dir": data_dir})
    keys = sorted(SPECS) if all_backends else (backend or [settings.embedder])
    unknown = [k for k in keys if k not in SPECS]
    if unknown and not backend and not all_backends:
        logger.info(f"embedder {settings.embedder!r} has no artifacts to build", extra={"embedder": settings.embedder})
        return
    if unknown:
        raise InputError(
            f"--backend {', '.join(map(repr, unknown))}: no artifacts to build for it; "
            f"backends with artifacts: {', '.join(sorted(SPECS))}"
        )
    order = build_order(keys, settings.query_model)
    root = models_dir(settings)
    if check:
        missing = []
        try:
            source, _ = expected_source(root)
            unusable: str | None = None
        except ArtifactError as exc:  # no package and nothing copied: every artifact is missing for that reason
            source, unusable = "", str(exc)
        for key in order:
            problem = unusable or check_artifacts(root / key, backend_id(key, source))
            logger.info(f"{key}: {problem or 'ready'}", extra={"backend": key, "dir": str(root / key)})
            if problem is not None:
                missing.append(key)
        if missing:
            raise typer.Exit(1)
        return
    reporter: BuildReporter = default_reporter() if progress is None else RichReporter() if progress else LogReporter()
    started = time.perf_counter()
    for key in order:
        ensure_artifacts(key, settings, reporter=reporter)
    logger.info(
        f"embedding artifacts ready in {root} ({time.perf_counter() - started:.1f} s)",
        extra={"backends": order, "dir": str(root), "seconds": round(time.perf_counter() - started, 1)},
    )
