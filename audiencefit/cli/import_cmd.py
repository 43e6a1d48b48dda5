"""``audiencefit import --from FORMAT SRC --out DIR``: convert an export into the data contracts, validated."""

from __future__ import annotations

import logging
import sys
from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer

from audiencefit.cli._app import app
from audiencefit.cli.features_cmd import parse_as_of

log = logging.getLogger(__name__)


class ImportFormat(StrEnum):
    mapping = "mapping"
    instagram = "instagram"


class MissingFollowers(StrEnum):
    error = "error"
    drop = "drop"


@app.command(
    "import",
    help=(
        "Convert an export at SRC (a file or a directory) into the data contracts: DIR gets creators.parquet, "
        "posts.parquet and export.json, ready for 'audiencefit features build --data DIR' and 'serve --data DIR'. "
        "Formats: 'mapping' reads any CSV, JSON Lines or parquet export with a column-mapping file (--mapping); "
        "'instagram' reads the post JSON of Instagram's web API and common scrapers (one object per post, as a "
        "JSON array, JSON Lines or a directory of files). Duplicate posts are merged (the last one read wins) and "
        "counted. Every problem is listed with its file, line and field, and then nothing is written (exit code 2). "
        "See docs/importing.md."
    ),
)
def import_command(
    source_format: Annotated[
        ImportFormat,
        typer.Option("--from", help="Format of the export: 'mapping' or 'instagram'.", case_sensitive=False),
    ],
    src: Annotated[
        Path,
        typer.Argument(
            metavar="SRC",
            help="The export: a file, or a directory (mapping: the files the mapping names; instagram: every "
            ".json, .jsonl and .ndjson file in it, in name order).",
        ),
    ],
    out: Annotated[
        Path,
        typer.Option(
            "--out", help="Directory to write (must be new or empty, unless --force); written whole or not at all."
        ),
    ],
    mapping: Annotated[
        Path | None,
        typer.Option(
            "--mapping",
            help="--from mapping: the column-mapping file (.yaml, .yml or .json) saying which source column is "
            "which contract column (docs/importing.md).",
        ),
    ] = None,
    profiles: Annotated[
        list[Path] | None,
        typer.Option(
            "--profiles",
            metavar="PATH",
            help="--from instagram: profile JSON (file or directory; repeatable) giving follower counts and bios "
            "the posts' owner objects lack: Instagram profile objects or JSON Lines such as "
            '{"username": "ana", "followers": 1204}.',
        ),
    ] = None,
    missing_followers: Annotated[
        MissingFollowers,
        typer.Option(
            "--missing-followers",
            help="--from instagram: what to do with creators no object gives a follower count for (the contract "
            "requires one): 'error' lists them and writes nothing; 'drop' leaves them and their posts out, counted "
            "in the summary.",
            case_sensitive=False,
        ),
    ] = MissingFollowers.error,
    export_time: Annotated[
        str | None,
        typer.Option(
            "--export-time",
            help="When the export was taken (ISO 8601; naive = UTC), written to DIR/export.json. Default: the newest "
            "modification time of the source files.",
        ),
    ] = None,
    force: Annotated[bool, typer.Option("--force", help="Replace DIR if it exists and is not empty.")] = False,
) -> None:
    """Convert an export into the data contracts."""
    from audiencefit.features.errors import InputError
    from audiencefit.features.export import format_instant
    from audiencefit.features.importing.output import ImportSummary, check_out, export_instant, write_import

    if source_format is ImportFormat.mapping and mapping is None:
        raise InputError("--from mapping needs --mapping FILE (the column-mapping file; see docs/importing.md)")
    if source_format is ImportFormat.instagram and mapping is not None:
        raise InputError("--mapping is for --from mapping; --from instagram reads the post JSON as it is")
    if source_format is ImportFormat.mapping and (profiles or missing_followers is not MissingFollowers.error):
        raise InputError("--profiles and --missing-followers are for --from instagram")
    if not src.exists() and not src.is_symlink():
        raise InputError(f"SRC {src}: no such file or directory")
    check_out(out, [src, *(profiles or [])], force=force)

    summary = ImportSummary()
    stated = parse_as_of(export_time, "--export-time")
    if source_format is ImportFormat.mapping:
        from audiencefit.features.importing.mapping import import_mapping, load_mapping, source_files

        assert mapping is not None
        parsed = load_mapping(mapping)
        instant = export_instant(stated, sorted(set(source_files(parsed, src).values())))
        assembled, files = import_mapping(parsed, src, instant.window)
    else:
        from audiencefit.features.importing.instagram import import_instagram, list_files

        instant = export_instant(stated, list_files(src)[0])
        result = import_instagram(
            src,
            instant.window,
            profiles=profiles or [],
            missing_followers=missing_followers.value,
            progress=sys.stderr.isatty(),
        )
        assembled, files = result.assembled, result.files
        summary.skipped_files = result.skipped
        summary.dropped = result.dropped
    summary.source_files = [str(f) for f in files]
    summary.creators = assembled.creators.height
    summary.posts = assembled.posts.height
    summary.duplicate_posts_merged = assembled.duplicate_posts_merged
    summary.duplicate_creators_merged = assembled.duplicate_creators_merged
    summary.export_instant = format_instant(instant.instant)
    write_import(assembled.creators, assembled.posts, out, instant, summary)

    typer.echo(f"Imported {len(files)} file(s) from {src} into {out}:")
    typer.echo(f"  creators: {summary.creators:,}")
    typer.echo(f"  posts: {summary.posts:,}")
    typer.echo(f"  duplicate posts merged: {summary.duplicate_posts_merged:,}")
    if summary.duplicate_creators_merged:
        typer.echo(f"  duplicate creators merged: {summary.duplicate_creators_merged:,}")
    for reason, n in summary.dropped.items():
        typer.echo(f"  dropped {reason}: {n:,}")
    for name in summary.skipped_files:
        typer.echo(f"  skipped {name}")
    typer.echo(f"  export instant: {summary.export_instant} ({instant.source})")
    typer.echo(f"VALID: {out} matches the data contracts. Next: audiencefit features build --data {out} --out FEATURES")
