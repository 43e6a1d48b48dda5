"""The fitted models: engagement rate, conversions and price, each with an uncertainty band.

Gradient-boosted trees (LightGBM) behind a small estimator contract: ``__init__`` stores parameters, ``fit`` does
the work, fitted attributes end in ``_``. The feature list and order are part of each model and checked on
predict. Models serialise to LightGBM's text format plus JSON — never pickle.

- Engagement: log of the sponsored post's engagement rate; quantile models give p10/p90.
- Conversions: Poisson loss with exposure: the offset is log of the creator's estimated audience *in the segment*
  (followers × audience fit × share in the target countries, :func:`exposure_offset`), so trees learn a conversion
  rate per in-segment follower and predictions scale with the size of the relevant audience; the trees read only
  the features that plausibly set that rate (``CONVERSION_COLUMNS``). The band comes from a negative binomial whose
  dispersion is fitted on the training residuals (counts are overdispersed: fit, audience and luck all vary).
  Or, with ``conversion_structure="funnel"``, the product of three stages learned from the campaigns' own counts
  (reach per follower, clicks per reached account, conversions per click; :data:`FUNNEL_STAGES`), each with the
  directions the funnel fixes enforced in its trees; a negative-binomial band around the product whose θ is
  calibrated on the newest training rows (conformal, as the other bands).
- Price: log cost per sponsored post, from campaigns' costs; p10/p90 quantile models.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import polars as pl

from audiencefit.models.forest import CompiledForest, compile_forests
from audiencefit.models.pair_features import PAIR_COLUMNS

ER_FLOOR = 1e-5  # engagement rates are modelled on a log scale; a zero-engagement post counts as this
QUANTILES = (0.1, 0.9)
# The conversion model's exposure (exposure_offset): followers alone (bundles before it was recorded), or the
# estimated audience in the segment (the default for new models).
FOLLOWER_EXPOSURE = "followers"
SEGMENT_EXPOSURE = "segment_audience"
EXPOSURES = (FOLLOWER_EXPOSURE, SEGMENT_EXPOSURE)
EXPOSURE_FLOOR = 0.02  # smallest in-segment share the exposure assumes (see exposure_offset)
# How expected conversions are built: one Poisson model of conversions over an exposure ("direct", every bundle
# before the field was recorded), or reach × click rate × conversion rate, each stage from its own counts ("funnel").
DIRECT_STRUCTURE = "direct"
FUNNEL_STRUCTURE = "funnel"
CONVERSION_STRUCTURES = (DIRECT_STRUCTURE, FUNNEL_STRUCTURE)


def _lgb_params(objective: str, seed: int, **extra: Any) -> dict[str, Any]:
    params: dict[str, Any] = {
        "objective": objective,
        "learning_rate": 0.04,
        "num_leaves": 15,
        "min_data_in_leaf": 20,
        "feature_fraction": 0.85,
        "bagging_fraction": 0.85,
        "bagging_freq": 1,
        "lambda_l2": 1.0,
        "seed": seed,
        "deterministic": True,
        "force_col_wise": True,
        "num_threads": 2,
        "verbosity": -1,
    }
    params.update(extra)
    return params


def _matrix(frame: pl.DataFrame, columns: tuple[str, ...]) -> np.ndarray:
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise ValueError(f"feature columns missing: {missing}")
    return frame.select(columns).to_numpy().astype(np.float64)


class FeatureMatrix:
    """Feature rows converted to a float64 matrix once (nulls → NaN), read by every model of a set.

    Converting a polars frame per model costs more than predicting a few hundred rows; a prediction over a
    request's candidates converts once and each model picks its columns.
    """

    def __init__(self, frame: pl.DataFrame, columns: tuple[str, ...]) -> None:
        self.array = _matrix(frame, columns)
        self.index = {c: i for i, c in enumerate(columns)}

    @classmethod
    def of_array(cls, array: np.ndarray, columns: tuple[str, ...]) -> FeatureMatrix:
        """Wrap a float64 matrix whose columns are ``columns`` (NaN where undefined), without copying."""
        if array.ndim != 2 or array.shape[1] != len(columns):
            raise ValueError(f"feature matrix of shape {array.shape} does not have {len(columns)} columns")
        out = cls.__new__(cls)
        out.array = array
        out.index = {c: i for i, c in enumerate(columns)}
        return out

    def __len__(self) -> int:
        return int(self.array.shape[0])

    def take(self, columns: tuple[str, ...]) -> np.ndarray:
        if tuple(self.index) == tuple(columns) and self.array.flags.c_contiguous:
            return self.array  # every column in order: no copy (the common case: the models read all features)
        missing = [c for c in columns if c not in self.index]
        if missing:
            raise ValueError(f"feature columns missing: {missing}")
        return np.ascontiguousarray(self.array[:, [self.index[c] for c in columns]])

    def column(self, name: str) -> np.ndarray:
        return self.take((name,))[:, 0]


Rows = pl.DataFrame | FeatureMatrix


def _constraints(columns: tuple[str, ...], signs: dict[str, int]) -> list[int]:
    return [signs.get(c, 0) for c in columns]


def _fit_rounds(
    params: dict[str, Any],
    x: np.ndarray,
    y: np.ndarray,
    init: np.ndarray | None,
    rounds: int,
    weight: np.ndarray | None = None,
) -> Any:
    """Train with early stopping on the newest 15% of rows (rows are time-ordered), then refit on all rows
    with the number of rounds that was best on that hold-out. ``weight``: per-row sample weights (the hold-out
    loss is weighted too)."""
    import lightgbm as lgb

    def part(a: np.ndarray | None, rows: slice) -> np.ndarray | None:
        return None if a is None else a[rows]

    n = len(y)
    cut = int(n * 0.85)
    best = rounds
    if n >= 200:
        head, tail = slice(0, cut), slice(cut, n)
        train = lgb.Dataset(
            x[head], y[head], init_score=part(init, head), weight=part(weight, head), free_raw_data=False
        )
        valid = lgb.Dataset(
            x[tail],
            y[tail],
            init_score=part(init, tail),
            weight=part(weight, tail),
            reference=train,
            free_raw_data=False,
        )
        booster = lgb.train(
            params, train, rounds, valid_sets=[valid], callbacks=[lgb.early_stopping(50, verbose=False)]
        )
        best = max(20, int(booster.best_iteration or rounds))
    full = lgb.Dataset(x, y, init_score=init, weight=weight, free_raw_data=False)
    return lgb.train(params, full, best)


@dataclass
class GBMRegressor:
    """One LightGBM model over ``columns`` with an optional offset; serialisable to text + JSON."""

    columns: tuple[str, ...]
    objective: str
    seed: int = 0
    rounds: int = 600
    monotone: dict[str, int] = field(default_factory=dict)
    alpha: float | None = None  # quantile level for objective="quantile"
    booster_: Any = None
    base_: float = 0.0  # with an offset: log of the overall rate, so trees start from the right level
    text_: str | None = None  # the LightGBM text model, when loaded from one (the booster is then built on demand)
    # the same model compiled to native code (audiencefit.models.forest): same bits
    compiled_: CompiledForest | None = None

    def fit(
        self, frame: pl.DataFrame, y: np.ndarray, offset: np.ndarray | None = None, weight: np.ndarray | None = None
    ) -> GBMRegressor:
        """Fit on ``frame``'s rows (time-ordered) with optional log offset and per-row sample ``weight``."""
        extra: dict[str, Any] = {}
        if self.monotone:
            extra["monotone_constraints"] = _constraints(self.columns, self.monotone)
            extra["monotone_constraints_method"] = "advanced"
        if self.alpha is not None:
            extra["alpha"] = self.alpha
        params = _lgb_params(self.objective, self.seed, **extra)
        init = None
        if offset is not None:
            # Start every row at (overall rate × exposure): the trees then learn only the deviations.
            w = np.ones(len(y)) if weight is None else weight
            self.base_ = float(np.log(max(float(np.sum(w * y)), 1e-9) / float(np.sum(w * np.exp(offset)))))
            init = offset + self.base_
        self.booster_ = _fit_rounds(params, _matrix(frame, self.columns), y, init, self.rounds, weight)
        self.text_ = self.compiled_ = None
        return self

    def booster(self) -> Any:
        """The LightGBM booster (built from the model text on first use: serving with compiled trees never needs
        LightGBM itself)."""
        if self.booster_ is None:
            if self.text_ is None:
                raise RuntimeError("GBMRegressor is not fitted")
            import lightgbm as lgb

            self.booster_ = lgb.Booster(model_str=self.text_)
        return self.booster_

    def predict_raw(self, frame: Rows, offset: np.ndarray | None = None, *, threads: int = 1) -> np.ndarray:
        """The model's score on its link scale (plus the offset).

        One thread by default: requests are already served concurrently, and OpenMP threads spinning on busy
        cores cost more than they save on a few hundred rows. Batch jobs pass more. Results do not depend on it.
        """
        x = frame.take(self.columns) if isinstance(frame, FeatureMatrix) else _matrix(frame, self.columns)
        if self.compiled_ is not None:
            raw = self.compiled_.predict(x, threads)
        else:
            raw = np.asarray(self.booster().predict(x, raw_score=True, num_threads=threads), dtype=np.float64)
        return raw + (offset + self.base_ if offset is not None else 0.0)

    def to_text(self) -> str:
        if self.text_ is None:
            self.text_ = str(self.booster().model_to_string())
        return self.text_

    def meta(self) -> dict[str, Any]:
        return {
            "columns": list(self.columns),
            "objective": self.objective,
            "seed": self.seed,
            "rounds": self.rounds,
            "monotone": self.monotone,
            "alpha": self.alpha,
            "base": self.base_,
        }

    @classmethod
    def from_text(cls, meta: dict[str, Any], text: str) -> GBMRegressor:
        model = cls(
            columns=tuple(meta["columns"]),
            objective=meta["objective"],
            seed=meta["seed"],
            rounds=meta["rounds"],
            monotone=dict(meta.get("monotone", {})),
            alpha=meta.get("alpha"),
        )
        model.base_ = float(meta.get("base", 0.0))
        if _feature_names(text) != [f"Column_{i}" for i in range(len(model.columns))]:
            raise ValueError("model text does not match its feature list")
        model.text_ = text
        return model


