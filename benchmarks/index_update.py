"""An index updated for a day's changes against one built again (#20 §3): at N synthetic creators (audience-like
384-dimension vectors), a share of them changed (a third removed, a third with new vectors, a third new), the
``int8`` IVF index updated in place (``audiencefit.models.index_update``) and built from scratch
(``audiencefit.models.index.build_faiss``), timed, with the top-50 answers of both compared.

Run: ``python -m benchmarks.index_update [--creators 100000] [--changed 0.01]``. Results in
``<data_dir>/bench/index_update.json``.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Sequence

import numpy as np

from benchmarks.common import Goal, Results, conclude, console, fmt, print_table

DIM = 384


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.index_update", description=__doc__.split("\n\n")[0])
    parser.add_argument("--creators", type=int, default=100_000, help="creators in the index (default 100000)")
    parser.add_argument("--changed", type=float, default=0.01, help="share of creators changed (default 0.01)")
    parser.add_argument("--queries", type=int, default=200, help="queries whose top 50 are compared")
    parser.add_argument("--seed", type=int, default=7, help="seed of the synthetic vectors and the changes")
    return parser.parse_args(argv)


def vectors(n: int, seed: int, topics: int = 60) -> np.ndarray:
    """Unit vectors shaped like audience vectors: sparse mixtures of topic directions plus noise (as
    ``benchmarks.index``)."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(topics, DIM))
    centres /= np.linalg.norm(centres, axis=1, keepdims=True)
    out = np.empty((n, DIM), dtype=np.float32)
    for start in range(0, n, 50_000):
        m = min(50_000, n - start)
        x = rng.dirichlet(np.full(topics, 0.15), size=m) @ centres + 0.5 * rng.normal(size=(m, DIM)) / np.sqrt(DIM)
        out[start : start + m] = x / np.linalg.norm(x, axis=1, keepdims=True)
    return out


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    from audiencefit.models.index import VectorIndex, build_faiss
    from audiencefit.models.index_update import update_with_vectors
    from audiencefit.settings import get_settings

    n, third = args.creators, max(1, round(args.creators * args.changed / 3))
    settings = get_settings().model_copy(update={"index_exact_max": 0, "ivf_encoding": "int8"})
    pool = vectors(n + 2 * third + args.queries, args.seed)
    old, spare, queries = pool[:n], pool[n : n + 2 * third], pool[n + 2 * third :]
    rng = np.random.default_rng(args.seed)
    old_ids = [f"c{i:08d}" for i in range(0, 2 * n, 2)]
    picked = rng.choice(n, 2 * third, replace=False)
    removed = {old_ids[i] for i in picked[:third]}
    changed = {old_ids[i] for i in picked[third:]}
    added = [f"c{i:08d}" for i in rng.choice(np.arange(1, 2 * n, 2), third, replace=False)]
    vector_of = {c: old[i] for i, c in enumerate(old_ids) if c not in removed}
    for j, c in enumerate(sorted(changed)):
        vector_of[c] = spare[j]
    for j, c in enumerate(added):
        vector_of[c] = spare[third + j]
    new_ids = sorted(vector_of)
    new = np.stack([vector_of[c] for c in new_ids]).astype(np.float32)

    t0 = time.perf_counter()
    index, kind, params = build_faiss(old, settings)
    old_build_s = time.perf_counter() - t0
    built = VectorIndex("audience", index, old, "old", kind, params)
    t0 = time.perf_counter()
    updated, stats = update_with_vectors(
        built, old_ids, new_ids, new, "new", sorted(changed | set(added)), sorted(removed), settings
    )
    update_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    index, kind, params = build_faiss(new, settings)
    rebuild_s = time.perf_counter() - t0
    rebuilt = VectorIndex("audience", index, new, "new", kind, params)
    _, a = updated.search(queries, 50)
    _, b = rebuilt.search(queries, 50)
    overlap = float(np.mean([len(set(x) & set(y)) / 50 for x, y in zip(a.tolist(), b.tolist(), strict=True)]))
    exact = np.argsort(-(queries @ new.T), axis=1, kind="stable")[:, :50]
    recall_updated = float(
        np.mean([len(set(x) & set(y)) / 50 for x, y in zip(a.tolist(), exact.tolist(), strict=True)])
    )
    recall_rebuilt = float(
        np.mean([len(set(x) & set(y)) / 50 for x, y in zip(b.tolist(), exact.tolist(), strict=True)])
    )

    print_table(
        f"int8 IVF index, {n:,} creators, {stats.added + stats.removed + stats.replaced:,} changed",
        ["", "seconds", "top-50 recall vs exact"],
        [
            ["build (old)", fmt(old_build_s), "–"],
            [f"update ({stats.method})", fmt(update_s), fmt(recall_updated, ".4f")],
            ["build again (new)", fmt(rebuild_s), fmt(recall_rebuilt, ".4f")],
        ],
    )
    share = update_s / rebuild_s
    console.print(f"update / build = {share:.1%}; top-50 overlap of the updated and the rebuilt index {overlap:.4f}")
    res = Results(
        "index_update",
        vars(args),
        {
            "build_old_s": old_build_s,
            "update_s": update_s,
            "rebuild_s": rebuild_s,
            "update_share_of_build": share,
            "stats": stats.to_json(),
            "top50_overlap_updated_vs_rebuilt": overlap,
            "recall50_updated": recall_updated,
            "recall50_rebuilt": recall_rebuilt,
        },
    )
    res.goals.append(Goal("index_update", "index update ≤ 5% of a build (1% changed)", f"{share:.1%}", share <= 0.05))
    return conclude(res)


if __name__ == "__main__":
    raise SystemExit(main())
