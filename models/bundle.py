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
from pathlib import Path
from typing import Any

from features.errors import InputError
from features.featureset import FEATURE_VERSION, FeatureSet
from features.io import replace_dir, sha256_file, staging_dir
from models.estimators import ModelSet
from models.pair_features import FEATURE_COLUMNS

# Format 2: the conversion model records its exposure (``models.json`` "exposure", see
# ``models.estimators.exposure_offset``). Code that reads only format 1 would ignore it and predict with the wrong
# offset, so it must refuse these bundles; this code still reads format 1 (exposure: followers).
BUNDLE_FORMAT = 2
READABLE_FORMATS = (1, 2)
BUNDLE_FILE = "bundle.json"


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
        (tmp / "models").mkdir()
        for name, text in models.to_files().items():
            (tmp / "models" / name).write_text(text, encoding="utf-8")
        files = {str(p.relative_to(tmp)): sha256_file(p) for p in sorted((tmp / "models").iterdir())}
        meta: dict[str, Any] = {
            "format": BUNDLE_FORMAT,
            "feature_version": FEATURE_VERSION,
            "feature_columns": list(models.columns),
            "embedder_id": embedder_id,
            "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
            "files": files,
            **extra,
        }
        meta["bundle_id"] = sha256_of_text(json.dumps(files, sort_keys=True))[:16]
        (tmp / BUNDLE_FILE).write_text(json.dumps(meta, indent=2, sort_keys=True), encoding="utf-8")
        replace_dir(tmp, out_dir)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return meta


def sha256_of_text(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def load_bundle(path: Path) -> Bundle:
    """Load and verify a bundle; a missing file, a checksum mismatch or a foreign feature list is refused."""
    meta_path = path / BUNDLE_FILE
    if not meta_path.is_file():
        raise InputError(f"{path}: not a model bundle (no {BUNDLE_FILE})")
    try:
        meta = json.loads(meta_path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise InputError(f"{meta_path}: unreadable ({exc})") from exc
    if meta.get("format") not in READABLE_FORMATS:
        raise InputError(f"{path}: bundle format {meta.get('format')!r}, this code reads {READABLE_FORMATS}")
    problems = []
    for rel, expected in sorted(meta.get("files", {}).items()):
        file = path / rel
        if not file.is_file():
            problems.append(f"{rel}: missing")
        elif sha256_file(file) != expected:
            problems.append(f"{rel}: checksum mismatch")
    if problems:
        raise InputError(f"{path}: model bundle is damaged: " + "; ".join(problems))
    if tuple(meta.get("feature_columns", ())) != FEATURE_COLUMNS:
        raise InputError(f"{path}: trained on another feature list than this code builds; retrain")
    try:
        files = {p.name: p.read_text(encoding="utf-8") for p in (path / "models").iterdir()}
        models = ModelSet.from_files(files)
    except (KeyError, ValueError) as exc:
        raise InputError(f"{path}: model files unreadable ({exc})") from exc
    return Bundle(path=path, meta=meta, models=models)
