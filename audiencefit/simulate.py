"""``audiencefit simulate``: the closed loop on a synthetic world, through the code a real team runs (issue #18).

A round is what a team does between two trainings:

1. **recommend** — the brands ask the service (``audiencefit.serving.app``, in process, serving
   ``models:/audiencefit@champion`` from the simulation's own MLflow store) for ``picks`` creators each, with their
   segments, description, handles and hashtags, leaving out the creators they have contracted before; with
   ``exploration`` a share of each answer is Thompson-sampled and its propensity recorded. The service writes what it
   showed to its recommendation log.
2. **contract** — each brand contracts every creator it was shown, for the segment the creator was matched to.
3. **outcomes** — each campaign's outcomes are drawn from the world's truth
   (``audiencefit.training.world_truth.draw_outcomes``, the generator's own formula), dated in the weeks before the
   world's export, and appended to the world's ``campaigns`` table with the answer's ``recommendation_id``.
4. **retrain and promote** — ``audiencefit.training.train.train_models`` (with ``refit_all``: the time split puts the
   newest campaigns, the loop's, in the test split; the served model is fitted again on every row after the held-out
   evaluation), ``audiencefit.training.tracking.log_training`` and ``audiencefit.training.promote.promote`` (forced: the
   challenger's held-out rows are ones the refitted champion was trained on, so the comparison is recorded, not obeyed).
   Training joins the campaigns to the log and weights them by 1/propensity, as it does for a real team.

Every model (after 0, 1, …, N rounds of outcomes) is measured the same way and one row per model is printed,
written to ``<out>/rounds.csv`` and logged to MLflow (experiment ``audiencefit-simulate``, step = rounds seen):

- ``rec_*``: log(predicted / true expected) conversions and engagement on the creators the model *recommends*
  (what its log says it predicted, against the truth for the matched segment): ``sigma`` (each brand's median
  removed, as ``served_sigma``), ``sd``, ``bias``. Measured on one fixed request per brand that every model
  answers: the world's past exclusions only and the same exploration seed, so the rows compare models, not pools.
- ``pool_true_conv_per_dollar``: the true expected conversions of those fixed answers per dollar they would cost
  (prices drawn with one seed for every model): is the model picking better creators?
- ``true_conv_per_dollar`` / ``drawn_conv_per_dollar``: the same for the round's contracts (true expected, and
  realised where tracked). Each round leaves out everybody contracted before, so the pool thins round by round:
  these fall as the best creators are used up, whatever the model does.
- ``served_*``: the model's error on the top candidates of every brand (``audiencefit.training.served_eval``).
- ``plan_*``: the planner's losses beyond noise against top-k by predicted conversions and by followers
  (``audiencefit.training.plan_eval``), the oracle's mean losses at the model's own σ on the same candidates, and the
  mean true conversions of the planner's and top-k's plans per budget.

The simulation writes under ``--out``: a copy of the world (its ``campaigns`` grows), its own MLflow store (a
team's tracking server or store is never written to), the recommendation log and the bundles. The MLflow artifacts
go where the local registry accepts them, ``<data_dir>/mlartifacts`` (``audiencefit.models.registry``), and the
settings' embedding cache is reused.
"""

from __future__ import annotations

import hashlib
import logging
import math
import os
import secrets
import shutil
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
from pydantic import SecretStr

from audiencefit.features.errors import InputError
from audiencefit.features.featureset import FeatureSet, load_feature_set
from audiencefit.models.explore import MAX_SHARE
from audiencefit.models.index import default_index_dir
from audiencefit.models.reclog import read_shown
from audiencefit.models.retrieval import AudienceSearch
from audiencefit.serving.schemas import MAX_EXCLUDE
from audiencefit.serving.schemas import MAX_K as MAX_PICKS
from audiencefit.settings import Settings

log = logging.getLogger(__name__)

EXPERIMENT = "audiencefit-simulate"
MODEL_URI = "models:/audiencefit@champion"
MAX_ROUNDS = 50
POOL_DRAWS = 10_000  # seed part of the fixed-pool draws (prices), apart from the rounds' 0..N-1
ROUNDS_FILE = "rounds.csv"


