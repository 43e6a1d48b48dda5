"""``audiencefit score``: batch scoring of every eligible creator for every brand of a file (see serving/batch.py)."""

from __future__ import annotations

import sys
from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer

from audiencefit.cli._app import BundleOpt, ModelOpt, ModelUriOpt, app, model_source
from audiencefit.features.errors import InputError


class EngineChoice(StrEnum):
    local = "local"
    ray = "ray"


@app.command("score")
def score(
    brands: Annotated[
        Path,
        typer.Option(
            "--brands",
            help="Brands to score: JSON Lines (one brand per line) or a JSON list. Each brand has a brand_id and the "
            "fields of a recommendation request: description and/or segments, brand_handles, branded_hashtags, "
            "filters, objective.",
        ),
    ],
    features: Annotated[Path, typer.Option("--features", help="Feature set directory (from 'features build').")],
    out: Annotated[
        Path,
        typer.Option("--out", help="Output directory: brand_id=<id>/part-0.parquet per brand, plus _manifest.json."),
    ],
    model: ModelOpt = None,
    bundle: BundleOpt = None,
    model_uri: ModelUriOpt = None,
    engine: Annotated[
        EngineChoice,
        typer.Option("--engine", help="local: this process. ray: Ray Data actors (local runtime, or RAY_ADDRESS)."),
    ] = EngineChoice.local,
    top: Annotated[
        int | None,
        typer.Option(
            "--top", min=1, max=1_000_000, help="Score only the N best-fitting candidates from the audience index."
        ),
    ] = None,
    chunk_rows: Annotated[
        int, typer.Option("--chunk-rows", min=1, max=1_000_000, help="Creators scored per chunk (memory vs overhead).")
    ] = 20_000,
    index_dir: Annotated[
        Path | None, typer.Option("--index-dir", help="Index directory for --top. Default: <features>/index.")
    ] = None,
    progress: Annotated[bool, typer.Option("--progress/--no-progress", help="Show a progress bar per brand.")] = True,
) -> None:
    """Score every eligible creator (or the top N) for each brand; resumable, one parquet partition per brand."""
    from audiencefit.features.featureset import FOLLOWER_KEYS, RECENT_CAPTIONS, load_feature_set
    from audiencefit.models.query import query_embedder
    from audiencefit.serving.batch import LocalScorer, Scorer, read_brands, run_batch
    from audiencefit.serving.state import load_serving_model
    from audiencefit.settings import get_settings

    source = model_source(bundle, model, model_uri)
    if not features.is_dir():
        raise InputError(f"--features {features}: not a directory")
    settings = get_settings()
    # Everything is checked before anything is written: brands, features, model and their compatibility.
    batch_brands = read_brands(brands)
    # Matrices memory-mapped, and the tables scoring does not read (quotable captions, follower keys) left on
    # disk: at a million creators they are ~3 GB, the matrices ~5.8 GB.
    fs = load_feature_set(features, mmap=True, skip=frozenset({FOLLOWER_KEYS, RECENT_CAPTIONS}))
    serving_model = load_serving_model(source, fs, settings)
    embedder = query_embedder(fs)
    search = None
    if top is not None:
        from audiencefit.models.index import default_index_dir, load_index
        from audiencefit.models.retrieval import AudienceSearch

        directory = index_dir or default_index_dir(fs)
        search = AudienceSearch(
            fs, load_index(fs, "audience", directory), load_index(fs, "content", directory), embedder
        )
    scorer: Scorer
    if engine is EngineChoice.ray:
        from audiencefit.serving.batch_ray import RayScorer

        scorer = RayScorer(features, serving_model.bundle.path, chunk_rows=chunk_rows)
    else:
        scorer = LocalScorer(fs, serving_model.bundle, chunk_rows=chunk_rows)
    summary = run_batch(
        batch_brands,
        brands_path=brands,
        fs=fs,
        bundle=serving_model.bundle,
        model_source=serving_model.source,
        embedder=embedder,
        search=search,
        out=out,
        scorer=scorer,
        top=top,
        progress=progress and sys.stderr.isatty(),
        reliability=serving_model.reliability,
    )
    scorer.close()
    _print_summary(summary.manifest)


def _print_summary(manifest: dict[str, object]) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title="batch scoring")
    for column in ("brand", "status", "creators", "pairs", "rows", "seconds", "pairs/s"):
        table.add_column(column, justify="left" if column in ("brand", "status") else "right")
    brands = manifest["brands"]
    assert isinstance(brands, list)
    for b in brands:
        rate = f"{b['pairs'] / b['seconds']:,.0f}" if b["seconds"] else "–"
        table.add_row(
            b["brand_id"], b["status"], f"{b['creators']:,}", f"{b['pairs']:,}", f"{b['rows']:,}",
            f"{b['seconds']:.2f}", rate,
        )  # fmt: skip
    console = Console() if sys.stdout.isatty() else Console(width=160)
    console.print(table)
    totals = manifest["totals"]
    assert isinstance(totals, dict)
    console.print(
        f"{totals['scored']} scored, {totals['skipped']} skipped (already done), {totals['empty']} empty; "
        f"{totals['pairs_scored']:,} pairs in {manifest['seconds']} s "
        f"= {totals['pairs_per_s'] or 0:,} pairs/s end to end",
        highlight=False,
    )
    reliability = manifest.get("forecast_reliability")
    if isinstance(reliability, dict) and reliability.get("level") != "ok":
        console.print(f"forecast reliability: {reliability.get('level')}", highlight=False)
        for reason in reliability.get("reasons", []):
            console.print(f"  - {reason}", highlight=False)
