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
# # Retrain, compare with the champion, promote
#
# A thin client of the package: it trains with `audiencefit.training.train.train_models`, logs and registers with
# `audiencefit.training.tracking.log_training`, compares with `audiencefit.training.promote.compare` and promotes with
# `audiencefit.training.promote.promote`. It finds the project's data from any working directory
# (`audiencefit.settings.located_settings`: `AUDIENCEFIT_DATA_DIR`, or `audiencefit-data` in this directory, a parent
# or the checkout). Parameters come from the environment so the same file runs in CI:
#
# - `RETRAIN_DATA_DIR` — raw data with past campaigns (default: the demo world under the data dir)
# - `RETRAIN_FEATURES_DIR` — feature set (default: `<data dir>/features`)
# - `RETRAIN_PROMOTE` — `1` to move `champion` when the challenger wins (default `1`)
# - `RETRAIN_METRIC`, `RETRAIN_MARGIN` — what "wins" means (default `ndcg20_brand`, `0.0`)

# %% tags=["parameters"]
# %matplotlib inline
import os
from pathlib import Path

import polars as pl
from IPython.display import display

from audiencefit.logs import quiet_third_party_output
from audiencefit.settings import located_settings

quiet_third_party_output()  # no third-party progress bars (mlflow's downloads) or warnings between the outputs
settings = located_settings()
DATA_DIR = Path(os.environ.get("RETRAIN_DATA_DIR", str(settings.demo_dir))).resolve()
FEATURES_DIR = Path(os.environ.get("RETRAIN_FEATURES_DIR", str(settings.features_dir))).resolve()
PROMOTE = os.environ.get("RETRAIN_PROMOTE", "1") == "1"
METRIC = os.environ.get("RETRAIN_METRIC", "ndcg20_brand")
MARGIN = float(os.environ.get("RETRAIN_MARGIN", "0.0"))
pl.DataFrame(
    {
        "parameter": ["data", "features", "promote", "metric", "margin", "MLflow tracking"],
        "value": [str(DATA_DIR), str(FEATURES_DIR), str(PROMOTE), METRIC, str(MARGIN), settings.tracking_uri],
    }
)

# %% [markdown]
# ## The campaign data

# %%
campaigns = pl.read_parquet(DATA_DIR / "campaigns.parquet")
print(f"{campaigns.height} past campaigns, {campaigns['creator_id'].n_unique()} creators")
campaigns.head()

# %% [markdown]
# ## Train and register the challenger
#
# The evaluation table: the model first, then the baselines, on the held-out (latest) campaigns.

# %%
from audiencefit.training.tracking import log_training
from audiencefit.training.train import train_models

result = train_models(DATA_DIR, FEATURES_DIR, settings, progress=False)
tracked = log_training(result, settings)
print(f"run {tracked.run_id}: registered audiencefit v{tracked.model_version} as challenger")
result.table

# %% [markdown]
# ## Challenger against champion on the same held-out rows

# %%
from audiencefit.training import promote as promotion

comparison = promotion.compare(settings, metric=METRIC, margin=MARGIN)
print(comparison.describe())
promotion.table(comparison)

# %%
from audiencefit.models.bundle import load_bundle
from audiencefit.models.registry import CHAMPION, resolve_bundle
from audiencefit.training.evaluate import model_forecast
from audiencefit.training.plots import calibration_plot, gain_chart, importance_plot

test = promotion.held_out_set(tracked.run_id, settings)
actual = test["conversions"].to_numpy()
challenger_forecast = model_forecast(result.models, test).conversions
curves = {f"challenger v{comparison.challenger_version}": challenger_forecast}
if comparison.champion_version is not None:
    champion = load_bundle(resolve_bundle(f"models:/audiencefit@{CHAMPION}", settings=settings))
    curves[f"champion v{comparison.champion_version}"] = model_forecast(champion.models, test).conversions
display(gain_chart(curves, actual))
display(calibration_plot(challenger_forecast, actual))
importance_plot(result.models)

# %% [markdown]
# ## Promote

# %%
if PROMOTE:
    outcome = promotion.promote(settings, metric=METRIC, margin=MARGIN)
    print(("promoted: " if outcome.promoted else "not promoted: ") + outcome.reason)
else:
    print("promotion skipped (RETRAIN_PROMOTE is not 1)")
