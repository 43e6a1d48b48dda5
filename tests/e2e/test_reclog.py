"""Closing the loop, served: ids, the recommendation log, propensities and exploration through the real app."""

from __future__ import annotations

import os
import queue
import re
import subprocess
from pathlib import Path

import httpx
import pytest
from fastapi.testclient import TestClient

from audiencefit.models import reclog
from audiencefit.models.explore import DRAWS
from audiencefit.models.reclog import read_answers, read_shown
from tests.e2e.conftest import API_KEY, SEGMENTS
from tests.e2e.serve_process import ROOT, free_port, running_serve, serve_command, serve_env, worker_pids
from tests.processes import until


def _rec(client: TestClient, **body: object):
    body.setdefault("segments", SEGMENTS)
    return client.post("/v1/recommendations", json=body)


def _log(client: TestClient) -> reclog.RecommendationLog:
    log = client.app.state.serving.reclog  # type: ignore[attr-defined]
    assert log is not None
    assert log.flush(10)
    return log


def test_answers_carry_ids_and_propensities_and_the_log_holds_what_was_shown(client: TestClient) -> None:
    resp = _rec(client, k=6, brand_id="acme.shoes-1")
    assert resp.status_code == 200, resp.text
    body = resp.json()
    rid = body["recommendation_id"]
    assert len(rid) == 32 and int(rid, 16) >= 0
    assert [(c["propensity"], c["explored"]) for c in body["creators"]] == [(1.0, False)] * body["count"]
    assert _rec(client, k=6).json()["recommendation_id"] != rid  # every answer its own id
    log = _log(client)
    shown = read_shown(log.url, [rid])
    assert shown["creator_id"].to_list() == [c["creator_id"] for c in body["creators"]]
    assert shown["rank"].to_list() == [c["rank"] for c in body["creators"]]
    assert shown["segment"].to_list() == [c["matched_segment"] for c in body["creators"]]
    assert shown["conversions"].to_list() == [c["conversions"]["expected"] for c in body["creators"]]
    assert shown["score"].to_list() == [c["conversions"]["expected"] for c in body["creators"]]
    assert shown["propensity"].to_list() == [1.0] * body["count"]
    assert set(shown["brand_id"].to_list()) == {"acme.shoes-1"}
    assert set(shown["bundle_id"].to_list()) == {body["versions"]["bundle_id"]}
    answer = read_answers(log.url).filter(recommendation_id=rid).row(0, named=True)
    assert answer["kind"] == "recommendation" and answer["k"] == 6 and answer["exploration"] == 0.0
    assert '"fitness"' in answer["segments"] and answer["candidates"] >= body["count"]


def test_exploration_shows_sampled_creators_with_their_propensities(client: TestClient) -> None:
    plain = _rec(client, k=10).json()
    ask = {"k": 10, "exploration": {"share": 0.3, "seed": 7}}
    first = _rec(client, **ask).json()
    again = _rec(client, **ask).json()
    creators = first["creators"]
    assert [c["creator_id"] for c in again["creators"]] == [c["creator_id"] for c in creators]  # seeded
    assert [c["propensity"] for c in again["creators"]] == [c["propensity"] for c in creators]
    assert [c["explored"] for c in creators] == [False] * 7 + [True] * 3
    # the 7 ranked in are the plain answer's first 7; the 3 explored come from below them
    assert [c["creator_id"] for c in creators[:7]] == [c["creator_id"] for c in plain["creators"][:7]]
    assert not {c["creator_id"] for c in creators[7:]} & {c["creator_id"] for c in creators[:7]}
    assert all(1 / DRAWS <= c["propensity"] <= 1.0 for c in creators[7:])
    assert all(c["propensity"] == 1.0 for c in creators[:7])
    # without a seed: derived from the request, so the same request is answered the same way
    unseeded = {"k": 10, "exploration": {"share": 0.3}}
    a, b = _rec(client, **unseeded).json(), _rec(client, **unseeded).json()
    assert [c["creator_id"] for c in a["creators"]] == [c["creator_id"] for c in b["creators"]]
    log = _log(client)
    shown = read_shown(log.url, [first["recommendation_id"]])
    assert shown["explored"].to_list() == [c["explored"] for c in creators]
    assert shown["propensity"].to_list() == [c["propensity"] for c in creators]
    assert set(shown["exploration"].to_list()) == {0.3}


