"""``make bench``: every benchmark, then a summary of each goal with the measured figure and PASS/FAIL.

Run: ``.venv/bin/python -m benchmarks.run [--only features,index,retrieval,embed,service] [--quick]``

- ``features``: ``audiencefit features build`` on the 5,000-creator world (seed 7), cold and warm.
- ``retrieval``: retrieval quality against the baselines and 2-segment search latency on that feature set.
- ``index``: flat / IVF / HNSW at 100k and 1M synthetic creators, with filters, and parameter sweeps.
- ``embed``: the embedding backend comparison (``benchmarks.embed``).
- ``service``: the running service (``audiencefit serve``, front + workers) under the asyncio load generator on the
  100k-creator world: 1 and 16 clients, 100 req/s over 16 clients, repeat and novel briefs, the peer's way
  (``benchmarks.service``; the first run prepares the world, features, bundle and index: minutes).
- ``features-large`` (only when asked for, with ``--creators N``): a cold build of an N-creator world, 30-min limit.
- ``batch`` (only when asked for): ``audiencefit score`` of a ``--batch-creators``-creator world (default 100k) ×
  20 segments, local and Ray, pairs/s and peak memory (``benchmarks.batch``; preparing the world takes minutes).
- ``trees`` (only when asked for): LightGBM's predictor vs the compiled tree models on the batch benchmark's
  bundle: rows/s, bit-identical predictions, compile time (``benchmarks.trees``).

``--quick`` shrinks everything (500-creator world, 20k vectors) to check that the benchmarks run. Results go to
``<data_dir>/bench/<name>.json`` and ``summary.json``; see ``docs/benchmarks.md``. The exit code is 1 when a
goal fails or a benchmark crashes (``--no-fail`` reports without failing).
"""

from __future__ import annotations

import argparse
import json
import os
import time
import traceback
from collections.abc import Callable, Sequence
from dataclasses import asdict
from datetime import UTC, datetime
from pathlib import Path

from benchmarks.common import Goal, Results, bench_dir, console, machine_info, print_goals, write_results

DEFAULT_ONLY = ("features", "retrieval", "index", "embed", "service")
KNOWN = (*DEFAULT_ONLY, "features-large", "batch", "trees")
RUN_ORDER = ("features", "features-large", "retrieval", "index", "embed", "service", "batch", "trees")


def _ints(text: str) -> tuple[int, ...]:
    return tuple(int(x.replace("_", "")) for x in text.split(",") if x.strip())


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.run", description=__doc__.split("\n\n")[0])
    parser.add_argument("--only", default=",".join(DEFAULT_ONLY), help=f"comma-separated subset of {', '.join(KNOWN)}")
    parser.add_argument("--quick", action="store_true", help="small sizes: 500-creator world, 20k index vectors")
    parser.add_argument("--embedder", default=None, help="embedding backend for features build (default: settings)")
    parser.add_argument("--seed", type=int, default=7, help="seed of the generated world and the synthetic vectors")
    parser.add_argument("--creators", type=int, default=None, help="world size (features-large needs it)")
    parser.add_argument(
        "--features-timeout",
        type=float,
        default=360.0,
        help="stop a features build after this many seconds (default: twice the 3-minute cold target; 0: no limit)",
    )
    parser.add_argument("--batch-creators", type=int, default=100_000, help="batch: world size scored (default 100000)")
    parser.add_argument("--index-sizes", type=_ints, default=None, help="index sizes (default 100000,1000000)")
    parser.add_argument("--queries", type=int, default=256, help="index benchmark queries (≥ 200 for percentiles)")
    parser.add_argument("--hnsw-max", type=int, default=200_000, help="build HNSW only up to this many vectors")
    parser.add_argument("--ivf-nlist", type=int, default=None, help="IVF nlist (default: the settings)")
    parser.add_argument(
        "--ivf-nlist-1m", type=int, default=None, help="IVF nlist for the 1M build only (default: --ivf-nlist)"
    )
    parser.add_argument("--sweep-nlist", type=_ints, default=(), help="extra IVF builds at the largest size")
    parser.add_argument("--vectors", choices=("topics", "demo"), default="topics", help="index benchmark data")
    parser.add_argument("--repeats", type=int, default=100, help="AudienceSearch.search calls timed")
    parser.add_argument("--tag", default="", help="suffix of the results files: <name>-<tag>.json")
    parser.add_argument("--no-fail", action="store_true", help="exit 0 even when a goal fails")
    args = parser.parse_args(argv)
    args.only = [x.strip() for x in args.only.split(",") if x.strip()]
    unknown = sorted(set(args.only) - set(KNOWN))
    if unknown:
        parser.error(f"unknown benchmark(s) {unknown}; known: {', '.join(KNOWN)}")
    if "features-large" in args.only and not args.creators:
        parser.error("features-large needs --creators N")
    return args


def _features(args: argparse.Namespace) -> Results:
    from benchmarks.features import DEMO_CREATORS, QUICK_CREATORS, FeatureBenchConfig, run_features

    creators = args.creators or (QUICK_CREATORS if args.quick else DEMO_CREATORS)
    return run_features(
        FeatureBenchConfig(
            creators=creators, seed=args.seed, embedder=args.embedder, timeout_s=args.features_timeout or None
        )
    )


def _features_large(args: argparse.Namespace) -> Results:
    from benchmarks.features import run_features_large

    return run_features_large(args.creators, args.seed, args.embedder)


