"""Pure transforms shared by every import format: counts as exporters write them, epoch timestamps, duplicate
posts, creators gathered from post rows, and validation whose problems name the source file, place and field.

A *text frame* holds contract columns (``audiencefit.features.schemas``) as text, plus ``FILE`` and ``AT``: the source
file's name and the place in it ("row 12", "line 40", "element 3 (line 9)") each row came from.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation

import polars as pl

from audiencefit.features.errors import Issue
from audiencefit.features.export import TimeWindow
from audiencefit.features.schemas import CREATORS, POSTS, TableSchema
from audiencefit.features.validate import is_warning, validate_table

FILE = "__file"
AT = "__at"
COUNT_COLUMNS = frozenset({"likes", "comments", "views", "followers", "following", "post_count"})
TIMESTAMP_UNITS = ("iso", "s", "ms", "us")
CREATOR_COLUMNS = tuple(c for c in CREATORS.column_names if c != "creator_id")
MAX_ISSUES_PER_FIELD = 20
_INT64_MAX = 2**63 - 1
_SUFFIX = {"": 1, "k": 1_000, "m": 1_000_000, "b": 1_000_000_000}
_COUNT_RE = re.compile(r"([0-9]+(?:\.[0-9]+)?)([kmb]?)")
_SPACES = re.compile(r"[\s\u00a0\u202f\u2009_']")
_EPOCH_RE = re.compile(r"-?[0-9]+(?:\.[0-9]+)?")
_UNIT_SECONDS = {"s": 1.0, "ms": 1e-3, "us": 1e-6}


def parse_count(text: str, *, thousands: str = ",") -> int:
    """A count as exporters write it: ``1204``, ``1,204``, ``1 204``, ``12.3k``, ``1.2M``, ``1204.0``.

    ``thousands`` is the grouping character ("," or "."); the other one is the decimal mark. A suffix (k, m, b)
    scales and rounds; without one the value must be whole. ValueError, with a message for people, otherwise.
    """
    raw = text.strip()
    decimal = "." if thousands == "," else ","
    cleaned = _SPACES.sub("", raw).replace(thousands, "").replace(decimal, ".").lower()
    if cleaned.startswith("-"):
        raise ValueError(f"{raw!r} is negative; a count is 0 or more")
    match = _COUNT_RE.fullmatch(cleaned.lstrip("+"))
    if match is None:
        raise ValueError(f"{raw!r} is not a count (expected e.g. 1204, 1,204 or 12.3k)")
    try:
        value = Decimal(match.group(1)) * _SUFFIX[match.group(2)]
    except InvalidOperation:
        raise ValueError(f"{raw!r} is not a count") from None
    if not match.group(2) and value != value.to_integral_value():
        raise ValueError(f"{raw!r} is not a whole number")
    number = int(value.to_integral_value())
    if number > _INT64_MAX:
        raise ValueError(f"{raw!r} is too large for a count (at most {_INT64_MAX:,})")
    return number


def epoch_to_iso(text: str, unit: str) -> str:
    """An epoch timestamp in ``unit`` (s, ms, us) as ISO 8601 UTC text; ValueError for people otherwise."""
    raw = text.strip()
    if not _EPOCH_RE.fullmatch(raw):
        raise ValueError(f"{raw!r} is not a number of {_unit_name(unit)} since 1970")
    seconds = float(raw) * _UNIT_SECONDS[unit]
    if not math.isfinite(seconds) or not 0 <= seconds < 253402300800:  # before the year 10000
        raise ValueError(f"{raw!r} {_unit_name(unit)} since 1970 is not a plausible instant")
    return datetime.fromtimestamp(seconds, UTC).isoformat().replace("+00:00", "Z")


def _unit_name(unit: str) -> str:
    return {"s": "seconds", "ms": "milliseconds", "us": "microseconds"}.get(unit, unit)


def source_issue(table: str, file: str, at: str, field: str, problem: str) -> Issue:
    """A problem of one source value: ``file: at, field 'x': problem``."""
    return Issue(table=table, file=file, problem=f"{at}, field {field!r}: {problem}")


def convert_counts(
    frame: pl.DataFrame, table: str, fields: Mapping[str, str], *, thousands: str = ","
) -> tuple[pl.DataFrame, list[Issue]]:
    """Every count column of ``frame`` rewritten as plain integers; each value that is no count is an issue named by
    its source place and field (``fields``: contract column → source field) and becomes null."""
    issues: list[Issue] = []
    replaced = []
    for column in frame.columns:
        if column not in COUNT_COLUMNS:
            continue
        out: list[str | None] = []
        bad = 0
        for value, file, at in zip(frame[column].to_list(), frame[FILE].to_list(), frame[AT].to_list(), strict=True):
            if value is None or not value.strip():
                out.append(None)
                continue
            try:
                out.append(str(parse_count(value, thousands=thousands)))
            except ValueError as exc:
                out.append(None)
                bad += 1
                if bad <= MAX_ISSUES_PER_FIELD:
                    issues.append(source_issue(table, file, at, fields.get(column, column), str(exc)))
        if bad > MAX_ISSUES_PER_FIELD:
            issues.append(Issue(table=table, problem=f"… and {bad - MAX_ISSUES_PER_FIELD} more bad {column} values"))
        replaced.append(pl.Series(column, out, dtype=pl.String))
    return frame.with_columns(replaced), issues


def convert_epochs(
    frame: pl.DataFrame, table: str, column: str, unit: str, field: str
) -> tuple[pl.DataFrame, list[Issue]]:
    """``column`` from epoch numbers in ``unit`` to ISO 8601 text (``unit`` "iso": unchanged, but a column of bare
    numbers is an issue asking for the unit, since seconds and milliseconds cannot be told apart safely)."""
    if column not in frame.columns:
        return frame, []
    values = frame[column].to_list()
    issues: list[Issue] = []
    if unit == "iso":
        numeric = [i for i, v in enumerate(values) if v is not None and _EPOCH_RE.fullmatch(v.strip())]
        if numeric:
            i = numeric[0]
            issues.append(
                source_issue(
                    table,
                    frame[FILE][i],
                    frame[AT][i],
                    field,
                    f"{values[i]!r} is a bare number; say its unit in the mapping file (timestamp_unit: s, ms or us)",
                )
            )
        return frame, issues
    out: list[str | None] = []
    for i, value in enumerate(values):
        if value is None or not value.strip():
            out.append(None)
            continue
        try:
            out.append(epoch_to_iso(value, unit))
        except ValueError as exc:
            out.append(None)
            if len(issues) < MAX_ISSUES_PER_FIELD:
                issues.append(source_issue(table, frame[FILE][i], frame[AT][i], field, str(exc)))
    return frame.with_columns(pl.Series(column, out, dtype=pl.String)), issues


@dataclass(frozen=True)
class Merged:
    """A table after merging duplicate keys: the rows kept and how many source rows were merged into them."""

    frame: pl.DataFrame
    merged: int


def merge_duplicates(frame: pl.DataFrame, table: str, key: str, owner: str | None = None) -> tuple[Merged, list[Issue]]:
    """One row per ``key``: the last occurrence wins (later files and lines are the newer snapshot, so the newest
    counts are kept), and its empty fields are filled from earlier occurrences. Rows with the same ``key`` but a
    different ``owner`` (a post id under two creators) are no duplicates but a conflict: an issue naming both."""
    if frame.is_empty():
        return Merged(frame, 0), []
    issues: list[Issue] = []
    if owner is not None:
        owners = (
            frame.filter(pl.col(key).is_not_null() & pl.col(owner).is_not_null())
            .group_by(key, maintain_order=True)
            .agg(pl.col(owner).unique(maintain_order=True), pl.col(FILE), pl.col(AT))
            .filter(pl.col(owner).list.len() > 1)
        )
        for rec in owners.head(MAX_ISSUES_PER_FIELD).iter_rows(named=True):
            first, second = rec[owner][0], rec[owner][1]
            places = [f"{f} {a}" for f, a in zip(rec[FILE], rec[AT], strict=True)]
            issues.append(
                Issue(
                    table=table,
                    file=rec[FILE][0],
                    problem=(
                        f"{rec[AT][0]}: {key} {rec[key]!r} belongs to {owner} {first!r} here but to {second!r} in "
                        f"{places[-1]}; one post cannot have two authors"
                    ),
                )
            )
    keyed = frame.filter(pl.col(key).is_not_null())
    data_columns = [c for c in frame.columns if c not in (key, FILE, AT)]
    merged = keyed.group_by(key, maintain_order=True).agg(
        *[pl.col(c).drop_nulls().last() for c in data_columns],
        pl.col(FILE).last(),
        pl.col(AT).last(),
    )
    # Rows without a key are kept as they are: validation reports them with their place.
    result = pl.concat([merged.select(frame.columns), frame.filter(pl.col(key).is_null())], how="vertical")
    return Merged(result, keyed.height - merged.height), issues


def creators_from_rows(rows: pl.DataFrame) -> pl.DataFrame:
    """One creator text row per ``creator_id`` from rows carrying creator columns (post rows, profile objects):
    per column the last non-empty value, i.e. the newest snapshot that states it."""
    present = [c for c in CREATOR_COLUMNS if c in rows.columns]
    return (
        rows.filter(pl.col("creator_id").is_not_null())
        .group_by("creator_id", maintain_order=True)
        .agg(*[pl.col(c).drop_nulls().last() for c in present], pl.col(FILE).last(), pl.col(AT).last())
    )


def to_contract(
    text: pl.DataFrame, schema: TableSchema, fields: Mapping[str, str], window: TimeWindow | None
) -> tuple[pl.DataFrame, list[Issue]]:
    """Validate a text frame against ``schema`` (the checks of ``audiencefit validate``); every problem of a row is
    named by that row's source file and place and the source field (``fields``: contract column → source field).

    Returns the typed contract frame and the errors (warnings about absent optional columns are dropped: an
    importer fills what the export has)."""
    present = [c for c in schema.column_names if c in text.columns]
    frame, issues = validate_table(text.select(present), schema, schema.name, window=window)
    files, places = text[FILE].to_list(), text[AT].to_list()
    out: list[Issue] = []
    for issue in issues:
        if is_warning(issue):
            continue
        if issue.row is None:
            out.append(Issue(table=schema.name, problem=issue.problem, column=issue.column))
            continue
        i = issue.row - 1
        field = fields.get(issue.column or "", issue.column or "")
        out.append(source_issue(schema.name, files[i], places[i], field, issue.problem))
    return frame, out


def text_frame(records: Sequence[Mapping[str, str | None]], columns: Sequence[str]) -> pl.DataFrame:
    """A text frame from dicts (missing keys are null); ``columns`` should include ``FILE`` and ``AT``."""
    return pl.DataFrame(
        {c: pl.Series(c, [r.get(c) for r in records], dtype=pl.String) for c in columns}, height=len(records)
    )


POST_COLUMNS = tuple(POSTS.column_names)


@dataclass(frozen=True)
class Assembled:
    """Contract tables ready to write, and what merging did to get them."""

    creators: pl.DataFrame
    posts: pl.DataFrame
    duplicate_posts_merged: int
    duplicate_creators_merged: int


def assemble(
    creators_text: pl.DataFrame,
    posts_text: pl.DataFrame,
    *,
    creator_fields: Mapping[str, str],
    post_fields: Mapping[str, str],
    window: TimeWindow | None,
) -> tuple[Assembled, list[Issue]]:
    """Merge duplicates, validate both tables and their foreign key; the issues name source places and fields.

    The contract frames are meaningful only when the issue list is empty."""
    from audiencefit.features.validate import check_foreign_keys

    posts_merged, issues = merge_duplicates(posts_text, "posts", "post_id", owner="creator_id")
    creators_merged, more = merge_duplicates(creators_text, "creators", "creator_id")
    issues += more
    creators, more = to_contract(creators_merged.frame, CREATORS, creator_fields, window)
    issues += more
    posts, more = to_contract(posts_merged.frame, POSTS, post_fields, window)
    issues += more
    texts = {"creators": creators_merged.frame, "posts": posts_merged.frame}
    fields = {"creators": creator_fields, "posts": post_fields}
    for issue in check_foreign_keys({"creators": creators, "posts": posts}, {"creators": "creators", "posts": "posts"}):
        text = texts.get(issue.table)
        if issue.row is None or text is None:
            issues.append(issue)
            continue
        i = issue.row - 1
        field = fields[issue.table].get(issue.column or "", issue.column or "")
        issues.append(source_issue(issue.table, text[FILE][i], text[AT][i], field, issue.problem))
    assembled = Assembled(creators, posts, posts_merged.merged, creators_merged.merged)
    return assembled, issues
