"""The input of the out-of-core feature build: raw tables read in bounded chunks, validated, and spilled to disk
as creator partitions (a :class:`~audiencefit.features.partitions.PartitionSource`).

:func:`stream_partitions` does what :func:`audiencefit.features.dataset.load_dataset` does for ``creators``, ``posts``
and ``followers`` (optional) without holding a whole posts or followers table: it reads ``creators`` whole (one short
row per creator) and cuts its sorted ids into ranges of ``partition_creators``
(:func:`audiencefit.features.partitions.creator_ranges`); then it reads ``posts`` and ``followers`` chunk by chunk
(:func:`audiencefit.features.io.iter_raw_chunks`), validates each chunk with the same code as ``load_dataset``
(:func:`audiencefit.features.validate.validate_chunk`, issues merged across chunks by
:class:`~audiencefit.features.validate.IssueTally` so every message, row number and cap is the one ``load_dataset``
gives), checks each chunk's foreign keys against the creators, pseudonymises follower ids, and appends each chunk's rows
to per-partition part files. Only key columns are held for the whole table, for the uniqueness checks. When every table
is valid, each partition's parts are joined into one parquet file per table (written to a temporary name, then renamed);
on any problem one :class:`~audiencefit.features.errors.InputError` lists all of them, in ``load_dataset``'s order, and
nothing is left in the spill directory.

Files that cannot be read in chunks are read whole, exactly as ``load_dataset`` reads them, and memory is then
that file's: a JSON array (``.json`` holding ``[...]``), a text file with classic Mac line endings, a CSV with a
row longer than a block, and any malformed file (bad UTF-8, broken CSV quoting, unparsable JSON lines: the whole
read lists the problems with their lines, which is the error path only). CSV values with quoted line breaks are
chunked safely: pyarrow's streaming parser cuts blocks at record ends, never inside a quoted value.
"""

from __future__ import annotations

import logging
import os
import secrets
import shutil
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from types import TracebackType

import polars as pl

from audiencefit.features.dataset import (
    Dataset,
    check_data_dir,
    ignored_files,
    locate_tables,
    missing_table_issues,
)
from audiencefit.features.errors import InputError, Issue
from audiencefit.features.export import ExportInstant, TimeWindow, resolve_export_instant
from audiencefit.features.io import ColumnsDifferError, UnsplittableError, iter_raw_chunks, read_raw
from audiencefit.features.partitions import creator_ranges
from audiencefit.features.pseudonymise import PSEUDONYMISED_COLUMNS, pseudonymise_ids
from audiencefit.features.schemas import TABLE_ORDER, TABLES, TableSchema
from audiencefit.features.validate import (
    IssueTally,
    check_foreign_keys,
    check_unique,
    missing_columns,
    split_issues,
    validate_chunk,
    validate_table,
)

logger = logging.getLogger(__name__)

STREAMED_TABLES = ("creators", "posts", "followers")
DEFAULT_CHUNK_ROWS = 250_000  # parquet rows per record batch
DEFAULT_CHUNK_BYTES = 64 << 20  # CSV / JSON Lines bytes per chunk
_PART = "part-{chunk:06d}.parquet"


@dataclass
class SpilledPartitions:
    """Validated, pseudonymised creator partitions in parquet files under ``spill_dir`` (a
    :class:`~audiencefit.features.partitions.PartitionSource`). ``spill_dir`` is the caller's: remove the files with
    :meth:`cleanup`, or use the object as a context manager. ``chunks`` counts the pieces each table was read in
    and ``read_whole`` names the tables that had to be read whole (see the module docstring)."""

    spill_dir: Path
    n_partitions: int
    export: ExportInstant | None
    source_files: Mapping[str, Path]
    row_counts: Mapping[str, int]
    warnings: tuple[Issue, ...] = ()
    has_followers: bool = False
    chunks: Mapping[str, int] = field(default_factory=dict)
    read_whole: tuple[str, ...] = ()
    files: list[Path] = field(default_factory=list)

    def path(self, table: str, i: int) -> Path:
        """The spill file of ``table`` for partition ``i``."""
        return self.spill_dir / f"{table}-{i:05d}.parquet"

    def load(self, i: int) -> Dataset:
        """Partition ``i``: its creators sorted by ``creator_id``, their posts and followers in input order."""
        if not 0 <= i < self.n_partitions:
            raise IndexError(f"partition {i} out of range: there are {self.n_partitions}")
        frames = {}
        for table in STREAMED_TABLES:
            if table == "followers" and not self.has_followers:
                continue
            path = self.path(table, i)
            if not path.is_file():
                raise InputError(f"spilled partition file missing: {path} (was the spill directory cleaned up?)")
            frames[table] = pl.read_parquet(path)
        return Dataset(
            creators=frames["creators"],
            posts=frames["posts"],
            followers=frames.get("followers"),
            source_files=dict(self.source_files),
            warnings=self.warnings,
            export=self.export,
        )

    def cleanup(self) -> None:
        """Remove the spilled partition files (the directory itself stays)."""
        for path in self.files:
            path.unlink(missing_ok=True)
        self.files = []

    def __enter__(self) -> SpilledPartitions:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.cleanup()


