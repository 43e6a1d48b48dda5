"""``python -m audiencefit.ready``: ``make run``'s last line comes once the service answers ``/readyz`` ready."""

from __future__ import annotations

import json
import shlex
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler
from pathlib import Path

import pytest

from audiencefit import ready
from tests.stub_http import stub_server


@pytest.fixture()
def service() -> Iterator[tuple[str, dict[str, bool]]]:
    """A stand-in service: /readyz answers 503 until ``state["ready"]`` is set, then 200 ``{"ready": true}``."""
    state = {"ready": False}

    def answer(request: BaseHTTPRequestHandler) -> tuple[int, bytes]:
        ok = request.path == "/readyz" and state["ready"]
        return (200 if ok else 503), json.dumps({"ready": ok}).encode()

    with stub_server(answer) as url:
        yield url, state


def test_waits_through_503_until_ready(service) -> None:
    url, state = service
    assert not ready.is_ready(url)
    threading.Timer(0.5, lambda: state.update(ready=True)).start()
    started = time.monotonic()
    assert ready.wait_ready(url, timeout=10, interval=0.05)
    assert 0.4 < time.monotonic() - started < 5


def test_stops_waiting_when_the_service_process_ended(service) -> None:
    url, _ = service
    started = time.monotonic()
    assert not ready.wait_ready(url, timeout=30, alive=lambda: False, interval=0.05)
    assert time.monotonic() - started < 5
    assert not ready.wait_ready("http://127.0.0.1:9", timeout=0.3, interval=0.05)  # nothing listens: refused


def test_a_zombie_has_ended() -> None:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    deadline = time.monotonic() + 10
    while ready.running(child.pid) and time.monotonic() < deadline:  # ends, then waits unreaped (a zombie)
        time.sleep(0.05)
    assert not ready.running(child.pid)
    child.wait()


def test_the_line_holds_the_url_the_key_and_a_curl_to_paste() -> None:
    line = ready.ready_line("http://127.0.0.1:8000", "demo-k'ey")
    assert line.count("\n") == 0
    assert line.startswith("ready: http://127.0.0.1:8000  API key: demo-k'ey  try: curl ")
    argv = shlex.split(line.split("try: ", 1)[1])
    assert argv[:5] == ["curl", "-s", "-X", "POST", "http://127.0.0.1:8000/v1/recommendations"]
    assert "X-API-Key: demo-k'ey" in argv
    body = json.loads(argv[argv.index("-d") + 1])
    assert body["segments"] and body["k"] == 3


def test_the_module_prints_the_line_once_ready(service, tmp_path: Path) -> None:
    url, state = service
    key = tmp_path / "key"
    key.write_text("demo-abc\n")
    state["ready"] = True
    done = subprocess.run(
        [sys.executable, "-m", "audiencefit.ready", url, "--key-file", str(key), "--timeout", "10"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        cwd=Path(__file__).resolve().parents[2],
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == [ready.ready_line(url, "demo-abc")]


def test_a_missing_key_file_or_a_service_that_ended_fails(service, tmp_path: Path) -> None:
    url, _ = service
    assert ready.main([url, "--key-file", str(tmp_path / "missing")]) == 2
    key = tmp_path / "key"
    key.write_text("k")
    assert ready.main([url, "--key-file", str(key), "--timeout", "0.2"]) == 1
