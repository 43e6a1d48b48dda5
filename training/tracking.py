"""MLflow tracking and registration of a training run.

``log_training`` takes what ``train_models`` produced and records it: parameters, the model's metrics (its row
of the evaluation table, price metrics, ``beats_<metric>`` as 0/1, the ``served_*`` metrics on the population the
service ranks when training measured them, with ``served_population.csv`` per brand), the evaluation table (CSV
and Markdown), the held-out test set (``test_set.parquet``, reused by ``promote`` so champion and challenger are
scored on the same rows), the analyst's plots, and the bundle as a pyfunc model logged from code
(``models/mlflow_model.py``) — the bundle is a directory of text files, so nothing is pickled. The model version is
registered as ``audiencefit`` and given the alias ``challenger``; only ``promote`` moves ``champion``.
"""

from __future__ import annotations

import logging
import math
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import polars as pl

from audiencefit.features.errors import InputError
from audiencefit.logs import mlflow_prints_logged, redact_url
from audiencefit.models.pair_features import FEATURE_COLUMNS
from audiencefit.models.registry import ARTIFACTS_DIRNAME, CHALLENGER, MODEL_NAME, client
from audiencefit.settings import Settings
from audiencefit.training.train import TrainResult

log = logging.getLogger(__name__)

EXPERIMENT = "audiencefit-training"
MODEL_ARTIFACT = "model"
TEST_SET_ARTIFACT = "test_set.parquet"
SERVED_ARTIFACT = "served_population.csv"  # per brand, when training measured the served population
EXAMPLE_ROWS = 5
MLFLOW_MODEL_CODE = Path(__file__).resolve().parent.parent / "models" / "mlflow_model.py"


@dataclass(frozen=True)
class TrackedRun:
    """Where a training run went: the MLflow run and, when registered, the model version."""

    run_id: str
    experiment_id: str
    model_uri: str
    model_version: str | None
    url: str | None = None  # the run's page on a tracking server


def configure(settings: Settings) -> None:
    """Point the fluent MLflow API at the configured tracking store (also the registry)."""
    import mlflow

    from audiencefit.logs import silence_mlflow_prints

    silence_mlflow_prints()  # its "Successfully registered model" lines; tracking logs them itself
    # Its "🏃 View run … at" lines on stdout for a tracking server: ``run_url`` gives the same link to the caller.
    os.environ.setdefault("MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT", "true")
    mlflow.set_tracking_uri(settings.tracking_uri)
    mlflow.set_registry_uri(settings.tracking_uri)


SERVER_SCHEMES = ("http", "https", "databricks", "databricks-uc")  # a tracking server: it places artifacts itself


def run_url(settings: Settings, experiment_id: str, run_id: str) -> str | None:
    """The run's page on a tracking server (``http(s)://``; without any credentials the URI carries), else None."""
    parts = urlsplit(settings.tracking_uri)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return None
    host = parts.hostname if ":" not in parts.hostname else f"[{parts.hostname}]"
    netloc = host + (f":{parts.port}" if parts.port else "")
    base = urlunsplit((parts.scheme, netloc, parts.path.rstrip("/"), "", ""))
    return f"{base}/#/experiments/{experiment_id}/runs/{run_id}"


def artifact_root(settings: Settings) -> str | None:
    """Artifact location for a new experiment: a tracking server (``http(s)://``, Databricks) chooses its own
    (``mlflow-artifacts:/`` when it proxies artifacts); every store this process writes itself (SQLite, another
    database URL, a directory) keeps them under ``<data_dir>/mlartifacts``, never in the working directory."""
    scheme = settings.tracking_uri.partition(":")[0].lower()  # "databricks" alone is a server too
    if scheme in SERVER_SCHEMES:
        return None
    return (settings.data_dir / ARTIFACTS_DIRNAME).resolve().as_uri()


def ensure_experiment(settings: Settings, name: str = EXPERIMENT) -> str:
    """The id of the training experiment, created (with its artifact location) on first use; ``InputError`` when it
    exists but was deleted (a run cannot start in it)."""
    c = client(settings)
    existing = c.get_experiment_by_name(name)
    if existing is not None:
        if existing.lifecycle_stage == "deleted":
            raise InputError(
                f"the MLflow experiment {name!r} (id {existing.experiment_id}) at {redact_url(settings.tracking_uri)} "
                "is deleted; restore it ('mlflow experiments restore') or remove it for good ('mlflow gc')"
            )
        return str(existing.experiment_id)
    return str(c.create_experiment(name, artifact_location=artifact_root(settings)))


def model_metrics(result: TrainResult) -> dict[str, float]:
    """The model's row of the evaluation table, price metrics, ``beats_<metric>`` (1 = beats every baseline) and
    the ``recommended_*`` metrics on test campaigns that came from recommendations (when there are enough)."""
    row = result.table.row(0, named=True)
    metrics = {k: float(v) for k, v in row.items() if k != "method" and isinstance(v, int | float)}
    metrics.update({k: float(v) for k, v in result.price.items()})
    metrics.update({f"beats_{k}": 1.0 if v else 0.0 for k, v in result.wins.items()})
    if result.served is not None:
        metrics.update(result.served.metrics)
    metrics.update(result.recommended.metrics)  # recommended_*: absent below the minimum of such test rows
    return {k: v for k, v in metrics.items() if math.isfinite(v)}


