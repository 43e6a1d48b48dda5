"""Batch scoring benchmark (issue #8): ``audiencefit score`` over every creator of a large world, local and Ray.

Steps, each reused when its output is already there (only the scoring runs are always repeated):

1. the generated world of ``creators`` creators (``<work>/world-<n>-seed<s>``, shared with the features benchmark);
2. its feature set, built with the fast ``minilm-aligned`` embedder by ``audiencefit features build`` as a
   subprocess in a fresh data directory (cold embedding cache); its wall time and peak RSS are recorded with it
   (``<work>/features-<n>-seed<s>-<embedder>.build.json``): the largest-world feature build figure;
3. a model bundle trained (``audiencefit.training.train.train_models``, no MLflow) on a small world of
   ``train_creators`` creators built with the same embedder. Scoring speed depends on the model's size, not on the world
   it was trained on, and both feature sets share the embedder id and feature version, so the bundle is compatible;
4. a brands file with ``segments`` segments in total, taken from the world's own brands and segments (the first
   brands until the count is reached), with open follower filters so that every creator is scored;
5. ``audiencefit --log-json score --engine local`` into a fresh directory, the same with ``--engine ray`` (a local
   Ray runtime), and the local command again on the finished directory (every partition skipped).

Per scoring run: process wall time, peak RSS (``VmHWM`` of the command's process; for Ray also the peak of the
summed RSS of every process in the command's session, which includes the Ray workers it starts), pairs scored
(from ``_manifest.json``), pairs/s end to end = pairs / process wall time (reading features to writing parquet:
the goal's definition) and the manifest's own pairs/s (time inside ``run_batch``). The Ray output is compared
with the local output frame by frame. Everything runs with ``AUDIENCEFIT_DATA_DIR`` and ``MLFLOW_TRACKING_URI``
under the benchmark work directory, so the user's store is not touched.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from benchmarks.common import Goal, ProcessRun, Results, console, fmt, print_table, run_measured, stopwatch, work_dir
from benchmarks.features import (
    _audiencefit_command,
    _keep_feature_set,
    _prepare_artifacts,
    build_once,
    ensure_world,
    feature_set_path,
    features_home,
)

BATCH_CREATORS = 100_000
TRAIN_CREATORS = 5_000
SEGMENTS = 20
EMBEDDER = "minilm-aligned"
PAIRS_PER_S_TARGET = 200_000.0  # "≥ 200k pairs/s end to end on the local engine"
_POLL_S = 0.2


@dataclass(frozen=True)
class BatchBenchConfig:
    """World size and seed, the small training world, the segment count, the embedder, chunk rows, timeouts."""

    creators: int = BATCH_CREATORS
    seed: int = 7
    train_creators: int = TRAIN_CREATORS
    segments: int = SEGMENTS
    embedder: str = EMBEDDER
    chunk_rows: int | None = None  # None: the command's default
    ray: bool = True
    runs: tuple[str, ...] = ("local", "ray", "rerun", "single")  # which scoring runs (ray also needs ``ray``)
    build_timeout_s: float | None = 3600.0
    score_timeout_s: float | None = 1800.0


# ---------------------------------------------------------------------------------------------------------------
# Preparation: feature sets, the model bundle, the brands file
# ---------------------------------------------------------------------------------------------------------------


def _env(home: Path) -> dict[str, str]:
    """The environment of every subprocess: the bench data directory, MLflow under it, offline, JSON-friendly."""
    env = {
        **os.environ,
        "AUDIENCEFIT_DATA_DIR": str(home.resolve()),
        "MLFLOW_TRACKING_URI": f"sqlite:///{(home / 'mlflow.db').resolve()}",
        "HF_HUB_OFFLINE": "1",
        "TRANSFORMERS_OFFLINE": "1",
        "AUDIENCEFIT_LOG_LEVEL": "INFO",
        "RAY_USAGE_STATS_ENABLED": "0",
    }
    env.pop("RAY_ADDRESS", None)  # always a local Ray runtime started by the command
    return env


def _json(path: Path) -> dict[str, Any]:
    value = json.loads(path.read_text(encoding="utf-8"))
    return value if isinstance(value, dict) else {}


def current_embedder_id(embedder: str) -> str:
    """The id the embedding backend has now (it changes when its artifacts or their recipe change)."""
    from audiencefit.features.embed import get_embedder

    return str(get_embedder(embedder).id)


def _build_record_path(creators: int, seed: int, embedder: str) -> Path:
    return feature_set_path(creators, seed, embedder).with_name(
        f"{feature_set_path(creators, seed, embedder).name}.build.json"
    )


def ensure_features(
    creators: int, seed: int, embedder: str, timeout_s: float | None
) -> tuple[Path, Path, dict[str, Any]]:
    """(world, feature set, build figures) for ``creators``; the build runs only when no feature set is kept.

    The build figures come from the run that made the kept feature set (``reused`` tells whether it was now).
    """
    world, gen_s = ensure_world(creators, seed)
    path = feature_set_path(creators, seed, embedder)
    record_path = _build_record_path(creators, seed, embedder)
    current = current_embedder_id(embedder)
    if (path / "manifest.json").is_file() and _json(path / "manifest.json").get("embedder_id") == current:
        record = _json(record_path) if record_path.is_file() else {}
        return world, path, record | {"reused": True, "world_generate_s": gen_s}
    if path.is_dir():  # the embedder's artifacts changed since: its id, and every vector, would not match
        console.print(f"batch: {path} was embedded with another {embedder} id than the current {current}: rebuilding")
    home = features_home(creators, seed, embedder)
    shutil.rmtree(home, ignore_errors=True)
    home.mkdir(parents=True)
    _prepare_artifacts(embedder, home)
    console.print(f"batch: building features of the {creators:,}-creator world with {embedder} (cold cache)")
    record = build_once(world, home, embedder, "cold", timeout_s)
    if record["returncode"] != 0:
        raise RuntimeError(f"features build of the {creators:,}-creator world failed; log {record['log']}")
    path = _keep_feature_set(home, creators, seed, embedder)
    record = {k: v for k, v in record.items() if k != "columns"} | {"creators": creators}
    record_path.write_text(json.dumps(record, indent=2), encoding="utf-8")
    return world, path, record | {"reused": False, "world_generate_s": gen_s}


_TRAIN_SCRIPT = """
import sys
from pathlib import Path
from audiencefit.settings import get_settings
from audiencefit.training.train import train_models
result = train_models(Path(sys.argv[1]), Path(sys.argv[2]), get_settings(), out_dir=Path(sys.argv[3]), progress=False)
print(result.bundle_dir)
"""


def ensure_bundle(config: BatchBenchConfig) -> tuple[Path, dict[str, Any]]:
    """A model bundle trained on the small world (reused when present): (directory, figures)."""
    world, features, _ = ensure_features(config.train_creators, config.seed, config.embedder, config.build_timeout_s)
    bundle = work_dir() / f"bundle-{config.train_creators}-seed{config.seed}-{config.embedder}"
    info: dict[str, Any] = {"path": str(bundle), "trained_on_creators": config.train_creators, "features": features}
    if (bundle / "bundle.json").is_file() and _json(bundle / "bundle.json").get("embedder_id") == _json(
        features / "manifest.json"
    ).get("embedder_id"):
        return bundle, info | {"reused": True}
    home = features_home(config.train_creators, config.seed, config.embedder)
    home.mkdir(parents=True, exist_ok=True)
    if not (home / "models").exists():
        _prepare_artifacts(config.embedder, home)
    tmp = bundle.with_name(f".{bundle.name}.tmp-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    console.print(f"batch: training a model bundle on the {config.train_creators:,}-creator world (no registry)")
    command = [sys.executable, "-c", _TRAIN_SCRIPT, str(world.resolve()), str(features.resolve()), str(tmp.resolve())]
    run = run_measured(command, env=_env(home), log_dir=home / "logs", name="train")
    if not run.ok:
        tail = run.stderr.read_text(encoding="utf-8", errors="replace")[-2000:]
        raise RuntimeError(f"training failed (log {run.stderr}):\n{tail}")
    shutil.rmtree(bundle, ignore_errors=True)
    os.replace(tmp, bundle)
    return bundle, info | {"reused": False, "train_s": run.wall_s, "train_peak_rss_mb": run.peak_rss_mb}


def _words(value: str | None) -> list[str]:
    return [w for w in (value or "").split() if w]


def write_brands(world: Path, out: Path, segments: int) -> dict[str, Any]:
    """A JSON Lines brands file with ``segments`` segments in total from the world's brands and segments.

    Follower filters are opened (0 to 10¹²) so that every creator of the world is a candidate.
    """
    import polars as pl

    brands = pl.read_parquet(world / "brands.parquet")
    segs = pl.read_parquet(world / "segments.parquet")
    lines: list[str] = []
    total = 0
    for brand in brands.iter_rows(named=True):
        if total >= segments:
            break
        own = segs.filter(pl.col("brand_id") == brand["brand_id"]).sort("segment_id")
        take = own.head(segments - total)
        if take.height == 0:
            continue
        total += take.height
        record = {
            "brand_id": brand["brand_id"],
            "description": brand["description"],
            "segments": [
                {
                    "id": s["segment_id"],
                    "text": s["description"],
                    "weight": float(s["weight"]) if s["weight"] is not None else 1.0,
                    "countries": _words(s["countries"]),
                }
                for s in take.iter_rows(named=True)
            ],
            "brand_handles": _words(brand["handles"]),
            "branded_hashtags": _words(brand["hashtags"]),
            "filters": {"min_followers": 0, "max_followers": 10**12},
        }
        lines.append(json.dumps(record))
    if total < segments:
        raise ValueError(f"{world}: only {total} segments, {segments} asked for")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return {"path": str(out), "brands": len(lines), "segments": total}


# ---------------------------------------------------------------------------------------------------------------
# Scoring runs
# ---------------------------------------------------------------------------------------------------------------


def _session_rss_mb(sid: int) -> float:
    """Summed RSS of every process whose session id is ``sid`` (the command and everything it started)."""
    total = 0.0
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            stat = (proc / "stat").read_text(encoding="ascii", errors="replace")
            fields = stat[stat.rindex(")") + 2 :].split()
            if int(fields[3]) != sid:  # fields after the name: state, ppid, pgrp, session, ...
                continue
            for line in (proc / "status").read_text(encoding="ascii", errors="replace").splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1]) / 1024
                    break
        except (OSError, ValueError, IndexError):
            continue
    return total


def run_tree_measured(
    command: list[str], *, env: dict[str, str], log_dir: Path, name: str, timeout_s: float | None
) -> tuple[ProcessRun, float | None]:
    """:func:`benchmarks.common.run_measured`, plus the peak of the summed RSS of the command's session.

    The command runs in a new session, so its session id is its pid and every process it starts (Ray's raylet,
    GCS and worker processes) shares it unless it starts a session of its own. The session sum is sampled at
    every poll (None without ``/proc``).
    """
    session_peak = 0.0

    def sample(pid: int) -> None:
        nonlocal session_peak
        session_peak = max(session_peak, _session_rss_mb(pid))

    has_proc = Path("/proc/self/status").is_file()
    run = run_measured(
        command, env=env, log_dir=log_dir, name=name, timeout_s=timeout_s, sample=sample if has_proc else None
    )
    return run, (session_peak or None)


def _hwm_mb(pid: int) -> float:
    try:
        for line in Path(f"/proc/{pid}/status").read_text(encoding="ascii", errors="replace").splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except (OSError, ValueError):
        pass
    return 0.0


def parse_score_log(stderr: Path) -> dict[str, Any]:
    """From the command's JSON log: per-brand seconds and the time from process start to the first brand."""
    brands: list[dict[str, Any]] = []
    events: list[str] = []
    for line in stderr.read_text(encoding="utf-8", errors="replace").splitlines():
        if not line.startswith("{"):
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            continue
        event = str(record.get("event") or record.get("message") or "")
        events.append(event)
        if event == "brand scored":
            brands.append({k: record.get(k) for k in ("brand_id", "creators", "pairs", "rows", "seconds")})
    return {"brand_events": brands, "log_events": sorted(set(events))}


