"""Render ``docs/data-contracts.md`` from the schemas, so the documentation cannot drift from the code.

Regenerate with ``.venv/bin/python -m audiencefit.features.contracts_doc > docs/data-contracts.md``.
"""

from __future__ import annotations

import sys
from typing import Any

import polars as pl

from audiencefit.features.export import EARLIEST_PLAUSIBLE, EXPORT_KEY, EXPORT_MANIFEST, EXPORT_TOLERANCE
from audiencefit.features.io import HEADER_PROBE_BYTES, MAX_JSON_DEPTH, TABLE_EXTENSIONS
from audiencefit.features.pseudonymise import PSEUDONYM_LENGTH, PSEUDONYMISED_COLUMNS
from audiencefit.features.schemas import TABLE_ORDER, TABLES, TEXT_MAX, Column, TableSchema
from audiencefit.features.validate import (
    LOWER_CASE_COLUMNS,
    MAX_ROWS_PER_PROBLEM,
    UPPER_CASE_COLUMNS,
    WARNING_PREFIX,
    describe_dtype,
)
from audiencefit.settings import Settings

REGENERATE_COMMAND = ".venv/bin/python -m audiencefit.features.contracts_doc > docs/data-contracts.md"


def render_contracts_markdown() -> str:
    """The full contracts document: prose on formats, normalisation and errors, then one section per table."""
    parts = [_intro()]
    parts += [_table_section(TABLES[name]) for name in TABLE_ORDER]
    return "\n".join(parts).rstrip("\n") + "\n"


