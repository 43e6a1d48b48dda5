"""When not to trust a forecast: how far the creators served lie from the creators the models were trained among.

Training stores a summary of the creator-level inputs of its feature set (:func:`summarize_features`, plain JSON in
``bundle.json``); the service compares the feature set it serves with it once, when the model or the features load
(:func:`check_features`), never per request.

**Statistic.** For each monitored input, the population stability index (PSI) between the training creators and the
served creators, over the training deciles (up to 10 bins; a tie-heavy input has fewer) plus one bin for a missing
value; categorical inputs (platform, language, country) use their categories as bins, with an "other" bin for
categories training did not see. With bin shares ``t`` (training) and ``s`` (served), each smoothed by half a creator
so that an empty bin is finite, ``PSI = Σ (s − t) · ln(s / t)``.

**Threshold.** An input has shifted when its PSI is at least ``PSI_SHIFT`` (0.25, the customary "major shift") *and*
beyond what sampling alone gives at these sizes: under no shift ``PSI · n_eff`` follows roughly a χ² law with
(bins − 1) degrees of freedom, ``n_eff = n_train · n_served / (n_train + n_served)``, so an input also needs a PSI
above the χ² 99.99th percentile / ``n_eff``. A small feature set (a few hundred creators) therefore needs a larger
shift before it is flagged. The forecast reliability is ``"low"`` when at least one input has shifted, ``"ok"``
otherwise, and ``"unknown"`` for a bundle trained before summaries were stored. The figures behind the threshold
(same world at another seed versus a real-export-like world) are in docs/evaluation.md, "When not to trust a
forecast".

**Per creator.** A creator whose input lies outside the range the training creators covered (below their minimum,
above their maximum, or missing where no training creator's was) is flagged on its own: tree models answer such a
creator as if it sat at the edge of what they saw. The flags are computed once per feature set (an ``int8`` code
per creator and input) and read per response for the creators shown.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import polars as pl

from audiencefit.features.errors import InputError
from audiencefit.models.pair_features import CREATOR_COLUMNS, CreatorView, view_arrays

SUMMARY_METHOD = "quantile-bins-psi"
SUMMARY_VERSION = 1
PSI_SHIFT = 0.25  # the customary "major shift" of a population stability index
NULL_QUANTILE_Z = 3.719  # standard normal 99.99th percentile: the sampling bound is the χ² 99.99th percentile
# A creator is out of range beyond the training minimum / maximum by more than this share of the training p10–p90
# spread (tree models answer a value just past the edge as at the edge: only a clear overshoot is worth a word).
RANGE_MARGIN = 0.1
SMOOTHING = 0.5  # creators added to every bin before shares are taken (an empty bin stays finite)
DECILES = tuple(i / 10 for i in range(1, 10))
MAX_CATEGORIES = 40  # categorical inputs: the most common categories kept by name, the rest are "other"
MAX_REASONS = 6  # shifted inputs named in a reliability's reasons (the rest are counted)
MAX_CREATOR_REASONS = 3

Level = Literal["ok", "low", "unknown"]
OTHER = "(other)"
MISSING = "(missing)"

# Categorical inputs, by their feature-set column (platform is the model's ``platform_code``).
CATEGORICAL = ("platform", "language", "country")
# How each numeric input is named and shown to a marketer or analyst: (words, kind). Kinds: "pct" rate shown as a
# percentage, "share" a 0–1 share shown as a percentage of creators or posts, "flag" a 0/1 shown as the share of
# creators that have it, "log" a natural log shown as its exponential, "num" a plain number.
LABELS: dict[str, tuple[str, str]] = {
    "log_followers": ("followers", "log"),
    "following_ratio": ("accounts followed per follower", "num"),
    "n_posts": ("recent posts per creator", "num"),
    "er_median": ("median engagement rate", "pct"),
    "er_mean": ("mean engagement rate", "pct"),
    "er_trend": ("engagement trend", "num"),
    "posts_per_week": ("posts per week", "num"),
    "gap_cv": ("irregularity of posting (gap CV)", "num"),
    "comment_like_ratio": ("comments per like", "num"),
    "sponsored_share": ("share of sponsored posts", "share"),
    "sponsored_er_ratio": ("engagement of sponsored posts relative to others", "num"),
    "likes_spikiness": ("spikiness of likes", "num"),
    "views_per_follower": ("views per follower", "num"),
    "days_since_last_post": ("days since the last post", "num"),
    "suspicious_share": ("suspicious share of the follower sample", "share"),
    "follower_sample_size": ("followers sampled per creator", "num"),
    "er_residual": ("engagement relative to creators of the same size", "num"),
    "engagement_anomaly": ("engagement anomaly score", "num"),
    "audience_quality": ("audience quality (0–100)", "num"),
    "has_bio": ("creators with a bio", "flag"),
    "audience_from_followers": ("creators whose audience is measured from a follower sample", "flag"),
    "platform": ("platform mix", "cat"),
    "language": ("language mix", "cat"),
    "country": ("country mix", "cat"),
}
NUMERIC = tuple(c for c in CREATOR_COLUMNS if c != "platform_code")
# Per-creator range codes.
IN_RANGE, BELOW, ABOVE, UNSEEN_MISSING = 0, 1, 2, 3


def _numeric_block(view: CreatorView) -> np.ndarray:
    """(n, len(NUMERIC)) float64, NaN where missing: the creator columns exactly as the models read them."""
    block = view_arrays(view).creator_block
    idx = [CREATOR_COLUMNS.index(c) for c in NUMERIC]
    out: np.ndarray = block[:, idx]
    return out


def _categories(view: CreatorView, name: str) -> list[str | None]:
    creators = view.creators
    if name not in creators.columns:
        raise InputError(f"feature set has no {name!r} column: cannot compare its creators with the training ones")
    return [None if v is None else str(v) for v in creators[name].to_list()]


def summarize_features(view: CreatorView) -> dict[str, Any]:
    """The JSON summary of a feature set's creators that a bundle stores (see the module docstring)."""
    block = _numeric_block(view)
    n = block.shape[0]
    if n == 0:
        raise InputError("the feature set has no creators: nothing to summarise for the drift check")
    numeric: dict[str, Any] = {}
    for j, name in enumerate(NUMERIC):
        col = block[:, j]
        present = col[np.isfinite(col)]
        entry: dict[str, Any] = {"missing": float(1.0 - len(present) / n)}
        if len(present):
            edges = np.unique(np.quantile(present, DECILES))
            entry |= {
                "edges": [float(e) for e in edges],
                "shares": [float(s) for s in _bin_counts(present, edges) / n],
                "min": float(present.min()),
                "p10": float(np.quantile(present, 0.1)),
                "p90": float(np.quantile(present, 0.9)),
                "max": float(present.max()),
                "median": float(np.median(present)),
            }
        else:
            entry |= {"edges": [], "shares": [], "min": None, "max": None, "median": None}
        numeric[name] = entry
    categorical: dict[str, Any] = {}
    for name in CATEGORICAL:
        values = _categories(view, name)
        counts: dict[str, int] = {}
        for v in values:
            key = MISSING if v is None else v
            counts[key] = counts.get(key, 0) + 1
        ordered = sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))
        kept = dict(ordered[:MAX_CATEGORIES])
        other = sum(c for _, c in ordered[MAX_CATEGORIES:])
        shares = {k: c / n for k, c in kept.items()}
        if other:
            shares[OTHER] = other / n
        categorical[name] = {"shares": shares}
    return {
        "method": SUMMARY_METHOD,
        "version": SUMMARY_VERSION,
        "creators": n,
        "numeric": numeric,
        "categorical": categorical,
    }


