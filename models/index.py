"""FAISS indexes over creator vectors, with filtering inside the search.

Exact search (``IndexFlatIP``) below ``settings.index_exact_max`` creators, an approximate index (IVF or HNSW,
parameters in settings) above it. IVF lists store one byte per dimension (``ivf_encoding``), and every row found
is then re-scored exactly from the float vectors, so scores and order are exact for the rows returned:

- ``int8`` (default): each dimension is shifted and scaled to the integers -127..127 (its own range), and the
  query is divided by the same scales and rounded to integers too, so a list scan is FAISS's integer scan
  (``QT_8bit_direct_signed``, nothing decoded) and gives the inner product up to one constant per query: the same
  order. The lists are those of the float vectors (k-means on them, centroids scaled like the codes). Measured on
  the 100k world with the same lists: the candidate search of a request 2.8–2.9 → 2.2 ms, and a top-20 overlap
  with exact search of 0.9967 at 108 lists visited (the default) against sq8's 0.9955 at 96.
- ``sq8``: FAISS's 8-bit scalar quantizer (per-dimension ranges too, residuals to the list centroid); each code
  is decoded to floats during the scan.
- ``flat``: float32 lists.

Filters are a row mask handed to FAISS as an ``IDSelectorBitmap``; when the mask is narrow (few allowed creators)
the allowed rows are scored exactly instead, so a narrow filter still returns a full list and never depends on
which IVF lists or graph neighbours were visited.

An index is stored next to the feature set it was built from, as FAISS's own binary format plus a JSON manifest
(no pickle), and loading refuses an index built from another feature set.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import shutil
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np

from audiencefit.features.errors import InputError
from audiencefit.features.featureset import FeatureSet
from audiencefit.features.io import replace_dir, sha256_file, staging_dir
from audiencefit.features.stored_paths import (
    MAX_MANIFEST_BYTES,
    UnsafePathError,
    contained_path,
    read_regular,
    sha256_contained,
)
from audiencefit.models.pair_features import authentic_share
from audiencefit.settings import Settings

log = logging.getLogger(__name__)

IndexKind = Literal["audience", "content"]
INDEX_FORMAT = 1
# Below this many allowed rows a filtered query is answered by exact scoring of the allowed rows.
EXACT_SUBSET_MAX = 50_000
REFINE_FACTOR = 1.5  # an encoded index fetches this many times k rows and keeps the k best by exact score
INT8_MAX = 127.0
# Lists visited per query when settings do not say. int8 codes are coarser than sq8's (no residuals): with the same
# lists, 108 int8 lists gave a top-k overlap with exact search of 0.9965/0.9953/0.9958 against sq8's 0.9960/0.9945/
# 0.9948 at 96 (three k-means seeds, 100k world, 300 requests), and the scan is still ~0.9 ms per request cheaper.
DEFAULT_NPROBE = {"int8": 108, "sq8": 96, "flat": 96}
ADD_CHUNK_ROWS = 65_536  # rows encoded and added at a time when building an int8 index (bounds the build's memory)


def index_vectors(fs: FeatureSet, kind: IndexKind) -> np.ndarray:
    """The vectors an index of ``kind`` holds.

    Audience vectors are scaled by the estimated authentic share of the audience, so an inner product is the
    fit of the creator's *real* audience: a bought audience that looks like the segment does not count as fit.
    """
    if kind == "content":
        return np.ascontiguousarray(fs.content, dtype=np.float32)
    return np.ascontiguousarray(fs.audience * authentic_share(fs)[:, None], dtype=np.float32)


@dataclass(frozen=True)
class Int8Codec:
    """How an ``int8`` IVF index stores a vector: ``code = round((x - offset) * scale)``, one integer in -127..127
    per dimension, where each dimension's offset and scale map its range over the indexed rows onto -127..127.

    A query ``q`` is searched as ``round((q / scale) * t)``, ``t`` making its largest element 127 (FAISS's integer
    scan takes integer queries). Then ``query · code = t (q · x - q · offset)`` up to rounding: for one query, the
    order of the inner products.
    """

    offset: np.ndarray  # (dim,) float32
    scale: np.ndarray  # (dim,) float32

    @classmethod
    def fit(cls, vectors: np.ndarray) -> Int8Codec:
        lo, hi = vectors.min(axis=0), vectors.max(axis=0)
        half = np.maximum((hi - lo) / 2.0, 1e-12)  # a constant dimension: any scale, its codes are all 0
        return cls(((hi + lo) / 2.0).astype(np.float32), (INT8_MAX / half).astype(np.float32))

    @classmethod
    def from_params(cls, params: dict[str, Any], dim: int) -> Int8Codec:
        offset = np.asarray(params.get("int8_offset", ()), dtype=np.float32)
        scale = np.asarray(params.get("int8_scale", ()), dtype=np.float32)
        if offset.shape != (dim,) or scale.shape != (dim,) or not np.all(np.isfinite(scale) & (scale > 0)):
            raise InputError(f"int8 index: its offsets and scales must be {dim} finite numbers (scales > 0)")
        return cls(offset, scale)

    def params(self) -> dict[str, Any]:
        return {"int8_offset": self.offset.tolist(), "int8_scale": self.scale.tolist()}

    def codes(self, vectors: np.ndarray) -> np.ndarray:
        out: np.ndarray = np.clip(np.rint((vectors - self.offset) * self.scale), -INT8_MAX, INT8_MAX)
        return out.astype(np.float32)

    def _stretch(self, queries: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(queries / scale, per query the factor t that makes its largest element 127; 0 for a zero query)."""
        y = queries / self.scale
        peak = np.abs(y).max(axis=1, keepdims=True)
        return y, np.divide(INT8_MAX, peak, out=np.zeros_like(peak), where=peak > 0)

    def queries(self, queries: np.ndarray) -> np.ndarray:
        """The integer queries FAISS scans the codes with."""
        y, t = self._stretch(queries)
        return np.ascontiguousarray(np.rint(y * t), dtype=np.float32)

    def similarities(self, scores: np.ndarray, queries: np.ndarray) -> np.ndarray:
        """FAISS's integer scores of ``queries`` back on the inner product's scale (approximate, like any encoded
        score)."""
        _, t = self._stretch(queries)
        safe = np.where(t > 0, t, 1.0)
        out: np.ndarray = (scores / safe + (queries @ self.offset)[:, None]).astype(np.float32)
        return out


