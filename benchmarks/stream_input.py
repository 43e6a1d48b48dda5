"""The input of the feature build, whole (``load_dataset``) vs streamed into creator partitions (``stream_partitions``).

Run one mode per process, so that each peak RSS is its own (wrap it in ``/usr/bin/time -v`` for the kernel's
figure; the JSON line printed at the end has ``ru_maxrss`` too)::

    python -m benchmarks.stream_input --data /tmp/i20s/w100k --mode load
    python -m benchmarks.stream_input --data /tmp/i20s/w100k --mode stream --spill /tmp/i20s/spill \\
        --partition-creators 25000 --chunk-rows 250000

``stream`` also loads every partition once (what a partitioned build does) and reports the largest partition's
rows; the spill files are removed at the end.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import resource
import time
from collections.abc import Sequence
from pathlib import Path

from audiencefit.features.dataset import load_dataset
from audiencefit.features.stream_input import DEFAULT_CHUNK_BYTES, DEFAULT_CHUNK_ROWS, stream_partitions


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.stream_input", description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, required=True, help="raw data directory (creators, posts, followers)")
    parser.add_argument(
        "--mode", choices=("load", "stream"), required=True, help="load: load_dataset; stream: stream_partitions"
    )
    parser.add_argument("--spill", type=Path, default=None, help="spill directory for --mode stream (missing/empty)")
    parser.add_argument("--partition-creators", type=int, default=25_000, help="creators per partition (stream)")
    parser.add_argument("--chunk-rows", type=int, default=DEFAULT_CHUNK_ROWS, help="parquet rows per chunk (stream)")
    parser.add_argument(
        "--chunk-bytes", type=int, default=DEFAULT_CHUNK_BYTES, help="CSV / JSON Lines bytes per chunk (stream)"
    )
    parser.add_argument("--progress", action="store_true", help="show a progress bar per table (stream)")
    args = parser.parse_args(argv)
    if args.mode == "stream" and args.spill is None:
        parser.error("--mode stream needs --spill DIR")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    secret = os.environ.get("AUDIENCEFIT_FOLLOWER_ID_SECRET", "benchmark-secret")
    started = time.perf_counter()
    result: dict[str, object] = {"mode": args.mode, "data": str(args.data)}
    if args.mode == "load":
        dataset = load_dataset(args.data, secret=secret, tables=["followers"])
        result["rows"] = {
            "creators": dataset.creators.height,
            "posts": dataset.posts.height,
            "followers": dataset.followers.height if dataset.followers is not None else 0,
        }
        result["seconds"] = round(time.perf_counter() - started, 2)
    else:
        with stream_partitions(
            args.data,
            args.spill,
            secret=secret,
            partition_creators=args.partition_creators,
            chunk_rows=args.chunk_rows,
            chunk_bytes=args.chunk_bytes,
            progress=args.progress,
        ) as source:
            result["seconds_stream"] = round(time.perf_counter() - started, 2)
            largest = 0
            for i in range(source.n_partitions):
                part = source.load(i)
                followers = part.followers.height if part.followers is not None else 0
                largest = max(largest, part.creators.height + part.posts.height + followers)
            result["seconds"] = round(time.perf_counter() - started, 2)
            result.update(
                rows=dict(source.row_counts),
                partitions=source.n_partitions,
                chunks=dict(source.chunks),
                read_whole=list(source.read_whole),
                largest_partition_rows=largest,
                partition_creators=args.partition_creators,
                chunk_rows=args.chunk_rows,
                chunk_bytes=args.chunk_bytes,
            )
    result["ru_maxrss_mb"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)
    print(json.dumps(result))  # noqa: T201  (the benchmark's one result line)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
