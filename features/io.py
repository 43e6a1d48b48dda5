"""Reading raw input tables and writing artifacts atomically.

Raw CSV and JSON Lines are read with every column as text, so that ``audiencefit.features.validate`` can report each bad
value with its row instead of a reader failing on the first one. Parquet keeps its own types. Every problem with
the file itself (missing, empty, not UTF-8, unparsable, not the format its extension says) becomes an
:class:`~audiencefit.features.errors.InputError` naming the file and, where it makes sense, the line.
"""

from __future__ import annotations

import contextlib
import csv
import errno
import hashlib
import json
import logging
import os
import re
import secrets
import shutil
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import polars as pl

from audiencefit.children import pid_alive
from audiencefit.features.errors import InputError, Issue
from audiencefit.features.schemas import TableSchema

# Accepted extensions, in the order they are looked for. ``.json`` holds JSON Lines (or one JSON array of objects).
TABLE_EXTENSIONS = (".parquet", ".csv", ".jsonl", ".ndjson", ".json")
JSON_EXTENSIONS = frozenset({".jsonl", ".ndjson", ".json"})

MAX_PARSE_ISSUES = 20  # per file: enough to see the pattern, few enough to read
_UTF8_BOM = b"\xef\xbb\xbf"
HEADER_PROBE_BYTES = 1 << 20
# The standard library CSV reader refuses fields over 128 KiB by default; only the contracts' own length limits
# (``Column.max_length``, checked in ``audiencefit.features.validate``) should decide how long a value may be.
_CSV_FIELD_LIMIT = (1 << 31) - 1
_ARROW_MAX_BLOCK = (1 << 31) - 1
# Python's JSON parser recurses per level and gives up near 1,000; table values are scalars, so any nesting this
# deep is a malformed file. Reported with the line where the nesting passes this depth.
MAX_JSON_DEPTH = 100

log = logging.getLogger(__name__)


def find_table_file(data_dir: Path, table: str) -> Path | None:
    """The one file in ``data_dir`` holding ``table`` (``<table>.parquet|csv|jsonl|ndjson|json``), or None.

    Extensions match case-insensitively. Two candidates for one table are ambiguous: InputError naming both.
    """
    if not data_dir.is_dir():
        return None
    wanted = {f"{table}{ext}": ext for ext in TABLE_EXTENSIONS}
    found = sorted(
        (p for p in data_dir.iterdir() if p.is_file() and p.name.lower() in wanted),
        key=lambda p: TABLE_EXTENSIONS.index(wanted[p.name.lower()]),
    )
    if len(found) > 1:
        names = " and ".join(p.name for p in found)
        raise InputError(
            [
                Issue(
                    table=table,
                    file=found[0].name,
                    problem=f"two files for table {table!r}: {names}; keep exactly one",
                )
            ]
        )
    return found[0] if found else None


def read_raw(path: Path, schema: TableSchema) -> pl.DataFrame:
    """Read one raw table: parquet with its types, CSV / JSON Lines with every column as text (nulls kept).

    Raises InputError for a missing or 0-byte file, bytes that are not UTF-8 (with offset and line), unparsable
    CSV or JSON (with line numbers, several at once), duplicate header names, or content that is not the format the
    extension names. A CSV with only a header line is valid and gives 0 rows.
    """
    name = path.name

    def fail(problem: str) -> InputError:
        return InputError([Issue(table=schema.name, file=name, problem=problem)])

    if not path.exists():
        raise fail(f"file not found: {path}")
    if not path.is_file():
        raise fail(f"not a regular file: {path}")
    suffix = path.suffix.lower()
    if suffix not in TABLE_EXTENSIONS:
        raise fail(f"unsupported file extension {path.suffix!r}; use one of {', '.join(TABLE_EXTENSIONS)}")
    try:
        if path.stat().st_size == 0:
            raise fail("file is empty (0 bytes); a table without rows still needs its header (CSV) or schema (parquet)")
        if suffix == ".parquet":
            return _read_parquet(path, fail)
        data = path.read_bytes()
        _check_text(data, suffix, fail)
        if data.startswith(_UTF8_BOM):
            data = data[len(_UTF8_BOM) :]
        if b"\n" not in data and b"\r" in data:
            data = data.replace(b"\r", b"\n")  # classic Mac line endings: line numbers count '\r' then
        if suffix == ".csv":
            return _read_csv(data, schema, name)
        return _read_json(data, schema, name, suffix)
    except InputError:
        raise
    except OSError as exc:
        raise fail(f"cannot read the file: {exc.strerror or exc}") from exc
    except (Exception, pl.exceptions.PanicException) as exc:
        # Every known malformation has its own message above; this keeps an unforeseen one a listed problem
        # (exit code 2) instead of a traceback.
        log.debug("unexpected reader failure", exc_info=True)
        raise fail(f"could not read the file ({type(exc).__name__}: {_first_line(str(exc))})") from exc


