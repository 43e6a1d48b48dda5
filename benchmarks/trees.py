"""Tree inference: LightGBM's own predictor vs the same models compiled to native code (``models/forest.py``).

Run: ``.venv/bin/python -m benchmarks.run --only trees`` (or ``python -m benchmarks.trees [--rows N]``).

On the batch benchmark's bundle (trained on a 5k world; ``benchmarks.batch.ensure_bundle`` makes it when missing),
for every model of the bundle: rows/s of LightGBM (``Booster.predict``, raw score, one thread) and of the compiled
model (one thread) on ``--rows`` rows of random features with 5% NaN, whether every prediction is bit-identical,
and the latency of a 3,000-row call (an API request's size). Then the cold compile of the whole bundle into an empty
cache (worker processes, one per CPU) and the warm load from that cache. Results go to
``<data_dir>/bench/trees.json``.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.common import Goal, Results, console, fmt, print_table, stopwatch

SMALL_ROWS = 3_000
SMALL_REPEATS = 30


def _per_row_us(seconds: float, rows: int) -> float:
    return seconds / rows * 1e6


def run_trees(rows: int = 200_000, seed: int = 7, bundle_dir: Path | None = None) -> Results:
    """Time and compare both predictors on every model of the bundle; compile it cold and warm."""
    from audiencefit.models.bundle import load_bundle
    from audiencefit.models.forest import compile_forest

    if bundle_dir is None:
        from benchmarks.batch import BatchBenchConfig, ensure_bundle

        bundle_dir, _ = ensure_bundle(BatchBenchConfig(seed=seed))
    res = Results("trees", {"rows": rows, "seed": seed, "bundle": str(bundle_dir)})
    models = load_bundle(bundle_dir).models.regressors()
    rng = np.random.default_rng(seed)
    table: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="audiencefit-bench-forests-") as tmp:
        cache = Path(tmp)
        for name, model in models.items():
            x = rng.normal(0.0, 2.0, size=(rows, len(model.columns)))
            x[rng.random(x.shape) < 0.05] = np.nan
            booster = model.booster()
            with stopwatch() as compiled_in:
                forest = compile_forest(model.to_text(), cache)
            with stopwatch() as lgb_t:
                expected = booster.predict(x, raw_score=True, num_threads=1)
            with stopwatch() as ours_t:
                got = forest.predict(x, 1)
            small = np.ascontiguousarray(x[:SMALL_ROWS])
            with stopwatch() as lgb_small:
                for _ in range(SMALL_REPEATS):
                    booster.predict(small, raw_score=True, num_threads=1)
            with stopwatch() as ours_small:
                for _ in range(SMALL_REPEATS):
                    forest.predict(small, 1)
            table.append(
                {
                    "model": name,
                    "trees": int(booster.num_trees()),
                    "compile_s": compiled_in["s"],
                    "lightgbm_us_per_row": _per_row_us(lgb_t["s"], rows),
                    "compiled_us_per_row": _per_row_us(ours_t["s"], rows),
                    "speedup": lgb_t["s"] / ours_t["s"] if ours_t["s"] > 0 else float("nan"),
                    "identical": bool(np.array_equal(expected, got)),
                    "lightgbm_ms_3000_rows": lgb_small["s"] / SMALL_REPEATS * 1e3,
                    "compiled_ms_3000_rows": ours_small["s"] / SMALL_REPEATS * 1e3,
                }
            )
    with tempfile.TemporaryDirectory(prefix="audiencefit-bench-forests-") as tmp:
        cold_set = load_bundle(bundle_dir).models
        with stopwatch() as cold:
            cold_set.compile(Path(tmp), workers=os.cpu_count() or 1)
        warm_set = load_bundle(bundle_dir).models
        with stopwatch() as warm:
            warm_set.compile(Path(tmp))
    res.results |= {"models": table, "bundle_compile_cold_s": cold["s"], "bundle_compile_warm_s": warm["s"]}
    print_table(
        f"tree inference, one thread, {rows:,} rows with 5% NaN ({bundle_dir.name})",
        ("model", "trees", "LightGBM µs/row", "compiled µs/row", "speed-up", "identical", "3,000 rows ms", "compile s"),
        [
            (
                r["model"],
                r["trees"],
                fmt(r["lightgbm_us_per_row"], ".2f"),
                fmt(r["compiled_us_per_row"], ".2f"),
                f"×{r['speedup']:.1f}",
                "yes" if r["identical"] else "NO",
                f"{r['lightgbm_ms_3000_rows']:.1f} → {r['compiled_ms_3000_rows']:.1f}",
                fmt(r["compile_s"], ".1f"),
            )
            for r in table
        ],
        caption=f"whole bundle compiled cold in {cold['s']:.1f} s on {os.cpu_count()} processes; "
        f"loaded from the cache in {warm['s']:.3f} s",
    )
    lgb_total = sum(r["lightgbm_us_per_row"] for r in table)
    ours_total = sum(r["compiled_us_per_row"] for r in table)
    res.goals.append(
        Goal(
            "trees",
            "compiled models predict LightGBM's numbers bit for bit",
            f"{sum(r['identical'] for r in table)} of {len(table)} models identical on {rows:,} rows",
            all(r["identical"] for r in table),
        )
    )
    res.goals.append(
        Goal(
            "trees",
            "speed-up over LightGBM, all models (information)",
            f"×{lgb_total / ours_total:.1f} ({lgb_total:.2f} → {ours_total:.2f} µs per row through every model)",
            None,
        )
    )
    console.print(f"trees: bundle compiled cold in {cold['s']:.1f} s, warm {warm['s']:.3f} s")
    return res


def main(argv: list[str] | None = None) -> int:
    """``python -m benchmarks.trees [--rows N]``: the tree benchmark on its own."""
    import argparse

    from benchmarks.common import conclude

    parser = argparse.ArgumentParser(prog="python -m benchmarks.trees", description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=200_000, help="rows of random features per model")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--bundle", type=Path, default=None, help="bundle directory (default: the batch benchmark's)")
    args = parser.parse_args(argv)
    return conclude(run_trees(args.rows, args.seed, args.bundle))


if __name__ == "__main__":
    raise SystemExit(main())