def _feature_names(text: str) -> list[str]:
    """The ``feature_names=`` line of a LightGBM text model (its header; no LightGBM needed to read it)."""
    for line in text.splitlines():
        if line.startswith("feature_names="):
            return line.removeprefix("feature_names=").split()
        if line.startswith("Tree="):
            break
    raise ValueError("not a LightGBM text model (no feature_names line)")


def negbin_dispersion(y: np.ndarray, mu: np.ndarray, weight: np.ndarray | None = None) -> float:
    """Method-of-moments θ of a negative binomial (Var = μ + μ²/θ); large θ ≈ Poisson. With ``weight``, each row's
    moment counts by its sample weight (the dispersion of the weighted population)."""
    w = np.ones(len(y)) if weight is None else weight
    excess = float(np.sum(w * ((y - mu) ** 2 - mu)))
    denom = float(np.sum(w * mu**2))
    if excess <= 0 or denom <= 0:
        return 1e6
    return max(denom / excess, 1e-3)


def calibrated_dispersion(y: np.ndarray, mu: np.ndarray, coverage: float = QUANTILES[1] - QUANTILES[0]) -> float:
    """The largest θ (narrowest band) whose negative-binomial p10–p90 around ``mu`` (widened to hold ``mu``, as
    predictions are) covers at least ``coverage`` of ``y``, with the conformal finite-sample correction; the widest
    band of the grid when none does."""
    level = min(1.0, coverage * (1 + 1 / max(len(y), 1)))
    for theta in np.geomspace(1e4, 1e-2, 121):
        lo, hi = negbin_quantiles(mu, float(theta), QUANTILES)
        if float(np.mean((y >= np.minimum(lo, mu)) & (y <= np.maximum(hi, mu)))) >= level:
            return float(theta)
    return 1e-2


