"""Honest evaluation: a time-based, creator-grouped split, the model against baselines on the same test rows.

Split: campaigns are ordered by start date; the newest ``test_share`` form the test set, and every older
campaign of a creator who appears in the test set is dropped from training, so no creator straddles the split.

Metrics (model and every baseline, same rows): MAE on log engagement rate, Spearman correlation of engagement
rate, mean Poisson deviance of conversions, calibration (predicted / actual conversions), p10–p90 interval
coverage, and NDCG@20 of each brand's creators ranked by predicted conversions against actual conversions.

Baselines: the creator's historical median engagement rate; the follower-tier median; most-followed-first; and
the public peer's score 0.8·cosine(brand text, bio) + 0.2·ER. Each baseline's conversion forecast is its score
scaled by one constant fitted on the training rows (so deviance and calibration are fair to it).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import polars as pl

from audiencefit.models.estimators import ER_FLOOR, ModelSet

TIER_EDGES = (1_000, 10_000, 100_000, 500_000, 1_000_000)


@dataclass(frozen=True)
class Split:
    train: pl.DataFrame
    test: pl.DataFrame


def time_group_split(frame: pl.DataFrame, test_share: float = 0.2) -> Split:
    """Newest campaigns to test; creators in test are removed from train (grouped by creator)."""
    ordered = frame.sort("start_date", "campaign_id")
    cut = ordered["start_date"].quantile(1.0 - test_share, interpolation="lower")
    test = ordered.filter(pl.col("start_date") > cut)
    test_creators = test["creator_id"].unique().implode()
    train = ordered.filter((pl.col("start_date") <= cut) & ~pl.col("creator_id").is_in(test_creators))
    return Split(train, test)


def poisson_deviance(y: np.ndarray, mu: np.ndarray) -> float:
    mu = np.maximum(mu, 1e-9)
    term = np.where(y > 0, y * np.log(np.where(y > 0, y, 1.0) / mu), 0.0)
    return float(np.mean(2.0 * (term - (y - mu))))


def spearman(a: np.ndarray, b: np.ndarray) -> float:
    from scipy.stats import spearmanr

    if len(a) < 3 or np.all(a == a[0]) or np.all(b == b[0]):
        return 0.0
    return float(spearmanr(a, b).statistic)


def ndcg(scores: np.ndarray, gains: np.ndarray, k: int = 20) -> float:
    order = np.lexsort((np.arange(len(scores)), -scores))[:k]
    discounts = 1.0 / np.log2(np.arange(2, len(order) + 2))
    dcg = float(np.sum(gains[order] * discounts))
    ideal = np.sort(gains)[::-1][:k]
    idcg = float(np.sum(ideal * discounts[: len(ideal)]))
    return dcg / idcg if idcg > 0 else float("nan")


def brand_ndcg(test: pl.DataFrame, scores: np.ndarray, k: int = 20) -> float:
    """Mean over brands (with ≥ 2 test creators and any conversion) of NDCG@k by predicted conversions."""
    values = []
    brands = test["brand_id"].to_numpy()
    actual = test["conversions"].fill_null(0).to_numpy().astype(np.float64)
    for brand in np.unique(brands):
        mask = brands == brand
        if mask.sum() >= 2 and actual[mask].sum() > 0:
            values.append(ndcg(scores[mask], actual[mask], k))
    return float(np.mean(values)) if values else float("nan")


@dataclass(frozen=True)
class Forecast:
    """What a method predicts for test rows: engagement rate (may be None), conversions, optional bands."""

    engagement_rate: np.ndarray | None
    conversions: np.ndarray
    er_band: tuple[np.ndarray, np.ndarray] | None = None
    conv_band: tuple[np.ndarray, np.ndarray] | None = None
    rank_score: np.ndarray | None = None  # what the method ranks by, when it is not its conversion forecast


def _followers(frame: pl.DataFrame) -> np.ndarray:
    return frame["followers"].to_numpy().astype(np.float64)


def _scale(train: pl.DataFrame, train_score: np.ndarray) -> float:
    y = train["conversions"].to_numpy()
    ok = np.isfinite(y) & np.isfinite(train_score)
    denom = float(np.sum(train_score[ok]))
    return float(np.sum(y[ok]) / denom) if denom > 0 else 0.0


def _tier(frame: pl.DataFrame) -> np.ndarray:
    return np.searchsorted(np.array(TIER_EDGES), _followers(frame), side="right")


def baseline_historical_er(train: pl.DataFrame, test: pl.DataFrame) -> Forecast:
    def score(f: pl.DataFrame) -> np.ndarray:
        return np.asarray(np.nan_to_num(f["er_median"].to_numpy().astype(np.float64)) * _followers(f))

    er = test["er_median"].fill_null(strategy="mean").to_numpy().astype(np.float64)
    return Forecast(er, _scale(train, score(train)) * score(test))


def baseline_tier_median(train: pl.DataFrame, test: pl.DataFrame) -> Forecast:
    tiers_train, tiers_test = _tier(train), _tier(test)
    er_train = train["engagement_rate"].to_numpy()
    conv_train = train["conversions"].to_numpy()
    er, conv = np.zeros(test.height), np.zeros(test.height)
    global_er = float(np.nanmedian(er_train))
    global_conv = float(np.nanmean(conv_train))
    for t in np.unique(tiers_test):
        in_train = tiers_train == t
        er[tiers_test == t] = float(np.nanmedian(er_train[in_train])) if in_train.any() else global_er
        conv[tiers_test == t] = float(np.nanmean(conv_train[in_train])) if in_train.any() else global_conv
    return Forecast(er, conv)


def baseline_most_followed(train: pl.DataFrame, test: pl.DataFrame) -> Forecast:
    er = np.full(test.height, float(np.nanmedian(train["engagement_rate"].to_numpy())))
    return Forecast(er, _scale(train, _followers(train)) * _followers(test))


def baseline_public_peer(train: pl.DataFrame, test: pl.DataFrame) -> Forecast:
    """0.8·cosine(brand text, bio) + 0.2·ER: a ranking; its conversions are score × followers, scaled."""

    def peer(f: pl.DataFrame) -> np.ndarray:
        cos = f["brand_bio_sim"].fill_null(0.0).to_numpy().astype(np.float64)
        er = f["er_median"].fill_null(0.0).to_numpy().astype(np.float64)
        return 0.8 * cos + 0.2 * er

    def conv_score(f: pl.DataFrame) -> np.ndarray:
        return np.asarray(np.maximum(peer(f), 0.0) * _followers(f))

    er = test["er_median"].fill_null(strategy="mean").to_numpy().astype(np.float64)
    forecast = _scale(train, conv_score(train)) * conv_score(test)
    # The peer ranks by its score itself (what it shows a marketer), so NDCG uses that.
    return Forecast(er, forecast, rank_score=peer(test))


BASELINES: dict[str, Callable[[pl.DataFrame, pl.DataFrame], Forecast]] = {
    "historical median ER": baseline_historical_er,
    "follower-tier median": baseline_tier_median,
    "most-followed-first": baseline_most_followed,
    "public peer 0.8·cos(brand, bio)+0.2·ER": baseline_public_peer,
}


def model_forecast(models: ModelSet, test: pl.DataFrame) -> Forecast:
    pred = models.predict(test)
    return Forecast(
        pred["engagement_rate"].to_numpy(),
        pred["conversions"].to_numpy(),
        (pred["engagement_rate_p10"].to_numpy(), pred["engagement_rate_p90"].to_numpy()),
        (pred["conversions_p10"].to_numpy(), pred["conversions_p90"].to_numpy()),
    )


def score_forecast(name: str, test: pl.DataFrame, f: Forecast) -> dict[str, float | str]:
    er_true = test["engagement_rate"].to_numpy().astype(np.float64)
    conv_true = test["conversions"].to_numpy().astype(np.float64)
    ok_er = np.isfinite(er_true)
    ok_conv = np.isfinite(conv_true)
    row: dict[str, float | str] = {"method": name}
    if f.engagement_rate is not None:
        pred = np.maximum(np.asarray(f.engagement_rate, dtype=np.float64), ER_FLOOR)
        row["mae_log_er"] = float(np.mean(np.abs(np.log(pred[ok_er]) - np.log(np.maximum(er_true[ok_er], ER_FLOOR)))))
        row["spearman_er"] = spearman(pred[ok_er], er_true[ok_er])
    conv = np.asarray(f.conversions, dtype=np.float64)
    row["poisson_deviance"] = poisson_deviance(conv_true[ok_conv], conv[ok_conv])
    row["calibration"] = float(conv[ok_conv].sum() / max(conv_true[ok_conv].sum(), 1e-9))
    rank = f.rank_score if f.rank_score is not None else conv
    row["ndcg20_brand"] = brand_ndcg(test, np.asarray(rank, dtype=np.float64))
    row["spearman_conversions"] = spearman(conv[ok_conv], conv_true[ok_conv])
    if f.er_band is not None:
        lo, hi = f.er_band
        row["coverage_er_p10_p90"] = float(np.mean((er_true[ok_er] >= lo[ok_er]) & (er_true[ok_er] <= hi[ok_er])))
    if f.conv_band is not None:
        lo, hi = f.conv_band
        inside = (conv_true[ok_conv] >= lo[ok_conv]) & (conv_true[ok_conv] <= hi[ok_conv])
        row["coverage_conv_p10_p90"] = float(np.mean(inside))
    return row


# For each metric, whether higher is better; the model must win on all of these against every baseline.
HEADLINE = {"mae_log_er": False, "spearman_er": True, "poisson_deviance": False, "ndcg20_brand": True}


def evaluation_table(models: ModelSet, split: Split) -> pl.DataFrame:
    """One row per method (the model first), one column per metric."""
    rows = [score_forecast("audiencefit model", split.test, model_forecast(models, split.test))]
    for name, fn in BASELINES.items():
        rows.append(score_forecast(name, split.test, fn(split.train, split.test)))
    return pl.DataFrame(rows)


def beats_baselines(table: pl.DataFrame) -> dict[str, bool]:
    """Per headline metric: does the model beat every baseline?"""
    model = table.row(0, named=True)
    out = {}
    for metric, higher in HEADLINE.items():
        others = [v for v in table[metric].to_list()[1:] if v is not None and np.isfinite(v)]
        value = model[metric]
        out[metric] = all(value > o for o in others) if higher else all(value < o for o in others)
    return out


def price_metrics(models: ModelSet, test: pl.DataFrame) -> dict[str, float]:
    """MAE of log price and p10–p90 coverage on test campaigns' costs (model price, quotes ignored)."""
    cost = test["cost"].to_numpy().astype(np.float64)
    ok = np.isfinite(cost) & (cost > 0)
    pred = models.predict(test.filter(pl.Series(ok)))
    price = pred["price"].to_numpy()
    lo, hi = pred["price_p10"].to_numpy(), pred["price_p90"].to_numpy()
    c = cost[ok]
    return {
        "price_mae_log": float(np.mean(np.abs(np.log(price) - np.log(c)))),
        "price_coverage_p10_p90": float(np.mean((c >= lo) & (c <= hi))),
    }