def _bin_counts(values: np.ndarray, edges: np.ndarray) -> np.ndarray:
    """Counts of ``values`` in the bins ``(-inf, e0), [e0, e1), …, [e_last, inf)``."""
    return np.bincount(np.searchsorted(edges, values, side="right"), minlength=len(edges) + 1).astype(np.float64)


def psi(train_shares: np.ndarray, served_counts: np.ndarray, n_train: int) -> float:
    """Population stability index between training bin shares and served bin counts, both smoothed by
    ``SMOOTHING`` creators per bin."""
    bins = len(train_shares)
    n_served = float(served_counts.sum())
    t = (np.asarray(train_shares, dtype=np.float64) * n_train + SMOOTHING) / (n_train + SMOOTHING * bins)
    s = (np.asarray(served_counts, dtype=np.float64) + SMOOTHING) / (n_served + SMOOTHING * bins)
    return float(np.sum((s - t) * np.log(s / t)))


def sampling_bound(bins: int, n_train: int, n_served: int) -> float:
    """The PSI that sampling alone exceeds one time in ten thousand when nothing shifted: χ²(bins − 1) at its 99.99th
    percentile (Wilson–Hilferty) divided by the effective sample size."""
    k = max(bins - 1, 1)
    chi2 = k * (1.0 - 2.0 / (9.0 * k) + NULL_QUANTILE_Z * math.sqrt(2.0 / (9.0 * k))) ** 3
    n_eff = n_train * n_served / max(n_train + n_served, 1)
    return chi2 / max(n_eff, 1e-9)