def negbin_quantiles(mu: np.ndarray, theta: float, qs: tuple[float, ...]) -> list[np.ndarray]:
    """``scipy.stats.nbinom.ppf(q, theta, theta / (theta + mu))`` for each q in (0, 1), the same numbers (tested),
    through the ufunc it calls: scipy.stats alone takes longer to import than a batch job's quantiles take."""
    from scipy.special._ufuncs import _nbinom_ppf

    if not all(0 < q < 1 for q in qs) or not theta > 0:
        raise ValueError(f"negative binomial quantiles need 0 < q < 1 and theta > 0, got {qs}, {theta}")
    mu = np.maximum(mu, 1e-9)
    p = np.asarray(theta / (theta + mu), dtype=np.float64)
    ok = (p > 0) & (p <= 1)  # nbinom's own argument check; NaN elsewhere, as nbinom.ppf answers
    out = []
    for q in qs:
        values = np.full(p.shape, np.nan)
        with np.errstate(over="ignore"):  # as scipy.stats does (scipy gh-17432)
            values[ok] = _nbinom_ppf(q, theta, p[ok])
        out.append(values)
    return out


@dataclass
class ModelSet:
    """Engagement, conversions and price models with their bands, trained together on one training set."""

    columns: tuple[str, ...]
    seed: int = 0
    engagement_: dict[str, GBMRegressor] = field(default_factory=dict)
    conversions_: GBMRegressor | None = None
    theta_: float = 1.0
    price_: dict[str, GBMRegressor] = field(default_factory=dict)
    er_band_: float = 0.0  # conformal widening of the engagement band (log scale)
    price_band_: float = 0.0  # conformal widening of the price band (log scale)
    exposure: str = SEGMENT_EXPOSURE  # what the conversion model's offset measures (see exposure_offset)
    conversion_structure: str = DIRECT_STRUCTURE  # one model of conversions, or the funnel's stages (FUNNEL_STAGES)
    funnel_: dict[str, GBMRegressor] = field(default_factory=dict)  # stage name → model (funnel structure only)

    # Directional knowledge enforced in the trees: more of the audience in the segment never lowers expected
    # conversions; a more suspicious (less authentic) audience never raises engagement or conversions.
    CONVERSION_SIGNS: ClassVar[dict[str, int]] = {
        "audience_fit": 1,
        "audience_fit_raw": 1,
        "audience_share": 1,
        "suspicious_share": -1,
        "audience_quality": 1,
    }
    ENGAGEMENT_SIGNS: ClassVar[dict[str, int]] = {
        "suspicious_share": -1,
        "audience_quality": 1,
        "engagement_anomaly": -1,
        "er_residual": 1,
    }

    def fit(self, frame: pl.DataFrame, sample_weight: np.ndarray | None = None) -> ModelSet:
        """``frame`` holds the feature columns plus labels engagement_rate, conversions, cost and followers.

        ``sample_weight`` (one per row, positive; e.g. inverse-propensity weights, ``audiencefit.training.weights``)
        weights every model's loss, the conversion model's base rate, the negative binomial dispersion and the conformal
        calibration of the bands; None fits every row equally (the same models as before weights existed).
        """
        weight = _check_weights(sample_weight, frame.height)

        def rows(ok: np.ndarray) -> np.ndarray | None:
            return None if weight is None else weight[ok]

        er = frame["engagement_rate"].to_numpy()
        ok = np.isfinite(er)
        log_er = np.log(np.maximum(er[ok], ER_FLOOR))
        er_frame = frame.filter(pl.Series(ok))
        self.engagement_ = {
            "mean": GBMRegressor(self.columns, "regression", self.seed, monotone=self.ENGAGEMENT_SIGNS),
            **{f"q{int(q * 100)}": GBMRegressor(self.columns, "quantile", self.seed, alpha=q) for q in QUANTILES},
        }
        self.er_band_ = _fit_conformal_band(self.engagement_, er_frame, log_er, rows(ok))

        if self.conversion_structure not in CONVERSION_STRUCTURES:
            raise ValueError(f"unknown conversion structure {self.conversion_structure!r}")
        conv = frame["conversions"].to_numpy()
        ok = np.isfinite(conv)
        conv_frame = frame.filter(pl.Series(ok))
        if self.conversion_structure == FUNNEL_STRUCTURE:
            # The funnel's stages are fitted unweighted (propensity weights apply to the direct model only).
            self.conversions_ = None
            self.funnel_ = {stage.name: self._fit_stage(stage, frame) for stage in FUNNEL_STAGES}
        else:
            offset = exposure_offset(conv_frame, self.exposure)
            columns = tuple(c for c in self.columns if c in CONVERSION_COLUMNS)
            self.conversions_ = GBMRegressor(columns, "poisson", self.seed, monotone=self.CONVERSION_SIGNS)
            self.conversions_.fit(conv_frame, conv[ok], offset, rows(ok))
            self.funnel_ = {}
        if self.conversion_structure == FUNNEL_STRUCTURE and conv_frame.height >= 100:
            self.theta_ = self._calibrated_funnel_theta(frame)
        else:
            self.theta_ = negbin_dispersion(conv[ok], self.predict_conversions(conv_frame), rows(ok))

        cost = frame["cost"].to_numpy()
        ok = np.isfinite(cost) & (cost > 0)
        price_frame = frame.filter(pl.Series(ok))
        log_cost = np.log(cost[ok])
        self.price_ = {
            "mean": GBMRegressor(PRICE_COLUMNS, "regression", self.seed),
            **{f"q{int(q * 100)}": GBMRegressor(PRICE_COLUMNS, "quantile", self.seed, alpha=q) for q in QUANTILES},
        }
        self.price_band_ = _fit_conformal_band(self.price_, price_frame, log_cost, rows(ok))
        return self

    def _rows(self, frame: Rows) -> FeatureMatrix:
        """``frame`` as one float matrix of this set's columns (converted once, read by every model)."""
        return frame if isinstance(frame, FeatureMatrix) else FeatureMatrix(frame, self.columns)

    def _fit_stage(self, stage: FunnelStage, frame: pl.DataFrame) -> GBMRegressor:
        """One funnel stage: Poisson on the stage's count over log of its exposure, on the rows reporting both (a
        campaign that did not report its reach still teaches the later stages when it reported their counts)."""
        count = frame[stage.count].to_numpy().astype(np.float64)
        # The exposure: followers (from the features, as predictions read them) or the previous stage's count.
        exposure = np.exp(follower_offset(frame)) if stage.exposure is None else frame[stage.exposure].to_numpy()
        exposure = exposure.astype(np.float64)
        # An exposure of zero carries no information on the rate (its count is zero too): left out.
        ok = np.isfinite(count) & np.isfinite(exposure) & (exposure > 0)
        rows = frame.filter(pl.Series(ok))
        if rows.height < MIN_STAGE_ROWS:
            reported = repr(stage.count) if stage.exposure is None else f"{stage.count!r} and {stage.exposure!r}"
            raise ValueError(
                f"funnel stage {stage.name!r} needs at least {MIN_STAGE_ROWS} campaigns reporting {reported}, "
                f"got {rows.height}"
            )
        offset = np.log(exposure[ok]) + stage_share(rows, stage)
        columns = tuple(c for c in self.columns if c in stage.columns)
        return GBMRegressor(columns, "poisson", self.seed, monotone=dict(stage.signs)).fit(rows, count[ok], offset)

    def _calibrated_funnel_theta(self, frame: pl.DataFrame) -> float:
        """θ of the funnel's band, calibrated like the other bands (conformal): the stages are fitted on the older
        80% of the rows, θ is the largest whose p10–p90 covers 80% of the newest rows' conversions.

        The funnel's product is not fitted to conversions, so its residuals on the rows it was trained on are as
        large as on new rows and a moment estimate there gives too wide a band (86% coverage on test, both worlds).
        """
        cut = int(frame.height * (1 - CALIBRATION_SHARE))
        early = ModelSet(self.columns, seed=self.seed, conversion_structure=FUNNEL_STRUCTURE)
        early.funnel_ = {stage.name: early._fit_stage(stage, frame.head(cut)) for stage in FUNNEL_STAGES}
        late = frame.slice(cut)
        y = late["conversions"].to_numpy().astype(np.float64)
        ok = np.isfinite(y)
        return calibrated_dispersion(y[ok], early.predict_conversions(late.filter(pl.Series(ok))))

    def predict_stages(self, frame: Rows, *, threads: int = 1) -> dict[str, np.ndarray]:
        """The funnel's expected counts per stage (reach, clicks, conversions), each the previous stage's expectation
        times the stage's learned rate; the last one is :meth:`predict_conversions`."""
        if not self.funnel_:
            raise RuntimeError("ModelSet has no funnel (conversion_structure='direct')")
        frame = self._rows(frame)
        log_expected = follower_offset(frame)
        out: dict[str, np.ndarray] = {}
        for stage in FUNNEL_STAGES:
            offset = log_expected if stage.exposure is None else log_expected + stage_share(frame, stage)
            log_expected = self.funnel_[stage.name].predict_raw(frame, offset, threads=threads)
            out[stage.count] = np.exp(log_expected)
        return out

    def predict_conversions(self, frame: Rows, *, threads: int = 1) -> np.ndarray:
        """Expected conversions only (the ``conversions`` column of :meth:`predict`, computed the same way)."""
        if self.conversion_structure == FUNNEL_STRUCTURE:
            return self.predict_stages(frame, threads=threads)["conversions"]
        if self.conversions_ is None:
            raise RuntimeError("ModelSet is not fitted")
        frame = self._rows(frame)
        offset = exposure_offset(frame, self.exposure)
        mu: np.ndarray = np.exp(self.conversions_.predict_raw(frame, offset, threads=threads))
        return mu

    def predict_engagement_rate(self, frame: Rows, *, threads: int = 1) -> np.ndarray:
        """Expected engagement rate only (the ``engagement_rate`` column of :meth:`predict`, the same numbers)."""
        frame = self._rows(frame)
        rate: np.ndarray = np.exp(self.engagement_["mean"].predict_raw(frame, threads=threads))
        return rate

    def engagement_rate_bands(self, frame: Rows, *, threads: int = 1) -> dict[str, np.ndarray]:
        """The engagement rate's ``mean``, ``q10`` and ``q90`` (band widened as in :meth:`predict`, before the
        band is clipped to contain the mean)."""
        return _banded(self.engagement_, self._rows(frame), self.er_band_, threads)

    def predict_price(self, frame: Rows, quoted_price: np.ndarray | None = None, *, threads: int = 1) -> np.ndarray:
        """Expected price only (the ``price`` column of :meth:`predict`: a quoted price wins; the same numbers)."""
        frame = self._rows(frame)
        model_price = np.exp(self.price_["mean"].predict_raw(frame, threads=threads))
        quoted, has_quote = _quotes(quoted_price, len(model_price))
        price: np.ndarray = np.where(has_quote, quoted, model_price)
        return price

    def price_bands(self, frame: Rows, *, threads: int = 1) -> dict[str, np.ndarray]:
        """The model's price (``mean``, ``q10``, ``q90``, bands widened), before quotes: what :meth:`predict` uses.

        Price reads creator columns only (``PRICE_COLUMNS``), so callers may compute it once per creator.
        """
        frame = self._rows(frame)
        return _banded(self.price_, frame, self.price_band_, threads)

    def predict(
        self,
        frame: Rows,
        quoted_price: np.ndarray | None = None,
        *,
        threads: int = 1,
        price: dict[str, np.ndarray] | None = None,
        conversions: np.ndarray | None = None,
    ) -> pl.DataFrame:
        """Predictions with bands for feature rows (plus ``followers``); quoted prices win over the model's.

        ``price`` is :meth:`price_bands` and ``conversions`` :meth:`predict_conversions` of the same rows when the
        caller has them already.
        """
        if not self.is_fitted():
            raise RuntimeError("ModelSet is not fitted")
        frame = self._rows(frame)
        er = _banded(self.engagement_, frame, self.er_band_, threads)
        mu = self.predict_conversions(frame, threads=threads) if conversions is None else conversions
        lo, hi = negbin_quantiles(mu, self.theta_, QUANTILES)
        if price is None:
            price = self.price_bands(frame, threads=threads)
        model_price = price["mean"]
        quoted, has_quote = _quotes(quoted_price, len(mu))
        expected_price = np.where(has_quote, quoted, model_price)
        return pl.DataFrame(
            {
                "engagement_rate": er["mean"],
                "engagement_rate_p10": np.minimum(er["q10"], er["mean"]),
                "engagement_rate_p90": np.maximum(er["q90"], er["mean"]),
                "conversions": mu,
                "conversions_p10": np.minimum(lo, mu),
                "conversions_p90": np.maximum(hi, mu),
                "price": expected_price,
                "price_p10": np.where(has_quote, quoted, np.minimum(price["q10"], model_price)),
                "price_p90": np.where(has_quote, quoted, np.maximum(price["q90"], model_price)),
                "price_source": np.where(has_quote, "quoted", "model"),
                "cost_per_conversion": expected_price / np.maximum(mu, 1e-9),
            }
        )

    def is_fitted(self) -> bool:
        if self.conversion_structure == FUNNEL_STRUCTURE:
            return all(stage.name in self.funnel_ for stage in FUNNEL_STAGES)
        return self.conversions_ is not None

    def conversion_models(self) -> dict[str, GBMRegressor]:
        """The model(s) behind expected conversions by file name: ``conversions_mean``, or one per funnel stage."""
        if not self.is_fitted():
            raise RuntimeError("ModelSet is not fitted")
        if self.conversion_structure == FUNNEL_STRUCTURE:
            return {f"funnel_{stage.name}": self.funnel_[stage.name] for stage in FUNNEL_STAGES}
        assert self.conversions_ is not None
        return {"conversions_mean": self.conversions_}

    def regressors(self) -> dict[str, GBMRegressor]:
        """Every model of the set by its file name (without ``.txt``)."""
        return {
            **{f"engagement_{k}": m for k, m in self.engagement_.items()},
            **self.conversion_models(),
            **{f"price_{k}": m for k, m in self.price_.items()},
        }

    def compile(self, cache_dir: Path, *, workers: int | None = None) -> None:
        """Compile every model to native code (``audiencefit.models.forest``): the same predictions, several times
        faster.

        Models not yet in the cache are compiled in ``workers`` processes (default: one per CPU); cached ones load
        in milliseconds.
        """
        models = list(self.regressors().values())
        forests = compile_forests([m.to_text() for m in models], cache_dir, workers=workers or os.cpu_count() or 1)
        for model, forest in zip(models, forests, strict=True):
            model.compiled_ = forest

    def to_files(self) -> dict[str, str]:
        """Filename → text content (LightGBM text models and one JSON of metadata)."""
        files: dict[str, str] = {}
        meta: dict[str, Any] = {
            "columns": list(self.columns),
            "seed": self.seed,
            "theta": self.theta_,
            "er_band": self.er_band_,
            "price_band": self.price_band_,
            "exposure": self.exposure,
            "models": {},
        }
        if self.conversion_structure != DIRECT_STRUCTURE:
            # Recorded only when it is not the structure every earlier bundle has: direct bundles stay as they were.
            meta["conversion_structure"] = self.conversion_structure
        for name, model in self.regressors().items():
            files[f"{name}.txt"] = model.to_text()
            meta["models"][name] = model.meta()
        files["models.json"] = json.dumps(meta, indent=2, sort_keys=True)
        return files

    @classmethod
    def from_files(cls, read: dict[str, str]) -> ModelSet:
        meta = json.loads(read["models.json"])
        # Bundles written before the exposure was recorded used followers alone: they keep predicting as trained.
        exposure = meta.get("exposure", FOLLOWER_EXPOSURE)
        if exposure not in EXPOSURES:
            raise ValueError(f"unknown conversion exposure {exposure!r}")
        # Bundles written before the structure was recorded have one direct conversion model.
        structure = meta.get("conversion_structure", DIRECT_STRUCTURE)
        if structure not in CONVERSION_STRUCTURES:
            raise ValueError(f"unknown conversion structure {structure!r}")
        ms = cls(columns=tuple(meta["columns"]), seed=meta["seed"], exposure=exposure, conversion_structure=structure)
        ms.theta_ = float(meta["theta"])
        ms.er_band_ = float(meta.get("er_band", 0.0))
        ms.price_band_ = float(meta.get("price_band", 0.0))
        models = {name: GBMRegressor.from_text(m, read[f"{name}.txt"]) for name, m in meta["models"].items()}
        ms.engagement_ = {k.removeprefix("engagement_"): m for k, m in models.items() if k.startswith("engagement_")}
        ms.price_ = {k.removeprefix("price_"): m for k, m in models.items() if k.startswith("price_")}
        if structure == FUNNEL_STRUCTURE:
            missing = [s.name for s in FUNNEL_STAGES if f"funnel_{s.name}" not in models]
            if missing:
                raise ValueError(f"funnel conversion model without its stage(s) {missing}")
            ms.funnel_ = {s.name: models[f"funnel_{s.name}"] for s in FUNNEL_STAGES}
        elif "conversions_mean" not in models:
            raise ValueError("direct conversion model 'conversions_mean' missing")
        else:
            ms.conversions_ = models["conversions_mean"]
        return ms


