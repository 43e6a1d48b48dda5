"""Update a built creator index for a new feature set without building it again (#20 §3).

A daily refresh changes a few creators: their rows get new vectors, some creators are new, some are gone. An IVF
index keeps its trained parts (the coarse quantiser's lists and, for ``int8``, the codec's offsets and scales) and
only its inverted lists change: the entries of removed and changed creators are dropped, those of new and changed
creators are encoded and put in the list their vector is assigned to, and every entry's id becomes the creator's
row in the new feature set (rows shift when creators come and go, the ids being feature-set rows). Each list is
kept in increasing row order, as a build adds rows, so the updated index is the very index a build would make
from the new vectors with the same quantiser and codec (``rebuild_with_quantizer``, which the tests compare with).

That holds while the trained parts still fit the data (:func:`quantizer_fits`): few creators changed (at most
``max_share`` of them, 5 % by default), the new vectors within the ``int8`` codec's ranges, and the new vectors as
close to their nearest list centre as the unchanged ones are. Otherwise the index is built again from scratch
(``audiencefit.models.index.build_faiss``: k-means and codec refitted), and the stats say why. A flat (exact) index has
nothing trained and is simply filled again; an HNSW graph cannot drop nodes, so it is built again.

Nothing is changed in place: an index given as an object is copied first (a serving process may be searching
it); an index directory is written to a new directory and put in place atomically
(``audiencefit.features.io.replace_dir``), its manifest and checksum rewritten by
``audiencefit.models.index.save_index``.
"""

from __future__ import annotations

import logging
import shutil
import time
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Literal, overload

import numpy as np
import polars as pl

from audiencefit.features.errors import InputError
from audiencefit.features.featureset import FeatureSet, load_feature_set
from audiencefit.features.io import replace_dir, staging_dir
from audiencefit.models.index import (
    INT8_MAX,
    IndexKind,
    Int8Codec,
    VectorIndex,
    build_faiss,
    default_index_dir,
    index_vectors,
    load_index,
    save_index,
)
from audiencefit.settings import Settings

log = logging.getLogger(__name__)

MAX_CHANGED_SHARE = 0.05  # above this share of creators changed, added or removed: build again
MAX_CLIPPED_SHARE = 0.001  # int8: share of the new vectors' values outside the codec's range that still fits
MIN_AFFINITY_RATIO = 0.9  # new vectors' mean cosine to their list centre, relative to the unchanged ones'
AFFINITY_SAMPLE = 5_000  # unchanged rows the affinity is compared with (every j-th row)
MIN_AFFINITY_ROWS = 100  # fewer re-encoded vectors than this: no affinity check
COMPARE_CHUNK_ROWS = 4_096  # rows of old and new vectors compared at a time
KINDS: tuple[IndexKind, ...] = ("audience", "content")

Method = Literal["in-place", "refilled", "rebuilt"]


@dataclass(frozen=True)
class IndexUpdateStats:
    """What an update did to one index."""

    kind: str
    method: Method  # in-place: lists updated; refilled: a flat index filled again; rebuilt: built from scratch
    reason: str
    rows_before: int
    rows_after: int
    added: int  # creators new in the feature set
    removed: int  # creators gone from it
    replaced: int  # creators in both whose vectors changed (listed, or found to differ)
    unlisted_changes: int  # creators not listed as changed whose vectors differ all the same (replaced too)
    seconds: float

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class RowChanges:
    """How the rows of two feature sets correspond."""

    old_to_new: np.ndarray  # old row → new row, -1 for a removed creator or one whose vector changed
    reinsert: np.ndarray  # new rows whose entries are (re-)encoded: added and changed creators, increasing
    added: int
    removed: int
    replaced: int
    unlisted: int


