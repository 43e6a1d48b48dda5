"""The versioned model bundle: the fitted models, the feature list they expect, and the feature version and
embedder they were trained with. A directory of text files (LightGBM text models, JSON) with checksums; loading
verifies every checksum and never unpickles anything.

Layout::

    bundle.json        format, feature_version, feature_columns, embedder, training summary, file checksums
    models/*.txt       LightGBM text models
    models/models.json model metadata (feature columns per model, offsets, dispersion)
"""

from __future__ import annotations

import hashlib
import json
import shutil
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path, PurePosixPath
from typing import Any

from audiencefit.features.errors import InputError
from audiencefit.features.featureset import FEATURE_VERSION, FeatureSet
from audiencefit.features.io import replace_dir, sha256_file, staging_dir
from audiencefit.features.stored_paths import (
    MAX_MANIFEST_BYTES,
    UnsafePathError,
    checksum_table,
    contained_path,
    read_regular,
    read_verified,
)
from audiencefit.models.estimators import DIRECT_STRUCTURE, ModelSet
from audiencefit.models.pair_features import FEATURE_COLUMNS

# Format 2: the conversion model records its exposure (``models.json`` "exposure", see
# ``audiencefit.models.estimators.exposure_offset``). Code that reads only format 1 would ignore it and predict with the
# wrong offset, so it must refuse these bundles; this code still reads format 1 (exposure: followers).
# Format 3: ``bundle_id`` is the hash of bundle.json's whole canonical content (every field but the id itself,
# including each file's sha256), so no stated field can change without changing the id. Formats 1 and 2 still
# load when their ``files`` list every model file; their id is recomputed as it was defined then (the hash of the
# ``files`` table), and a stated id must match it.
# Format 4: as format 3, with the funnel conversion model (``models.json`` "conversion_structure": "funnel", see
# ``audiencefit.models.estimators.FUNNEL_STAGES``): code that reads only up to format 3 would look for the one
# conversion model and not find it, so it must refuse these bundles. Bundles with the direct conversion model are still
# written as format 3 (nothing in them changed).
BUNDLE_FORMAT = 3
FUNNEL_BUNDLE_FORMAT = 4
READABLE_FORMATS = (1, 2, 3, 4)
BUNDLE_FILE = "bundle.json"
MODELS_DIR = "models"
# bundle.json field holding the summary of the training creators' inputs
# (``audiencefit.models.drift.summarize_features``); bundles written before it existed lack it and load with forecast
# reliability "unknown". Optional, so no format bump: code that ignores it serves as before.
FEATURE_SUMMARY = "feature_summary"
ID_CHARS = 16


@dataclass(frozen=True)
class Bundle:
    """A loaded bundle: the models plus what they need from a feature set."""

    path: Path
    meta: dict[str, Any]
    models: ModelSet

    @property
    def feature_version(self) -> str:
        return str(self.meta["feature_version"])

    @property
    def embedder_id(self) -> str:
        return str(self.meta["embedder_id"])

    @property
    def bundle_id(self) -> str:
        return str(self.meta["bundle_id"])

    @property
    def feature_summary(self) -> object:
        """The training creators' input summary as stored (``audiencefit.models.drift`` checks it), or None for a bundle
        written before it."""
        return self.meta.get(FEATURE_SUMMARY)

    def check_compatible(self, fs: FeatureSet) -> None:
        """Refuse a feature set this bundle cannot score: another feature version or another embedding space."""
        problems = []
        if fs.version != self.feature_version:
            problems.append(f"feature version {fs.version!r}, the model needs {self.feature_version!r}")
        if fs.embedder_id != self.embedder_id:
            problems.append(f"embedded with {fs.embedder_id!r}, the model was trained on {self.embedder_id!r}")
        if problems:
            raise InputError(f"feature set {fs.path} does not match model bundle {self.path}: " + "; ".join(problems))


def save_bundle(models: ModelSet, out_dir: Path, *, embedder_id: str, extra: dict[str, Any]) -> dict[str, Any]:
    """Write the bundle atomically (temporary directory, then rename); returns its metadata."""
    tmp = staging_dir(out_dir)
    try:
        (tmp / MODELS_DIR).mkdir()
        for name, text in models.to_files().items():
            (tmp / MODELS_DIR / name).write_text(text, encoding="utf-8")
        files = {p.relative_to(tmp).as_posix(): sha256_file(p) for p in sorted((tmp / MODELS_DIR).iterdir())}
        stated: dict[str, Any] = {
            "format": BUNDLE_FORMAT if models.conversion_structure == DIRECT_STRUCTURE else FUNNEL_BUNDLE_FORMAT,
            "feature_version": FEATURE_VERSION,
            "feature_columns": list(models.columns),
            "embedder_id": embedder_id,
            "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
            "files": files,
            **extra,
        }
        # The id is computed from the JSON as it will be read back (tuples become lists, keys strings).
        meta: dict[str, Any] = json.loads(json.dumps(stated))
        meta["bundle_id"] = content_id(meta)
        (tmp / BUNDLE_FILE).write_text(json.dumps(meta, indent=2, sort_keys=True), encoding="utf-8")
        replace_dir(tmp, out_dir)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return meta