CALIBRATION_SHARE = 0.2


def _check_weights(weight: np.ndarray | None, n: int) -> np.ndarray | None:
    """``weight`` as float64, checked: one finite positive value per row."""
    if weight is None:
        return None
    w = np.asarray(weight, dtype=np.float64)
    if w.shape != (n,):
        raise ValueError(f"sample_weight must have one value per training row ({n}), got shape {w.shape}")
    if not np.all(np.isfinite(w) & (w > 0)):
        raise ValueError(
            f"sample_weight must be finite and positive; {int(np.sum(~(np.isfinite(w) & (w > 0))))} are not"
        )
    return w


def weighted_conformal_quantile(scores: np.ndarray, weight: np.ndarray, coverage: float) -> float:
    """The conformal threshold under covariate shift (Tibshirani et al., 2019): the ``coverage`` quantile of the
    calibration scores weighted by ``weight``, plus the test point's own mass at +∞ (taken as the mean weight, the
    weight a new row has on average); the largest score when that quantile falls on the test point."""
    order = np.argsort(scores, kind="stable")
    s, w = scores[order], weight[order]
    cumulative = np.cumsum(w) / (float(np.sum(w)) + float(np.mean(w)))
    at = int(np.searchsorted(cumulative, coverage, side="left"))
    return float(s[min(at, len(s) - 1)])


