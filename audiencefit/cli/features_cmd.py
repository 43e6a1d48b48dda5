"""``audiencefit features build``."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Annotated

import typer

from audiencefit.cli._app import features_app
from features.errors import InputError
from features.export import parse_instant


def parse_as_of(value: str | None, flag: str = "--as-of") -> datetime | None:
    """An ISO 8601 date or instant; naive values are UTC."""
    if value is None:
        return None
    return parse_instant(value, flag)


EXPORT_TIME_HELP = (
    "When the data was exported (ISO 8601; naive = UTC). Timestamps after it (plus one day) are refused and "
    "statistics such as days_since_last_post are taken as of it. Default: 'exported_at' in DIR/export.json, else "
    "the newest modification time of the table files."
)


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
    export_time: Annotated[str | None, typer.Option("--export-time", help=EXPORT_TIME_HELP)] = None,
    embedder: Annotated[
        str | None,
        typer.Option("--embedder", help="Embedding backend id (default: the AUDIENCEFIT_EMBEDDER setting)."),
    ] = None,
    partition_creators: Annotated[
        int | None,
        typer.Option(
            "--partition-creators",
            min=1,
            max=100_000_000,
            help="Creators computed at once (at least 1; default: the AUDIENCEFIT_FEATURE_PARTITION_CREATORS "
            "setting, 50,000). Memory grows with it, not with the creator count; the feature set is byte-identical "
            "whatever it is.",
        ),
    ] = None,
    progress: Annotated[
        bool,
        typer.Option(
            "--progress/--no-progress",
            help="Progress bars on stderr: texts/s per text column with one partition, one bar over the partitions "
            "with several.",
        ),
    ] = True,
) -> None:
    """Validate raw tables and build a versioned feature set (statistics, quality, embeddings, audience)."""
    import logging

    from audiencefit.settings import get_settings
    from features.build import build_feature_set
    from features.embed import known_backends

    cut = parse_as_of(as_of)
    exported = parse_as_of(export_time, "--export-time")
    if not data.is_dir():
        raise InputError(f"--data {data}: not a directory")
    settings = get_settings()
    if embedder:
        if embedder not in known_backends():
            raise InputError(f"--embedder {embedder!r}: unknown; known: {', '.join(known_backends())}")
        # Through the settings, so the manifest records this backend (queries are embedded with it).
        settings = settings.model_copy(update={"embedder": embedder})
    manifest = build_feature_set(
        data,
        out,
        as_of=cut,
        export_time=exported,
        settings=settings,
        partition_creators=partition_creators,
        progress=progress,
    )
    counts = manifest["row_counts"]
    logging.getLogger("audiencefit.cli").info(
        "features built",
        extra={
            "out": str(out),
            "feature_set_id": manifest["feature_set_id"],
            "creators": counts["creators"],
            "posts": counts["posts"],
            "followers": counts["followers"],
            "partitions": manifest["partitions"]["count"],
            **manifest["embedding"],
        },
    )
