"""``audiencefit features build``."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated

import typer

from audiencefit.cli._app import features_app
from features.errors import InputError


def parse_as_of(value: str | None) -> datetime | None:
    """An ISO 8601 date or instant; naive values are UTC."""
    if value is None:
        return None
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError as exc:
        raise InputError(f"--as-of {value!r}: not an ISO 8601 date or timestamp (e.g. 2026-03-01T00:00:00Z)") from exc
    return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)


@features_app.command("build")
def build(
    data: Annotated[
        Path, typer.Option("--data", help="Directory of raw tables (creators and posts required; followers optional).")
    ],
    out: Annotated[Path, typer.Option("--out", help="Feature set directory to write (replaced atomically).")],
    as_of: Annotated[
        str | None,
        typer.Option(
            "--as-of", help="Only use posts and followers observed before this ISO 8601 instant (point in time)."
        ),
    ] = None,
    embedder: Annotated[
        str | None,
        typer.Option("--embedder", help="Embedding backend id (default: the AUDIENCEFIT_EMBEDDER setting)."),
    ] = None,
) -> None:
    """Validate raw tables and build a versioned feature set (statistics, quality, embeddings, audience)."""
    import logging

    from audiencefit.settings import get_settings
    from features.build import build_feature_set
    from features.embed import known_backends

    cut = parse_as_of(as_of)
    if not data.is_dir():
        raise InputError(f"--data {data}: not a directory")
    settings = get_settings()
    if embedder:
        if embedder not in known_backends():
            raise InputError(f"--embedder {embedder!r}: unknown; known: {', '.join(known_backends())}")
        # Through the settings, so the manifest records this backend (queries are embedded with it).
        settings = settings.model_copy(update={"embedder": embedder})
    manifest = build_feature_set(data, out, as_of=cut, settings=settings)
    counts = manifest["row_counts"]
    logging.getLogger("audiencefit.cli").info(
        "features built",
        extra={
            "out": str(out),
            "feature_set_id": manifest["feature_set_id"],
            "creators": counts["creators"],
            "posts": counts["posts"],
            "followers": counts["followers"],
            **manifest["embedding"],
        },
    )
