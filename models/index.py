"""FAISS indexes over creator vectors, with filtering inside the search.

Exact search (``IndexFlatIP``) below ``settings.index_exact_max`` creators, an approximate index (IVF or HNSW,
parameters in settings) above it. IVF lists store 8-bit codes by default (``ivf_encoding``): scanning a list is
bounded by memory bandwidth, so reading a quarter of the bytes makes the scan about twice as fast, and every row
found is then re-scored exactly from the float vectors, so scores and order are exact for the rows returned.

Filters are a row mask handed to FAISS as an ``IDSelectorBitmap``; when the mask is narrow (few allowed creators)
the allowed rows are scored exactly instead, so a narrow filter still returns a full list and never depends on
which IVF lists or graph neighbours were visited.

An index is stored next to the feature set it was built from, as FAISS's own binary format plus a JSON manifest
(no pickle), and loading refuses an index built from another feature set.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np

from audiencefit.settings import Settings
from features.errors import InputError
from features.featureset import FeatureSet
from features.io import replace_dir, sha256_file
from models.pair_features import authentic_share

log = logging.getLogger(__name__)

IndexKind = Literal["audience", "content"]
INDEX_FORMAT = 1
# Below this many allowed rows a filtered query is answered by exact scoring of the allowed rows.
EXACT_SUBSET_MAX = 50_000
REFINE_FACTOR = 1.5  # an encoded index fetches this many times k rows and keeps the k best by exact score


def index_vectors(fs: FeatureSet, kind: IndexKind) -> np.ndarray:
    """The vectors an index of ``kind`` holds.

    Audience vectors are scaled by the estimated authentic share of the audience, so an inner product is the
    fit of the creator's *real* audience: a bought audience that looks like the segment does not count as fit.
    """
    if kind == "content":
        return np.ascontiguousarray(fs.content, dtype=np.float32)
    return np.ascontiguousarray(fs.audience * authentic_share(fs)[:, None], dtype=np.float32)


@dataclass
class VectorIndex:
    """A FAISS index over one kind of creator vector; row i is feature set row i."""

    kind: IndexKind
    index: Any  # faiss.Index
    vectors: np.ndarray  # the indexed vectors, for exact scoring of subsets and lookalike queries
    feature_set_id: str
    index_type: str
    params: dict[str, Any]

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
        scores, rows = self.index.search(queries, k_fetch, params=self._search_params(allowed))
        if allowed is not None and (rows < 0).any():
            # The approximate search visited too few allowed rows: score them all exactly.
            return _exact_subset(self.vectors, queries, k_eff, np.flatnonzero(allowed))
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
    coarse = faiss.IndexFlatIP(dim)
    if settings.ivf_encoding == "sq8":
        sq8 = faiss.ScalarQuantizer.QT_8bit
        ivf = faiss.IndexIVFScalarQuantizer(coarse, dim, nlist, sq8, faiss.METRIC_INNER_PRODUCT)
    else:
        ivf = faiss.IndexIVFFlat(coarse, dim, nlist, faiss.METRIC_INNER_PRODUCT)
    ivf.cp.seed = settings.seed
    # Deterministic training sample: every j-th row, about 256 points per list.
    ivf.train(vectors[:: max(1, n // (256 * nlist))])
    ivf.add(vectors)
    return ivf, "ivf", {"nlist": nlist, "nprobe": settings.ivf_nprobe, "encoding": settings.ivf_encoding}


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
    """Load a stored index; refuses one built from another feature set or whose file changed."""
    import faiss

    manifest_path = directory / f"{kind}.json"
    path = directory / f"{kind}.faiss"
    if not manifest_path.is_file() or not path.is_file():
        raise InputError(f"{directory}: no {kind} index; build it with 'audiencefit index build --features {fs.path}'")
    manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
    if manifest.get("feature_set_id") != fs.feature_set_id:
        raise InputError(
            f"{path}: built from feature set {manifest.get('feature_set_id')!r}, but the loaded feature set is "
            f"{fs.feature_set_id!r}; rebuild the index"
        )
    if sha256_file(path) != manifest.get("sha256"):
        raise InputError(f"{path}: checksum mismatch (file changed or corrupted); rebuild the index")
    index = faiss.read_index(str(path))
    if index.ntotal != fs.creators.height:
        raise InputError(f"{path}: holds {index.ntotal} rows, the feature set has {fs.creators.height}")
    return VectorIndex(
        kind, index, index_vectors(fs, kind), fs.feature_set_id, manifest["index_type"], manifest.get("params", {})
    )


def default_index_dir(fs: FeatureSet) -> Path:
    return fs.path / "index"


def build_and_save(fs: FeatureSet, settings: Settings, directory: Path | None = None) -> dict[str, Any]:
    """Build the audience and content indexes and store them (atomically, as a directory swap)."""
    directory = directory or default_index_dir(fs)
    tmp = directory.with_name(f".{directory.name}.tmp-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    summary: dict[str, Any] = {"feature_set_id": fs.feature_set_id, "indexes": {}}
    try:
        for kind in ("audience", "content"):
            idx = build_index(fs, kind, settings)
            save_index(idx, tmp)
            summary["indexes"][kind] = {"type": idx.index_type, "rows": idx.n, **idx.params}
        replace_dir(tmp, directory)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    summary["checksum"] = hashlib.sha256(json.dumps(summary, sort_keys=True).encode()).hexdigest()[:12]
    return summary
