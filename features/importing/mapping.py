"""``audiencefit import --from mapping``: any CSV, JSON Lines or parquet export plus a column-mapping file.

The mapping file (YAML or JSON; ``docs/importing.md`` has worked examples) says which source column holds each
contract column::

    posts:
      file: posts.csv              # inside SRC when SRC is a directory; leave out when SRC is the posts file
      columns: {post_id: id, creator_id: owner_id, posted_at: created, caption: text, likes: like_count,
                comments: comment_count, views: plays}
      creator_columns: {handle: owner_name, followers: owner_followers}   # creator fields on each post row
    creators:                      # or a creators file of its own (not both)
      file: creators.csv
      columns: {creator_id: id, handle: username, followers: follower_count, bio: biography}
    defaults: {platform: instagram, sponsored: false}   # constants for columns the export lacks
    timestamp_unit: s              # iso (default), s, ms or us
    thousands_separator: ","       # "," (default) or "."

Counts may be written as exporters do (``1,204``, ``12.3k``, ``1.2M``). Parsing the file is pure
(:func:`parse_mapping`); :func:`import_mapping` reads the export and returns contract tables.
"""

from __future__ import annotations

import difflib
import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

import polars as pl

from audiencefit.features.errors import InputError, Issue
from audiencefit.features.export import TimeWindow
from audiencefit.features.importing.rows import (
    AT,
    CREATOR_COLUMNS,
    FILE,
    TIMESTAMP_UNITS,
    Assembled,
    assemble,
    convert_counts,
    convert_epochs,
    creators_from_rows,
)
from audiencefit.features.io import read_raw
from audiencefit.features.schemas import CREATORS, POSTS, TableSchema
from audiencefit.features.untrusted_json import parse_json

MAX_MAPPING_BYTES = 1 << 20
_TOP_KEYS = ("posts", "creators", "defaults", "timestamp_unit", "thousands_separator")
_SECTION_KEYS = {"posts": ("file", "columns", "creator_columns"), "creators": ("file", "columns")}
_KEYS = ("post_id", "creator_id")  # never a constant


@dataclass(frozen=True)
class TableMapping:
    """Where one contract table comes from: its file (relative to SRC) and contract column → source column."""

    file: str | None
    columns: dict[str, str]


@dataclass(frozen=True)
class ColumnMapping:
    """A parsed, checked mapping file."""

    posts: TableMapping
    creators: TableMapping | None
    creator_columns: dict[str, str]
    defaults: dict[str, str]
    timestamp_unit: str = "iso"
    thousands: str = ","
    where: str = "mapping"


def load_mapping(path: Path) -> ColumnMapping:
    """Read and check the mapping file at ``path`` (.yaml, .yml or .json); InputError naming the problem."""
    name = str(path)
    if not path.is_file():
        raise InputError(f"--mapping {path}: file not found")
    size = path.stat().st_size
    if size > MAX_MAPPING_BYTES:
        raise InputError(f"--mapping {path}: {size:,} bytes; a mapping file is small (at most {MAX_MAPPING_BYTES:,})")
    data = path.read_bytes()
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise InputError(f"{name}: not valid UTF-8 (byte 0x{data[exc.start]:02x} at offset {exc.start})") from exc
    suffix = path.suffix.lower()
    if suffix == ".json":
        try:
            document = parse_json(text)
        except ValueError as exc:
            raise InputError(f"{name}: {exc}") from exc
    elif suffix in (".yaml", ".yml"):
        document = _load_yaml(text, name)
    else:
        raise InputError(f"--mapping {path}: unsupported extension {path.suffix!r}; use .yaml, .yml or .json")
    return parse_mapping(document, name)


def _load_yaml(text: str, name: str) -> Any:
    import yaml

    try:
        return yaml.safe_load(text)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark is not None else ""
        raise InputError(f"{name}: {where}malformed YAML ({exc.problem})") from exc
    except (yaml.YAMLError, RecursionError) as exc:
        raise InputError(f"{name}: malformed YAML ({type(exc).__name__})") from exc