@dataclass(frozen=True)
class SimulationConfig:
    world: Path
    features: Path
    out: Path
    rounds: int = 3
    brands: int = 24
    picks: int = 10
    exploration: float = 0.0
    seed: int = 0
    round_days: int = 7
    budgets: tuple[float, ...] = (300.0, 1_000.0, 3_000.0)
    noise_seeds: int = 4
    test_share: float = 0.2

    def check(self) -> None:
        """``InputError`` naming the first bad value: bounds, an existing ``out`` with content, a world without
        ``truth/`` or tables, a feature set without its index."""
        if not 1 <= self.rounds <= MAX_ROUNDS:
            raise InputError(f"--rounds must be within 1–{MAX_ROUNDS}, got {self.rounds}")
        if self.brands < 1:
            raise InputError(f"--brands must be at least 1, got {self.brands}")
        if not 1 <= self.picks <= MAX_PICKS:
            raise InputError(f"--picks must be within 1–{MAX_PICKS}, got {self.picks}")
        if not (math.isfinite(self.exploration) and 0.0 <= self.exploration <= MAX_SHARE):
            raise InputError(f"--exploration must be within 0–{MAX_SHARE}, got {self.exploration}")
        if not 1 <= self.round_days <= 60:
            raise InputError(f"--round-days must be within 1–60, got {self.round_days}")
        if not self.budgets or any(not (math.isfinite(b) and b > 0) for b in self.budgets):
            raise InputError(f"--budgets must be positive numbers, got {self.budgets}")
        if self.noise_seeds < 1:
            raise InputError(f"--noise-seeds must be at least 1, got {self.noise_seeds}")
        for name in ("campaigns.parquet", "brands.parquet", "segments.parquet", "export.json"):
            if not (self.world / name).is_file():
                raise InputError(f"--world {self.world}: no {name}; simulate needs a synthetic world")
        if not (self.world / "truth").is_dir():
            raise InputError(
                f"--world {self.world}: no truth/ beside the tables; outcomes can only be drawn in a synthetic world"
            )
        if self.out.exists() and (not self.out.is_dir() or any(self.out.iterdir())):
            raise InputError(f"--out {self.out}: exists and is not an empty directory; simulate starts a fresh run")


@dataclass
class Brand:
    brand_id: str
    request: dict[str, Any]  # the body without k, filters and exploration
    contracted: list[str] = field(default_factory=list)  # oldest first: the world's past campaigns, then the loop's
    past: int = 0  # how many of ``contracted`` came from the world's past campaigns

    def exclude(self, *, pool: bool = False) -> list[str]:
        """The creators a request leaves out: everybody contracted (newest ``MAX_EXCLUDE``), or with ``pool`` only
        those of the world's past campaigns."""
        chosen = self.contracted[: self.past] if pool else self.contracted
        return chosen[-MAX_EXCLUDE:]


@dataclass(frozen=True)
class Answers:
    """One round of requests: the campaigns they become and what the log says was shown."""

    shown: pl.DataFrame  # the log's rows of these answers (audiencefit.models.reclog.SHOWN_SCHEMA)
    contracts: pl.DataFrame  # brand_id, segment_id, creator_id, recommendation_id, in request order


def _settings_for(settings: Settings, out: Path) -> tuple[Settings, str]:
    """The settings the simulation runs with: its own MLflow store and recommendation log under ``out``, one API
    key, no rate limits, the log on. Everything else (seed, data dir and its embedding cache, model settings) as
    given."""
    key = secrets.token_hex(16)
    tracking = f"sqlite:///{(out / 'mlflow.db').resolve()}"
    updated = settings.model_copy(
        update={
            "mlflow_tracking_uri": SecretStr(tracking),
            "recommendation_log_url": SecretStr(f"sqlite:///{(out / 'recommendations.db').resolve()}"),
            "recommendation_log_enabled": True,
            "rate_limit_enabled": False,
            "api_keys": [SecretStr(key)],
            "admin_api_keys": [],
        }
    )
    return updated, key


