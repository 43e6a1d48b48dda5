"""``audiencefit serve --workers 2``: the workers die with the front even when it is SIGKILLed, SIGTERM removes the
control directory, and the next run removes what a killed run left there."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e.serve_process import ROOT, SITECUSTOMIZE, free_port, running_serve, serve_command, serve_env, worker_pids
from tests.processes import alive, until


class Serve:
    def __init__(self, proc: subprocess.Popen[bytes], base: str, tmp: Path, log: Path) -> None:
        self.proc, self.base, self.tmp, self.log = proc, base, tmp, log

    def control_dirs(self) -> list[Path]:
        return sorted(self.tmp.glob("audiencefit-serve-*"))


@pytest.fixture()
def serve(tmp_path: Path, small_features: Path, bundles) -> Iterator[Serve]:
    # A short TMPDIR of its own: the front's Unix socket lives in the control directory (AF_UNIX paths are short).
    tmp = Path(tempfile.mkdtemp(prefix="afserve-", dir="/tmp"))
    # What a SIGKILLed run of an earlier serve left (its process is gone), and a directory that is not ours.
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    (tmp / f"audiencefit-serve-{dead.pid}-abcd1234").mkdir()
    (tmp / "audiencefit-serve-notes").mkdir()
    env = serve_env(tmp_path, TMPDIR=str(tmp))
    try:
        with running_serve(
            tmp_path, small_features, bundles[0], workers=2, env=env, stop=subprocess.Popen.kill
        ) as server:
            yield Serve(server.proc, server.base, tmp, server.log)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


# Workers that take long to load (as one compiling a bundle does): the front is killed before they connect.
SLOW_WORKERS = """
import os, time
from pathlib import Path
import audiencefit.serving.workers

_build_app = audiencefit.serving.workers.build_app

def build_app(options):
    (Path(os.environ["H3_WORKER_PIDS"]) / str(os.getpid())).write_text("loading")
    time.sleep(120)
    return _build_app(options)

audiencefit.serving.workers.build_app = build_app
"""


def test_sigkill_of_the_front_takes_loading_workers_with_it(tmp_path: Path, small_features: Path, bundles):
    pids = tmp_path / "pids"
    pids.mkdir()
    env = serve_env(tmp_path, SITECUSTOMIZE + SLOW_WORKERS, H3_WORKER_PIDS=str(pids))
    cmd = serve_command(small_features, bundles[0], workers=2, port=free_port())
    front = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    workers: list[int] = []
    try:
        assert until(lambda: len(list(pids.iterdir())) == 2, 120), "the workers did not start"
        workers = [int(p.name) for p in pids.iterdir()]
        front.send_signal(signal.SIGKILL)
        front.wait(timeout=10)
        assert until(lambda: not any(alive(pid) for pid in workers), 5), "loading workers outlived the front"
    finally:
        front.kill()
        front.wait()
        for pid in workers:
            if alive(pid):
                os.kill(pid, signal.SIGKILL)


def test_sigkill_of_the_front_takes_the_workers_with_it(serve: Serve):
    workers = worker_pids(serve.base, 12)
    assert len(workers) == 2 and all(alive(pid) for pid in workers)
    serve.proc.send_signal(signal.SIGKILL)
    serve.proc.wait(timeout=10)
    try:
        assert until(lambda: not any(alive(pid) for pid in workers), 5), "workers outlived the front"
    finally:
        for pid in workers:
            if alive(pid):
                os.kill(pid, signal.SIGKILL)


def test_sigterm_removes_the_control_directory(serve: Serve):
    workers = worker_pids(serve.base, 12)
    ours = [p for p in serve.control_dirs() if (p / "front.sock").exists()]
    assert len(ours) == 1

    def written() -> set[str]:
        """The pids with prometheus_client multiprocess files in this run's metrics/ (audiencefit.serving.metrics)."""
        return {f.name.rsplit("_", 1)[1].removesuffix(".db") for f in (ours[0] / "metrics").glob("*.db")}

    assert until(lambda: {str(pid) for pid in workers} | {str(serve.proc.pid)} <= written(), 5), written()
    serve.proc.send_signal(signal.SIGTERM)
    serve.proc.wait(timeout=60)
    assert not ours[0].exists(), serve.log.read_text()[-2000:]
    assert until(lambda: not any(alive(pid) for pid in workers), 5)
    # The run also removed the control directory of the killed run before making its own, and nothing else.
    assert [p.name for p in serve.control_dirs()] == ["audiencefit-serve-notes"]