def parse_mapping(document: Any, where: str = "mapping") -> ColumnMapping:
    """Check a mapping document (parsed YAML or JSON) and return it; every problem at once, each with its key."""
    problems: list[str] = []
    if not isinstance(document, dict):
        raise InputError(f"{where}: expected a mapping with a 'posts' section, got {type(document).__name__}")
    for key in document:
        if key not in _TOP_KEYS:
            problems.append(f"unknown key {key!r}{_suggest(str(key), _TOP_KEYS)} (known: {', '.join(_TOP_KEYS)})")
    posts = _table(document, "posts", POSTS, problems, required=True)
    creators = _table(document, "creators", CREATORS, problems, required=False)
    creator_columns = _columns(
        _section(document, "posts", problems).get("creator_columns"), "posts.creator_columns", CREATORS, problems
    )
    if creator_columns.pop("creator_id", None) is not None:
        problems.append("posts.creator_columns: creator_id comes from posts.columns; leave it out here")
    defaults = _defaults(document.get("defaults"), problems)
    unit = document.get("timestamp_unit", "iso")
    if unit not in TIMESTAMP_UNITS:
        problems.append(f"timestamp_unit: {unit!r} is not one of {', '.join(TIMESTAMP_UNITS)}")
    thousands = document.get("thousands_separator", ",")
    if thousands not in (",", "."):
        problems.append(f"thousands_separator: {thousands!r} must be ',' or '.'")
    if creators is not None and creator_columns:
        problems.append("give either a 'creators' section or posts.creator_columns, not both")
    if creators is None and not creator_columns:
        problems.append(
            "no creators: add a 'creators' section (a creators file) or posts.creator_columns (creator fields on "
            "each post row, e.g. handle and followers)"
        )
    posts_cols = posts.columns if posts else {}
    creator_cols = creators.columns if creators else {"creator_id": posts_cols.get("creator_id", ""), **creator_columns}
    for schema, mapped, section in ((POSTS, posts_cols, "posts"), (CREATORS, creator_cols, "creators")):
        for column in schema.columns:
            if not column.nullable and column.name not in mapped and column.name not in defaults:
                if posts is None or (section == "creators" and creators is None and not creator_columns):
                    continue  # already reported
                place = section if section == "posts" or creators else "posts.creator_columns"
                problems.append(
                    f"{place}: the required contract column {column.name!r} is neither mapped nor given in 'defaults'"
                )
    if problems or posts is None:
        raise InputError([Issue(table="mapping", file=where, problem=p) for p in problems])
    return ColumnMapping(
        posts=posts,
        creators=creators,
        creator_columns=creator_columns,
        defaults=defaults,
        timestamp_unit=str(unit),
        thousands=str(thousands),
        where=where,
    )


def _suggest(name: str, known: tuple[str, ...] | list[str]) -> str:
    close = difflib.get_close_matches(name, list(known), n=1, cutoff=0.6)
    return f" (did you mean {close[0]!r}?)" if close else ""


def _section(document: dict[str, Any], name: str, problems: list[str]) -> dict[str, Any]:
    section = document.get(name)
    if section is None:
        return {}
    if not isinstance(section, dict):
        problems.append(f"{name}: expected a mapping, got {type(section).__name__}")
        return {}
    return section