# --- error on the creators the service showed (campaigns that came from recommendations) --------------------------

MIN_RECOMMENDED_ROWS = 30  # fewer test rows from recommendations: no recommended_ metrics (a σ from fewer is noise)
MIN_BRAND_ROWS_FOR_SIGMA = 3  # a brand's median from 1–2 rows would remove most of their error
COUNT_PSEUDO = 0.5  # log((pred + 0.5) / (actual + 0.5)) for conversion counts, which are often 0
RECOMMENDED_PREFIX = "recommended_"


@dataclass(frozen=True)
class RecommendedEval:
    """``recommended_*`` metrics on the test rows that came from recommendations, or why there are none."""

    rows: int  # test rows from recommendations
    metrics: dict[str, float]  # empty when ``reason`` is set
    reason: str | None = None


def log_ratio_spread(log_ratio: np.ndarray, brands: np.ndarray) -> dict[str, float]:
    """``sigma`` (sd after removing each brand's median, over brands with ≥ ``MIN_BRAND_ROWS_FOR_SIGMA`` rows: what
    ranking within a brand sees), ``sd`` (raw) and ``bias`` (mean) of log(predicted / actual). NaN when undefined."""
    r = np.asarray(log_ratio, dtype=np.float64)
    if len(r) == 0:
        return {"sigma": float("nan"), "sd": float("nan"), "bias": float("nan")}
    centred = []
    for brand in np.unique(brands):
        in_brand = r[brands == brand]
        if len(in_brand) >= MIN_BRAND_ROWS_FOR_SIGMA:
            centred.append(in_brand - np.median(in_brand))
    sigma = float(np.std(np.concatenate(centred))) if centred else float("nan")
    return {"sigma": sigma, "sd": float(np.std(r)), "bias": float(np.mean(r))}