def _batch(args: argparse.Namespace) -> Results:
    from benchmarks.batch import BatchBenchConfig, run_batch_bench

    return run_batch_bench(BatchBenchConfig(creators=args.batch_creators, seed=args.seed))


def _trees(args: argparse.Namespace) -> Results:
    from benchmarks.trees import run_trees

    return run_trees(seed=args.seed)


def _feature_set(args: argparse.Namespace) -> tuple[Path, Path]:
    """The demo feature set (built by the features benchmark, or now when missing) and its world."""
    from audiencefit.settings import get_settings
    from benchmarks.features import DEMO_CREATORS, QUICK_CREATORS, ensure_world, feature_set_path

    creators = args.creators or (QUICK_CREATORS if args.quick else DEMO_CREATORS)
    backend = args.embedder or get_settings().embedder
    world, _ = ensure_world(creators, args.seed)
    path = feature_set_path(creators, args.seed, backend)
    if not (path / "manifest.json").is_file():
        if "features" in args.only:
            # Building it here would repeat the (slow) build that just failed or timed out.
            raise FileNotFoundError(f"{path}: no feature set: the features build did not finish; see its log")
        from features.build import build_feature_set
        from features.embed import get_embedder

        console.print(f"no benchmark feature set at {path}: building it now (not timed)")
        build_feature_set(world, path, embedder=get_embedder(backend))
    return path, world


def _retrieval(args: argparse.Namespace) -> Results:
    from benchmarks.retrieval import RetrievalBenchConfig, run_retrieval

    path, world = _feature_set(args)
    return run_retrieval(RetrievalBenchConfig(features=path, world=world, repeats=args.repeats))


def _index(args: argparse.Namespace) -> Results:
    from benchmarks.index import IndexBenchConfig, run_index

    sizes = args.index_sizes or ((20_000,) if args.quick else (100_000, 1_000_000))
    demo = _feature_set(args) if args.vectors == "demo" else (None, None)
    by_size = {1_000_000: args.ivf_nlist_1m} if args.ivf_nlist_1m else {}
    return run_index(
        IndexBenchConfig(
            sizes=sizes,
            n_queries=args.queries,
            seed=args.seed,
            hnsw_max=args.hnsw_max,
            ivf_nlist=args.ivf_nlist,
            ivf_nlist_by_size=by_size,
            sweep_nlist=args.sweep_nlist,
            vectors=args.vectors,
            demo_features=demo[0],
            demo_world=demo[1],
        )
    )


def _embed(args: argparse.Namespace) -> Results:
    res = Results("embed", {"quick": args.quick})
    try:
        from benchmarks.embed import main as embed_main
    except ImportError as exc:
        res.goals.append(Goal("embed", "embedding backend comparison", f"not run: {exc}", None))
        return res
    argv = ["--n", "500", "--rounds", "1", "--no-process"] if args.quick else []
    res.config["argv"] = argv
    code = embed_main(argv)
    res.goals.append(
        Goal("embed", "embedding backend comparison (python -m benchmarks.embed)", f"exit code {code}", code == 0)
    )
    return res


def _service(args: argparse.Namespace) -> Results:
    from benchmarks.service import run_service

    size = ["--creators", "5000", "--duration", "5", "--peer-requests", "50"] if args.quick else []
    return run_service([*size, "--seed", str(args.seed)])


RUNNERS: dict[str, Callable[[argparse.Namespace], Results]] = {
    "features": _features,
    "features-large": _features_large,
    "retrieval": _retrieval,
    "index": _index,
    "embed": _embed,
    "service": _service,
    "batch": _batch,
    "trees": _trees,
}


def main(argv: Sequence[str] | None = None) -> int:
    """Run the selected benchmarks; print and store the summary. Exit code 1 on a failed goal or a crash."""
    args = parse_args(argv)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    from audiencefit.logs import configure_logging

    configure_logging("WARNING")
    started = time.perf_counter()
    goals: list[Goal] = []
    timings: dict[str, float] = {}
    order = [name for name in RUN_ORDER if name in args.only]
    for name in order:
        console.rule(f"benchmark: {name}")
        t0 = time.perf_counter()
        try:
            res = RUNNERS[name](args)
            res.config["quick"] = args.quick
            res.name = f"{res.name}-{args.tag}" if args.tag else res.name
            path = write_results(res)
            goals += res.goals
            console.print(f"{name}: results in {path}")
        except Exception as exc:  # one broken benchmark must not hide the others' figures
            console.print(traceback.format_exc())
            goals.append(Goal(name, "benchmark ran", f"crashed: {type(exc).__name__}: {exc}"[:200], False))
        timings[name] = time.perf_counter() - t0
    console.rule("summary")
    print_goals(goals, title=f"make bench summary ({'quick' if args.quick else 'full'}; {', '.join(order)})")
    console.print(
        "time per benchmark: "
        + ", ".join(f"{k} {v / 60:.1f} min" for k, v in timings.items())
        + f"; total {(time.perf_counter() - started) / 60:.1f} min"
    )
    summary = {
        "finished_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "argv": list(argv) if argv is not None else None,
        "quick": args.quick,
        "benchmarks": order,
        "seconds": timings,
        "machine": machine_info(),
        "goals": [asdict(g) | {"verdict": g.verdict} for g in goals],
    }
    path = bench_dir() / (f"summary-{args.tag}.json" if args.tag else "summary.json")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(summary, indent=2), encoding="utf-8")
    failed = any(g.passed is False for g in goals)
    return 0 if args.no_fail or not failed else 1


if __name__ == "__main__":
    raise SystemExit(main())