def _fit_conformal_band(
    models: dict[str, GBMRegressor], frame: pl.DataFrame, y: np.ndarray, weight: np.ndarray | None = None
) -> float:
    """Fit the mean and quantile models; return the conformal widening of the p10–p90 band.

    Conformalised quantile regression (Romano et al., 2019): the quantile models are fitted on the older
    80% of rows, their band is checked on the newest 20%, and the band is widened (or narrowed) by the
    quantile of the misses so that it covers 80% of new rows; the mean model is fitted on every row. With
    ``weight``, every model is fitted weighted and the misses are weighted too (weighted conformal prediction:
    the band then covers 80% of the weighted population, :func:`weighted_conformal_quantile`).
    """
    n = len(y)
    cut = int(n * (1 - CALIBRATION_SHARE))
    models["mean"].fit(frame, y, weight=weight)
    quantiles = {k: m for k, m in models.items() if k != "mean"}
    if n < 100:
        for model in quantiles.values():
            model.fit(frame, y, weight=weight)
        return 0.0
    early = frame.head(cut)
    for model in quantiles.values():
        model.fit(early, y[:cut], weight=None if weight is None else weight[:cut])
    late = frame.slice(cut)
    lo, hi = quantiles["q10"].predict_raw(late), quantiles["q90"].predict_raw(late)
    scores = np.maximum(lo - y[cut:], y[cut:] - hi)
    coverage = 1 - (QUANTILES[0] + 1 - QUANTILES[1])
    if weight is not None and not np.all(weight[cut:] == weight[cut]):
        return weighted_conformal_quantile(scores, weight[cut:], coverage)
    level = min(1.0, coverage * (1 + 1 / len(scores)))
    return float(np.quantile(scores, level))


