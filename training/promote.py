"""Champion/challenger: move the ``champion`` alias only when the challenger is better on the same held-out rows.

Both bundles are scored on the challenger run's test set (``test_set.parquet``, logged by
``audiencefit.training.tracking``) with the same metric code as the evaluation table. The previous champions are kept,
newest last, in the registered model's ``champion_history`` tag so ``rollback`` can restore the one before.
"""

from __future__ import annotations

import json
import logging
import math
import tempfile
from dataclasses import dataclass
from datetime import UTC, datetime

import polars as pl

from audiencefit.features.errors import InputError
from audiencefit.models.bundle import load_bundle
from audiencefit.models.registry import (
    CHALLENGER,
    CHAMPION,
    MODEL_NAME,
    client,
    current_version,
    get_version,
    resolve_bundle,
)
from audiencefit.settings import Settings
from audiencefit.training.evaluate import model_forecast, score_forecast
from audiencefit.training.tracking import TEST_SET_ARTIFACT

log = logging.getLogger(__name__)

HISTORY_TAG = "champion_history"
# Whether a higher value is better, per metric promote can compare on.
DIRECTION = {
    "ndcg20_brand": True,
    "spearman_er": True,
    "spearman_conversions": True,
    "mae_log_er": False,
    "poisson_deviance": False,
}


@dataclass(frozen=True)
class Comparison:
    """Challenger and champion scored on the same held-out rows."""

    metric: str
    higher_is_better: bool
    margin: float
    test_rows: int
    challenger_version: str
    challenger_value: float
    champion_version: str | None
    champion_value: float | None

    @property
    def improvement(self) -> float | None:
        """How much better the challenger is (positive = better), in the metric's units."""
        if self.champion_value is None:
            return None
        diff = self.challenger_value - self.champion_value
        return diff if self.higher_is_better else -diff

    @property
    def passed(self) -> bool:
        """No champion yet, or the challenger is better by more than the margin (NaN never passes)."""
        if self.champion_version is None:
            return math.isfinite(self.challenger_value)
        gain = self.improvement
        return gain is not None and math.isfinite(gain) and gain > self.margin

    def describe(self) -> str:
        better = "higher" if self.higher_is_better else "lower"
        if self.champion_version is None:
            return (
                f"no champion yet; challenger v{self.challenger_version} {self.metric}="
                f"{self.challenger_value:.4f} on {self.test_rows} held-out rows"
            )
        return (
            f"{self.metric} ({better} is better) on {self.test_rows} held-out rows: challenger "
            f"v{self.challenger_version} {self.challenger_value:.4f} vs champion v{self.champion_version} "
            f"{self.champion_value:.4f}; improvement {self.improvement:+.4f}, required > {self.margin:.4f}"
        )


@dataclass(frozen=True)
class Promotion:
    promoted: bool
    champion_version: str | None
    comparison: Comparison | None
    reason: str


def _direction(metric: str) -> bool:
    if metric not in DIRECTION:
        raise InputError(f"cannot compare on {metric!r}; choose one of: {', '.join(sorted(DIRECTION))}")
    return DIRECTION[metric]


def held_out_set(run_id: str, settings: Settings) -> pl.DataFrame:
    """The test set the run evaluated on (its ``test_set.parquet`` artifact)."""
    import mlflow.artifacts
    from mlflow.exceptions import MlflowException

    with tempfile.TemporaryDirectory() as tmp:
        try:
            path = mlflow.artifacts.download_artifacts(
                run_id=run_id, artifact_path=TEST_SET_ARTIFACT, dst_path=tmp, tracking_uri=settings.tracking_uri
            )
        except MlflowException as exc:
            raise InputError(f"run {run_id} has no {TEST_SET_ARTIFACT}; retrain with 'audiencefit train'") from exc
        return pl.read_parquet(path)


def score_version(version: str, test: pl.DataFrame, metric: str, settings: Settings, name: str = MODEL_NAME) -> float:
    """One registered version's ``metric`` on ``test`` (its bundle verified on load)."""
    bundle = load_bundle(resolve_bundle(f"models:/{name}/{version}", settings=settings))
    row = score_forecast(f"v{version}", test, model_forecast(bundle.models, test))
    value = row.get(metric)
    return float(value) if isinstance(value, int | float) else float("nan")