@dataclass
class VectorIndex:
    """A FAISS index over one kind of creator vector; row i is feature set row i."""

    kind: IndexKind
    index: Any  # faiss.Index
    vectors: np.ndarray  # the indexed vectors, for exact scoring of subsets and lookalike queries
    feature_set_id: str
    index_type: str
    params: dict[str, Any]
    codec: Int8Codec | None = field(init=False)  # the query side of an int8 index (None for other encodings)

    def __post_init__(self) -> None:
        encoded = self.params.get("encoding") == "int8"
        self.codec = Int8Codec.from_params(self.params, int(self.vectors.shape[1])) if encoded else None

    @property
    def n(self) -> int:
        return int(self.vectors.shape[0])

    def search(
        self, queries: np.ndarray, k: int, allowed: np.ndarray | None = None, *, exact_scores: bool = True
    ) -> tuple[np.ndarray, np.ndarray]:
        """Top ``k`` rows per query among ``allowed`` rows (all rows when None): (scores, rows).

        With ``exact_scores=False`` an encoded index returns its approximate scores and order (the same rows):
        for callers that only take the rows and score them again themselves."""
        queries = np.ascontiguousarray(queries, dtype=np.float32)
        n_allowed = self.n if allowed is None else int(allowed.sum())
        k_eff = min(k, n_allowed)
        if k_eff <= 0:
            return np.zeros((len(queries), 0), np.float32), np.zeros((len(queries), 0), np.int64)
        if allowed is not None and n_allowed <= EXACT_SUBSET_MAX:
            return _exact_subset(self.vectors, queries, k_eff, np.flatnonzero(allowed))
        refine = exact_scores and self.params.get("encoding", "flat") != "flat"
        # Encoded: fetch a few more rows than asked and keep the best by their exact scores, so rows that the 8-bit
        # scores put just below the cut still make it (recall@100 at 1M: 0.985 without, see docs/benchmarks.md).
        k_fetch = min(n_allowed, int(np.ceil(k_eff * REFINE_FACTOR))) if refine else k_eff
        codec = self.codec
        searched = queries if codec is None else codec.queries(queries)
        scores, rows = self.index.search(searched, k_fetch, params=self._search_params(allowed))
        if codec is not None and not refine:
            scores = codec.similarities(scores, queries)
        if allowed is not None and (rows < 0).any():
            # The approximate search visited too few allowed rows for some queries: those are scored exactly over
            # every allowed row, the others keep their search (each query's answer depends on that query alone, so
            # a segment finds the same creators whichever segments share its request).
            short = (rows < 0).any(axis=1)
            alone = _exact_subset(self.vectors, queries[short], k_eff, np.flatnonzero(allowed))
            if short.all():
                return alone
            out_scores = np.empty((len(queries), k_eff), dtype=np.float32)
            out_rows = np.empty((len(queries), k_eff), dtype=np.int64)
            out_scores[short], out_rows[short] = alone
            out_scores[~short], out_rows[~short] = self.search(queries[~short], k, allowed, exact_scores=exact_scores)
            return out_scores, out_rows
        rows = rows.astype(np.int64)
        if refine:
            exact, order = _rescore(self.vectors, queries, rows)
            return exact[:, :k_eff], order[:, :k_eff]
        return scores, rows

    def _search_params(self, allowed: np.ndarray | None) -> Any:
        import faiss

        sel = None
        if allowed is not None:
            sel = faiss.IDSelectorBitmap(np.packbits(allowed.astype(np.uint8), bitorder="little"))
        if self.index_type == "ivf":
            return faiss.SearchParametersIVF(sel=sel, nprobe=int(self.params["nprobe"]))
        if self.index_type == "hnsw":
            return faiss.SearchParametersHNSW(sel=sel, efSearch=int(self.params["ef_search"]))
        return faiss.SearchParameters(sel=sel) if sel is not None else None


