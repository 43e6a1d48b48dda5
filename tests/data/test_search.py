"""Audience search over a real feature set: filters, segments, lookalikes, bad input, the CLI."""

from __future__ import annotations

import json
import shutil

import numpy as np
import polars as pl
import pytest
from typer.testing import CliRunner

import audiencefit.cli  # noqa: F401  (registers commands)
from audiencefit.cli._app import app
from audiencefit.features.errors import InputError
from audiencefit.features.featureset import load_feature_set
from audiencefit.models.index import default_index_dir, load_index
from audiencefit.models.query import Filters, Segment, query_embedder
from audiencefit.models.retrieval import AudienceSearch

RUNNING = Segment("runners training for a marathon, trail running and race day", segment_id="run")
SKIN = Segment("skincare routines, serums and sunscreen", segment_id="skin", weight=0.5)


@pytest.fixture(scope="module")
def searcher(small_features) -> AudienceSearch:
    fs = load_feature_set(small_features)
    directory = default_index_dir(fs)
    return AudienceSearch(
        fs, load_index(fs, "audience", directory), load_index(fs, "content", directory), query_embedder(fs)
    )


def test_search_returns_ranked_creators_with_scores_per_segment(searcher):
    found = searcher.search([RUNNING, SKIN], k=10)
    assert len(found) == 10
    assert np.all(np.diff(found.fit) <= 1e-7)
    assert found.segment_fit.shape == (10, 2) and found.segment_share.shape == (10, 2)
    assert ((found.segment_share >= 0) & (found.segment_share <= 1)).all()
    combined = (found.segment_fit @ np.array([1.0, 0.5])) / 1.5
    np.testing.assert_allclose(found.fit, combined, rtol=1e-5, atol=1e-6)
    followers = searcher.fs.creators["followers"].to_numpy()[found.rows]
    assert ((followers >= 1_000) & (followers <= 100_000)).all()  # the default follower range


def test_filters_hold_and_a_narrow_filter_still_fills_the_list(searcher):
    creators = searcher.fs.creators
    platform = creators["platform"].mode()[0]
    country = creators.filter(pl.col("platform") == platform)["country"].drop_nulls().mode()[0]
    flt = Filters(min_followers=0, max_followers=10**9, platforms=(platform,), countries=(country,))
    eligible = creators.filter((pl.col("platform") == platform) & (pl.col("country") == country)).height
    found = searcher.search([RUNNING], flt, k=eligible + 5)
    assert len(found) == eligible  # every eligible creator, none other
    chosen = creators[found.rows]
    assert set(chosen["platform"]) == {platform} and set(chosen["country"]) == {country}


def test_exclusions_and_quality_floor(searcher):
    top = searcher.search([RUNNING], k=5)
    again = searcher.search([RUNNING], Filters(exclude=tuple(top.creator_ids[:2]), min_audience_quality=50), k=5)
    assert not set(top.creator_ids[:2]) & set(again.creator_ids)
    quality = searcher.fs.creators["audience_quality"].to_numpy()[again.rows]
    assert (quality >= 50).all()


def test_filters_that_exclude_everything_give_an_empty_result_that_says_why(searcher):
    found = searcher.search([RUNNING], Filters(min_followers=10**9, max_followers=10**10), k=5)
    assert len(found) == 0
    assert found.empty_reason and "followers within" in found.empty_reason and "0 of" in found.empty_reason


@pytest.mark.parametrize(
    ("segments", "message"),
    [
        ([Segment("   ")], "text is empty"),
        ([Segment("🔥🔥")], "text is empty"),
        ([], "no segment given"),
        ([Segment("runners", weight=0)], "weight must be a positive"),
        ([Segment("runners", countries=("USA",))], "ISO 3166-1 alpha-2"),
    ],
)
def test_bad_segments_are_refused_clearly(searcher, segments, message):
    with pytest.raises(InputError, match=message):
        searcher.search(segments, k=5)


def test_bad_filters_are_refused_clearly(searcher):
    with pytest.raises(InputError, match="unknown platform"):
        searcher.search([RUNNING], Filters(platforms=("myspace",)), k=5)
    with pytest.raises(InputError, match="below min_followers"):
        searcher.search([RUNNING], Filters(min_followers=500, max_followers=100), k=5)


def test_lookalikes_by_audience_and_content(searcher):
    creator = searcher.fs.creators.filter(pl.col("audience_source") == "followers")["creator_id"][0]
    for by in ("audience", "content"):
        frame = searcher.lookalikes(creator, by=by, k=5)
        assert frame.height == 5 and creator not in frame["creator_id"].to_list()
        assert (frame["similarity"].diff().drop_nulls() <= 1e-6).all()
    with pytest.raises(InputError, match="unknown creator 'nobody'"):
        searcher.lookalikes("nobody")


def test_search_is_deterministic(searcher):
    a = searcher.search([RUNNING, SKIN], k=15)
    b = searcher.search([SKIN, RUNNING][::-1], k=15)
    assert a.creator_ids == b.creator_ids


def test_index_from_another_feature_set_is_refused(small_features, tmp_path):
    other = tmp_path / "fs"
    shutil.copytree(small_features, other)
    manifest = json.loads((other / "manifest.json").read_text())
    # Another recipe: the id (a hash of the recipe and of every file) changes with it.
    from audiencefit.features.featureset import content_id

    manifest["recipe_id"] = "0000000000000000"
    manifest["feature_set_id"] = content_id(manifest["recipe_id"], manifest["files"])
    (other / "manifest.json").write_text(json.dumps(manifest))
    fs = load_feature_set(other)
    with pytest.raises(InputError, match="built from feature set"):
        load_index(fs, "audience", default_index_dir(fs))


