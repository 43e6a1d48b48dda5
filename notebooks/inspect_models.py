# ---
# jupyter:
#   jupytext:
#     formats: py:percent
#     text_representation:
#       extension: .py
#       format_name: percent
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # Inspect: why a creator ranks where it does, champion against challenger, forecasts against outcomes
#
# What analysts ask after a retrain (`retrain.py`), answered by package code:
#
# 1. **Why did this creator rank here?** The brief is scored as `audiencefit score` and the API score it
#    (`audiencefit.serving.batch.prepare_task`, `audiencefit.models.scoring.top_creators`); each forecast is split into
#    feature contributions (`audiencefit.models.contributions`: LightGBM's SHAP values, on the log scale, so they
#    multiply the forecast).
# 2. **How do the champion and the challenger differ?** Their evaluation metrics as MLflow logged them and their
#    recommendations for the same brief side by side (`audiencefit.training.model_diff`).
# 3. **How do the forecasts compare with what happened?** The champion's forecasts for the campaigns that started
#    after the last one it was fitted on, against their outcomes (`audiencefit.training.outcomes`).
#
# Data is found from any working directory (`audiencefit.settings.located_settings`). Parameters come from the
# environment:
#
# - `INSPECT_DATA_DIR` — raw data with campaigns (default: the demo world under the data dir)
# - `INSPECT_FEATURES_DIR` — feature set (default: `<data dir>/features`)
# - `INSPECT_BRIEF` — a JSON file with a brief: the fields of a recommendation request (default: the one below)
# - `INSPECT_CREATOR` — the creator id to explain (default: the champion's first)
# - `INSPECT_TOP` — how many creators each model recommends (default 10)

# %% tags=["parameters"]
# %matplotlib inline
import json
import os
from pathlib import Path

import polars as pl
from IPython.display import display

from audiencefit.logs import quiet_third_party_output
from audiencefit.settings import located_settings

quiet_third_party_output()  # no third-party progress bars (mlflow's downloads) or warnings between the outputs
settings = located_settings()
DATA_DIR = Path(os.environ.get("INSPECT_DATA_DIR", str(settings.demo_dir))).resolve()
FEATURES_DIR = Path(os.environ.get("INSPECT_FEATURES_DIR", str(settings.features_dir))).resolve()
BRIEF = {
    "description": "Protein snacks for people who train",
    "segments": [{"id": "runners", "text": "people training for a marathon"}],
}
if os.environ.get("INSPECT_BRIEF"):
    BRIEF = json.loads(Path(os.environ["INSPECT_BRIEF"]).read_text(encoding="utf-8"))
CREATOR = os.environ.get("INSPECT_CREATOR") or None
TOP = int(os.environ.get("INSPECT_TOP", "10"))
pl.DataFrame(
    {
        "parameter": ["data", "features", "brief", "creator", "top", "MLflow tracking"],
        "value": [str(DATA_DIR), str(FEATURES_DIR), json.dumps(BRIEF), str(CREATOR), str(TOP), settings.tracking_uri],
    }
)

# %% [markdown]
# ## The models and the brief
#
# The champion (what the service answers with) and the challenger (the latest registered version), if it differs.

# %%
from audiencefit.features.featureset import load_feature_set
from audiencefit.models.bundle import load_bundle
from audiencefit.models.query import query_embedder
from audiencefit.models.registry import CHALLENGER, CHAMPION, current_version, resolve_bundle
from audiencefit.serving.batch import BatchBrand, prepare_task

fs = load_feature_set(FEATURES_DIR)
versions = {CHAMPION: current_version(CHAMPION, settings=settings)}
if versions[CHAMPION] is None:
    raise RuntimeError("no champion registered yet: run retrain.py (or `audiencefit train` and `promote`) first")
challenger_version = current_version(CHALLENGER, settings=settings)
if challenger_version not in (None, versions[CHAMPION]):
    versions[CHALLENGER] = challenger_version