def score_once(
    *,
    name: str,
    engine: str,
    brands: Path,
    features: Path,
    bundle: Path,
    out: Path,
    home: Path,
    chunk_rows: int | None,
    fresh: bool,
    timeout_s: float | None,
) -> dict[str, Any]:
    """One ``audiencefit --log-json score`` process; its wall time, peak RSS, pairs and pairs/s."""
    if fresh:
        shutil.rmtree(out, ignore_errors=True)
    command = [*_audiencefit_command(), "--log-json", "score", "--brands", str(brands.resolve())]
    command += ["--features", str(features.resolve()), "--out", str(out.resolve()), "--bundle", str(bundle.resolve())]
    command += ["--engine", engine, "--no-progress"]
    if chunk_rows:
        command += ["--chunk-rows", str(chunk_rows)]
    run, tree_peak = run_tree_measured(command, env=_env(home), log_dir=home / "logs", name=name, timeout_s=timeout_s)
    result: dict[str, Any] = {
        "run": name,
        "engine": engine,
        "command": " ".join(command),
        "wall_s": run.wall_s,
        "peak_rss_mb": run.peak_rss_mb,
        "session_peak_rss_mb": tree_peak,
        "rss_method": run.rss_method,
        "returncode": run.returncode,
        "timed_out": run.returncode is None,
        "log": str(run.stderr),
    }
    if not run.ok:
        tail = run.stderr.read_text(encoding="utf-8", errors="replace")[-2000:]
        console.print(f"[red]{name}: audiencefit score failed or timed out[/red] (log {run.stderr})\n{tail}")
        return result
    manifest = json.loads((out / "_manifest.json").read_text(encoding="utf-8"))
    totals = manifest["totals"]
    pairs = int(totals["pairs_scored"])
    result |= {
        "pairs": pairs,
        "rows": totals["rows"],
        "brands_scored": totals["scored"],
        "brands_skipped": totals["skipped"],
        "run_batch_s": manifest["seconds"],
        "startup_s": run.wall_s - float(manifest["seconds"]),  # imports, loading features / model, Ray start
        "pairs_per_s_end_to_end": pairs / run.wall_s if pairs else None,
        "pairs_per_s_manifest": totals["pairs_per_s"],
        "creators_in_features": manifest["features"]["creators"],
        "brand_seconds": {b["brand_id"]: b["seconds"] for b in manifest["brands"]},
    }
    result |= parse_score_log(run.stderr)
    return result