def _table(
    document: dict[str, Any], name: str, schema: TableSchema, problems: list[str], *, required: bool
) -> TableMapping | None:
    if name not in document:
        if required:
            problems.append(f"missing the {name!r} section")
        return None
    section = _section(document, name, problems)
    for key in section:
        if key not in _SECTION_KEYS[name]:
            known = _SECTION_KEYS[name]
            problems.append(f"{name}: unknown key {key!r}{_suggest(str(key), known)} (known: {', '.join(known)})")
    file = section.get("file")
    if file is not None:
        if not isinstance(file, str) or not file.strip():
            problems.append(f"{name}.file: expected a file name, got {file!r}")
            file = None
        else:
            file = _safe_relative(file, f"{name}.file", problems)
    if name == "creators" and file is None and "file" not in section:
        problems.append("creators.file: a creators section needs its file")
    columns = _columns(section.get("columns"), f"{name}.columns", schema, problems)
    if "columns" not in section:
        problems.append(f"{name}: missing 'columns' (contract column: source column)")
    return TableMapping(file=file, columns=columns)


def _safe_relative(file: str, key: str, problems: list[str]) -> str | None:
    """A file name inside SRC: relative, no '..' parts (a mapping file must not reach outside the export)."""
    pure = PurePosixPath(file.replace("\\", "/"))
    if pure.is_absolute() or ".." in pure.parts or (len(file) > 1 and file[1] == ":"):
        problems.append(f"{key}: {file!r} must be a path inside SRC (relative, without '..')")
        return None
    return str(pure)


def _columns(value: Any, key: str, schema: TableSchema, problems: list[str]) -> dict[str, str]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        problems.append(f"{key}: expected contract column: source column pairs, got {type(value).__name__}")
        return {}
    known = schema.column_names
    out: dict[str, str] = {}
    for target, source in value.items():
        if target not in known:
            problems.append(f"{key}: {target!r} is not a {schema.name} contract column{_suggest(str(target), known)}")
        elif not isinstance(source, str) or not source:
            problems.append(f"{key}.{target}: expected the source column's name, got {source!r}")
        else:
            out[str(target)] = source
    return out


def _defaults(value: Any, problems: list[str]) -> dict[str, str]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        problems.append(f"defaults: expected contract column: value pairs, got {type(value).__name__}")
        return {}
    known = sorted(set(POSTS.column_names) | set(CREATORS.column_names))
    out: dict[str, str] = {}
    for target, constant in value.items():
        if target in _KEYS:
            problems.append(f"defaults.{target}: an id cannot be a constant")
        elif target not in known:
            problems.append(f"defaults: {target!r} is not a contract column{_suggest(str(target), known)}")
        elif isinstance(constant, bool):
            out[str(target)] = "true" if constant else "false"
        elif isinstance(constant, str | int | float):
            out[str(target)] = str(constant)
        else:
            problems.append(f"defaults.{target}: expected text, a number or true/false, got {type(constant).__name__}")
    return out


# --- applying a mapping ------------------------------------------------------------------------------------------


def source_files(mapping: ColumnMapping, src: Path) -> dict[str, Path]:
    """table → the source file the mapping names, checked to exist inside SRC."""
    base = src if src.is_dir() else src.parent
    files: dict[str, Path] = {}
    for table, section in (("posts", mapping.posts), ("creators", mapping.creators)):
        if section is None:
            continue
        if table == "posts" and not src.is_dir():
            if section.file is not None and PurePosixPath(section.file).name != src.name:
                raise InputError(f"{mapping.where}: posts.file is {section.file!r} but SRC is the file {src.name!r}")
            files[table] = src
            continue
        if section.file is None:
            raise InputError(f"{mapping.where}: {table}.file is needed when SRC is a directory")
        path = base / section.file
        if path.is_symlink() or not path.resolve().is_relative_to(base.resolve()):
            raise InputError(f"{mapping.where}: {table}.file {section.file!r} leads outside SRC {base}")
        if not path.is_file():
            raise InputError(f"{mapping.where}: {table}.file {section.file!r}: no such file in {base}")
        files[table] = path
    return files


def _read_source(path: Path, schema: TableSchema) -> pl.DataFrame:
    """The source file as text columns with FILE and AT (its row or record number)."""
    raw = read_raw(path, schema)
    raw = raw.with_columns(pl.all().cast(pl.String))
    place = "row" if path.suffix.lower() in (".csv", ".parquet") else "record"
    at = [f"{place} {i}" for i in range(1, raw.height + 1)]
    return raw.with_columns(pl.lit(path.name).alias(FILE), pl.Series(AT, at, dtype=pl.String))


