"""Feature-set hot swap under load (#20 §3): ``POST /admin/reload`` between two feature sets while threads send
recommendations to the same app; how long a swap takes, the process's memory while two sets are resident, and
whether any request failed or was answered with creators of another set.

Run: ``python -m benchmarks.feature_swap --features A --other B --bundle BUNDLE [--swaps 6] [--threads 3]``
(both feature sets with their ``index/`` built, embedded like the bundle's training set; ``B`` must lie under a
feature-set reload root, by default the directory holding ``A``). The app runs in this process (FastAPI's test
client, one thread per load thread), as the e2e test does, so the memory measured is one service process's.
"""

from __future__ import annotations

import argparse
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from benchmarks.common import Goal, Results, conclude, console, fmt, latency_ms, print_table

BODY = {"segments": [{"text": "fitness fans who lift weights and run"}, {"text": "home cooks who bake"}], "k": 20}
API_KEY, ADMIN_KEY = "bench-key-0123456789", "bench-admin-0123456789"


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.feature_swap", description=__doc__.split("\n\n")[0])
    parser.add_argument("--features", type=Path, required=True, help="the feature set the service starts with")
    parser.add_argument("--other", type=Path, required=True, help="the feature set swapped in and out")
    parser.add_argument("--bundle", type=Path, required=True, help="a model bundle compatible with both")
    parser.add_argument("--swaps", type=int, default=6, help="reloads, alternating between the two sets")
    parser.add_argument("--threads", type=int, default=3, help="threads sending recommendations throughout")
    parser.add_argument("--pause", type=float, default=2.0, help="seconds of load between two swaps")
    return parser.parse_args(argv)


def rss_mb() -> float:
    """This process's resident memory, MB (Linux /proc)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


class Sampler(threading.Thread):
    """Samples the process's RSS every 20 ms; ``peak`` between :meth:`mark` calls."""

    def __init__(self) -> None:
        super().__init__(daemon=True)
        self.stop = threading.Event()
        self.peak = 0.0

    def mark(self) -> float:
        peak, self.peak = self.peak, rss_mb()
        return peak

    def run(self) -> None:
        while not self.stop.wait(0.02):
            self.peak = max(self.peak, rss_mb())


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    from fastapi.testclient import TestClient

    from audiencefit.features.featureset import load_feature_set
    from audiencefit.serving.app import create_app
    from audiencefit.settings import Settings

    sets = {}
    for path in (args.features, args.other):
        fs = load_feature_set(path)
        sets[fs.feature_set_id] = {
            cid: (h, f) for cid, h, f in fs.creators.select("creator_id", "handle", "followers").iter_rows()
        }
    ids = list(sets)
    del fs
    settings = Settings(  # the rest from the environment; rate limits that never refuse the load
        api_keys=[API_KEY],
        admin_api_keys=[ADMIN_KEY],
        rate_limit_per_second=100_000.0,
        rate_limit_burst=100_000,
        rate_limit_plans_per_second=100_000.0,
        rate_limit_plans_burst=100_000,
        rate_limit_address_per_second=100_000.0,
        rate_limit_address_burst=100_000,
    )
    sampler = Sampler()
    sampler.start()
    before_start = rss_mb()
    app = create_app(settings, features_dir=args.features, bundle_source=args.bundle)
    latencies: list[float] = []
    failures: list[str] = []
    answered: dict[str, int] = {}
    stop = threading.Event()
    lock = threading.Lock()

    with TestClient(app, raise_server_exceptions=False) as client:
        client.headers["X-API-Key"] = API_KEY
        started_rss = rss_mb()

        def drive() -> None:
            while not stop.is_set():
                t0 = time.perf_counter()
                resp = client.post("/v1/recommendations", json=BODY)
                took = time.perf_counter() - t0
                with lock:
                    latencies.append(took)
                    if resp.status_code != 200:
                        failures.append(f"{resp.status_code}: {resp.text[:120]}")
                        continue
                    body = resp.json()
                    fs_id = body["versions"]["feature_set_id"]
                    answered[fs_id] = answered.get(fs_id, 0) + 1
                    rows = sets.get(fs_id, {})
                    for c in body["creators"]:
                        if rows.get(c["creator_id"]) != (c["handle"], c["followers"]):
                            failures.append(f"{c['creator_id']} not in {fs_id}")

        threads = [threading.Thread(target=drive, daemon=True) for _ in range(args.threads)]
        for t in threads:
            t.start()
        time.sleep(args.pause)
        swaps: list[dict[str, Any]] = []
        for i in range(args.swaps):
            body = {"feature_set_path": str(args.other)} if i % 2 == 0 else {"feature_set": "configured"}
            sampler.mark()
            rss_before = rss_mb()
            t0 = time.perf_counter()
            resp = client.post("/admin/reload", json=body, headers={"X-API-Key": ADMIN_KEY})
            seconds = time.perf_counter() - t0
            peak = sampler.mark()
            swaps.append(
                {
                    "to": resp.json().get("serving_feature_set_id"),
                    "status": resp.status_code,
                    "seconds": seconds,
                    "rss_before_mb": rss_before,
                    "rss_peak_mb": peak,
                }
            )
            time.sleep(args.pause)
        stop.set()
        for t in threads:
            t.join(timeout=60)
        after_rss = rss_mb()
    sampler.stop.set()

    rows = [
        [
            i + 1,
            s["to"][:12] if s["to"] else "–",
            s["status"],
            fmt(s["seconds"], ".2f"),
            fmt(s["rss_before_mb"], ".0f"),
            fmt(s["rss_peak_mb"], ".0f"),
        ]
        for i, s in enumerate(swaps)
    ]
    print_table("feature set swaps", ["swap", "to", "status", "seconds", "RSS before MB", "RSS peak MB"], rows)
    lat = latency_ms(latencies)
    console.print(
        f"requests {len(latencies)}, failed or inconsistent {len(failures)}, answered per set "
        f"{ {k[:12]: v for k, v in answered.items()} }; latency p50 {lat['p50']:.1f} ms, p99 {lat['p99']:.1f} ms; "
        f"RSS: before start {before_start:.0f} MB, started {started_rss:.0f} MB, after {after_rss:.0f} MB"
    )
    res = Results(
        "feature_swap",
        {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()},
        {
            "swaps": swaps,
            "requests": len(latencies),
            "failures": failures[:20],
            "failed": len(failures),
            "answered": answered,
            "latency_ms": lat,
            "rss_started_mb": started_rss,
            "rss_after_mb": after_rss,
        },
    )
    ok = len(failures) == 0 and all(s["status"] == 200 for s in swaps) and set(answered) == set(ids)
    res.goals.append(Goal("feature_swap", "zero failed requests across feature set swaps", f"{len(failures)}", ok))
    return conclude(res)


if __name__ == "__main__":
    raise SystemExit(main())