def sha256_file(path: Path, chunk: int = 1 << 20) -> str:
    """Hex sha256 of a file's bytes, read in blocks of ``chunk`` bytes (feature sets, artifacts, batch output)."""
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        while block := fh.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def write_parquet_atomic(frame: pl.DataFrame, path: Path) -> None:
    """Write ``frame`` to ``path`` as parquet: temp file in the same directory, fsync, then rename over ``path``.

    Readers see either the old file or the complete new one, never a partial write.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    tmp = Path(tmp_name)
    try:
        with os.fdopen(fd, "wb") as handle:
            frame.write_parquet(handle)
            handle.flush()
            os.fsync(handle.fileno())
        tmp.replace(path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    _fsync_dir(path.parent)


def write_bytes_atomic(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` through a temp file in the same directory and a rename: readers (other
    processes too) see the old file or the whole new one; a failed write leaves no temp file behind. No fsync:
    for caches and control files that are rebuilt or rewritten anyway (see :func:`write_parquet_atomic`)."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def staging_dir(target: Path, *, clean: bool = True) -> Path:
    """A new empty directory beside ``target`` to write its next version in (``.<name>.tmp-<pid>-<random>``),
    after removing what killed runs left beside ``target`` (:func:`remove_leftovers`; ``clean=False`` for a
    caller that already did, as batch scoring does once per run rather than once per partition). Put it in place
    with :func:`replace_dir`; on failure remove it (``shutil.rmtree``)."""
    target.parent.mkdir(parents=True, exist_ok=True)
    if clean:
        remove_leftovers(target)
    path = Path(tempfile.mkdtemp(prefix=f".{target.name}.tmp-{os.getpid()}-", dir=target.parent))
    path.chmod(0o755)  # mkdtemp makes it private; an output directory is an ordinary directory
    return path


def replace_dir(tmp: Path, target: Path) -> None:
    """Put the fully written directory ``tmp`` in place of ``target`` in one atomic step.

    An existing ``target`` is exchanged with ``tmp`` by one ``renameat2(RENAME_EXCHANGE)`` (Linux): at every
    instant, a SIGKILL included, ``target`` is the complete old or the complete new directory; the old one, now
    at ``tmp``, is removed afterwards (what a kill leaves there, the next :func:`staging_dir` removes). A missing
    ``target`` is created by one rename. Where the kernel or file system cannot exchange, the old directory is
    first renamed aside (``.<name>.old-<pid>``): a kill between the two renames leaves no ``target``, and the next
    run's :func:`remove_leftovers` puts the old directory back. Paths stay plain directories: readers, and
    directories written by earlier versions, need nothing special.
    """
    if not os.path.lexists(target):
        try:
            os.rename(tmp, target)
        except OSError as exc:
            if exc.errno not in (errno.EEXIST, errno.ENOTEMPTY):
                raise
            # Another process created it meanwhile: exchange with its version instead.
        else:
            _fsync_dir(target.parent)
            return
    if _exchange(tmp, target):
        _fsync_dir(target.parent)
        _remove(tmp)  # the old version
        return
    old = target.with_name(f".{target.name}.old-{os.getpid()}-{secrets.token_hex(4)}")
    os.rename(target, old)
    os.rename(tmp, target)
    _fsync_dir(target.parent)
    _remove(old)


# renameat2(2): RENAME_EXCHANGE swaps two paths atomically (Linux 3.15+, glibc 2.28+; ext4, xfs, btrfs, tmpfs...).
_AT_FDCWD = -100
_RENAME_EXCHANGE = 2
_NO_EXCHANGE = frozenset({errno.EINVAL, errno.ENOSYS, errno.ENOTSUP, errno.EOPNOTSUPP, errno.EXDEV})


def _exchange(a: Path, b: Path) -> bool:
    """Swap the paths ``a`` and ``b`` atomically; False when this system cannot (nothing changed then)."""
    if sys.platform != "linux":
        return False
    import ctypes

    libc = ctypes.CDLL(None, use_errno=True)
    renameat2 = getattr(libc, "renameat2", None)
    if renameat2 is None:
        return False
    renameat2.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_uint]
    renameat2.restype = ctypes.c_int
    if renameat2(_AT_FDCWD, os.fsencode(a), _AT_FDCWD, os.fsencode(b), _RENAME_EXCHANGE) == 0:
        return True
    err = ctypes.get_errno()
    if err in _NO_EXCHANGE:
        return False
    raise OSError(err, os.strerror(err), str(a), None, str(b))


def _remove(path: Path) -> None:
    if path.is_symlink() or path.is_file():
        path.unlink(missing_ok=True)
    else:
        shutil.rmtree(path, ignore_errors=True)


# What replace_dir and staging_dir leave beside a target when killed: .<name>.tmp-<pid>[-<random>] and
# .<name>.old-<pid>[-<random>] (the forms without a random part are those of earlier versions).
_LEFTOVER = re.compile(r"\.(?P<kind>tmp|old)-(?P<pid>[0-9]+)(?:-[A-Za-z0-9_]+)?")


def leftovers(target: Path) -> list[tuple[Path, str]]:
    """The (path, kind) of what killed runs left beside ``target``: only ``.<name>.tmp-<pid>…`` and
    ``.<name>.old-<pid>…`` entries whose process is gone (a live process's staging directory is never listed)."""
    parent = target.parent
    if not parent.is_dir():
        return []
    prefix = f".{target.name}"
    found = []
    for entry in parent.iterdir():
        if not entry.name.startswith(prefix):
            continue
        match = _LEFTOVER.fullmatch(entry.name[len(prefix) :])
        if match and not pid_alive(int(match["pid"])):
            found.append((entry, match["kind"]))
    return sorted(found)


def remove_leftovers_in(directory: Path) -> int:
    """:func:`remove_leftovers` for every target in ``directory`` that killed runs left something beside."""
    if not directory.is_dir():
        return 0
    targets = {
        match["target"]
        for entry in directory.iterdir()
        if (match := re.fullmatch(r"\.(?P<target>.+?)" + _LEFTOVER.pattern, entry.name))
    }
    return sum(remove_leftovers(directory / name) for name in sorted(targets))


def remove_leftovers(target: Path) -> int:
    """Clean up after killed runs of :func:`replace_dir`: a missing ``target`` gets its old version back (the
    newest ``.old-`` leftover), every other leftover of a dead process is removed. Returns how many were removed."""
    found = leftovers(target)
    if not os.path.lexists(target):
        olds = sorted((p for p, kind in found if kind == "old"), key=lambda p: p.stat().st_mtime)
        if olds:
            with contextlib.suppress(OSError):
                os.rename(olds[-1], target)
                found = [(p, k) for p, k in found if p != olds[-1]]
    for path, _ in found:
        _remove(path)
    return len(found)


def _fsync_dir(directory: Path) -> None:
    # Makes the rename itself durable. Not possible on every platform or file system; best effort.
    with contextlib.suppress(OSError):
        dir_fd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)