def _quotes(quoted_price: np.ndarray | None, n: int) -> tuple[np.ndarray, np.ndarray]:
    """(quoted prices, which of them count): a quote counts when it is a positive number; it then wins."""
    if quoted_price is None:
        return np.full(n, np.nan), np.zeros(n, dtype=bool)
    quoted = np.asarray(quoted_price, dtype=np.float64)
    return quoted, np.isfinite(quoted) & (quoted > 0)


def _banded(models: dict[str, GBMRegressor], frame: Rows, widen: float, threads: int = 1) -> dict[str, np.ndarray]:
    """Predictions on the original scale, with the band widened by ``widen`` on the log scale."""
    raw = {k: m.predict_raw(frame, threads=threads) for k, m in models.items()}
    raw["q10"] = raw["q10"] - widen
    raw["q90"] = raw["q90"] + widen
    return {k: np.exp(v) for k, v in raw.items()}


# Price depends on the creator, not on which brand asks: creator columns only, plus the platform.
PRICE_COLUMNS = (
    "log_followers",
    "er_median",
    "er_mean",
    "posts_per_week",
    "comment_like_ratio",
    "views_per_follower",
    "sponsored_share",
    "audience_quality",
    "platform_code",
)


# What plausibly sets a sponsored post's conversions per in-segment follower: how relevant the audience is (fit,
# share, countries, language), how relevant the content is to the segment and the brand (similarities, mentions),
# how real the audience is, how much attention it pays (engagement, views, comments), size and platform. Left out:
# posting cadence and trends, sponsored-post history, spikiness, recency, the follower sample's size and source.
# With ~1,500 past campaigns, trees find splits in those that describe which creators marketers picked rather than
# what converts, and they do not transfer to the creators a plan draws from (the follower sample of a point-in-time
# snapshot is also smaller than the current one: training and serving values differ for the same creator).
CONVERSION_COLUMNS = (
    "log_followers",
    "er_median",
    "er_mean",
    "comment_like_ratio",
    "views_per_follower",
    "suspicious_share",
    "audience_quality",
    "platform_code",
    *PAIR_COLUMNS,  # every (segment, creator) feature: how relevant the audience and the content are
)


