"""Figures an analyst reads before trusting a model: calibration, gain against baselines, feature importance.

Each function takes frames/arrays and returns a matplotlib ``Figure`` made without pyplot: it touches no backend
(a notebook's inline one stays in force and shows the figure when it is a cell's value) and ``savefig`` renders
it wherever no display exists; the caller saves, logs or shows it. Nothing here trains or reads files.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import polars as pl

from audiencefit.models.estimators import GBMRegressor, ModelSet

if TYPE_CHECKING:
    from matplotlib.figure import Figure


def _figure(width: float = 6.5, height: float = 4.5) -> Figure:
    from matplotlib.figure import Figure

    return Figure(figsize=(width, height), dpi=110)


def calibration_by_decile(predicted: np.ndarray, actual: np.ndarray, bins: int = 10) -> pl.DataFrame:
    """Mean predicted and mean actual conversions per decile of the prediction (rows with a known outcome)."""
    pred = np.asarray(predicted, dtype=np.float64)
    act = np.asarray(actual, dtype=np.float64)
    ok = np.isfinite(pred) & np.isfinite(act)
    pred, act = pred[ok], act[ok]
    order = np.argsort(pred, kind="stable")
    groups = np.array_split(order, min(bins, max(len(order), 1)))
    rows = [
        {"decile": i + 1, "predicted": float(pred[g].mean()), "actual": float(act[g].mean()), "rows": len(g)}
        for i, g in enumerate(groups)
        if len(g)
    ]
    schema = {"decile": pl.Int64, "predicted": pl.Float64, "actual": pl.Float64, "rows": pl.Int64}
    return pl.DataFrame(rows, schema=schema)


def gain_curve(score: np.ndarray, actual: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Share of creators taken (best score first) → share of all actual conversions captured."""
    act = np.nan_to_num(np.asarray(actual, dtype=np.float64))
    order = np.lexsort((np.arange(len(score)), -np.asarray(score, dtype=np.float64)))
    captured = np.concatenate([[0.0], np.cumsum(act[order])])
    total = captured[-1] if captured[-1] > 0 else 1.0
    return np.linspace(0.0, 1.0, len(captured)), captured / total


def calibration_plot(predicted: np.ndarray, actual: np.ndarray) -> Figure:
    """Predicted vs actual mean conversions per decile of the prediction, with the diagonal."""
    table = calibration_by_decile(predicted, actual)
    fig = _figure()
    ax = fig.add_subplot()
    ax.plot(table["predicted"].to_numpy(), table["actual"].to_numpy(), "o-", label="deciles of prediction")
    top = float(np.max(table.select("predicted", "actual").to_numpy(), initial=1.0))
    ax.plot([0, top], [0, top], "--", color="grey", label="perfect calibration")
    ax.set_xlabel("mean predicted conversions")
    ax.set_ylabel("mean actual conversions")
    ax.set_title("Calibration on the test set")
    ax.legend()
    return fig


def gain_chart(scores: dict[str, np.ndarray], actual: np.ndarray) -> Figure:
    """Cumulative share of test conversions captured when creators are taken in each method's order."""
    fig = _figure()
    ax = fig.add_subplot()
    for name, score in scores.items():
        x, y = gain_curve(score, actual)
        ax.plot(x, y, label=name)
    ax.plot([0, 1], [0, 1], "--", color="grey", label="random order")
    ax.set_xlabel("share of test creators taken (best first)")
    ax.set_ylabel("share of test conversions captured")
    ax.set_title("Gain: conversions captured by rank")
    ax.legend(fontsize="small")
    return fig


def feature_importance(models: ModelSet) -> pl.DataFrame:
    """Total gain per feature of the conversion model and of the mean engagement model (a funnel's stages: each
    stage's share of its own gain, averaged, so a stage counted in larger units does not dominate)."""
    conv = list(models.conversion_models().values())
    eng = models.engagement_.get("mean")
    if eng is None:
        raise RuntimeError("ModelSet is not fitted")

    def gains(model: GBMRegressor) -> np.ndarray:
        # Each model's gains on the set's columns (0 for a column the model does not read).
        got = dict(zip(model.columns, model.booster().feature_importance(importance_type="gain"), strict=True))
        return np.array([float(got.get(c, 0.0)) for c in models.columns], dtype=np.float64)

    return pl.DataFrame(
        {
            "feature": list(models.columns),
            "gain_conversions": gains(conv[0]) if len(conv) == 1 else np.mean([_share(gains(m)) for m in conv], axis=0),
            "gain_engagement": gains(eng),
        }
    )


def _share(gains: np.ndarray) -> np.ndarray:
    total = float(gains.sum())
    return gains / total if total > 0 else gains


def importance_plot(models: ModelSet, top: int = 15) -> Figure:
    """Horizontal bars of the top features by gain, conversions and engagement side by side."""
    table = feature_importance(models)
    fig = _figure(11.0, 5.5)
    for i, column in enumerate(("gain_conversions", "gain_engagement")):
        ax = fig.add_subplot(1, 2, i + 1)
        best = table.sort(column, descending=True).head(top).reverse()
        total = float(table[column].sum()) or 1.0
        ax.barh(best["feature"].to_list(), (best[column] / total).to_numpy())
        ax.set_xlabel("share of total gain")
        ax.set_title("conversions model" if i == 0 else "engagement model")
        ax.tick_params(axis="y", labelsize=8)
    fig.tight_layout()
    return fig


def contribution_plot(top: pl.DataFrame, title: str) -> Figure:
    """Horizontal bars of one forecast's feature contributions (``audiencefit.models.contributions.top_contributions``'
    feature rows; baseline and exposure left out), largest effect on top, raising in one colour, lowering in
    another; the axis reads as the factor the feature multiplied the forecast by."""
    features = top.filter(~pl.col("term").str.starts_with("(")).reverse()
    fig = _figure(7.0, 0.35 * max(features.height, 4) + 1.2)
    ax = fig.add_subplot()
    values = features["contribution"].to_numpy()
    ax.barh(features["term"].to_list(), values, color=np.where(values >= 0, "tab:green", "tab:red"))
    ax.axvline(0.0, color="grey", linewidth=0.8)
    ax.set_xlabel("contribution (log scale: +0.1 ≈ ×1.11 on the forecast)")
    ax.set_title(title)
    ax.tick_params(axis="y", labelsize=8)
    fig.tight_layout()
    return fig
