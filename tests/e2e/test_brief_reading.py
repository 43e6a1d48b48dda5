"""A description sent without segments is read as a brief (audiencefit.models.brief): the response shows how, and the
audience it names, not the product it sells, decides whom the fit ranks first."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import polars as pl

from tests.e2e.conftest import SEGMENTS

# Product words of one interest (baking), audience of another (gaming): the case where the whole brief as one
# segment ranked creators of the product's category.
MISMATCHED = (
    "Our artisan bakery sells sourdough bread, cakes, croissants, baking kits and bread recipes, and wants to reach "
    "gamers who stream video games"
)


def topic_shares(world: Path, ids: list[str], topics: tuple[str, ...]) -> np.ndarray:
    """(len(ids), len(topics)): the true share of each creator's real audience interested in each topic."""
    names = pl.read_parquet(world / "truth" / "topics.parquet").sort("topic_id")["name"].to_list()
    truth = pl.read_parquet(world / "truth" / "creators.parquet", columns=["creator_id", "audience_topics"])
    mix = dict(zip(truth["creator_id"].to_list(), truth["audience_topics"].to_list(), strict=True))
    return np.array([[mix[c][names.index(t)] for t in topics] for c in ids])


def test_a_description_only_request_shows_how_it_was_read(client):
    resp = client.post("/v1/recommendations", json={"description": MISMATCHED, "k": 5, "objective": "fit"})
    assert resp.status_code == 200, resp.text
    body = resp.json()
    reading = body["brief_reading"]
    assert reading["fallback"] is False
    assert reading["language"] == "en"
    audience = [s for s in reading["segments"] if s["role"] == "audience"]
    assert audience[0]["text"] == "gamers who stream video games"
    assert audience[0]["source"] == "cue 'wants to reach'"
    assert "sourdough" in reading["product"]
    assert not any("sourdough" in s["text"] for s in audience)
    ids = {s["id"] for s in reading["segments"]}
    assert {c["matched_segment"] for c in body["creators"]} <= ids
    assert {s["segment"] for c in body["creators"] for s in c["segments"]} == ids


def test_product_words_no_longer_dominate_a_mismatched_brief(client, small_world: Path):
    k = 15
    read = client.post("/v1/recommendations", json={"description": MISMATCHED, "k": k, "objective": "fit"})
    # the behaviour before: the whole description as the one segment
    whole = client.post(
        "/v1/recommendations",
        json={"description": MISMATCHED, "segments": [{"text": MISMATCHED}], "k": k, "objective": "fit"},
    )
    assert read.status_code == whole.status_code == 200
    read_ids = [c["creator_id"] for c in read.json()["creators"]]
    whole_ids = [c["creator_id"] for c in whole.json()["creators"]]
    gaming_read, baking_read = topic_shares(small_world, read_ids, ("gaming", "baking")).mean(axis=0)
    gaming_whole, baking_whole = topic_shares(small_world, whole_ids, ("gaming", "baking")).mean(axis=0)
    assert baking_whole > gaming_whole  # the failure this fixes: the product's category first
    assert gaming_read > baking_read  # read as a brief: the audience's
    assert gaming_read > gaming_whole


def test_a_brief_without_an_audience_clause_falls_back_and_says_so(client):
    resp = client.post("/v1/recommendations", json={"description": "Premium dog food made from fresh ingredients."})
    assert resp.status_code == 200, resp.text
    body = resp.json()
    assert body["brief_reading"]["fallback"] is True
    assert "no audience clause" in body["brief_reading"]["note"]
    assert all(c["matched_segment"] == "brand description" for c in body["creators"])


def test_explicit_segments_are_unchanged_and_show_no_reading(client):
    resp = client.post("/v1/recommendations", json={"description": MISMATCHED, "segments": SEGMENTS, "k": 5})
    assert resp.status_code == 200, resp.text
    body = resp.json()
    assert body["brief_reading"] is None
    assert {c["matched_segment"] for c in body["creators"]} <= {"fitness", "cooking"}


def test_score_and_plans_show_the_reading(client, small_features: Path):
    ids = pl.read_parquet(small_features / "creators.parquet")["creator_id"].to_list()[:3]
    score = client.post("/v1/score", json={"description": MISMATCHED, "creator_ids": ids})
    assert score.status_code == 200, score.text
    assert score.json()["brief_reading"]["segments"][0]["text"] == "gamers who stream video games"
    assert {c["matched_segment"] for c in score.json()["creators"]} <= {"audience 1", "audience 1 core"}
    plan = client.post("/v1/plans", json={"description": MISMATCHED, "budget": 5_000})
    assert plan.status_code == 200, plan.text
    assert plan.json()["brief_reading"]["fallback"] is False
    with_segments = client.post("/v1/plans", json={"segments": SEGMENTS, "budget": 5_000})
    assert with_segments.json()["brief_reading"] is None


def test_an_emoji_only_description_is_a_clear_422(client):
    resp = client.post("/v1/recommendations", json={"description": "🔥🔥🔥"})
    assert resp.status_code == 422
    assert "no words to match" in resp.text


def test_search_brief_prints_its_reading_and_ranks_with_it(small_features: Path):
    import json

    from typer.testing import CliRunner

    import audiencefit.cli  # noqa: F401  (registers the commands)
    from audiencefit.cli._app import app

    result = CliRunner().invoke(app, ["search", "--features", str(small_features), "--brief", MISMATCHED, "--json"])
    assert result.exit_code == 0, result.output
    reading = next(json.loads(line) for line in result.stderr.splitlines() if line.startswith('{"brief_reading"'))
    assert reading["brief_reading"]["segments"][0]["text"] == "gamers who stream video games"
    rows = [json.loads(line) for line in result.stdout.splitlines()]
    assert rows and all("fit_audience 1" in r for r in rows)


def test_search_takes_a_brief_or_segments_not_both(small_features: Path):
    from typer.testing import CliRunner

    import audiencefit.cli  # noqa: F401
    from audiencefit.cli._app import app
    from audiencefit.features.errors import InputError

    both = ["search", "--features", str(small_features), "--brief", MISMATCHED, "--segment", "runners"]
    for args in (both, ["search", "--features", str(small_features)]):
        result = CliRunner().invoke(app, args)
        assert isinstance(result.exception, InputError), result.output
        assert "--segment" in str(result.exception) and "--brief" in str(result.exception)


def test_batch_scoring_reads_a_description_as_the_api_does(small_features: Path, caplog):
    import logging

    from audiencefit.features.featureset import load_feature_set
    from audiencefit.models.query import query_embedder
    from audiencefit.serving.batch import BatchBrand, prepare_task

    fs = load_feature_set(small_features)
    brand = BatchBrand.model_validate({"brand_id": "bakery", "description": MISMATCHED})
    with caplog.at_level(logging.INFO, logger="audiencefit.serving.batch"):
        task = prepare_task(brand, fs, query_embedder(fs))
    assert task.query.segments[0].label == "audience 1"
    assert task.query.brand_vector is not None  # the whole description stays the brand vector
    logged = [r for r in caplog.records if r.getMessage() == "brief read"]
    assert logged and logged[0].__dict__["segments"][0]["text"] == "gamers who stream video games"