def _sniff(head: bytes) -> str | None:
    """A human name for well-known binary formats, from their magic bytes."""
    if head.startswith(b"PAR1"):
        return "a parquet file"
    if head.startswith(b"\x1f\x8b"):
        return "a gzip-compressed file"
    if head.startswith(b"PK\x03\x04"):
        return "a zip archive (an Excel workbook?)"
    if head.startswith((b"\xff\xfe\x00\x00", b"\x00\x00\xfe\xff")):
        return "UTF-32 text"
    if head.startswith((b"\xff\xfe", b"\xfe\xff")):
        return "UTF-16 text"
    if head.startswith(b"\xd0\xcf\x11\xe0"):
        return "an old Excel/Office file"
    return None


def _read_parquet(path: Path, fail: Any) -> pl.DataFrame:
    _check_parquet_magic(path, fail)
    try:
        return pl.read_parquet(path)
    except (Exception, pl.exceptions.PanicException) as exc:  # several exception types (even panics) for corrupt files
        raise fail(f"could not read parquet file: {_first_line(str(exc))}") from exc


def _check_parquet_magic(path: Path, fail: Any) -> None:
    with path.open("rb") as handle:
        head = handle.read(4)
        handle.seek(max(path.stat().st_size - 4, 0))
        tail = handle.read(4)
    if head == b"PAR1" and tail != b"PAR1":
        raise fail("truncated or damaged parquet file: it starts like parquet but has no PAR1 footer at the end")
    if head != b"PAR1" or tail != b"PAR1":
        with path.open("rb") as handle:
            probe = handle.read(64)
        kind = _sniff(probe)
        if kind is None:
            looks = probe.lstrip()[:1]
            kind = "JSON text" if looks in (b"{", b"[") else "text (CSV?)" if looks.isascii() and looks else None
        described = f"; it looks like {kind}" if kind else ""
        raise fail(f"not a parquet file (no PAR1 magic bytes){described}")


