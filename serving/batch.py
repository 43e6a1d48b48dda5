"""Batch scoring: every eligible creator (or the top N from the index) for every brand of a file, to parquet.

``audiencefit score`` reads a brands file, scores each brand with :func:`audiencefit.models.scoring.score_creators` —
the function behind ``/v1/recommendations`` and ``/v1/score`` — ranks with :func:`audiencefit.models.scoring.rank`, and
writes one partition per brand::

    OUT/brand_id=<id>/part-0.parquet     ranked creators with the API's predictions and bands
    OUT/brand_id=<id>/_partition.json    what produced it (run key, brand fingerprint, rows, sha256)
    OUT/_manifest.json                   the run: model, feature set, input fingerprint, counts, timings

Idempotent and resumable: a partition is written in a hidden temporary directory and renamed into place, so it
exists complete or not at all; a rerun skips partitions whose ``_partition.json`` says they were made from the
same brand, model, feature set and options, and rewrites the others. Leftover temporary directories of a killed
run are removed on start. Everything is validated (brands file, model, feature set compatibility) before the
first byte is written.

Engines: ``local`` scores a brand's creators in chunks in this process (LightGBM on every core); ``ray`` hands
the same chunks to Ray Data actors (:mod:`audiencefit.serving.batch_ray`). Creators are scored independently of each
other, so chunking and engines never change a number.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import shutil
import time
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal, Protocol

import numpy as np
import polars as pl
from pydantic import Field, ValidationError

from audiencefit.children import pid_alive
from audiencefit.features.embed import Embedder
from audiencefit.features.errors import InputError
from audiencefit.features.featureset import FeatureSet
from audiencefit.features.io import remove_leftovers_in, replace_dir, sha256_file, staging_dir
from audiencefit.features.untrusted_json import parse_json
from audiencefit.models.bundle import Bundle
from audiencefit.models.drift import Reliability, check_features
from audiencefit.models.pair_features import BrandQuery
from audiencefit.models.query import validate_filters
from audiencefit.models.retrieval import AudienceSearch
from audiencefit.models.scoring import rank, reported, score_creators
from audiencefit.serving.pipeline import brand_query, read_description, to_filters, to_segments
from audiencefit.serving.schemas import BrandIn, FiltersIn, Objective, SegmentIn

log = logging.getLogger(__name__)

Engine = Literal["local", "ray"]
BATCH_MAX_SEGMENTS = 50
MAX_BRANDS = 100_000
DEFAULT_CHUNK_ROWS = 20_000
PARTITION_FILE = "part-0.parquet"
PARTITION_META = "_partition.json"
MANIFEST = "_manifest.json"
TMP_PREFIX = ".tmp-"
# Format 2: rows carry quality_source (what audience_quality was computed from); partitions of format 1 are rewritten.
BATCH_FORMAT = 2
BRAND_ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$"


class BatchBrand(BrandIn):
    """One brand of a brands file: the fields of a recommendation request, plus an id and more segments."""

    brand_id: str = Field(pattern=BRAND_ID_PATTERN, description="Unique id; names the output partition.")
    segments: list[SegmentIn] = Field(default_factory=list, max_length=BATCH_MAX_SEGMENTS)
    filters: FiltersIn = Field(default_factory=FiltersIn)
    objective: Objective = "conversions"


def read_brands(path: Path) -> list[BatchBrand]:
    """Brands from a JSON Lines file (one brand per line) or a JSON file (a list of brands).

    Every problem is collected and reported together (line, field, message); ``InputError`` when any.
    """
    if not path.is_file():
        raise InputError(f"--brands {path}: no such file")
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f"--brands {path}: unreadable ({exc})") from exc
    items: list[tuple[str, Any]] = []
    problems: list[str] = []
    if path.suffix.lower() == ".json":
        try:
            data = parse_json(text)
        except ValueError as exc:
            raise InputError(f"--brands {path}: {exc}") from None
        if not isinstance(data, list):
            raise InputError(f"--brands {path}: expected a JSON list of brands, got {type(data).__name__}")
        items = [(f"item {i}", obj) for i, obj in enumerate(data)]
    else:
        for number, line in enumerate(text.splitlines(), start=1):
            if not line.strip():
                continue
            try:
                items.append((f"line {number}", parse_json(line)))
            except ValueError as exc:
                problems.append(f"line {number}: {exc}")
    if not items and not problems:
        raise InputError(f"--brands {path}: no brands in the file")
    if len(items) > MAX_BRANDS:
        raise InputError(f"--brands {path}: {len(items):,} brands; at most {MAX_BRANDS:,} per run")
    brands: list[BatchBrand] = []
    seen: dict[str, str] = {}
    for where, obj in items:
        try:
            brand = BatchBrand.model_validate(obj)
        except ValidationError as exc:
            for err in exc.errors():
                loc = ".".join(str(p) for p in err["loc"]) or "(brand)"
                problems.append(f"{where}: {loc}: {err['msg']}")
            continue
        if brand.brand_id in seen:
            problems.append(f"{where}: brand_id {brand.brand_id!r} repeats {seen[brand.brand_id]}")
            continue
        seen[brand.brand_id] = where
        brands.append(brand)
    if problems:
        shown = "\n  ".join(problems[:20])
        more = f"\n  … and {len(problems) - 20} more" if len(problems) > 20 else ""
        raise InputError(f"--brands {path}: {len(problems)} problem(s):\n  {shown}{more}")
    return brands


def brand_fingerprint(brand: BatchBrand) -> str:
    """sha256 of the brand's canonical JSON: what the brand asked for, independent of key order."""
    canonical = json.dumps(brand.model_dump(mode="json"), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()


# ---------------------------------------------------------------------------------------------------------------
# Scoring one brand
# ---------------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class BrandTask:
    """A brand resolved against the feature set: its embedded query, the creator rows to score, its options."""

    brand: BatchBrand
    query: BrandQuery
    rows: np.ndarray
    empty_reason: str | None = None

    @property
    def pairs(self) -> int:
        return len(self.rows) * len(self.query.segments)


def prepare_task(
    brand: BatchBrand,
    fs: FeatureSet,
    embedder: Embedder,
    *,
    search: AudienceSearch | None = None,
    top: int | None = None,
) -> BrandTask:
    """Embed the brand's query and choose its creators: every one the filters allow, or the ``top`` best-fitting
    (found by ``search``, which ``top`` needs)."""
    from audiencefit.models.query import allowed_mask, describe_empty

    segments = to_segments(brand)
    reading = read_description(brand)
    if reading is not None:  # a description without segments: say how it was read (the output names the segments)
        log.info(
            "brief read",
            extra={
                "brand_id": brand.brand_id,
                "fallback": reading.fallback,
                "segments": [
                    {"id": s.id, "text": s.text, "weight": s.weight, "role": s.role} for s in reading.segments
                ],
            },
        )
    filters = validate_filters(to_filters(brand.filters))
    if top is not None:
        if search is None:
            raise ValueError("top needs the audience search")
        found = search.search(segments, filters, top)
        query = brand_query(embedder, brand, found.segments, found.segment_vectors)
        return BrandTask(brand, query, np.asarray(found.rows, dtype=np.int64), found.empty_reason)
    query = brand_query(embedder, brand, segments)
    allowed = allowed_mask(fs, filters)
    reason = None if allowed.any() else describe_empty(fs, filters)
    return BrandTask(brand, query, np.flatnonzero(allowed).astype(np.int64), reason)


def chunks(rows: np.ndarray, size: int) -> list[np.ndarray]:
    """``rows`` cut into consecutive pieces of at most ``size``."""
    return [rows[i : i + size] for i in range(0, len(rows), size)]


def finish(task: BrandTask, scored: pl.DataFrame) -> pl.DataFrame:
    """Ranked output rows of one brand: the objective's order (ties by creator id), rank from 1, flat bands."""
    if scored.height == 0:
        return empty_output()
    ranked = reported(rank(scored, task.brand.objective))  # the API's rounding of the reported figures
    return ranked.select(
        pl.lit(task.brand.brand_id).alias("brand_id"),
        pl.int_range(1, ranked.height + 1, dtype=pl.Int64).alias("rank"),
        pl.all(),
    )


def empty_output() -> pl.DataFrame:
    """A brand with no eligible creator: zero rows with the output columns."""
    return pl.DataFrame(schema=OUTPUT_SCHEMA)


OUTPUT_SCHEMA: dict[str, Any] = {
    "brand_id": pl.String,
    "rank": pl.Int64,
    "creator_id": pl.String,
    "handle": pl.String,
    "platform": pl.String,
    "followers": pl.Int64,
    "country": pl.String,
    "language": pl.String,
    "audience_quality": pl.Float64,
    "audience_source": pl.String,
    "quality_source": pl.String,
    "fit": pl.Float64,
    "matched_segment": pl.String,
    "segment_fit": pl.List(pl.Float64),
    "segment_share": pl.List(pl.Float64),
    "brand_mentions": pl.Float64,
    "engagement_rate": pl.Float64,
    "engagement_rate_p10": pl.Float64,
    "engagement_rate_p90": pl.Float64,
    "conversions": pl.Float64,
    "conversions_p10": pl.Float64,
    "conversions_p90": pl.Float64,
    "price": pl.Float64,
    "price_p10": pl.Float64,
    "price_p90": pl.Float64,
    "price_source": pl.String,
    "cost_per_conversion": pl.Float64,
}


Progress = Callable[[int, int], None]  # (task index, creators just scored)


class Scorer(Protocol):
    """An engine: scores tasks' creators and yields (task index, scored frame in row order) as tasks finish."""

    name: str

    def score_many(self, tasks: Sequence[BrandTask], progress: Progress) -> Iterator[tuple[int, pl.DataFrame]]: ...

    def close(self) -> None: ...


class LocalScorer:
    """Scores chunks of creators in this process, ``threads`` chunks at a time.

    Scoring a chunk is mostly numpy, BLAS, polars and compiled trees, which release the GIL, so chunks scored on
    threads use every core; each chunk's numbers do not depend on which thread scored it or on the chunk size
    (``score_creators``), and chunks are put back in row order.
    """

    name = "local"

    def __init__(self, fs: FeatureSet, bundle: Bundle, *, chunk_rows: int, threads: int | None = None) -> None:
        self.fs = fs
        self.bundle = bundle
        self.chunk_rows = chunk_rows
        self.threads = threads or os.cpu_count() or 1
        self._pool = ThreadPoolExecutor(max_workers=self.threads, thread_name_prefix="score")

    def _score(self, query: BrandQuery, piece: np.ndarray) -> pl.DataFrame:
        return score_creators(self.fs, self.bundle.models, query, piece, threads=1)

    def score_many(self, tasks: Sequence[BrandTask], progress: Progress) -> Iterator[tuple[int, pl.DataFrame]]:
        """(task index, its creators scored in row order), task after task; the next task's first chunks are
        already being scored while the current one's last chunks finish."""
        pieces = [chunks(task.rows, self.chunk_rows) for task in tasks]
        work = iter([(i, piece) for i, task_pieces in enumerate(pieces) for piece in task_pieces])
        pending: deque[tuple[int, Future[pl.DataFrame]]] = deque()

        def submit() -> None:
            item = next(work, None)
            if item is not None:
                pending.append((len(item[1]), self._pool.submit(self._score, tasks[item[0]].query, item[1])))

        for _ in range(2 * self.threads):
            submit()
        for i, task_pieces in enumerate(pieces):
            parts = []
            for _ in task_pieces:
                size, future = pending.popleft()
                submit()
                parts.append(future.result())
                progress(i, size)
            yield i, (pl.concat(parts) if parts else pl.DataFrame())

    def close(self) -> None:
        self._pool.shutdown(wait=True, cancel_futures=True)


# ---------------------------------------------------------------------------------------------------------------
# The run: validation, partitions, manifest
# ---------------------------------------------------------------------------------------------------------------


@dataclass
class BrandResult:
    """What happened to one brand in a run."""

    brand_id: str
    status: Literal["scored", "skipped", "empty"]
    creators: int
    pairs: int
    rows: int
    seconds: float
    sha256: str | None
    note: str | None = None


@dataclass
class RunSummary:
    manifest: dict[str, Any]
    results: list[BrandResult] = field(default_factory=list)


def run_key(bundle: Bundle, fs: FeatureSet, top: int | None) -> str:
    """What every partition of a run depends on besides its brand: model, features, candidate option, format."""
    identity = [BATCH_FORMAT, bundle.bundle_id, fs.feature_set_id, fs.version, fs.embedder_id, top]
    return hashlib.sha256(json.dumps(identity).encode()).hexdigest()[:16]


def partition_dir(out: Path, brand_id: str) -> Path:
    return out / f"brand_id={brand_id}"


def finished(out: Path, brand_id: str, key: str, fingerprint: str) -> dict[str, Any] | None:
    """The partition's metadata when it is complete and was made from this brand with this run key."""
    target = partition_dir(out, brand_id)
    try:
        meta = json.loads((target / PARTITION_META).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(meta, dict) or meta.get("run_key") != key or meta.get("brand_sha256") != fingerprint:
        return None
    data = target / PARTITION_FILE
    if not data.is_file() or sha256_file(data) != meta.get("sha256"):
        return None
    return meta


def write_partition(out: Path, brand_id: str, frame: pl.DataFrame, meta: dict[str, Any]) -> str:
    """Write ``frame`` and its metadata to a hidden temporary directory, then rename it into place."""
    out.mkdir(parents=True, exist_ok=True)
    target = partition_dir(out, brand_id)
    tmp = staging_dir(target, clean=False)  # run_batch removed the leftovers of killed runs once (clean_leftovers)
    try:
        data = tmp / PARTITION_FILE
        with data.open("wb") as fh:
            frame.write_parquet(fh, compression="zstd", statistics=True)
            fh.flush()
            os.fsync(fh.fileno())
        sha = sha256_file(data)
        (tmp / PARTITION_META).write_text(json.dumps({**meta, "sha256": sha}, indent=2, sort_keys=True))
        replace_dir(tmp, target)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return sha


def clean_leftovers(out: Path) -> int:
    """Remove what killed runs left behind (never the staging directory of a run still alive); returns how many.

    Partitions are staged as ``.brand_id=<id>.tmp-<pid>-…`` (:func:`audiencefit.features.io.staging_dir`); earlier
    versions used ``.tmp-<id>-<pid>``."""
    if not out.is_dir():
        return 0
    removed = remove_leftovers_in(out)
    for p in out.iterdir():
        legacy = re.fullmatch(rf"{re.escape(TMP_PREFIX)}.*-([0-9]+)", p.name)
        if legacy and p.is_dir() and not pid_alive(int(legacy[1])):
            shutil.rmtree(p, ignore_errors=True)
            removed += 1
    return removed


def check_out_dir(out: Path) -> None:
    """Refuse an output directory that holds something other than batch scoring output."""
    if out.exists() and not out.is_dir():
        raise InputError(f"--out {out}: exists and is not a directory")
    if not out.is_dir():
        return
    foreign = [
        p.name
        for p in out.iterdir()
        if not (p.name.startswith(("brand_id=", TMP_PREFIX, ".brand_id=")) or p.name in (MANIFEST, f".{MANIFEST}.tmp"))
    ]
    if foreign:
        raise InputError(
            f"--out {out}: holds files that are not batch scoring output ({', '.join(sorted(foreign)[:5])}); "
            "choose an empty or earlier output directory"
        )


def _progress(enabled: bool) -> Any:
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    return Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[rate]}"),
        TimeElapsedColumn(),
        disable=not enabled,
    )


