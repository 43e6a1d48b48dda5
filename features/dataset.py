"""Loading a directory of raw tables into one validated, pseudonymised :class:`Dataset`.

This is the input boundary of the pipeline: it finds each table's file, reads it, validates it against its
contract, checks the foreign keys between tables, and either returns clean frames or raises one
:class:`~audiencefit.features.errors.InputError` carrying every problem of every table. Raw follower ids are replaced by
their keyed hash here and never leave :func:`load_dataset`.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

import polars as pl

from audiencefit.features.errors import InputError, Issue
from audiencefit.features.export import EXPORT_MANIFEST, ExportInstant, resolve_export_instant
from audiencefit.features.io import TABLE_EXTENSIONS, find_table_file, read_raw
from audiencefit.features.pseudonymise import PSEUDONYMISED_COLUMNS, pseudonymise_ids
from audiencefit.features.schemas import TABLE_ORDER, TABLES
from audiencefit.features.validate import WARNING_PREFIX, check_foreign_keys, split_issues, validate_table

logger = logging.getLogger(__name__)


@dataclass(frozen=True, eq=False)  # frames do not define equality; identity is what == can honestly mean here
class Dataset:
    """The validated input tables, each cast to exactly its contract's ``polars_schema``.

    Optional tables that were not provided are None. ``followers.follower_id`` holds pseudonyms, not raw ids.
    ``source_files`` maps each loaded table to the file it came from; ``export`` is the export instant every
    timestamp was checked against and "as of" which statistics are taken (``audiencefit.features.export``).
    """

    creators: pl.DataFrame
    posts: pl.DataFrame
    followers: pl.DataFrame | None = None
    brands: pl.DataFrame | None = None
    segments: pl.DataFrame | None = None
    campaigns: pl.DataFrame | None = None
    source_files: dict[str, Path] = field(default_factory=dict)
    warnings: tuple[Issue, ...] = ()
    export: ExportInstant | None = None

    def table(self, name: str) -> pl.DataFrame | None:
        """A table by its contract name (``"creators"``, …); None when that optional table was not provided."""
        if name not in TABLES:
            raise KeyError(f"unknown table {name!r}; known: {', '.join(TABLE_ORDER)}")
        frame: pl.DataFrame | None = getattr(self, name)
        return frame


@dataclass(frozen=True)
class TableReport:
    """The outcome for one table: its file (None when not found), data rows read, errors and warnings."""

    table: str
    file: Path | None
    rows: int | None
    issues: list[Issue]
    warnings: list[Issue]

    @property
    def ok(self) -> bool:
        return not self.issues

    @property
    def status(self) -> str:
        if self.issues:
            return "missing" if self.file is None else "invalid"
        return "ok, with warnings" if self.warnings else "ok"


@dataclass(frozen=True)
class ValidationReport:
    """Every table found or required in a directory, in ``TABLE_ORDER``, plus warnings about other files, problems
    of the directory itself (a malformed ``export.json``) and the export instant the timestamps were checked against
    (None when it could not be determined)."""

    data_dir: Path
    tables: list[TableReport]
    warnings: list[Issue] = field(default_factory=list)
    problems: list[Issue] = field(default_factory=list)
    export: ExportInstant | None = None

    @property
    def ok(self) -> bool:
        return not self.problems and all(t.ok for t in self.tables)

    @property
    def errors(self) -> list[Issue]:
        return list(self.problems) + [issue for t in self.tables for issue in t.issues]

    @property
    def all_warnings(self) -> list[Issue]:
        return [w for t in self.tables for w in t.warnings] + list(self.warnings)

    def table(self, name: str) -> TableReport | None:
        return next((t for t in self.tables if t.table == name), None)


def validate_dir(data_dir: Path, *, export_time: datetime | None = None) -> ValidationReport:
    """Validate every table present in ``data_dir`` (and report required ones that are absent); reads only.

    Timestamps are checked against the export instant: ``export_time`` when given, else the directory's
    ``export.json``, else the files' modification time (``audiencefit.features.export``).
    """
    report, _frames, _paths = _scan(data_dir, None, export_time)
    return report


def load_dataset(
    data_dir: Path, *, secret: str, tables: Sequence[str] | None = None, export_time: datetime | None = None
) -> Dataset:
    """Find, read and validate the tables in ``data_dir``; pseudonymise follower ids; return a :class:`Dataset`.

    ``tables`` restricts which optional tables are loaded (default: all that are present). ``creators`` and
    ``posts`` are always loaded, and so is every table a loaded table refers to (campaigns need brands and segments,
    segments need brands). Optional tables that are absent are None. Timestamps are checked against the export
    instant, as in :func:`validate_dir`. Any problem anywhere raises one InputError listing all of them; warnings
    are logged and kept in ``Dataset.warnings``.
    """
    if not secret:
        raise InputError("the follower id secret is empty; set AUDIENCEFIT_FOLLOWER_ID_SECRET")
    report, frames, paths = _scan(data_dir, tables, export_time)
    if not report.ok:
        raise InputError(report.errors)
    for warning in report.all_warnings:
        logger.warning(str(warning))
    for table, columns in PSEUDONYMISED_COLUMNS.items():
        if table in frames:
            frames[table] = frames[table].with_columns(pseudonymise_ids(frames[table][c], secret) for c in columns)
    logger.info(
        "dataset loaded",
        extra={"data_dir": str(data_dir), "rows": {t: f.height for t, f in frames.items()}},
    )
    return Dataset(
        creators=frames["creators"],
        posts=frames["posts"],
        followers=frames.get("followers"),
        brands=frames.get("brands"),
        segments=frames.get("segments"),
        campaigns=frames.get("campaigns"),
        source_files=dict(paths),
        warnings=tuple(report.all_warnings),
        export=report.export,
    )


def check_data_dir(data_dir: Path) -> None:
    """InputError unless ``data_dir`` is a readable directory."""
    if not data_dir.exists():
        raise InputError(f"data directory not found: {data_dir}")
    if not data_dir.is_dir():
        raise InputError(f"not a directory: {data_dir}")
    try:
        next(iter(data_dir.iterdir()), None)
    except OSError as exc:
        raise InputError(f"cannot read the data directory {data_dir}: {exc.strerror or exc}") from exc


@dataclass(frozen=True)
class FoundTables:
    """Each table's file in a directory; tables with two files are ``ambiguous`` (with their issue and the path
    shown in reports) and have no entry in ``paths``."""

    paths: dict[str, Path]
    ambiguous: set[str]
    shown: dict[str, Path]
    issues: dict[str, list[Issue]]


def locate_tables(data_dir: Path) -> FoundTables:
    """Find the file of every contract table in ``data_dir`` (see :func:`audiencefit.features.io.find_table_file`)."""
    paths: dict[str, Path] = {}
    ambiguous: set[str] = set()
    shown: dict[str, Path] = {}
    issues: dict[str, list[Issue]] = {}
    for table in TABLE_ORDER:
        try:
            path = find_table_file(data_dir, table)
        except InputError as exc:  # two files for one table: report it, read neither
            issues[table] = list(exc.issues)
            ambiguous.add(table)
            shown[table] = data_dir / (exc.issues[0].file or table)
            continue
        if path is not None:
            paths[table] = path
    return FoundTables(paths=paths, ambiguous=ambiguous, shown=shown, issues=issues)


def _candidates(table: str) -> str:
    names = [f"{table}{ext}" for ext in TABLE_EXTENSIONS]
    return ", ".join(names[:-1]) + " or " + names[-1]


def _tables_to_load(selected: Sequence[str] | None, paths: dict[str, Path]) -> set[str]:
    """The selected tables, the required ones, and (transitively) every table a present one refers to."""
    if selected is None:
        wanted = set(TABLE_ORDER)
    else:
        unknown = [t for t in selected if t not in TABLES]
        if unknown:
            raise InputError(f"unknown table(s) {', '.join(map(repr, unknown))}; known: {', '.join(TABLE_ORDER)}")
        wanted = set(selected)
    wanted |= {t for t in TABLE_ORDER if TABLES[t].required}
    pending = list(wanted)
    while pending:
        table = pending.pop()
        if table not in paths:
            continue
        for fk in TABLES[table].foreign_keys:
            if fk.ref_table not in wanted:
                wanted.add(fk.ref_table)
                pending.append(fk.ref_table)
    return wanted


def _scan(
    data_dir: Path, selected: Sequence[str] | None, export_time: datetime | None = None
) -> tuple[ValidationReport, dict[str, pl.DataFrame], dict[str, Path]]:
    """Validate the tables of ``data_dir``; return the report, the validated frames and their source files."""
    check_data_dir(data_dir)
    issues: dict[str, list[Issue]] = {t: [] for t in TABLE_ORDER}
    warnings: dict[str, list[Issue]] = {t: [] for t in TABLE_ORDER}
    rows: dict[str, int] = {}
    found = locate_tables(data_dir)
    paths, ambiguous, paths_shown = found.paths, found.ambiguous, found.shown
    for table, table_issues in found.issues.items():
        issues[table].extend(table_issues)

    load = _tables_to_load(selected, paths)
    problems: list[Issue] = []
    export: ExportInstant | None = None
    try:
        export = resolve_export_instant(data_dir, export_time, [p for t, p in paths.items() if t in load])
    except InputError as exc:
        problems = exc.issues or [Issue(table="-", problem=str(exc))]
    frames: dict[str, pl.DataFrame] = {}
    for table in TABLE_ORDER:
        if table not in load or table in ambiguous:
            continue
        schema = TABLES[table]
        path = paths.get(table)
        if path is None:
            issues[table].extend(missing_table_issues(table, paths, data_dir))
            continue
        try:
            raw = read_raw(path, schema)
        except InputError as exc:
            issues[table].extend(exc.issues)
            continue
        frame, table_issues = validate_table(raw, schema, path.name, window=export.window if export else None)
        errors, table_warnings = split_issues(table_issues)
        issues[table].extend(errors)
        warnings[table].extend(table_warnings)
        frames[table] = frame
        rows[table] = frame.height

    loaded_paths = {t: p for t, p in paths.items() if t in load}
    for issue in check_foreign_keys(frames, {t: p.name for t, p in loaded_paths.items()}):
        issues[issue.table].append(issue)

    reports = [
        TableReport(
            table=t,
            file=paths.get(t, paths_shown.get(t)),
            rows=rows.get(t),
            issues=issues[t],
            warnings=warnings[t],
        )
        for t in TABLE_ORDER
        if t in loaded_paths or issues[t] or t in ambiguous
    ]
    report = ValidationReport(
        data_dir=data_dir,
        tables=reports,
        warnings=ignored_files(data_dir, paths, ambiguous),
        problems=problems,
        export=export,
    )
    return report, frames, loaded_paths


def missing_table_issues(table: str, paths: dict[str, Path], data_dir: Path) -> list[Issue]:
    looked = f"looked for {_candidates(table)} in {data_dir}"
    if TABLES[table].required:
        return [Issue(table=table, problem=f"required table {table!r} is missing ({looked})")]
    needed_by = [
        f"{paths[other].name} ({other}.{fk.column} refers to {table}.{fk.ref_column})"
        for other in TABLE_ORDER
        if other in paths
        for fk in TABLES[other].foreign_keys
        if fk.ref_table == table
    ]
    if not needed_by:
        return []
    problem = f"table {table!r} is needed by {'; '.join(needed_by)} but is missing ({looked})"
    return [Issue(table=table, problem=problem)]


def ignored_files(data_dir: Path, paths: dict[str, Path], ambiguous: set[str]) -> list[Issue]:
    """Warnings for files that look like inputs but are not read, e.g. a misspelt table name or a .csv.gz."""
    used = {p.name for p in paths.values()}
    warnings: list[Issue] = []
    for path in sorted(data_dir.iterdir()):
        name = path.name
        lowered = name.lower()
        if not path.is_file() or name.startswith(".") or name in used or name == EXPORT_MANIFEST:
            continue
        if any(lowered.startswith(f"{t}.") for t in ambiguous):
            continue  # already reported as a duplicate table file
        table_named = next((t for t in TABLE_ORDER if lowered.startswith(f"{t}.")), None)
        stem = lowered.split(".", 1)[0]
        if table_named is not None:
            problem = f"unsupported format; use one of {', '.join(TABLE_EXTENSIONS)}"
        elif path.suffix.lower() in TABLE_EXTENSIONS:
            close = [t for t in TABLE_ORDER if t.rstrip("s") == stem.rstrip("s") or stem.startswith(t[:5])]
            hint = f"; did you mean {close[0]!r}?" if close else ""
            problem = f"not a known table (known: {', '.join(TABLE_ORDER)}){hint}"
        else:
            continue
        warnings.append(Issue(table="-", file=name, problem=f"{WARNING_PREFIX}file ignored: {problem}"))
    return warnings
