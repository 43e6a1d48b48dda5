"""Benchmark texts: prepared captions and bios from a small generated synthetic world (no real data).

The hybrid backend's alignment map is fitted on :mod:`features.embed_backends.corpus`, a different generator, so
taking the benchmark texts from ``features.synthetic`` keeps the map from being graded on its own training texts.
"""

from __future__ import annotations

import random
import tempfile
from pathlib import Path

import polars as pl

from features.text import is_meaningful, prepare_text


def _unique_prepared(values: list[str | None]) -> list[str]:
    seen: dict[str, None] = {}
    for value in values:
        prepared = prepare_text(value)
        if is_meaningful(prepared):
            seen.setdefault(prepared, None)
    return list(seen)


def world_texts(n: int = 2000, seed: int = 7, caption_share: float = 0.5) -> list[str]:
    """``n`` distinct prepared texts from a generated world: ``caption_share`` captions, the rest bios.

    Bios are follower bios plus creator bios (short, keyword-like); captions carry hashtags, mentions and emoji
    before preparation. Deterministic per ``seed``.
    """
    from features.synthetic import generate_world

    n_creators = max(20, n // 10)
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "world"
        generate_world(out, n_creators=n_creators, seed=seed, followers_per_creator=30)
        captions = _unique_prepared(pl.read_parquet(out / "posts.parquet")["caption"].to_list())
        bios = _unique_prepared(
            pl.read_parquet(out / "followers.parquet")["bio"].to_list()
            + pl.read_parquet(out / "creators.parquet")["bio"].to_list()
        )
    rng = random.Random(seed)
    n_captions = min(len(captions), round(n * caption_share))
    n_bios = min(len(bios), n - n_captions)
    picked = rng.sample(captions, n_captions) + rng.sample(bios, n_bios)
    rng.shuffle(picked)
    return picked
