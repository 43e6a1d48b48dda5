"""A synthetic world rewritten the way real creator exports arrive (for the forecast-reliability tests and the
measurements in docs/evaluation.md, "When not to trust a forecast")::

    python -m audiencefit.features.synthetic.export_like WORLD OUT [--seed 0]

Real exports from discovery platforms or scrapers hold creators and posts only: no follower table (so audience
quality comes from engagement alone and audiences are inferred from content), bios missing for many creators, and
engagement counts that do not follow the synthetic world's laws (platform changes, hidden like counts, bought or
scraped numbers). :func:`write_export_like` keeps the world's creators and posts, drops everything else, blanks half
the bios and rescales every post's likes and comments by a noisy factor.
"""

from __future__ import annotations

import argparse
import json
import shutil
from pathlib import Path

import numpy as np
import polars as pl

from audiencefit.features.errors import InputError

ENGAGEMENT_SCALE = 0.45  # real counts ~2.2× below the synthetic world's, the gap issue #18 measured
ENGAGEMENT_NOISE = 0.6  # sd of the per-post log-normal factor
BIO_MISSING = 0.5


def write_export_like(world: Path, out: Path, *, seed: int = 0) -> Path:
    """Write ``out`` (creators, posts, export.json) from the synthetic ``world``; deterministic for ``seed``.

    ``out`` must not exist (nothing is overwritten); ``world`` must hold creators.parquet and posts.parquet."""
    for name in ("creators.parquet", "posts.parquet"):
        if not (world / name).is_file():
            raise InputError(f"{world}: no {name}; give a world written by 'audiencefit demo-data'")
    if out.exists():
        raise InputError(f"{out}: exists; give a new directory")
    rng = np.random.default_rng(seed)
    out.mkdir(parents=True)
    creators = pl.read_parquet(world / "creators.parquet")
    blank = rng.random(creators.height) < BIO_MISSING
    creators = creators.with_columns(
        bio=pl.when(pl.Series(blank)).then(pl.lit(None, dtype=pl.String)).otherwise(pl.col("bio"))
    )
    creators.write_parquet(out / "creators.parquet")
    posts = pl.read_parquet(world / "posts.parquet")
    factor = ENGAGEMENT_SCALE * np.exp(rng.normal(0.0, ENGAGEMENT_NOISE, posts.height))
    posts = posts.with_columns(
        likes=(pl.col("likes") * pl.Series(factor)).round(0).cast(pl.Int64),
        comments=(pl.col("comments") * pl.Series(factor)).round(0).cast(pl.Int64),
    )
    posts.write_parquet(out / "posts.parquet")
    if (world / "export.json").is_file():
        shutil.copy(world / "export.json", out / "export.json")
    else:
        (out / "export.json").write_text(json.dumps({"exported_at": None}), encoding="utf-8")
    return out


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("::")[0] if __doc__ else None)
    parser.add_argument("world", type=Path, help="a synthetic world directory (audiencefit demo-data)")
    parser.add_argument("out", type=Path, help="a new directory for the export-like world")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    try:
        write_export_like(args.world, args.out, seed=args.seed)
    except InputError as exc:
        parser.exit(2, f"error: {exc}\n")


if __name__ == "__main__":
    main()
