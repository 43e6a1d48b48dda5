"""The edge of ``audiencefit import`` that touches disk: checking ``--out``, writing the contract tables to a staging
directory, validating them there with ``audiencefit validate``'s own checks and only then putting them in place."""

from __future__ import annotations

import logging
import os
import shutil
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import polars as pl

from audiencefit.features.dataset import validate_dir
from audiencefit.features.errors import InputError
from audiencefit.features.export import ExportInstant, check_export_instant, write_export_manifest
from audiencefit.features.io import replace_dir, staging_dir

log = logging.getLogger(__name__)


@dataclass
class ImportSummary:
    """What an import did, for the command's report and its log line."""

    source_files: list[str] = field(default_factory=list)
    creators: int = 0
    posts: int = 0
    duplicate_posts_merged: int = 0
    duplicate_creators_merged: int = 0
    dropped: dict[str, int] = field(default_factory=dict)  # reason → rows dropped
    skipped_files: list[str] = field(default_factory=list)
    export_instant: str = ""

    def as_dict(self) -> dict[str, object]:
        return {
            "source_files": len(self.source_files),
            "creators": self.creators,
            "posts": self.posts,
            "duplicate_posts_merged": self.duplicate_posts_merged,
            "duplicate_creators_merged": self.duplicate_creators_merged,
            "dropped": dict(self.dropped),
            "skipped_files": list(self.skipped_files),
            "export_instant": self.export_instant,
        }


def check_out(out: Path, sources: list[Path], *, force: bool) -> None:
    """Refuse an ``--out`` that cannot be written safely: a file or symlink, a non-empty directory without
    ``force``, or a directory overlapping a source (writing would replace or mix with the export itself)."""
    if out.is_symlink():
        raise InputError(f"--out {out}: is a symbolic link; give a plain directory path")
    if out.exists() and not out.is_dir():
        raise InputError(f"--out {out}: exists and is not a directory")
    if out.is_dir() and any(out.iterdir()) and not force:
        raise InputError(f"--out {out}: exists and is not empty; give a new directory, or --force to replace it")
    resolved = out.resolve()
    for source in sources:
        src = source.resolve()
        if resolved == src or src.is_relative_to(resolved) or resolved.is_relative_to(src):
            raise InputError(f"--out {out}: overlaps the source {source}; write the import to another directory")


def export_instant(stated: datetime | None, sources: list[Path]) -> ExportInstant:
    """``stated`` (``--export-time``), else the newest modification time of the source files, capped at now: an
    export cannot hold a post published after it was written. Whole seconds, so two runs write the same file."""
    if stated is not None:
        return ExportInstant(check_export_instant(stated, "--export-time"), "--export-time")
    now = datetime.now(UTC)
    newest = max((datetime.fromtimestamp(p.stat().st_mtime, UTC) for p in sources), default=now)
    return ExportInstant(min(newest, now).replace(microsecond=0), "the modification time of the source files")


def write_import(
    creators: pl.DataFrame, posts: pl.DataFrame, out: Path, instant: ExportInstant, summary: ImportSummary
) -> None:
    """Write creators.parquet, posts.parquet and export.json to a staging directory beside ``out``, validate it
    as ``audiencefit validate`` would, then put it in place of ``out`` in one step. On any failure the staging
    directory is removed and ``out`` is untouched."""
    tmp = staging_dir(out)
    try:
        creators.write_parquet(tmp / "creators.parquet")
        posts.write_parquet(tmp / "posts.parquet")
        write_export_manifest(tmp, instant.instant)
        report = validate_dir(tmp)
        if not report.ok:
            # The rows were validated before writing; reaching this is a bug of the importer, not of the input.
            raise InputError(report.errors)
        for directory, _subdirs, files in os.walk(tmp):
            for name in files:
                Path(directory, name).chmod(0o644)
        replace_dir(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    log.info("import written", extra={"out": str(out), **summary.as_dict()})