def _intro() -> str:
    extensions = ", ".join(f"`{e}`" for e in TABLE_EXTENSIONS)
    required = ", ".join(f"`{t}`" for t in TABLE_ORDER if TABLES[t].required)
    optional = ", ".join(f"`{t}`" for t in TABLE_ORDER if not TABLES[t].required)
    hashed = ", ".join(f"`{t}.{c}`" for t, cols in PSEUDONYMISED_COLUMNS.items() for c in cols)
    upper = ", ".join(f"`{c}`" for c in sorted(UPPER_CASE_COLUMNS))
    lower = ", ".join(f"`{c}`" for c in sorted(LOWER_CASE_COLUMNS))
    return f"""# Data contracts

<!-- Generated from features/schemas.py by features/contracts_doc.py. Do not edit by hand; regenerate with:
     {REGENERATE_COMMAND} -->

audiencefit reads a directory of raw tables. This document states what a valid input looks like, column by
column. Check a directory with `audiencefit validate DIR`: it reports every problem and writes nothing.
An export in another shape (any CSV or JSON Lines, Instagram post JSON) is converted into these tables by
`audiencefit import` ([importing.md](importing.md)).

## Files

- One file per table, named after the table: `<table>.<ext>` with ext one of {extensions}
  (extension case does not matter). Two files for one table (say `creators.csv` and `creators.parquet`) are an
  error: keep exactly one.
- Required tables: {required}. Optional tables: {optional}. A table that another table refers to through a
  foreign key must be present whenever the referring table is (segments need brands; campaigns need brands and
  segments).
- **Parquet** keeps its own column types; they are converted to the contract types below where that is lossless
  (an integer stored as `12.0` is fine, `12.5` is not; naive timestamps are read as UTC, zoned ones converted to UTC;
  a date column may hold midnight timestamps).
- **CSV** must be UTF-8 (a byte-order mark is allowed), comma-separated, with a header line naming the columns.
  Quoted values may contain commas and line breaks. A header with no data rows is a valid empty table; a 0-byte
  file is not.
- **JSON Lines** (`.jsonl`, `.ndjson`, `.json`): UTF-8, one JSON object per line; blank lines are skipped. A `.json`
  file may instead hold one JSON array of objects. Numbers may be given as JSON numbers or strings.
- CSV and JSON values are read as text and then parsed per column, so every bad value is reported with its row.
- A file that cannot be read as its format says is one problem naming the file and, where there is one, the line:
  not UTF-8 (UTF-16/UTF-32 included), a NUL byte anywhere (`contains a NUL byte (0x00) at offset O (line L)`),
  malformed CSV or JSON, JSON nested more than {MAX_JSON_DEPTH} levels deep, a CSV header line longer than
  {HEADER_PROBE_BYTES:,} bytes, a parquet file that is not parquet or is truncated. Values may be of any length
  when read (CSV rows longer than a megabyte included); each column's "max length" below is then checked, e.g.
  `value is longer than {TEXT_MAX:,} characters, the maximum (it has 10,000,000)`.
- `{EXPORT_MANIFEST}` (optional) states when the data was exported: `{{"{EXPORT_KEY}": "2026-06-30T00:00:00Z"}}`.

## Values

- Column names must match exactly. Extra columns are ignored (reported as warnings); a missing nullable column is
  read as all-empty (warning); a missing non-nullable column is an error.
- Text is stripped of surrounding whitespace; empty text counts as missing (null).
- Columns with a closed vocabulary, and {lower}, are lower-cased before checking; {upper} are upper-cased.
- Integers: `12`, `+12`, `12.0` and `1e3` are accepted; `12.5`, `1,000`, `NaN` and `inf` are not.
  Numbers: decimal or scientific notation; `NaN` and infinities are refused (leave the value empty instead, where the
  column is nullable).
- Booleans: `true`/`false` or `1`/`0`, in any case.
- Timestamps: ISO 8601, e.g. `2024-05-01T12:00:00Z`, `2024-05-01 12:00:00+02:00`, `2024-05-01T12:00`, or a bare
  date (midnight). Values without a zone are UTC; values with a zone are converted to UTC.
- Dates: `YYYY-MM-DD`.
- "min"/"max" bounds are inclusive. "max length" counts characters, not bytes.
- A primary key must be unique and present in every row. A foreign key value must exist in the referenced table.
  Where a table reaches another by two paths they must agree (a campaign's `brand_id` is its segment's brand).

## Time: the export instant

Every timestamp and date must lie between {EARLIEST_PLAUSIBLE.date()} (no platform of the vocabulary existed
earlier) and the export instant plus {_tolerance()} (local times mistaken for UTC, clock skew); others are listed
like any invalid value (`timestamp 9999-12-31T00:00:00Z is after the export instant …`). The export instant is, in
this order: `--export-time` (on `audiencefit validate` and `audiencefit features build`); `"{EXPORT_KEY}"` in
`{EXPORT_MANIFEST}` in the data directory (the synthetic demo world writes one: 2026-06-30T00:00:00Z); else the
newest modification time of the table files (capped at the current time; a file cannot hold a post published after
it was written). `audiencefit validate` prints the instant it used and where it came from.

Features are computed as of the export instant unless `features build --as-of` sets an earlier cut-off: recency
(`days_since_last_post`) is measured from it, never from the newest timestamp found in the data, and posts or
followers timestamped after it (within the tolerance) are not used. The feature set's manifest records
`export_instant`, `export_instant_source` and `stats_as_of`.

## Per-creator bounds

`features build` bounds the work per creator, whatever the export holds:

- at most `AUDIENCEFIT_MAX_FOLLOWERS_PER_CREATOR` ({_default("max_followers_per_creator"):,}) followers per
  creator are used (audience quality, audience vector and geography, overlap keys). Beyond it a deterministic
  sample is taken: the followers with the smallest pseudonyms. The pseudonym is a keyed hash, so this is a uniform
  random sample that is the same in every build under one secret, and coordinated across creators (a person kept
  in one sample is kept in every sample it ranks in), which keeps audience overlap measurable;
- hashtag and mention counts come from each creator's newest `AUDIENCEFIT_MAX_POSTS_PER_CREATOR`
  ({_default("max_posts_per_creator"):,}) posts; engagement statistics use the last `AUDIENCEFIT_RECENT_POSTS`
  ({_default("recent_posts")}) posts and the content vector the last captions only.

Both bounds are recorded in the feature set's manifest (`settings`) and are part of its id. Inputs under the bounds
give the same features as without them.

## Pseudonymisation

{hashed} is replaced at ingestion by `HMAC-SHA256(secret, id)` as hex, first {PSEUDONYM_LENGTH} characters, with
the secret from `AUDIENCEFIT_FOLLOWER_ID_SECRET`. Raw follower ids are never stored or passed on; the same id
always maps to the same pseudonym under one secret.

## How problems are reported

Validation is lazy: it collects every problem of every table before failing, each as
`file, row R, column 'c': problem`. Row R is the R-th data row (the CSV header is not counted, so row 1 is line 2
of a CSV file without blank lines); problems with the file itself (encoding, malformed CSV or JSON) name the line
instead. For each column and kind of problem the first {MAX_ROWS_PER_PROBLEM} rows are listed, then a count of the
rest. Warnings start with `{WARNING_PREFIX.strip()}` and never make the input invalid. `audiencefit validate`
exits with 0 when every table is valid and 2 otherwise; other commands fail with exit code 2 and the same list.
"""


