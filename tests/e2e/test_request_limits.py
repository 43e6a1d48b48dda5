"""What a request may contain (issue #17, items 6, 7 and 13): every refused value is a 422 naming the field, with a
body that is valid JSON; JSON types are strict; a plan's size and work are bounded whatever the budget."""

from __future__ import annotations

import json
import time
from pathlib import Path

import polars as pl
import pytest

from tests.e2e.conftest import SEGMENTS

NON_FINITE = ("NaN", "Infinity", "-Infinity", "1e309")
PLAN_MAX_CREATORS = 100  # audiencefit.models.planner.MAX_CREATORS
SURROGATE = '"\\ud800"'  # JSON text of a lone surrogate


def _raw(client, path: str, text: str):
    """POST hand-written JSON text (httpx's json= refuses NaN and lone surrogates)."""
    return client.post(path, content=text.encode("utf-8"), headers={"Content-Type": "application/json"})


def _strict_json(resp) -> object:
    """The body, parsed as strict JSON: NaN/Infinity tokens are an error, as in every other JSON parser."""

    def refuse(token: str) -> None:
        raise AssertionError(f"the body holds {token}, which is not JSON: {resp.text[:300]}")

    return json.loads(resp.text, parse_constant=refuse)


def _ids(small_features: Path) -> list[str]:
    return pl.read_parquet(small_features / "creators.parquet")["creator_id"].to_list()[:2]


V = "__bad_value__"  # where the bad token goes in a body


def _text(body: object, token: str) -> str:
    """``body`` as JSON text with the string ``V`` replaced by ``token`` (a bare token such as NaN)."""
    return json.dumps(body).replace(f'"{V}"', token)


def _numeric_cases(ids: list[str]) -> list[tuple[str, dict[str, object], list[object]]]:
    """(path, body with V where the bad value goes, the field's location in the 422)."""
    rec = {"segments": SEGMENTS}
    plan = {"segments": SEGMENTS, "budget": 5000}
    return [
        (
            "/v1/recommendations",
            {"segments": [{"text": "fitness fans who run", "weight": V}]},
            ["segments", 0, "weight"],
        ),
        ("/v1/recommendations", rec | {"budget": V}, ["budget"]),
        ("/v1/recommendations", rec | {"k": V}, ["k"]),
        ("/v1/recommendations", rec | {"filters": {"min_followers": V}}, ["filters", "min_followers"]),
        ("/v1/recommendations", rec | {"filters": {"max_followers": V}}, ["filters", "max_followers"]),
        ("/v1/recommendations", rec | {"filters": {"min_audience_quality": V}}, ["filters", "min_audience_quality"]),
        ("/v1/recommendations", rec | {"description": V}, ["description"]),  # a text field
        ("/v1/recommendations", rec | {"surprise": V}, ["surprise"]),  # an unknown field
        ("/v1/recommendations", rec | {"filters": {"exclude": ["a", V]}}, ["filters", "exclude", 1]),
        ("/v1/score", {"segments": [{"text": "runners", "weight": V}], "creator_ids": ids}, ["segments", 0, "weight"]),
        ("/v1/score", rec | {"creator_ids": [ids[0], V]}, ["creator_ids", 1]),
        ("/v1/plans", {"segments": SEGMENTS, "budget": V}, ["budget"]),
        ("/v1/plans", plan | {"min_creators": V}, ["min_creators"]),
        ("/v1/plans", plan | {"max_creators": V}, ["max_creators"]),
        ("/v1/plans", plan | {"min_segment_reach": {"fitness": V}}, ["min_segment_reach", "fitness"]),
        ("/v1/plans", plan | {"filters": {"min_audience_quality": V}}, ["filters", "min_audience_quality"]),
    ]


@pytest.mark.parametrize("value", NON_FINITE)
def test_non_finite_numbers_anywhere_are_422_naming_the_field(client, small_features: Path, value: str):
    for path, body, loc in _numeric_cases(_ids(small_features)):
        resp = _raw(client, path, _text(body, value))
        assert resp.status_code == 422, (path, body, resp.status_code, resp.text[:300])
        detail = _strict_json(resp)["errors"]
        assert any(d["loc"] == ["body", *loc] for d in detail), (path, body, detail)


def test_a_non_finite_value_in_a_422_is_echoed_as_a_string(client):
    resp = _raw(client, "/v1/plans", _text({"segments": SEGMENTS, "budget": V}, "NaN"))
    assert resp.status_code == 422
    (error,) = _strict_json(resp)["errors"]
    assert error["loc"] == ["body", "budget"] and error["input"] == "NaN"