def test_engagement_exploration_and_refusals(client: TestClient) -> None:
    resp = _rec(client, k=8, objective="engagement", exploration={"share": 0.5, "seed": 1})
    assert resp.status_code == 200, resp.text
    assert sum(c["explored"] for c in resp.json()["creators"]) == 4
    for bad, where in [
        ({"objective": "fit", "exploration": {"share": 0.2}}, "objective 'fit'"),
        ({"exploration": {"share": 0.6}}, "less than or equal to 0.5"),
        ({"exploration": {"share": 0.1, "extra": 1}}, "extra"),
        ({"exploration": {"share": "0.1"}}, "float"),
        ({"brand_id": "x" * 129}, "pattern"),
        ({"brand_id": "has space"}, "pattern"),
        ({"brand_id": "../../etc/passwd"}, "pattern"),
        ({"brand_id": "a\u0000b"}, "pattern"),
    ]:
        resp = _rec(client, **bad)
        assert resp.status_code == 422, bad
        assert where in resp.text, (bad, resp.text)
    # Non-finite numbers never reach the draws: JSON's NaN / Infinity extensions are refused where they stand.
    for share in ("NaN", "Infinity", "-Infinity", "1e999"):
        raw = '{"segments": [{"text": "runners"}], "exploration": {"share": ' + share + "}}"
        resp = client.post("/v1/recommendations", content=raw, headers={"content-type": "application/json"})
        assert resp.status_code == 422, (share, resp.text)
        assert "exploration" in resp.text and "share" in resp.text, (share, resp.text)
    assert _rec(client, objective="fit", exploration={"share": 0.0}).status_code == 200


def test_plans_are_logged_and_refuse_exploration(client: TestClient) -> None:
    body = {"segments": SEGMENTS, "budget": 5_000.0, "brand_id": "acme"}
    resp = client.post("/v1/plans", json=body)
    assert resp.status_code == 200, resp.text
    plan = resp.json()
    assert all(c["propensity"] == 1.0 and c["explored"] is False for c in plan["creators"])
    shown = read_shown(_log(client).url, [plan["recommendation_id"]])
    assert shown["creator_id"].to_list() == [c["creator_id"] for c in plan["creators"]]
    assert set(shown["kind"].to_list()) == {"plan"} and set(shown["brand_id"].to_list()) == {"acme"}
    assert set(shown["segment"].to_list()) <= {"fitness", "cooking"}
    refused = client.post("/v1/plans", json=body | {"exploration": {"share": 0.2}})
    assert refused.status_code == 422 and "plans take share 0 only" in refused.text
    assert client.post("/v1/plans", json=body | {"exploration": {"share": 0.0}}).status_code == 200