def stream_partitions(
    data_dir: Path,
    spill_dir: Path,
    *,
    secret: str,
    export_time: datetime | None = None,
    partition_creators: int,
    chunk_rows: int = DEFAULT_CHUNK_ROWS,
    chunk_bytes: int = DEFAULT_CHUNK_BYTES,
    progress: bool = False,
) -> SpilledPartitions:
    """Validate ``creators``, ``posts`` and ``followers`` of ``data_dir`` in chunks and spill them to ``spill_dir``
    as partitions of ``partition_creators`` creators (see the module docstring).

    Accepts and refuses exactly what ``load_dataset(data_dir, secret=secret, tables=["followers"],
    export_time=export_time)`` does, with the same messages; the partitions hold the same frames, filtered to
    their creators. ``chunk_rows`` (parquet) and ``chunk_bytes`` (CSV, JSON Lines) bound what is read at once.
    ``spill_dir`` must be missing or empty. Raises InputError on any problem, leaving ``spill_dir`` as it was
    (removed again when this call created it).
    """
    if not secret:
        raise InputError("the follower id secret is empty; set AUDIENCEFIT_FOLLOWER_ID_SECRET")
    if partition_creators < 1:
        raise InputError(f"partition_creators must be at least 1, got {partition_creators}")
    if chunk_rows < 1 or chunk_bytes < 1:
        raise InputError(f"chunk_rows and chunk_bytes must be at least 1, got {chunk_rows} and {chunk_bytes}")
    check_data_dir(data_dir)
    if spill_dir.exists() and (not spill_dir.is_dir() or any(spill_dir.iterdir())):
        raise InputError(f"the spill directory {spill_dir} must be missing or empty")
    created = not spill_dir.exists()
    spill_dir.mkdir(parents=True, exist_ok=True)
    staging = spill_dir / f".staging-{os.getpid()}-{secrets.token_hex(4)}"
    staging.mkdir()
    written: list[Path] = []
    try:
        result = _stream(
            data_dir,
            spill_dir,
            staging,
            secret=secret,
            export_time=export_time,
            partition_creators=partition_creators,
            chunk_rows=chunk_rows,
            chunk_bytes=chunk_bytes,
            progress=progress,
            written=written,
        )
    except BaseException:
        for path in written:
            path.unlink(missing_ok=True)
        shutil.rmtree(staging, ignore_errors=True)
        if created:
            shutil.rmtree(spill_dir, ignore_errors=True)
        raise
    shutil.rmtree(staging, ignore_errors=True)
    return result


@dataclass
class _TableOutcome:
    errors: list[Issue] = field(default_factory=list)
    warnings: list[Issue] = field(default_factory=list)
    foreign: list[Issue] = field(default_factory=list)
    rows: int = 0
    chunks: int = 1
    whole: bool = False


