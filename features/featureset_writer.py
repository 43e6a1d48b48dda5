"""Writing a feature set partition by partition, with bytes that do not depend on the partition count.

Per-creator tables go through one pyarrow ``ParquetWriter`` each, which buffers rows and emits row groups of exactly
``ROW_GROUP_ROWS`` rows (the last may be shorter), with explicit schemas and no statistics: the bytes depend only on
the rows, not on how they arrived. Matrices are ``.npy`` files of the final shape (the creator count is known up
front; the header is the one ``np.save`` writes) filled partition by partition with positioned writes, not a memory
map: written pages stay in the page cache, not in the process (a map of 1M rows would add ~4.7 GB to the resident
set). Memory is one partition plus one row group per table.

The layout and the loader are ``audiencefit.features.featureset``'s; this module only writes.
"""

from __future__ import annotations

import os
from pathlib import Path
from types import TracebackType
from typing import Any

import numpy as np
import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq

from audiencefit.features.compute import (
    FOLLOWER_KEYS_SCHEMA,
    GEO_SCHEMA,
    RECENT_CAPTIONS_SCHEMA,
    TERMS_SCHEMA,
    PartitionFeatures,
)
from audiencefit.features.featureset import FOLLOWER_KEYS, RECENT_CAPTIONS, UPDATE_STATE, UPDATE_STATE_SCHEMA
from audiencefit.features.io import sha256_file

ROW_GROUP_ROWS = 131_072
"""Rows per parquet row group, whatever the partitioning."""
PARQUET_COMPRESSION = "zstd"
ROW_MATRICES = ("bio", "content", "audience", "audience_dist")


class ParquetTableWriter:
    """One parquet file written in fixed-size row groups from frames of any size (cast to ``schema``)."""

    def __init__(self, path: Path, schema: dict[str, Any], *, row_group_rows: int = ROW_GROUP_ROWS) -> None:
        if row_group_rows < 1:
            raise ValueError(f"row_group_rows must be at least 1, got {row_group_rows}")
        self.path = path
        self.schema = schema
        self.rows = 0
        self._group = row_group_rows
        self._arrow_schema = pl.DataFrame(schema=schema).to_arrow().schema
        self._writer = pq.ParquetWriter(
            path, self._arrow_schema, compression=PARQUET_COMPRESSION, write_statistics=False
        )
        self._pending: list[pa.Table] = []
        self._pending_rows = 0

    def write(self, frame: pl.DataFrame) -> None:
        """Append ``frame``'s rows (columns selected and cast to the schema: a mismatch raises)."""
        if frame.height == 0:
            return
        cast = frame.select([pl.col(name).cast(dtype, strict=True) for name, dtype in self.schema.items()])
        self._pending.append(cast.to_arrow().cast(self._arrow_schema))
        self._pending_rows += frame.height
        self.rows += frame.height
        while self._pending_rows >= self._group:
            self._emit(self._group)

    def _emit(self, n: int) -> None:
        table = pa.concat_tables(self._pending)
        head, rest = table.slice(0, n), table.slice(n)
        self._writer.write_table(head.combine_chunks(), row_group_size=n)
        self._pending = [rest] if rest.num_rows else []
        self._pending_rows = rest.num_rows

    def close(self) -> None:
        """Write the last (shorter) row group and the footer."""
        if self._pending_rows:
            self._emit(self._pending_rows)
        self._writer.close()


class _RowFile:
    """A float32 ``.npy`` matrix of known shape, written in row blocks at their offsets (``os.pwrite``)."""

    def __init__(self, path: Path, *, n_rows: int, width: int) -> None:
        # open_memmap writes exactly np.save's header and sizes the file; the map itself is dropped at once
        header = np.lib.format.open_memmap(path, mode="w+", dtype=np.float32, shape=(n_rows, width))
        self._offset = int(header.offset)
        del header
        self.path = path
        self.n_rows = n_rows
        self.width = width
        self._fd: int | None = os.open(path, os.O_WRONLY)

    def write_rows(self, lo: int, block: np.ndarray) -> None:
        """Write ``block`` (rows × width, cast to float32) as rows ``lo`` onwards."""
        if self._fd is None:
            raise ValueError(f"{self.path} is closed")
        rows = np.ascontiguousarray(block, dtype=np.float32)
        if rows.ndim != 2 or rows.shape[1] != self.width or lo < 0 or lo + rows.shape[0] > self.n_rows:
            raise ValueError(
                f"rows {lo}..{lo + rows.shape[0]} of shape {rows.shape} do not fit {self.path.name} "
                f"({self.n_rows} × {self.width})"
            )
        data = rows.data.cast("B")  # the array's own bytes, not a copy of them
        position = self._offset + lo * self.width * 4
        while data:  # pwrite may write less than asked
            written = os.pwrite(self._fd, data, position)
            data, position = data[written:], position + written

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None


