"""What the recommendation log and exploration cost a request: ``POST /v1/recommendations``' work, in process.

Run: ``.venv/bin/python -m benchmarks.reclog --features DIR --bundle DIR [--requests 400] [--k 20]``

The service's state is loaded once (``audiencefit.serving.app.load_state``: the feature set, its indexes, the query
embedder, the bundle, and the recommendation log at ``AUDIENCEFIT_RECOMMENDATION_LOG_URL``, default SQLite under the
data dir). Then the same requests (briefs of :data:`benchmarks.service.BRIEFS`, 1–3 segments, each text embedded once
in a warm-up pass so that embedding does not drown the difference) are answered by ``recommendation_json`` — the
route's whole work: search, score, explain, serialise, and hand the record to the log — in four modes, interleaved
request by request in a rotating order so that drift on a shared machine hits every mode alike:

- ``log off``: no recommendation log (``AUDIENCEFIT_RECOMMENDATION_LOG_ENABLED=false``);
- ``log on``: the default: the record is built and queued, a background thread writes it;
- ``log on + exploration``: ``exploration.share`` = ``--share`` (default 0.2), seeded per request;
- ``log off + exploration``.

Reported: p50/p95/mean latency per mode, the paired differences (log on − off; exploration − none), the time of
building and queueing one record alone, and the writer's throughput (every queued record must be written: the
benchmark fails otherwise). Results go to ``<data_dir>/bench/reclog.json``.
"""

from __future__ import annotations

import argparse
import random
import time
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

import numpy as np

from benchmarks.common import Goal, Results, conclude, console, fmt, latency_ms, print_table

MODES = ("log off", "log on", "log on + exploration", "log off + exploration")


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.reclog", description=__doc__.split("\n\n")[0])
    parser.add_argument("--features", type=Path, required=True, help="feature set directory (with its index/)")
    parser.add_argument("--bundle", type=Path, required=True, help="model bundle directory")
    parser.add_argument("--requests", type=int, default=400, help="requests per mode (default 400)")
    parser.add_argument("--k", type=int, default=20, help="creators per answer (default 20)")
    parser.add_argument("--share", type=float, default=0.2, help="exploration share of the exploring modes")
    parser.add_argument("--seed", type=int, default=7, help="seed of the briefs")
    return parser.parse_args(argv)


def make_requests(n: int, k: int, seed: int) -> list[dict[str, object]]:
    from benchmarks.service import BRIEFS

    rng = random.Random(seed)
    out: list[dict[str, object]] = []
    for _ in range(n):
        texts = rng.sample(BRIEFS, rng.randint(1, 3))
        out.append({"segments": [{"text": t} for t in texts], "k": k, "brand_id": f"brand-{rng.randint(1, 24)}"})
    return out


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    from audiencefit.serving.app import ServeConfig, load_state
    from audiencefit.serving.routes.recommend import recommendation_json
    from audiencefit.serving.schemas import RecommendationRequest
    from audiencefit.settings import get_settings

    settings = get_settings()
    loaded = load_state(settings, ServeConfig(features_dir=args.features, bundle_source=args.bundle)).state
    model = loaded.model if loaded is not None else None
    log = loaded.reclog if loaded is not None else None
    if loaded is None or model is None or log is None:
        raise SystemExit("the bundle did not load, or the recommendation log is disabled: nothing to compare")
    bodies = make_requests(args.requests, args.k, args.seed)
    plain = [RecommendationRequest.model_validate(b) for b in bodies]
    exploring = [
        RecommendationRequest.model_validate(b | {"exploration": {"share": args.share, "seed": i}})
        for i, b in enumerate(bodies)
    ]
    state = replace(loaded, reclog=None)
    for req in plain:  # warm-up: every text embedded and cached, every code path run once
        recommendation_json(state, model, req)
    times: dict[str, list[float]] = {m: [] for m in MODES}
    before = log.counts()
    for i in range(args.requests):
        for j in range(len(MODES)):
            mode = MODES[(i + j) % len(MODES)]
            state = replace(loaded, reclog=log if mode.startswith("log on") else None)
            req = exploring[i] if mode.endswith("exploration") else plain[i]
            started = time.perf_counter()
            recommendation_json(state, model, req)
            times[mode].append(time.perf_counter() - started)
    state = loaded
    flush_started = time.perf_counter()
    flushed = log.flush(60)
    flush_s = time.perf_counter() - flush_started
    after = log.counts()
    queued = 2 * args.requests
    written = after["written"] - before["written"]

    # Building and queueing one record alone (what the log adds to a request), on a queue with room.
    from audiencefit.serving.pipeline import recommend, shown_record

    result = recommend(state, model, plain[0])
    reps = 2_000
    started = time.perf_counter()
    records = [shown_record(state, model, plain[0], result, f"bench-{i}-{time.time_ns()}") for i in range(reps)]
    build_us = (time.perf_counter() - started) / reps * 1e6
    started = time.perf_counter()
    for record in records:
        log.submit(record)
    submit_us = (time.perf_counter() - started) / reps * 1e6
    log.flush(120)
    write_s = time.perf_counter() - started  # from the first submit until every record is written
    log.close()

    stats = {m: latency_ms(times[m]) for m in MODES}
    paired = {
        "log on - off": np.array(times["log on"]) - np.array(times["log off"]),
        "exploration - none (log on)": np.array(times["log on + exploration"]) - np.array(times["log on"]),
    }
    diffs = {
        name: {"median_ms": float(np.median(d) * 1000), "mean_ms": float(np.mean(d) * 1000)}
        for name, d in paired.items()
    }
    print_table(
        f"POST /v1/recommendations work, in process ({args.requests} requests per mode, k={args.k})",
        ("mode", "p50 ms", "p95 ms", "mean ms"),
        [(m, fmt(s["p50"]), fmt(s["p95"]), fmt(s["mean"])) for m, s in stats.items()],
    )
    print_table(
        "Paired differences (same request)",
        ("difference", "median ms", "mean ms"),
        [(name, fmt(d["median_ms"], ".3f"), fmt(d["mean_ms"], ".3f")) for name, d in diffs.items()],
    )
    console.print(
        f"one record built: {build_us:.1f} µs, queued: {submit_us:.1f} µs; written by the log: {written} of {queued} "
        f"(flushed in {flush_s:.2f} s); {reps} more written in {write_s:.2f} s "
        f"({reps / max(write_s, 1e-9):,.0f} records/s, backend {log.backend}); counts {log.counts()}"
    )
    overhead = diffs["log on - off"]["median_ms"]
    res = Results(
        name="reclog",
        config={"requests": args.requests, "k": args.k, "share": args.share, "backend": log.backend},
        results={
            "latency_ms": stats,
            "paired_ms": diffs,
            "build_us": build_us,
            "submit_us": submit_us,
            "written": written,
            "queued": queued,
            "writer_records_per_s": reps / max(write_s, 1e-9),
            "counts": log.counts(),
        },
        goals=[
            Goal("reclog", "what the log adds to the median request (reported)", f"{overhead:.3f} ms", None),
            Goal("reclog", "every queued record written", f"{written} of {queued}", flushed and written == queued),
        ],
    )
    return conclude(res)


if __name__ == "__main__":
    raise SystemExit(main())
