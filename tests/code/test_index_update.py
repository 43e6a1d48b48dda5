"""An index updated in place (creators added, changed, removed) is the index a build makes from the new vectors
with the same trained quantiser and codec: the same lists, codes and ids, byte for byte, so the same search
results; removed creators never come back; too large a change, or vectors the quantiser no longer fits, rebuild."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import polars as pl
import pytest

from audiencefit.features.errors import InputError
from audiencefit.models.index import VectorIndex, build_faiss, build_index, index_vectors, load_index, save_index
from audiencefit.models.index_update import (
    rebuild_with_quantizer,
    row_changes,
    update_index,
    update_lists,
    update_vector_index,
)
from audiencefit.settings import Settings
from tests.code.test_index import topic_mixture_vectors

ENCODINGS = ["int8", "sq8", "flat"]
DIM = 64


@pytest.fixture(scope="module")
def world() -> dict[str, object]:
    """20,000 old vectors and the next day's: 150 creators removed, 150 changed, 150 new (2.25 % of them), with
    the new ones' ids sorted in among the old, so that the rows of most creators shift."""
    rng = np.random.default_rng(3)
    pool = topic_mixture_vectors(20_600, dim=DIM, seed=5)
    old, spare, queries = pool[:20_000], pool[20_000:20_300], pool[20_300:20_350]
    old_ids = [f"c{i:06d}" for i in range(0, 40_000, 2)]  # even numbers: new creators (odd) fall in between
    removed = set(rng.choice(old_ids, 150, replace=False).tolist())
    kept = [c for c in old_ids if c not in removed]
    changed = set(rng.choice(kept, 150, replace=False).tolist())
    added = [f"c{i:06d}" for i in rng.choice(np.arange(1, 40_000, 2), 150, replace=False).tolist()]
    vector_of = {c: old[i] for i, c in enumerate(old_ids)}
    for j, c in enumerate(sorted(changed)):
        vector_of[c] = spare[j]
    for j, c in enumerate(added):
        vector_of[c] = spare[150 + j]
    new_ids = sorted(set(kept) | set(added))
    new = np.stack([vector_of[c] for c in new_ids]).astype(np.float32)
    return {
        "old": old,
        "new": new,
        "old_ids": old_ids,
        "new_ids": new_ids,
        "changed": sorted(changed | set(added)),
        "removed": sorted(removed),
        "queries": queries,
    }


def _index(vectors: np.ndarray, encoding: str) -> VectorIndex:
    index, kind, params = build_faiss(vectors, Settings(index_exact_max=0, ivf_encoding=encoding))
    return VectorIndex("audience", index, vectors, "old", kind, params)


def _lists(ivf) -> list[tuple[list[int], bytes]]:
    from faiss.contrib.inspect_tools import get_invlist

    return [(ids.tolist(), codes.tobytes()) for ids, codes in (get_invlist(ivf.invlists, n) for n in range(ivf.nlist))]


@pytest.mark.parametrize("encoding", ENCODINGS)
def test_the_reference_is_what_a_build_makes(world, encoding):
    """``rebuild_with_quantizer`` on the vectors an index was built from gives that index back exactly: it
    assigns and encodes as a build does, so it is a faithful "build with the same quantiser" to compare with."""
    import faiss

    built = _index(world["old"], encoding)
    again = rebuild_with_quantizer(built.index, world["old"], built.codec)
    assert _lists(again) == _lists(built.index)
    assert bytes(faiss.serialize_index(again)) == bytes(faiss.serialize_index(built.index))