@contextmanager
def _tracking_env(uri: str) -> Iterator[None]:
    """MLFLOW_TRACKING_URI wins over the settings (audiencefit.settings.tracking_uri): pin it to the simulation's
    store while it runs, so a team's server is never written to, and put back what was there."""
    before = os.environ.get("MLFLOW_TRACKING_URI")
    os.environ["MLFLOW_TRACKING_URI"] = uri
    try:
        yield
    finally:
        if before is None:
            os.environ.pop("MLFLOW_TRACKING_URI", None)
        else:
            os.environ["MLFLOW_TRACKING_URI"] = before


def load_brands(world: Path, how_many: int, seed: int) -> list[Brand]:
    """``how_many`` brands of the world (all when fewer), chosen by ``seed``, each with the request it sends and
    the creators it contracted in the past (from ``campaigns``), in brand-id order."""
    brands = pl.read_parquet(world / "brands.parquet").sort("brand_id")
    segments = pl.read_parquet(world / "segments.parquet").sort("segment_id")
    campaigns = pl.read_parquet(world / "campaigns.parquet").sort("start_date", "campaign_id")
    ids = [b for b in brands["brand_id"].to_list() if b in set(segments["brand_id"].to_list())]
    if not ids:
        raise InputError(f"--world {world}: no brand has a segment")
    chosen = sorted(np.random.default_rng(seed).permutation(ids)[: min(how_many, len(ids))].tolist())
    out = []
    for row in brands.filter(pl.col("brand_id").is_in(chosen)).iter_rows(named=True):
        segs = segments.filter(pl.col("brand_id") == row["brand_id"])
        request: dict[str, Any] = {
            "brand_id": row["brand_id"],
            "segments": [
                {
                    "text": s["description"],
                    "weight": float(s["weight"]) if s["weight"] is not None else 1.0,
                    "countries": (s["countries"] or "").split(),
                    "id": s["segment_id"],
                }
                for s in segs.iter_rows(named=True)
            ],
            "brand_handles": (row.get("handles") or "").split(),
            "branded_hashtags": (row.get("hashtags") or "").split(),
        }
        if (row.get("description") or "").strip():
            request["description"] = row["description"]
        past = campaigns.filter(pl.col("brand_id") == row["brand_id"])["creator_id"].to_list()
        known = list(dict.fromkeys(past))
        out.append(Brand(row["brand_id"], request, known, len(known)))
    return out


def _derived_seed(*parts: object) -> int:
    digest = hashlib.sha256("/".join(str(p) for p in parts).encode()).digest()
    return int.from_bytes(digest[:8], "big") >> 1


@contextmanager
def _service(settings: Settings, features: Path) -> Iterator[Any]:
    """The real app, in process, serving the registry's champion: one start-up for every request a model answers.
    Leaving the block shuts it down, which flushes and closes its recommendation log."""
    from fastapi.testclient import TestClient

    from audiencefit.serving.app import create_app

    with TestClient(create_app(settings, features_dir=features, bundle_source=MODEL_URI)) as client:
        yield client


@dataclass(frozen=True)
class Asked:
    """The answers' ids in request order and the campaigns they become (read back from the log as ``Answers``)."""

    ids: list[str]
    contracts: list[dict[str, str]]

    def answers(self, settings: Settings) -> Answers:
        """What the log says was shown for these answers (after the service has shut down)."""
        shown = read_shown(settings.recommendation_log_target, self.ids)
        order = {rid: n for n, rid in enumerate(self.ids)}
        shown = shown.with_columns(_order=pl.col("recommendation_id").replace_strict(order)).sort("_order", "rank")
        schema = {
            "brand_id": pl.String,
            "segment_id": pl.String,
            "creator_id": pl.String,
            "recommendation_id": pl.String,
        }
        return Answers(shown.drop("_order"), pl.DataFrame(self.contracts, schema=schema))