bundles = {
    label: load_bundle(resolve_bundle(f"models:/audiencefit/{version}", settings=settings))
    for label, version in versions.items()
}
for bundle in bundles.values():
    bundle.check_compatible(fs)
brand = BatchBrand.model_validate({"brand_id": "notebook", **BRIEF})
task = prepare_task(brand, fs, query_embedder(fs))
print(f"{len(task.rows)} eligible creators; segments: {[s.label for s in task.query.segments]}")
pl.DataFrame({"model": list(versions), "version": list(versions.values())})

# %% [markdown]
# ## 1. Why did this creator rank here?
#
# The champion's recommendations, ranked by the brief's objective.

# %%
from audiencefit.models.scoring import top_creators

rankings = {
    label: top_creators(fs, bundle.models, task.query, task.rows, objective=brand.objective, k=TOP).scored
    for label, bundle in bundles.items()
}
ranked = rankings[CHAMPION]
ranked.select(
    pl.int_range(1, pl.len() + 1).alias("rank"),
    "creator_id",
    "handle",
    "followers",
    "fit",
    "matched_segment",
    "conversions",
    "conversions_p10",
    "conversions_p90",
    "price",
)

# %% [markdown]
# Each term multiplies the forecast by `factor` (= e^contribution) against the model's average campaign; the
# baseline and the exposure (the audience in the segment) make up the rest. The terms add up to the forecast.

# %%
import math

from audiencefit.models.contributions import explain_scored, top_contributions
from audiencefit.training.plots import contribution_plot

explained = explain_scored(fs, bundles[CHAMPION].models, task.query, ranked, "conversions")
creator = CREATOR or ranked["creator_id"][0]
if creator not in ranked["creator_id"].to_list():
    raise ValueError(f"creator {creator!r} is not among the champion's {TOP} for this brief")
position = ranked["creator_id"].to_list().index(creator)
total = explained.filter(pl.col("row") == position)["contribution"].sum()
print(
    f"{creator} ranks #{position + 1}: {math.exp(total):.3f} expected conversions "
    f"(served: {ranked['conversions'][position]:.3f}) for segment {ranked['matched_segment'][position]!r}"
)
contributions = top_contributions(explained, position, k=12)
display(contributions)
contribution_plot(contributions, f"{creator}: what moved the conversion forecast")

# %% [markdown]
# ## 2. Champion against challenger
#
# What each version's training run logged (each on its own held-out campaigns; `retrain.py` scores both on the
# same rows), then both models' recommendations for the brief.

# %%
from audiencefit.training.model_diff import side_by_side, version_metrics

display(version_metrics({label: str(version) for label, version in versions.items()}, settings))
side_by_side(rankings)

# %% [markdown]
# ## 3. Forecasts against outcomes
#
# The champion's forecasts for the campaigns that started after the last campaign it was fitted on, with what they
# observed: calibration (Σ forecast / Σ observed, 1 is right), the share of outcomes inside the p10–p90 band (0.8 is
# right) and the calibration deciles.

# %%
from audiencefit.features.errors import InputError
from audiencefit.training.outcomes import ForecastOutcomes, forecasts_since
from audiencefit.training.plots import calibration_plot

outcomes: ForecastOutcomes | None = None
try:
    outcomes = forecasts_since(bundles[CHAMPION], DATA_DIR, FEATURES_DIR, settings)
except InputError as exc:
    print(f"nothing to compare yet: {exc}")
if outcomes is not None:
    print(f"{outcomes.rows.height} campaigns started after {outcomes.since}")
    display(pl.DataFrame({"metric": list(outcomes.metrics), "value": list(outcomes.metrics.values())}))
    display(outcomes.rows.head(10))
    display(outcomes.calibration)
    display(calibration_plot(outcomes.rows["conversions_forecast"].to_numpy(), outcomes.rows["conversions"].to_numpy()))