def _stream(
    data_dir: Path,
    spill_dir: Path,
    staging: Path,
    *,
    secret: str,
    export_time: datetime | None,
    partition_creators: int,
    chunk_rows: int,
    chunk_bytes: int,
    progress: bool,
    written: list[Path],
) -> SpilledPartitions:
    found = locate_tables(data_dir)
    paths = found.paths
    issues: dict[str, list[Issue]] = {t: list(found.issues.get(t, [])) for t in TABLE_ORDER}
    load = [t for t in STREAMED_TABLES if TABLES[t].required or t in paths]
    problems: list[Issue] = []
    export: ExportInstant | None = None
    try:
        export = resolve_export_instant(data_dir, export_time, [paths[t] for t in load if t in paths])
    except InputError as exc:
        problems = exc.issues or [Issue(table="-", problem=str(exc))]
    window = export.window if export else None
    files = {t: paths[t].name for t in load if t in paths}

    creators: pl.DataFrame | None = None
    outcomes: dict[str, _TableOutcome] = {}
    creators_path = paths.get("creators")
    if "creators" in found.ambiguous:
        pass
    elif creators_path is None:
        issues["creators"].extend(missing_table_issues("creators", paths, data_dir))
    else:
        try:
            raw = read_raw(creators_path, TABLES["creators"])
        except InputError as exc:
            issues["creators"].extend(exc.issues)
        else:
            creators, creator_issues = validate_table(raw, TABLES["creators"], creators_path.name, window=window)
            del raw
            errors, warnings = split_issues(creator_issues)
            outcomes["creators"] = _TableOutcome(errors=errors, warnings=warnings, rows=creators.height)

    ordered = creators.sort("creator_id") if creators is not None else None
    ranges = creator_ranges(ordered["creator_id"], partition_creators) if ordered is not None else [(0, 0)]
    starts = (
        ordered["creator_id"].gather([lo for lo, hi in ranges if hi > lo]).fill_null("")
        if ordered is not None
        else None
    )
    for table in ("posts", "followers"):
        if table not in load or table in found.ambiguous:
            continue
        path = paths.get(table)
        if path is None:
            issues[table].extend(missing_table_issues(table, paths, data_dir))
            continue
        try:
            outcomes[table] = _stream_table(
                path,
                TABLES[table],
                _Routing(creators, files, starts, staging / table, secret, window),
                chunk_rows=chunk_rows,
                chunk_bytes=chunk_bytes,
                progress=progress,
            )
        except InputError as exc:
            issues[table].extend(exc.issues)

    for table, outcome in outcomes.items():
        issues[table].extend(outcome.errors)
    for table, outcome in outcomes.items():
        issues[table].extend(outcome.foreign)
    errors = problems + [i for t in TABLE_ORDER for i in issues[t]]
    if errors:
        raise InputError(errors)
    assert ordered is not None  # creators were read, or there would be an issue
    all_warnings = [w for t in TABLE_ORDER if t in outcomes for w in outcomes[t].warnings]
    all_warnings += ignored_files(data_dir, paths, found.ambiguous)
    for warning in all_warnings:
        logger.warning(str(warning))

    has_followers = "followers" in outcomes
    result = SpilledPartitions(
        spill_dir=spill_dir,
        n_partitions=len(ranges),
        export=export,
        source_files={t: paths[t] for t in load},
        row_counts={t: outcomes[t].rows if t in outcomes else 0 for t in STREAMED_TABLES},
        warnings=tuple(all_warnings),
        has_followers=has_followers,
        chunks={t: o.chunks for t, o in outcomes.items()},
        read_whole=tuple(t for t, o in outcomes.items() if o.whole),
    )
    for i, (lo, hi) in enumerate(ranges):
        target = result.path("creators", i)
        _write_spill(ordered.slice(lo, hi - lo), target, written)
        for table in ("posts", "followers") if has_followers else ("posts",):
            parts = sorted((staging / table / f"p{i:05d}").glob("part-*.parquet"))
            frame = pl.concat([pl.read_parquet(p) for p in parts]) if parts else _empty(TABLES[table])
            _write_spill(frame, result.path(table, i), written)
            for part in parts:
                part.unlink()
    result.files = list(written)
    logger.info(
        "dataset streamed into partitions",
        extra={
            "data_dir": str(data_dir),
            "spill_dir": str(spill_dir),
            "partitions": len(ranges),
            "rows": dict(result.row_counts),
        },
    )
    return result


@dataclass(frozen=True)
class _Routing:
    """What every chunk of a table is checked against and where its rows go."""

    creators: pl.DataFrame | None
    files: Mapping[str, str]
    starts: pl.Series | None  # the first creator_id of each partition, ascending
    out: Path
    secret: str
    window: TimeWindow | None


