"""Where the hot routes compute (``audiencefit.serving.deps.get_compute``): in the thread pool, or on the event loop of
a worker that the front gives one request at a time."""

from __future__ import annotations

import json
import threading

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from audiencefit.serving.deps import ComputeDep
from audiencefit.serving.dispatch import Front
from audiencefit.serving.workers import build_app


def _app(inline: bool) -> FastAPI:
    app = FastAPI()
    app.state.compute_inline = inline

    @app.get("/where")
    async def where(compute: ComputeDep) -> dict[str, bool]:
        loop_thread = threading.get_ident()
        ran_in = await compute(threading.get_ident)
        return {"on_loop": ran_in == loop_thread}

    return app


@pytest.mark.parametrize("inline", [False, True])
def test_compute_runs_in_the_pool_unless_the_app_computes_inline(inline):
    with TestClient(_app(inline)) as client:
        assert client.get("/where").json() == {"on_loop": inline}


def test_compute_passes_arguments_and_errors_through():
    app = FastAPI()
    app.state.compute_inline = True

    @app.get("/div")
    async def div(a: int, b: int, compute: ComputeDep) -> dict[str, float]:
        return {"q": await compute(lambda x, y: x / y, a, b)}

    with TestClient(app, raise_server_exceptions=False) as client:
        assert client.get("/div", params={"a": 6, "b": 3}).json() == {"q": 2.0}
        assert client.get("/div", params={"a": 1, "b": 0}).status_code == 500


@pytest.mark.parametrize(("in_flight", "inline"), [(1, True), (2, False)])
def test_a_worker_computes_inline_only_when_given_one_request_at_a_time(tmp_path, monkeypatch, in_flight, inline):
    started: list[dict[str, object]] = []

    class FakeProcess:
        pid = 1

        def __init__(self, target: object, args: tuple[str, str], name: str) -> None:
            started.append(json.loads(args[0]))

        def start(self) -> None:
            pass

    class Context:
        Process = FakeProcess

    monkeypatch.setattr("multiprocessing.get_context", lambda kind: Context)
    front = Front(1, tmp_path, {"features_dir": str(tmp_path), "threads": 4}, in_flight=in_flight)
    front._spawn(0)
    options = started[0] | {"bundle_source": {"path": str(tmp_path)}, "control_dir": str(tmp_path)}
    assert options["in_flight"] == in_flight
    app = build_app(options)  # the state loads in the lifespan, not here
    assert app.state.compute_inline is inline