def table_markdown(table: pl.DataFrame, digits: int = 3) -> str:
    """The evaluation table as a GitHub Markdown table (missing values blank)."""

    def cell(v: Any) -> str:
        if v is None or (isinstance(v, float) and math.isnan(v)):
            return ""
        return f"{v:.{digits}f}" if isinstance(v, float) else str(v)

    lines = ["| " + " | ".join(table.columns) + " |", "|" + "|".join("---" for _ in table.columns) + "|"]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in table.iter_rows()]
    return "\n".join(lines) + "\n"


def _log_plots(result: TrainResult, out: Path) -> list[Path]:
    from audiencefit.training.evaluate import baseline_historical_er, baseline_most_followed, model_forecast
    from audiencefit.training.plots import calibration_plot, feature_importance, gain_chart, importance_plot

    test, train = result.split.test, result.split.train
    actual = test["conversions"].to_numpy()
    model = model_forecast(result.models, test).conversions
    figures = {
        "calibration_conversions.png": calibration_plot(model, actual),
        "gain_conversions.png": gain_chart(
            {
                "audiencefit model": model,
                "most-followed-first": baseline_most_followed(train, test).conversions,
                "historical median ER": baseline_historical_er(train, test).conversions,
            },
            actual,
        ),
        "feature_importance.png": importance_plot(result.models),
    }
    paths = []
    for name, fig in figures.items():
        fig.savefig(out / name)
        paths.append(out / name)
    feature_importance(result.models).write_csv(out / "feature_importance.csv")
    paths.append(out / "feature_importance.csv")
    return paths


def log_training(
    result: TrainResult, settings: Settings, *, register: bool = True, name: str = MODEL_NAME
) -> TrackedRun:
    """Log a training result to MLflow; with ``register``, register the model and point ``challenger`` at it."""
    import mlflow
    from mlflow.models import infer_signature

    from audiencefit.models.bundle import load_bundle

    configure(settings)
    experiment_id = ensure_experiment(settings)
    test = result.split.test
    example_pl = test.select(FEATURE_COLUMNS).head(EXAMPLE_ROWS).cast(pl.Float64)
    # A quoted rate on the first row only, so the signature shows ``rate_per_post`` as an optional input.
    quotes = [float(example_pl["log_followers"][0])] + [None] * (example_pl.height - 1)
    example_pl = example_pl.with_columns(pl.Series("rate_per_post", quotes, dtype=pl.Float64).exp().round(2))
    example = example_pl.to_pandas()
    quoted = example_pl["rate_per_post"].fill_null(float("nan")).to_numpy()
    models = load_bundle(result.bundle_dir).models
    output = models.predict(example_pl.select(FEATURE_COLUMNS), quoted_price=quoted).to_pandas()
    signature = infer_signature(example, output)
    with mlflow.start_run(experiment_id=experiment_id) as run, tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        mlflow.set_tags(
            {
                "bundle_id": str(result.bundle_meta["bundle_id"]),
                "feature_set_id": str(result.params["feature_set_id"]),
                "embedder_id": str(result.params["embedder_id"]),
                **(
                    {"recommended_metrics_absent": result.recommended.reason}
                    if result.recommended.reason is not None
                    else {}
                ),
            }
        )
        mlflow.log_params(result.params)
        mlflow.log_metrics(model_metrics(result))
        result.table.write_csv(tmp / "evaluation.csv")
        (tmp / "evaluation.md").write_text(table_markdown(result.table), encoding="utf-8")
        test.write_parquet(tmp / TEST_SET_ARTIFACT)
        for file in ("evaluation.csv", "evaluation.md", TEST_SET_ARTIFACT):
            mlflow.log_artifact(str(tmp / file))
        if result.served is not None:
            result.served.per_brand.write_csv(tmp / SERVED_ARTIFACT)
            mlflow.log_artifact(str(tmp / SERVED_ARTIFACT))
        plots = tmp / "plots"
        plots.mkdir()
        for path in _log_plots(result, plots):
            mlflow.log_artifact(str(path), artifact_path="plots")
        with mlflow_prints_logged(log):
            info = mlflow.pyfunc.log_model(
                name=MODEL_ARTIFACT,
                python_model=str(MLFLOW_MODEL_CODE),
                artifacts={"bundle": str(result.bundle_dir)},
                signature=signature,
                input_example=example,
                registered_model_name=name if register else None,
                pip_requirements=[],  # the serving image installs audiencefit itself; no environment is inferred
            )
    version = None
    if register:
        version = str(info.registered_model_version)
        c = client(settings)
        c.set_registered_model_alias(name, CHALLENGER, version)
        c.set_model_version_tag(name, version, "bundle_id", str(result.bundle_meta["bundle_id"]))
    log.info(
        "training run logged",
        extra={"run_id": run.info.run_id, "model_version": version, "model_uri": info.model_uri},
    )
    url = run_url(settings, experiment_id, run.info.run_id)
    return TrackedRun(run.info.run_id, experiment_id, info.model_uri, version, url)