def recommend(
    client: Any,
    key: str,
    brands: list[Brand],
    picks: int,
    exploration: float,
    seed: int,
    *,
    pool: bool = False,
) -> Asked:
    """Every brand asks the service once. Each brand leaves out the creators it contracted, or with ``pool`` only
    those of the world's past campaigns (the same candidates for every model)."""
    asked = Asked([], [])
    for brand in brands:
        body = dict(brand.request)
        body["k"] = picks
        body["filters"] = {"exclude": brand.exclude(pool=pool)}
        if exploration > 0:
            body["exploration"] = {"share": exploration, "seed": _derived_seed(seed, brand.brand_id)}
        resp = client.post("/v1/recommendations", json=body, headers={"X-API-Key": key})
        if resp.status_code != 200:
            raise InputError(
                f"the service refused brand {brand.brand_id}'s request ({resp.status_code}): {resp.text[:500]}"
            )
        answer = resp.json()
        asked.ids.append(answer["recommendation_id"])
        asked.contracts.extend(
            {
                "brand_id": brand.brand_id,
                "segment_id": c["matched_segment"],
                "creator_id": c["creator_id"],
                "recommendation_id": answer["recommendation_id"],
            }
            for c in answer["creators"]
        )
    return asked


def recommended_error(truth: Any, shown: pl.DataFrame) -> dict[str, float]:
    """``rec_*``: the log's forecasts for the creators shown against the truth for their matched segment."""
    from audiencefit.training.served_eval import log_error
    from audiencefit.training.world_truth import matched_truth

    if shown.height == 0:
        return {}
    parts = []
    for (brand_id,), group in shown.group_by("brand_id", maintain_order=True):
        conv, er = matched_truth(truth, str(brand_id), group["segment"].to_list(), group["creator_id"].to_list())
        parts.append(
            group.select("brand_id", pred_conv="conversions", pred_er="engagement_rate").with_columns(
                true_conv=pl.Series(conv), true_er=pl.Series(er)
            )
        )
    frame = pl.concat(parts)
    metrics = {**log_error(frame, "conv"), **log_error(frame, "er")}
    return {"rec_creators": float(frame.height), **{f"rec_{k}": v for k, v in metrics.items()}}


def round_dates(export_day: date, rounds: int, round_days: int) -> list[date]:
    """Start dates of rounds 1..N: the last one the day before the export, each ``round_days`` after the one
    before (outcomes must have happened by the export the features were built from)."""
    return [export_day - timedelta(days=1 + round_days * (rounds - r)) for r in range(1, rounds + 1)]


def outcomes(truth: Any, contracts: pl.DataFrame, start: date, rng: np.random.Generator) -> pl.DataFrame:
    """The contracted campaigns, drawn from the truth (``campaigns`` rows with their recommendation ids)."""
    from audiencefit.training.world_truth import draw_outcomes

    frames = []
    for (brand_id, segment_id, rid), group in contracts.group_by(
        "brand_id", "segment_id", "recommendation_id", maintain_order=True
    ):
        drawn = draw_outcomes(truth, str(brand_id), str(segment_id), group["creator_id"].to_list(), start, rng)
        frames.append(drawn.with_columns(recommendation_id=pl.lit(rid, dtype=pl.String)))
    return pl.concat(frames) if frames else pl.DataFrame()


def contract_value(truth: Any, campaigns: pl.DataFrame, start: date) -> dict[str, float]:
    """True expected and realised (tracked) conversions per dollar of the contracted campaigns."""
    from audiencefit.training.world_truth import expected_outcomes

    if campaigns.height == 0:
        return {}
    expected = 0.0
    for (brand_id, segment_id), group in campaigns.group_by("brand_id", "segment_id", maintain_order=True):
        exp = expected_outcomes(truth, str(brand_id), str(segment_id), group["creator_id"].to_list(), start)
        expected += float(exp["expected_conversions"].sum())
    cost = float(campaigns["cost"].sum())
    tracked = campaigns.filter(pl.col("conversions").is_not_null())
    tracked_cost = float(tracked["cost"].sum())
    return {
        "contracted": float(campaigns.height),
        "contract_cost": cost,
        "true_conv_per_dollar": expected / cost if cost > 0 else math.nan,
        "drawn_conv_per_dollar": float(tracked["conversions"].sum()) / tracked_cost if tracked_cost > 0 else math.nan,
    }