@pytest.mark.parametrize(
    ("body", "loc"),
    [
        ({"segments": [{"text": V}]}, ["segments", 0, "text"]),
        ({"description": V}, ["description"]),
        ({"segments": [{"text": "runners", "id": V}]}, ["segments", 0, "id"]),
        ({"segments": [{"text": "runners", "countries": [V]}]}, ["segments", 0, "countries", 0]),
        ({"description": "runners", "brand_handles": [V]}, ["brand_handles", 0]),
        ({"description": "runners", "branded_hashtags": ["ok", V]}, ["branded_hashtags", 1]),
        ({"description": "runners", "filters": {"exclude": [V]}}, ["filters", "exclude", 0]),
        ({"description": "runners", "filters": {"platforms": [V]}}, ["filters", "platforms", 0]),
        ({"description": "runners", "filters": {"languages": [V]}}, ["filters", "languages", 0]),
        ({"description": "runners", "filters": {"countries": [V]}}, ["filters", "countries", 0]),
        ({"description": "runners", "objective": V}, ["objective"]),
        ({"description": "runners", V: 1}, None),  # an unknown field whose name is not valid Unicode
    ],
)
def test_invalid_unicode_in_text_is_422_naming_the_field(client, body: dict[str, object], loc):
    resp = _raw(client, "/v1/recommendations", _text(body, SURROGATE))
    assert resp.status_code == 422, resp.text[:300]
    detail = _strict_json(resp)["errors"]
    if loc is not None:
        assert any(d["loc"] == ["body", *loc] for d in detail), detail


def test_invalid_unicode_in_score_and_plan_fields_is_422(client):
    for path, text in [
        ("/v1/score", {"description": "runners", "creator_ids": [V]}),
        ("/v1/plans", {"segments": SEGMENTS, "budget": 5000, "min_segment_reach": {V: 10}}),
    ]:
        resp = _raw(client, path, _text(text, SURROGATE))
        assert resp.status_code == 422, (path, resp.text[:300])
        _strict_json(resp)


def test_surrogates_and_bad_bytes_sent_raw_are_refused_with_json(client):
    # The UTF-8 form of a surrogate (CESU-8): Python's JSON parser decodes it into a lone surrogate.
    resp = client.post(
        "/v1/recommendations",
        content=b'{"description": "runners \xed\xa0\x80"}',
        headers={"Content-Type": "application/json"},
    )
    assert resp.status_code == 422 and _strict_json(resp)["errors"][0]["loc"] == ["body", "description"]
    resp = client.post(
        "/v1/recommendations", content=b'{"description": "runners \xff"}', headers={"Content-Type": "application/json"}
    )
    assert resp.status_code == 422 and "not valid UTF-8" in _strict_json(resp)["errors"][0]["msg"]


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ('{"description": "running shoes", "k": ' + "1" * 4301 + "}", "too many digits"),
        ('{"description": "running shoes", "u": ' + "[" * 5000 + "]" * 5000 + "}", "nested too deeply"),
        ('{"segments": ' + "[" * 100_000 + "]" * 100_000 + "}", "nested too deeply"),
    ],
)
def test_json_beyond_the_parser_is_a_422_not_a_400(client, body: str, message: str):
    """Python's JSON parser gives up on very deep nesting and on integers over 4,300 digits (FastAPI: a bare 400)."""
    resp = client.post("/v1/recommendations", content=body.encode(), headers={"Content-Type": "application/json"})
    assert resp.status_code == 422, resp.text
    assert message in _strict_json(resp)["errors"][0]["msg"]


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("k", "true"),
        ("k", '"3"'),
        ("k", "2.5"),
        ("k", "false"),
        ("budget", "true"),
        ("budget", '"100"'),
        ("require_mention", '"true"'),
        ("require_mention", "1"),
        ("objective", "1"),
        ("description", "5"),
    ],
)
def test_json_types_are_strict(client, field: str, value: str):
    resp = _raw(client, "/v1/recommendations", _text({"segments": SEGMENTS, field: V}, value))
    assert resp.status_code == 422, resp.text[:300]
    assert _strict_json(resp)["errors"][0]["loc"] == ["body", field]


def test_whole_numbers_are_integers_as_json_schema_says(client):
    """The OpenAPI schema's integers accept 20.0 (JSON Schema), so the service does too; 2.5 stays refused."""
    body = {"segments": SEGMENTS, "k": 3.0, "filters": {"min_followers": 0.0, "max_followers": 1e9}}
    resp = client.post("/v1/recommendations", json=body)
    assert resp.status_code == 200, resp.text[:300]
    assert resp.json()["count"] == 3


@pytest.mark.parametrize(
    ("template", "loc"),
    [
        ('{"segments": [{"text": "runners", "weight": "2"}]}', ["segments", 0, "weight"]),
        ('{"segments": [{"text": "runners", "weight": true}]}', ["segments", 0, "weight"]),
        ('{"segments": [{"text": 7}]}', ["segments", 0, "text"]),
        ('{"description": "runners", "filters": {"min_followers": "1000"}}', ["filters", "min_followers"]),
        ('{"description": "runners", "filters": {"max_followers": 50000.5}}', ["filters", "max_followers"]),
        ('{"description": "runners", "filters": {"exclude": [12]}}', ["filters", "exclude", 0]),
    ],
)
def test_nested_json_types_are_strict(client, template: str, loc):
    resp = _raw(client, "/v1/recommendations", template)
    assert resp.status_code == 422, resp.text[:300]
    assert _strict_json(resp)["errors"][0]["loc"] == ["body", *loc]