def _check_text(data: bytes, suffix: str, fail: Any) -> None:
    """Refuse binary formats under a text extension, and bytes that are not UTF-8."""
    kind = _sniff(data[:8])
    if kind is not None:
        hint = "; rename it to .parquet" if kind == "a parquet file" else ""
        if kind in ("UTF-16 text", "UTF-32 text"):
            hint = "; re-export it as UTF-8"
        raise fail(f"expected {'CSV' if suffix == '.csv' else 'JSON Lines'} text but the file is {kind}{hint}")
    try:
        data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        raise fail(
            f"not valid UTF-8: byte 0x{data[exc.start]:02x} at offset {exc.start} (line {line}); "
            "re-export the file as UTF-8"
        ) from exc
    nul = data.find(b"\x00")
    if nul != -1:
        # Anywhere in the file, not only near the start: a NUL inside a value would otherwise pass as text.
        line = data.count(b"\n", 0, nul) + 1
        count = data.count(b"\x00")
        more = f" ({count:,} NUL bytes in all)" if count > 1 else ""
        raise fail(
            f"contains a NUL byte (0x00) at offset {nul} (line {line}){more}: binary data, not text; "
            "re-export the file as UTF-8 text"
        )


def _read_csv(data: bytes, schema: TableSchema, name: str) -> pl.DataFrame:
    import pyarrow as pa
    import pyarrow.csv as pa_csv

    def fail_all(problems: list[str]) -> InputError:
        return InputError([Issue(table=schema.name, file=name, problem=p) for p in problems])

    header = _csv_header(data[:HEADER_PROBE_BYTES], len(data), fail_all)

    invalid_rows: list[str] = []

    def on_invalid(row: Any) -> str:
        invalid_rows.append(str(row.text))
        return "skip"

    def read(block_size: int | None) -> Any:
        invalid_rows.clear()
        return pa_csv.read_csv(
            pa.BufferReader(data),
            read_options=pa_csv.ReadOptions(block_size=block_size) if block_size else None,
            parse_options=pa_csv.ParseOptions(newlines_in_values=True, invalid_row_handler=on_invalid),
            convert_options=pa_csv.ConvertOptions(
                column_types={h: pa.string() for h in header}, strings_can_be_null=False
            ),
        )

    try:
        try:
            table = read(None)
        except pa.ArrowInvalid as exc:
            # A row longer than pyarrow's block (1 MiB): read again in one block. Such a value is legal CSV; its
            # length is judged against the contract by the validation, like any other value.
            if "straddl" not in str(exc):
                raise
            table = read(min(len(data) + 1, _ARROW_MAX_BLOCK))
    except (pa.ArrowInvalid, pa.ArrowTypeError) as exc:
        problems = _locate_csv_problems(data.decode("utf-8"), len(header))
        raise fail_all(problems or [f"malformed CSV: {_first_line(str(exc))}"]) from exc
    # pyarrow accepts an unterminated quote at the end of the file (the rest becomes one value). Quotes come in
    # pairs in valid CSV, so an odd count sends us to the exact (slower) reader to look; a bare quote inside an
    # unquoted value (5" screen) is odd too but both readers accept it, so only a found problem fails the file.
    if invalid_rows or data.count(b'"') % 2:
        problems = _locate_csv_problems(data.decode("utf-8"), len(header))
        if problems or invalid_rows:
            raise fail_all(problems or ["malformed CSV: rows with the wrong number of fields"])
    frame = pl.from_arrow(table)
    assert isinstance(frame, pl.DataFrame)
    return frame.with_columns(pl.all().cast(pl.String))


