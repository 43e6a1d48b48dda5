"""``audiencefit serve --workers 2``: the front hands requests to both workers, /metrics sums them, a reload on one
reaches the other, a corrupted bundle reaches none, a killed worker is replaced, and keep-alive connections are
not held back by Nagle's algorithm."""

from __future__ import annotations

import os
import re
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests import metrics_text
from tests.e2e.conftest import ADMIN_KEY, API_KEY
from tests.e2e.serve_process import ROOT, free_port, running_serve, serve_command, serve_env, worker_pids
from tests.e2e.test_hot_swap import BODY, _bundle_id, _corrupt_copy
from tests.processes import until


@pytest.fixture(scope="module")
def two_workers(tmp_path_factory: pytest.TempPathFactory, small_features: Path, bundles) -> Iterator[str]:
    """One service for the module's three tests (a start takes seconds), in the file's order: what each leaves is
    what the next may find. The first reloads the second bundle (both workers then serve it); the second counts
    routes the first never asks (/docs, /openapi.json, a 401, a 404); the last kills a worker and checks only what
    it adds to the counts."""
    tmp = tmp_path_factory.mktemp("two-workers")
    with running_serve(tmp, small_features, bundles[0], workers=2, env=serve_env(tmp)) as server:
        yield server.base


def _bundles_serving(base: str, tries: int = 16) -> dict[int, str]:
    """worker pid → the bundle it serves, from readiness checks on new connections."""
    out = {}
    for _ in range(tries):
        body = httpx.get(f"{base}/readyz", timeout=5).json()
        out[body["worker_pid"]] = body["bundle_id"]
    return out


def _until(check, timeout: float = 15.0) -> bool:
    return until(check, timeout, interval=0.2)


def _counted(base: str, route: str) -> int:
    text = httpx.get(f"{base}/metrics", timeout=5).text
    pattern = rf'audiencefit_http_requests_total{{method="POST",route="{re.escape(route)}",status="200"}} (\d+)'
    found = re.search(pattern, text)
    return int(found.group(1)) if found else 0


def test_two_workers_are_one_service(two_workers: str, bundles, tmp_path: Path):
    base = two_workers
    first, second = (_bundle_id(b) for b in bundles)
    headers = {"X-API-Key": API_KEY}
    # Requests on new connections reach both workers; /metrics on any worker counts all of them.
    for _ in range(20):
        assert httpx.post(f"{base}/v1/recommendations", json=BODY, headers=headers, timeout=30).status_code == 200
    assert _until(lambda: all(_counted(base, "/v1/recommendations") == 20 for _ in range(6)))

    # A reload answered by one worker is followed by the other.
    admin = {"X-API-Key": ADMIN_KEY}
    resp = httpx.post(f"{base}/admin/reload", json={"bundle_path": str(bundles[1])}, headers=admin, timeout=60)
    assert resp.status_code == 200, resp.text
    assert _until(lambda: set(_bundles_serving(base).values()) == {second}), _bundles_serving(base)
    assert len(_bundles_serving(base, 24)) == 2

    # A corrupted bundle is refused by the worker asked, published to none: every worker keeps the good one.
    corrupted = _corrupt_copy(bundles[1], bundles[1].parent / f"corrupted-{tmp_path.name}")
    resp = httpx.post(f"{base}/admin/reload", json={"bundle_path": str(corrupted)}, headers=admin, timeout=60)
    assert resp.status_code == 409
    time.sleep(1.5)  # three sync intervals
    assert set(_bundles_serving(base).values()) == {second}
    metrics = httpx.get(f"{base}/metrics", timeout=5).text
    assert f'bundle_id="{second}"' in metrics and f'bundle_id="{first}"' not in metrics

    # Keep-alive: later requests on one connection are not delayed by Nagle + delayed ACK (~40 ms each).
    with httpx.Client(base_url=base, headers=headers, timeout=30) as client:
        client.get("/healthz")
        started = time.perf_counter()
        for _ in range(10):
            assert client.get("/healthz").status_code == 200
        assert (time.perf_counter() - started) / 10 < 0.025


def _process_pids(text: str) -> dict[str, str]:
    """pid → role (front, worker) of the processes /metrics shows process metrics for."""
    rows = metrics_text.samples(text, "process_resident_memory_bytes")
    return {labels["pid"]: labels["process"] for labels, _ in rows}


