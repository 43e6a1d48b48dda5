"""Paths named by stored content (bundle.json, MLmodel, manifests) are untrusted: resolve them inside their directory.

A store's JSON or YAML may say which files to hash, read or copy. Whoever wrote that file decides those names, so
every one is checked before the file system is touched: it must be a plain relative path (no absolute path, no
``..``, no empty or ``.`` part, no backslash, no NUL or control character) and, once symlinks are resolved, it
must stay inside the directory that holds the manifest. A refused entry names the manifest file and the field; the
message never depends on whether anything outside the directory exists, so it cannot be used to probe the disk.

Files are then read once, with ``O_NOFOLLOW`` (a symlink swapped in after the check is not followed), only when
they are regular files (a FIFO would block the reader), and their sha256 is computed from the very bytes that are
used, so a file cannot change between the check and the use.
"""

from __future__ import annotations

import hashlib
import os
import re
import stat
from collections.abc import Mapping
from pathlib import Path, PurePosixPath
from typing import BinaryIO

from audiencefit.features.errors import InputError

_SHA256 = re.compile(r"^[0-9a-f]{64}$")
MAX_NAME_CHARS = 1_024
MAX_MANIFEST_BYTES = 64 << 20  # a manifest (bundle.json, manifest.json, an index's JSON) is kilobytes


class UnsafePathError(InputError):
    """A path taken from stored content would leave its directory (or is not a plain relative path)."""


def _lexical_problem(rel: object) -> str | None:
    """Why ``rel`` is not a plain relative POSIX path, judged on the text alone (None when it is)."""
    if not isinstance(rel, str):
        return f"is a {type(rel).__name__}, not a relative path"
    if not rel:
        return "is empty"
    if len(rel) > MAX_NAME_CHARS:
        return f"is longer than {MAX_NAME_CHARS} characters"
    if any(ord(ch) < 32 or ord(ch) == 127 for ch in rel):
        return "contains a NUL or control character"
    if "\\" in rel:
        return "contains a backslash (use '/' between parts)"
    if rel.startswith("/") or re.match(r"^[A-Za-z]:", rel):
        return "is an absolute path"
    parts = rel.split("/")
    if ".." in parts:
        return "climbs out of its directory ('..')"
    if any(part in ("", ".") for part in parts):
        return "has an empty or '.' part"
    return None


def contained_path(root: Path, rel: object, *, where: str) -> Path:
    """``root / rel`` resolved (symlinks followed), refused unless it stays inside ``root``.

    ``where`` names the stored file and field the path came from (``"<dir>/bundle.json, field 'files'"``); it leads
    every error message. The returned path is absolute and free of symlinks (at the time of the check).
    """
    problem = _lexical_problem(rel)
    if problem is not None:
        shown = repr(rel)[:120] if isinstance(rel, str) else type(rel).__name__
        raise UnsafePathError(f"{where}: entry {shown} {problem}; refused")
    assert isinstance(rel, str)
    base = root.resolve()
    target = (base / PurePosixPath(rel)).resolve()
    if target == base or not target.is_relative_to(base):
        raise UnsafePathError(f"{where}: entry {rel!r} resolves (through a symlink) outside its directory; refused")
    return target


def checksum_table(value: object, *, where: str) -> dict[str, str]:
    """A manifest's ``{relative path: sha256}`` table, checked for shape (every key a plain relative path, every
    value 64 lowercase hex digits); refused when absent or empty."""
    if not isinstance(value, Mapping) or not value:
        raise InputError(f"{where}: missing or empty (every file must be listed with its sha256)")
    table: dict[str, str] = {}
    for rel, digest in value.items():
        problem = _lexical_problem(rel)
        if problem is not None:
            shown = repr(rel)[:120] if isinstance(rel, str) else type(rel).__name__
            raise UnsafePathError(f"{where}: entry {shown} {problem}; refused")
        if not isinstance(digest, str) or not _SHA256.match(digest):
            raise InputError(f"{where}: entry {rel!r} has no sha256 (expected 64 lowercase hex digits)")
        table[str(rel)] = digest
    return table


def _open_regular(path: Path, *, shown: str) -> BinaryIO:
    """``path`` opened for reading without following a final symlink, refused unless it is a regular file."""
    flags = os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0)
    try:
        fd = os.open(path, flags)
    except FileNotFoundError:
        raise InputError(f"{shown}: missing") from None
    except OSError as exc:
        raise InputError(f"{shown}: cannot be opened as a regular file ({exc.strerror})") from None
    fh = os.fdopen(fd, "rb")
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        fh.close()
        raise InputError(f"{shown}: not a regular file")
    return fh


def read_regular(path: Path, *, shown: str, max_bytes: int | None = None) -> bytes:
    """The bytes of a regular file, opened without following a final symlink; ``InputError`` naming ``shown``
    (a path relative to the checked directory) when it is missing, a symlink, not a regular file or larger than
    ``max_bytes``."""
    with _open_regular(path, shown=shown) as fh:
        if max_bytes is not None and os.fstat(fh.fileno()).st_size > max_bytes:
            raise InputError(f"{shown}: larger than {max_bytes:,} bytes; refused")
        return fh.read()


def read_verified(root: Path, rel: str, sha256: str, *, where: str) -> bytes:
    """The bytes of ``root / rel`` after checking the path stays inside ``root`` and the bytes hash to ``sha256``.

    ``InputError`` says "missing" or "checksum mismatch" only for files inside ``root``: a path that would leave it
    is refused before anything is opened.
    """
    path = contained_path(root, rel, where=where)
    data = read_regular(path, shown=rel)
    if hashlib.sha256(data).hexdigest() != sha256:
        raise InputError(f"{rel}: checksum mismatch")
    return data


def sha256_contained(root: Path, rel: str, *, where: str) -> str:
    """sha256 of a file inside ``root`` (path checked like :func:`read_verified`), read in blocks."""
    digest = hashlib.sha256()
    with _open_regular(contained_path(root, rel, where=where), shown=rel) as fh:
        while block := fh.read(1 << 20):
            digest.update(block)
    return digest.hexdigest()