@pytest.mark.parametrize("encoding", ENCODINGS)
def test_an_updated_index_is_the_index_built_with_the_same_quantizer(world, encoding):
    import faiss

    built = _index(world["old"], encoding)
    changes = row_changes(
        world["old_ids"], world["new_ids"], world["old"], world["new"], world["changed"], world["removed"]
    )
    assert (changes.added, changes.removed, changes.replaced, changes.unlisted) == (150, 150, 150, 0)
    updated = faiss.clone_index(built.index)
    update_lists(updated, world["new"], changes, built.codec)
    reference = rebuild_with_quantizer(built.index, world["new"], built.codec)
    assert updated.ntotal == len(world["new"])
    assert _lists(updated) == _lists(reference)
    assert bytes(faiss.serialize_index(updated)) == bytes(faiss.serialize_index(reference))
    # Every row exactly once (a removed creator's entry never comes back, no row is left out), and each row's id
    # names the creator it was encoded from.
    ids = np.concatenate([np.array(i, dtype=np.int64) for i, _ in _lists(updated)])
    assert np.array_equal(np.sort(ids), np.arange(len(world["new"])))
    # The same answers, rows and scores, filtered or not.
    a = VectorIndex("audience", updated, world["new"], "new", built.index_type, built.params)
    b = VectorIndex("audience", reference, world["new"], "new", built.index_type, built.params)
    allowed = np.arange(len(world["new"])) % 3 != 0
    for mask in (None, allowed):
        sa, ra = a.search(world["queries"], 50, mask)
        sb, rb = b.search(world["queries"], 50, mask)
        assert np.array_equal(ra, rb) and np.array_equal(sa, sb)
    # The original index was not touched (a serving process may be searching it).
    assert built.index.ntotal == len(world["old"])


def test_row_changes_validate_the_lists_and_find_unlisted_changes(world):
    old, new = world["old"], world["new"].copy()
    args = (world["old_ids"], world["new_ids"], old)
    first_new = next(c for c in world["new_ids"] if c not in set(world["old_ids"]))
    with pytest.raises(InputError, match="new in the feature set but not listed as changed"):
        row_changes(*args, new, [c for c in world["changed"] if c != first_new], world["removed"])
    with pytest.raises(InputError, match="gone but not listed as removed"):
        row_changes(*args, new, world["changed"], world["removed"][1:])
    with pytest.raises(InputError, match="listed as removed but still in the new feature set"):
        row_changes(*args, new, world["changed"], [*world["removed"], world["new_ids"][0]])
    with pytest.raises(InputError, match="listed as changed but not in the new feature set"):
        row_changes(*args, new, [*world["changed"], "nobody"], world["removed"])
    unlisted = [r for r, c in enumerate(world["new_ids"]) if c not in set(world["changed"])][:7]
    new[unlisted, 0] += 0.01
    changes = row_changes(*args, new, world["changed"], world["removed"])
    assert changes.unlisted == 7 and changes.replaced == 157
    assert set(unlisted) <= set(changes.reinsert.tolist())


def next_version(fs, removed_rows: list[int], changed_rows: list[int], added_from: list[int]):
    """A next version of ``fs``, in memory: creators removed, some with another audience (the next row's), and new
    ones (copies of rows under new ids, sorted in among the others). Returns (new set, changed ids, removed ids)."""
    n = fs.creators.height
    ids = fs.creators["creator_id"].to_list()
    removed = [ids[i] for i in removed_rows]
    changed = [ids[i] for i in changed_rows]
    keep = [i for i in range(n) if i not in removed_rows]
    rows = keep + added_from
    new_ids = [ids[i] for i in keep] + [f"{ids[i]}-new" for i in added_from]
    order = sorted(range(len(rows)), key=lambda j: new_ids[j])
    rows = [rows[j] for j in order]
    new_ids = [new_ids[j] for j in order]
    audience = fs.audience[rows].copy()
    for i in changed_rows:
        audience[new_ids.index(ids[i])] = fs.audience[i + 1]
    new = replace(
        fs,
        manifest=fs.manifest | {"feature_set_id": "next-version"},
        creators=fs.creators[rows].with_columns(creator_id=pl.Series(new_ids)),
        bio=fs.bio[rows],
        content=fs.content[rows],
        audience=audience,
        audience_dist=fs.audience_dist[rows],
    )
    return new, changed + [c for c in new_ids if c.endswith("-new")], removed