def row_changes(
    old_ids: list[str],
    new_ids: list[str],
    old_vectors: np.ndarray,
    new_vectors: np.ndarray,
    changed_ids: Iterable[str],
    removed_ids: Iterable[str],
) -> RowChanges:
    """Match the rows of the old and new feature sets by creator id; validate the lists of changed and removed
    creators against them (an id in neither set, a new creator not listed as changed, a creator gone but not
    listed as removed, or one listed as removed that is still there: :class:`InputError` naming it); and find the
    creators whose vectors differ although they were not listed (counted as ``unlisted``, replaced all the same:
    an update is never trusted to be smaller than it is)."""
    old = pl.DataFrame({"creator_id": pl.Series(old_ids, dtype=pl.String)}).with_row_index("old_row")
    new = pl.DataFrame({"creator_id": pl.Series(new_ids, dtype=pl.String)}).with_row_index("new_row")
    if old["creator_id"].n_unique() != old.height or new["creator_id"].n_unique() != new.height:
        raise InputError("a feature set lists a creator id twice; its index cannot be updated")
    changed = pl.Series("creator_id", list(dict.fromkeys(changed_ids)), dtype=pl.String)
    removed = pl.Series("creator_id", list(dict.fromkeys(removed_ids)), dtype=pl.String)
    both = old.join(new, on="creator_id", how="full", coalesce=True)  # one hash join of the two id lists
    gone = both.filter(pl.col("new_row").is_null())["creator_id"]
    added_ids = both.filter(pl.col("old_row").is_null())["creator_id"]
    kept = both.drop_nulls().sort("new_row")
    _refuse(changed.filter(~changed.is_in(new["creator_id"])), "listed as changed but not in the new feature set")
    _refuse(removed.filter(~removed.is_in(old["creator_id"])), "listed as removed but not in the old feature set")
    _refuse(removed.filter(~removed.is_in(gone)), "listed as removed but still in the new feature set")
    _refuse(added_ids.filter(~added_ids.is_in(changed)), "new in the feature set but not listed as changed")
    _refuse(gone.filter(~gone.is_in(removed)), "gone but not listed as removed")
    if old_vectors.shape[1:] != new_vectors.shape[1:]:
        raise InputError(f"vectors of {old_vectors.shape[1:]} and {new_vectors.shape[1:]} dimensions: rebuild")
    kept_old = kept["old_row"].to_numpy().astype(np.int64)
    kept_new = kept["new_row"].to_numpy().astype(np.int64)
    differs = np.zeros(len(kept), dtype=bool)
    for start in range(0, len(kept), COMPARE_CHUNK_ROWS):  # temporaries that stay in the CPU's cache
        part = slice(start, start + COMPARE_CHUNK_ROWS)
        differs[part] = np.any(old_vectors[kept_old[part]] != new_vectors[kept_new[part]], axis=1)
    listed = kept["creator_id"].is_in(changed).to_numpy()
    old_to_new = np.full(len(old_ids), -1, dtype=np.int64)
    same = ~(differs | listed)
    old_to_new[kept_old[same]] = kept_new[same]
    added = both.filter(pl.col("old_row").is_null())["new_row"].to_numpy().astype(np.int64)
    reinsert = np.sort(np.concatenate([kept_new[~same], added]))
    return RowChanges(
        old_to_new=old_to_new,
        reinsert=reinsert,
        added=len(added),
        removed=len(old_ids) - len(kept),
        replaced=int((~same).sum()),
        unlisted=int((differs & ~listed).sum()),
    )


def _refuse(found: pl.Series, what: str) -> None:
    ids = sorted(found.to_list())
    if ids:
        shown = ", ".join(repr(i) for i in ids[:5]) + (f" and {len(ids) - 5} more" if len(ids) > 5 else "")
        raise InputError(f"{len(ids)} creator id(s) {what}: {shown}")


def assign_lists(ivf: Any, vectors: np.ndarray, codec: Int8Codec | None) -> np.ndarray:
    """The inverted list each vector goes to, as a build assigns it: its nearest (inner product) list centre.
    An ``int8`` index keeps its centres times the codec's scales, so a vector divided by the scales is searched
    (the same inner products)."""
    from audiencefit.models.index import _faiss_threads

    if len(vectors) == 0:
        return np.zeros(0, dtype=np.int64)
    searched = vectors if codec is None else vectors / codec.scale
    with _faiss_threads(1):  # as the build: BLAS's last bits depend on the thread count
        _, lists = ivf.quantizer.search(np.ascontiguousarray(searched, dtype=np.float32), 1)
    return np.ascontiguousarray(lists[:, 0], dtype=np.int64)


