"""What a query text never seen before costs: each query transformer embedding brief texts one at a time.

Run: ``.venv/bin/python -m benchmarks.query_texts [--n 300] [--rounds 3]``

The service embeds a new segment or brand text alone, during its request (``audiencefit.models.query.QueryVectors``), so
the figure that matters is CPU per text at batch size one, not throughput in batches. For each query model of the
``query_model`` setting (:data:`audiencefit.features.embed_backends.QUERY_MODELS`) and each thread count, ``--n`` novel
brief texts (the service benchmark's briefs with a place, an age range and a campaign number added) are embedded one at
a time after a warm-up; reported: process CPU (user + system) and wall milliseconds per text, the best of
``--rounds`` interleaved passes, and each model's mean cosine to fp32 on these texts. Results go to
``<data_dir>/bench/query_texts.json``.
"""

from __future__ import annotations

import argparse
import random
import resource
import time
from typing import Any

import numpy as np

from benchmarks.common import Goal, Results, conclude, fmt, print_table
from benchmarks.service import BRIEFS, Novel


def cpu_seconds() -> float:
    """This process's user + system CPU seconds."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def novel_texts(n: int, seed: int) -> list[str]:
    """``n`` brief texts never seen before, as the service benchmark's novel briefs make them."""
    rnd, novel = random.Random(seed), Novel()
    return [novel(rnd, rnd.choice(BRIEFS)) for _ in range(n)]


def one_at_a_time(embedder: Any, texts: list[str]) -> tuple[float, float, np.ndarray]:
    """CPU and wall milliseconds per text, embedding each text alone; and the vectors."""
    cpu, wall = cpu_seconds(), time.perf_counter()
    vectors = np.vstack([embedder.embed([t]) for t in texts])
    return (cpu_seconds() - cpu) / len(texts) * 1e3, (time.perf_counter() - wall) / len(texts) * 1e3, vectors


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--n", type=int, default=300, help="novel brief texts per pass")
    parser.add_argument("--rounds", type=int, default=3, help="interleaved passes; each setting's best counts")
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2], help="onnxruntime intra-op threads")
    parser.add_argument("--seed", type=int, default=7, help="seed of the texts")
    args = parser.parse_args(argv)
    if args.n < 1 or args.rounds < 1 or min(args.threads) < 1:
        parser.error("--n, --rounds and --threads must be at least 1")
    from audiencefit.features.embed_backends import QUERY_MODELS, load_embedder
    from audiencefit.settings import get_settings

    settings = get_settings()
    texts = novel_texts(args.n, args.seed)
    embedders = {
        (model, n_threads): load_embedder(backend, settings, threads=n_threads)
        for model, backend in QUERY_MODELS.items()
        for n_threads in args.threads
    }
    for embedder in embedders.values():
        embedder.embed(texts[:20])  # warm-up: first runs allocate
    best: dict[tuple[str, int], tuple[float, float]] = {}
    vectors: dict[str, np.ndarray] = {}
    for _ in range(args.rounds):
        for key, embedder in embedders.items():
            cpu_ms, wall_ms, vecs = one_at_a_time(embedder, texts)
            old = best.get(key)
            best[key] = (min(cpu_ms, old[0]), min(wall_ms, old[1])) if old else (cpu_ms, wall_ms)
            vectors[key[0]] = vecs
    reference = vectors["fp32"]
    res = Results("query_texts", {"n": args.n, "rounds": args.rounds, "threads": args.threads, "seed": args.seed})
    rows = []
    for (model, n_threads), (cpu_ms, wall_ms) in best.items():
        cosine = float(np.mean(np.sum(vectors[model] * reference, axis=1)))
        res.results[f"{model}-{n_threads}"] = {"cpu_ms_per_text": cpu_ms, "wall_ms_per_text": wall_ms, "cosine": cosine}
        rows.append((model, n_threads, fmt(cpu_ms, ".2f"), fmt(wall_ms, ".2f"), fmt(cosine, ".4f")))
    print_table(
        "query texts embedded one at a time",
        ("query model", "threads", "CPU ms/text", "wall ms/text", "mean cosine to fp32"),
        rows,
        caption=f"{args.n} novel brief texts, best of {args.rounds} passes",
    )
    one = min(args.threads)
    ratio = best[("fp32", one)][0] / best[("int8", one)][0]
    res.results["fp32_over_int8_cpu"] = ratio
    res.goals.append(
        Goal("query_texts", f"CPU per novel text, int8 against fp32 at {one} thread(s) (information)",
             f"{best[('int8', one)][0]:.2f} vs {best[('fp32', one)][0]:.2f} ms: {ratio:.1f}× less", None)
    )  # fmt: skip
    return conclude(res)


if __name__ == "__main__":
    raise SystemExit(main())
