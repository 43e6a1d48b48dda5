"""Incremental refresh benchmark: ``features update`` for a day on which a share of the creators changed, against
the full build it replaces.

Run: ``python -m benchmarks.update [--creators 100000] [--changed 0.01] [--world DIR] [--partition-creators N]``

1. A full cold build of the world (fresh data directory: empty embedding cache; the embedder's model artifacts
   linked in, as in ``benchmarks.features``): the "full build" the goal is stated against.
2. The next day's export, written beside the world: the export instant moves one day on; ``--changed`` of the
   creators (chosen with a fixed seed) change: a third get a new post (a caption of theirs, reworded, so it must be
   embedded), a third new like and comment counts on their posts, a third new followers; 0.1 % of the creators
   leave and as many arrive.
3. ``features update --base <day 1> --data <day 2>`` (same data directory: yesterday's embeddings are cached, as
   they would be on a team's machine).
4. ``features build --data <day 2> --clusters-from <day 1>`` (warm cache as well): the full rebuild a team would run
   instead; its files must equal the update's (sha256 of every file, checked here at scale).

Each step is its own process: wall time and its own peak RSS. Goal: the update ≤ 5 % of the full build's time.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
from collections.abc import Sequence
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from audiencefit.features.export import EXPORT_MANIFEST
from benchmarks.common import Goal, Results, conclude, console, fmt, print_table, run_measured, work_dir
from benchmarks.features import _audiencefit_command, _prepare_artifacts, ensure_world

GOAL_SHARE = 0.05  # "a day with 1% of creators changed costs ≤ 5% of a full build's time"
TABLES = ("creators", "posts", "followers")


def next_day(world: Path, out: Path, *, changed: float, seed: int = 20) -> dict[str, int]:
    """Write the next day's export of ``world`` to ``out`` (see the module docstring); returns what changed."""
    rng = np.random.default_rng(seed)
    creators = pl.read_parquet(world / "creators.parquet")
    posts = pl.read_parquet(world / "posts.parquet")
    followers = pl.read_parquet(world / "followers.parquet") if (world / "followers.parquet").is_file() else None
    manifest = json.loads((world / EXPORT_MANIFEST).read_text(encoding="utf-8"))
    exported = datetime.fromisoformat(manifest["exported_at"])
    ids = creators["creator_id"].sort().to_numpy()
    n = len(ids)
    picked = rng.permutation(n)
    n_changed = max(3, round(changed * n))
    n_moved = max(1, round(0.001 * n))
    groups = np.array_split(ids[picked[:n_changed]], 3)
    new_posts, new_counts, new_followers = (pl.Series(g.tolist(), dtype=pl.String) for g in groups)
    leaving = pl.Series(ids[picked[n_changed : n_changed + n_moved]].tolist(), dtype=pl.String)
    twins = pl.Series(ids[picked[n_changed + n_moved : n_changed + 2 * n_moved]].tolist(), dtype=pl.String)

    fresh = (
        posts.filter(pl.col("creator_id").is_in(new_posts.implode()))
        .sort("posted_at", descending=True)
        .unique("creator_id", keep="first", maintain_order=True)
        .with_columns(
            post_id=pl.col("post_id") + "-d2",
            posted_at=pl.lit(exported + timedelta(hours=12)).cast(posts.schema["posted_at"]),
            caption=pl.lit("New today: ") + pl.col("caption").fill_null("") + pl.lit(" #today"),
            likes=pl.lit(0, dtype=pl.Int64),
            comments=pl.lit(0, dtype=pl.Int64),
        )
    )
    counted = pl.col("creator_id").is_in(new_counts.implode())
    posts = posts.with_columns(
        likes=pl.when(counted).then(pl.col("likes") + 3).otherwise("likes"),
        comments=pl.when(counted).then(pl.col("comments") + 1).otherwise("comments"),
    )
    arrivals = creators.filter(pl.col("creator_id").is_in(twins.implode())).with_columns(
        creator_id=pl.col("creator_id") + "-d2", handle=pl.col("handle") + "_d2"
    )
    arrival_posts = posts.filter(pl.col("creator_id").is_in(twins.implode())).with_columns(
        creator_id=pl.col("creator_id") + "-d2", post_id=pl.col("post_id") + "-d2"
    )
    creators = pl.concat([creators.filter(~pl.col("creator_id").is_in(leaving.implode())), arrivals])
    posts = pl.concat([posts.filter(~pl.col("creator_id").is_in(leaving.implode())), fresh, arrival_posts])
    out.mkdir(parents=True, exist_ok=False)
    creators.write_parquet(out / "creators.parquet")
    posts.write_parquet(out / "posts.parquet")
    if followers is not None:
        donors = followers.filter(pl.col("creator_id").is_in(twins.implode())).with_columns(
            creator_id=pl.col("creator_id") + "-d2"
        )
        taken = min(followers.height, 2 * new_followers.len())
        gained = (
            followers.filter(~pl.col("creator_id").is_in(new_followers.implode()))
            .head(taken)
            .with_columns(
                creator_id=pl.Series(
                    np.repeat(new_followers.to_numpy(), 2)[: min(followers.height, 2 * len(groups[2]))]
                ),
                observed_at=pl.lit(exported + timedelta(hours=12)).cast(followers.schema["observed_at"]),
            )
        )
        followers = pl.concat([followers.filter(~pl.col("creator_id").is_in(leaving.implode())), donors, gained])
        followers.write_parquet(out / "followers.parquet")
    manifest["exported_at"] = (exported + timedelta(days=1)).isoformat()
    (out / EXPORT_MANIFEST).write_text(json.dumps(manifest), encoding="utf-8")
    return {
        "creators": creators.height,
        "changed": n_changed,
        "new_posts": fresh.height,
        "left": leaving.len(),
        "arrived": arrivals.height,
    }