class FeatureSetWriter:
    """The files of one feature set, in ``target`` (a staging directory), written partition by partition.

    Partitions must come in creator order (partition order = creator-id order), which keeps every per-creator table
    in its global sort order. ``finish`` writes the creator-level and cluster files and returns every file's sha256.
    """

    def __init__(self, target: Path, *, n_creators: int, dim: int, k: int, follower_keys: bool) -> None:
        self.target = target
        self.n_creators = n_creators
        self.rows_written = 0
        self._rows: dict[str, int] = {}
        (target / "vectors").mkdir(parents=True, exist_ok=True)
        self._tables: dict[str, ParquetTableWriter] = {
            "terms": ParquetTableWriter(target / "terms.parquet", TERMS_SCHEMA),
            "audience_geo": ParquetTableWriter(target / "audience_geo.parquet", GEO_SCHEMA),
            RECENT_CAPTIONS: ParquetTableWriter(target / f"{RECENT_CAPTIONS}.parquet", RECENT_CAPTIONS_SCHEMA),
        }
        self._tables[UPDATE_STATE] = ParquetTableWriter(target / f"{UPDATE_STATE}.parquet", UPDATE_STATE_SCHEMA)
        if follower_keys:
            self._tables[FOLLOWER_KEYS] = ParquetTableWriter(target / f"{FOLLOWER_KEYS}.parquet", FOLLOWER_KEYS_SCHEMA)
        widths = {"bio": dim, "content": dim, "audience": dim, "audience_dist": k}
        self._matrices: dict[str, _RowFile] = {}
        for name, width in widths.items():
            path = target / "vectors" / f"{name}.npy"
            if n_creators == 0:  # a zero-length file cannot be memory-mapped
                np.save(path, np.zeros((0, width), dtype=np.float32))
                continue
            self._matrices[name] = _RowFile(path, n_rows=n_creators, width=width)

    def write_partition(self, part: PartitionFeatures) -> None:
        """Append one partition's rows (the next creators in id order)."""
        lo, hi = self.rows_written, self.rows_written + part.n_creators
        if hi > self.n_creators:
            raise ValueError(f"partition rows {lo}..{hi} exceed the {self.n_creators} creators announced")
        for name, matrix in self._matrices.items():
            matrix.write_rows(lo, getattr(part, name))
        self.rows_written = hi
        self._tables["terms"].write(part.terms)
        self._tables["audience_geo"].write(part.audience_geo)
        self._tables[RECENT_CAPTIONS].write(part.recent_captions)
        if FOLLOWER_KEYS in self._tables and part.follower_keys is not None:
            self._tables[FOLLOWER_KEYS].write(part.follower_keys)

    def write_state(self, state: pl.DataFrame) -> None:
        """Append the update state of the creators of the partition just written (``UPDATE_STATE_SCHEMA``, in
        creator order): what ``features update`` compares and carries over."""
        self._tables[UPDATE_STATE].write(state)

    @property
    def table_rows(self) -> dict[str, int]:
        """Rows written so far to each per-creator table (kept after :meth:`finish`)."""
        return self._rows | {name: writer.rows for name, writer in self._tables.items()}

    def finish(self, creators: pl.DataFrame, clusters: pl.DataFrame, centroids: np.ndarray) -> dict[str, str]:
        """Write the creators and clusters tables and the centroids, close everything, and return the sha256 of
        every file (relative path → hex digest)."""
        state_rows = self._tables[UPDATE_STATE].rows if UPDATE_STATE in self._tables else self.n_creators
        if self.rows_written != self.n_creators or creators.height != self.n_creators or state_rows != self.n_creators:
            raise ValueError(
                f"{self.rows_written} matrix rows and {creators.height} creator rows written, "
                f"{self.n_creators} announced"
            )
        self._close_all()
        for name, frame in (("creators", creators), ("clusters", clusters)):
            writer = ParquetTableWriter(self.target / f"{name}.parquet", dict(frame.schema))
            writer.write(frame)
            writer.close()
        np.save(self.target / "vectors" / "centroids.npy", np.ascontiguousarray(centroids, dtype=np.float32))
        files = sorted(p for p in self.target.rglob("*") if p.is_file())
        return {str(p.relative_to(self.target)): sha256_file(p) for p in files}

    def _close_all(self) -> None:
        for name, writer in self._tables.items():
            writer.close()
            self._rows[name] = writer.rows
        self._tables = {}
        for matrix in self._matrices.values():
            matrix.close()
        self._matrices = {}

    def abort(self) -> None:
        """Release open files (the caller removes the staging directory)."""
        try:
            self._close_all()
        except Exception:  # best effort: the files are about to be deleted
            self._tables, self._matrices = {}, {}

    def __enter__(self) -> FeatureSetWriter:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if exc_type is not None:
            self.abort()
