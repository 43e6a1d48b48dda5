"""On-disk, content-addressed cache of text embeddings.

A vector is stored under ``key = blake2b(embedder_id + "\\x00" + prepared text, 16 bytes)``, so a different
backend, model or version (a different embedder id) can never read another's vectors, and a changed text
preparation simply misses.

Layout: ``root/<sanitised embedder id>/shard-<time>-<random>.arrow``, each shard an uncompressed Arrow IPC file with
columns ``key`` (fixed-size binary, 16 bytes) and ``vector`` (fixed-size list of float32), in one record batch.
A lookup memory-maps the shards its keys are in and copies only their rows: a build or update whose texts are
spread over many shards reads a few pages of each, not every shard whole (shards of earlier versions,
``shard-*.parquet`` with the same columns, are still read, whole). Shards are append-only and
written to a temporary file, flushed to disk and renamed into place, so a crash never leaves a half-written
shard under a shard name, and several processes may add shards at the same time. A shard that cannot be read
(corrupt, truncated, wrong width) is logged and ignored: the cache then misses and the texts are re-embedded.

Memory: the index holds only the keys (a sorted ``S16`` array, searched with ``searchsorted``) and, per key, the
shard and row that hold its vector: 24 bytes per entry, so millions of entries cost tens of megabytes. Vectors
are read from their shards (memory-mapped) only when asked for.
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
import threading
import time
import uuid
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.parquet as pq

logger = logging.getLogger(__name__)

KEY_BYTES = 16
_SHARD_GLOBS = ("shard-*.arrow", "shard-*.parquet")  # the second: shards written before the Arrow format
_COMPACT_ROWS = 200_000
_META_EMBEDDER = b"audiencefit.embedder_id"
_META_DIM = b"audiencefit.dim"


def cache_key(embedder_id: str, prepared_text: str) -> bytes:
    """The 16-byte content address of ``prepared_text`` embedded by ``embedder_id``."""
    payload = (embedder_id + "\x00" + prepared_text).encode("utf-8")
    return hashlib.blake2b(payload, digest_size=KEY_BYTES).digest()


def sanitise_id(embedder_id: str) -> str:
    """A directory name for an embedder id: ``minilm-l6-v2/torch-fp32`` → ``minilm-l6-v2_torch-fp32``."""
    cleaned = re.sub(r"[^A-Za-z0-9._-]+", "_", embedder_id).strip("._")
    return cleaned or "embedder"


class EmbeddingCache:
    """Content-addressed embedding store for one embedder (see the module docstring)."""

    def __init__(self, root: Path, embedder_id: str, dim: int) -> None:
        if dim <= 0:
            raise ValueError(f"dim must be positive, got {dim}")
        self.root = Path(root)
        self.embedder_id = embedder_id
        self.dim = dim
        self.directory = self.root / sanitise_id(embedder_id)
        self._lock = threading.RLock()
        self._loaded = False
        self._shards: list[Path] = []
        self._keys = np.empty(0, dtype=f"S{KEY_BYTES}")  # sorted
        self._shard_of = np.empty(0, dtype=np.int32)
        self._row_of = np.empty(0, dtype=np.int32)

    # ------------------------------------------------------------------ keys and index

    def key(self, prepared_text: str) -> bytes:
        """The key of ``prepared_text`` for this cache's embedder."""
        return cache_key(self.embedder_id, prepared_text)

    def __len__(self) -> int:
        with self._lock:
            self._ensure_loaded()
            return int(self._keys.size)

    def _ensure_loaded(self) -> None:
        if self._loaded:
            return
        started = time.perf_counter()
        keys: list[npt.NDArray[np.bytes_]] = []
        shard_ids: list[npt.NDArray[np.int32]] = []
        paths = sorted(p for glob in _SHARD_GLOBS for p in self.directory.glob(glob)) if self.directory.is_dir() else []
        for path in paths:
            shard_keys = self._read_keys(path)
            if shard_keys is None:
                continue
            shard_ids.append(np.full(shard_keys.size, len(self._shards), dtype=np.int32))
            keys.append(shard_keys)
            self._shards.append(path)
        rows = [np.arange(k.size, dtype=np.int32) for k in keys]
        self._set_index(keys, shard_ids, rows)
        self._loaded = True
        logger.debug(
            "embedding cache index loaded",
            extra={
                "cache_dir": str(self.directory),
                "shards": len(self._shards),
                "entries": int(self._keys.size),
                "seconds": round(time.perf_counter() - started, 3),
            },
        )

    def _set_index(
        self,
        keys: list[npt.NDArray[np.bytes_]],
        shard_ids: list[npt.NDArray[np.int32]],
        rows: list[npt.NDArray[np.int32]],
    ) -> None:
        """Replace the index by the given parts; the first occurrence of a duplicated key wins."""
        if not keys:
            return
        all_keys = np.concatenate(keys)
        all_shards = np.concatenate(shard_ids)
        all_rows = np.concatenate(rows)
        order = np.argsort(all_keys, kind="stable")  # stable: earlier parts win among duplicates
        sorted_keys = all_keys[order]
        first = np.ones(sorted_keys.size, dtype=bool)
        first[1:] = sorted_keys[1:] != sorted_keys[:-1]
        self._keys = sorted_keys[first]
        self._shard_of = all_shards[order][first]
        self._row_of = all_rows[order][first]

    def _read_keys(self, path: Path) -> npt.NDArray[np.bytes_] | None:
        """The keys of one shard, or None (with a warning) when the shard is unreadable or not ours."""
        try:
            if path.suffix == ".arrow":
                table = _mapped(path)
                problem = self._schema_problem(table.schema)
                keys = table.select(["key"]) if problem is None else None
            else:
                # One file read as one file: pq.read_table goes through dataset discovery, ~8x slower per shard.
                with pq.ParquetFile(path) as shard:
                    problem = self._schema_problem(shard.schema_arrow)
                    keys = shard.read(columns=["key"]) if problem is None else None
            if keys is not None:
                column = keys.column("key").combine_chunks()
                if column.null_count:
                    problem = "null keys"
                else:
                    return np.frombuffer(_fixed_binary_buffer(column), dtype=f"S{KEY_BYTES}").copy()
        except (OSError, pa.ArrowException, ValueError) as exc:
            problem = f"{type(exc).__name__}: {exc}"
        logger.warning("ignoring unreadable embedding cache shard", extra={"shard": str(path), "problem": problem})
        return None

    def _schema_problem(self, schema: pa.Schema) -> str | None:
        metadata = schema.metadata or {}
        stored_id = metadata.get(_META_EMBEDDER)
        if stored_id is not None and stored_id.decode("utf-8", "replace") != self.embedder_id:
            return f"written by embedder {stored_id.decode('utf-8', 'replace')!r}"
        names = set(schema.names)
        if not {"key", "vector"} <= names:
            return f"columns {sorted(names)}, expected key and vector"
        key_type = schema.field("key").type
        if not (pa.types.is_fixed_size_binary(key_type) and key_type.byte_width == KEY_BYTES):
            return f"key column of type {key_type}"
        vector_type = schema.field("vector").type
        if not (
            pa.types.is_fixed_size_list(vector_type)
            and vector_type.list_size == self.dim
            and pa.types.is_float32(vector_type.value_type)
        ):
            return f"vector column of type {vector_type}, expected {self.dim} float32"
        return None

    # ------------------------------------------------------------------ reads

    def get_many(self, keys: Sequence[bytes]) -> tuple[npt.NDArray[np.bool_], npt.NDArray[np.float32]]:
        """Look up ``keys``: a found mask and a float32 (n, dim) array (zero rows where not found)."""
        n = len(keys)
        vectors = np.zeros((n, self.dim), dtype=np.float32)
        found = np.zeros(n, dtype=bool)
        if n == 0:
            return found, vectors
        query = _as_key_array(keys)
        with self._lock:
            self._ensure_loaded()
            if self._keys.size == 0:
                return found, vectors
            position = np.searchsorted(self._keys, query)
            in_range = position < self._keys.size
            hit = np.zeros(n, dtype=bool)
            hit[in_range] = self._keys[position[in_range]] == query[in_range]
            hit_idx = np.flatnonzero(hit)
            shard_of = self._shard_of[position[hit_idx]]
            row_of = self._row_of[position[hit_idx]]
            shards = list(self._shards)
        for shard in np.unique(shard_of):
            in_shard = shard_of == shard
            block = self._read_vectors(shards[int(shard)])
            if block is None:
                continue
            vectors[hit_idx[in_shard]] = block[row_of[in_shard]]
            found[hit_idx[in_shard]] = True
        return found, vectors

    def _read_vectors(self, path: Path) -> npt.NDArray[np.float32] | None:
        """All vectors of one shard, or None if the shard became unreadable. An Arrow shard's are a view of the
        mapped file (the rows a caller takes are the only ones read); a parquet shard is read whole."""
        try:
            if path.suffix == ".arrow":
                table = _mapped(path)
                problem = self._schema_problem(table.schema)
                if problem is not None:
                    raise ValueError(problem)
            else:
                # Every lookup that hits the shard reads it: as one file (see _read_keys), not as a dataset.
                with pq.ParquetFile(path, memory_map=True) as shard:
                    table = shard.read(columns=["vector"])
            chunked = table.column("vector")
            # One chunk (as written): taken as it is; combine_chunks would copy even one (a whole shard per lookup).
            column = chunked.chunk(0) if chunked.num_chunks == 1 else chunked.combine_chunks()
            if column.null_count:
                raise ValueError("null vectors")
            flat = column.values.to_numpy(zero_copy_only=False)  # zero-copy for a mapped float32 column
            offset = column.offset * self.dim
            return np.asarray(flat[offset : offset + len(column) * self.dim], dtype=np.float32).reshape(-1, self.dim)
        except (OSError, pa.ArrowException, ValueError) as exc:
            logger.warning(
                "ignoring unreadable embedding cache shard",
                extra={"shard": str(path), "problem": f"{type(exc).__name__}: {exc}"},
            )
            return None

    # ------------------------------------------------------------------ writes

    def put_many(self, keys: Sequence[bytes], vectors: npt.ArrayLike) -> int:
        """Store vectors under ``keys`` in one new shard; keys already cached are skipped. Returns rows written."""
        array = np.asarray(vectors, dtype=np.float32)
        if array.ndim != 2 or array.shape != (len(keys), self.dim):
            raise ValueError(f"expected vectors of shape ({len(keys)}, {self.dim}), got {array.shape}")
        if len(keys) == 0:
            return 0
        query = _as_key_array(keys)
        with self._lock:
            self._ensure_loaded()
            new = ~self._contains(query)
            # Within the batch too: first occurrence of a key wins.
            _, first_idx = np.unique(query, return_index=True)
            unique_mask = np.zeros(query.size, dtype=bool)
            unique_mask[first_idx] = True
            keep = np.flatnonzero(new & unique_mask)
            if keep.size == 0:
                return 0
            path = self._write_shard(query[keep], array[keep])
            shard_id = len(self._shards)
            self._shards.append(path)
            self._insert(query[keep], shard_id)
            return int(keep.size)

    def _insert(self, keys: npt.NDArray[np.bytes_], shard_id: int) -> None:
        """Add a new shard's keys (rows 0.. in order; none of them indexed yet) to the sorted index by merging: a
        feature build adds a shard every 50,000 texts, and sorting the whole index again each time grew with the
        index (millions of keys at 1M creators), where a merge is one pass over it."""
        order = np.argsort(keys, kind="stable")
        at = np.searchsorted(self._keys, keys[order])
        self._keys = np.insert(self._keys, at, keys[order])
        self._shard_of = np.insert(self._shard_of, at, np.full(keys.size, shard_id, dtype=np.int32))
        self._row_of = np.insert(self._row_of, at, order.astype(np.int32))

    def _contains(self, query: npt.NDArray[np.bytes_]) -> npt.NDArray[np.bool_]:
        if self._keys.size == 0:
            return np.zeros(query.size, dtype=bool)
        position = np.searchsorted(self._keys, query)
        in_range = position < self._keys.size
        result = np.zeros(query.size, dtype=bool)
        result[in_range] = self._keys[position[in_range]] == query[in_range]
        return result

    def _write_shard(self, keys: npt.NDArray[np.bytes_], vectors: npt.NDArray[np.float32]) -> Path:
        """Write one shard atomically: temporary file, fsync, rename."""
        self.directory.mkdir(parents=True, exist_ok=True)
        key_array = pa.FixedSizeBinaryArray.from_buffers(
            pa.binary(KEY_BYTES), len(keys), [None, pa.py_buffer(np.ascontiguousarray(keys).tobytes())]
        )
        flat = pa.array(np.ascontiguousarray(vectors, dtype=np.float32).reshape(-1), type=pa.float32())
        vector_array = pa.FixedSizeListArray.from_arrays(flat, self.dim)
        schema = pa.schema(
            [pa.field("key", pa.binary(KEY_BYTES), nullable=False), pa.field("vector", vector_array.type)],
            metadata={_META_EMBEDDER: self.embedder_id.encode("utf-8"), _META_DIM: str(self.dim).encode()},
        )
        table = pa.Table.from_arrays([key_array, vector_array], schema=schema)
        name = f"shard-{time.time_ns():020d}-{uuid.uuid4().hex[:8]}.arrow"
        final = self.directory / name
        temporary = self.directory / f".{name}.tmp"  # does not match the shard glob
        try:
            # Random keys and float vectors do not compress: written as they are in memory, one record batch, so
            # that a reader maps the file and takes rows (an update reading 5,000 vectors spread over 30 shards of
            # 50,000 read all 30 whole from parquet, ~0.1 s each).
            with temporary.open("wb") as handle:
                with pa.ipc.new_file(handle, schema) as writer:
                    writer.write_table(table, max_chunksize=max(len(keys), 1))
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(temporary, final)
        finally:
            temporary.unlink(missing_ok=True)
        return final

    def compact(self) -> int:
        """Rewrite all shards into few large ones (duplicates dropped); returns the number of shards removed.

        New shards are written before old ones are deleted, so an interrupted compaction only leaves duplicates.
        Shards written by other processes after the index was loaded are left alone.
        """
        with self._lock:
            self._ensure_loaded()
            old_shards = list(self._shards)
            if len(old_shards) <= 1:
                return 0
            pending_keys: list[npt.NDArray[np.bytes_]] = []
            pending_vectors: list[npt.NDArray[np.float32]] = []
            pending = 0
            written: list[tuple[Path, npt.NDArray[np.bytes_]]] = []

            def flush() -> None:
                nonlocal pending
                if pending:
                    batch_keys = np.concatenate(pending_keys)
                    written.append((self._write_shard(batch_keys, np.concatenate(pending_vectors)), batch_keys))
                    pending_keys.clear()
                    pending_vectors.clear()
                    pending = 0

            by_shard = np.argsort(self._shard_of, kind="stable")
            bounds = np.searchsorted(self._shard_of[by_shard], np.arange(len(old_shards) + 1))
            for shard_id, path in enumerate(old_shards):
                mine = by_shard[bounds[shard_id] : bounds[shard_id + 1]]  # index entries whose vector is here
                if mine.size == 0:
                    continue
                block = self._read_vectors(path)
                if block is None:
                    continue
                pending_keys.append(self._keys[mine])
                pending_vectors.append(block[self._row_of[mine]])
                pending += mine.size
                if pending >= _COMPACT_ROWS:
                    flush()
            flush()
            for path in old_shards:
                path.unlink(missing_ok=True)
            self._shards = []
            self._keys = np.empty(0, dtype=f"S{KEY_BYTES}")
            self._shard_of = np.empty(0, dtype=np.int32)
            self._row_of = np.empty(0, dtype=np.int32)
            parts = []
            for shard_id, (path, batch_keys) in enumerate(written):
                self._shards.append(path)
                parts.append((batch_keys, np.full(batch_keys.size, shard_id, dtype=np.int32)))
            self._set_index(
                [k for k, _ in parts], [s for _, s in parts], [np.arange(k.size, dtype=np.int32) for k, _ in parts]
            )
            logger.info(
                "embedding cache compacted",
                extra={"cache_dir": str(self.directory), "shards_before": len(old_shards), "shards": len(written)},
            )
            return len(old_shards) - len(written)


def _mapped(path: Path) -> pa.Table:
    """An Arrow IPC shard, memory-mapped (its buffers are views of the file)."""
    # Not closed here: the table's buffers keep the mapping alive, and it is unmapped when the last goes.
    return pa.ipc.open_file(pa.memory_map(str(path), "r")).read_all()


def _as_key_array(keys: Sequence[bytes]) -> npt.NDArray[np.bytes_]:
    for key in keys:
        if len(key) != KEY_BYTES:
            raise ValueError(f"cache keys are {KEY_BYTES} bytes, got {len(key)}")
    return np.array(list(keys), dtype=f"S{KEY_BYTES}")


def _fixed_binary_buffer(column: pa.Array) -> bytes:
    """The raw bytes of a fixed-size binary array (respecting a slice offset)."""
    data = column.buffers()[1]
    start = column.offset * KEY_BYTES
    raw: bytes = data.to_pybytes()
    return raw[start : start + len(column) * KEY_BYTES]