def append_campaigns(world: Path, new: pl.DataFrame) -> int:
    """Append to ``campaigns.parquet`` atomically (a temporary file renamed over it); the new row count."""
    path = world / "campaigns.parquet"
    old = pl.read_parquet(path)
    if "recommendation_id" not in old.columns:
        old = old.with_columns(recommendation_id=pl.lit(None, dtype=pl.String))
    both = pl.concat([old, new.select(old.columns).cast(old.schema)])
    tmp = path.with_suffix(".parquet.tmp")
    both.write_parquet(tmp)
    os.replace(tmp, path)
    return both.height


def plan_check(
    world: Path, fs: FeatureSet, search: AudienceSearch, bundle: Path, config: SimulationConfig
) -> dict[str, float]:
    """``plan_*``: the planner against top-k on every brand's candidates, and the oracle at the model's σ."""
    from audiencefit.training.plan_eval import brand_cases, compare_plans, losses, model_error, oracle_noise, summarise

    truth, cases = brand_cases(world, fs, search, bundle)
    results = compare_plans(truth, cases, config.budgets)
    lost = losses(results)
    sigma = model_error(cases)
    floor = oracle_noise(truth, cases, config.budgets, (sigma,), config.noise_seeds)
    out: dict[str, float] = {
        "plan_model_sigma": sigma,
        "plan_losses_vs_topk_conv": float(lost.filter(pl.col("method") == "top-k predicted conversions").height),
        "plan_losses_vs_topk_followers": float(lost.filter(pl.col("method") == "top-k followers").height),
        "plan_oracle_losses_at_sigma": float(floor["losses"].mean() or 0.0),  # type: ignore[arg-type]
    }
    summary = summarise(results)
    for row in summary.iter_rows(named=True):
        tag = {"planner": "planner", "top-k predicted conversions": "topk_conv"}.get(row["method"])
        if tag is not None:
            out[f"plan_true_conv_{tag}_{row['budget']:g}"] = float(row["true_conversions"])
    return out


def train_round(
    world: Path, features: Path, settings: Settings, bundle_dir: Path, test_share: float, step: int
) -> tuple[dict[str, float], str]:
    """Train (refit on every campaign), register as challenger, promote it; the served_* metrics and the version."""
    from audiencefit.training.promote import promote
    from audiencefit.training.tracking import log_training
    from audiencefit.training.train import train_models

    result = train_models(world, features, settings, out_dir=bundle_dir, test_share=test_share, refit_all=True)
    tracked = log_training(result, settings, register=True)
    promotion = promote(settings, force=True)
    log.info(
        "simulation: model promoted",
        extra={"step": step, "version": promotion.champion_version, "why": promotion.reason},
    )
    metrics = dict(result.served.metrics) if result.served is not None else {}
    metrics["train_rows"] = float(result.training_set.frame.height)
    metrics["ess_recommended"] = float(result.weights.ess_recommended)
    metrics["joined_from_log"] = float(result.shown.joined)
    metrics.update({k: float(v) for k, v in result.recommended.metrics.items()})
    return metrics, str(tracked.model_version)