def _select(
    raw: pl.DataFrame, columns: dict[str, str], defaults: Mapping[str, str], schema: TableSchema, where: str, key: str
) -> pl.DataFrame:
    """Contract columns from a source frame: mapped columns renamed, then defaults for the contract columns of
    ``schema`` the mapping leaves out (mapped, empty values are not filled: a missing value stays visible)."""
    missing = [source for source in columns.values() if source not in raw.columns]
    if missing:
        known = [c for c in raw.columns if c not in (FILE, AT)]
        problems = [
            f"{key}: source column {m!r} is not in {raw[FILE][0] if raw.height else 'the file'}{_suggest(m, known)}"
            for m in missing
        ]
        problems.append(f"its columns are: {', '.join(known[:40])}" + (" …" if len(known) > 40 else ""))
        raise InputError([Issue(table=schema.name, file=where, problem=p) for p in problems])
    selected = [pl.col(source).alias(target) for target, source in columns.items()]
    constants = [
        pl.lit(value, dtype=pl.String).alias(target)
        for target, value in defaults.items()
        if target in schema.column_names and target not in columns
    ]
    return raw.select(*selected, *constants, FILE, AT)


def import_mapping(mapping: ColumnMapping, src: Path, window: TimeWindow | None) -> tuple[Assembled, list[Path]]:
    """Read the export at ``src`` as ``mapping`` says and return the contract tables and the files read.

    InputError with every problem (source file, row or record, source field) when any value does not fit."""
    files = source_files(mapping, src)
    posts_raw = _read_source(files["posts"], POSTS)
    post_fields = dict(mapping.posts.columns)
    posts = _select(posts_raw, mapping.posts.columns, mapping.defaults, POSTS, mapping.where, "posts.columns")
    issues: list[Issue] = []
    posts, more = convert_epochs(posts, "posts", "posted_at", mapping.timestamp_unit, post_fields.get("posted_at", ""))
    issues += more
    posts, more = convert_counts(posts, "posts", post_fields, thousands=mapping.thousands)
    issues += more
    if mapping.creators is not None:
        creators_raw = _read_source(files["creators"], CREATORS)
        creator_fields = dict(mapping.creators.columns)
        creators = _select(
            creators_raw, mapping.creators.columns, mapping.defaults, CREATORS, mapping.where, "creators.columns"
        )
    else:
        creator_fields = {"creator_id": post_fields["creator_id"], **mapping.creator_columns}
        from_posts = _select(
            posts_raw,
            {"creator_id": post_fields["creator_id"], **mapping.creator_columns},
            mapping.defaults,
            CREATORS,
            mapping.where,
            "posts.creator_columns",
        )
        creators = from_posts
    creators, more = convert_counts(creators, "creators", creator_fields, thousands=mapping.thousands)
    issues += more
    if issues:
        raise InputError(issues)
    if mapping.creators is None:
        # One row per creator from its post rows: the last stated value of each field (the newest snapshot).
        creators = creators_from_rows(creators).select(
            "creator_id", *[c for c in CREATOR_COLUMNS if c in creators.columns], FILE, AT
        )
    assembled, issues = assemble(creators, posts, creator_fields=creator_fields, post_fields=post_fields, window=window)
    if issues:
        raise InputError(issues)
    return assembled, sorted(set(files.values()))


def describe(mapping: ColumnMapping) -> str:
    """The mapping as compact JSON (logged at DEBUG, so a user can see how the file was read)."""
    return json.dumps(
        {
            "posts": mapping.posts.columns,
            "creators": mapping.creators.columns if mapping.creators else mapping.creator_columns,
            "defaults": mapping.defaults,
            "timestamp_unit": mapping.timestamp_unit,
        },
        sort_keys=True,
    )
