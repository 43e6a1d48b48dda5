"""``audiencefit serve --workers 2``: the front hands requests to both workers, /metrics sums them, a reload on one
reaches the other, a corrupted bundle reaches none, a killed worker is replaced, and keep-alive connections are
not held back by Nagle's algorithm."""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.e2e.conftest import ADMIN_KEY, API_KEY, UNLIMITED_ENV
from tests.e2e.test_hot_swap import BODY, _bundle_id, _corrupt_copy

ROOT = Path(__file__).resolve().parents[2]
# Worker processes are spawned fresh: the test embedder is registered in each through sitecustomize.
SITECUSTOMIZE = f"""
import sys
sys.path.insert(0, {str(ROOT)!r})
from tests.conftest import _register_hashing_backend
_register_hashing_backend()
"""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture()
def two_workers(tmp_path: Path, small_features: Path, bundles) -> Iterator[str]:
    site = tmp_path / "site"
    site.mkdir()
    (site / "sitecustomize.py").write_text(SITECUSTOMIZE)
    port = _free_port()
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(site), str(ROOT)]),
        "AUDIENCEFIT_API_KEYS": API_KEY,
        "AUDIENCEFIT_ADMIN_API_KEYS": ADMIN_KEY,
        "AUDIENCEFIT_DATA_DIR": str(tmp_path / "data"),
        "AUDIENCEFIT_LOG_LEVEL": "WARNING",
        **UNLIMITED_ENV,  # the readiness polls below would exceed the per-address limit
    }
    cmd = [sys.executable, "-c", "from audiencefit.cli import main; main()", "serve", "--workers", "2"]
    cmd += ["--threads", "2", "--features", str(small_features), "--bundle", str(bundles[0]), "--port", str(port)]
    log = tmp_path / "server.log"
    base = f"http://127.0.0.1:{port}"
    with log.open("wb") as out:
        proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT)
        try:
            deadline = time.monotonic() + 120
            while len(_worker_pids(base, 12)) < 2:
                if proc.poll() is not None or time.monotonic() > deadline:
                    pytest.fail(f"two workers did not become ready: {log.read_text()[-3000:]}")
                time.sleep(0.3)
            yield base
        finally:
            proc.terminate()
            proc.wait(timeout=30)


def _worker_pids(base: str, tries: int) -> set[int]:
    """The workers that answered ``tries`` readiness checks, each on a new connection."""
    pids = set()
    for _ in range(tries):
        try:
            resp = httpx.get(f"{base}/readyz", timeout=5)
        except httpx.HTTPError:
            continue
        if resp.status_code == 200:
            pids.add(resp.json()["worker_pid"])
    return pids


def _bundles_serving(base: str, tries: int = 16) -> dict[int, str]:
    """worker pid → the bundle it serves, from readiness checks on new connections."""
    out = {}
    for _ in range(tries):
        body = httpx.get(f"{base}/readyz", timeout=5).json()
        out[body["worker_pid"]] = body["bundle_id"]
    return out


def _until(check, timeout: float = 15.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(0.2)
    return False


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


def test_a_killed_worker_is_replaced_and_the_service_keeps_answering(two_workers: str):
    base = two_workers
    headers = {"X-API-Key": API_KEY}
    victim = sorted(_worker_pids(base, 8))[0]
    os.kill(victim, 9)
    statuses = []
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        resp = httpx.post(f"{base}/v1/recommendations", json=BODY, headers=headers, timeout=30)
        statuses.append(resp.status_code)
        pids = _worker_pids(base, 8)
        if len(pids) == 2 and victim not in pids:
            break
        time.sleep(0.2)
    pids = _worker_pids(base, 8)
    assert len(pids) == 2 and victim not in pids, "the killed worker was not replaced"
    # The other worker answered throughout; only a request in flight on the killed one could have failed.
    assert statuses.count(200) >= len(statuses) - 1, statuses
    assert httpx.post(f"{base}/v1/recommendations", json=BODY, headers=headers, timeout=30).status_code == 200


def test_a_worker_that_cannot_load_fails_the_start(tmp_path: Path, bundles):
    empty = tmp_path / "not-a-feature-set"
    empty.mkdir()
    env = {**os.environ, "AUDIENCEFIT_API_KEYS": API_KEY, "AUDIENCEFIT_DATA_DIR": str(tmp_path / "data")}
    cmd = [sys.executable, "-c", "from audiencefit.cli import main; main()", "serve", "--workers", "2"]
    cmd += ["--features", str(empty), "--bundle", str(bundles[0]), "--port", str(_free_port())]
    done = subprocess.run(cmd, check=False, cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode != 0
    assert "while loading" in done.stderr, done.stderr[-2000:]