def sha256_of_text(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def content_id(meta: dict[str, Any]) -> str:
    """The bundle id that ``meta`` (bundle.json, parsed) determines; a stated ``bundle_id`` is never used.

    Format 3: hash of the canonical JSON of every field but ``bundle_id``. Formats 1–2: hash of the ``files``
    table, as those formats defined it (their other fields are not covered, which is why format 3 exists).
    """
    if meta.get("format") in (1, 2):
        return sha256_of_text(json.dumps(meta["files"], sort_keys=True))[:ID_CHARS]
    body = {k: v for k, v in meta.items() if k != "bundle_id"}
    return sha256_of_text(json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=True))[:ID_CHARS]


def _meta_bytes(path: Path) -> bytes:
    """The bytes of bundle.json (a regular file inside ``path``, not a symlink leading out)."""
    meta_path = contained_path(path, BUNDLE_FILE, where=str(path))
    try:
        return read_regular(meta_path, shown=str(path / BUNDLE_FILE), max_bytes=MAX_MANIFEST_BYTES)
    except InputError:
        raise InputError(f"{path}: not a model bundle (no readable {BUNDLE_FILE})") from None


def read_meta(path: Path, raw: bytes | None = None) -> dict[str, Any]:
    """bundle.json of the bundle at ``path`` (or ``raw``, its bytes), checked: a readable format and a well-formed
    ``files`` table whose every entry is a plain relative path inside the bundle (nothing outside it is opened)."""
    meta_path = path / BUNDLE_FILE
    raw = _meta_bytes(path) if raw is None else raw
    try:
        meta = json.loads(raw.decode("utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise InputError(f"{meta_path}: unreadable ({exc})") from exc
    if not isinstance(meta, dict):
        raise InputError(f"{meta_path}: not a JSON object")
    if meta.get("format") not in READABLE_FORMATS:
        raise InputError(f"{path}: bundle format {meta.get('format')!r}, this code reads {READABLE_FORMATS}")
    where = f"{meta_path}, field 'files'"
    files = checksum_table(meta.get("files"), where=where) if "files" in meta else None
    if files is None:
        raise InputError(
            f"{where}: missing, so nothing in the bundle can be verified; retrain with 'audiencefit train' "
            "(bundles must list every file with its sha256)"
        )
    for rel in files:
        contained_path(path, rel, where=where)
    meta["files"] = files
    return meta


def _model_name(rel: str) -> str | None:
    """``models/<name>`` → ``<name>`` (the files ``ModelSet.from_files`` reads); None for any other entry."""
    head, _, name = rel.partition("/")
    return name if head == MODELS_DIR and name and "/" not in name else None


def verified_files(path: Path, meta: dict[str, Any]) -> dict[str, bytes]:
    """Every file ``meta["files"]`` lists, read once and checked against its sha256; ``InputError`` listing the
    damaged ones."""
    where = f"{path / BUNDLE_FILE}, field 'files'"
    out: dict[str, bytes] = {}
    problems = []
    for rel, expected in sorted(meta["files"].items()):
        try:
            out[rel] = read_verified(path, rel, expected, where=where)
        except UnsafePathError:
            raise
        except InputError as exc:
            problems.append(str(exc))
    if problems:
        raise InputError(f"{path}: model bundle is damaged: " + "; ".join(problems))
    return out


def load_bundle(path: Path) -> Bundle:
    """Load and verify a bundle. Every file loaded is listed in bundle.json ``files`` and matches its sha256
    (read once, the checked bytes are the ones used); the id is computed from the content and must equal any
    stated one; a foreign feature list is refused. Nothing outside the bundle directory is opened."""
    meta = read_meta(path)
    stated = meta.get("bundle_id")
    computed = content_id(meta)
    if stated is not None and stated != computed:
        raise InputError(
            f"{path / BUNDLE_FILE}: states bundle_id {str(stated)[:40]!r}, but its content hashes to {computed!r} "
            "(edited after it was written); retrain or restore the bundle"
        )
    meta["bundle_id"] = computed
    data = verified_files(path, meta)
    if tuple(meta.get("feature_columns", ())) != FEATURE_COLUMNS:
        raise InputError(f"{path}: trained on another feature list than this code builds; retrain")
    texts: dict[str, str] = {}
    for rel, raw in data.items():
        name = _model_name(rel)
        if name is not None:
            try:
                texts[name] = raw.decode("utf-8")
            except UnicodeDecodeError as exc:
                raise InputError(f"{path}: {rel} is not UTF-8 text ({exc})") from None
    try:
        models = ModelSet.from_files(texts)
    except KeyError as exc:
        raise InputError(
            f"{path}: the models need {MODELS_DIR}/{exc.args[0]}, which {BUNDLE_FILE} 'files' does not list "
            "(every file loaded must be listed with its sha256); retrain with 'audiencefit train'"
        ) from None
    except (ValueError, TypeError) as exc:
        raise InputError(f"{path}: model files unreadable ({exc})") from exc
    return Bundle(path=path, meta=meta, models=models)


def copy_bundle(src: Path, dst: Path) -> None:
    """Copy the bundle at ``src`` to the new directory ``dst``: only bundle.json and the files it lists, each
    checked to lie inside ``src`` and to match its sha256 before it is written. Nothing at ``src`` is moved or
    deleted, and nothing that bundle.json does not list (or that lies outside ``src``) is read."""
    raw_meta = _meta_bytes(src)
    data = verified_files(src, read_meta(src, raw_meta))
    dst.mkdir(parents=False, exist_ok=False)
    for rel, raw in data.items():
        out = dst / PurePosixPath(rel)
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_bytes(raw)
    (dst / BUNDLE_FILE).write_bytes(raw_meta)