def _csv_header(head: bytes, size: int, fail_all: Any) -> list[str]:
    """The column names of a CSV file from its first ``HEADER_PROBE_BYTES`` (``head``) of ``size`` bytes; InputError
    for a header that is missing, JSON, one single column of another separator, or names a column twice."""
    head_text = head.decode("utf-8", errors="ignore")
    first_line = head_text.lstrip("\r\n").split("\n", 1)[0]
    if first_line.lstrip().startswith(("{", "[")):
        raise fail_all(["expected CSV but line 1 looks like JSON; name a JSON Lines file .jsonl"])
    if size > HEADER_PROBE_BYTES and "\n" not in head_text:
        raise fail_all([f"line 1: the header line is longer than {HEADER_PROBE_BYTES:,} bytes; is this a CSV file?"])
    try:
        with _csv_field_limit():
            header = next(csv.reader(_lines(head_text)), [])
    except csv.Error as exc:
        raise fail_all([f"line 1: malformed CSV header ({exc})"]) from exc
    if not header or all(not h.strip() for h in header):
        raise fail_all(["no header line: the first line must name the columns"])
    if len(header) == 1:
        separator = next((name for sep, name in ((";", "';'"), ("\t", "tabs"), ("|", "'|'")) if sep in header[0]), None)
        if separator is not None:
            raise fail_all([f"the header is one single column separated by {separator}; CSV must be comma-separated"])
    duplicates = sorted({h for h in header if header.count(h) > 1})
    if duplicates:
        raise fail_all([f"header names column {d!r} more than once" for d in duplicates])
    return header


def _locate_csv_problems(text: str, n_fields: int) -> list[str]:
    """Line-numbered CSV structure problems, found with the standard library reader (slow path, errors only)."""
    problems: list[str] = []
    with _csv_field_limit():
        reader = csv.reader(_lines(text), strict=True)
        next(reader, None)  # header
        while len(problems) < MAX_PARSE_ISSUES:
            start_line = reader.line_num + 1
            try:
                record = next(reader)
            except StopIteration:
                break
            except csv.Error as exc:
                problems.append(f"line {start_line}: malformed CSV ({exc})")
                break  # the reader cannot resynchronise after a quoting error
            if not record:
                continue  # blank line
            if len(record) != n_fields:
                problems.append(
                    f"line {start_line}: expected {n_fields} fields (as in the header), found {len(record)}"
                )
    return problems


@contextlib.contextmanager
def _csv_field_limit() -> Iterator[None]:
    """Lift the standard library's 128 KiB field limit while reading (it is process-wide, so restore it)."""
    previous = csv.field_size_limit(_CSV_FIELD_LIMIT)
    try:
        yield
    finally:
        csv.field_size_limit(previous)


def _lines(text: str) -> Iterator[str]:
    """Physical lines with their endings, split on '\n' only (``str.splitlines`` also splits on U+2028 and friends,
    which would shift line numbers). Not ``io.StringIO``: under mypy this module shadows the stdlib ``io``."""
    start = 0
    while start < len(text):
        end = text.find("\n", start)
        if end == -1:
            yield text[start:]
            return
        yield text[start : end + 1]
        start = end + 1