def _tolerance() -> str:
    hours = int(EXPORT_TOLERANCE.total_seconds() // 3600)
    return "one day" if hours == 24 else f"{hours} hours"


def _default(setting: str) -> Any:
    return Settings.model_fields[setting].default


def _table_section(schema: TableSchema) -> str:
    names = ", ".join(f"`{schema.name}{ext}`" for ext in TABLE_EXTENSIONS)
    lines = [
        f"## `{schema.name}`" + (" (required)" if schema.required else " (optional)"),
        "",
        _escape(schema.description),
        "",
        f"- File: {names}",
    ]
    if schema.primary_key:
        lines.append(f"- Primary key: {', '.join(f'`{c}`' for c in schema.primary_key)} (unique, never empty)")
    for fk in schema.foreign_keys:
        lines.append(f"- Foreign key: `{fk.column}` → `{fk.ref_table}.{fk.ref_column}`")
    hashed = PSEUDONYMISED_COLUMNS.get(schema.name, ())
    if hashed:
        lines.append(f"- Pseudonymised at ingestion: {', '.join(f'`{c}`' for c in hashed)}")
    lines += [
        "",
        "| column | type | nullable | unit | constraints | meaning |",
        "|---|---|---|---|---|---|",
    ]
    lines += [_column_row(schema, column) for column in schema.columns]
    lines.append("")
    return "\n".join(lines)


def _column_row(schema: TableSchema, column: Column) -> str:
    cells = [
        f"`{column.name}`",
        _type_text(column),
        "yes" if column.nullable else "no",
        _escape(column.unit) or "",
        _escape("; ".join(_constraints(schema, column))),
        _escape(column.description),
    ]
    return "| " + " | ".join(cells) + " |"


def _type_text(column: Column) -> str:
    name = describe_dtype(column.dtype)
    if name == "timestamp":
        return "timestamp (ISO 8601, UTC)"
    if name == "date":
        return "date (YYYY-MM-DD)"
    return name


def _constraints(schema: TableSchema, column: Column) -> list[str]:
    out: list[str] = []
    if column.name in schema.primary_key:
        out.append("primary key" if len(schema.primary_key) == 1 else "part of the primary key")
    elif column.unique:
        out.append("unique")
    out += [f"references {fk.ref_table}.{fk.ref_column}" for fk in schema.foreign_keys if fk.column == column.name]
    if column.min_value is not None:
        out.append(f"min {_number(column.min_value)}")
    if column.max_value is not None:
        out.append(f"max {_number(column.max_value)}")
    if column.max_length is not None:
        out.append(f"max length {column.max_length}")
    if column.allowed is not None:
        out.append("one of " + ", ".join(f"`{v}`" for v in column.allowed))
    if isinstance(column.dtype, pl.Datetime) or column.dtype == pl.Date:
        out.append(f"from {EARLIEST_PLAUSIBLE.date()} to the export instant + {_tolerance()}")
    if column.name in UPPER_CASE_COLUMNS:
        out.append("upper-cased")
    elif column.allowed is not None or column.name in LOWER_CASE_COLUMNS:
        out.append("lower-cased")
    return out


def _number(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else str(value)


def _escape(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


if __name__ == "__main__":
    sys.stdout.write(render_contracts_markdown())
