"""A team's MLflow: ``train`` → ``promote`` → ``serve --model models:/audiencefit@champion`` against a real
``mlflow server`` process over HTTP, its artifacts proxied (``--artifacts-destination``, ``mlflow-artifacts:`` URIs).

Every product command runs as its own process with only ``MLFLOW_TRACKING_URI=http://…`` pointing it at the server:
the trainer, the promoter and the serving host have separate data directories and working directories, so the
test also shows that nothing travels between them except through the server (no SQLite file, no ``mlruns`` or
``mlartifacts`` directory on a client). The server starts first and boots while the session's small world and
feature set are built.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.e2e.conftest import API_KEY
from tests.e2e.serve_process import SITECUSTOMIZE, TEST_EMBEDDER_SITE, free_port, readiness, serve_env

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")

SERVER_START_SECONDS = 150  # the server migrates a fresh database and imports its app; slow on a loaded 2-core box
COMMAND_SECONDS = 240
CLIENT_LOCAL_STORES = ("mlflow.db", "mlruns", "mlartifacts")


class MlflowServer:
    """A running ``mlflow server``: its URL, its artifacts destination, and its log."""

    def __init__(self, proc: subprocess.Popen[bytes], url: str, artifacts: Path, log: Path) -> None:
        self.proc, self.url, self.artifacts, self.log = proc, url, artifacts, log

    def wait_ready(self) -> None:
        deadline = time.monotonic() + SERVER_START_SECONDS
        while True:
            try:
                if httpx.get(f"{self.url}/health", timeout=2).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            if self.proc.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"mlflow server did not answer /health: {self.log.read_text()[-3000:]}")
            time.sleep(0.5)


@pytest.fixture()
def mlflow_server(tmp_path: Path) -> Iterator[MlflowServer]:
    """``mlflow server`` on a free loopback port: a SQLite backend store and an artifacts destination of its own
    (the server's side); its own process group, stopped (SIGTERM, then SIGKILL) at the end."""
    side = tmp_path / "server"
    side.mkdir()
    artifacts = side / "artifacts"
    port = free_port()
    log = side / "server.log"
    cmd = [sys.executable, "-m", "mlflow", "server", "--host", "127.0.0.1", "--port", str(port), "--workers", "1"]
    cmd += ["--backend-store-uri", f"sqlite:///{side / 'mlflow.db'}", "--artifacts-destination", str(artifacts)]
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_")}
    env["MLFLOW_SERVER_ENABLE_JOB_EXECUTION"] = "false"  # its GenAI job runner: one process less to boot here
    with log.open("wb") as out:
        proc = subprocess.Popen(cmd, cwd=side, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        yield MlflowServer(proc, f"http://127.0.0.1:{port}", artifacts, log)
    finally:
        os.killpg(proc.pid, signal.SIGTERM)  # the server's uvicorn runs as a child in the group
        try:
            proc.wait(timeout=5)  # a throwaway server: no need to wait out a graceful shutdown
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=30)


def run_command(args: list[str], *, cwd: Path, env: dict[str, str]) -> str:
    """Run ``audiencefit <args>`` in its own process; its output (the test fails with it on a non-zero exit)."""
    cwd.mkdir(exist_ok=True)
    cmd = [sys.executable, "-c", "from audiencefit.cli import main; main()", *args]
    done = subprocess.run(cmd, check=False, cwd=cwd, env=env, capture_output=True, text=True, timeout=COMMAND_SECONDS)
    output = done.stdout + done.stderr
    assert done.returncode == 0, f"audiencefit {args[0]} failed ({done.returncode}):\n{output[-4000:]}"
    return output


def client_env(host: Path, server: MlflowServer, *, serving: bool = False) -> dict[str, str]:
    """One host's environment: the test embedder, its own data directory, and only the tracking URI for MLflow; a
    serving host goes without the packages only training uses (tests/e2e/serve_process.py)."""
    host.mkdir(parents=True, exist_ok=True)
    site = SITECUSTOMIZE if serving else TEST_EMBEDDER_SITE
    env = {k: v for k, v in serve_env(host, site).items() if not k.startswith("MLFLOW_")}
    return {**env, "MLFLOW_TRACKING_URI": server.url, "AUDIENCEFIT_LOG_LEVEL": "INFO"}


def files_under(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file())


def test_train_promote_serve_through_an_mlflow_server(
    mlflow_server: MlflowServer, small_world: Path, small_features: Path, tmp_path: Path
) -> None:
    from mlflow import MlflowClient

    mlflow_server.wait_ready()
    trainer, server = tmp_path / "trainer", mlflow_server

    out = train_out = run_command(
        ["train", "--data", str(small_world), "--features", str(small_features)],
        cwd=trainer / "cwd",
        env=client_env(trainer, server),
    )
    assert "registered: models:/audiencefit/1 (alias challenger)" in out
    out = run_command(["promote"], cwd=trainer / "cwd", env=client_env(trainer, server))
    assert "champion is now v1" in out
    assert "🏃" not in train_out  # MLflow's own stdout line; the command prints the run's page itself

    # The registry over REST: aliases, the version's run, and artifact URIs that go through the server's proxy.
    c = MlflowClient(tracking_uri=server.url, registry_uri=server.url)
    model = c.get_registered_model("audiencefit")
    assert model.aliases == {"challenger": "1", "champion": "1"}
    version = c.get_model_version("audiencefit", "1")
    run = c.get_run(version.run_id)
    assert f"run page: {server.url}/#/experiments/{run.info.experiment_id}/runs/{run.info.run_id}" in train_out
    assert run.info.artifact_uri.startswith("mlflow-artifacts:/"), run.info.artifact_uri
    assert c.get_model_version_download_uri("audiencefit", "1").startswith("mlflow-artifacts:/")
    assert {"test_set.parquet", "evaluation.csv"} <= {a.path for a in c.list_artifacts(run.info.run_id)}

    # The files are in the server's artifacts destination, and no client kept a store of its own.
    stored = files_under(server.artifacts)
    assert any(p.endswith(f"{run.info.run_id}/artifacts/test_set.parquet") for p in stored), stored
    logged_model = [p for p in stored if p.startswith(f"{run.info.experiment_id}/models/")]  # MLflow 3's layout
    assert any(p.endswith("/MLmodel") for p in logged_model), stored
    assert any(p.endswith("/bundle.json") for p in logged_model), stored
    for where in (trainer / "cwd", trainer / "data"):
        assert not [p for p in where.rglob("*") if p.name in CLIENT_LOCAL_STORES], files_under(where)

    # A serving host: nothing but the feature set and the tracking URI; the champion is downloaded from the server,
    # once (by the front, before its two workers start; they find it in the registry cache).
    host = tmp_path / "host"
    port = free_port()
    cmd = [sys.executable, "-c", "from audiencefit.cli import main; main()", "serve", "--workers", "2"]
    cmd += ["--features", str(small_features), "--model", "models:/audiencefit@champion", "--port", str(port)]
    (host / "cwd").mkdir(parents=True)
    base = f"http://127.0.0.1:{port}"
    log = host / "serve.log"
    with log.open("wb") as sink:
        proc = subprocess.Popen(
            cmd, cwd=host / "cwd", env=client_env(host, server, serving=True), stdout=sink, stderr=subprocess.STDOUT
        )
        try:
            deadline = time.monotonic() + COMMAND_SECONDS
            while len(workers := readiness(base, 12)) < 2:
                if proc.poll() is not None or time.monotonic() > deadline:
                    pytest.fail(f"serve did not become ready: {log.read_text()[-3000:]}")
                time.sleep(0.3)
            assert {w["bundle_id"] for w in workers.values()} == {version.tags["bundle_id"]}
            headers = {"X-API-Key": API_KEY}
            served = httpx.get(f"{base}/v1/model", headers=headers, timeout=30).json()
            assert served["model_source"] == f"models:/audiencefit@champion (audiencefit-v1-{run.info.run_id})"
            resp = httpx.post(
                f"{base}/v1/recommendations",
                json={"description": "Protein bars with whey and oats", "k": 3},
                headers=headers,
                timeout=60,
            )
            assert resp.status_code == 200, resp.text
            assert len(resp.json()["creators"]) == 3
        finally:
            proc.terminate()
            proc.wait(timeout=30)
    assert log.read_text().count("model bundle downloaded") == 1, log.read_text()[-3000:]
    cached = host / "data" / "registry-cache" / f"audiencefit-v1-{run.info.run_id}"
    assert (cached / "bundle.json").is_file()
    assert not [p for p in host.rglob("*") if p.name in CLIENT_LOCAL_STORES], files_under(host)