def _run(home: Path, name: str, args: Sequence[str], timeout_s: float | None) -> dict[str, Any]:
    env = {
        **os.environ,
        "AUDIENCEFIT_DATA_DIR": str(home.resolve()),
        "HF_HUB_OFFLINE": "1",
        "TRANSFORMERS_OFFLINE": "1",
    }
    command = [*_audiencefit_command(), "--log-json", *args]
    run = run_measured(command, env=env, log_dir=home / "logs", name=name, timeout_s=timeout_s)
    if not run.ok:
        tail = run.stderr.read_text(encoding="utf-8", errors="replace")[-2000:]
        raise SystemExit(f"{name} failed (log {run.stderr}):\n{tail}")
    return {"run": name, "command": " ".join(command), "wall_s": run.wall_s, "peak_rss_mb": run.peak_rss_mb}


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.update", description=__doc__.split("\n\n")[0])
    parser.add_argument("--creators", type=int, default=100_000, help="world size when --world is not given")
    parser.add_argument("--seed", type=int, default=7, help="world seed when --world is not given")
    parser.add_argument("--world", type=Path, default=None, help="an existing world directory (day 1)")
    parser.add_argument("--changed", type=float, default=0.01, help="share of creators that change (0–0.5)")
    parser.add_argument("--partition-creators", type=int, default=None, help="passed to build and update")
    parser.add_argument("--timeout", type=float, default=3600.0, help="seconds allowed per step")
    args = parser.parse_args(argv)
    if not 0 < args.changed <= 0.5:
        parser.error("--changed must be in (0, 0.5]")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    world = args.world or ensure_world(args.creators, args.seed)[0]
    n = pl.scan_parquet(world / "creators.parquet").select(pl.len()).collect().item()
    from audiencefit.settings import get_settings

    backend = get_settings().embedder
    root = work_dir() / f"update-{world.name}-{args.changed}"
    shutil.rmtree(root, ignore_errors=True)
    home = root / "home"
    home.mkdir(parents=True)
    _prepare_artifacts(backend, home)
    parts = ["--partition-creators", str(args.partition_creators)] if args.partition_creators else []
    res = Results("update", {"world": str(world), "creators": n, "changed": args.changed, "embedder": backend})
    console.print(f"update: {n:,} creators, day 1 full cold build …")
    day1 = root / "day1"
    full = _run(
        home, "full-cold", ["features", "build", "--data", str(world), "--out", str(day1), *parts], args.timeout
    )
    day2 = root / "world-day2"
    changes = next_day(world, day2, changed=args.changed)
    console.print(f"update: day 2 ({changes}) — features update …")
    upd_dir = root / "day2-update"
    upd = _run(
        home,
        "update",
        ["features", "update", "--base", str(day1), "--data", str(day2), "--out", str(upd_dir), *parts],
        args.timeout,
    )
    console.print("update: day 2 full rebuild with the same clusters (warm cache) …")
    rebuilt_dir = root / "day2-full"
    rebuilt = _run(
        home,
        "full-warm",
        ["features", "build", "--data", str(day2), "--out", str(rebuilt_dir), "--clusters-from", str(day1), *parts],
        args.timeout,
    )
    upd_manifest = json.loads((upd_dir / "manifest.json").read_text())
    full_manifest = json.loads((rebuilt_dir / "manifest.json").read_text())
    identical = upd_manifest["files"] == full_manifest["files"]
    ratio_cold = upd["wall_s"] / full["wall_s"]
    ratio_warm = upd["wall_s"] / rebuilt["wall_s"]
    res.results = {
        "changes": changes,
        "update_summary": upd_manifest.get("update"),
        "runs": [full, upd, rebuilt],
        "files_identical": identical,
        "update_over_full_cold": ratio_cold,
        "update_over_full_warm": ratio_warm,
    }
    print_table(
        f"features update, {n:,} creators, {args.changed:.1%} changed",
        ["step", "wall s", "peak RSS MB"],
        [[r["run"], fmt(r["wall_s"], ".1f"), fmt(r["peak_rss_mb"], ".0f")] for r in res.results["runs"]],
        caption=f"update / full cold {ratio_cold:.3f}; / full warm {ratio_warm:.3f}; files identical: {identical}",
    )
    res.goals = [
        Goal("update", "≤ 5% of a full cold build's time", f"{ratio_cold:.1%}", ratio_cold <= GOAL_SHARE),
        Goal("update", "files equal the full build's with the same clusters", str(identical), identical),
    ]
    return conclude(res)


if __name__ == "__main__":
    raise SystemExit(main())