def compare_outputs(a: Path, b: Path) -> dict[str, Any]:
    """Whether two batch output directories hold the same frames, partition by partition."""
    import polars as pl
    from polars.testing import assert_frame_equal

    parts_a = sorted(p.relative_to(a) for p in a.glob("brand_id=*/part-0.parquet"))
    parts_b = sorted(p.relative_to(b) for p in b.glob("brand_id=*/part-0.parquet"))
    out: dict[str, Any] = {"partitions": len(parts_a), "same_partitions": parts_a == parts_b}
    if parts_a != parts_b:
        out["equal"] = False
        return out
    exact = True
    close = True
    rows = 0
    for rel in parts_a:
        fa, fb = pl.read_parquet(a / rel), pl.read_parquet(b / rel)
        rows += fa.height
        if fa.equals(fb):
            continue
        exact = False
        try:
            assert_frame_equal(fa, fb, check_exact=False, rel_tol=1e-6, abs_tol=1e-9)
        except AssertionError as exc:
            close = False
            out.setdefault("differences", []).append(f"{rel}: {str(exc)[:300]}")
    out |= {"rows": rows, "exact": exact, "equal": close}
    return out


# ---------------------------------------------------------------------------------------------------------------
# The benchmark
# ---------------------------------------------------------------------------------------------------------------