def simulate(
    config: SimulationConfig,
    settings: Settings,
    *,
    on_row: Callable[[dict[str, Any]], None] | None = None,
) -> pl.DataFrame:
    """Run the loop (module docstring); one row per model, also in ``<out>/rounds.csv`` and MLflow."""
    config.check()
    fs = load_feature_set(config.features, verify_checksums=False)
    if not default_index_dir(fs).is_dir():
        raise InputError(f"--features {config.features}: no index; run `audiencefit index build` first")
    from audiencefit.models.registry import client
    from audiencefit.training.served_eval import audience_search
    from audiencefit.training.tracking import artifact_root
    from audiencefit.training.world_truth import load_truth

    search = audience_search(fs)  # the planner check's, loaded once for every model

    config.out.mkdir(parents=True, exist_ok=True)
    world = config.out / "world"
    shutil.copytree(config.world, world)
    sim_settings, key = _settings_for(settings, config.out)
    truth = load_truth(world)
    brands = load_brands(world, config.brands, config.seed)
    dates = round_dates(truth.export_day, config.rounds, config.round_days)
    rows: list[dict[str, Any]] = []
    with _tracking_env(sim_settings.tracking_uri):
        mlflow = client(sim_settings)
        experiment = mlflow.get_experiment_by_name(EXPERIMENT)
        experiment_id = (
            experiment.experiment_id
            if experiment is not None
            else mlflow.create_experiment(EXPERIMENT, artifact_location=artifact_root(sim_settings))
        )
        run = mlflow.create_run(experiment_id, tags={"world": str(config.world), "features": str(config.features)})
        for name, value in {
            "rounds": config.rounds,
            "brands": len(brands),
            "picks": config.picks,
            "exploration": config.exploration,
            "seed": config.seed,
            "round_days": config.round_days,
            "budgets": ",".join(f"{b:g}" for b in config.budgets),
        }.items():
            mlflow.log_param(run.info.run_id, name, str(value))
        started = time.perf_counter()
        bundle = config.out / "bundles" / "round-0"
        served, version = train_round(world, config.features, sim_settings, bundle, config.test_share, 0)
        for step in range(config.rounds + 1):
            final = step == config.rounds
            row: dict[str, Any] = {"rounds_seen": step, "model_version": version}
            # The same request for every model (the world's past exclusions only, the same exploration seed):
            # the error on what it recommends and what those picks would return per dollar, comparable across rounds.
            # Then the round: ask leaving out everybody contracted so far. One start-up of the service for both.
            with _service(sim_settings, config.features) as service:
                asked_fixed = recommend(service, key, brands, config.picks, config.exploration, config.seed, pool=True)
                asked_round = (
                    None
                    if final
                    else recommend(
                        service, key, brands, config.picks, config.exploration, _derived_seed(config.seed, step)
                    )
                )
            fixed = asked_fixed.answers(sim_settings)
            row.update(recommended_error(truth, fixed.shown))
            pool_drawn = outcomes(truth, fixed.contracts, dates[-1], np.random.default_rng([config.seed, POOL_DRAWS]))
            row.update({f"pool_{k}": v for k, v in contract_value(truth, pool_drawn, dates[-1]).items()})
            if asked_round is not None:
                # Contract, draw, append.
                answers = asked_round.answers(sim_settings)
                rng = np.random.default_rng([config.seed, step])
                drawn = outcomes(truth, answers.contracts, dates[step], rng)
                row.update(contract_value(truth, drawn, dates[step]))
                total = append_campaigns(world, drawn)
                for brand in brands:
                    brand.contracted.extend(
                        answers.contracts.filter(pl.col("brand_id") == brand.brand_id)["creator_id"].to_list()
                    )
                log.info(
                    "simulation: campaigns appended", extra={"step": step + 1, "new": drawn.height, "total": total}
                )
            row.update(served)
            row.update(plan_check(world, fs, search, bundle, config))
            row["seconds"] = round(time.perf_counter() - started, 1)
            rows.append(row)
            for name, value in row.items():
                if isinstance(value, float) and math.isfinite(value):
                    mlflow.log_metric(run.info.run_id, name, value, step=step)
            _write_rows(config.out, rows)
            if on_row is not None:
                on_row(row)
            if not final:
                bundle = config.out / "bundles" / f"round-{step + 1}"
                served, version = train_round(world, config.features, sim_settings, bundle, config.test_share, step + 1)
        mlflow.log_artifact(run.info.run_id, str(config.out / ROUNDS_FILE))
        mlflow.set_terminated(run.info.run_id)
    return pl.DataFrame(rows)


def _write_rows(out: Path, rows: list[dict[str, Any]]) -> None:
    """``rounds.csv``, rewritten whole after every model (temporary file, then a rename)."""
    frame = pl.DataFrame(rows)
    tmp = out / (ROUNDS_FILE + ".tmp")
    frame.write_csv(tmp)
    os.replace(tmp, out / ROUNDS_FILE)