@dataclass(frozen=True)
class InputShift:
    """One monitored input: its PSI, the threshold it was held to, and what moved, in words."""

    feature: str
    psi: float
    threshold: float
    shifted: bool
    served: str
    training: str

    def sentence(self) -> str:
        label = LABELS.get(self.feature, (self.feature, "num"))[0]
        return f"{label}: {self.served} here against {self.training} in training (PSI {self.psi:.2f})"

    def to_json(self) -> dict[str, Any]:
        return {
            "feature": self.feature,
            "psi": round(self.psi, 4),
            "threshold": round(self.threshold, 4),
            "shifted": self.shifted,
            "served": self.served,
            "training": self.training,
        }


@dataclass(frozen=True)
class Reliability:
    """How far a feature set's creators lie from the model's training creators, computed once per load."""

    level: Level
    reasons: tuple[str, ...]
    inputs: tuple[InputShift, ...] = ()
    creators_served: int = 0
    creators_trained: int = 0
    # (n_creators, len(NUMERIC)) int8 range codes (IN_RANGE, BELOW, ABOVE, UNSEEN_MISSING); None without a summary.
    range_codes: np.ndarray | None = field(default=None, repr=False, compare=False)
    training_range: dict[str, tuple[float | None, float | None]] = field(default_factory=dict, repr=False)

    @property
    def shifted(self) -> list[InputShift]:
        return [i for i in self.inputs if i.shifted]

    def out_of_range_rows(self) -> np.ndarray:
        """Rows of creators with at least one input outside the training range."""
        if self.range_codes is None:
            return np.zeros(0, dtype=np.int64)
        return np.flatnonzero((self.range_codes != IN_RANGE).any(axis=1))

    def creator_reasons(self, row: int) -> list[str]:
        """Why creator ``row``'s forecast is less certain than others' (empty when it lies within the training
        range). Reads one row of the precomputed codes."""
        if self.range_codes is None or not 0 <= row < self.range_codes.shape[0]:
            return []
        codes = self.range_codes[row]
        out = []
        for j in np.flatnonzero(codes != IN_RANGE):
            name = NUMERIC[j]
            label, kind = LABELS[name]
            low, high = self.training_range.get(name, (None, None))
            code = int(codes[j])
            if code == UNSEEN_MISSING:
                out.append(f"{label} is unknown for this creator, and was known for every training creator")
            elif code == BELOW and low is not None:
                out.append(f"{label} is below anything the model was trained on (lowest {_show(low, kind)})")
            elif high is not None:
                out.append(f"{label} is above anything the model was trained on (highest {_show(high, kind)})")
        if len(out) > MAX_CREATOR_REASONS:
            out = [*out[:MAX_CREATOR_REASONS], f"and {len(out) - MAX_CREATOR_REASONS} more input(s) out of range"]
        return out

    def response_reasons(self, rows: Sequence[int]) -> list[str]:
        """The reasons to show with one response over creators ``rows``: the feature set's, plus how many of these
        creators lie outside the training range."""
        reasons = list(self.reasons)
        if self.range_codes is not None and len(rows):
            idx = np.asarray(rows, dtype=np.int64)
            idx = idx[(idx >= 0) & (idx < self.range_codes.shape[0])]
            outside = int((self.range_codes[idx] != IN_RANGE).any(axis=1).sum())
            if outside:
                reasons.append(
                    f"{outside} of the {len(rows)} creator(s) in this answer have inputs outside the range the "
                    "model was trained on; their own forecast_reliability says which"
                )
        return reasons

    def to_json(self) -> dict[str, Any]:
        """The full check, for ``/v1/model`` and batch manifests."""
        return {
            "level": self.level,
            "reasons": list(self.reasons),
            "statistic": "PSI over training deciles (numeric) or categories, plus a missing-value bin",
            "threshold": f"PSI >= {PSI_SHIFT} and above the chi-squared 99.99th percentile / n_eff",
            "creators_served": self.creators_served,
            "creators_trained": self.creators_trained,
            "creators_out_of_range": len(self.out_of_range_rows()),
            "inputs": [i.to_json() for i in sorted(self.inputs, key=lambda i: -i.psi)],
        }


