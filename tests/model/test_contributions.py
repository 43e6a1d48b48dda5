"""audiencefit.models.contributions: per-feature SHAP terms that add up to the forecast the service gives."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest

from audiencefit.models.bundle import load_bundle
from audiencefit.models.contributions import BASELINE, EXPOSURE, feature_contributions, top_contributions
from audiencefit.models.estimators import FUNNEL_STRUCTURE, FeatureMatrix, ModelSet
from audiencefit.models.pair_features import FEATURE_COLUMNS


@pytest.fixture(scope="module")
def rows(model_world) -> pl.DataFrame:
    return pl.read_parquet(model_world["trainset"]).head(40)


@pytest.fixture(scope="module")
def bundle(model_world):
    return load_bundle(model_world["bundle"])


def _sums(contributions: pl.DataFrame) -> np.ndarray:
    return contributions.group_by("row").agg(pl.col("contribution").sum()).sort("row")["contribution"].to_numpy()


@pytest.mark.parametrize(
    ("target", "predict"),
    [
        ("conversions", lambda m, f: m.predict_conversions(f)),
        ("engagement_rate", lambda m, f: m.predict_engagement_rate(f)),
        ("price", lambda m, f: m.price_bands(f)["mean"]),
    ],
)
def test_terms_add_up_to_the_log_of_the_forecast(bundle, rows, target, predict) -> None:
    contributions = feature_contributions(bundle.models, rows, target)
    assert contributions.height == rows.height * (len(FEATURE_COLUMNS) + 2)
    np.testing.assert_allclose(_sums(contributions), np.log(predict(bundle.models, rows)), rtol=0, atol=1e-6)
    # The same numbers from the matrix the scoring path uses.
    again = feature_contributions(bundle.models, FeatureMatrix(rows, FEATURE_COLUMNS), target)
    assert again.equals(contributions)


def test_a_funnels_stages_add_up_to_its_conversions(model_world, rows) -> None:
    train = pl.read_parquet(model_world["trainset"])
    funnel = ModelSet(FEATURE_COLUMNS, seed=0, conversion_structure=FUNNEL_STRUCTURE).fit(train)
    contributions = feature_contributions(funnel, rows, "conversions")
    np.testing.assert_allclose(_sums(contributions), np.log(funnel.predict_conversions(rows)), atol=1e-6)


def test_values_are_the_rows_features_and_only_features_contribute_beyond_baseline_and_exposure(bundle, rows) -> None:
    contributions = feature_contributions(bundle.models, rows)
    first = contributions.filter(pl.col("row") == 3)
    by_term = dict(zip(first["term"], first["value"], strict=True))
    assert by_term[BASELINE] is None and by_term[EXPOSURE] is None
    for column in ("log_followers", "audience_fit"):
        assert by_term[column] == pytest.approx(float(rows[column][3]), nan_ok=True)
    # A feature the conversion model does not read contributes nothing to conversions.
    read = set(bundle.models.conversions_.columns)
    unread = [c for c in FEATURE_COLUMNS if c not in read]
    if unread:
        assert first.filter(pl.col("term").is_in(unread))["contribution"].abs().max() == 0.0
    # Engagement has no exposure.
    er = feature_contributions(bundle.models, rows, "engagement_rate")
    assert er.filter(pl.col("term") == EXPOSURE)["contribution"].abs().max() == 0.0


def test_top_contributions_orders_by_effect_and_explains_the_factor(bundle, rows) -> None:
    contributions = feature_contributions(bundle.models, rows)
    top = top_contributions(contributions, 5, k=4)
    assert top.height == 6 and top["term"].to_list()[-2:] == [BASELINE, EXPOSURE]
    sizes = top.head(4)["contribution"].abs().to_list()
    assert sizes == sorted(sizes, reverse=True)
    np.testing.assert_allclose(top["factor"].to_numpy(), np.exp(top["contribution"].to_numpy()))
    with pytest.raises(ValueError, match="row 99"):
        top_contributions(contributions, 99)


def test_bad_target_and_unfitted_models_are_refused(bundle, rows) -> None:
    with pytest.raises(ValueError, match="target must be one of"):
        feature_contributions(bundle.models, rows, "clicks")  # type: ignore[arg-type]
    with pytest.raises(RuntimeError, match="not fitted"):
        feature_contributions(ModelSet(FEATURE_COLUMNS), rows)
    with pytest.raises(ValueError, match="feature columns missing"):
        feature_contributions(bundle.models, rows.drop("audience_fit"))


def test_the_scored_creators_forecasts_are_explained_for_their_matched_segment(model_world, bundle) -> None:
    from audiencefit.features.featureset import load_feature_set
    from audiencefit.models.contributions import explain_scored
    from audiencefit.models.pair_features import BrandQuery
    from audiencefit.models.query import Segment, embed_segments, query_embedder
    from audiencefit.models.scoring import top_creators

    fs = load_feature_set(model_world["features"])
    segments = [Segment("runners training for a marathon", segment_id="run"), Segment("vegan home cooks")]
    query = BrandQuery(segments, embed_segments(segments, query_embedder(fs)))
    top = top_creators(fs, bundle.models, query, np.arange(fs.creators.height), objective="conversions", k=8)
    explained = explain_scored(fs, bundle.models, query, top.scored)
    assert explained["creator_id"].unique(maintain_order=True).to_list() == top.scored["creator_id"].to_list()
    np.testing.assert_allclose(_sums(explained), np.log(top.scored["conversions"].to_numpy()), atol=1e-6)
    with pytest.raises(ValueError, match="lacks"):
        explain_scored(fs, bundle.models, query, top.scored.drop("row"))
    with pytest.raises(ValueError, match="not segments of the query"):
        explain_scored(fs, bundle.models, query, top.scored.with_columns(matched_segment=pl.lit("other")))