def shown_params(params: dict[str, Any]) -> dict[str, Any]:
    """An index's parameters for logs and reports: without the int8 codec's per-dimension arrays."""
    return {k: v for k, v in params.items() if not isinstance(v, list)}


def _rescore(vectors: np.ndarray, queries: np.ndarray, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Exact scores of the rows an encoded index found, each query's rows re-ordered by them (ties by row)."""
    scores = np.einsum("qkd,qd->qk", vectors[rows], queries)
    order = np.lexsort((rows, -scores), axis=1) if rows.size else np.zeros(rows.shape, np.int64)
    return np.take_along_axis(scores, order, axis=1).astype(np.float32), np.take_along_axis(rows, order, axis=1)


def _exact_subset(vectors: np.ndarray, queries: np.ndarray, k: int, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Exact top ``k`` among ``rows``: best score first, ties by lower row (as a stable sort would give)."""
    # Most rows allowed: one product over every row beats gathering the allowed ones.
    scores = (queries @ vectors.T)[:, rows] if len(rows) * 4 > len(vectors) else queries @ vectors[rows].T
    top = np.stack([_top_k(s, k) for s in scores]) if len(scores) else np.zeros((0, k), np.int64)
    return np.take_along_axis(scores, top, axis=1).astype(np.float32), rows[top].astype(np.int64)


def _top_k(scores: np.ndarray, k: int) -> np.ndarray:
    """Positions of the ``k`` highest scores, highest first, ties by position; a partition, not a full sort."""
    if k < len(scores):
        kth = np.partition(scores, len(scores) - k)[len(scores) - k]
        candidates = np.flatnonzero(scores >= kth)
    else:
        candidates = np.arange(len(scores))
    order = np.lexsort((candidates, -scores[candidates]))[:k]
    return candidates[order]


def build_faiss(vectors: np.ndarray, settings: Settings) -> tuple[Any, str, dict[str, Any]]:
    """A FAISS inner-product index over ``vectors``: (index, type, params). Exact up to
    ``settings.index_exact_max`` rows, otherwise IVF-Flat or HNSW as configured. Deterministic for a seed."""
    import faiss

    n, dim = vectors.shape
    if n <= settings.index_exact_max:
        flat = faiss.IndexFlatIP(dim)
        flat.add(vectors)
        return flat, "flat", {}
    if settings.index_type == "hnsw":
        hnsw = faiss.IndexHNSWFlat(dim, settings.hnsw_m, faiss.METRIC_INNER_PRODUCT)
        hnsw.hnsw.efConstruction = settings.hnsw_ef_construction
        hnsw.add(vectors)
        params = {"m": settings.hnsw_m, "ef_construction": settings.hnsw_ef_construction}
        return hnsw, "hnsw", params | {"ef_search": settings.hnsw_ef_search}
    # sqrt(n) lists with nprobe=96: measured at 1M (make bench) recall@100 0.996, p95 9.4 ms on one thread;
    # 4·sqrt(n) lists was faster (3.6 ms) but missed the 0.98 recall bar (0.979).
    nlist = settings.ivf_nlist or int(min(max(64, np.sqrt(n)), n // 39))
    nprobe = settings.ivf_nprobe or DEFAULT_NPROBE[settings.ivf_encoding]
    ivf_params: dict[str, Any] = {"nlist": nlist, "nprobe": nprobe, "encoding": settings.ivf_encoding}
    coarse = faiss.IndexFlatIP(dim)
    if settings.ivf_encoding == "sq8":
        sq8 = faiss.ScalarQuantizer.QT_8bit
        ivf = faiss.IndexIVFScalarQuantizer(coarse, dim, nlist, sq8, faiss.METRIC_INNER_PRODUCT)
    else:
        # int8 too: its lists come from this float index's k-means (the codes are added below).
        ivf = faiss.IndexIVFFlat(coarse, dim, nlist, faiss.METRIC_INNER_PRODUCT)
    ivf.cp.seed = settings.seed
    # One FAISS thread for the k-means and the list assignments: their products go through BLAS, whose last bits
    # depend on the thread count (measured at 100k: centroids 6e-4 apart with 1 and 2 threads), so the same data
    # and seed would give other lists, and other recommendations, on a machine with another number of cores.
    with _faiss_threads(1):
        # Deterministic training sample: every j-th row, about 256 points per list.
        ivf.train(vectors[:: max(1, n // (256 * nlist))])
        if settings.ivf_encoding == "int8":
            codec = Int8Codec.fit(vectors)
            return _int8_ivf(vectors, coarse, codec, nlist), "ivf", ivf_params | codec.params()
        ivf.add(vectors)
    return ivf, "ivf", ivf_params


@contextlib.contextmanager
def _faiss_threads(n: int) -> Iterator[None]:
    import faiss

    before = faiss.omp_get_max_threads()
    faiss.omp_set_num_threads(n)
    try:
        yield
    finally:
        faiss.omp_set_num_threads(before)


def _int8_ivf(vectors: np.ndarray, coarse: Any, codec: Int8Codec, nlist: int) -> Any:
    """An IVF index whose lists are ``coarse``'s (trained on the float vectors) and hold ``codec``'s codes.

    Each row goes to the list its float vector is assigned to; the quantizer keeps the centroids times the scales,
    so an integer query (``codec.queries``) ranks the lists as the float query ranks the float centroids.
    """
    import faiss
    from faiss.contrib.ivf_tools import add_preassigned

    dim = vectors.shape[1]
    centroids = coarse.reconstruct_n(0, nlist)
    scaled = faiss.IndexFlatIP(dim)
    scaled.add(np.ascontiguousarray(centroids * codec.scale, dtype=np.float32))
    direct = faiss.ScalarQuantizer.QT_8bit_direct_signed
    ivf = faiss.IndexIVFScalarQuantizer(scaled, dim, nlist, direct, faiss.METRIC_INNER_PRODUCT, False)
    ivf.train(codec.codes(vectors[:nlist]))  # the quantizer is full and the codec needs no training: sets the flag
    for start in range(0, len(vectors), ADD_CHUNK_ROWS):
        chunk = vectors[start : start + ADD_CHUNK_ROWS]
        _, lists = coarse.search(chunk, 1)
        add_preassigned(ivf, codec.codes(chunk), np.ascontiguousarray(lists[:, 0], dtype=np.int64))
    return ivf  # FAISS's Python constructor keeps a reference to ``scaled``


def build_index(fs: FeatureSet, kind: IndexKind, settings: Settings) -> VectorIndex:
    """The index of ``kind`` over a feature set."""
    vectors = index_vectors(fs, kind)
    started = time.perf_counter()
    index, index_type, params = build_faiss(vectors, settings)
    log.info(
        "index built",
        extra={
            "kind": kind,
            "type": index_type,
            "rows": len(vectors),
            "seconds": round(time.perf_counter() - started, 2),
        },
    )
    return VectorIndex(kind, index, vectors, fs.feature_set_id, index_type, params)


def save_index(idx: VectorIndex, directory: Path) -> Path:
    """Write ``<directory>/<kind>.faiss`` and its manifest atomically; returns the index path."""
    import faiss

    directory.mkdir(parents=True, exist_ok=True)
    target = directory / f"{idx.kind}.faiss"
    tmp = directory / f".{idx.kind}.faiss.tmp-{os.getpid()}"
    faiss.write_index(idx.index, str(tmp))
    manifest = {
        "format": INDEX_FORMAT,
        "kind": idx.kind,
        "index_type": idx.index_type,
        "params": idx.params,
        "rows": idx.n,
        "dim": int(idx.vectors.shape[1]),
        "feature_set_id": idx.feature_set_id,
        "sha256": sha256_file(tmp),
    }
    tmp_manifest = directory / f".{idx.kind}.json.tmp-{os.getpid()}"
    tmp_manifest.write_text(json.dumps(manifest, indent=2, sort_keys=True), encoding="utf-8")
    os.replace(tmp, target)
    os.replace(tmp_manifest, directory / f"{idx.kind}.json")
    return target


def load_index(fs: FeatureSet, kind: IndexKind, directory: Path) -> VectorIndex:
    """Load a stored index; refuses one built from another feature set (its id is a hash of the feature set's
    content, see ``audiencefit.features.featureset.content_id``), whose file changed, or whose files lie outside
    ``directory`` (symlinks resolved)."""
    import faiss

    manifest_path = directory / f"{kind}.json"
    path = directory / f"{kind}.faiss"
    if not manifest_path.is_file() or not path.is_file():
        raise InputError(f"{directory}: no {kind} index; build it with 'audiencefit index build --features {fs.path}'")
    where = str(directory)
    try:
        manifest_file = contained_path(directory, manifest_path.name, where=where)
        raw = read_regular(manifest_file, shown=str(manifest_path), max_bytes=MAX_MANIFEST_BYTES)
        manifest = json.loads(raw)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise InputError(f"{manifest_path}: unreadable ({exc}); rebuild the index") from exc
    if not isinstance(manifest, dict):
        raise InputError(f"{manifest_path}: not a JSON object; rebuild the index")
    if manifest.get("feature_set_id") != fs.feature_set_id:
        raise InputError(
            f"{path}: built from feature set {str(manifest.get('feature_set_id'))[:40]!r}, but the loaded feature set "
            f"is {fs.feature_set_id!r}; rebuild the index"
        )
    try:
        digest = sha256_contained(directory, path.name, where=where)
    except UnsafePathError:
        raise
    except InputError as exc:
        raise InputError(f"{path}: {exc}; rebuild the index") from None
    if digest != manifest.get("sha256"):
        raise InputError(f"{path}: checksum mismatch (file changed or corrupted); rebuild the index")
    # The checked file, by its resolved name (a symlink swapped in after the check would be another path).
    index = faiss.read_index(str(contained_path(directory, path.name, where=where)))
    if index.ntotal != fs.creators.height:
        raise InputError(f"{path}: holds {index.ntotal} rows, the feature set has {fs.creators.height}")
    params = manifest.get("params", {})
    if not isinstance(params, dict) or manifest.get("index_type") not in ("flat", "ivf", "hnsw"):
        raise InputError(f"{manifest_path}: index_type or params malformed; rebuild the index")
    try:
        return VectorIndex(kind, index, index_vectors(fs, kind), fs.feature_set_id, manifest["index_type"], params)
    except InputError as exc:
        raise InputError(f"{manifest_path}: {exc}; rebuild the index") from None


def default_index_dir(fs: FeatureSet) -> Path:
    return fs.path / "index"


def build_and_save(fs: FeatureSet, settings: Settings, directory: Path | None = None) -> dict[str, Any]:
    """Build the audience and content indexes and store them (atomically, as a directory swap)."""
    directory = directory or default_index_dir(fs)
    tmp = staging_dir(directory)
    summary: dict[str, Any] = {"feature_set_id": fs.feature_set_id, "indexes": {}}
    try:
        for kind in ("audience", "content"):
            idx = build_index(fs, kind, settings)
            save_index(idx, tmp)
            summary["indexes"][kind] = {"type": idx.index_type, "rows": idx.n, **shown_params(idx.params)}
        replace_dir(tmp, directory)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    summary["checksum"] = hashlib.sha256(json.dumps(summary, sort_keys=True).encode()).hexdigest()[:12]
    return summary