UNKNOWN_REASON = (
    "the model bundle stores no summary of the creators it was trained on (trained before summaries existed), so "
    "how well its forecasts fit these creators cannot be checked; retrain with 'audiencefit train' to enable the check"
)


def unknown(creators_served: int = 0) -> Reliability:
    """The reliability of a bundle without a training summary."""
    return Reliability(level="unknown", reasons=(UNKNOWN_REASON,), creators_served=creators_served)


def _show(value: float | None, kind: str) -> str:
    if value is None or not math.isfinite(value):
        return "unknown"
    if kind == "pct":
        return f"{value:.2%}"
    if kind in ("share", "flag"):
        return f"{value:.0%}"
    if kind == "log":
        return f"{math.exp(value):,.0f}"
    return f"{value:.3g}"


def _describe_numeric(values: np.ndarray, kind: str, missing: float) -> str:
    """A typical value of the input in words: the share of creators having a flag, else the median (and how often
    the value is missing, when it is)."""
    present = values[np.isfinite(values)]
    if len(values) and not len(present):
        return "unknown for every creator"
    if kind == "flag":
        text = f"{float(present.mean()) if len(present) else 0.0:.0%} of creators"
    else:
        text = f"median {_show(float(np.median(present)) if len(present) else None, kind)}"
    if missing >= 0.05:
        text += f", unknown for {missing:.0%}"
    return text


def _describe_trained(entry: dict[str, Any], kind: str) -> str:
    missing = float(entry.get("missing", 0.0))
    if missing >= 1.0:
        return "unknown for every creator"
    if kind == "flag":
        edges, shares = entry.get("edges", []), entry.get("shares", [])
        # The share of 1s: the bins from the edge at 1 upward (0/1 values: edges hold 0 and 1 when both occur).
        ones = sum(s for e, s in zip([-math.inf, *edges], shares, strict=True) if e >= 1.0)
        present = max(1.0 - missing, 1e-12)
        text = f"{ones / present:.0%} of creators"
    else:
        text = f"median {_show(entry.get('median'), kind)}"
    if missing >= 0.05:
        text += f", unknown for {missing:.0%}"
    return text