def _read_json(data: bytes, schema: TableSchema, name: str, suffix: str) -> pl.DataFrame:
    text = data.decode("utf-8")
    stripped = text.lstrip()

    def fail_all(problems: list[str]) -> InputError:
        return InputError([Issue(table=schema.name, file=name, problem=p) for p in problems])

    if not stripped:
        raise fail_all(["file holds only whitespace: no JSON records"])
    if stripped.startswith("[") and suffix == ".json":
        # A single JSON array of objects, as many tools export; accepted for .json only.
        try:
            records = _loads(text)
        except json.JSONDecodeError as exc:
            raise fail_all([f"line {exc.lineno}: malformed JSON ({exc.msg}, column {exc.colno})"]) from exc
        except RecursionError as exc:
            raise fail_all([_too_deep(text, 1)]) from exc
        bad = [i + 1 for i, r in enumerate(records) if not isinstance(r, dict)]
        if bad:
            raise fail_all([f"element {i} of the JSON array is not an object" for i in bad[:MAX_PARSE_ISSUES]])
        return _records_to_text_frame(records)
    if not stripped.startswith("{"):
        preview = stripped.split("\n", 1)[0][:40]
        raise fail_all([f"not JSON Lines: the first line starts with {preview!r}; each line must be one JSON object"])
    fast = _read_ndjson_fast(data)
    if fast is not None:
        return fast
    records = []
    problems: list[str] = []
    for number, line in enumerate(text.split("\n"), start=1):
        if not line.strip():
            continue
        try:
            record = _loads(line)
        except json.JSONDecodeError as exc:
            problems.append(f"line {number}: malformed JSON ({exc.msg}, column {exc.colno})")
        except RecursionError:
            problems.append(_too_deep(line, number))
        else:
            if isinstance(record, dict):
                records.append(record)
            else:
                problems.append(f"line {number}: expected a JSON object, got {type(record).__name__}")
        if len(problems) >= MAX_PARSE_ISSUES:
            problems.append(f"stopped after {MAX_PARSE_ISSUES} malformed lines")
            break
    if problems:
        raise fail_all(problems)
    return _records_to_text_frame(records)


def _loads(text: str) -> Any:
    """``json.loads`` keeping integers as their digits: values become text anyway, and Python refuses to convert
    integers of more than 4,300 digits (a ValueError that is no JSON syntax error)."""
    return json.loads(text, parse_int=str)


_JSON_TOKEN = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"|[\[\]{}\n]')


def _too_deep(text: str, first_line: int) -> str:
    """The message for JSON nested deeper than the parser can follow, with the line where that happens."""
    depth = 0
    line = first_line
    for token in _JSON_TOKEN.finditer(text):
        char = token.group()
        if char == "\n":
            line += 1
        elif char in "[{":
            depth += 1
            if depth > MAX_JSON_DEPTH:
                break
        elif char in "]}":
            depth -= 1
        else:
            line += char.count("\n")  # a string (JSON strings cannot hold raw line breaks; defensive)
    return (
        f"line {line}: JSON nested more than {MAX_JSON_DEPTH} levels deep; a table value must be text, a number, "
        "a boolean or null"
    )


def _read_ndjson_fast(data: bytes) -> pl.DataFrame | None:
    """Polars' reader, when it can give a frame of scalar columns; None sends the caller to the exact slow path."""
    try:
        frame = pl.read_ndjson(data, infer_schema_length=None)
    except Exception:  # any parser complaint: the slow path finds and numbers the bad lines
        return None
    if any(dtype.is_nested() for dtype in frame.dtypes):
        return None
    return frame.with_columns(pl.all().cast(pl.String))


def _records_to_text_frame(records: list[dict[str, Any]]) -> pl.DataFrame:
    columns: dict[str, list[str | None]] = {}
    for index, record in enumerate(records):
        for key, value in record.items():
            if key not in columns:
                columns[key] = [None] * index
            columns[key].append(_json_value_as_text(value))
        for values in columns.values():
            if len(values) <= index:
                values.append(None)
    return pl.DataFrame(
        {key: pl.Series(key, values, dtype=pl.String) for key, values in columns.items()},
        height=len(records),
    )


def _json_value_as_text(value: Any) -> str | None:
    # Same spellings polars gives when it casts JSON scalars to text, so both reading paths agree.
    if value is None:
        return None
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return value
    if isinstance(value, (int, float)):
        return repr(value)
    try:
        return json.dumps(value, ensure_ascii=False)
    except RecursionError:  # nested too deeply to print; the column check reports the row as a bad value
        return "[a value nested too deeply to show]"


def _first_line(message: str) -> str:
    return message.strip().split("\n", 1)[0][:300]


# --- reading in chunks ----------------------------------------------------------------------------------------------


class UnsplittableError(Exception):
    """A table file that :func:`iter_raw_chunks` cannot read in chunks; the reason says why. Read it whole with
    :func:`read_raw` instead (which gives the file's exact problems when it is malformed)."""


class ColumnsDifferError(Exception):
    """JSON Lines whose chunks hold different keys: read again with ``columns=`` :attr:`columns` (their union)."""

    def __init__(self, columns: list[str]) -> None:
        super().__init__(f"chunks hold different columns; union: {columns}")
        self.columns = columns


