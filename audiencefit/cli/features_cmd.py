"""``audiencefit features build`` and ``audiencefit features update``."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer

from audiencefit.cli._app import features_app
from audiencefit.features.errors import InputError
from audiencefit.features.export import parse_instant


class Engine(StrEnum):
    """Where ``features build`` computes the partitions."""

    local = "local"
    ray = "ray"


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
        typer.Option(
            "--embedder",
            metavar="BACKEND",
            help="Embedding backend id, e.g. minilm-aligned (default: the AUDIENCEFIT_EMBEDDER setting; an unknown id "
            "is refused with the list of registered ones).",
        ),
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
    clusters_from: Annotated[
        Path | None,
        typer.Option(
            "--clusters-from",
            help="An earlier feature set whose audience clusters are kept instead of fitted anew (the same cluster "
            "ids and labels; sizes are counted again). Default: fit the clusters on this data.",
        ),
    ] = None,
    engine: Annotated[
        Engine,
        typer.Option(
            "--engine",
            help="Where the partitions are computed: 'local' (this process) or 'ray' (Ray Data tasks on a local "
            "runtime, or the cluster at RAY_ADDRESS; see docs/scaling.md). The feature set is the same.",
        ),
    ] = Engine.local,
    workers: Annotated[
        int | None,
        typer.Option("--workers", min=1, help="Ray workers of a local runtime (at least 1; default: one per core)."),
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

    from audiencefit.features.build import build_feature_set
    from audiencefit.features.embed import known_backends
    from audiencefit.settings import get_settings

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
        clusters_from=clusters_from,
        progress=progress,
        engine=engine.value,
        workers=workers,
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


@features_app.command("update")
def update(
    base: Annotated[
        Path, typer.Option("--base", help="The feature set to update (from 'features build' or an earlier update).")
    ],
    data: Annotated[
        Path, typer.Option("--data", help="Directory of raw tables: the whole new export, not only what changed.")
    ],
    out: Annotated[
        Path, typer.Option("--out", help="Feature set directory to write (replaced atomically; not --base).")
    ],
    export_time: Annotated[str | None, typer.Option("--export-time", help=EXPORT_TIME_HELP)] = None,
    partition_creators: Annotated[
        int | None,
        typer.Option(
            "--partition-creators",
            min=1,
            help="Creators read at once (at least 1; default: the AUDIENCEFIT_FEATURE_PARTITION_CREATORS setting).",
        ),
    ] = None,
    index: Annotated[
        bool,
        typer.Option(
            "--index/--no-index",
            help="Also bring the base's indexes (BASE/index, from 'index build') up to date in OUT/index: updated "
            "in place when few creators changed and the trained parts still fit, built again otherwise. Skipped "
            "when the base has no index.",
        ),
    ] = True,
) -> None:
    """Recompute only the creators whose raw rows changed since --base and carry the rest over.

    New, changed and removed creators are found by comparing per-creator digests of the raw rows; creators with rows
    at or after the base's cut-off are recomputed too. The audience clusters of --base are kept, so the result is
    byte for byte the feature set 'features build --clusters-from BASE' writes for the same data. Settings that
    change feature values, and the embedder, must be those of --base (otherwise: a full build).
    """
    import logging

    from audiencefit.features.build import update_feature_set
    from audiencefit.settings import get_settings

    exported = parse_as_of(export_time, "--export-time")
    if not data.is_dir():
        raise InputError(f"--data {data}: not a directory")
    if not base.is_dir():
        raise InputError(f"--base {base}: not a directory")
    result = update_feature_set(
        base, data, out, export_time=exported, settings=get_settings(), partition_creators=partition_creators
    )
    manifest = result.manifest
    cli_log = logging.getLogger("audiencefit.cli")
    cli_log.info(
        "features updated",
        extra={"out": str(out), "feature_set_id": manifest["feature_set_id"], **manifest["update"]},
    )
    base_index = base / "index"
    if index and base_index.is_dir():
        from audiencefit.models.index_update import update_index

        stats = update_index(
            base_index,
            result.base,
            out,
            result.recomputed.to_list(),
            result.removed.to_list(),
            settings=get_settings(),
            out=out / "index",
        )
        for kind, done in stats.items():
            cli_log.info("index updated", extra={"kind": kind, **done.to_json()})