@pytest.mark.parametrize("scenario", ["small", "larger"])
def test_update_index_writes_an_index_the_new_feature_set_loads(small_features: Path, tmp_path: Path, scenario):
    """``small``: one creator removed, one changed, the removed one back under a new id (2 % of 150): both indexes
    updated in place, byte for byte the build with the same quantiser. ``larger``: three removed, two changed,
    three new: the mean authentic share moves, so the audience vectors of creators whose suspicious share is
    unknown move too; they are found although not listed, and with them more than 5 % changed: built again."""
    import faiss

    from audiencefit.features.featureset import load_feature_set

    fs = load_feature_set(small_features)
    if scenario == "small":
        new, changed, removed = next_version(fs, [40], [10], [40])
    else:
        new, changed, removed = next_version(fs, [5, 40, 90], [10, 60], [3, 70, 120])
    settings = Settings(index_exact_max=0, data_dir=tmp_path / "data")
    old_dir = tmp_path / "old-index"
    for kind in ("audience", "content"):
        save_index(build_index(fs, kind, settings), old_dir)
    stats = update_index(old_dir, fs, new, changed, removed, settings=settings, out=tmp_path / "new-index")
    for kind in ("audience", "content"):
        loaded = load_index(new, kind, tmp_path / "new-index")  # checksum, feature set id and row count checked
        assert np.array_equal(loaded.vectors, index_vectors(new, kind))
        s = stats[kind]
        assert (s.removed, s.added) == ((1, 1) if scenario == "small" else (3, 3))
        old = load_index(fs, kind, old_dir)
        if scenario == "small":
            assert s.method == "in-place" and s.unlisted_changes == 0, s
            reference = rebuild_with_quantizer(old.index, loaded.vectors, old.codec)
            assert bytes(faiss.serialize_index(loaded.index)) == bytes(faiss.serialize_index(reference))
        else:
            assert s.method == "rebuilt" and "more than 5%" in s.reason, s
    if scenario == "larger":
        assert stats["audience"].unlisted_changes > 0 and stats["content"].unlisted_changes == 0


def test_a_large_change_or_vectors_out_of_the_codec_range_rebuild(world):
    fs_like = _FakeFeatureSet
    built = _index(world["old"], "int8")
    old_fs = fs_like("old", world["old_ids"], world["old"])
    settings = Settings(index_exact_max=0, ivf_encoding="int8")
    # Within 5 %: updated in place.
    new_fs = fs_like("new", world["new_ids"], world["new"])
    updated, stats = update_vector_index(built, old_fs, new_fs, world["changed"], world["removed"], settings)
    assert stats.method == "in-place" and updated.feature_set_id == "new" and updated.n == len(world["new"])
    # A share of 1 %: the same change is too large.
    _, stats = update_vector_index(built, old_fs, new_fs, world["changed"], world["removed"], settings, max_share=0.01)
    assert stats.method == "rebuilt" and "more than 1%" in stats.reason
    # Changed creators whose vectors lie far outside the codec's ranges.
    far = world["new"].copy()
    rows = [world["new_ids"].index(c) for c in world["changed"][:50]]
    far[rows] *= 4.0
    _, stats = update_vector_index(
        built, old_fs, fs_like("far", world["new_ids"], far), world["changed"], world["removed"], settings
    )
    assert stats.method == "rebuilt" and "codec" in stats.reason
    # Changed creators of a kind the k-means never saw (directions outside the topics): far from every list.
    sq8 = _index(world["old"], "sq8")
    sq8_settings = Settings(index_exact_max=0, ivf_encoding="sq8")
    unseen = world["new"].copy()
    noise = np.random.default_rng(9).normal(size=(len(rows), DIM)).astype(np.float32)
    unseen[rows] = noise / np.linalg.norm(noise, axis=1, keepdims=True)
    unseen_fs = fs_like("unseen", world["new_ids"], unseen)
    _, stats = update_vector_index(sq8, old_fs, unseen_fs, world["changed"], world["removed"], sq8_settings)
    assert stats.method == "rebuilt" and "far from the index's lists" in stats.reason
    _, stats = update_vector_index(sq8, old_fs, new_fs, world["changed"], world["removed"], sq8_settings)
    assert stats.method == "in-place"
    with pytest.raises(InputError, match="not from the old feature set"):
        update_vector_index(built, new_fs, new_fs, [], [], settings)


class _FakeFeatureSet:
    """What an index update reads of a feature set, over given vectors (``index_vectors`` is patched below)."""

    def __init__(self, feature_set_id: str, ids: list[str], vectors: np.ndarray) -> None:
        self.feature_set_id = feature_set_id
        self.creators = pl.DataFrame({"creator_id": ids})
        self.vectors = vectors


@pytest.fixture(autouse=True)
def _fake_vectors(monkeypatch):
    import audiencefit.models.index_update as module

    real = module.index_vectors

    def vectors(fs, kind):
        return fs.vectors if isinstance(fs, _FakeFeatureSet) else real(fs, kind)

    monkeypatch.setattr(module, "index_vectors", vectors)
