"""Embedding backends against the torch fp32 baseline on the same texts, in the same run.

Run: ``.venv/bin/python -m benchmarks.embed [--n 2000] [--rounds 3] [--backends ...]``

For each backend: texts/s (best of ``rounds`` interleaved passes: the machine is shared, and the best pass is the
one least disturbed by other work), its ratio to torch fp32, mean and 5th-percentile cosine to the torch
vectors, and neighbour agreement (the share of each text's 10 nearest torch neighbours that are among its 10
nearest under the backend). Then, per backend, a fresh Python process that loads it and embeds one query: wall
time, import+load time, peak RSS, and whether torch got imported (the query is embedded by the backend's query
side, as the service does). The last line is ``speedup N.Nx`` for the default backend (the ``embedder`` setting)
on stored texts, the texts the feature pipeline embeds by the million; its query side is reported beside it.
Which backend may be the default is decided by the retrieval evaluation (``audiencefit.training.retrieval_eval``), not
by cosine agreement: see docs/benchmarks.md.

Before that, the end-to-end figure for the default backend (``--e2e-backends`` for others): texts/s and chars/s of
``audiencefit.features.embed.embed_texts`` (what the feature build calls: preparation, de-duplication, the backend; no
embedding cache, the preparation memo and the backend's word cache cleared before every round) on real-length captions
*as written* and, separately, on short texts (bios), with preparation alone and the backend alone beside it.
``--e2e-only`` stops there.

On a busy shared machine torch's two-thread pool slows down far more than onnxruntime's, which inflates the
ratios; ``--threads 1`` compares one core against one core and is much less disturbed by other work.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from collections.abc import Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

REFERENCE = "minilm-torch"
DEFAULT_BACKENDS = (
    "minilm-onnx-fp32",
    "minilm-onnx-int8",
    "minilm-static",
    "minilm-static-pca256",
    "minilm-hybrid",
    "minilm-aligned",
    "minilm-aligned:query",
)
QUERY_SUFFIX = ":query"
MIN_COSINE = 0.95
NEIGHBOURS = 10

FloatMatrix = npt.NDArray[np.float32]


def load_backend(backend: str, batch_size: int = 64, threads: int | None = None) -> Any:
    """A backend of :mod:`audiencefit.features.embed_backends`, or any id registered with
    ``audiencefit.features.embed``.

    ``threads`` caps onnxruntime's and torch's intra-op threads (None: one per core). ``<backend>:query`` is the
    backend's query side (``audiencefit.features.embed.for_queries``; itself for symmetric backends).
    """
    from audiencefit.features.embed import for_queries
    from audiencefit.features.embed_backends import SPECS, load_embedder

    if backend.endswith(QUERY_SUFFIX):
        return for_queries(load_backend(backend.removesuffix(QUERY_SUFFIX), batch_size, threads))
    if backend in SPECS:
        return load_embedder(backend, batch_size=batch_size, threads=threads)
    from audiencefit.features.embed import get_embedder

    embedder = get_embedder(backend)
    if threads is not None and "torch" in sys.modules:
        import torch

        torch.set_num_threads(threads)
    return embedder


def neighbour_agreement(reference: FloatMatrix, other: FloatMatrix, k: int = NEIGHBOURS) -> float:
    """Mean share of each row's ``k`` nearest rows (cosine, self excluded) under ``reference`` found under ``other``."""
    n = len(reference)
    k = min(k, n - 1)
    if k < 1:
        return float("nan")

    def top_k(vectors: FloatMatrix) -> npt.NDArray[np.int64]:
        sims = vectors @ vectors.T
        np.fill_diagonal(sims, -np.inf)
        return np.argpartition(-sims, k - 1, axis=1)[:, :k]

    ref_nn, other_nn = top_k(reference), top_k(other)
    hits = [len(set(a.tolist()) & set(b.tolist())) for a, b in zip(ref_nn, other_nn, strict=True)]
    return float(np.mean(hits) / k)