def test_a_failing_log_never_fails_a_request_and_is_counted(
    client: TestClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    log = _log(client)
    before = log.counts()

    def broken(engine: object, records: object) -> None:
        raise RuntimeError("database is gone")

    monkeypatch.setattr(reclog, "write_now", broken)
    resp = _rec(client, k=3)
    assert resp.status_code == 200
    assert log.flush(10)
    after = log.counts()
    assert after["failed"] == before["failed"] + 1 and after["written"] == before["written"]
    metrics = client.get("/metrics").text
    assert f'audiencefit_recommendation_log_records_total{{outcome="failed"}} {after["failed"]}' in metrics
    info = client.get("/v1/model").json()["recommendation_log"]
    assert info["backend"] == "sqlite" and info["failed"] == after["failed"]
    assert "url" not in info


def test_a_full_queue_drops_and_the_request_still_answers(client: TestClient, monkeypatch: pytest.MonkeyPatch) -> None:
    log = _log(client)
    before = log.counts()["dropped"]
    full: queue.Queue[object] = queue.Queue(maxsize=1)
    full.put_nowait(object())  # a queue already full: the next submit finds no room
    monkeypatch.setattr(log, "_queue", full)
    resp = _rec(client, k=3)
    assert resp.status_code == 200
    assert log.counts()["dropped"] == before + 1


def test_logging_disabled_still_answers_with_ids(api_settings, small_features: Path, bundles) -> None:
    from audiencefit.serving.app import create_app

    settings = api_settings.model_copy(update={"recommendation_log_enabled": False})
    app = create_app(settings, features_dir=small_features, bundle_source=bundles[0])
    with TestClient(app) as client:
        client.headers["X-API-Key"] = API_KEY
        body = _rec(client, k=2).json()
        assert len(body["recommendation_id"]) == 32
        assert client.app.state.serving.reclog is None  # type: ignore[attr-defined]
        assert client.get("/v1/model").json()["recommendation_log"] is None


def test_a_log_that_cannot_open_stops_the_start(api_settings, small_features: Path, bundles, tmp_path: Path) -> None:
    from pydantic import SecretStr

    from audiencefit.serving.app import create_app
    from audiencefit.serving.state import RecommendationLogError

    url = f"sqlite:///{tmp_path / 'no-such-dir' / 'recs.db'}"
    settings = api_settings.model_copy(update={"recommendation_log_url": SecretStr(url)})
    app = create_app(settings, features_dir=small_features, bundle_source=bundles[0])
    with pytest.raises(RecommendationLogError) as err, TestClient(app):
        pass
    assert err.value.exit_code == 2
    assert "AUDIENCEFIT_RECOMMENDATION_LOG_URL" in str(err.value) and "OperationalError" in str(err.value)


def test_two_worker_processes_append_to_one_log_and_flush_at_shutdown(tmp_path: Path, small_features: Path, bundles):
    """``serve --workers 2``: each worker opens its own writer on the one SQLite file (WAL); every answer is in the
    log, read after the service has stopped (SIGTERM), and /metrics sums the workers' counts."""
    ids = []
    with running_serve(tmp_path, small_features, bundles[0], workers=2, env=serve_env(tmp_path)) as server:
        assert len(worker_pids(server.base, 12)) == 2
        for i in range(16):  # each on a new connection: the front hands them to both workers
            resp = httpx.post(
                f"{server.base}/v1/recommendations",
                json={"segments": SEGMENTS, "k": 3, "brand_id": f"b{i}"},
                headers={"X-API-Key": API_KEY},
                timeout=30,
            )
            assert resp.status_code == 200, resp.text
            ids.append(resp.json()["recommendation_id"])

        def written() -> int:
            text = httpx.get(f"{server.base}/metrics", timeout=5).text
            found = re.search(r'audiencefit_recommendation_log_records_total\{outcome="written"\} (\d+)', text)
            return int(found.group(1)) if found else -1

        assert until(lambda: written() == 16, 15, interval=0.3), written()
    url = f"sqlite:///{tmp_path / 'data' / 'recommendations.db'}"
    shown = read_shown(url)
    assert set(shown["recommendation_id"].to_list()) == set(ids)
    assert sorted(read_answers(url)["brand_id"].to_list()) == sorted(f"b{i}" for i in range(16))


def test_serve_with_a_log_that_cannot_open_exits_2_in_one_line(tmp_path: Path, small_features: Path, bundles):
    url = f"sqlite:///{tmp_path / 'missing' / 'recs.db'}"
    env = {
        **os.environ,
        "AUDIENCEFIT_API_KEYS": API_KEY,
        "AUDIENCEFIT_DATA_DIR": str(tmp_path / "data"),
        "AUDIENCEFIT_RECOMMENDATION_LOG_URL": url,
    }
    cmd = serve_command(small_features, bundles[0], workers=1, port=free_port())
    done = subprocess.run(cmd, check=False, cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 2, done.stderr[-2000:]
    assert "Traceback" not in done.stderr and "the recommendation log cannot be opened" in done.stderr


def test_a_record_that_cannot_be_built_never_fails_the_request(client: TestClient, monkeypatch: pytest.MonkeyPatch):
    from audiencefit.serving.routes import recommend

    log = _log(client)
    before = log.counts()["failed"]

    def broken(*args: object) -> reclog.Shown:
        raise ValueError("a record that cannot be built")

    monkeypatch.setattr(recommend, "shown_record", broken)
    resp = _rec(client, k=2)
    assert resp.status_code == 200 and len(resp.json()["recommendation_id"]) == 32
    assert log.counts()["failed"] == before + 1