def iter_raw_chunks(
    path: Path,
    schema: TableSchema,
    *,
    chunk_rows: int,
    chunk_bytes: int,
    columns: list[str] | None = None,
) -> Iterator[pl.DataFrame]:
    """The raw frames :func:`read_raw` gives for ``path``, in pieces whose concatenation is that frame.

    Parquet is read by record batches of at most ``chunk_rows`` rows (a row group is decoded at a time). CSV is
    read by pyarrow's streaming reader in blocks of ``chunk_bytes`` with the same parse options as
    :func:`read_raw` (quoted line breaks are handled by the parser, so blocks never split a value). JSON Lines is
    cut at line ends into pieces of about ``chunk_bytes``. Every piece has at least one row, except the single
    empty frame of a table without rows. Memory is bounded by a piece, not by the file.

    Raises :class:`UnsplittableError`, possibly after yielding pieces, when the file has to be read whole: it is
    empty, not the format its extension names, not clean UTF-8 text, malformed anywhere (so that the problems are
    listed exactly as :func:`read_raw` lists them), a JSON array, uses classic Mac line endings, or holds a CSV row
    longer than a block. For JSON Lines, when pieces hold different keys, raises :class:`ColumnsDifferError`; read
    again with ``columns`` set to its union, then every piece has those columns in that order (absent keys are
    null, as in the whole file; only the order of column names in messages may differ from :func:`read_raw`).
    """
    if chunk_rows < 1 or chunk_bytes < 1:
        raise ValueError(f"chunk_rows and chunk_bytes must be at least 1, got {chunk_rows} and {chunk_bytes}")
    suffix = path.suffix.lower()
    try:
        if not path.is_file() or suffix not in TABLE_EXTENSIONS or path.stat().st_size == 0:
            raise UnsplittableError("missing, empty or of an unsupported type")
        if suffix == ".parquet":
            yield from _parquet_chunks(path, schema, chunk_rows)
            return
        quotes = _scan_text(path, suffix, chunk_bytes)
        if suffix == ".csv":
            yield from _csv_chunks(path, schema, chunk_bytes, quotes)
        else:
            yield from _json_chunks(path, schema, suffix, chunk_bytes, columns)
    except (UnsplittableError, ColumnsDifferError):
        raise
    except InputError as exc:
        raise UnsplittableError(str(exc)) from exc
    except (Exception, pl.exceptions.PanicException) as exc:
        raise UnsplittableError(f"{type(exc).__name__}: {_first_line(str(exc))}") from exc


def _parquet_chunks(path: Path, schema: TableSchema, chunk_rows: int) -> Iterator[pl.DataFrame]:
    import pyarrow.parquet as pq

    def fail(problem: str) -> InputError:
        return InputError([Issue(table=schema.name, file=path.name, problem=problem)])

    _check_parquet_magic(path, fail)
    parquet = pq.ParquetFile(path)
    empty = True
    for batch in parquet.iter_batches(batch_size=chunk_rows, use_threads=False):
        if batch.num_rows:
            empty = False
            yield _frame(pl.from_arrow(batch))
    if empty:
        yield _frame(pl.from_arrow(parquet.schema_arrow.empty_table()))


def _frame(data: Any) -> pl.DataFrame:
    assert isinstance(data, pl.DataFrame)
    return data


_READ_BLOCK = 1 << 20  # bytes per read when scanning or cutting text files, whatever the chunk size


def _scan_text(path: Path, suffix: str, block: int) -> int:
    """One pass over a text table's bytes: UnsplittableError unless it is clean UTF-8 text with '\\n' line ends;
    returns the count of '\"' bytes (CSV quotes come in pairs)."""
    import codecs

    decoder = codecs.getincrementaldecoder("utf-8")()
    quotes = 0
    newline = False
    carriage = False
    with path.open("rb") as handle:
        block = max(block, _READ_BLOCK)
        first = handle.read(block)
        if _sniff(first[:8]) is not None:
            raise UnsplittableError(f"not {suffix} text")
        data = first
        while data:
            if b"\x00" in data:
                raise UnsplittableError("holds a NUL byte")
            try:
                decoder.decode(data)
            except UnicodeDecodeError as exc:
                raise UnsplittableError("not valid UTF-8") from exc
            quotes += data.count(b'"')
            newline = newline or b"\n" in data
            carriage = carriage or b"\r" in data
            data = handle.read(block)
    try:
        decoder.decode(b"", final=True)
    except UnicodeDecodeError as exc:
        raise UnsplittableError("not valid UTF-8 at its end") from exc
    if carriage and not newline:
        raise UnsplittableError("classic Mac line endings")
    return quotes


