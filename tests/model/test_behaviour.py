"""Behavioural tests of the trained models: directional expectations, invariances, determinism."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest

from audiencefit.features.featureset import load_feature_set
from audiencefit.models.bundle import load_bundle
from audiencefit.models.estimators import ModelSet
from audiencefit.models.pair_features import FEATURE_COLUMNS, BrandQuery
from audiencefit.models.query import Segment, query_embedder
from audiencefit.models.scoring import score_creators
from audiencefit.training.evaluate import time_group_split


@pytest.fixture(scope="module")
def bundle(model_world):
    return load_bundle(model_world["bundle"])


@pytest.fixture(scope="module")
def rows(model_world) -> pl.DataFrame:
    return pl.read_parquet(model_world["trainset"]).head(150)


def test_more_audience_in_the_segment_never_lowers_predicted_conversions(bundle, rows):
    base = rows.select(FEATURE_COLUMNS)
    previous = None
    for step in np.linspace(0.0, 1.0, 6):
        frame = base.with_columns(
            audience_fit=pl.lit(float(step) * 0.8),
            audience_fit_raw=pl.lit(float(step) * 0.8),
            audience_share=pl.lit(float(step)),
        )
        conv = bundle.models.predict(frame)["conversions"].to_numpy()
        if previous is not None:
            assert (conv >= previous - 1e-12).all()
        previous = conv
    # ...and the effect is real, not flat: a fully fitting audience converts more than a non-fitting one.
    low = bundle.models.predict(base.with_columns(audience_fit=pl.lit(0.0), audience_share=pl.lit(0.0)))
    high = bundle.models.predict(base.with_columns(audience_fit=pl.lit(0.8), audience_share=pl.lit(1.0)))
    assert high["conversions"].sum() > low["conversions"].sum()


def test_an_inflated_audience_gets_lower_predicted_engagement(bundle, rows):
    base = rows.select(FEATURE_COLUMNS)
    authentic = base.with_columns(
        suspicious_share=pl.lit(0.03), audience_quality=pl.lit(95.0), engagement_anomaly=pl.lit(0.0)
    )
    inflated = base.with_columns(
        suspicious_share=pl.lit(0.6), audience_quality=pl.lit(35.0), engagement_anomaly=pl.lit(0.7)
    )
    er_auth = bundle.models.predict(authentic)["engagement_rate"].to_numpy()
    er_infl = bundle.models.predict(inflated)["engagement_rate"].to_numpy()
    assert (er_infl <= er_auth + 1e-12).all()
    assert er_infl.mean() < er_auth.mean()


def test_predictions_do_not_depend_on_creator_id_or_row_order(model_world, bundle):
    fs = load_feature_set(model_world["features"])
    embedder = query_embedder(fs)
    from audiencefit.models.query import embed_segments

    segs = [Segment("runners training for a marathon", segment_id="a"), Segment("vegan recipes", segment_id="b")]
    query = BrandQuery(segs, embed_segments(segs, embedder))
    rows = np.arange(0, 200, dtype=np.int64)
    first = score_creators(fs, bundle.models, query, rows)
    shuffled = np.random.default_rng(0).permutation(rows)
    second = score_creators(fs, bundle.models, query, shuffled)
    assert first.sort("creator_id").equals(second.sort("creator_id"))
    assert not any("id" in c.split("_") for c in FEATURE_COLUMNS)  # no identifier is a model input


def test_training_is_deterministic(model_world, bundle):
    """Refitting every model on the same rows with the same seed reproduces the trained bundle exactly."""
    frame = pl.read_parquet(model_world["trainset"])
    split = time_group_split(frame)
    again = ModelSet(FEATURE_COLUMNS, seed=bundle.meta["training"]["seed"]).fit(split.train)
    assert again.predict(split.test).equals(bundle.models.predict(split.test))
    assert again.to_files() == bundle.models.to_files()


def test_bands_contain_the_point_forecast(bundle, rows):
    pred = bundle.models.predict(rows.select(FEATURE_COLUMNS))
    for name in ("engagement_rate", "conversions", "price"):
        assert (pred[f"{name}_p10"] <= pred[name]).all() and (pred[name] <= pred[f"{name}_p90"]).all()
    assert (pred["cost_per_conversion"] > 0).all()


def test_quoted_price_wins_over_the_model(bundle, rows):
    quoted = np.full(rows.height, 123.0)
    quoted[::2] = np.nan
    pred = bundle.models.predict(rows.select(FEATURE_COLUMNS), quoted_price=quoted)
    assert (pred["price"].to_numpy()[1::2] == 123.0).all()
    assert set(pred["price_source"].to_list()) == {"quoted", "model"}


@pytest.mark.parametrize(
    ("objective", "budget", "require_mention"),
    [("conversions", None, False), ("engagement", None, False), ("fit", None, False), ("conversions", 300.0, False),
     ("engagement", 150.0, False), ("conversions", None, True)],
)  # fmt: skip
def test_top_creators_equals_ranking_every_candidate_fully(model_world, bundle, objective, budget, require_mention):
    from audiencefit.models.pair_features import view_arrays
    from audiencefit.models.query import embed_segments
    from audiencefit.models.scoring import rank, top_creators

    fs = load_feature_set(model_world["features"])
    segs = [Segment(text="fitness fans who run marathons", countries=("US",)), Segment(text="home bakers", weight=0.5)]
    # The most used terms, so that some creators mention the "brand".
    terms = tuple(fs.terms.group_by("term").agg(pl.col("count").sum()).sort("count", descending=True)["term"][:3])
    query = BrandQuery(segs, embed_segments(segs, query_embedder(fs)), brand_terms=terms)
    rows = np.arange(0, fs.creators.height, 2)
    full = score_creators(fs, bundle.models, query, rows).with_columns(row=pl.Series(rows))
    if require_mention:
        full = full.filter(pl.col("brand_mentions") > 0)
        assert 0 < full.height < len(rows)
    expected = rank(full, objective, budget=budget).head(15)
    top = top_creators(
        fs, bundle.models, query, rows, objective=objective, k=15, budget=budget, require_mention=require_mention
    )
    assert top.scored.drop("propensity", "explored").equals(expected)
    assert top.scored["propensity"].to_list() == [1.0] * top.scored.height  # no exploration: all ranked in
    assert not top.scored["explored"].any() and top.pool_propensity is None
    assert top.mentioning == full.height
    assert top.affordable == rank(full, objective, budget=budget).height
    if budget is not None:
        assert 0 < top.affordable < len(rows)  # the budget really cut
    assert view_arrays(fs) is view_arrays(fs)
    if objective == "fit":
        return
    # With exploration: the first k − m are the ranking's; the m others come from below, scored like the rest.
    from audiencefit.models.explore import Exploration

    explored = top_creators(
        fs, bundle.models, query, rows, objective=objective, k=15, budget=budget, require_mention=require_mention,
        exploration=Exploration(share=0.2, seed=5),
    ).scored  # fmt: skip
    assert explored.head(12).drop("propensity", "explored").equals(expected.head(12))
    assert explored["explored"].to_list() == [False] * 12 + [True] * 3
    ranked = rank(full, objective, budget=budget)
    below = set(ranked["creator_id"][12:].to_list())
    assert set(explored["creator_id"][12:].to_list()) <= below
    by_id = {r["creator_id"]: r for r in ranked.iter_rows(named=True)}
    for r in explored.tail(3).iter_rows(named=True):  # the same numbers as scoring every candidate fully
        assert r["conversions"] == by_id[r["creator_id"]]["conversions"]