def compare(
    settings: Settings, *, metric: str = "ndcg20_brand", margin: float = 0.0, name: str = MODEL_NAME
) -> Comparison:
    """Score the current challenger and champion on the challenger run's held-out rows."""
    higher = _direction(metric)
    challenger = get_version(f"models:/{name}@{CHALLENGER}", settings=settings)
    if challenger.run_id is None:
        raise InputError(f"{name} v{challenger.version} has no training run; cannot find its held-out set")
    test = held_out_set(challenger.run_id, settings)
    champion = current_version(CHAMPION, settings=settings, name=name)
    return Comparison(
        metric=metric,
        higher_is_better=higher,
        margin=margin,
        test_rows=test.height,
        challenger_version=challenger.version,
        challenger_value=score_version(challenger.version, test, metric, settings, name),
        champion_version=champion,
        champion_value=None if champion is None else score_version(champion, test, metric, settings, name),
    )


def history(settings: Settings, name: str = MODEL_NAME) -> list[str]:
    """Previous champion versions, oldest first."""
    tags = client(settings).get_registered_model(name).tags or {}
    raw = tags.get(HISTORY_TAG)
    return [str(v) for v in json.loads(raw)] if raw else []


def _set_champion(settings: Settings, name: str, version: str, previous: str | None, note: str) -> None:
    c = client(settings)
    past = history(settings, name)
    if previous is not None and previous != version:
        past.append(previous)
    c.set_registered_model_tag(name, HISTORY_TAG, json.dumps(past))
    c.set_registered_model_alias(name, CHAMPION, version)
    c.set_model_version_tag(name, version, "promoted_at", datetime.now(UTC).isoformat(timespec="seconds"))
    c.set_model_version_tag(name, version, "promotion", note)


def promote(
    settings: Settings,
    *,
    metric: str = "ndcg20_brand",
    margin: float = 0.0,
    force: bool = False,
    name: str = MODEL_NAME,
) -> Promotion:
    """Move ``champion`` to the challenger if it beats the champion by more than ``margin`` (or ``force``)."""
    if margin < 0:
        raise InputError(f"margin must be ≥ 0, got {margin}")
    challenger = get_version(f"models:/{name}@{CHALLENGER}", settings=settings)
    champion = current_version(CHAMPION, settings=settings, name=name)
    if champion == challenger.version:
        return Promotion(False, champion, None, f"v{champion} is already the champion; nothing to do")
    comparison = compare(settings, metric=metric, margin=margin, name=name)
    if not comparison.passed and not force:
        reason = "challenger does not beat the champion: " + comparison.describe()
        log.warning("promotion refused", extra={"reason": reason})
        return Promotion(False, champion, comparison, reason)
    note = ("forced: " if force and not comparison.passed else "") + comparison.describe()
    _set_champion(settings, name, challenger.version, champion, note)
    log.info("champion promoted", extra={"version": challenger.version, "previous": champion, "note": note})
    return Promotion(True, challenger.version, comparison, f"champion is now v{challenger.version}: {note}")


def rollback(settings: Settings, *, name: str = MODEL_NAME) -> Promotion:
    """Move ``champion`` back to the previous champion version (the newest in the history)."""
    past = history(settings, name)
    current = current_version(CHAMPION, settings=settings, name=name)
    if not past:
        raise InputError(f"no previous champion of {name!r} to roll back to (champion: v{current})")
    previous = past.pop()
    c = client(settings)
    c.set_registered_model_tag(name, HISTORY_TAG, json.dumps(past))
    c.set_registered_model_alias(name, CHAMPION, previous)
    c.set_model_version_tag(name, previous, "promotion", f"rollback from v{current}")
    log.info("champion rolled back", extra={"version": previous, "from": current})
    return Promotion(True, previous, None, f"champion rolled back from v{current} to v{previous}")


def table(comparison: Comparison) -> pl.DataFrame:
    """The comparison as a two-row frame for display."""
    rows = [{"model": f"challenger v{comparison.challenger_version}", comparison.metric: comparison.challenger_value}]
    if comparison.champion_version is not None:
        rows.append({"model": f"champion v{comparison.champion_version}", comparison.metric: comparison.champion_value})
    return pl.DataFrame(rows)