def benchmark_backends(
    texts: Sequence[str],
    backend_ids: Sequence[str],
    *,
    reference: str = REFERENCE,
    rounds: int = 3,
    batch_size: int = 64,
    threads: int | None = None,
) -> list[dict[str, Any]]:
    """Speed and agreement of each backend against ``reference`` on ``texts``; one dict per backend, reference first.

    Texts are fed as the pipeline feeds them (``audiencefit.features.embed.embed_texts``): longest first, ``batch_size``
    per ``embed`` call. Every call is timed for every backend in turn, ``rounds`` times; a backend's time is the sum
    over calls of its fastest round, which keeps bursts of other work on a shared machine out of the numbers.

    Keys: backend, id, dim, texts_per_s, texts_per_s_median (summing each call's median round instead), speedup
    (vs the reference), mean_cosine and p5_cosine (None when dimensions differ), neighbours (top-10 agreement),
    unit_norm_ok.
    """
    names = [reference, *[b for b in backend_ids if b != reference]]
    embedders = {name: load_backend(name, batch_size, threads) for name in names}
    order = sorted(range(len(texts)), key=lambda i: -len(texts[i]))
    calls = [order[i : i + batch_size] for i in range(0, len(order), batch_size)]
    warm = list(texts[:batch_size])
    for embedder in embedders.values():
        embedder.embed(warm)  # the first call pays for lazy initialisation (thread pools, allocators)
    times = {name: np.zeros((len(calls), max(1, rounds))) for name in names}
    vectors = {name: np.zeros((len(texts), embedders[name].dim), dtype=np.float32) for name in names}
    for r in range(max(1, rounds)):
        for c, rows in enumerate(calls):
            batch = [texts[i] for i in rows]
            for name in names:  # interleaved, so background load hits every backend alike
                started = time.perf_counter()
                out = embedders[name].embed(batch)
                times[name][c, r] = time.perf_counter() - started
                vectors[name][rows] = out
    ref = vectors[reference]
    ref_seconds = float(times[reference].min(axis=1).sum())
    results = []
    for name in names:
        out = vectors[name]
        same_space = out.shape == ref.shape
        cosines = np.sum(out * ref, axis=1) if same_space else None
        best = float(times[name].min(axis=1).sum())
        median = float(np.median(times[name], axis=1).sum())
        results.append(
            {
                "backend": name,
                "id": embedders[name].id,
                "dim": int(out.shape[1]),
                "texts_per_s": len(texts) / best,
                "texts_per_s_median": len(texts) / median,
                "speedup": ref_seconds / best,
                "mean_cosine": None if cosines is None else float(cosines.mean()),
                "p5_cosine": None if cosines is None else float(np.percentile(cosines, 5)),
                "neighbours": neighbour_agreement(ref, out),
                "unit_norm_ok": bool(np.allclose(np.linalg.norm(out, axis=1), 1.0, atol=1e-3)),
            }
        )
    return results


_CHILD = """
import json, re, sys, time
started = time.perf_counter()
backend = sys.argv[1]
from audiencefit.features.embed import for_queries
from audiencefit.features.embed_backends import SPECS
if backend in SPECS:
    from audiencefit.features.embed_backends import load_embedder
    embedder = load_embedder(backend, build=False)
else:
    from audiencefit.features.embed import get_embedder
    embedder = get_embedder(backend)
loaded = time.perf_counter()
for_queries(embedder).embed(["new running shoes for my first marathon"])
done = time.perf_counter()
print(json.dumps({
    "load_s": loaded - started,
    "first_embed_s": done - loaded,
    # VmHWM, not ru_maxrss: Linux carries ru_maxrss over from the parent across fork + exec.
    "max_rss_mb": int(re.search(r"VmHWM:\\s+(\\d+)", open("/proc/self/status").read()).group(1)) / 1024,
    "torch_imported": "torch" in sys.modules,
}))
"""


def measure_process(backend: str) -> dict[str, Any]:
    """Load ``backend`` in a fresh Python process and embed one query: wall and load seconds, peak RSS, torch or not.

    Artifacts must already be built (the child refuses to build them, so build time is never counted).
    """
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
    started = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, "-c", _CHILD, backend], capture_output=True, text=True, env=env, check=False, timeout=600
    )
    wall = time.perf_counter() - started
    if proc.returncode != 0:
        raise RuntimeError(f"{backend}: child process failed:\n{proc.stderr[-2000:]}")
    result: dict[str, Any] = json.loads(proc.stdout.strip().splitlines()[-1])
    return {"backend": backend, "wall_s": wall, **result}


