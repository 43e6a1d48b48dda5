"""The ``audiencefit`` command line: one command per job. Heavy libraries are imported inside commands."""

from __future__ import annotations

import logging
import sys

import typer

from audiencefit.cli import (  # noqa: F401  (registers commands)
    demo,
    features_cmd,
    import_cmd,
    index_cmd,
    models_cmd,
    plan_cmd,
    score_cmd,
    serve_cmd,
    simulate_cmd,
    train_cmd,
    validate,
)
from audiencefit.cli._app import app
from audiencefit.features.errors import AudiencefitError
from audiencefit.logs import configure_logging, settings_secrets
from audiencefit.settings import get_settings


@app.callback()
def _root(
    verbose: bool = typer.Option(False, "--verbose", "-v", help="Log at DEBUG level."),
    log_json: bool = typer.Option(False, "--log-json", help="Write logs as one JSON object per line."),
) -> None:
    """audiencefit command line."""
    settings = get_settings()
    configure_logging(
        "DEBUG" if verbose else settings.log_level,
        "json" if log_json else settings.log_format,
        secrets=settings_secrets(settings),
    )


def main() -> None:
    """Entry point: run the CLI. audiencefit errors (bad settings included, for every command) print their
    message, with no traceback, and exit with their code; an operating-system error prints what failed on which
    path (its traceback is logged at DEBUG, ``-v``) and exits 2 when a path given to the command cannot be used as
    one (missing, a file where a directory is needed or the reverse, not permitted), 1 otherwise (e.g. a full
    disk); Ctrl-C exits 130."""
    try:
        app()
    except AudiencefitError as exc:
        sys.stderr.write(f"error: {exc}\n")
        sys.exit(exc.exit_code)
    except OSError as exc:
        logging.getLogger("audiencefit.cli").debug("operating-system error", exc_info=True)
        sys.stderr.write(f"error: {describe_os_error(exc)}\n")
        sys.exit(2 if isinstance(exc, BAD_PATH_ERRORS) else 1)
    except KeyboardInterrupt:
        sys.stderr.write("interrupted\n")
        sys.exit(130)


# A path the user gave (a flag, a setting) that cannot be used as asked: bad input, exit 2 like any other.
BAD_PATH_ERRORS = (FileNotFoundError, FileExistsError, NotADirectoryError, IsADirectoryError, PermissionError)


def describe_os_error(exc: OSError) -> str:
    """``[Errno 13] Permission denied: 'x'`` → ``permission denied: x`` (both paths of a failed rename)."""
    what = (exc.strerror or str(exc) or type(exc).__name__).lower()
    paths = [str(p) for p in (exc.filename, exc.filename2) if p is not None]
    return f"{what}: {' -> '.join(paths)}" if paths else what