# The funnel (conversion_structure="funnel"): a sponsored post reaches a share of the followers, a share of the
# accounts reached click, a share of the clicks buy. Each stage is a Poisson model of the campaigns' own count over
# log of its exposure (followers, reach, clicks), so each learns a *rate*, from every campaign that reported the
# count and its exposure: reach and clicks are tens to thousands per campaign where conversions are a handful, so
# the rates' dependence on audience and content fit is learned from far more signal than one model of conversions
# sees. Predicted conversions are followers × reach rate × click rate × conversion rate. The directions enforced
# are facts of the funnel, not of any data set: a larger account reaches a smaller share of its followers; more
# views per follower are more reach; fake accounts neither see, click nor buy; an audience (and content) closer to
# the segment clicks at least as often; an audience closer to the segment and in the brand's countries buys at
# least as often per click.
MIN_STAGE_ROWS = 20  # fewer reporting campaigns than this cannot fit a stage (one leaf's worth of rows)
REACH_COLUMNS = (
    "log_followers",
    "er_median",
    "er_mean",
    "views_per_follower",
    "suspicious_share",
    "audience_quality",
    "platform_code",
)


@dataclass(frozen=True)
class FunnelStage:
    """One stage: ``count`` over ``exposure`` (a label column; None = the creator's followers, from the features),
    read from ``columns`` with monotone ``signs``; ``segment_share`` multiplies the exposure by the estimated
    share of the audience in the segment (as :func:`exposure_offset` does)."""

    name: str
    count: str
    exposure: str | None
    columns: tuple[str, ...]
    signs: tuple[tuple[str, int], ...]
    segment_share: bool = False


