"""Feature-set tables as memory-mapped Arrow files: the service's workers share one copy in the page cache.

A feature set stores its tables as compressed parquet. Read into memory, each worker of ``audiencefit serve``
holds its own copy: at a million creators the terms, follower keys, creators, audience geography and quotable
captions are ~6 GB per worker (``docs/benchmarks.md``), which is what kept the service to one worker there. Here a
table is converted once into an uncompressed Arrow IPC file in a local cache and then memory-mapped
(``pyarrow.memory_map`` + ``polars.from_arrow`` without a copy): its pages belong to the page cache, shared by every
process that maps the file, and the kernel can drop them under pressure and read them back.

- **Named by what it holds:** the sha256 of the parquet it came from (the one the feature set's manifest lists and
  ``load_feature_set`` verifies), a ``derivation`` tag for tables computed from it (e.g. the quotable captions),
  this module's format version and the polars and pyarrow versions.
- **Checked before it is mapped:** each file has a sidecar holding its own sha256, its row count and its columns;
  a file that does not match (truncated, altered, another writer's half) is converted again, never mapped. As for
  the compiled tree models (``audiencefit.models.forest``), the sidecar detects damage, not an attacker who can
  write both files: the cache must be writable only by the account running audiencefit.
- **One writer:** the conversion holds an exclusive lock on the file's ``.lock``, so workers starting together
  convert a table once; others wait and then map the result. Files are written under a private name and renamed
  into place, so no process ever maps half a file.
- **No cache, no failure:** when the cache directory cannot be written (a read-only host, a full disk), the table
  is read into memory as before, with a warning.
- **Old copies go:** each mapping marks its copy as used (the sidecar's modification time); converting a new table
  removes the copies unused for ``RETENTION_S`` (a day), so that a service swapping in a feature set every day
  keeps about two sets' copies, not every day's. Removing a file another process still maps is safe on Linux: its
  mapping stays valid until it is unmapped.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import os
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import polars as pl
import pyarrow as pa

from audiencefit.features.io import sha256_file, write_bytes_atomic

log = logging.getLogger(__name__)

FORMAT_VERSION = 2
RETENTION_S = 24 * 3600.0


def cache_key(source_sha256: str, derivation: str = "") -> str:
    """The file name stem of the mapped copy of a parquet whose sha256 is ``source_sha256``."""
    if len(source_sha256) != 64 or any(c not in "0123456789abcdef" for c in source_sha256):
        raise ValueError(f"not a sha256 hex digest: {source_sha256!r}")
    if derivation and not derivation.replace("-", "").replace("_", "").isalnum():
        raise ValueError(f"derivation tag {derivation!r}: letters, digits, '-' and '_' only")
    tag = f"-{derivation}" if derivation else ""
    return f"{source_sha256[:32]}{tag}-v{FORMAT_VERSION}-polars{pl.__version__}-pyarrow{pa.__version__}"


def mapped_table(
    source: Path,
    source_sha256: str,
    cache_dir: Path,
    *,
    derive: Callable[[pl.DataFrame], pl.DataFrame] | None = None,
    derivation: str = "",
) -> pl.DataFrame:
    """The table of the parquet ``source`` (``derive`` applied, when given), memory-mapped from ``cache_dir``.

    ``source_sha256`` is the parquet's checksum as the feature set's manifest states it; the caller verifies the
    file against it (``load_feature_set`` does). ``derive`` turns the parquet's frame into the frame kept; a
    different ``derive`` needs a different ``derivation`` tag. Falls back to reading into memory when the cache
    cannot be written.
    """
    if derive is not None and not derivation:
        raise ValueError("a derived table needs a derivation tag (it names the cached file)")
    key = cache_key(source_sha256, derivation)
    arrow, sidecar = cache_dir / f"{key}.arrow", cache_dir / f"{key}.json"
    mapped = _map_verified(arrow, sidecar)
    if mapped is not None:
        return mapped
    try:
        cache_dir.mkdir(parents=True, exist_ok=True)
        lock = os.open(cache_dir / f"{key}.lock", os.O_CREAT | os.O_RDWR, 0o600)
    except OSError as exc:
        log.warning(
            "table cache not writable: the table is read into memory",
            extra={"table": source.name, "cache_dir": str(cache_dir), "error": str(exc)},
        )
        return _read(source, derive)
    try:
        fcntl.flock(lock, fcntl.LOCK_EX)
        mapped = _map_verified(arrow, sidecar)  # another process may have written it while this one waited
        if mapped is None:
            try:
                _convert(source, arrow, sidecar, derive)
            except OSError as exc:  # e.g. no space left: serve from memory rather than not at all
                log.warning(
                    "table copy could not be written: the table is read into memory",
                    extra={"table": source.name, "cache_dir": str(cache_dir), "error": str(exc)},
                )
                return _read(source, derive)
            mapped = _map_verified(arrow, sidecar)
            if mapped is None:
                raise RuntimeError(f"{arrow}: written and then not readable as written")
            prune(cache_dir, keep=key)
        return mapped
    finally:
        os.close(lock)  # closing the descriptor releases the lock


def prune(cache_dir: Path, *, keep: str = "", now: float | None = None) -> list[str]:
    """Remove the copies (and their sidecars and locks) whose sidecar was not touched for ``RETENTION_S``, but
    ``keep``; returns the names removed. A copy being converted has no sidecar yet and is left alone."""
    limit = (time.time() if now is None else now) - RETENTION_S
    removed = []
    for sidecar in cache_dir.glob("*.json"):
        stem = sidecar.name[: -len(".json")]
        try:
            if stem == keep or sidecar.stat().st_mtime >= limit:
                continue
            for suffix in (".arrow", ".json", ".lock"):
                (cache_dir / f"{stem}{suffix}").unlink(missing_ok=True)
        except OSError:
            continue
        removed.append(stem)
    if removed:
        log.info("unused table copies removed", extra={"cache_dir": str(cache_dir), "copies": len(removed)})
    return removed


def _read(source: Path, derive: Callable[[pl.DataFrame], pl.DataFrame] | None) -> pl.DataFrame:
    """The table read into memory: what a copy holds, and what is served when no copy can be made."""
    frame = pl.read_parquet(source)
    return derive(frame) if derive is not None else frame


def _convert(source: Path, arrow: Path, sidecar: Path, derive: Callable[[pl.DataFrame], pl.DataFrame] | None) -> None:
    frame = _read(source, derive)
    # polars' own layout (strings as views): mapped back without a conversion, so without a copy.
    table = frame.rechunk().to_arrow(compat_level=pl.CompatLevel.newest())
    del frame
    fd, tmp_name = tempfile.mkstemp(dir=arrow.parent, prefix=f".{arrow.stem}.", suffix=".tmp")
    tmp = Path(tmp_name)
    try:
        with os.fdopen(fd, "wb") as fh, pa.ipc.new_file(fh, table.schema) as writer:
            # One record batch per column chunk: a mapped column is then one contiguous array, as a rechunked
            # frame read into memory would be (string columns are views: no 2 GB offset limit).
            writer.write_table(table, max_chunksize=max(table.num_rows, 1))
        meta = {
            "sha256": sha256_file(tmp),
            "rows": table.num_rows,
            "columns": table.schema.names,
            "source": source.name,
        }
        write_bytes_atomic(sidecar, json.dumps(meta).encode("utf-8"))
        os.replace(tmp, arrow)
    finally:
        tmp.unlink(missing_ok=True)
    log.info(
        "table converted for memory mapping",
        extra={"table": source.name, "rows": table.num_rows, "file": str(arrow), "bytes": arrow.stat().st_size},
    )


def _map_verified(arrow: Path, sidecar: Path) -> pl.DataFrame | None:
    """The mapped frame of ``arrow`` when it is exactly what its sidecar describes; None otherwise."""
    try:
        meta = json.loads(sidecar.read_text(encoding="utf-8"))
        if not isinstance(meta, dict) or meta.get("sha256") != sha256_file(arrow):
            return None
        source = pa.memory_map(str(arrow), "r")
        table = pa.ipc.open_file(source).read_all()
    except (OSError, ValueError, pa.ArrowException):
        return None
    if table.num_rows != meta.get("rows") or table.schema.names != meta.get("columns"):
        return None
    frame = pl.from_arrow(table, rechunk=False)
    assert isinstance(frame, pl.DataFrame)
    with contextlib.suppress(OSError):
        os.utime(sidecar)  # used now: kept by prune()
    return frame
