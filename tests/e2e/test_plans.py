"""``POST /v1/plans`` and ``GET /v1/creators/{a}/overlap/{b}`` through the real app, on the small world."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.e2e.conftest import SEGMENTS


def _plan(client, **body):
    body.setdefault("segments", SEGMENTS)
    body.setdefault("filters", {"min_followers": 0, "max_followers": 10**9})
    return client.post("/v1/plans", json=body)


def test_plan_happy_path_is_within_budget_and_deterministic(client):
    resp = _plan(client, budget=5_000)
    assert resp.status_code == 200, resp.text
    body = resp.json()
    assert 1 <= body["count"] == len(body["creators"])
    assert body["total_cost"]["expected"] <= 5_000 + 1e-6
    assert sum(c["price"]["expected"] for c in body["creators"]) == pytest.approx(body["total_cost"]["expected"])
    assert body["conversions"]["p10"] <= body["conversions"]["expected"] <= body["conversions"]["p90"]
    assert body["conversions"]["expected"] <= body["conversions_without_overlap"] + 1e-6
    assert set(body["segment_reach"]) == {"fitness", "cooking"}
    assert all(c["marginal_conversions"] >= 0 for c in body["creators"])
    assert _plan(client, budget=5_000).json()["creators"] == body["creators"]


def test_plan_limits_and_reach_objective(client):
    body = _plan(client, budget=100_000, max_creators=3, objective="reach").json()
    assert body["objective"] == "reach" and body["count"] <= 3


@pytest.mark.parametrize(
    ("extra", "constraint"),
    [
        ({"budget": 0.01}, "budget"),
        ({"budget": 5_000, "min_creators": 5, "max_creators": 2}, "max_creators"),
        ({"budget": 5_000, "min_segment_reach": {"gaming": 10}}, "min_segment_reach"),
        ({"budget": 100, "min_segment_reach": {"fitness": 1e9}}, "min_segment_reach[fitness]"),
    ],
)
def test_unmet_constraints_are_422_naming_the_constraint(client, extra, constraint):
    resp = _plan(client, **extra)
    assert resp.status_code == 422, resp.text
    assert resp.json()["errors"][0]["msg"].startswith(f"{constraint}: ")


def test_plan_rejects_unknown_fields(client):
    assert _plan(client, budget=100, surprise=1).status_code == 422


def test_overlap_endpoint(client, small_features: Path):
    import polars as pl

    ids = pl.read_parquet(small_features / "creators.parquet")["creator_id"].to_list()
    resp = client.get(f"/v1/creators/{ids[0]}/overlap/{ids[1]}")
    assert resp.status_code == 200, resp.text
    body = resp.json()
    assert 0 <= body["shared_audience"] <= min(body["real_audience_a"], body["real_audience_b"]) + 1e-6
    assert 0 <= body["jaccard"] <= 1
    assert client.get(f"/v1/creators/{ids[0]}/overlap/nope").status_code == 404