def test_one_scrape_reads_every_process(two_workers: str):
    """prometheus_client's multiprocess mode: any worker's /metrics counts what the other worker and the front
    answered, shows the process and GC metrics of every process, and counts FastAPI's own pages by route."""
    base = two_workers
    workers = worker_pids(base, 12)
    assert len(workers) == 2
    for _ in range(3):  # new connections: the front hands them to both workers
        assert httpx.get(f"{base}/docs", timeout=5).status_code == 200
        assert httpx.get(f"{base}/openapi.json", timeout=5).status_code == 200
    # Refused by the front itself, never forwarded: counted by the front.
    assert httpx.get(f"{base}/v1/model", timeout=5).status_code == 401
    assert httpx.get(f"{base}/no/such/path", timeout=5).status_code == 404
    for _ in range(4):  # whichever worker answers the scrape, the counts are the service's
        text = httpx.get(f"{base}/metrics", timeout=5).text
        counted = {
            (route, status): metrics_text.value(text, "audiencefit_http_requests_total", route=route, status=status)
            for route, status in [
                ("/docs", "200"),
                ("/openapi.json", "200"),
                ("/v1/model", "401"),
                ("unmatched", "404"),
            ]
        }
        assert list(counted.values()) == [3, 3, 1, 1], counted
        assert metrics_text.value(text, "audiencefit_http_request_duration_seconds_count", route="/docs") == 3
        roles = _process_pids(text)
        assert sorted(roles.values()) == ["front", "worker", "worker"], roles
        assert {int(pid) for pid, role in roles.items() if role == "worker"} == workers
        assert metrics_text.types(text)["process_cpu_seconds"] == "counter"
        assert len({labels["pid"] for labels, _ in metrics_text.samples(text, "python_gc_collections_total")}) == 3
        assert len(metrics_text.samples(text, "audiencefit_model_info")) == 1  # both serve the same bundle


def test_a_killed_worker_is_replaced_and_the_service_keeps_answering(two_workers: str):
    base = two_workers
    headers = {"X-API-Key": API_KEY}
    victim = sorted(worker_pids(base, 8))[0]
    os.kill(victim, 9)
    statuses = []
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        resp = httpx.post(f"{base}/v1/recommendations", json=BODY, headers=headers, timeout=30)
        statuses.append(resp.status_code)
        pids = worker_pids(base, 8)
        if len(pids) == 2 and victim not in pids:
            break
        time.sleep(0.2)
    pids = worker_pids(base, 8)
    assert len(pids) == 2 and victim not in pids, "the killed worker was not replaced"
    # The other worker answered throughout; only a request in flight on the killed one could have failed.
    assert statuses.count(200) >= len(statuses) - 1, statuses
    assert httpx.post(f"{base}/v1/recommendations", json=BODY, headers=headers, timeout=30).status_code == 200
    # The killed worker's process metrics are gone, its replacement's shown; the counts it made are kept.
    text = httpx.get(f"{base}/metrics", timeout=5).text
    roles = _process_pids(text)
    assert str(victim) not in roles and {int(p) for p, r in roles.items() if r == "worker"} == pids, roles
    counted = metrics_text.value(text, "audiencefit_http_requests_total", route="/v1/recommendations", status="200")
    assert counted >= statuses.count(200) + 1


@pytest.mark.parametrize("workers", [1, 2])
def test_a_service_that_cannot_load_fails_the_start_in_one_line(tmp_path: Path, bundles, workers: int):
    """Bad input at start (here a directory that is no feature set): the reason in one log line, no traceback;
    one process exits 2, the front of several reports the worker's exit while loading."""
    empty = tmp_path / "not-a-feature-set"
    empty.mkdir()
    env = {**os.environ, "AUDIENCEFIT_API_KEYS": API_KEY, "AUDIENCEFIT_DATA_DIR": str(tmp_path / "data")}
    cmd = serve_command(empty, bundles[0], workers=workers, port=free_port())
    done = subprocess.run(cmd, check=False, cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == (2 if workers == 1 else 3), done.stderr[-2000:]
    assert "Traceback" not in done.stderr, done.stderr[-3000:]
    assert "not a feature set" in done.stderr
    if workers == 2:
        assert "exited with code 2 while loading" in done.stderr, done.stderr[-2000:]
