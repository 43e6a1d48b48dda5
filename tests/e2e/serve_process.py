"""``audiencefit serve`` as a real process for end-to-end tests: the environment, the command and the wait until
every worker answers readiness checks."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.e2e.conftest import ADMIN_KEY, API_KEY, UNLIMITED_ENV

ROOT = Path(__file__).resolve().parents[2]
# Worker processes are spawned fresh: the test embedder is registered in each through sitecustomize.
# And the packages only building and training need are made uninstallable in every test server (front and
# workers): serving must start and answer without them, so that a serving host can go without torch, Ray or the
# notebook stack (issue 21); an import of one fails the server's start or its request.
TRAINING_ONLY = (
    "torch", "transformers", "sentence_transformers", "ray", "model2vec", "skeletoken", "onnx", "matplotlib",
    "jupyter_client", "ipykernel", "nbclient", "jupytext",
)  # fmt: skip
TEST_EMBEDDER_SITE = f"""
import sys
sys.path.insert(0, {str(ROOT)!r})
from tests.conftest import _register_hashing_backend
_register_hashing_backend()
"""
"""The sitecustomize of a host that builds and trains (all packages installed), with the test embedder."""
SITECUSTOMIZE = (
    f"""
import importlib.abc
import sys


class _TrainingOnly(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path, target=None):
        if name.split(".")[0] in {TRAINING_ONLY!r}:
            raise ModuleNotFoundError(f"{{name}}: not on a serving host (tests/e2e/serve_process.py)", name=name)
        return None


sys.meta_path.insert(0, _TrainingOnly())
"""
    + TEST_EMBEDDER_SITE
)
"""The sitecustomize of a serving host: the packages only building and training use are not there."""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def readiness(base: str, tries: int) -> dict[int, dict[str, Any]]:
    """worker pid → its ``/readyz`` answer, for the workers that answered ``tries`` readiness checks (200), each on a
    new connection."""
    out: dict[int, dict[str, Any]] = {}
    for _ in range(tries):
        try:
            resp = httpx.get(f"{base}/readyz", timeout=5)
        except httpx.HTTPError:
            continue
        if resp.status_code == 200:
            body = resp.json()
            out[body["worker_pid"]] = body
    return out


def worker_pids(base: str, tries: int) -> set[int]:
    """The workers that answered ``tries`` readiness checks, each on a new connection."""
    return set(readiness(base, tries))


def serve_env(tmp_path: Path, sitecustomize: str = SITECUSTOMIZE, **extra: str) -> dict[str, str]:
    """The environment of a test server: the test embedder, the test keys, its own data directory, quiet logs and
    no rate limits (tests/e2e/test_rate_limits.py tests those); ``extra`` is added last."""
    site = tmp_path / "site"
    site.mkdir(exist_ok=True)
    (site / "sitecustomize.py").write_text(sitecustomize)
    return {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(site), str(ROOT)]),
        "AUDIENCEFIT_API_KEYS": API_KEY,
        "AUDIENCEFIT_ADMIN_API_KEYS": ADMIN_KEY,
        "AUDIENCEFIT_DATA_DIR": str(tmp_path / "data"),
        "AUDIENCEFIT_LOG_LEVEL": "WARNING",
        **UNLIMITED_ENV,
        **extra,
    }


def serve_command(features: Path, bundle: Path, workers: int, port: int, threads: int = 2) -> list[str]:
    cmd = [sys.executable, "-c", "from audiencefit.cli import main; main()", "serve", "--workers", str(workers)]
    cmd += ["--threads", str(threads), "--features", str(features), "--bundle", str(bundle), "--port", str(port)]
    return cmd


class Server:
    """A running ``serve``: its process, base URL and log file."""

    def __init__(self, proc: subprocess.Popen[bytes], base: str, log: Path) -> None:
        self.proc, self.base, self.log = proc, base, log


@contextmanager
def running_serve(
    tmp_path: Path,
    features: Path,
    bundle: Path,
    *,
    workers: int,
    env: dict[str, str],
    ready: Callable[[str], bool] | None = None,
    stop: Callable[[subprocess.Popen[bytes]], None] = subprocess.Popen.terminate,
) -> Iterator[Server]:
    """Start ``serve``, wait (at most 120 s) until ``ready(base)`` (default: every worker answers readiness), yield
    it, and stop it with ``stop`` (SIGTERM by default) on the way out."""
    base = f"http://127.0.0.1:{(port := free_port())}"
    log = tmp_path / "server.log"
    check = ready or (lambda url: len(worker_pids(url, 12)) >= workers)
    with log.open("wb") as out:
        proc = subprocess.Popen(
            serve_command(features, bundle, workers, port), cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT
        )
        try:
            deadline = time.monotonic() + 120
            while not check(base):
                if proc.poll() is not None or time.monotonic() > deadline:
                    pytest.fail(f"the server did not become ready: {log.read_text()[-3000:]}")
                time.sleep(0.3)
            yield Server(proc, base, log)
        finally:
            stop(proc)
            proc.wait(timeout=30)
