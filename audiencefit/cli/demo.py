"""``audiencefit demo-data``: write a synthetic creator world (demo and test data) to a directory."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Annotated

import typer

from audiencefit.cli._app import app
from audiencefit.cli._types import whole
from audiencefit.features.errors import InputError

logger = logging.getLogger(__name__)

# Worlds at least this large show a progress bar.
_PROGRESS_FROM = 5000


@app.command(
    "demo-data",
    help=(
        "Generate a synthetic creator world: creators, posts, follower samples, brands, segments and past campaigns "
        "as parquet files matching the data contracts, plus truth/ (latent variables, true fit, expected outcomes) "
        "for evaluation only. Deterministic per seed. Refuses to overwrite a non-empty DIR unless --force."
    ),
)
def demo_data_command(
    *,
    creators: Annotated[
        int,
        typer.Option("--creators", min=1, max=10_000_000, help="Number of creator accounts to generate (e.g. 5000)."),
    ] = 5000,
    seed: Annotated[
        int | None,
        typer.Option(
            "--seed",
            parser=whole(0, 2**63 - 1),
            help="Random seed (0 to 2^63-1); the same seed gives byte-identical files. Default: settings.",
        ),
    ] = None,
    out: Annotated[
        Path | None,
        typer.Option("--out", help="Directory to write the world to. Default: <data_dir>/demo from the settings."),
    ] = None,
    followers_per_creator: Annotated[
        int,
        typer.Option(
            "--followers-per-creator",
            min=0,
            max=100_000,
            help="Typical size of each creator's follower sample (varies per creator; ~10% of creators get none).",
        ),
    ] = 20,
    brands: Annotated[
        int | None,
        typer.Option("--brands", min=1, max=100_000, help="Number of brands. Default: max(10, creators / 125)."),
    ] = None,
    max_fit_pairs: Annotated[
        int | None,
        typer.Option(
            "--max-fit-pairs",
            min=1,
            help=(
                "Most (creator, segment) rows of truth/fit, the evaluation-only table of true fit, which grows with "
                "the square of the world (6M rows at 20k creators, 15.6 billion at 1M). Beyond it truth/fit holds the "
                "first segments only, and truth/world.json says how many. Default: 200,000,000 (≈ 0.6 GB)."
            ),
        ),
    ] = None,
    force: Annotated[bool, typer.Option("--force", help="Replace DIR even when it already holds files.")] = False,
) -> None:
    """Generate a synthetic world."""
    from audiencefit.features.synthetic import generate_world
    from audiencefit.features.synthetic.world import FIT_MAX_PAIRS
    from audiencefit.features.synthetic.writer import is_empty_dir
    from audiencefit.settings import get_settings

    settings = get_settings()
    out_dir = out if out is not None else settings.demo_dir
    if out_dir.exists() and not out_dir.is_dir():
        raise InputError(f"--out {out_dir} is a file, not a directory")
    if not force and not is_empty_dir(out_dir):
        raise InputError(f"--out {out_dir} exists and is not empty; pass --force to replace it")
    summary = generate_world(
        out_dir,
        creators,
        settings.seed if seed is None else seed,
        followers_per_creator=followers_per_creator,
        n_brands=brands,
        progress=creators >= _PROGRESS_FROM,
        overwrite=force,
        max_fit_pairs=FIT_MAX_PAIRS if max_fit_pairs is None else max_fit_pairs,
    )
    rows = ", ".join(f"{name}={count:,}" for name, count in summary.rows().items())
    logger.info("demo world ready in %s: %s", summary.path, rows)