def write_single_brand(multi: Path, out: Path) -> dict[str, Any]:
    """One brand holding every segment of the multi-brand file (the other reading of "20 segments").

    The brands of :func:`write_brands` average under 2 segments each, so most of the per-creator work (each
    creator's bands for its best segment, ranking, writing) is repeated per brand; one brand with 20 segments
    scores the same 2M pairs with that work done once.
    """
    records = [json.loads(line) for line in multi.read_text(encoding="utf-8").splitlines() if line.strip()]
    segments = [{**s, "id": f"{r['brand_id']}:{s['id']}"} for r in records for s in r["segments"]]
    first = records[0]
    record = {
        "brand_id": "all-segments",
        "description": first["description"],
        "segments": segments,
        "brand_handles": first["brand_handles"],
        "branded_hashtags": first["branded_hashtags"],
        "filters": first["filters"],
    }
    out.write_text(json.dumps(record) + "\n", encoding="utf-8")
    return {"path": str(out), "brands": 1, "segments": len(segments)}


def run_batch_bench(config: BatchBenchConfig) -> Results:
    """Prepare (or reuse) world, features, bundle and brands; time local, Ray and the rerun; print the tables."""
    res = Results("batch" if config.creators == BATCH_CREATORS else f"batch-{config.creators}", {**config.__dict__})
    with stopwatch() as prep:
        world, features, build = ensure_features(config.creators, config.seed, config.embedder, config.build_timeout_s)
        bundle, bundle_info = ensure_bundle(config)
        brands_path = work_dir() / f"batch-brands-{config.creators}-seed{config.seed}-{config.segments}seg.jsonl"
        brands = write_brands(world, brands_path, config.segments)
        single_path = brands_path.with_name(brands_path.stem + "-1brand.jsonl")
        single = write_single_brand(brands_path, single_path)
    home = features_home(config.creators, config.seed, config.embedder)
    home.mkdir(parents=True, exist_ok=True)
    if not (home / "models").exists():
        _prepare_artifacts(config.embedder, home)
    # The bundle's trees compiled to native code, once per bundle and machine, into the cache the scoring
    # processes read (<home>/cache/forests): a deployment step like building the index, timed here; the scoring
    # runs below then load the compiled objects (milliseconds).
    from audiencefit.models.bundle import load_bundle

    forests = home / "cache" / "forests"
    cached_before = len(list(forests.glob("*.o"))) if forests.is_dir() else 0
    with stopwatch() as compiled:
        load_bundle(bundle).models.compile(forests)
    console.print(f"batch: bundle trees compiled in {compiled['s']:.1f} s ({cached_before} objects were cached)")
    res.results |= {
        "world": {"path": str(world), "creators": config.creators, "generate_s": build.get("world_generate_s")},
        "features_build": build,
        "bundle": bundle_info,
        "brands": brands,
        "single_brand": single,
        "prepare_s": prep["s"],
        "compile_trees_s": compiled["s"],
        "compiled_objects_cached_before": cached_before,
    }
    common: dict[str, Any] = {
        "brands": brands_path,
        "features": features,
        "bundle": bundle,
        "home": home,
        "chunk_rows": config.chunk_rows,
        "timeout_s": config.score_timeout_s,
    }
    out_local = work_dir() / f"batch-out-{config.creators}-seed{config.seed}-local"
    out_ray = work_dir() / f"batch-out-{config.creators}-seed{config.seed}-ray"
    runs: list[dict[str, Any]] = []
    local: dict[str, Any] = {}
    ray: dict[str, Any] | None = None
    if "local" in config.runs:
        console.print(f"batch: scoring {config.creators:,} creators × {brands['segments']} segments, local engine")
        local = score_once(name="score-local", engine="local", out=out_local, fresh=True, **common)
        runs.append(local)
    if config.ray and "ray" in config.runs:
        console.print("batch: the same with the Ray engine (local runtime)")
        ray = score_once(name="score-ray", engine="ray", out=out_ray, fresh=True, **common)
        runs.append(ray)
    if "rerun" in config.runs and local:
        console.print("batch: local again on the finished output (every partition skipped)")
        runs.append(score_once(name="rerun-local", engine="local", out=out_local, fresh=False, **common))
    single_run: dict[str, Any] = {}
    if "single" in config.runs:
        console.print(f"batch: the same {single['segments']} segments as one brand, local engine")
        out_single = work_dir() / f"batch-out-{config.creators}-seed{config.seed}-local-1brand"
        single_args = {**common, "brands": single_path}
        single_run = score_once(name="score-local-1brand", engine="local", out=out_single, fresh=True, **single_args)
        runs.append(single_run)
    res.results["runs"] = runs
    if ray is not None and local and local["returncode"] == 0 and ray["returncode"] == 0:
        res.results["ray_equals_local"] = compare_outputs(out_local, out_ray)

    print_table(
        f"features build, {config.creators:,}-creator world, embedder {config.embedder}",
        ("creators", "posts", "followers", "texts", "embedded", "wall s", "peak RSS MB", "embed t/s", "reused"),
        [
            (
                f"{config.creators:,}",
                fmt((build.get("row_counts") or {}).get("posts"), ",d"),
                fmt((build.get("row_counts") or {}).get("followers"), ",d"),
                fmt(build.get("texts"), ",d"),
                fmt(build.get("embedded"), ",d"),
                fmt(build.get("wall_s"), ".1f"),
                fmt(build.get("peak_rss_mb"), ".0f"),
                fmt(build.get("embedder_texts_per_s"), ".0f"),
                "yes (figures of the build that made it)" if build.get("reused") else "no",
            )
        ],
    )
    print_table(
        f"audiencefit score, {config.creators:,} creators × {brands['segments']} segments ({brands['brands']} brands)",
        (
            "run",
            "wall s",
            "startup s",
            "run_batch s",
            "pairs",
            "pairs/s e2e",
            "pairs/s manifest",
            "peak RSS MB",
            "session RSS MB",
        ),
        [
            (
                r["run"],
                fmt(r["wall_s"], ".2f") + (" (timeout)" if r["timed_out"] else ""),
                fmt(r.get("startup_s"), ".2f"),
                fmt(r.get("run_batch_s"), ".2f"),
                fmt(r.get("pairs"), ",d"),
                fmt(r.get("pairs_per_s_end_to_end"), ",.0f"),
                fmt(r.get("pairs_per_s_manifest"), ",d"),
                fmt(r["peak_rss_mb"], ".0f"),
                fmt(r.get("session_peak_rss_mb"), ".0f"),
            )
            for r in runs
        ],
        caption="pairs/s e2e: pairs / process wall time; manifest: pairs / seconds inside run_batch; "
        "session RSS: peak of the summed RSS of the command and every process it started (Ray workers)",
    )
    if "ray_equals_local" in res.results:
        cmp = res.results["ray_equals_local"]
        console.print(
            f"ray output == local output: {cmp['equal']} (exact: {cmp.get('exact')}; "
            f"{cmp['partitions']} partitions, {cmp.get('rows', 0):,} rows)"
        )

    # The goal: 100k creators × 20 segments, one job scoring every (creator, segment) pair: the 1-brand run. When
    # the same 20 segments belong to 11 brands, every creator is also scored once per brand (engagement and
    # conversion bands, price, fit and an output row: 11× the per-creator work for the same pairs), reported with
    # its creator × brand rows per second, as information.
    rate = local.get("pairs_per_s_end_to_end")
    at_goal_size = config.creators >= BATCH_CREATORS  # issue #8: 100k; issue #20: 1M
    scope = "" if at_goal_size else f" (ran {config.creators:,} creators; goal is for 100k and 1M)"
    rows_rate = (local.get("rows") or 0) / local["wall_s"] if rate else None
    if local:
        res.goals.append(
            Goal(
                "batch",
                f"information: the {SEGMENTS} segments as {brands['brands']} brands, local engine, end to end",
                (
                    f"{rate:,.0f} pairs/s ({rows_rate:,.0f} creator × brand rows/s), {local['wall_s']:.1f} s, "
                    f"peak {local['peak_rss_mb']:.0f} MB" + scope
                )
                if rate and rows_rate is not None
                else "not measured (the run failed)",
                None if rate else False,
            )
        )
    one = single_run.get("pairs_per_s_end_to_end")
    if single_run:
        res.goals.append(
            Goal(
                "batch",
                f"local engine ≥ {PAIRS_PER_S_TARGET:,.0f} pairs/s end to end, {config.creators:,} creators × 1 brand "
                f"× {single['segments']} segments",
                (f"{one:,.0f} pairs/s, {single_run['wall_s']:.1f} s, peak {single_run['peak_rss_mb']:.0f} MB" + scope)
                if one
                else "not measured (the run failed)",
                (one >= PAIRS_PER_S_TARGET) if one and at_goal_size else (False if not one else None),
            )
        )
    if "ray_equals_local" in res.results:
        res.goals.append(
            Goal(
                "batch",
                "ray engine output equals the local engine output",
                "equal" if res.results["ray_equals_local"]["equal"] else "different",
                bool(res.results["ray_equals_local"]["equal"]),
            )
        )
    return res