FUNNEL_STAGES = (
    FunnelStage(
        "reach",
        "reach",
        None,
        REACH_COLUMNS,
        (("log_followers", -1), ("views_per_follower", 1), ("suspicious_share", -1), ("audience_quality", 1)),
    ),
    FunnelStage(
        "clicks",
        "clicks",
        "reach",
        CONVERSION_COLUMNS,
        (
            ("audience_fit", 1),
            ("audience_fit_raw", 1),
            ("audience_share", 1),
            ("content_sim", 1),
            ("brand_content_sim", 1),
            ("suspicious_share", -1),
            ("audience_quality", 1),
        ),
    ),
    FunnelStage(
        "conversions",
        "conversions",
        "clicks",
        CONVERSION_COLUMNS,
        (
            ("audience_fit", 1),
            ("audience_fit_raw", 1),
            ("audience_share", 1),
            ("country_share", 1),
            ("suspicious_share", -1),
            ("audience_quality", 1),
        ),
    ),
)


def follower_offset(frame: Rows) -> np.ndarray:
    """log(followers) from the features' log(1 + followers), at least log(1)."""
    return np.asarray(np.log(np.maximum(np.expm1(_column(frame, "log_followers")), 1.0)), dtype=np.float64)


def segment_share(frame: Rows) -> np.ndarray:
    """Log of the estimated share of the audience in the segment: audience fit × share in the target countries,
    floored at ``EXPOSURE_FLOOR`` (see :func:`exposure_offset`)."""
    fit = np.clip(np.nan_to_num(_column(frame, "audience_fit"), nan=0.0), 0.0, 1.0)
    countries = np.clip(np.nan_to_num(_column(frame, "country_share"), nan=1.0), 0.0, 1.0)
    return np.asarray(np.log(np.maximum(fit * countries, EXPOSURE_FLOOR)), dtype=np.float64)


def stage_share(frame: Rows, stage: FunnelStage) -> np.ndarray | float:
    """The stage's extra log exposure: the segment share when the stage uses it, else 0."""
    return segment_share(frame) if stage.segment_share else 0.0


def _column(frame: Rows, name: str) -> np.ndarray:
    values = frame.column(name) if isinstance(frame, FeatureMatrix) else frame[name].to_numpy()
    return np.asarray(values, dtype=np.float64)


def exposure_offset(frame: Rows, exposure: str = SEGMENT_EXPOSURE) -> np.ndarray:
    """Log of the audience a sponsored post is exposed to: the conversion model's offset.

    ``"followers"``: log(followers) (features carry log(1 + followers)); the trees then learn conversions per
    follower, and how much of the audience is in the segment — the dominant driver — is left to them.

    ``"segment_audience"``: log(followers × audience fit × share in the segment's target countries), the funnel
    marketers reason with (audience × share in the segment × rate). ``audience_fit`` (the real-audience-weighted
    similarity of the followers' interests to the segment) stands for the share of real followers in the segment
    (``audience_share``, the cluster-based estimate, ranks conversions per follower of retrieved candidates far
    worse; docs/evaluation.md). ``country_share`` is 1 for untargeted segments. Both are
    computed the same way on point-in-time snapshots and at serving time. The trees then learn a rate per
    *in-segment* follower. Why: past campaigns are creators marketers picked (on content and size), plans are made
    over creators retrieval picked (on audience fit); trees fitted on ~1,500 campaigns extrapolate the
    fit-to-conversions relation poorly to the other population, while a rate per relevant follower transfers
    better because the audience term is no longer learned from the data. The estimate is floored at
    ``EXPOSURE_FLOOR`` (a non-positive or tiny similarity is a noisy estimate, not an audience of zero); the trees
    correct the level.
    """
    followers = np.maximum(np.expm1(_column(frame, "log_followers")), 1.0)
    if exposure == FOLLOWER_EXPOSURE:
        return np.asarray(np.log(followers), dtype=np.float64)
    if exposure != SEGMENT_EXPOSURE:
        raise ValueError(f"unknown conversion exposure {exposure!r}")
    fit = np.clip(np.nan_to_num(_column(frame, "audience_fit"), nan=0.0), 0.0, 1.0)
    countries = np.clip(np.nan_to_num(_column(frame, "country_share"), nan=1.0), 0.0, 1.0)
    return np.asarray(np.log(followers * np.maximum(fit * countries, EXPOSURE_FLOOR)), dtype=np.float64)