def end_to_end(texts: Sequence[str], backend: str, *, rounds: int = 3, batch_size: int = 64) -> dict[str, Any]:
    """Throughput of ``embed_texts`` on raw ``texts`` with ``backend``: best of ``rounds``, every cache (prepared
    texts, hashtag splits, the backend's word pieces) cleared before each timed pass.

    Keys: backend, n, mean_chars, prepare_texts_per_s (``prepare_text`` alone), embed_texts_per_s (the backend
    alone on the prepared, de-duplicated texts, ``batch_size`` per call, longest first), texts_per_s and
    chars_per_s (end to end: raw texts in, vectors out), texts_per_cpu_s (end to end per second of this process's
    CPU time: what the pipeline costs, less disturbed than wall time when other work shares the cores).
    """
    from audiencefit.features.embed import embed_texts
    from audiencefit.features.text import clear_text_caches, is_meaningful, prepare_text

    embedder = load_backend(backend, batch_size)
    embedder.embed(["warm up the thread pools", "and the allocators"])
    n, chars = len(texts), sum(len(t) for t in texts)
    best = {"prepare": float("inf"), "embed": float("inf"), "e2e": float("inf"), "e2e_cpu": float("inf")}
    clear_backend = getattr(embedder, "clear_cache", None)

    def clear() -> None:
        clear_text_caches()
        if callable(clear_backend):
            clear_backend()

    for _ in range(max(1, rounds)):
        clear()
        started = time.perf_counter()
        prepared = [prepare_text(t) for t in texts]
        best["prepare"] = min(best["prepare"], time.perf_counter() - started)
        unique = sorted({p for p in prepared if is_meaningful(p)}, key=lambda t: (-len(t), t))
        clear()
        started = time.perf_counter()
        for i in range(0, len(unique), batch_size):
            embedder.embed(unique[i : i + batch_size])
        best["embed"] = min(best["embed"], (time.perf_counter() - started) * n / max(len(unique), 1))
        clear()
        started, cpu_started = time.perf_counter(), time.process_time()
        embed_texts(texts, embedder, None, batch_size=batch_size, progress=False)
        best["e2e"] = min(best["e2e"], time.perf_counter() - started)
        best["e2e_cpu"] = min(best["e2e_cpu"], time.process_time() - cpu_started)
    return {
        "backend": backend,
        "n": n,
        "mean_chars": chars / max(n, 1),
        "prepare_texts_per_s": n / best["prepare"],
        "embed_texts_per_s": n / best["embed"],
        "texts_per_s": n / best["e2e"],
        "chars_per_s": chars / best["e2e"],
        "texts_per_cpu_s": n / best["e2e_cpu"],
    }


def _report_end_to_end(rows: list[tuple[str, dict[str, Any]]]) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title="end to end: embed_texts on texts as written (prepare + de-duplicate + embed, no cache)")
    columns = ("texts", "backend", "n", "mean chars", "prepare t/s", "backend t/s", "e2e texts/s", "e2e chars/s")
    for column in (*columns, "e2e texts/CPU-s"):
        table.add_column(column, justify="left" if column in ("texts", "backend") else "right")
    for label, r in rows:
        table.add_row(
            label,
            r["backend"],
            str(r["n"]),
            f"{r['mean_chars']:.0f}",
            f"{r['prepare_texts_per_s']:,.0f}",
            f"{r['embed_texts_per_s']:,.0f}",
            f"{r['texts_per_s']:,.0f}",
            f"{r['chars_per_s']:,.0f}",
            f"{r['texts_per_cpu_s']:,.0f}",
        )
    Console(width=200).print(table)


def _fmt(value: float | None, spec: str) -> str:
    return "–" if value is None else format(value, spec)


