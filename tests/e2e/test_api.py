"""The API end to end through the real app (lifespan, middleware, auth), on the small synthetic world."""

from __future__ import annotations

import json
import logging
import re
from pathlib import Path

import polars as pl
import pytest
from fastapi.testclient import TestClient

from tests import metrics_text
from tests.e2e.conftest import ADMIN_KEY, API_KEY, SEGMENTS, make_client


def _rec(client, **body):
    body.setdefault("segments", SEGMENTS)
    return client.post("/v1/recommendations", json=body)


NUMBER = re.compile(r"-?\d+(?:\.\d+)?")  # a fit is a cosine: it can be negative


def _assert_reasons_state_the_fields(creator: dict) -> None:
    """Every number a reason states is one of the creator's fields as sent (a share as its percentage), and the
    figures each reason names are those of the fields it names."""
    explanation = creator["explanation"]
    reasons = [r for r in explanation["reasons"] if not r.startswith("Recent captions")]  # quotes: their own words
    matched = next(s for s in creator["segments"] if s["segment"] == creator["matched_segment"])
    first = reasons[0]
    assert float(re.search(r" fit \((-?[\d.]+)\)", first).group(1)) == matched["fit"], (first, matched)
    assert float(re.search(r"([\d.]+)% of the audience belongs", first).group(1)) == round(
        matched["audience_share"] * 100, 1
    ), (first, matched)
    interests = next((r for r in reasons if r.startswith("Audience interests")), None)
    if interests is not None:
        shown = [float(x) for x in re.findall(r"\(([\d.]+)% of the audience\)", interests)]
        assert shown == [round(t["audience_share"] * 100, 1) for t in explanation["topics"]], interests
    quality = next((r for r in reasons if r.startswith("Audience quality")), None)
    assert (quality is None) == (creator["audience_quality"] is None)
    if quality is not None:
        stated = re.search(r"Audience quality ([\d.]+) out of 100", quality)
        assert float(stated.group(1)) == creator["audience_quality"], quality
    fields = {
        *(s["fit"] for s in creator["segments"]),
        *(round(s["audience_share"] * 100, 1) for s in creator["segments"]),
        *(round(t["audience_share"] * 100, 1) for t in explanation["topics"]),
        float(creator["brand_mentions"]),
        float(len(creator["segments"])),
        100.0,  # "out of 100"
    }
    if creator["audience_quality"] is not None:
        fields.add(creator["audience_quality"])
    for reason in reasons:
        unquoted = re.sub(r"“[^”]*”", "", reason)  # segment labels are the brand's words
        for found in NUMBER.findall(unquoted):
            assert float(found) in fields, (found, reason, sorted(fields))


def test_recommendations_happy_path(client, bundles):
    resp = _rec(client, k=7)
    assert resp.status_code == 200, resp.text
    body = resp.json()
    assert body["objective"] == "conversions"
    assert 1 <= body["count"] == len(body["creators"]) <= 7
    assert body["empty_reason"] is None
    assert body["versions"]["bundle_id"] == json.loads((bundles[0] / "bundle.json").read_text())["bundle_id"]
    conversions = [c["conversions"]["expected"] for c in body["creators"]]
    assert conversions == sorted(conversions, reverse=True)
    for i, c in enumerate(body["creators"]):
        assert c["rank"] == i + 1
        assert 1_000 <= c["followers"] <= 100_000  # default follower range
        assert [s["segment"] for s in c["segments"]] == ["fitness", "cooking"]
        assert c["matched_segment"] in ("fitness", "cooking")
        for band in ("engagement_rate", "conversions", "price"):
            assert c[band]["p10"] <= c[band]["expected"] <= c[band]["p90"]
        assert c["price_source"] in ("quoted", "model")
        assert c["mentions_brand"] is False
        reasons = c["explanation"]["reasons"]
        assert reasons[0].startswith(f"Audience matches “{c['matched_segment']}”")
        topics = c["explanation"]["topics"]
        assert all(t["terms"] and t["relevance"] >= 0.1 for t in topics)
        assert any(r.startswith("Audience interests driving") for r in reasons) == bool(topics)
        assert any(r.startswith("Recent captions") for r in reasons) == bool(c["explanation"]["captions"])
        _assert_reasons_state_the_fields(c)
    assert any(c["explanation"]["topics"] for c in body["creators"])