def encode(ivf: Any, vectors: np.ndarray, lists: np.ndarray, codec: Int8Codec | None) -> np.ndarray:
    """The codes of ``vectors`` in the lists ``lists`` (residuals, when the index encodes them, to those lists)."""
    import faiss

    x = np.ascontiguousarray(vectors if codec is None else codec.codes(vectors), dtype=np.float32)
    codes = np.zeros((len(x), ivf.code_size), dtype=np.uint8)
    if len(x):
        ivf.encode_vectors(len(x), faiss.swig_ptr(x), faiss.swig_ptr(lists), faiss.swig_ptr(codes), False)
    return codes


def quantizer_fits(ivf: Any, codec: Int8Codec | None, vectors: np.ndarray, changes: RowChanges) -> str | None:
    """Why the index's trained parts no longer fit the new ``vectors`` (a reason to build again), or None.

    For ``int8``, more than ``MAX_CLIPPED_SHARE`` of the re-encoded values fall outside the codec's ranges (they
    would be clipped); or the re-encoded vectors lie farther from their list centres than the unchanged ones (mean
    cosine below ``MIN_AFFINITY_RATIO`` times theirs, judged from ``MIN_AFFINITY_ROWS`` re-encoded vectors up): new
    kinds of audience the k-means never saw, which deserve lists of their own."""
    fresh = vectors[changes.reinsert]
    if len(fresh) == 0:
        return None
    if codec is not None:
        clipped = float(np.mean(np.abs((fresh - codec.offset) * codec.scale) > INT8_MAX + 0.5))
        if clipped > MAX_CLIPPED_SHARE:
            return f"{clipped:.2%} of the new int8 values lie outside the codec's ranges"
    if len(fresh) < MIN_AFFINITY_ROWS:  # a handful of vectors: their mean says nothing, and cannot skew the lists
        return None
    kept_rows = np.flatnonzero(np.isin(np.arange(len(vectors)), changes.reinsert, invert=True))
    sample = kept_rows[:: max(1, len(kept_rows) // AFFINITY_SAMPLE)]
    if len(sample) == 0:
        return None
    fresh_affinity, kept_affinity = _affinity(ivf, codec, fresh), _affinity(ivf, codec, vectors[sample])
    if kept_affinity > 0 and fresh_affinity < MIN_AFFINITY_RATIO * kept_affinity:
        return (
            f"the changed creators lie far from the index's lists (mean cosine to their list centre "
            f"{fresh_affinity:.3f} against {kept_affinity:.3f} for the others)"
        )
    return None


def _affinity(ivf: Any, codec: Int8Codec | None, vectors: np.ndarray) -> float:
    """Mean cosine between vectors and the centre of the list each is assigned to."""
    lists = assign_lists(ivf, vectors, codec)
    centres = ivf.quantizer.reconstruct_n(0, ivf.nlist)
    if codec is not None:
        centres = centres / codec.scale
    chosen = centres[lists]
    norms = np.linalg.norm(vectors, axis=1) * np.linalg.norm(chosen, axis=1)
    cosine = np.einsum("nd,nd->n", vectors, chosen) / np.where(norms > 0, norms, 1.0)
    return float(cosine.mean())


def update_lists(ivf: Any, vectors: np.ndarray, changes: RowChanges, codec: Int8Codec | None) -> None:
    """Update ``ivf``'s inverted lists in place for the new feature set's ``vectors`` (see the module docstring):
    drop, re-number, add, and keep each list in increasing row order."""
    import faiss
    from faiss.contrib.inspect_tools import get_invlist

    if ivf.direct_map.type != faiss.DirectMap.NoMap:
        raise InputError("the IVF index keeps a direct map; it cannot be updated in place")
    fresh = vectors[changes.reinsert]
    lists = assign_lists(ivf, fresh, codec)
    codes = encode(ivf, fresh, lists, codec)
    by_list = np.argsort(lists, kind="stable")
    bounds = np.searchsorted(lists[by_list], np.arange(ivf.nlist + 1))
    invlists = ivf.invlists
    total = 0
    for number in range(ivf.nlist):
        ids, old_codes = get_invlist(invlists, number)
        renumbered = changes.old_to_new[ids] if len(ids) else ids
        keep = renumbered >= 0
        here = by_list[bounds[number] : bounds[number + 1]]
        merged_ids = np.concatenate([renumbered[keep], changes.reinsert[here]])
        merged_codes = np.concatenate([old_codes[keep].reshape(-1, ivf.code_size), codes[here]])
        order = np.argsort(merged_ids, kind="stable")
        merged_ids = np.ascontiguousarray(merged_ids[order], dtype=np.int64)
        merged_codes = np.ascontiguousarray(merged_codes[order], dtype=np.uint8)
        invlists.resize(number, 0)
        if len(merged_ids):
            invlists.add_entries(number, len(merged_ids), faiss.swig_ptr(merged_ids), faiss.swig_ptr(merged_codes))
        total += len(merged_ids)
    ivf.ntotal = total


def rebuild_with_quantizer(ivf: Any, vectors: np.ndarray, codec: Int8Codec | None) -> Any:
    """A new index with ``ivf``'s trained quantiser and codec, holding ``vectors`` (row i as id i), as a build
    fills one: the reference an in-place update must equal."""
    import faiss

    fresh = faiss.clone_index(ivf)
    fresh.reset()
    rows = np.arange(len(vectors), dtype=np.int64)
    lists = assign_lists(fresh, vectors, codec)
    codes = encode(fresh, vectors, lists, codec)
    for number in range(fresh.nlist):
        here = np.flatnonzero(lists == number)
        if len(here):
            ids = np.ascontiguousarray(rows[here])
            chunk = np.ascontiguousarray(codes[here])
            fresh.invlists.add_entries(number, len(here), faiss.swig_ptr(ids), faiss.swig_ptr(chunk))
    fresh.ntotal = len(vectors)
    return fresh


def update_vector_index(
    idx: VectorIndex,
    fs_old: FeatureSet,
    fs_new: FeatureSet,
    changed_ids: Iterable[str],
    removed_ids: Iterable[str],
    settings: Settings,
    *,
    max_share: float = MAX_CHANGED_SHARE,
) -> tuple[VectorIndex, IndexUpdateStats]:
    """The index ``idx`` (built from ``fs_old``) for ``fs_new``: updated in place when the change is small and the
    trained quantiser still fits, otherwise built again; ``idx`` itself is never modified."""
    if idx.feature_set_id != fs_old.feature_set_id:
        raise InputError(
            f"the {idx.kind} index was built from feature set {idx.feature_set_id!r}, not from the old feature set "
            f"{fs_old.feature_set_id!r}"
        )
    return update_with_vectors(
        idx,
        fs_old.creators["creator_id"].to_list(),
        fs_new.creators["creator_id"].to_list(),
        index_vectors(fs_new, idx.kind),
        fs_new.feature_set_id,
        changed_ids,
        removed_ids,
        settings,
        max_share=max_share,
    )


def update_with_vectors(
    idx: VectorIndex,
    old_ids: list[str],
    new_ids: list[str],
    new_vectors: np.ndarray,
    new_feature_set_id: str,
    changed_ids: Iterable[str],
    removed_ids: Iterable[str],
    settings: Settings,
    *,
    max_share: float = MAX_CHANGED_SHARE,
) -> tuple[VectorIndex, IndexUpdateStats]:
    """:func:`update_vector_index` on the new feature set's index vectors (``audiencefit.models.index.index_vectors``)
    and the creator ids of both sets, row-aligned."""
    import faiss

    started = time.perf_counter()
    changes = row_changes(old_ids, new_ids, idx.vectors, new_vectors, changed_ids, removed_ids)

    def stats(method: Method, reason: str, rows: int) -> IndexUpdateStats:
        return IndexUpdateStats(
            kind=idx.kind,
            method=method,
            reason=reason,
            rows_before=idx.n,
            rows_after=rows,
            added=changes.added,
            removed=changes.removed,
            replaced=changes.replaced,
            unlisted_changes=changes.unlisted,
            seconds=round(time.perf_counter() - started, 3),
        )

    if changes.unlisted:
        log.warning(
            "creators not listed as changed have other vectors; they are replaced too",
            extra={"kind": idx.kind, "creators": changes.unlisted},
        )
    if idx.index_type == "flat":
        flat = faiss.IndexFlatIP(new_vectors.shape[1])
        flat.add(new_vectors)
        out = VectorIndex(idx.kind, flat, new_vectors, new_feature_set_id, "flat", dict(idx.params))
        return out, stats("refilled", "an exact index has nothing trained: filled with the new vectors", out.n)
    reason = None
    if idx.index_type != "ivf":
        reason = f"a {idx.index_type} index cannot drop entries"
    else:
        touched = changes.added + changes.removed + changes.replaced
        if touched > max_share * max(1, idx.n, len(new_vectors)):
            reason = f"{touched} creators changed (more than {max_share:.0%} of them)"
        else:
            reason = quantizer_fits(idx.index, idx.codec, new_vectors, changes)
    if reason is not None or _index_settings_changed(idx, settings):
        why = reason or "the index settings changed since it was built"
        index, index_type, params = build_faiss(new_vectors, settings)
        rebuilt = VectorIndex(idx.kind, index, new_vectors, new_feature_set_id, index_type, params)
        log.info("index built again instead of updated", extra={"kind": idx.kind, "reason": why})
        return rebuilt, stats("rebuilt", why, rebuilt.n)
    updated = faiss.clone_index(idx.index)  # the given index may be serving: change a copy
    update_lists(updated, new_vectors, changes, idx.codec)
    out = VectorIndex(idx.kind, updated, new_vectors, new_feature_set_id, idx.index_type, dict(idx.params))
    return out, stats("in-place", "few creators changed and the trained quantiser fits", out.n)


def _index_settings_changed(idx: VectorIndex, settings: Settings) -> bool:
    """The IVF encoding asked for differs from the index's (an update keeps the index's own)."""
    return idx.index_type == "ivf" and idx.params.get("encoding") != settings.ivf_encoding


@overload
def update_index(
    index: Path,
    features_old: FeatureSet | Path,
    features_new: FeatureSet | Path,
    changed_ids: Iterable[str],
    removed_ids: Iterable[str],
    *,
    settings: Settings | None = None,
    out: Path | None = None,
) -> dict[str, IndexUpdateStats]: ...


@overload
def update_index(
    index: VectorIndex,
    features_old: FeatureSet | Path,
    features_new: FeatureSet | Path,
    changed_ids: Iterable[str],
    removed_ids: Iterable[str],
    *,
    settings: Settings | None = None,
    out: Path | None = None,
) -> tuple[VectorIndex, IndexUpdateStats]: ...


def update_index(
    index: Path | VectorIndex,
    features_old: FeatureSet | Path,
    features_new: FeatureSet | Path,
    changed_ids: Iterable[str],
    removed_ids: Iterable[str],
    *,
    settings: Settings | None = None,
    out: Path | None = None,
) -> dict[str, IndexUpdateStats] | tuple[VectorIndex, IndexUpdateStats]:
    """Update the index of a feature set for its next version (``audiencefit features update`` calls this).

    ``index`` is an index directory (both kinds, as ``audiencefit index build`` writes it; the result is written
    to ``out``, default ``<features_new>/index``, atomically, and the stats per kind returned) or one loaded
    :class:`VectorIndex` (the updated copy and its stats returned; nothing written). ``changed_ids`` are the
    creators new or changed in ``features_new``, ``removed_ids`` those gone from it."""
    from audiencefit.settings import get_settings

    settings = settings or get_settings()
    fs_old = features_old if isinstance(features_old, FeatureSet) else load_feature_set(features_old)
    fs_new = features_new if isinstance(features_new, FeatureSet) else load_feature_set(features_new)
    changed, removed = list(changed_ids), list(removed_ids)
    if isinstance(index, VectorIndex):
        return update_vector_index(index, fs_old, fs_new, changed, removed, settings)
    target = out or default_index_dir(fs_new)
    tmp = staging_dir(target)
    summary: dict[str, IndexUpdateStats] = {}
    try:
        for kind in KINDS:
            updated, stats = update_vector_index(
                load_index(fs_old, kind, index), fs_old, fs_new, changed, removed, settings
            )
            save_index(updated, tmp)
            summary[kind] = stats
        replace_dir(tmp, target)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    log.info("index updated", extra={kind: s.to_json() for kind, s in summary.items()})
    return summary