def _numbers(value: object, where: str, *, allow_none: bool = False) -> list[float]:
    if not isinstance(value, list) or not all(
        (isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x)) or (allow_none and x is None)
        for x in value
    ):
        raise InputError(f"{where}: must be a list of finite numbers")
    return [float(x) for x in value]


def _check_summary(summary: object) -> dict[str, Any]:
    """``summary`` if it is a well-formed summary of this version; ``InputError`` naming the field otherwise."""
    where = "bundle.json, field 'feature_summary'"
    if not isinstance(summary, dict) or summary.get("method") != SUMMARY_METHOD:
        raise InputError(f"{where}: not a {SUMMARY_METHOD!r} summary")
    if summary.get("version") != SUMMARY_VERSION:
        raise InputError(f"{where}: version {summary.get('version')!r}, this code reads {SUMMARY_VERSION}")
    n = summary.get("creators")
    if not isinstance(n, int) or isinstance(n, bool) or n <= 0:
        raise InputError(f"{where}: 'creators' must be a positive integer")
    numeric, categorical = summary.get("numeric"), summary.get("categorical")
    if not isinstance(numeric, dict) or not isinstance(categorical, dict):
        raise InputError(f"{where}: 'numeric' and 'categorical' must be objects")
    for name, entry in numeric.items():
        at = f"{where}, input {name!r}"
        if not isinstance(entry, dict):
            raise InputError(f"{at}: must be an object")
        edges = _numbers(entry.get("edges"), f"{at}, 'edges'")
        shares = _numbers(entry.get("shares"), f"{at}, 'shares'")
        if (edges or shares) and len(shares) != len(edges) + 1:
            raise InputError(f"{at}: {len(shares)} shares for {len(edges)} edges (needs one more share than edges)")
        if edges != sorted(edges):
            raise InputError(f"{at}: 'edges' must be ascending")
        stats = ("missing", "min", "max", "p10", "p90", "median")
        _numbers([entry.get(k) for k in stats if k in entry], f"{at}, {'/'.join(stats)}", allow_none=True)
    for name, entry in categorical.items():
        at = f"{where}, categorical input {name!r}"
        shares_map = entry.get("shares") if isinstance(entry, dict) else None
        if not isinstance(shares_map, dict) or not all(isinstance(k, str) for k in shares_map):
            raise InputError(f"{at}: 'shares' must be an object of category → share")
        _numbers(list(shares_map.values()), f"{at}, 'shares'")
    return summary