def _report(results: list[dict[str, Any]], processes: list[dict[str, Any]], texts: Sequence[str], default: str) -> None:
    from rich.console import Console
    from rich.table import Table

    console = Console(width=200)
    lengths = [len(t) for t in texts]
    table = Table(title=f"{len(texts)} texts, mean {np.mean(lengths):.0f} chars, median {np.median(lengths):.0f}")
    for column in ("backend", "id", "dim", "texts/s", "median/s", "× torch", "cos mean", "cos p5", "top-10"):
        table.add_column(column, justify="left" if column in ("backend", "id") else "right")
    for r in results:
        table.add_row(
            r["backend"],
            r["id"],
            str(r["dim"]),
            f"{r['texts_per_s']:.0f}",
            f"{r['texts_per_s_median']:.0f}",
            f"{r['speedup']:.2f}",
            _fmt(r["mean_cosine"], ".4f"),
            _fmt(r["p5_cosine"], ".4f"),
            f"{r['neighbours']:.3f}",
        )
    console.print(table)
    if processes:
        ptable = Table(title="fresh process: load the backend and embed one query")
        for column in ("backend", "wall s", "import+load s", "first embed s", "peak RSS MB", "torch imported"):
            ptable.add_column(column, justify="left" if column == "backend" else "right")
        for p in processes:
            ptable.add_row(
                p["backend"],
                f"{p['wall_s']:.2f}",
                f"{p['load_s']:.2f}",
                f"{p['first_embed_s']:.3f}",
                f"{p['max_rss_mb']:.0f}",
                str(p["torch_imported"]),
            )
        console.print(ptable)
    eligible = [r for r in results[1:] if r["mean_cosine"] is not None and r["mean_cosine"] >= MIN_COSINE]
    if eligible:
        best = max(eligible, key=lambda r: r["speedup"])
        console.print(
            f"for information, fastest with mean cosine ≥ {MIN_COSINE}: {best['backend']} ×{best['speedup']:.1f}"
        )
    by_name = {r["backend"]: r for r in results}
    stored, query = by_name.get(default), by_name.get(default + QUERY_SUFFIX)
    if stored is None:
        console.print(f"the default backend {default!r} was not measured (add it to --backends)")
        return
    side = "" if query is None else f"; its query side ×{query['speedup']:.1f} ({query['id']})"
    console.print(f"default backend {default}: stored texts ×{stored['speedup']:.1f} vs torch fp32{side}")
    console.print(f"speedup {stored['speedup']:.1f}x", highlight=False)


def main(argv: Sequence[str] | None = None) -> int:
    """Command-line entry point."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--n", type=int, default=2000, help="number of texts (half captions, half bios)")
    parser.add_argument("--seed", type=int, default=7, help="seed of the generated world the texts come from")
    parser.add_argument("--rounds", type=int, default=3, help="interleaved timing passes; each call's best counts")
    parser.add_argument("--batch-size", type=int, default=64, help="texts per onnxruntime call")
    parser.add_argument("--threads", type=int, default=None, help="intra-op threads for every backend (default: cores)")
    parser.add_argument("--backends", nargs="+", default=list(DEFAULT_BACKENDS), help="backend ids to compare")
    parser.add_argument("--no-process", action="store_true", help="skip the fresh-process load and RSS measurement")
    parser.add_argument(
        "--e2e-n", type=int, default=5000, help="raw captions (and, separately, raw bios) for the end-to-end figure"
    )
    parser.add_argument(
        "--e2e-backends", nargs="+", default=None, help="backends for the end-to-end figure (default: the default one)"
    )
    parser.add_argument("--e2e-only", action="store_true", help="only the end-to-end figure; skip the comparison")
    args = parser.parse_args(argv)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

    from audiencefit.features.embed_backends import SPECS, ensure_artifacts
    from audiencefit.settings import get_settings
    from benchmarks.texts import world_texts

    default = get_settings().embedder
    from benchmarks.texts import raw_captions, raw_short_texts

    e2e_rows = []
    captions, bios = raw_captions(args.e2e_n, seed=args.seed), raw_short_texts(args.e2e_n, seed=args.seed)
    for backend in args.e2e_backends or [default]:
        if backend in SPECS:
            ensure_artifacts(backend)
        for label, raw in (("captions (real-length)", captions), ("bios (short)", bios)):
            e2e_rows.append((label, end_to_end(raw, backend, rounds=args.rounds, batch_size=args.batch_size)))
    _report_end_to_end(e2e_rows)
    if args.e2e_only:
        return 0
    for backend in args.backends:  # build outside the timed part
        if backend.removesuffix(QUERY_SUFFIX) in SPECS:
            ensure_artifacts(backend.removesuffix(QUERY_SUFFIX))
    texts = world_texts(args.n, seed=args.seed)
    load_before = os.getloadavg()[0]
    results = benchmark_backends(
        texts, args.backends, rounds=args.rounds, batch_size=args.batch_size, threads=args.threads
    )
    load_after = os.getloadavg()[0]
    bases = [REFERENCE, *dict.fromkeys(b.removesuffix(QUERY_SUFFIX) for b in args.backends)]
    processes = [] if args.no_process else [measure_process(b) for b in bases]
    from rich.console import Console

    # Other work on the machine slows every backend, but not equally: say how busy it was.
    cores = os.cpu_count()
    Console().print(f"1-minute load average {load_before:.1f} before, {load_after:.1f} after, on {cores} cores")
    _report(results, processes, texts, default)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
