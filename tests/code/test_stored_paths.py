"""Paths named by stored content are resolved inside their directory or refused (``audiencefit.features.stored_paths``),
and embedding-artifact manifests are checked the same way."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import pytest

from audiencefit.features.errors import InputError


@pytest.mark.parametrize(
    "rel",
    ["../x", "a/../../x", "/etc/passwd", "C:/x", "a\\..\\x", "a\x00b", "", ".", "a//b", "./a", "a/./b", 3, None],
)
def test_paths_that_are_not_plain_relative_are_refused(tmp_path: Path, rel: object) -> None:
    from audiencefit.features.stored_paths import UnsafePathError, contained_path

    with pytest.raises(UnsafePathError, match=r"^m\.json, field 'files': entry .* refused$"):
        contained_path(tmp_path, rel, where="m.json, field 'files'")


def test_symlinks_are_followed_and_must_stay_inside(tmp_path: Path) -> None:
    from audiencefit.features.stored_paths import UnsafePathError, contained_path

    root, outside = tmp_path / "root", tmp_path / "outside"
    (root / "sub").mkdir(parents=True)
    outside.mkdir()
    (root / "sub" / "f").write_text("in")
    os.symlink(root / "sub" / "f", root / "inner-link")
    os.symlink(outside, root / "out-dir")
    os.symlink(tmp_path / "absent", root / "dangling-out")
    assert contained_path(root, "inner-link", where="w") == (root / "sub" / "f").resolve()
    assert contained_path(root, "sub/f", where="w") == (root / "sub" / "f").resolve()
    for rel in ("out-dir/anything", "dangling-out"):
        with pytest.raises(UnsafePathError, match="outside its directory"):
            contained_path(root, rel, where="w")


def test_read_verified_reads_once_and_checks(tmp_path: Path) -> None:
    from audiencefit.features.stored_paths import read_verified

    (tmp_path / "f").write_bytes(b"data")
    digest = hashlib.sha256(b"data").hexdigest()
    assert read_verified(tmp_path, "f", digest, where="w") == b"data"
    with pytest.raises(InputError, match="checksum mismatch"):
        read_verified(tmp_path, "f", "0" * 64, where="w")
    os.mkfifo(tmp_path / "fifo")
    with pytest.raises(InputError, match="not a regular file"):  # never blocks on a FIFO
        read_verified(tmp_path, "fifo", digest, where="w")


def test_checksum_table_shape(tmp_path: Path) -> None:
    from audiencefit.features.stored_paths import checksum_table

    assert checksum_table({"a/b": "f" * 64}, where="w") == {"a/b": "f" * 64}
    for bad in (None, {}, [], {"a": "xyz"}, {"a": 3}, {"../a": "f" * 64}):
        with pytest.raises(InputError, match=r"^w"):
            checksum_table(bad, where="w")


def _artifact(tmp_path: Path, files: dict[str, str]) -> Path:
    art = tmp_path / "art"
    art.mkdir()
    (art / "manifest.json").write_text(json.dumps({"id": "x", "files": files}))
    return art


def test_embedding_artifact_manifest_paths_are_checked(tmp_path: Path) -> None:
    from audiencefit.features.embed_backends.artifacts import check_artifacts

    outside = tmp_path / "outside.npy"
    outside.write_bytes(b"vectors")
    digest = hashlib.sha256(b"vectors").hexdigest()
    art = _artifact(tmp_path, {"../outside.npy": digest})
    assert "climbs out" in str(check_artifacts(art, "x"))
    (art / "manifest.json").write_text(json.dumps({"id": "x", "files": {"v.npy": digest}}))
    os.symlink(outside, art / "v.npy")
    assert "outside its directory" in str(check_artifacts(art, "x"))
    (art / "v.npy").unlink()
    (art / "v.npy").write_bytes(b"vectors")
    assert check_artifacts(art, "x") is None
    (art / "extra.onnx").write_bytes(b"unlisted")
    assert "extra.onnx is not listed" in str(check_artifacts(art, "x"))
