"""The MLflow pyfunc wrapper of a model bundle, logged as "models from code" so nothing is pickled.

MLflow stores this file itself with the logged model; on load it runs it and takes the object passed to
``mlflow.models.set_model``. The bundle (text files with checksums) travels as the model's ``bundle`` artifact and
is verified by ``load_bundle`` when the model loads.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import mlflow
import numpy as np
import pandas as pd
import polars as pl
from mlflow.pyfunc.model import PythonModel, PythonModelContext

from audiencefit.models.bundle import Bundle, load_bundle
from audiencefit.models.pair_features import FEATURE_COLUMNS


class AudiencefitModel(PythonModel):
    """Predicts engagement rate, conversions and price (with p10/p90) for rows of ``FEATURE_COLUMNS``."""

    bundle: Bundle | None = None

    def load_context(self, context: PythonModelContext) -> None:
        # MLflow joins the MLmodel's (stored, untrusted) relative path to the model directory without normalising
        # it; a path that climbs out is refused here (``audiencefit.models.registry`` checks it fully, symlinks
        # included, when the service downloads a version).
        raw = str(context.artifacts["bundle"])
        if ".." in Path(raw).parts or "\x00" in raw:
            raise ValueError(f"MLmodel artifact 'bundle' path {raw!r} climbs out of the model directory; refused")
        self.bundle = load_bundle(Path(raw))

    def predict(
        self, context: PythonModelContext, model_input: pd.DataFrame, params: dict[str, Any] | None = None
    ) -> pd.DataFrame:
        """``model_input``: a pandas or polars frame of FEATURE_COLUMNS, optionally ``rate_per_post`` (quotes)."""
        if self.bundle is None:
            raise RuntimeError("model context not loaded")
        # Callers holding the class directly may pass polars; MLflow's pyfunc always passes pandas.
        frame = model_input if isinstance(model_input, pl.DataFrame) else pl.from_pandas(model_input)
        missing = [c for c in FEATURE_COLUMNS if c not in frame.columns]
        if missing:
            raise ValueError(f"feature columns missing: {missing}")
        quoted = None
        if "rate_per_post" in frame.columns:
            quoted = frame["rate_per_post"].cast(pl.Float64).fill_null(np.nan).to_numpy()
        features = frame.select(FEATURE_COLUMNS).cast(pl.Float64)
        return self.bundle.models.predict(features, quoted_price=quoted).to_pandas()


mlflow.models.set_model(AudiencefitModel())