def main(argv: list[str] | None = None) -> int:
    """``python -m benchmarks.batch [--batch-creators N]``: the batch benchmark on its own."""
    import argparse

    from benchmarks.common import conclude

    parser = argparse.ArgumentParser(prog="python -m benchmarks.batch", description=__doc__.split("\n\n")[0])
    parser.add_argument("--batch-creators", type=int, default=BATCH_CREATORS)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--train-creators", type=int, default=TRAIN_CREATORS)
    parser.add_argument("--chunk-rows", type=int, default=None)
    parser.add_argument("--no-ray", action="store_true", help="skip the Ray engine run")
    parser.add_argument(
        "--runs",
        default="local,ray,rerun,single",
        help="comma-separated scoring runs: local (the segments as their brands), ray, rerun (local on the "
        "finished output), single (the segments as one brand: the goal's run); e.g. --runs single at 1M",
    )
    args = parser.parse_args(argv)
    started = time.perf_counter()
    res = run_batch_bench(
        BatchBenchConfig(
            creators=args.batch_creators,
            seed=args.seed,
            train_creators=args.train_creators,
            chunk_rows=args.chunk_rows,
            ray=not args.no_ray,
            runs=tuple(r.strip() for r in args.runs.split(",") if r.strip()),
        )
    )
    return conclude(res, f" ({(time.perf_counter() - started) / 60:.1f} min)")


if __name__ == "__main__":
    raise SystemExit(main())
