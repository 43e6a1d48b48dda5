"""How two registered model versions differ: their evaluation metrics as MLflow recorded them, and their
recommendations for the same brief side by side.

``version_metrics`` reads each version's training run (the metrics ``audiencefit.training.tracking`` logged: the model's
row of the evaluation table on its own held-out campaigns, price and served-population metrics); to score two versions
on the *same* rows use ``audiencefit.training.promote.compare``. ``side_by_side`` lines up rankings made by
``audiencefit.models.scoring.top_creators`` (or any frame with ``creator_id`` in rank order) for the same brief.
"""

from __future__ import annotations

import polars as pl

from audiencefit.features.errors import InputError
from audiencefit.models.registry import MODEL_NAME, client, get_version
from audiencefit.settings import Settings

# What side_by_side shows per model, when the rankings have it.
RANKING_COLUMNS = ("conversions", "engagement_rate", "price", "fit")


def version_metrics(versions: dict[str, str], settings: Settings, *, name: str = MODEL_NAME) -> pl.DataFrame:
    """One row per metric (``metric``), one column per label of ``versions`` (label → version number or alias
    URI part, e.g. ``{"champion": "1", "challenger": "2"}``): what each version's training run logged, null where
    a run did not log the metric. ``InputError`` for an unknown version or a version without a run."""
    if not versions:
        raise InputError("version_metrics: no versions given")
    c = client(settings)
    columns: dict[str, dict[str, float]] = {}
    for label, version in versions.items():
        uri = f"models:/{name}@{version}" if not version.isdigit() else f"models:/{name}/{version}"
        ref = get_version(uri, settings=settings)
        if ref.run_id is None:
            raise InputError(f"{name} v{ref.version} ({label}) has no training run: no metrics to show")
        columns[label] = dict(c.get_run(ref.run_id).data.metrics)
    metrics = sorted({m for values in columns.values() for m in values})
    return pl.DataFrame(
        {"metric": metrics, **{label: [values.get(m) for m in metrics] for label, values in columns.items()}},
        schema={"metric": pl.String, **dict.fromkeys(columns, pl.Float64)},
    )


def side_by_side(rankings: dict[str, pl.DataFrame], *, k: int | None = None) -> pl.DataFrame:
    """Every creator in any of the rankings (label → frame in rank order, with ``creator_id``; the first ``k``
    rows of each), with ``rank_<label>`` (from 1, null when that model did not rank it within ``k``) and each
    model's ``RANKING_COLUMNS`` it has as ``<column>_<label>``; ordered by the best rank of any model, then by the
    first model's rank."""
    if not rankings:
        raise ValueError("side_by_side: no rankings given")
    merged: pl.DataFrame | None = None
    for label, frame in rankings.items():
        if "creator_id" not in frame.columns:
            raise ValueError(f"ranking {label!r} has no creator_id column")
        top = frame if k is None else frame.head(k)
        keep = [c for c in RANKING_COLUMNS if c in top.columns]
        part = top.select(
            "creator_id",
            *(["handle"] if "handle" in top.columns else []),
            pl.int_range(1, pl.len() + 1, dtype=pl.Int64).alias(f"rank_{label}"),
            *(pl.col(c).alias(f"{c}_{label}") for c in keep),
        )
        if merged is None:
            merged = part
        else:
            on = ["creator_id", "handle"] if "handle" in merged.columns and "handle" in part.columns else ["creator_id"]
            merged = merged.join(part, on=on, how="full", coalesce=True)
    assert merged is not None
    ranks = [f"rank_{label}" for label in rankings]
    return merged.sort(pl.min_horizontal(ranks), ranks[0], "creator_id", nulls_last=True)
