"""Streaming parquet output for the synthetic world, and the atomic swap of the finished directory into place."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from types import TracebackType

import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq

from audiencefit.features.io import replace_dir, staging_dir


def arrow_schema(schema: pl.Schema) -> pa.Schema:
    """The arrow schema polars produces for ``schema``, so written files read back with exactly those dtypes."""
    return pl.DataFrame(schema=schema).to_arrow().schema


class ParquetSink:
    """Appends frames of one fixed schema to a parquet file, one row group per write."""

    def __init__(self, path: Path, schema: pl.Schema, *, float_columns_split: bool = False) -> None:
        self.path = path
        self.schema = schema
        self.rows = 0
        self._arrow = arrow_schema(schema)
        options: dict[str, object] = {}
        if float_columns_split:
            # Byte-stream-split floats compress far better than dictionary-encoded ones (truth/fit is huge).
            floats = [n for n, t in schema.items() if t in (pl.Float32(), pl.Float64())]
            options = {"use_dictionary": [n for n in schema if n not in floats], "use_byte_stream_split": floats}
        # No timestamps or other per-run metadata: the same frames give byte-identical files.
        self._writer = pq.ParquetWriter(path, self._arrow, compression="zstd", **options)

    def write(self, frame: pl.DataFrame) -> None:
        """Append ``frame``; its columns and dtypes must match the sink's schema exactly."""
        if frame.schema != self.schema:
            raise ValueError(f"{self.path.name}: frame schema {frame.schema} != {self.schema}")
        if frame.height == 0:
            return
        self._writer.write_table(frame.to_arrow().cast(self._arrow))
        self.rows += frame.height

    def close(self) -> None:
        self._writer.close()

    def __enter__(self) -> ParquetSink:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()


class SinkSet:
    """Several named sinks opened and closed together."""

    def __init__(self, root: Path, schemas: dict[str, pl.Schema], *, float_split: tuple[str, ...] = ()) -> None:
        self._stack = ExitStack()
        self.sinks: dict[str, ParquetSink] = {}
        for name, schema in schemas.items():
            path = root / f"{name}.parquet"
            path.parent.mkdir(parents=True, exist_ok=True)
            sink = ParquetSink(path, schema, float_columns_split=name in float_split)
            self.sinks[name] = self._stack.enter_context(sink)

    def write(self, name: str, frame: pl.DataFrame) -> None:
        self.sinks[name].write(frame)

    def rows(self, name: str) -> int:
        return self.sinks[name].rows

    def __enter__(self) -> SinkSet:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._stack.close()


def is_empty_dir(path: Path) -> bool:
    """True when ``path`` is missing or an empty directory."""
    return not path.exists() or (path.is_dir() and not any(path.iterdir()))


@contextmanager
def staged_directory(out_dir: Path) -> Iterator[Path]:
    """Yield a fresh sibling directory of ``out_dir``; on success it replaces ``out_dir``, on failure it vanishes.

    Readers never see a half-written world, and a killed run leaves the old or the new world in place
    (:func:`audiencefit.features.io.replace_dir`); what it leaves beside it, the next run removes.
    """
    staging = staging_dir(out_dir)
    try:
        yield staging
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    try:
        replace_dir(staging, out_dir)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
