"""``audiencefit serve --workers 2``: the workers die with the front even when it is SIGKILLed, SIGTERM removes the
control directory, and the next run removes what a killed run left there."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e.conftest import ADMIN_KEY, API_KEY
from tests.e2e.test_workers import ROOT, SITECUSTOMIZE, _free_port, _worker_pids


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(") ", 1)[1][0] != "Z"
    except OSError:
        return False


def _until(check, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(0.1)
    return check()


class Serve:
    def __init__(self, proc: subprocess.Popen[bytes], base: str, tmp: Path, log: Path) -> None:
        self.proc, self.base, self.tmp, self.log = proc, base, tmp, log

    def control_dirs(self) -> list[Path]:
        return sorted(self.tmp.glob("audiencefit-serve-*"))


@pytest.fixture()
def serve(tmp_path: Path, small_features: Path, bundles) -> Iterator[Serve]:
    site = tmp_path / "site"
    site.mkdir()
    # A short TMPDIR of its own: the front's Unix socket lives in the control directory (AF_UNIX paths are short).
    tmp = Path(tempfile.mkdtemp(prefix="afserve-", dir="/tmp"))
    (site / "sitecustomize.py").write_text(SITECUSTOMIZE)
    port = _free_port()
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(site), str(ROOT)]),
        "TMPDIR": str(tmp),
        "AUDIENCEFIT_API_KEYS": API_KEY,
        "AUDIENCEFIT_ADMIN_API_KEYS": ADMIN_KEY,
        "AUDIENCEFIT_DATA_DIR": str(tmp_path / "data"),
        "AUDIENCEFIT_LOG_LEVEL": "WARNING",
    }
    # What a SIGKILLed run of an earlier serve left (its process is gone), and a directory that is not ours.
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    (tmp / f"audiencefit-serve-{dead.pid}-abcd1234").mkdir()
    (tmp / "audiencefit-serve-notes").mkdir()
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
            yield Serve(proc, base, tmp, log)
        finally:
            proc.kill()
            proc.wait(timeout=30)
            shutil.rmtree(tmp, ignore_errors=True)


# Workers that take long to load (as one compiling a bundle does): the front is killed before they connect.
SLOW_WORKERS = """
import os, time
from pathlib import Path
import serving.workers

_build_app = serving.workers.build_app

def build_app(options):
    (Path(os.environ["H3_WORKER_PIDS"]) / str(os.getpid())).write_text("loading")
    time.sleep(120)
    return _build_app(options)

serving.workers.build_app = build_app
"""


def test_sigkill_of_the_front_takes_loading_workers_with_it(tmp_path: Path, small_features: Path, bundles):
    site, pids = tmp_path / "site", tmp_path / "pids"
    site.mkdir()
    pids.mkdir()
    (site / "sitecustomize.py").write_text(SITECUSTOMIZE + SLOW_WORKERS)
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(site), str(ROOT)]),
        "H3_WORKER_PIDS": str(pids),
        "AUDIENCEFIT_API_KEYS": API_KEY,
        "AUDIENCEFIT_DATA_DIR": str(tmp_path / "data"),
        "AUDIENCEFIT_LOG_LEVEL": "WARNING",
    }
    cmd = [sys.executable, "-c", "from audiencefit.cli import main; main()", "serve", "--workers", "2"]
    cmd += ["--features", str(small_features), "--bundle", str(bundles[0]), "--port", str(_free_port())]
    front = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    workers: list[int] = []
    try:
        assert _until(lambda: len(list(pids.iterdir())) == 2, 120), "the workers did not start"
        workers = [int(p.name) for p in pids.iterdir()]
        front.send_signal(signal.SIGKILL)
        front.wait(timeout=10)
        assert _until(lambda: not any(_alive(pid) for pid in workers), 5), "loading workers outlived the front"
    finally:
        front.kill()
        front.wait()
        for pid in workers:
            if _alive(pid):
                os.kill(pid, signal.SIGKILL)


def test_sigkill_of_the_front_takes_the_workers_with_it(serve: Serve):
    workers = _worker_pids(serve.base, 12)
    assert len(workers) == 2 and all(_alive(pid) for pid in workers)
    serve.proc.send_signal(signal.SIGKILL)
    serve.proc.wait(timeout=10)
    try:
        assert _until(lambda: not any(_alive(pid) for pid in workers), 5), "workers outlived the front"
    finally:
        for pid in workers:
            if _alive(pid):
                os.kill(pid, signal.SIGKILL)


def test_sigterm_removes_the_control_directory(serve: Serve):
    workers = _worker_pids(serve.base, 12)
    ours = [p for p in serve.control_dirs() if (p / "front.sock").exists()]
    assert len(ours) == 1
    serve.proc.send_signal(signal.SIGTERM)
    serve.proc.wait(timeout=60)
    assert not ours[0].exists(), serve.log.read_text()[-2000:]
    assert _until(lambda: not any(_alive(pid) for pid in workers), 5)
    # The run also removed the control directory of the killed run before making its own, and nothing else.
    assert [p.name for p in serve.control_dirs()] == ["audiencefit-serve-notes"]
