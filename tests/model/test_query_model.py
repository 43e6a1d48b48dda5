"""The bundle records the query transformer its brand descriptions went through; serving says when it differs."""

from __future__ import annotations

import dataclasses
import logging
from pathlib import Path

import pytest

from audiencefit.features.embed import for_queries
from audiencefit.features.featureset import load_feature_set
from audiencefit.models.bundle import load_bundle
from audiencefit.models.query import query_embedder
from audiencefit.serving.state import warn_on_another_query_model


def test_training_records_the_query_model_and_serving_warns_when_another_embeds(
    model_world: dict[str, Path], caplog: pytest.LogCaptureFixture
) -> None:
    fs = load_feature_set(model_world["features"])
    bundle = load_bundle(model_world["bundle"])
    assert bundle.meta["training"]["query_embedder_id"] == for_queries(query_embedder(fs)).id

    with caplog.at_level(logging.WARNING, logger="audiencefit.serving.state"):
        warn_on_another_query_model(bundle, fs)
    assert not [r for r in caplog.records if "query model" in r.getMessage()]

    training = {**bundle.meta["training"], "query_embedder_id": "minilm-l6-v2/onnx-fp32-000000000000"}
    other = dataclasses.replace(bundle, meta={**bundle.meta, "training": training})
    with caplog.at_level(logging.WARNING, logger="audiencefit.serving.state"):
        warn_on_another_query_model(other, fs)
    [record] = [r for r in caplog.records if "query model" in r.getMessage()]
    assert record.trained_query_embedder == "minilm-l6-v2/onnx-fp32-000000000000"  # type: ignore[attr-defined]
    assert record.serving_query_embedder == for_queries(query_embedder(fs)).id  # type: ignore[attr-defined]


def test_an_unknown_query_model_is_refused_by_name(model_world: dict[str, Path]) -> None:
    from audiencefit.features.errors import InputError

    with pytest.raises(InputError, match="query model 'fp16'"):
        query_embedder(load_feature_set(model_world["features"]), "fp16")