def run_batch(
    brands: Sequence[BatchBrand],
    *,
    brands_path: Path,
    fs: FeatureSet,
    bundle: Bundle,
    model_source: str,
    embedder: Embedder,
    search: AudienceSearch | None = None,
    out: Path,
    scorer: Scorer,
    top: int | None = None,
    progress: bool = True,
    reliability: Reliability | None = None,
) -> RunSummary:
    """Score every brand not already finished in ``out``; write partitions and the run manifest.

    The manifest records the forecasts' reliability on this feature set (``reliability``, the one computed when the
    model was loaded; checked here when not given): level, reasons, and each monitored input's shift."""
    started_at = datetime.now(UTC)
    started = time.perf_counter()
    check_out_dir(out)
    out.mkdir(parents=True, exist_ok=True)
    removed = clean_leftovers(out)
    if removed:
        log.warning("removed leftovers of an interrupted run", extra={"out": str(out), "directories": removed})
    key = run_key(bundle, fs, top)
    if reliability is None:
        reliability = check_features(bundle.feature_summary, fs)
    results: dict[str, BrandResult] = {}
    pending: list[BrandTask] = []
    fingerprints: dict[str, str] = {}
    for brand in brands:
        fingerprint = brand_fingerprint(brand)
        fingerprints[brand.brand_id] = fingerprint
        done = finished(out, brand.brand_id, key, fingerprint)
        if done is None:
            pending.append(prepare_task(brand, fs, embedder, search=search, top=top))
            continue
        results[brand.brand_id] = BrandResult(
            brand.brand_id, "skipped", int(done["creators"]), int(done["pairs"]), int(done["rows"]), 0.0, done["sha256"]
        )
    if results:
        log.info("partitions already finished, skipped", extra={"brands": len(results), "out": str(out)})
    with _progress(progress) as bar:
        bar_ids = [
            bar.add_task(f"brand {t.brand.brand_id}", total=max(len(t.rows), 1), rate="", start=False) for t in pending
        ]
        first_seen: dict[int, float] = {}

        def advance(i: int, n: int) -> None:
            now = time.perf_counter()
            if i not in first_seen:
                first_seen[i] = now
                bar.start_task(bar_ids[i])
            bar.advance(bar_ids[i], n)
            done_rows = bar.tasks[bar_ids[i]].completed
            rate = done_rows * len(pending[i].query.segments) / max(now - first_seen[i], 1e-9)
            bar.update(bar_ids[i], rate=f"{rate:,.0f} pairs/s")

        t_prev = time.perf_counter()
        for i, scored in scorer.score_many(pending, advance):
            task = pending[i]
            frame = finish(task, scored)
            meta = {
                "brand_id": task.brand.brand_id,
                "brand_sha256": fingerprints[task.brand.brand_id],
                "run_key": key,
                "segments": [s.label for s in task.query.segments],
                "creators": len(task.rows),
                "pairs": task.pairs,
                "rows": frame.height,
                "empty_reason": task.empty_reason,
                "bundle_id": bundle.bundle_id,
                "feature_set_id": fs.feature_set_id,
            }
            sha = write_partition(out, task.brand.brand_id, frame, meta)
            now = time.perf_counter()
            seconds, t_prev = now - t_prev, now
            bar.update(bar_ids[i], completed=max(len(task.rows), 1))
            status: Literal["scored", "empty"] = "scored" if frame.height else "empty"
            results[task.brand.brand_id] = BrandResult(
                task.brand.brand_id, status, len(task.rows), task.pairs, frame.height, seconds, sha, task.empty_reason
            )
            log.info(
                "brand scored",
                extra={
                    "brand_id": task.brand.brand_id,
                    "creators": len(task.rows),
                    "pairs": task.pairs,
                    "rows": frame.height,
                    "seconds": round(seconds, 3),
                },
            )
    ordered = [results[b.brand_id] for b in brands]
    seconds = time.perf_counter() - started
    scored_pairs = sum(r.pairs for r in ordered if r.status != "skipped")
    manifest = {
        "format": BATCH_FORMAT,
        "run_key": key,
        "model": {"source": model_source, "bundle_id": bundle.bundle_id, "path": str(bundle.path)},
        "features": {
            "path": str(fs.path),
            "feature_set_id": fs.feature_set_id,
            "feature_version": fs.version,
            "embedder_id": fs.embedder_id,
            "creators": fs.creators.height,
        },
        "input": {"brands_file": str(brands_path), "sha256": sha256_file(brands_path), "brands": len(brands)},
        "options": {"engine": scorer.name, "top": top},
        # forecast reliability (#18 §4): how far these creators lie from the model's training creators
        "forecast_reliability": reliability.to_json(),
        "started_at": started_at.isoformat(timespec="seconds"),
        "finished_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "seconds": round(seconds, 3),
        "totals": {
            "brands": len(ordered),
            "scored": sum(r.status == "scored" for r in ordered),
            "skipped": sum(r.status == "skipped" for r in ordered),
            "empty": sum(r.status == "empty" for r in ordered),
            "rows": sum(r.rows for r in ordered),
            "pairs_scored": scored_pairs,
            "pairs_per_s": round(scored_pairs / seconds) if seconds > 0 else None,
        },
        "brands": [
            {
                "brand_id": r.brand_id,
                "status": r.status,
                "partition": partition_dir(out, r.brand_id).name,
                "creators": r.creators,
                "pairs": r.pairs,
                "rows": r.rows,
                "seconds": round(r.seconds, 3),
                "sha256": r.sha256,
                "note": r.note,
            }
            for r in ordered
        ],
    }
    tmp = out / f".{MANIFEST}.tmp"
    tmp.write_text(json.dumps(manifest, indent=2, sort_keys=True), encoding="utf-8")
    os.replace(tmp, out / MANIFEST)
    return RunSummary(manifest, ordered)


def iter_partitions(out: Path) -> Iterator[Path]:
    """The finished partitions' parquet files, in brand id order."""
    yield from sorted(out.glob(f"brand_id=*/{PARTITION_FILE}"))