def test_strict_types_in_score_and_plans(client, small_features: Path):
    ids = _ids(small_features)
    cases = [
        ("/v1/score", {"segments": SEGMENTS, "creator_ids": [ids[0], 5]}, ["creator_ids", 1]),
        ("/v1/plans", {"segments": SEGMENTS, "budget": "5000"}, ["budget"]),
        ("/v1/plans", {"segments": SEGMENTS, "budget": True}, ["budget"]),
        ("/v1/plans", {"segments": SEGMENTS, "budget": 5000, "min_creators": True}, ["min_creators"]),
        ("/v1/plans", {"segments": SEGMENTS, "budget": 5000, "max_creators": 2.5}, ["max_creators"]),
        (
            "/v1/plans",
            {"segments": SEGMENTS, "budget": 5000, "min_segment_reach": {"fitness": "10"}},
            ["min_segment_reach", "fitness"],
        ),
    ]
    for path, body, loc in cases:
        resp = client.post(path, json=body)
        assert resp.status_code == 422, (path, body, resp.text[:300])
        assert resp.json()["errors"][0]["loc"] == ["body", *loc]


def test_query_and_path_parameters_never_500(client, small_features: Path):
    cid = _ids(small_features)[0]
    for value in ("nan", "NaN", "inf", "-Infinity", "1e309", "true", "2.5", "%ED%A0%80", "%FF"):
        resp = client.get(f"/v1/creators/{cid}/lookalikes?k={value}")
        assert resp.status_code == 422, (value, resp.text[:300])
        assert _strict_json(resp)["errors"][0]["loc"] == ["query", "k"]
    resp = client.get(f"/v1/creators/{cid}/lookalikes?by=%ED%A0%80")
    assert resp.status_code == 422 and _strict_json(resp)["errors"][0]["loc"] == ["query", "by"]
    for path in (
        "/v1/creators/%ED%A0%80",
        f"/v1/creators/{cid}/overlap/%ED%A0%80",
        "/v1/creators/%ED%A0%80/lookalikes",
    ):
        resp = client.get(path)
        assert resp.status_code == 404, (path, resp.text)
        _strict_json(resp)


def test_a_422_does_not_echo_a_huge_input(client):
    # A body refused as a whole (no creator_ids) held 400 kB of text: the 422 names the field, not the body.
    body = {"description": "runners", "brand_handles": ["h" * 100] * 10, "segments": [{"text": "y" * 1_900}] * 10}
    resp = client.post("/v1/score", json=body | {"surprise": "z" * 400_000})
    assert resp.status_code == 422
    assert len(resp.content) < 5_000, len(resp.content)
    locs = [d["loc"] for d in _strict_json(resp)["errors"]]
    assert ["body", "creator_ids"] in locs and ["body", "surprise"] in locs


@pytest.mark.parametrize(
    ("body", "loc"),
    [
        ({"creator_ids": ["x" * 129]}, ["creator_ids", 0]),
        ({"creator_ids": ["ok"], "filters": {}}, ["filters"]),  # /v1/score has no filters
    ],
)
def test_score_id_limits(client, body, loc):
    resp = client.post("/v1/score", json={"segments": SEGMENTS, **body})
    assert resp.status_code == 422, resp.text[:300]
    assert resp.json()["errors"][0]["loc"] == ["body", *loc]


@pytest.mark.parametrize(
    ("body", "loc"),
    [
        ({"filters": {"exclude": ["x" * 129]}}, ["filters", "exclude", 0]),
        ({"filters": {"countries": ["x" * 33]}}, ["filters", "countries", 0]),
        ({"filters": {"platforms": ["x" * 33]}}, ["filters", "platforms", 0]),
        ({"budget": 2e9}, ["budget"]),
    ],
)
def test_list_items_and_budgets_are_bounded(client, body, loc):
    resp = client.post("/v1/recommendations", json={"segments": SEGMENTS, **body})
    assert resp.status_code == 422, resp.text[:300]
    assert resp.json()["errors"][0]["loc"] == ["body", *loc]


def test_a_plan_with_a_huge_budget_is_bounded(client):
    """budget 1e9 used to plan every candidate (300 creators on a 1,500-creator world, 1.5 s; here every eligible
    creator): now at most MAX_CREATORS (100) creators, within a bounded amount of work."""
    body = {"segments": SEGMENTS, "budget": 1e9, "filters": {"min_followers": 0, "max_followers": 10**9}}
    started = time.perf_counter()
    resp = client.post("/v1/plans", json=body)
    elapsed = time.perf_counter() - started
    assert resp.status_code == 200, resp.text[:300]
    plan = resp.json()
    assert plan["candidates"] > PLAN_MAX_CREATORS  # the small world has more eligible creators than a plan may take
    assert plan["count"] <= PLAN_MAX_CREATORS
    assert elapsed < 3.0
    too_many = client.post("/v1/plans", json=body | {"max_creators": PLAN_MAX_CREATORS + 1})
    assert too_many.status_code == 422 and too_many.json()["errors"][0]["loc"] == ["body", "max_creators"]