FLOOR_DRAWS = 20


def poisson_floor(pred: np.ndarray, brands: np.ndarray, draws: int = FLOOR_DRAWS, seed: int = 0) -> dict[str, float]:
    """What the conversion metrics would read for a perfect forecast: actual counts drawn Poisson(pred) (the
    smallest noise a count has), mean over ``draws`` seeded draws. ``floor_{sigma,sd,bias}_log_conv``: the count's
    own noise (and the +0.5's Jensen gap, which makes the bias positive) that no model can remove."""
    rng = np.random.default_rng(seed)
    pred = np.maximum(np.asarray(pred, dtype=np.float64), 0.0)
    runs = [
        log_ratio_spread(np.log((pred + COUNT_PSEUDO) / (rng.poisson(pred) + COUNT_PSEUDO)), brands)
        for _ in range(draws)
    ]
    return {f"floor_{k}_log_conv": float(np.mean([r[k] for r in runs])) for k in ("sigma", "sd", "bias")}


def recommended_metrics(
    models: ModelSet, test: pl.DataFrame, *, min_rows: int = MIN_RECOMMENDED_ROWS
) -> RecommendedEval:
    """The agreed error metrics of the served population on real outcomes: test rows with ``from_recommendation``.

    Conversions: log((pred + 0.5) / (actual + 0.5)) (``COUNT_PSEUDO``: an actual count is often 0, and its Poisson
    noise is part of what is measured, unlike the synthetic world's ``served_`` metrics against expected values);
    engagement rate: log(pred / actual), both floored at ``ER_FLOOR`` as in the evaluation table. ``ndcg20`` is the
    mean over brands of NDCG@20 by predicted conversions among these rows (brands with ≥ 2 rows and a conversion);
    coverage is the share of actual values inside p10–p90.
    """
    if "from_recommendation" in test.columns:
        rec = test.filter(pl.col("from_recommendation").fill_null(False))
    else:
        rec = test.clear()
    if rec.height < min_rows:
        return RecommendedEval(
            rec.height,
            {},
            f"only {rec.height} test campaigns came from recommendations (at least {min_rows} are needed)",
        )
    f = model_forecast(models, rec)
    brands = rec["brand_id"].to_numpy()
    out: dict[str, float] = {"rows": float(rec.height)}
    conv_true = rec["conversions"].to_numpy().astype(np.float64)
    ok = np.isfinite(conv_true)
    conv_pred = np.asarray(f.conversions, dtype=np.float64)
    if ok.any():
        ratio = np.log((conv_pred[ok] + COUNT_PSEUDO) / (conv_true[ok] + COUNT_PSEUDO))
        out.update({f"{k}_log_conv": v for k, v in log_ratio_spread(ratio, brands[ok]).items()})
        out.update(poisson_floor(conv_pred[ok], brands[ok]))
        out["ndcg20"] = brand_ndcg(rec.filter(pl.Series(ok)), conv_pred[ok])
        if f.conv_band is not None:
            lo, hi = f.conv_band
            out["coverage_conv_p10_p90"] = float(np.mean((conv_true[ok] >= lo[ok]) & (conv_true[ok] <= hi[ok])))
    er_true = rec["engagement_rate"].to_numpy().astype(np.float64)
    ok = np.isfinite(er_true)
    if ok.any() and f.engagement_rate is not None:
        er_pred = np.maximum(np.asarray(f.engagement_rate, dtype=np.float64), ER_FLOOR)
        ratio = np.log(er_pred[ok] / np.maximum(er_true[ok], ER_FLOOR))
        out.update({f"{k}_log_er": v for k, v in log_ratio_spread(ratio, brands[ok]).items()})
        if f.er_band is not None:
            lo, hi = f.er_band
            out["coverage_er_p10_p90"] = float(np.mean((er_true[ok] >= lo[ok]) & (er_true[ok] <= hi[ok])))
    metrics = {f"{RECOMMENDED_PREFIX}{k}": v for k, v in out.items() if np.isfinite(v)}
    return RecommendedEval(rec.height, metrics)