def _stream_table(
    path: Path, schema: TableSchema, routing: _Routing, *, chunk_rows: int, chunk_bytes: int, progress: bool
) -> _TableOutcome:
    """Validate, check, pseudonymise and route one table chunk by chunk, reading it whole when it must be."""
    columns: list[str] | None = None
    while True:
        try:
            chunks = iter_raw_chunks(path, schema, chunk_rows=chunk_rows, chunk_bytes=chunk_bytes, columns=columns)
            return _consume(chunks, path, schema, routing, progress)
        except ColumnsDifferError as exc:
            if columns is not None:
                raise UnsplittableError("the columns changed between two readings") from exc
            shutil.rmtree(routing.out, ignore_errors=True)
            columns = exc.columns
            logger.info("JSON lines hold different keys; reading again with all of them", extra={"file": path.name})
        except UnsplittableError as exc:
            shutil.rmtree(routing.out, ignore_errors=True)
            logger.warning(
                "table read whole, not in chunks", extra={"file": path.name, "reason": _first_line(str(exc))}
            )
            outcome = _consume(iter([read_raw(path, schema)]), path, schema, routing, progress)
            outcome.whole = True
            return outcome


def _consume(
    chunks: Iterator[pl.DataFrame], path: Path, schema: TableSchema, routing: _Routing, progress: bool
) -> _TableOutcome:
    from rich.progress import Progress, TextColumn, TimeElapsedColumn

    table = schema.name
    tally = IssueTally()
    foreign = IssueTally()
    key_columns = list(dict.fromkeys([*schema.primary_key, *(c.name for c in schema.columns if c.unique)]))
    keys: list[pl.DataFrame] = []
    present: list[str] = []
    offset = 0
    number = -1
    refs = {"creators": routing.creators} if routing.creators is not None else {}
    with Progress(
        TextColumn("{task.description}"),
        TextColumn("{task.completed:,.0f} rows"),
        TimeElapsedColumn(),
        disable=not progress,
    ) as bar:
        task = bar.add_task(f"{path.name}", total=None)
        for number, raw in enumerate(chunks):
            if number == 0:
                present = raw.columns
            frame = validate_chunk(raw, schema, path.name, offset=offset, tally=tally, window=routing.window)
            del raw
            keys.append(frame.select(key_columns))
            if refs:
                check_foreign_keys({**refs, table: frame}, routing.files, chunks={table: (offset, foreign)})
            for column in PSEUDONYMISED_COLUMNS.get(table, ()):
                frame = frame.with_columns(pseudonymise_ids(frame[column], routing.secret))
            _route(frame, routing, number)
            offset += frame.height
            bar.update(task, completed=offset)
    key_frame = pl.concat(keys) if keys else pl.DataFrame(schema={c: schema.polars_schema[c] for c in key_columns})
    del keys
    unique = check_unique(key_frame, schema, path.name, missing_columns(present, schema))
    errors, warnings = split_issues(tally.issues() + unique)
    return _TableOutcome(errors=errors, warnings=warnings, foreign=foreign.issues(), rows=offset, chunks=number + 1)


def _route(frame: pl.DataFrame, routing: _Routing, chunk: int) -> None:
    """Append the chunk's rows to the part files of their partitions (rows in input order within each)."""
    if routing.starts is None or routing.starts.is_empty() or frame.is_empty():
        return  # no creators to route to: the table's problems are being collected, nothing will be handed out
    ids = frame["creator_id"].fill_null("")
    part = (routing.starts.search_sorted(ids, side="right").cast(pl.Int64) - 1).clip(lower_bound=0)
    grouped = frame.with_columns(part.alias("__part")).partition_by("__part", maintain_order=True, as_dict=True)
    for (index, *_), rows in grouped.items():
        target = routing.out / f"p{int(index):05d}" / _PART.format(chunk=chunk)
        target.parent.mkdir(parents=True, exist_ok=True)
        rows.drop("__part").write_parquet(target, compression="lz4", statistics=False)


def _write_spill(frame: pl.DataFrame, path: Path, written: list[Path]) -> None:
    """Write a partition file under a temporary name, then rename it (no fsync: spill files are scratch)."""
    tmp = path.with_name(f".{path.name}.tmp")
    try:
        frame.write_parquet(tmp, compression="lz4")
        tmp.replace(path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    written.append(path)


def _empty(schema: TableSchema) -> pl.DataFrame:
    return pl.DataFrame(schema=schema.polars_schema)


def _first_line(text: str) -> str:
    return text.strip().split("\n", 1)[0][:300]
