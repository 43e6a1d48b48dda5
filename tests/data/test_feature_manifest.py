"""A feature set's manifest is stored content: the files it lists are the only ones opened, each inside the feature
set (symlinks resolved) and listed with its sha256, and the feature set id is recomputed from the content."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import numpy as np
import pytest

from audiencefit.features.errors import InputError
from audiencefit.features.featureset import load_feature_set


@pytest.fixture()
def copy(small_features: Path, tmp_path: Path) -> Path:
    out = tmp_path / "fs"
    shutil.copytree(small_features, out)
    return out


def _manifest(fs: Path) -> dict:
    return json.loads((fs / "manifest.json").read_text())


def _write(fs: Path, manifest: dict) -> None:
    (fs / "manifest.json").write_text(json.dumps(manifest, indent=2, sort_keys=True))


def test_listed_paths_climbing_out_are_refused_before_anything_is_read(copy: Path) -> None:
    manifest = _manifest(copy)
    manifest["files"]["../../etc/passwd"] = "0" * 64
    _write(copy, manifest)
    with pytest.raises(InputError, match=r"manifest\.json, field 'files': entry '\.\./\.\./etc/passwd' climbs out"):
        load_feature_set(copy)


def test_files_removed_and_vectors_rewritten_is_refused(copy: Path) -> None:
    manifest = _manifest(copy)
    del manifest["files"]
    _write(copy, manifest)
    np.save(copy / "vectors" / "audience.npy", np.zeros_like(np.load(copy / "vectors" / "audience.npy")))
    with pytest.raises(InputError, match=r"field 'files': missing.*rebuild the features"):
        load_feature_set(copy)


def test_a_loaded_file_left_out_of_files_is_refused(copy: Path) -> None:
    manifest = _manifest(copy)
    del manifest["files"]["vectors/audience.npy"]
    manifest.pop("recipe_id")  # as an older manifest: no stated id to contradict
    _write(copy, manifest)
    with pytest.raises(InputError, match=r"does not list vectors/audience\.npy"):
        load_feature_set(copy)


def test_symlink_pointing_outside_is_refused(copy: Path, tmp_path: Path) -> None:
    outside = tmp_path / "creators.parquet"
    shutil.copyfile(copy / "creators.parquet", outside)  # the same bytes: only where it lives is wrong
    (copy / "creators.parquet").unlink()
    os.symlink(outside, copy / "creators.parquet")
    with pytest.raises(InputError, match=r"'creators\.parquet' resolves \(through a symlink\) outside"):
        load_feature_set(copy)


def test_feature_set_id_is_computed_from_the_content(copy: Path, small_features: Path) -> None:
    from audiencefit.features.featureset import content_id

    manifest = _manifest(copy)
    assert load_feature_set(small_features).feature_set_id == manifest["feature_set_id"]
    assert manifest["feature_set_id"] == content_id(manifest["recipe_id"], manifest["files"])
    # A rewritten file with its checksum updated: the stated id no longer matches the content.
    vectors = copy / "vectors" / "audience.npy"
    np.save(vectors, np.load(vectors)[::-1].copy())
    from audiencefit.features.io import sha256_file

    manifest["files"]["vectors/audience.npy"] = sha256_file(vectors)
    _write(copy, manifest)
    with pytest.raises(InputError, match="states feature_set_id"):
        load_feature_set(copy)
    # A manifest written before recipe_id existed: its stated id is taken as the recipe, the id still follows content.
    manifest["feature_set_id"] = manifest.pop("recipe_id")
    _write(copy, manifest)
    fs = load_feature_set(copy)
    assert fs.feature_set_id == content_id(manifest["feature_set_id"], manifest["files"])
    assert fs.feature_set_id != load_feature_set(small_features).feature_set_id


def test_index_file_symlinked_outside_is_refused(copy: Path, tmp_path: Path) -> None:
    from audiencefit.models.index import default_index_dir, load_index

    fs = load_feature_set(copy)
    index_file = default_index_dir(fs) / "audience.faiss"
    outside = tmp_path / "audience.faiss"
    shutil.copyfile(index_file, outside)
    index_file.unlink()
    os.symlink(outside, index_file)
    with pytest.raises(InputError, match="outside its directory"):
        load_index(fs, "audience", default_index_dir(fs))


def test_skipped_optional_tables_are_checked_but_not_read(copy: Path, small_features: Path) -> None:
    full = load_feature_set(small_features)
    assert full.recent_captions is not None and full.follower_keys is not None
    lean = load_feature_set(small_features, mmap=True, skip=frozenset({"recent_captions", "follower_keys"}))
    assert lean.recent_captions is None and lean.follower_keys is None
    assert isinstance(lean.audience, np.memmap) and np.array_equal(lean.audience, full.audience)
    assert lean.creators.equals(full.creators)
    # Still checksummed: a skipped file that changed is refused all the same.
    captions = copy / "recent_captions.parquet"
    captions.write_bytes(captions.read_bytes() + b"x")
    with pytest.raises(InputError, match=r"recent_captions\.parquet: checksum mismatch"):
        load_feature_set(copy, skip=frozenset({"recent_captions"}))
    with pytest.raises(ValueError, match="can be skipped"):
        load_feature_set(small_features, skip=frozenset({"terms"}))