@pytest.mark.parametrize("objective", ["engagement", "fit"])
def test_recommendations_sorted_by_objective(client, objective):
    body = _rec(client, k=10, objective=objective).json()
    creators = body["creators"]
    key = [
        c["engagement_rate"]["expected"] * c["followers"] if objective == "engagement" else c["fit"] for c in creators
    ]
    assert key == sorted(key, reverse=True)
    assert len(creators) == 10


def test_description_only_without_an_audience_is_the_segment(client):
    # A description naming no audience is the one segment; one that names it is read (tests/e2e/test_brief_reading.py).
    resp = client.post("/v1/recommendations", json={"description": "Protein bars with whey and oats", "k": 3})
    assert resp.status_code == 200, resp.text
    creators = resp.json()["creators"]
    assert len(creators) == 3
    assert all(c["matched_segment"] == "brand description" for c in creators)


def test_filters_budget_and_empty_reason(client):
    body = _rec(client, k=20, filters={"platforms": ["instagram"], "min_followers": 5_000}).json()
    assert body["creators"] and all(c["platform"] == "instagram" and c["followers"] >= 5_000 for c in body["creators"])
    excluded = body["creators"][0]["creator_id"]
    again = _rec(client, k=20, filters={"platforms": ["instagram"], "exclude": [excluded]}).json()
    assert excluded not in {c["creator_id"] for c in again["creators"]}

    prices = sorted(c["price"]["expected"] for c in body["creators"])
    budget = prices[len(prices) // 2]
    within = _rec(client, k=20, budget=budget).json()["creators"]
    assert within and all(c["price"]["expected"] <= budget for c in within)

    empty = _rec(client, filters={"min_followers": 10**9, "max_followers": 10**9}).json()
    assert empty["count"] == 0 and "followers within" in empty["empty_reason"]


def test_require_mention_keeps_only_mentioning_creators(client, small_features: Path):
    terms = pl.read_parquet(small_features / "terms.parquet").filter(pl.col("kind") == "hashtag")
    common = terms.group_by("term").agg(n=pl.len()).sort(["n", "term"], descending=[True, False])["term"][0]
    body = _rec(client, k=50, branded_hashtags=[f"#{common}"], require_mention=True).json()
    assert body["creators"] or body["empty_reason"]
    assert all(c["mentions_brand"] and c["brand_mentions"] > 0 for c in body["creators"])
    assert any("mentioned the brand" in r for c in body["creators"] for r in c["explanation"]["reasons"])
    for c in body["creators"]:
        _assert_reasons_state_the_fields(c)


def test_auth(client):
    body = {"segments": SEGMENTS}
    assert client.post("/v1/recommendations", json=body, headers={"X-API-Key": ""}).status_code == 401
    assert client.post("/v1/recommendations", json=body, headers={"X-API-Key": "wrong"}).status_code == 403
    assert client.post("/v1/recommendations", json=body, headers={"X-API-Key": ADMIN_KEY}).status_code == 403
    assert client.get("/v1/model", headers={"X-API-Key": "other-key"}).status_code == 200  # any configured key
    assert client.post("/admin/reload", json={}, headers={"X-API-Key": API_KEY}).status_code == 403
    assert client.post("/admin/reload", json={}, headers={"X-API-Key": ""}).status_code == 401
    ok = client.get("/healthz", headers={"X-API-Key": ""})
    assert ok.status_code == 200  # probes need no key


def test_body_size_limit(client):
    big = {"segments": SEGMENTS, "description": "x" * (1 << 20)}
    assert client.post("/v1/recommendations", json=big).status_code == 413
    # A chunked body (no Content-Length) is counted as it streams.
    chunks = iter([b'{"description": "' + b"y" * 700_000, b"y" * 700_000 + b'"}'])
    resp = client.post("/v1/recommendations", content=chunks, headers={"Content-Type": "application/json"})
    assert resp.status_code == 413


@pytest.mark.parametrize(
    "body",
    [
        {"segments": SEGMENTS, "k": 201},
        {"segments": SEGMENTS, "k": 0},
        {"segments": SEGMENTS, "colour": "blue"},
        {"segments": [{"text": "fitness", "wieght": 2}]},
        {"segments": [{"text": "   "}]},
        {"segments": [{"text": "!!! ???"}]},  # no words: refused by the domain validation
        {"segments": [{"text": f"segment {i}"} for i in range(11)]},
        {"segments": SEGMENTS, "filters": {"exclude": ["c"] * 1001}},
        {"segments": SEGMENTS, "filters": {"platforms": ["myspace"]}},
        {"description": "z" * 2001},
        {},
        {"segments": SEGMENTS, "require_mention": True},
    ],
)
def test_invalid_requests_are_422(client, body):
    resp = client.post("/v1/recommendations", json=body)
    assert resp.status_code == 422, resp.text
    assert "Traceback" not in resp.text


def test_a_worker_computing_inline_answers_as_the_thread_pool_does(
    client, api_settings, small_features: Path, small_world: Path, bundles
):
    from audiencefit.serving.app import create_app

    app = create_app(
        api_settings, features_dir=small_features, bundle_source=bundles[0], data_dir=small_world, compute_inline=True
    )
    ids = pl.read_parquet(small_features / "creators.parquet")["creator_id"].to_list()[:3]
    requests = [
        ("/v1/recommendations", {"segments": SEGMENTS, "k": 5}),
        ("/v1/recommendations", {"segments": [{"text": "!!! ???"}]}),  # refused by the domain validation: 422
        ("/v1/score", {"segments": SEGMENTS, "creator_ids": ids}),
        ("/v1/score", {"segments": SEGMENTS, "creator_ids": [ids[0], "nobody-1"]}),  # 404
    ]
    with TestClient(app, raise_server_exceptions=False) as inline:
        inline.headers["X-API-Key"] = API_KEY
        for path, body in requests:
            got, want = inline.post(path, json=body), client.post(path, json=body)
            answers = [got.json(), want.json()]
            for answer in answers:  # every answer has its own id
                if isinstance(answer, dict):
                    answer.pop("recommendation_id", None)
            assert (got.status_code, answers[0]) == (want.status_code, answers[1]), path
    assert [want.status_code for want in (client.post(p, json=b) for p, b in requests)] == [200, 422, 200, 404]


def test_score_known_and_unknown_ids(client, small_features: Path):
    ids = pl.read_parquet(small_features / "creators.parquet")["creator_id"].to_list()[:5][::-1]
    resp = client.post("/v1/score", json={"segments": SEGMENTS, "creator_ids": ids})
    assert resp.status_code == 200, resp.text
    assert [c["creator_id"] for c in resp.json()["creators"]] == ids
    resp = client.post("/v1/score", json={"segments": SEGMENTS, "creator_ids": [ids[0], "nobody-1", "nobody-2"]})
    assert resp.status_code == 404 and resp.headers["content-type"] == "application/problem+json"
    problem = resp.json()
    assert problem["unknown_ids"] == ["nobody-1", "nobody-2"] and problem["instance"] == "/v1/score"
    assert problem["type"] == "urn:audiencefit:problem:unknown-creator" and problem["status"] == 404
    too_many = client.post("/v1/score", json={"segments": SEGMENTS, "creator_ids": ["x"] * 501})
    assert too_many.status_code == 422


def test_score_quotes_matching_captions(client, small_world: Path, small_features: Path):
    posts = pl.read_parquet(small_world / "posts.parquet")
    known = set(pl.read_parquet(small_features / "creators.parquet")["creator_id"].to_list())
    post = posts.filter(pl.col("creator_id").is_in(list(known)) & pl.col("caption").is_not_null()).sort(
        ["creator_id", "posted_at"], descending=[False, True]
    )[0]
    caption = post["caption"][0]
    resp = client.post("/v1/score", json={"segments": [{"text": caption}], "creator_ids": [post["creator_id"][0]]})
    assert resp.status_code == 200, resp.text
    explanation = resp.json()["creators"][0]["explanation"]
    assert explanation["captions"], explanation
    assert any(r.startswith("Recent captions") for r in explanation["reasons"])


def test_creator_profile_and_lookalikes(client, small_features: Path):
    cid = pl.read_parquet(small_features / "creators.parquet")["creator_id"][3]
    resp = client.get(f"/v1/creators/{cid}")
    assert resp.status_code == 200, resp.text
    profile = resp.json()
    assert profile["creator_id"] == cid and profile["handle"]
    assert "er_median" in profile["statistics"]
    assert profile["audience_topics"] and profile["audience_topics"][0]["terms"]
    assert client.get("/v1/creators/nobody").status_code == 404
    for by in ("audience", "content"):
        resp = client.get(f"/v1/creators/{cid}/lookalikes", params={"by": by, "k": 6})
        assert resp.status_code == 200, resp.text
        body = resp.json()
        assert body["count"] == len(body["creators"]) == 6
        assert cid not in {c["creator_id"] for c in body["creators"]}
        sims = [c["similarity"] for c in body["creators"]]
        assert sims == sorted(sims, reverse=True)
    assert client.get(f"/v1/creators/{cid}/lookalikes", params={"by": "mood"}).status_code == 422
    assert client.get(f"/v1/creators/{cid}/lookalikes", params={"k": 500}).status_code == 422
    assert client.get("/v1/creators/nobody/lookalikes").status_code == 404


def test_health_ready_metrics_model(client, bundles):
    assert client.get("/healthz").json() == {"status": "ok"}
    ready = client.get("/readyz")
    assert ready.status_code == 200
    assert ready.json()["ready"] and ready.json()["last_reload_failed"] is False
    model = client.get("/v1/model").json()
    meta = json.loads((bundles[0] / "bundle.json").read_text())
    assert model["bundle_id"] == meta["bundle_id"]
    assert model["model_source"] == str(bundles[0])
    assert model["embedder_id"] == "test-hashing/v1" and model["evaluation"]
    rec = {"method": "POST", "route": "/v1/recommendations"}
    counted = ("audiencefit_http_requests_total", "audiencefit_http_request_duration_seconds_count")
    pages = ("/docs", "/openapi.json", "unmatched")

    def counts(text: str) -> list[float]:
        return [metrics_text.value(text, name, **rec) for name in counted] + [
            metrics_text.value(text, "audiencefit_http_requests_total", route=route) for route in pages
        ]

    before = counts(client.get("/metrics").text)
    _rec(client, k=2)
    assert client.get("/docs").status_code == 200 and client.get("/openapi.json").status_code == 200
    # Unknown paths share one label value: an attacker cannot blow up the label set.
    assert client.get("/no/such/path/123").status_code == 404
    text = client.get("/metrics").text
    # One recommendation counted and timed; FastAPI's own pages under their own route, not lumped with unknown paths.
    assert [a - b for a, b in zip(counts(text), before, strict=True)] == [1, 1, 1, 1, 1]
    assert metrics_text.value(text, "audiencefit_http_request_duration_seconds_bucket", le="+Inf", **rec) == (
        metrics_text.value(text, "audiencefit_http_request_duration_seconds_count", **rec)
    )
    assert "/no/such/path/123" not in text
    assert metrics_text.samples(text, "audiencefit_model_info") == [
        ({"bundle_id": meta["bundle_id"], "feature_set_id": model["feature_set_id"]}, 1.0)
    ]
    # The standard process, GC and platform metrics of prometheus_client.
    kinds = metrics_text.types(text)
    assert kinds["process_cpu_seconds"] == "counter" and kinds["process_resident_memory_bytes"] == "gauge"
    assert metrics_text.value(text, "process_resident_memory_bytes") > 0
    assert metrics_text.value(text, "python_gc_collections_total") > 0
    assert kinds["python_info"] == "gauge"


def test_unexpected_error_is_a_generic_500(client, monkeypatch):
    import audiencefit.serving.routes.recommend as route

    def boom(*args, **kwargs):
        raise RuntimeError("secret internal detail")

    monkeypatch.setattr(route, "recommend", boom)
    resp = _rec(client, k=2)
    assert resp.status_code == 500
    assert resp.headers["content-type"] == "application/problem+json"
    assert resp.json() == {
        "type": "urn:audiencefit:problem:internal",
        "title": "Internal server error",
        "status": 500,
        "detail": "internal server error",
        "instance": "/v1/recommendations",
    }
    assert "secret" not in resp.text


def test_start_up_answers_one_brief_before_the_first_client(
    api_settings, small_features: Path, small_world: Path, bundles, caplog
):
    caplog.set_level(logging.INFO, logger="audiencefit.serving.pipeline")
    for c in make_client(api_settings, small_features, bundles[0], data=small_world):
        warmed = [r for r in caplog.records if r.getMessage() == "warmed up with one brief"]
        assert len(warmed) == 1 and warmed[0].creators > 0
        # Not through HTTP: the metrics count clients' requests only.
        assert 'route="/v1/recommendations"' not in c.get("/metrics").text


def test_what_start_up_loaded_is_frozen_and_quote_caches_are_not_walked_by_the_gc(
    api_settings, small_features: Path, small_world: Path, bundles
):
    import gc

    for c in make_client(api_settings, small_features, bundles[0], data=small_world):
        state = c.app.state.serving.state
        assert gc.get_freeze_count() > 0
        ids = state.search._ids  # a list of every creator id, loaded at start-up
        assert not any(o is ids for o in gc.get_objects())  # in the permanent generation, not walked
        # A creator's quote words, cached by a request after start-up, end up untracked by the collector.
        store = state.captions
        creator_id = store._captions.creator_ids()[-1]  # not among the warm-up's quotes
        store.best(creator_id, SEGMENTS[0]["text"], 2)
        for _ in range(3):  # the collector untracks the innermost tuples first, then one level per collection
            gc.collect()
        entry = store._caption_stems(creator_id)
        assert entry and not gc.is_tracked(entry)


def test_a_failing_warm_up_does_not_stop_the_start(api_settings, small_features: Path, bundles, monkeypatch, caplog):
    from audiencefit.serving import pipeline

    def boom(*args, **kwargs):
        raise RuntimeError("warm-up boom")

    monkeypatch.setattr(pipeline, "recommend", boom)
    for c in make_client(api_settings, small_features, bundles[0]):
        assert c.get("/readyz").status_code == 200
    assert any("warm-up brief failed" in r.getMessage() for r in caplog.records)


def test_no_bundle_means_not_ready(api_settings, small_features: Path, tmp_path: Path):
    for c in make_client(api_settings, small_features, tmp_path / "missing-bundle"):
        ready = c.get("/readyz")
        assert ready.status_code == 503
        assert ready.json()["model"] is False and ready.json()["last_reload_failed"] is True
        assert c.post("/v1/recommendations", json={"segments": SEGMENTS}).status_code == 503


def test_compiled_trees_serve_the_same_answers(api_settings, small_features: Path, small_world: Path, bundles, client):
    """The service with its trees compiled to native code answers exactly as with LightGBM's predictor."""
    compiled_settings = api_settings.model_copy(update={"compiled_trees": True})
    body = {"segments": SEGMENTS, "description": "Protein snacks for people who train", "k": 10}
    for compiled in make_client(compiled_settings, small_features, bundles[0], data=small_world):
        state = compiled.app.state.serving
        assert all(m.compiled_ is not None for m in state.current.bundle.models.regressors().values())
        plain = client.app.state.serving.current.bundle.models.regressors().values()
        assert all(m.compiled_ is None for m in plain)
        for objective in ("conversions", "engagement", "fit"):
            a = compiled.post("/v1/recommendations", json=body | {"objective": objective})
            b = client.post("/v1/recommendations", json=body | {"objective": objective})
            assert a.status_code == b.status_code == 200, a.text
            assert a.json()["creators"] == b.json()["creators"]