def test_corrupted_index_is_refused(small_features, tmp_path):
    other = tmp_path / "fs"
    shutil.copytree(small_features, other)
    path = other / "index" / "audience.faiss"
    data = bytearray(path.read_bytes())
    data[-5] ^= 0xFF
    path.write_bytes(bytes(data))
    fs = load_feature_set(other)
    with pytest.raises(InputError, match="checksum mismatch"):
        load_index(fs, "audience", default_index_dir(fs))


def test_search_cli_prints_ranked_json(small_features):
    result = CliRunner().invoke(
        app,
        ["search", "--features", str(small_features), "--segment", RUNNING.text, "--k", "3", "--json"],
    )
    assert result.exit_code == 0, result.output
    rows = [json.loads(line) for line in result.stdout.splitlines() if line.startswith("{")]
    assert [r["rank"] for r in rows] == [1, 2, 3]
    assert {"creator_id", "fit", "fit_s1", "share_s1", "quality"} <= set(rows[0])


def test_search_cli_rejects_mismatched_weights(small_features):
    result = CliRunner().invoke(
        app, ["search", "--features", str(small_features), "--segment", "a b c", "--weight", "1", "--weight", "2"]
    )
    assert result.exit_code != 0
    assert "--weight given 2 time(s) for 1 --segment(s)" in str(result.exception) + result.output


def test_filter_masks_are_remembered_read_only_and_equal_a_fresh_mask(searcher):
    from audiencefit.models.query import Filters, allowed_mask

    default, narrow = Filters(), Filters(min_followers=5_000, platforms=("instagram",))
    first = searcher.allowed(default)
    assert searcher.allowed(Filters()) is first  # equal filters: the same remembered array
    assert np.array_equal(first, allowed_mask(searcher.fs, default))
    assert np.array_equal(searcher.allowed(narrow), allowed_mask(searcher.fs, narrow))
    assert searcher.allowed(narrow).sum() < first.sum()
    with pytest.raises(ValueError):
        first[0] = not first[0]  # callers cannot change what later requests read


def test_a_segment_finds_the_same_creators_whichever_searches_came_before(small_features, searcher):
    """Segments' index searches are remembered: a fresh searcher and one that saw the segments in other
    combinations (and other filters) give the same answer, and a repeated segment is not searched again."""
    fs = load_feature_set(small_features)
    directory = default_index_dir(fs)
    fresh = AudienceSearch(
        fs, load_index(fs, "audience", directory), load_index(fs, "content", directory), query_embedder(fs)
    )
    other = Segment("home cooks sharing weeknight vegetarian recipes")
    searcher.search([SKIN], k=20)
    searcher.search([other, RUNNING], Filters(min_followers=2_000), k=20)
    searcher.search([RUNNING, other], k=20)
    warm, cold = searcher.search([RUNNING, SKIN], k=20), fresh.search([RUNNING, SKIN], k=20)
    assert warm.creator_ids == cold.creator_ids
    np.testing.assert_array_equal(warm.fit, cold.fit)
    calls = []
    real = searcher.audience.search
    searcher.audience.search = lambda *a, **kw: calls.append(1) or real(*a, **kw)  # type: ignore[method-assign]
    try:
        again = searcher.search([SKIN, RUNNING], k=20)
    finally:
        del searcher.audience.search
    assert calls == [] and set(again.creator_ids) == set(warm.creator_ids)


@pytest.mark.parametrize("n", [0, 1, 2, 50, 2_400])
def test_sorted_unique_is_numpys_unique(n):
    from audiencefit.models.retrieval import sorted_unique

    values = np.random.default_rng(n).integers(0, max(n // 3, 1), n).astype(np.int64)
    np.testing.assert_array_equal(sorted_unique(values), np.unique(values))
    assert sorted_unique(values).dtype == np.int64


def test_a_brief_sent_again_reuses_its_shortlist_and_gets_the_same_answer(small_features, searcher, monkeypatch):
    """The k rows the fit estimate picks are remembered per segment vectors, weights, countries, filters and depth:
    sent again, a brief skips the estimate and gets exactly the answer a fresh searcher gives; a change of weight or
    of countries is another shortlist."""
    from audiencefit.models import retrieval

    fs = load_feature_set(small_features)
    directory = default_index_dir(fs)
    fresh = AudienceSearch(
        fs, load_index(fs, "audience", directory), load_index(fs, "content", directory), query_embedder(fs)
    )
    calls = []
    real = retrieval.combined_fit_estimate
    monkeypatch.setattr(retrieval, "combined_fit_estimate", lambda *a, **kw: calls.append(1) or real(*a, **kw))
    brief = [RUNNING, SKIN]
    first = searcher.search(brief, k=15)
    estimates = len(calls)
    again = searcher.search([Segment(RUNNING.text, segment_id="other id"), SKIN], k=15)
    assert len(calls) == estimates  # the same vectors, weights and countries: no estimate
    cold = fresh.search(brief, k=15)
    for got in (again, cold):
        assert got.creator_ids == first.creator_ids
        np.testing.assert_array_equal(got.fit, first.fit)
        np.testing.assert_array_equal(got.segment_fit, first.segment_fit)
    heavier = Segment(SKIN.text, segment_id="skin", weight=2.0)
    french = Segment(SKIN.text, segment_id="skin", weight=0.5, countries=("FR",))
    for changed in ([RUNNING, heavier], [RUNNING, french]):
        before = len(calls)
        warm = searcher.search(changed, k=15)
        assert len(calls) > before
        assert warm.creator_ids == fresh.search(changed, k=15).creator_ids
    before = len(calls)
    searcher.search(brief, k=16)  # another depth
    assert len(calls) > before