def check_features(summary: object, view: CreatorView) -> Reliability:
    """Compare the served creators of ``view`` with the training summary; ``unknown`` without a summary."""
    if summary is None:
        return unknown(view.creators.height)
    summary = _check_summary(summary)  # before anything is read from the view: a bad bundle is named first
    block = _numeric_block(view)
    n = block.shape[0]
    n_train = int(summary["creators"])
    inputs: list[InputShift] = []
    codes = np.zeros((n, len(NUMERIC)), dtype=np.int8)
    ranges: dict[str, tuple[float | None, float | None]] = {}
    for j, name in enumerate(NUMERIC):
        entry = summary["numeric"].get(name)
        if entry is None:
            continue
        kind = LABELS[name][1]
        col = block[:, j]
        finite = np.isfinite(col)
        edges = np.asarray(entry["edges"], dtype=np.float64)
        train_missing = float(entry.get("missing", 0.0))
        if len(edges) or entry["shares"]:
            train_shares = np.append(np.asarray(entry["shares"], dtype=np.float64), train_missing)
            served = np.append(_bin_counts(col[finite], edges), float((~finite).sum()))
        else:  # every training value was missing: only the missing bin
            train_shares = np.array([0.0, 1.0])
            served = np.array([float(finite.sum()), float((~finite).sum())])
        value = psi(train_shares, served, n_train)
        bound = max(PSI_SHIFT, sampling_bound(len(train_shares), n_train, n))
        inputs.append(
            InputShift(
                feature=name,
                psi=value,
                threshold=bound,
                shifted=value >= bound,
                served=_describe_numeric(col, kind, float((~finite).mean()) if n else 0.0),
                training=_describe_trained(entry, kind),
            )
        )
        low, high = entry.get("min"), entry.get("max")
        ranges[name] = (low, high)
        if low is not None and high is not None:
            margin = RANGE_MARGIN * (float(entry.get("p90", high)) - float(entry.get("p10", low)))
            codes[finite & (col < low - margin), j] = BELOW
            codes[finite & (col > high + margin), j] = ABOVE
        if train_missing == 0.0:
            codes[~finite, j] = UNSEEN_MISSING
    for name in CATEGORICAL:
        entry = summary["categorical"].get(name)
        if entry is None:
            continue
        inputs.append(_categorical_shift(name, entry["shares"], _categories(view, name), n_train, n))
    shifted = sorted((i for i in inputs if i.shifted), key=lambda i: -i.psi)
    reasons: list[str] = []
    if shifted:
        reasons.append(
            f"these {n:,} creators differ from the {n_train:,} the model was trained among in {len(shifted)} of "
            f"{len(inputs)} inputs, so its forecasts here may be far off (PSI at or above the threshold); use them to "
            "rank creators against each other rather than as expected results, and retrain on this data's own "
            "campaigns to fix it"
        )
        reasons.extend(i.sentence() for i in shifted[:MAX_REASONS])
        if len(shifted) > MAX_REASONS:
            reasons.append(f"and {len(shifted) - MAX_REASONS} more shifted input(s) (see /v1/model)")
        follower = next((i for i in shifted if i.feature == "audience_from_followers"), None)
        if follower is not None:
            reasons.append(
                "fewer creators here have follower data than in training: audience quality is computed from "
                "engagement only and audience shares are estimated from content for those creators"
            )
    return Reliability(
        level="low" if shifted else "ok",
        reasons=tuple(reasons),
        inputs=tuple(inputs),
        creators_served=n,
        creators_trained=n_train,
        range_codes=codes,
        training_range=ranges,
    )


def _categorical_shift(
    name: str, train: dict[str, float], values: list[str | None], n_train: int, n_served: int
) -> InputShift:
    keys = list(train)
    if OTHER not in keys:
        keys.append(OTHER)
    index = {k: i for i, k in enumerate(keys)}
    counts = np.zeros(len(keys), dtype=np.float64)
    for v in values:
        key = MISSING if v is None else v
        counts[index.get(key, index[OTHER])] += 1
    shares = np.array([float(train.get(k, 0.0)) for k in keys])
    value = psi(shares, counts, n_train)
    bound = max(PSI_SHIFT, sampling_bound(len(keys), n_train, n_served))
    served_shares = counts / max(n_served, 1)
    # The category that moved most, in words.
    j = int(np.argmax(np.abs(served_shares - shares)))
    shown = "categories not seen in training" if keys[j] == OTHER else repr(keys[j])
    return InputShift(
        feature=name,
        psi=value,
        threshold=bound,
        shifted=value >= bound,
        served=f"{served_shares[j]:.0%} {shown}",
        training=f"{shares[j]:.0%}",
    )


def summary_frame(reliability: Reliability) -> pl.DataFrame:
    """The per-input table of a check (for notebooks and docs): feature, psi, threshold, shifted, served, training."""
    rows = [i.to_json() for i in sorted(reliability.inputs, key=lambda i: -i.psi)]
    schema = {
        "feature": pl.String,
        "psi": pl.Float64,
        "threshold": pl.Float64,
        "shifted": pl.Boolean,
        "served": pl.String,
        "training": pl.String,
    }
    return pl.DataFrame(rows, schema=schema)
