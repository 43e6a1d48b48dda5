"""Learning from our own recommendations: inverse-propensity weights, the join to the recommendation log, weighted
fits, the ``recommended_*`` metrics, and a training run over campaigns that came from a logged recommendation."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import polars as pl
import pytest
from pydantic import SecretStr

from audiencefit.models.reclog import Shown, ShownCreator, make_engine, write_now
from audiencefit.training.shown import FROM_RECOMMENDATION, attach_shown, join_shown, propensities
from audiencefit.training.weights import ipw_weights, kish_ess

# --- weights ------------------------------------------------------------------------------------------------------


def _population(n: int = 4000) -> tuple[np.ndarray, np.ndarray]:
    """Creators with known mean outcomes and a logging policy that shows the better ones far more often (as a
    ranker does), with exploration giving every creator a chance of at least 2%."""
    rng = np.random.default_rng(0)
    quality = rng.normal(size=n)
    mean_outcome = np.exp(1.0 + 0.8 * quality)
    propensity = np.clip(1.0 / (1.0 + np.exp(-(2.0 * quality - 1.0))), 0.02, 1.0)
    return mean_outcome, propensity


def test_weighted_estimate_is_unbiased_where_the_unweighted_is_not() -> None:
    mean_outcome, propensity = _population()
    truth = float(mean_outcome.mean())  # the population the ranker chooses from
    weighted, unweighted = [], []
    for seed in range(200):
        rng = np.random.default_rng(seed)
        shown = rng.random(len(propensity)) < propensity  # what the service showed
        y = rng.poisson(mean_outcome[shown]).astype(np.float64)  # outcomes only where shown
        w = ipw_weights(propensity[shown], max_weight=100.0)  # no clipping: 1/p ≤ 50
        assert w.clipped == 0
        weighted.append(float(np.average(y, weights=w.weights)))
        unweighted.append(float(y.mean()))
    # Self-normalised IPW (Hájek) is consistent; over 200 draws its mean is within 1% of the population value.
    assert abs(np.mean(weighted) / truth - 1) < 0.01
    # The shown creators are the better ones: the plain mean overstates the population by more than 30%.
    assert np.mean(unweighted) / truth > 1.3


def test_clipping_caps_weights_counts_them_and_pulls_toward_the_unweighted() -> None:
    p = np.array([0.001, 0.01, 0.1, 0.5, 1.0, np.nan])
    w = ipw_weights(p, max_weight=20.0)
    assert w.clipped == 2 and w.recommended == 5
    raw = np.array([20.0, 20.0, 10.0, 2.0, 1.0])  # 1/p clipped at 20
    np.testing.assert_allclose(w.weights[:5], raw * 5 / raw.sum())
    assert w.weights[5] == 1.0  # not from a recommendation
    assert w.weights[:5].mean() == pytest.approx(1.0)  # self-normalised over the recommended rows
    assert w.ess == pytest.approx(kish_ess(w.weights)) and w.ess_recommended < 5
    # A clip of 1 makes every recommended row count the same: the weighted estimate becomes the plain mean.
    flat = ipw_weights(p, max_weight=1.0)
    assert flat.clipped == 4 and flat.uniform and flat.ess == pytest.approx(6.0)
    # Clipping biases toward the shown population: on the unbiasedness case a tight clip loses part of the correction.
    mean_outcome, propensity = _population()
    rng = np.random.default_rng(1)
    shown = rng.random(len(propensity)) < propensity
    y = mean_outcome[shown]
    truth, plain = float(mean_outcome.mean()), float(y.mean())
    loose = float(np.average(y, weights=ipw_weights(propensity[shown], 100.0).weights))
    tight = float(np.average(y, weights=ipw_weights(propensity[shown], 3.0).weights))
    assert abs(loose - truth) < abs(tight - truth) < abs(plain - truth)


def test_weights_refuse_impossible_propensities() -> None:
    assert ipw_weights(np.array([np.nan, np.nan])).uniform  # nothing from recommendations: all 1
    for bad in (0.0, -0.1, 1.5, np.inf):
        with pytest.raises(ValueError, match=r"outside \(0, 1\]"):
            ipw_weights(np.array([0.5, bad]))
    with pytest.raises(ValueError, match="max_weight"):
        ipw_weights(np.array([0.5]), max_weight=0.5)


# --- the join -----------------------------------------------------------------------------------------------------


def _answer(rid: str, creators: dict[str, float], *, brand: str | None = None, segment_ids=("s1",)) -> Shown:
    return Shown(
        recommendation_id=rid,
        created_at=f"2026-01-01T00:00:0{rid[-1]}Z",
        kind="recommendation",
        segments=[{"id": s, "text": f"segment {s}", "weight": 1.0, "countries": []} for s in segment_ids],
        objective="conversions",
        bundle_id="bundle-a",
        model_source="test",
        feature_set_id="fs-a",
        candidates=100,
        brand_id=brand,
        creators=[
            ShownCreator(
                rank=i + 1,
                creator_id=c,
                segment=segment_ids[0],
                score=1.0,
                conversions=2.0,
                engagement_rate=0.03,
                price=100.0,
                propensity=p,
                explored=p < 1.0,
            )
            for i, (c, p) in enumerate(creators.items())
        ],
    )


def _campaigns(rows: list[tuple[str, str, str, str, str | None]]) -> pl.DataFrame:
    return pl.DataFrame(
        rows,
        schema={
            "campaign_id": pl.String,
            "brand_id": pl.String,
            "segment_id": pl.String,
            "creator_id": pl.String,
            "recommendation_id": pl.String,
        },
        orient="row",
    )


def _log(tmp_path: Path) -> str:
    url = f"sqlite:///{tmp_path / 'log.db'}"
    engine = make_engine(url)
    write_now(
        engine,
        [
            _answer("r1", {"c1": 0.25, "c2": 1.0}, brand="b1"),
            _answer("r2", {"c3": 0.5}, brand="other-brand", segment_ids=("s7", "s8")),
        ],
    )
    engine.dispose()
    return url


def test_join_finds_shown_creators_and_reports_missing_and_mismatched(tmp_path: Path) -> None:
    url = _log(tmp_path)
    frame = _campaigns(
        [
            ("k1", "b1", "s1", "c1", "r1"),  # found: propensity 0.25, explored
            ("k2", "b1", "s1", "c2", "r1"),  # found: propensity 1
            ("k3", "b1", "s1", "c9", "r1"),  # r1 did not show c9
            ("k4", "b1", "s1", "c1", "r404"),  # no such recommendation
            ("k5", "b2", "s2", "c3", "r2"),  # found, but r2 was for another brand and other segments
            ("k6", "b1", "s1", "c1", None),  # not from a recommendation
        ]
    )
    out, report = attach_shown(frame, url)
    assert out["campaign_id"].to_list() == frame["campaign_id"].to_list()  # order kept
    assert out[FROM_RECOMMENDATION].to_list() == [True, True, False, False, True, False]
    assert out["shown_propensity"].to_list() == [0.25, 1.0, None, None, 0.5, None]
    assert out["shown_rank"].to_list() == [1, 2, None, None, 1, None]
    assert out["shown_explored"].to_list() == [True, False, None, None, True, None]
    assert out["shown_bundle_id"].to_list() == ["bundle-a", "bundle-a", None, None, "bundle-a", None]
    assert report.summary() == {
        "recommendation_ids": 5,
        "recommendation_ids_joined": 3,
        "recommendation_ids_missing": 1,
        "recommendation_creator_not_shown": 1,
        "recommendation_segment_mismatch": 1,
        "recommendation_brand_mismatch": 1,
    }
    warnings = "\n".join(report.warnings())
    assert "1 of 5 campaign rows carry a recommendation_id that the recommendation log" in warnings
    assert "(e.g. campaign k4)" in warnings and "(e.g. campaign k3)" in warnings
    assert "treated as not from recommendations (weight 1)" in warnings
    assert "segment that is not one of their recommendation's segments (e.g. campaign k5)" in warnings
    np.testing.assert_array_equal(np.isnan(propensities(out)), [False, False, True, True, False, True])


def test_join_without_ids_reads_nothing_and_a_missing_log_file_is_a_warning(tmp_path: Path) -> None:
    absent = tmp_path / "nowhere" / "log.db"
    url = f"sqlite:///{absent}"
    out, report = attach_shown(_campaigns([("k1", "b1", "s1", "c1", None)]), url)
    assert report.with_id == 0 and report.warnings() == [] and out[FROM_RECOMMENDATION].to_list() == [False]
    out, report = attach_shown(_campaigns([("k1", "b1", "s1", "c1", "r1"), ("k2", "b1", "s1", "c2", "r1")]), url)
    assert report.missing_id == 2 and not report.log_found
    assert "(which does not exist)" in report.warnings()[0]
    assert not absent.parent.exists()  # reading never creates a log


def test_an_unusable_log_is_an_input_error_naming_it_without_its_password(tmp_path: Path) -> None:
    from audiencefit.features.errors import InputError

    frame = _campaigns([("k1", "b1", "s1", "c1", "r1")])
    with pytest.raises(InputError, match="recommendation log nodialect://u:\\*\\*\\*@host/db cannot be read") as err:
        attach_shown(frame, "nodialect://u:hunter2@host/db")
    assert "hunter2" not in str(err.value)
    (tmp_path / "log.db").write_bytes(b"not a database at all" * 100)
    with pytest.raises(InputError, match="cannot be read"):
        attach_shown(frame, f"sqlite:///{tmp_path / 'log.db'}")


def test_join_is_pure_on_frames() -> None:
    shown = pl.DataFrame(
        {"recommendation_id": ["r1"], "creator_id": ["c1"], "propensity": [0.5], "rank": [3], "explored": [True]},
    ).with_columns(bundle_id=pl.lit("b"), segment=pl.lit("s1"))
    out, report = join_shown(_campaigns([("k1", "b1", "s1", "c1", "r1")]), shown)
    assert report.joined == 1 and out["shown_rank"].to_list() == [3]
    with pytest.raises(ValueError, match="column to be joined to the recommendation log"):
        join_shown(pl.DataFrame({"campaign_id": ["k1"]}), shown)


# --- weighted fits ------------------------------------------------------------------------------------------------


def test_weighted_dispersion_and_conformal_quantile_respect_weights() -> None:
    from audiencefit.models.estimators import negbin_dispersion, weighted_conformal_quantile

    mu = np.full(4, 2.0)
    y = np.array([2.0, 2.0, 0.0, 8.0])
    theta = negbin_dispersion(y, mu)
    # Weighting the two rows that match the mean up makes the population less overdispersed.
    assert negbin_dispersion(y, mu, np.array([10.0, 10.0, 1.0, 1.0])) > theta
    assert negbin_dispersion(y, mu, np.ones(4)) == theta
    scores = np.arange(10, dtype=np.float64)
    # Equal weights: the usual conformal rank ⌈(n+1)·0.8⌉ = 9th smallest score.
    assert weighted_conformal_quantile(scores, np.ones(10), 0.8) == 8.0
    # Heavy weight on the smallest scores lowers the threshold.
    heavy_low = np.where(scores < 3, 20.0, 1.0)
    assert weighted_conformal_quantile(scores, heavy_low, 0.8) == 2.0


def test_model_set_fit_uses_sample_weights(loop_run, monkeypatch) -> None:
    import audiencefit.models.estimators as est
    from audiencefit.models.pair_features import FEATURE_COLUMNS

    fit_rounds = est._fit_rounds  # fewer boosting rounds: the test is about weights reaching every fit, not accuracy
    monkeypatch.setattr(est, "_fit_rounds", lambda p, x, y, i, _r, w=None: fit_rounds(p, x, y, i, 30, w))
    frame = loop_run[0].training_set.frame
    plain = est.ModelSet(FEATURE_COLUMNS, seed=3).fit(frame)
    ones = est.ModelSet(FEATURE_COLUMNS, seed=3).fit(frame, sample_weight=np.ones(frame.height))
    w = np.where(np.arange(frame.height) % 3 == 0, 8.0, 0.5)
    weighted = est.ModelSet(FEATURE_COLUMNS, seed=3).fit(frame, sample_weight=w)
    a, b, c = (m.predict(frame) for m in (plain, ones, weighted))
    assert a.equals(b)  # weights of 1 are the unweighted fit, bit for bit
    for column in ("conversions", "engagement_rate", "engagement_rate_p90", "price"):
        assert not np.allclose(a[column].to_numpy(), c[column].to_numpy()), column
    assert weighted.theta_ != plain.theta_
    with pytest.raises(ValueError, match="one value per training row"):
        est.ModelSet(FEATURE_COLUMNS).fit(frame, sample_weight=np.ones(3))
    with pytest.raises(ValueError, match="finite and positive"):
        est.ModelSet(FEATURE_COLUMNS).fit(frame, sample_weight=np.zeros(frame.height))


# --- a training run over campaigns from logged recommendations ---------------------------------------------------


@pytest.fixture(scope="module")
def loop_run(small_world: Path, small_features: Path, tmp_path_factory: pytest.TempPathFactory):
    """A training run on the small world where every other campaign came from a logged recommendation (one id
    unknown to the log; propensities 0.01, 0.2 or 1)."""
    from audiencefit.models.estimators import ModelSet
    from audiencefit.settings import Settings
    from audiencefit.training.train import train_models

    tmp_path = tmp_path_factory.mktemp("loop")
    world = tmp_path / "world"
    shutil.copytree(small_world, world, ignore=shutil.ignore_patterns("truth"))
    campaigns = pl.read_parquet(world / "campaigns.parquet").sort("start_date", "campaign_id")
    n = campaigns.height
    # Every other campaign came from a recommendation; one of those ids is unknown to the log.
    rids = [f"rec{i:04d}" if i % 2 == 0 else None for i in range(n)]
    campaigns = campaigns.with_columns(recommendation_id=pl.Series(rids, dtype=pl.String))
    campaigns.write_parquet(world / "campaigns.parquet")
    url = f"sqlite:///{tmp_path / 'recommendations.db'}"
    engine = make_engine(url)
    rows = [r for r in campaigns.iter_rows(named=True) if r["recommendation_id"] is not None][1:]
    rng = np.random.default_rng(0)
    write_now(
        engine,
        [
            Shown(
                recommendation_id=r["recommendation_id"],
                created_at="2026-01-01T00:00:00Z",
                kind="plan",
                segments=[{"id": r["segment_id"], "text": "t", "weight": 1.0, "countries": []}],
                objective="conversions",
                bundle_id="bundle-x",
                model_source="test",
                feature_set_id="fs",
                candidates=300,
                brand_id=r["brand_id"],
                creators=[
                    ShownCreator(1, r["creator_id"], r["segment_id"], 1.0, 1.0, 0.02, 50.0, float(p), bool(p < 0.5))
                    for p in [rng.choice([0.01, 0.2, 1.0])]
                ],
            )
            for r in rows
        ],
    )
    engine.dispose()
    settings = Settings(data_dir=tmp_path / "data", recommendation_log_url=SecretStr(url), ipw_max_weight=20.0)
    fitted_with: list[np.ndarray | None] = []
    fit = ModelSet.fit

    def recording_fit(self: ModelSet, frame: pl.DataFrame, sample_weight: np.ndarray | None = None) -> ModelSet:
        fitted_with.append(sample_weight)
        return fit(self, frame, sample_weight)

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(ModelSet, "fit", recording_fit)
        result = train_models(world, small_features, settings, out_dir=tmp_path / "bundle", progress=False)
    return result, fitted_with


def test_train_joins_the_log_weights_rows_and_records_the_counts(loop_run) -> None:
    from audiencefit.training.tracking import model_metrics

    result, fitted_with = loop_run
    n = result.training_set.frame.height
    with_id = (n + 1) // 2
    assert result.shown.with_id == with_id and result.shown.joined == with_id - 1 and result.shown.missing_id == 1
    assert result.training_set.frame[FROM_RECOMMENDATION].sum() == with_id - 1
    train_rec = int(result.split.train[FROM_RECOMMENDATION].sum())
    assert result.weights.recommended == train_rec > 0
    assert not result.weights.uniform and result.weights.ess_recommended < train_rec
    assert result.weights.clipped == int((result.split.train["shown_propensity"] < 1 / 20).sum()) > 0
    # The served models were fitted with exactly these weights (1 for rows not from recommendations).
    assert len(fitted_with) == 1 and fitted_with[0] is not None
    np.testing.assert_array_equal(fitted_with[0], result.weights.weights)
    assert np.all(fitted_with[0][~result.split.train[FROM_RECOMMENDATION].to_numpy()] == 1.0)
    training = result.bundle_meta["training"]
    for key, value in {
        "recommendation_ids": with_id,
        "recommendation_ids_joined": with_id - 1,
        "recommendation_ids_missing": 1,
        "ipw_recommended_rows": train_rec,
        "ipw_clipped": result.weights.clipped,
        "ipw_ess_recommended": round(result.weights.ess_recommended, 2),
        "recommended_test_rows": int(result.split.test[FROM_RECOMMENDATION].sum()),
    }.items():
        assert training[key] == value, key
    # The small world has too few test rows from recommendations for recommended_* metrics: said, not invented.
    assert result.recommended.reason is not None and result.bundle_meta["recommended_metrics_absent"]
    assert not [k for k in model_metrics(result) if k.startswith("recommended_")]


def test_recommended_metrics_are_absent_below_the_minimum_and_named_above_it(loop_run) -> None:
    from audiencefit.training.evaluate import MIN_RECOMMENDED_ROWS, recommended_metrics

    models = loop_run[0].models
    test = loop_run[0].training_set.frame
    few = test.with_columns(from_recommendation=pl.int_range(pl.len()) < MIN_RECOMMENDED_ROWS - 1)
    absent = recommended_metrics(models, few)
    assert absent.metrics == {} and absent.rows == MIN_RECOMMENDED_ROWS - 1
    assert absent.reason == (
        f"only {MIN_RECOMMENDED_ROWS - 1} test campaigns came from recommendations (at least 30 are needed)"
    )
    assert recommended_metrics(models, test.drop(FROM_RECOMMENDATION)).rows == 0
    present = recommended_metrics(models, test.with_columns(from_recommendation=pl.lit(True)))
    assert present.reason is None and present.rows == test.height
    expected = {
        f"recommended_{m}"
        for m in (
            "rows",
            "sigma_log_conv",
            "sd_log_conv",
            "bias_log_conv",
            "sigma_log_er",
            "sd_log_er",
            "bias_log_er",
            "ndcg20",
            "coverage_conv_p10_p90",
            "coverage_er_p10_p90",
            "floor_sigma_log_conv",
            "floor_sd_log_conv",
            "floor_bias_log_conv",
        )
    }
    assert set(present.metrics) == expected
    m = present.metrics
    assert m["recommended_sigma_log_conv"] > 0 and m["recommended_sd_log_conv"] > 0
    assert 0 <= m["recommended_coverage_conv_p10_p90"] <= 1 and 0 < m["recommended_ndcg20"] <= 1
    # The conversion bias is the mean of log((pred + 0.5) / (actual + 0.5)) over those rows.
    pred = models.predict(test)["conversions"].to_numpy()
    actual = test["conversions"].to_numpy().astype(float)
    ok = np.isfinite(actual)
    assert m["recommended_bias_log_conv"] == pytest.approx(np.mean(np.log((pred[ok] + 0.5) / (actual[ok] + 0.5))))
    # sigma removes each brand's median (brands with ≥ 3 rows): a per-brand shift of the predictions leaves it.
    brand_code = test["brand_id"].rank("dense").to_numpy().astype(float)
    from audiencefit.training.evaluate import log_ratio_spread

    r = np.log((pred[ok] + 0.5) / (actual[ok] + 0.5))
    brands = test["brand_id"].to_numpy()[ok]
    shifted = log_ratio_spread(r + brand_code[ok], brands)
    assert shifted["sigma"] == pytest.approx(m["recommended_sigma_log_conv"])
    assert shifted["sd"] != pytest.approx(m["recommended_sd_log_conv"])
    # The floor: a perfect forecast still shows the counts' Poisson noise, and the +0.5 makes its bias positive.
    assert m["recommended_floor_sd_log_conv"] > 0 and m["recommended_floor_bias_log_conv"] > 0
    from audiencefit.training.evaluate import poisson_floor

    huge = poisson_floor(np.full(200, 1e6), np.array(["b"] * 200))
    assert huge["floor_sd_log_conv"] < 0.01 and abs(huge["floor_bias_log_conv"]) < 0.001


def test_a_share_lifts_the_recommended_rows_together_and_never_lowers_them() -> None:
    p = np.array([0.5, 1.0, np.nan, np.nan, np.nan, np.nan, np.nan, np.nan])  # 2 recommended rows, 6 others
    plain = ipw_weights(p, max_weight=20.0)
    half = ipw_weights(p, max_weight=20.0, share=0.5)
    assert half.share_factor == pytest.approx(3.0)  # 2 rows must weigh as much as the 6 others
    assert half.weights[:2].sum() == pytest.approx(half.weights[2:].sum())
    np.testing.assert_allclose(half.weights[:2] / half.weights[0], plain.weights[:2] / plain.weights[0])  # same mix
    np.testing.assert_allclose(half.weights[2:], 1.0)
    assert half.summary()["ipw_share_factor"] == 3.0
    # Already above the share: unchanged. No rows from recommendations, or only those: nothing to lift.
    assert ipw_weights(p, max_weight=20.0, share=0.1).share_factor == 1.0
    assert ipw_weights(np.full(4, np.nan), share=0.5).uniform
    assert ipw_weights(np.array([0.5, 1.0]), share=0.5).share_factor == 1.0
    for bad in (-0.1, 1.0, float("nan")):
        with pytest.raises(ValueError, match="share must be within"):
            ipw_weights(p, share=bad)
