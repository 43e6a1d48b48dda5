"""``make bench``: every benchmark, then a summary of each goal with the measured figure and PASS/FAIL.

Run: ``.venv/bin/python -m benchmarks.run [--only features,index,retrieval,embed,service] [--quick]``

- ``features``: ``audiencefit features build`` on the 5,000-creator world (seed 7), cold and warm.
- ``retrieval``: retrieval quality against the baselines and 2-segment search latency on that feature set.
- ``index``: flat / IVF / HNSW at 100k and 1M synthetic creators, with filters, and parameter sweeps.
- ``embed``: the embedding backend comparison (``benchmarks.embed``).
- ``service``: the running service (``audiencefit serve``, front + workers) under the asyncio load generator on the
  100k-creator world: 1 and 16 clients, 100 req/s over 16 clients, repeat and novel briefs, the peer's way
  (``benchmarks.service``; the first run prepares the world, features, bundle and index: minutes).
- ``features-large`` (only when asked for, with ``--creators N[,N...]`` or ``--world DIR``): a cold build per world
  size, 60-min limit each; goals 1M creators within 60 min and peak RSS ≤ 8 GB; creators/s, texts/s, peak RSS.
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


def _sizes(text: str) -> tuple[int, ...]:
    """``--creators``: one size or several, comma-separated; each a positive integer (``1_000_000`` allowed)."""
    try:
        sizes = _ints(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a comma-separated list of integers: {text!r}") from None
    if not sizes or any(n < 1 for n in sizes):
        raise argparse.ArgumentTypeError(f"world sizes must be positive integers, got {text!r}")
    return sizes


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.run", description=__doc__.split("\n\n")[0])
    parser.add_argument("--only", default=",".join(DEFAULT_ONLY), help=f"comma-separated subset of {', '.join(KNOWN)}")
    parser.add_argument("--quick", action="store_true", help="small sizes: 500-creator world, 20k index vectors")
    parser.add_argument("--embedder", default=None, help="embedding backend for features build (default: settings)")
    parser.add_argument("--seed", type=int, default=7, help="seed of the generated world and the synthetic vectors")
    parser.add_argument(
        "--creators",
        type=_sizes,
        action="append",
        default=None,
        help="world size; features-large takes several (--creators 100000,300000,1000000 or the flag repeated); "
        "service and batch serve and score that world, reusing the feature set features-large kept for it",
    )
    parser.add_argument(
        "--world",
        type=Path,
        default=None,
        help="features-large: build this existing world instead of generating one (e.g. /tmp/i20w/w1m)",
    )
    parser.add_argument(
        "--partition-creators",
        type=int,
        default=None,
        help="features-large: creators per partition of the build (sets AUDIENCEFIT_FEATURE_PARTITION_CREATORS)",
    )
    parser.add_argument(
        "--features-timeout",
        type=float,
        default=None,
        help=(
            "stop a features build after this many seconds (default: 360, twice the 3-minute cold target; "
            "features-large: 3660, the 60-minute goal and a minute's grace; 0: no limit)"
        ),
    )
    parser.add_argument(
        "--batch-creators", type=int, default=100_000, help="batch: world size scored (default 100000; --creators wins)"
    )
    parser.add_argument(
        "--batch-runs",
        default="local,ray,rerun,single",
        help="batch: which scoring runs (local, ray, rerun, single; the goal's is single), e.g. single at 1M",
    )
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
    sizes = tuple(n for group in args.creators or () for n in group)
    args.sizes = sizes
    args.creators = sizes[0] if sizes else None
    if "features-large" in args.only and not sizes and args.world is None:
        parser.error("features-large needs --creators N[,N...] or --world DIR")
    if len(sizes) > 1 and set(args.only) - {"features-large"}:
        parser.error("several --creators sizes are for features-large alone; run the other benchmarks separately")
    if args.world is not None and "features-large" not in args.only:
        parser.error("--world is for features-large")
    if args.world is not None and len(sizes) > 1:
        parser.error("--world is one world: give at most one --creators with it")
    if args.partition_creators is not None and args.partition_creators < 1:
        parser.error(f"--partition-creators must be at least 1, got {args.partition_creators}")
    return args


def _timeout(args: argparse.Namespace, default: float) -> float | None:
    """The build time limit: ``--features-timeout`` when given (0: none), else ``default``."""
    if args.features_timeout is None:
        return default
    return args.features_timeout or None


def _features(args: argparse.Namespace) -> Results:
    from benchmarks.features import DEMO_CREATORS, QUICK_CREATORS, FeatureBenchConfig, run_features

    creators = args.creators or (QUICK_CREATORS if args.quick else DEMO_CREATORS)
    return run_features(
        FeatureBenchConfig(creators=creators, seed=args.seed, embedder=args.embedder, timeout_s=_timeout(args, 360.0))
    )


def _features_large(args: argparse.Namespace) -> list[Results]:
    from benchmarks.features import LARGE_LIMIT_S, LargeBenchConfig, run_features_large

    return run_features_large(
        LargeBenchConfig(
            sizes=args.sizes,
            world=args.world,
            seed=args.seed,
            embedder=args.embedder,
            timeout_s=_timeout(args, LARGE_LIMIT_S + 60.0),
            partition_creators=args.partition_creators,
        )
    )


def _batch(args: argparse.Namespace) -> Results:
    from benchmarks.batch import BatchBenchConfig, run_batch_bench

    runs = tuple(r.strip() for r in args.batch_runs.split(",") if r.strip())
    creators = args.creators or args.batch_creators
    return run_batch_bench(BatchBenchConfig(creators=creators, seed=args.seed, runs=runs))


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
        from audiencefit.features.build import build_feature_set
        from audiencefit.features.embed import get_embedder

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
    if args.creators and not args.quick:
        size = ["--creators", str(args.creators)]
    return run_service([*size, "--seed", str(args.seed)])


RUNNERS: dict[str, Callable[[argparse.Namespace], Results | list[Results]]] = {
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
            ran = RUNNERS[name](args)
            for res in ran if isinstance(ran, list) else [ran]:
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