def _csv_chunks(path: Path, schema: TableSchema, block: int, quotes: int) -> Iterator[pl.DataFrame]:
    import pyarrow as pa
    import pyarrow.csv as pa_csv

    if quotes % 2:
        raise UnsplittableError("an odd number of quotes: the exact reader must look for the problem")

    def fail_all(problems: list[str]) -> InputError:
        return InputError([Issue(table=schema.name, file=path.name, problem=p) for p in problems])

    with path.open("rb") as handle:
        head = handle.read(HEADER_PROBE_BYTES + len(_UTF8_BOM))
    if head.startswith(_UTF8_BOM):
        head = head[len(_UTF8_BOM) :]
    header = _csv_header(head[:HEADER_PROBE_BYTES], path.stat().st_size, fail_all)
    invalid = 0

    def on_invalid(_row: Any) -> str:
        nonlocal invalid
        invalid += 1
        return "skip"

    reader = pa_csv.open_csv(
        path,
        read_options=pa_csv.ReadOptions(block_size=min(block, _ARROW_MAX_BLOCK), use_threads=False),
        parse_options=pa_csv.ParseOptions(newlines_in_values=True, invalid_row_handler=on_invalid),
        convert_options=pa_csv.ConvertOptions(column_types={h: pa.string() for h in header}, strings_can_be_null=False),
    )
    empty = True
    for batch in reader:
        if invalid:
            raise UnsplittableError("rows with the wrong number of fields")
        if batch.num_rows:
            empty = False
            yield _frame(pl.from_arrow(batch)).with_columns(pl.all().cast(pl.String))
    if invalid:
        raise UnsplittableError("rows with the wrong number of fields")
    if empty:
        yield pl.DataFrame(schema={h: pl.String for h in header})


def _json_chunks(
    path: Path, schema: TableSchema, suffix: str, block: int, columns: list[str] | None
) -> Iterator[pl.DataFrame]:
    seen: list[str] | None = None
    union: list[str] = []
    differ = False
    yielded = False
    for piece in _line_pieces(path, block):
        if not piece.strip():
            continue
        if not yielded and piece.lstrip().startswith(b"["):
            raise UnsplittableError("a JSON array, not JSON Lines")
        frame = _read_json(piece, schema, path.name, suffix)
        if frame.height == 0:
            continue
        names = frame.columns
        union.extend(n for n in names if n not in union)
        if columns is not None:
            unknown = [n for n in names if n not in columns]
            if unknown:
                raise UnsplittableError(f"keys {unknown} appeared between two readings of the file")
            frame = frame.with_columns(pl.lit(None, pl.String).alias(c) for c in columns if c not in names)
            frame = frame.select(columns)
        elif seen is None:
            seen = names
        elif names != seen:
            differ = True
            continue  # keep scanning for the union, yield nothing more
        if not differ:
            yielded = True
            yield frame
    if differ:
        raise ColumnsDifferError(union)
    if not yielded:
        raise UnsplittableError("no JSON records")


def _line_pieces(path: Path, block: int) -> Iterator[bytes]:
    """The file's bytes in pieces of about ``block`` bytes (at least one line each), each ending at a line end;
    the first without a BOM."""
    buffer = bytearray()
    first = True
    with path.open("rb") as handle:
        while True:
            data = handle.read(max(block, _READ_BLOCK))
            if first:
                first = False
                if data.startswith(_UTF8_BOM):
                    data = data[len(_UTF8_BOM) :]
            buffer += data
            start = 0
            while start < len(buffer):
                cut = buffer.find(b"\n", start + block - 1)
                if cut == -1:
                    if not data:  # end of file: the last line has no line end
                        yield bytes(buffer[start:])
                        start = len(buffer)
                    break
                yield bytes(buffer[start : cut + 1])
                start = cut + 1
            del buffer[:start]
            if not data:
                return
