"""Lazy validation of raw tables against the data contracts in ``audiencefit.features.schemas``.

Validation collects every problem instead of stopping at the first: a user fixing an export wants the whole list.
Each problem is an :class:`~audiencefit.features.errors.Issue` naming the file, the 1-based data row (the header is not
a data row), the column and what is wrong with the value. Per column and kind of problem the first
``MAX_ROWS_PER_PROBLEM`` rows are listed, then one summary issue counts the rest.

Warnings (unknown extra columns, absent optional columns) are ``Issue`` objects whose ``problem`` starts with
``WARNING_PREFIX``; they never make a table invalid. Use :func:`split_issues` to separate them.

Everything here is pure: frames in, frames and issues out.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

import polars as pl

from audiencefit.features.errors import Issue
from audiencefit.features.export import TimeWindow
from audiencefit.features.schemas import TABLE_ORDER, TABLES, Column, ForeignKey, TableSchema

WARNING_PREFIX = "warning: "
MAX_ROWS_PER_PROBLEM = 20
MAX_ROWS_PER_DUPLICATE = 10

# Code columns are normalised so comparisons and joins do not depend on the exporter's casing. Columns with a closed
# vocabulary (``Column.allowed``) are lower-cased as well, like the vocabularies themselves.
UPPER_CASE_COLUMNS = frozenset({"country", "countries"})  # ISO 3166-1 alpha-2
LOWER_CASE_COLUMNS = frozenset({"language"})  # ISO 639-1

_TRUE_FALSE = {"true": True, "false": False, "1": True, "0": False}
_INT64_LIMIT = 2.0**63

# ISO 8601 spellings accepted for timestamps, after normalising 'Z' to '+00:00', a space or 't' separator to 'T'
# and a bare '+hh' offset to '+hh:00'. Naive values are UTC by contract.
_AWARE_FORMATS = ("%Y-%m-%dT%H:%M:%S%.f%z", "%Y-%m-%dT%H:%M%z")
_NAIVE_FORMATS = ("%Y-%m-%dT%H:%M:%S%.f", "%Y-%m-%dT%H:%M", "%Y-%m-%d")
_UTC = pl.Datetime("us", "UTC")


def is_warning(issue: Issue) -> bool:
    """True for issues that inform but do not make the input invalid."""
    return issue.problem.startswith(WARNING_PREFIX)


def split_issues(issues: Iterable[Issue]) -> tuple[list[Issue], list[Issue]]:
    """``(errors, warnings)`` from a mixed list, each in its original order."""
    errors: list[Issue] = []
    warnings: list[Issue] = []
    for issue in issues:
        (warnings if is_warning(issue) else errors).append(issue)
    return errors, warnings


def describe_dtype(dtype: pl.DataType) -> str:
    """How a contract type is named to people, in messages and in the contracts doc."""
    if dtype == pl.String:
        return "text"
    if dtype == pl.Boolean:
        return "boolean"
    if dtype == pl.Date:
        return "date"
    if isinstance(dtype, pl.Datetime):
        return "timestamp"
    if dtype.is_integer():
        return "integer"
    if dtype.is_float():
        return "number"
    return str(dtype)


def validate_table(
    raw: pl.DataFrame, schema: TableSchema, file: str, *, window: TimeWindow | None = None
) -> tuple[pl.DataFrame, list[Issue]]:
    """Check ``raw`` against ``schema`` and normalise it; return ``(frame, issues)`` with every problem found.

    The frame has exactly ``schema.polars_schema`` (its column order), one row per raw row in the same order, so
    row ``i`` of the frame is data row ``i + 1`` of the file. Values that failed a check are null in it. Text is
    stripped and empty text becomes null; vocabulary and language columns are lower-cased, country codes
    upper-cased; timestamps are converted to UTC (naive ones are taken as UTC). With ``window``, every timestamp
    and date outside it is an issue (see ``audiencefit.features.export``). Issues include warnings (see
    :func:`is_warning`); the input is valid when there is no other issue.
    """
    report = _Reporter(schema.name, file)
    frame, issues = _validate_rows(raw, schema, report, window)
    issues.extend(check_unique(frame, schema, file, missing_columns(raw.columns, schema)))
    return frame, issues


def validate_chunk(
    raw: pl.DataFrame,
    schema: TableSchema,
    file: str,
    *,
    offset: int,
    tally: IssueTally,
    window: TimeWindow | None = None,
) -> pl.DataFrame:
    """:func:`validate_table` for data rows ``offset + 1 ...`` of a table read in chunks; issues go to ``tally``.

    Feeding every chunk of a table in order to one :class:`IssueTally` gives, from ``tally.issues()``, the issues
    :func:`validate_table` gives for the whole table, with the same messages, row numbers and caps, except the
    uniqueness of keys, which needs every row: run :func:`check_unique` on the concatenated key columns.
    """
    frame, _issues = _validate_rows(raw, schema, _Reporter(schema.name, file, offset=offset, tally=tally), window)
    return frame  # every issue was recorded in ``tally`` as it was made


def missing_columns(present: Sequence[str], schema: TableSchema) -> set[str]:
    """The contract columns a file lacks (read as empty; their uniqueness is not checked)."""
    return {c for c in schema.column_names if c not in present}


def check_unique(frame: pl.DataFrame, schema: TableSchema, file: str, missing: set[str]) -> list[Issue]:
    """Duplicate keys (the primary key and every unique column) of a validated ``frame`` (row ``i`` is data row
    ``i + 1``; only the key columns are read, so a frame of just those is enough)."""
    return _check_unique(frame, schema, missing, _Reporter(schema.name, file))


def _validate_rows(
    raw: pl.DataFrame, schema: TableSchema, report: _Reporter, window: TimeWindow | None
) -> tuple[pl.DataFrame, list[Issue]]:
    issues = _check_columns(raw.columns, schema, report)
    parsed: list[pl.Series] = []
    for column in schema.columns:
        if column.name in raw.columns:
            series, column_issues = _parse_column(raw.get_column(column.name), column, report)
            issues.extend(column_issues)
            if window is not None and (isinstance(column.dtype, pl.Datetime) or column.dtype == pl.Date):
                series, window_issues = _check_window(series, column, window, report)
                issues.extend(window_issues)
        else:
            series = pl.repeat(None, raw.height, dtype=column.dtype, eager=True)
        parsed.append(series.alias(column.name))
    return pl.DataFrame(parsed, schema=schema.polars_schema, height=raw.height), issues


def check_foreign_keys(
    frames: Mapping[str, pl.DataFrame],
    files: Mapping[str, str],
    *,
    chunks: Mapping[str, tuple[int, IssueTally]] | None = None,
) -> list[Issue]:
    """Every foreign key of every table in ``frames`` whose referenced table is also in ``frames``.

    ``frames`` are validated frames (row ``i`` is data row ``i + 1``), keyed by table name; ``files`` names the file
    of each table for the messages. Also checks that references agree where two paths lead to the same table
    (a campaign's brand must be the brand of its segment). Keys whose referenced column is entirely null are
    skipped: the referenced table's own issues already explain why, and listing every row would only add noise.

    ``chunks`` maps a table whose frame is one chunk of it to ``(offset, tally)``: its rows are data rows
    ``offset + 1 ...`` and its issues are recorded in ``tally`` (see :class:`IssueTally`) rather than returned.
    """
    issues: list[Issue] = []
    for table in TABLE_ORDER:
        frame = frames.get(table)
        if frame is None:
            continue
        schema = TABLES[table]
        offset, tally = (chunks or {}).get(table, (0, None))
        report = _Reporter(table, files.get(table, table), offset=offset, tally=tally)
        for fk in schema.foreign_keys:
            ref = frames.get(fk.ref_table)
            if ref is None or _unusable(ref, fk.ref_column):
                continue
            values = frame.get_column(fk.column)
            known = ref.get_column(fk.ref_column).drop_nulls().unique()
            ref_file = files.get(fk.ref_table, fk.ref_table)
            issues.extend(
                report.rows(
                    values.is_not_null() & ~values.is_in(known),
                    values,
                    fk.column,
                    _unknown_reference(fk, ref_file),
                    f"unknown {fk.column}",
                )
            )
        issues.extend(_check_consistent_references(frame, schema, frames, files, report))
    return issues


def _unknown_reference(fk: ForeignKey, ref_file: str) -> Callable[[Any], str]:
    def describe(value: Any) -> str:
        return f"unknown {fk.column} {_show(value)} (no such {fk.ref_column} in {ref_file})"

    return describe


# --- reporting ----------------------------------------------------------------------------------------------------


class IssueTally:
    """The issues of one table checked chunk by chunk (:func:`validate_chunk`, :func:`check_foreign_keys`), merged
    into what one check of the whole table gives.

    Every check runs in the same order on every chunk, so the k-th problem kind (column, summary) a chunk reports
    is the k-th of every other chunk. Per kind, the first ``MAX_ROWS_PER_PROBLEM`` rows over all chunks are listed
    and the rest counted in one summary, as :class:`_Reporter` does for a whole table; a problem about the table
    rather than a row (a missing column, a wrong file type) is listed once however many chunks report it.
    """

    def __init__(self) -> None:
        self._order: list[tuple[object, ...]] = []
        self._segments: dict[tuple[object, ...], _Segment] = {}
        self._seen: dict[tuple[object, ...], int] = {}
        self._last: int = -1

    def start_chunk(self) -> None:
        """Begin the next chunk (kinds are matched by their order of appearance within a chunk)."""
        self._seen = {}
        self._last = -1

    def issues(self) -> list[Issue]:
        """Every issue recorded so far, in the order a whole-table check would list them."""
        out: list[Issue] = []
        for key in self._order:
            out.extend(self._segments[key].issues())
        return out

    def _record(self, kind: tuple[object, ...], make: Callable[[], _Segment]) -> _Segment:
        nth = self._seen.get(kind, 0)
        self._seen[kind] = nth + 1
        key = (*kind, nth)
        segment = self._segments.get(key)
        if segment is None:
            segment = self._segments[key] = make()
            self._order.insert(self._last + 1, key)  # after what this chunk reported before it
            self._last += 1
        else:
            self._last = self._order.index(key)
        return segment


class _Segment:
    """One problem kind of a table: the rows shown so far and how many rows had it (a plain issue: ``rows`` None)."""

    def __init__(self, reporter: _Reporter, column: str | None, summary: str | None) -> None:
        self.table = reporter.table
        self.file = reporter.file
        self.column = column
        self.summary = summary
        self.shown: list[Issue] = []
        self.total = 0

    def issues(self) -> list[Issue]:
        rest = self.total - len(self.shown)
        if self.summary is None or rest <= 0:
            return list(self.shown)
        more = f"… and {rest} more rows with the same problem ({self.summary})"
        return [*self.shown, Issue(table=self.table, problem=more, file=self.file, column=self.column)]


class _Reporter:
    """Builds issues for one table and file, capping how many rows each kind of problem lists.

    With a ``tally`` (chunked checks), data row numbers start after ``offset`` and every issue is recorded there
    instead of only being returned: the tally merges the chunks (see :class:`IssueTally`).
    """

    def __init__(self, table: str, file: str, *, offset: int = 0, tally: IssueTally | None = None) -> None:
        self.table = table
        self.file = file
        self.offset = offset
        self.tally = tally
        if tally is not None:
            tally.start_chunk()

    def issue(self, problem: str, *, column: str | None = None, row: int | None = None) -> Issue:
        made = Issue(table=self.table, problem=problem, file=self.file, row=row, column=column)
        if self.tally is not None:
            segment = self.tally._record(("plain", column, problem, row), lambda: _Segment(self, column, None))
            if not segment.shown:
                segment.shown.append(made)
        return made

    def rows(
        self,
        mask: pl.Series,
        values: pl.Series,
        column: str,
        describe: Callable[[Any], str],
        summary: str,
    ) -> list[Issue]:
        """One issue per row where ``mask`` is true (up to the cap), then a count of the rest."""
        positions = mask.fill_null(False).arg_true()
        segment = None
        cap = MAX_ROWS_PER_PROBLEM
        if self.tally is not None:
            segment = self.tally._record(("rows", column, summary), lambda: _Segment(self, column, summary))
            cap = max(MAX_ROWS_PER_PROBLEM - len(segment.shown), 0)
        if positions.is_empty():
            return []
        shown = positions.head(cap)
        issues = [
            Issue(
                table=self.table,
                problem=describe(value),
                file=self.file,
                row=int(position) + 1 + self.offset,
                column=column,
            )
            for position, value in zip(shown.to_list(), values.gather(shown).to_list(), strict=True)
        ]
        if segment is not None:
            segment.shown.extend(issues)
            segment.total += positions.len()
            return []  # the tally lists them, merged with the other chunks'
        rest = positions.len() - shown.len()
        if rest > 0:
            issues.append(self.issue(f"… and {rest} more rows with the same problem ({summary})", column=column))
        return issues


def _show(value: Any) -> str:
    """A value as it appears in a message: quoted, and shortened when long."""
    if isinstance(value, str):
        return repr(value if len(value) <= 60 else value[:57] + "…")
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def _short(text: str) -> str:
    """A name from the file, shortened when long (a header can hold anything)."""
    return text if len(text) <= 60 else text[:57] + "…"


def _format_bound(bound: float) -> str:
    return str(int(bound)) if float(bound).is_integer() else str(bound)


# --- columns present ----------------------------------------------------------------------------------------------


def _check_columns(present: Sequence[str], schema: TableSchema, report: _Reporter) -> list[Issue]:
    issues: list[Issue] = []
    known = set(schema.column_names)
    extra = [c for c in present if c not in known]
    if present:
        listed = ", ".join(_short(c) for c in present[:12]) + (", …" if len(present) > 12 else "")
        found = f"found: {listed}"
    else:
        found = "the file has no columns"
    for column in schema.columns:
        if column.name in present:
            continue
        hint = _closest(column.name, extra)
        hint_text = f"; did you mean {hint!r}?" if hint else ""
        if column.nullable:
            issues.append(
                report.issue(
                    f"{WARNING_PREFIX}optional column is absent and is read as empty ({found}{hint_text})",
                    column=column.name,
                )
            )
        else:
            issues.append(report.issue(f"required column is missing ({found}{hint_text})", column=column.name))
    if extra:
        issues.append(
            report.issue(f"{WARNING_PREFIX}ignored {len(extra)} unknown column(s): {', '.join(map(_show, extra))}")
        )
    return issues


def _closest(name: str, candidates: Sequence[str]) -> str | None:
    lowered = {c.strip().lower(): c for c in candidates}
    if name in lowered:
        return lowered[name]
    matches = difflib.get_close_matches(name, candidates, n=1, cutoff=0.6)
    if matches:
        return matches[0]
    # Exports often decorate names: 'follower_count' for 'followers', 'creator id' for 'creator_id'.
    stem = name.rstrip("s")
    for candidate in candidates:
        flat = candidate.strip().lower().replace(" ", "_")
        if stem and (flat.startswith(stem) or stem in flat):
            return candidate
    return None


# --- one column ---------------------------------------------------------------------------------------------------


def _parse_column(raw: pl.Series, column: Column, report: _Reporter) -> tuple[pl.Series, list[Issue]]:
    """Cast one raw column to its contract type and check its constraints."""
    target = column.dtype
    wrong_type = f"column has type {raw.dtype} in the file; expected {describe_dtype(target)}"
    if raw.dtype.is_nested() or raw.dtype in (pl.Binary, pl.Object) or isinstance(raw.dtype, pl.Duration):
        return pl.repeat(None, raw.len(), dtype=target, eager=True), [report.issue(wrong_type, column=column.name)]
    try:
        return _parse_typed(raw, column, report)
    except pl.exceptions.PolarsError:
        # A file type none of the parsers expects (parquet can hold many): one clear issue, not a traceback.
        return pl.repeat(None, raw.len(), dtype=target, eager=True), [report.issue(wrong_type, column=column.name)]


def _parse_typed(raw: pl.Series, column: Column, report: _Reporter) -> tuple[pl.Series, list[Issue]]:
    target = column.dtype
    if target == pl.String:
        return _parse_text(raw, column, report)
    if target.is_integer():
        return _parse_number(raw, column, report, integer=True)
    if target.is_float():
        return _parse_number(raw, column, report, integer=False)
    if target == pl.Boolean:
        return _parse_boolean(raw, column, report)
    if isinstance(target, pl.Datetime):
        return _parse_datetime(raw, column, report)
    if target == pl.Date:
        return _parse_date(raw, column, report)
    raise TypeError(f"no parser for contract type {target} of column {column.name!r}")


def _clean_text(raw: pl.Series) -> pl.Series:
    """Text with surrounding whitespace removed and empty values as null."""
    text = (raw if raw.dtype == pl.String else raw.cast(pl.String)).str.strip_chars()
    return pl.select(pl.when(text.str.len_bytes() == 0).then(None).otherwise(text)).to_series().alias(raw.name)


def _required(values: pl.Series, column: Column, report: _Reporter) -> list[Issue]:
    if column.nullable:
        return []
    return report.rows(
        values.is_null(), values, column.name, lambda _v: "missing value (the column is required)", "missing value"
    )


def _parse_text(raw: pl.Series, column: Column, report: _Reporter) -> tuple[pl.Series, list[Issue]]:
    text = _clean_text(raw)
    if column.name in UPPER_CASE_COLUMNS:
        text = text.str.to_uppercase()
    elif column.allowed is not None or column.name in LOWER_CASE_COLUMNS:
        text = text.str.to_lowercase()
    issues = _required(text, column, report)
    bad = pl.repeat(False, text.len(), eager=True)
    nul = text.str.contains("\x00", literal=True).fill_null(False)
    bad = bad | nul
    issues += report.rows(
        nul,
        text,
        column.name,
        lambda v: f"contains a NUL character (0x00) at character {v.index(chr(0)) + 1:,}; text may not hold NUL",
        "contains a NUL character",
    )
    if column.max_length is not None:
        limit = column.max_length
        too_long = text.str.len_chars() > limit
        bad = bad | too_long.fill_null(False)
        issues += report.rows(
            too_long,
            text,
            column.name,
            lambda v: f"value is longer than {limit:,} characters, the maximum (it has {len(v):,})",
            f"longer than {limit:,} characters",
        )
    if column.allowed is not None:
        allowed = column.allowed
        unknown = text.is_not_null() & ~text.is_in(list(allowed))
        bad = bad | unknown
        issues += report.rows(
            unknown,
            text,
            column.name,
            lambda v: f"unknown value {_show(v)} (allowed: {', '.join(allowed)})",
            "value outside the allowed list",
        )
    return _null_where(text, bad), issues


def _parse_number(raw: pl.Series, column: Column, report: _Reporter, *, integer: bool) -> tuple[pl.Series, list[Issue]]:
    name = column.name
    expected = "an integer" if integer else "a number"
    issues: list[Issue] = []
    if raw.dtype.is_integer() or raw.dtype == pl.Null:
        # Already whole numbers: only a 64-bit overflow (UInt64) can go wrong.
        text = raw.cast(pl.String)
        exact = raw.cast(pl.Int64 if integer else pl.Float64, strict=False)
        overflow = raw.is_not_null() & exact.is_null()
        issues += report.rows(
            overflow, text, name, lambda v: f"{v} is out of range for a 64-bit integer", "out of range"
        )
        values = exact
    else:
        if raw.dtype.is_float():
            text = raw.cast(pl.String)
            floats = raw.cast(pl.Float64)
            direct = pl.repeat(None, raw.len(), dtype=pl.Int64, eager=True)
        else:
            text = _clean_text(raw)
            floats = text.cast(pl.Float64, strict=False)
            # Parsed separately so integers beyond 2**53 keep every digit.
            direct = text.cast(pl.Int64, strict=False)
        finite = floats.is_finite().fill_null(False)
        whole = finite & (floats == floats.floor()).fill_null(False)
        unparsable = text.is_not_null() & floats.is_null() & direct.is_null()
        issues += report.rows(
            unparsable, text, name, lambda v: f"expected {expected}, got {_show(v)}", f"not {expected}"
        )
        nan = floats.is_nan().fill_null(False)
        nan_hint = "; leave the value empty if it is unknown" if column.nullable else ""
        issues += report.rows(nan, text, name, lambda _v: f"NaN (not a number) is not allowed{nan_hint}", "NaN")
        # 'inf' spelt out is refused as infinite; digits that only overflow a float (1e400, 5,000 nines) are
        # out of range, and said so.
        overflowing = floats.is_infinite().fill_null(False)
        spelt = text.str.contains(r"(?i)inf").fill_null(False)
        issues += report.rows(
            overflowing & spelt, text, name, lambda v: f"infinite value {_show(v)} is not allowed", "infinite value"
        )
        limit = "a 64-bit integer" if integer else "a 64-bit number"
        issues += report.rows(
            overflowing & ~spelt,
            text,
            name,
            lambda v: f"{_show(v)} ({len(v):,} characters) is out of range for {limit}",
            "out of range",
        )
        if integer:
            fractional = finite & ~whole
            issues += report.rows(
                fractional, text, name, lambda v: f"expected an integer, got {_show(v)}", "not a whole number"
            )
            huge = direct.is_null() & whole & (floats.abs() >= _INT64_LIMIT)
            issues += report.rows(
                huge, text, name, lambda v: f"{v} is out of range for a 64-bit integer", "out of range"
            )
            from_float = pl.select(
                pl.when(whole & (floats.abs() < _INT64_LIMIT)).then(floats.cast(pl.Int64, strict=False))
            ).to_series()
            values = pl.select(pl.coalesce(direct, from_float)).to_series()
        else:
            values = pl.select(pl.when(finite).then(floats)).to_series()
    values = values.cast(column.dtype)
    issues += _required(text, column, report)  # judged on the source: a bad value is not also "missing"
    out_of_range = pl.repeat(False, values.len(), eager=True)
    if column.min_value is not None:
        low = column.min_value
        below = (values < low).fill_null(False)
        out_of_range = out_of_range | below
        issues += report.rows(
            below,
            values,
            name,
            lambda v: f"value {_show(v)} is below the minimum of {_format_bound(low)}",
            f"below the minimum of {_format_bound(low)}",
        )
    if column.max_value is not None:
        high = column.max_value
        above = (values > high).fill_null(False)
        out_of_range = out_of_range | above
        issues += report.rows(
            above,
            values,
            name,
            lambda v: f"value {_show(v)} is above the maximum of {_format_bound(high)}",
            f"above the maximum of {_format_bound(high)}",
        )
    return _null_where(values, out_of_range).alias(name), issues


def _parse_boolean(raw: pl.Series, column: Column, report: _Reporter) -> tuple[pl.Series, list[Issue]]:
    if raw.dtype == pl.Boolean:
        return raw, _required(raw, column, report)
    text = _clean_text(raw)
    values = text.str.to_lowercase().replace_strict(_TRUE_FALSE, default=None, return_dtype=pl.Boolean)
    bad = text.is_not_null() & values.is_null()
    issues = _required(text, column, report)
    issues += report.rows(
        bad, text, column.name, lambda v: f"expected true or false, got {_show(v)}", "not true or false"
    )
    return values, issues


def _to_utc(raw: pl.Series) -> pl.Series:
    """A datetime series in UTC at microsecond precision; naive values are taken as UTC."""
    dtype = raw.dtype
    assert isinstance(dtype, pl.Datetime)
    shifted = raw.dt.replace_time_zone("UTC") if dtype.time_zone is None else raw.dt.convert_time_zone("UTC")
    return shifted.cast(_UTC)


def _parse_datetime(raw: pl.Series, column: Column, report: _Reporter) -> tuple[pl.Series, list[Issue]]:
    if isinstance(raw.dtype, pl.Datetime):
        values = _to_utc(raw)
        return values, _required(values, column, report)
    if raw.dtype == pl.Date:
        values = raw.cast(pl.Datetime("us")).dt.replace_time_zone("UTC")
        return values, _required(values, column, report)
    text = _clean_text(raw)
    normalised = (
        text.str.replace(r"^(\d{4}-\d{2}-\d{2})[ tT]", "${1}T")
        .str.replace(r"[Zz]$", "+00:00")
        .str.replace(r"(T\d{2}:\d{2}(?::\d{2}(?:\.\d+)?)?[+-]\d{2})$", "${1}:00")
    )
    candidates = [normalised.str.to_datetime(f, time_zone="UTC", time_unit="us", strict=False) for f in _AWARE_FORMATS]
    candidates += [
        normalised.str.to_datetime(f, time_unit="us", strict=False).dt.replace_time_zone("UTC") for f in _NAIVE_FORMATS
    ]
    values = pl.select(pl.coalesce(candidates)).to_series().cast(_UTC)
    bad = text.is_not_null() & values.is_null()
    issues = _required(text, column, report)
    issues += report.rows(
        bad,
        text,
        column.name,
        lambda v: f"expected an ISO 8601 timestamp such as 2024-05-01T12:00:00Z, got {_show(v)}",
        "not an ISO 8601 timestamp",
    )
    return values, issues


def _parse_date(raw: pl.Series, column: Column, report: _Reporter) -> tuple[pl.Series, list[Issue]]:
    if raw.dtype == pl.Date:
        return raw, _required(raw, column, report)
    if isinstance(raw.dtype, pl.Datetime):
        # Parquet writers often store dates as midnight timestamps; accept those, refuse a time of day.
        utc = _to_utc(raw)
        timed = (utc.dt.truncate("1d") != utc).fill_null(False)
        issues = _required(utc, column, report)
        issues += report.rows(
            timed,
            utc.dt.strftime("%Y-%m-%d %H:%M:%S UTC"),
            column.name,
            lambda v: f"expected a date (YYYY-MM-DD), got a timestamp with a time of day {_show(v)}",
            "timestamp with a time of day",
        )
        return _null_where(utc.dt.date(), timed), issues
    text = _clean_text(raw)
    values = text.str.to_date("%Y-%m-%d", strict=False)
    bad = text.is_not_null() & values.is_null()
    issues = _required(text, column, report)
    issues += report.rows(
        bad, text, column.name, lambda v: f"expected a date YYYY-MM-DD, got {_show(v)}", "not a YYYY-MM-DD date"
    )
    return values, issues


def _check_window(
    values: pl.Series, column: Column, window: TimeWindow, report: _Reporter
) -> tuple[pl.Series, list[Issue]]:
    """Timestamps and dates outside the plausible window: an issue each (up to the cap), and null in the frame."""
    if column.dtype == pl.Date:
        low: Any = window.earliest_date
        high: Any = window.latest_date
        shown = values.dt.strftime("%Y-%m-%d")
        kind = "date"
    else:
        low, high = window.earliest, window.latest
        shown = values.dt.strftime("%Y-%m-%dT%H:%M:%SZ")
        kind = "timestamp"
    early = (values < low).fill_null(False)
    late = (values > high).fill_null(False)
    issues = report.rows(
        early, shown, column.name, lambda v: f"{kind} {v} is {window.before_text()}", f"{kind} too early"
    )
    issues += report.rows(
        late, shown, column.name, lambda v: f"{kind} {v} is {window.after_text()}", f"{kind} after the export"
    )
    return _null_where(values, early | late), issues


def _null_where(values: pl.Series, mask: pl.Series) -> pl.Series:
    return pl.select(pl.when(mask).then(None).otherwise(values)).to_series().cast(values.dtype).alias(values.name)


# --- whole table --------------------------------------------------------------------------------------------------


def _check_unique(frame: pl.DataFrame, schema: TableSchema, missing: set[str], report: _Reporter) -> list[Issue]:
    keys: list[tuple[str, ...]] = [schema.primary_key] if schema.primary_key else []
    keys += [(c.name,) for c in schema.columns if c.unique and (c.name,) not in keys]
    issues: list[Issue] = []
    for key in keys:
        if missing.intersection(key):
            continue
        names = list(key)
        duplicated = (
            frame.select(names)
            .with_row_index("__row", offset=1)
            .drop_nulls(names)
            .filter(pl.len().over(names) > 1)
            .group_by(names, maintain_order=True)
            .agg(pl.col("__row"))
        )
        label = names[0] if len(names) == 1 else "(" + ", ".join(names) + ")"
        for record in duplicated.head(MAX_ROWS_PER_PROBLEM).iter_rows(named=True):
            rows: list[int] = record["__row"]
            value = (
                _show(record[names[0]]) if len(names) == 1 else "(" + ", ".join(_show(record[n]) for n in names) + ")"
            )
            listed = ", ".join(map(str, rows[:MAX_ROWS_PER_DUPLICATE]))
            if len(rows) > MAX_ROWS_PER_DUPLICATE:
                listed += f" and {len(rows) - MAX_ROWS_PER_DUPLICATE} more"
            issues.append(
                report.issue(
                    f"duplicate {label} {value}: it appears in rows {listed}; each must be unique",
                    column=", ".join(names),
                    row=rows[0],
                )
            )
        rest = duplicated.height - MAX_ROWS_PER_PROBLEM
        if rest > 0:
            issues.append(report.issue(f"… and {rest} more duplicated values", column=", ".join(names)))
    return issues


def _unusable(frame: pl.DataFrame, column: str) -> bool:
    return frame.height > 0 and frame.get_column(column).null_count() == frame.height


def _check_consistent_references(
    frame: pl.DataFrame,
    schema: TableSchema,
    frames: Mapping[str, pl.DataFrame],
    files: Mapping[str, str],
    report: _Reporter,
) -> list[Issue]:
    """Where a table reaches another by two paths, both must agree (derived from the schemas' foreign keys).

    Example: campaigns.segment_id -> segments (whose brand_id -> brands) and campaigns.brand_id -> brands, so a
    campaign's brand_id must equal the brand_id of its segment.
    """
    issues: list[Issue] = []
    for via in schema.foreign_keys:
        middle_schema = TABLES[via.ref_table]
        middle = frames.get(via.ref_table)
        if middle is None or middle_schema.primary_key != (via.ref_column,):
            continue
        for onward in middle_schema.foreign_keys:
            for direct in schema.foreign_keys:
                if direct is via or not _same_target(direct, onward):
                    continue
                issues.extend(
                    _mismatches(
                        frame,
                        middle=middle,
                        via=via,
                        onward=onward,
                        direct=direct,
                        middle_file=files.get(via.ref_table, via.ref_table),
                        report=report,
                    )
                )
    return issues


def _same_target(a: ForeignKey, b: ForeignKey) -> bool:
    return (a.ref_table, a.ref_column) == (b.ref_table, b.ref_column)


def _mismatches(
    frame: pl.DataFrame,
    *,
    middle: pl.DataFrame,
    via: ForeignKey,
    onward: ForeignKey,
    direct: ForeignKey,
    middle_file: str,
    report: _Reporter,
) -> list[Issue]:
    expected = (
        middle.select(pl.col(via.ref_column).alias("__via"), pl.col(onward.column).alias("__expected"))
        .drop_nulls()
        .unique(subset="__via", keep="first", maintain_order=True)
    )
    joined = (
        frame.select(pl.col(via.column).alias("__via"), pl.col(direct.column).alias("__actual"))
        .with_row_index("__row")
        .join(expected, on="__via", how="left", maintain_order="left")
    )
    mask = (
        joined["__actual"].is_not_null()
        & joined["__expected"].is_not_null()
        & (joined["__actual"] != joined["__expected"])
    ).fill_null(False)
    described = joined.select(pl.struct(["__actual", "__via", "__expected"]).alias("ctx")).to_series()
    return report.rows(
        mask,
        described,
        direct.column,
        lambda ctx: (
            f"{direct.column} is {_show(ctx['__actual'])} but {via.column} {_show(ctx['__via'])} belongs to "
            f"{onward.column} {_show(ctx['__expected'])} in {middle_file}"
        ),
        f"{direct.column} disagrees with {via.column}",
    )
