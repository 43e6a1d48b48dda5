"""The registry against a remote tracking server that is down, refuses the login, or has no model: each is a clear
``InputError`` at once (MLflow's own client retries a refused connection for minutes, and its failures would read
as a missing model). A small HTTP server in a thread stands in for the MLflow server's REST answers; the real
server is exercised end to end by tests/e2e/test_mlflow_server.py."""

from __future__ import annotations

import json
import socket
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler
from pathlib import Path

import pytest

from audiencefit.features.errors import InputError
from tests.stub_http import stub_server


class Answers:
    """What the stand-in server answers (status, JSON body) and the Authorization headers it received."""

    def __init__(self, status: int, body: dict[str, object]) -> None:
        self.status, self.body = status, body
        self.authorizations: list[str | None] = []
        self.paths: list[str] = []


@pytest.fixture()
def rest(monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[str, Answers]]:
    answers = Answers(200, {})

    def answer(request: BaseHTTPRequestHandler) -> tuple[int, bytes]:
        answers.authorizations.append(request.headers.get("Authorization"))
        answers.paths.append(request.path)
        if "registered-models/search" in request.path and answers.status == 404:
            return 200, b'{"registered_models": [{"name": "other"}]}'
        return answers.status, json.dumps(answers.body).encode() if answers.body else b"You are not authenticated."

    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")  # 5xx would otherwise be retried; none is sent here
    with stub_server(answer) as url:
        yield url, answers


def settings_for(uri: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    from audiencefit.models.registry import check_reachable
    from audiencefit.settings import Settings

    check_reachable.cache_clear()
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    return Settings(data_dir=tmp_path / "data")


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_a_server_that_is_down_is_named_at_once(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from audiencefit.models.registry import get_version, resolve_bundle

    settings = settings_for(f"http://someone:Pw-Secret-77@127.0.0.1:{closed_port()}", tmp_path, monkeypatch)
    start = time.monotonic()
    for call in (
        lambda: get_version("models:/audiencefit@champion", settings=settings),
        lambda: resolve_bundle(settings=settings),
    ):
        with pytest.raises(InputError, match="not reachable") as err:
            call()
        assert "127.0.0.1" in str(err.value) and "Pw-Secret-77" not in str(err.value)
    assert time.monotonic() - start < 10


def test_train_checks_the_server_before_it_trains(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from typer.testing import CliRunner

    from audiencefit.cli import app
    from audiencefit.settings import get_settings

    settings_for(f"http://127.0.0.1:{closed_port()}", tmp_path, monkeypatch)
    monkeypatch.setenv("AUDIENCEFIT_DATA_DIR", str(tmp_path / "data"))
    get_settings.cache_clear()
    try:
        # Data that does not exist: training would refuse it, so the error shows the server was checked first.
        result = CliRunner().invoke(app, ["train", "--data", str(tmp_path / "no"), "--features", str(tmp_path / "no")])
    finally:
        get_settings.cache_clear()
    assert isinstance(result.exception, InputError) and "not reachable" in str(result.exception)


@pytest.mark.parametrize(
    "body",
    [{"error_code": "UNAUTHENTICATED", "message": "You are not authenticated."}, {}],  # {}: a plain-text answer
    ids=["json", "text"],
)
def test_a_refused_login_says_which_variables_carry_credentials(
    body: dict[str, object], rest: tuple[str, Answers], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from audiencefit.models.registry import current_version, get_version

    url, answers = rest
    answers.status, answers.body = 401, body
    monkeypatch.setenv("MLFLOW_TRACKING_USERNAME", "ops")
    monkeypatch.setenv("MLFLOW_TRACKING_PASSWORD", "wrong-password")
    settings = settings_for(url, tmp_path, monkeypatch)
    for call in (
        lambda: get_version("models:/audiencefit@champion", settings=settings),
        lambda: current_version(settings=settings),  # not "no champion yet": promote must not act on that
    ):
        with pytest.raises(InputError, match="MLFLOW_TRACKING_USERNAME and MLFLOW_TRACKING_PASSWORD") as err:
            call()
        assert "no registered model" not in str(err.value) and "wrong-password" not in str(err.value)
    # The standard variables reach the server as basic auth on every request.
    assert answers.authorizations and set(answers.authorizations) == {"Basic b3BzOndyb25nLXBhc3N3b3Jk"}


def test_a_missing_model_on_the_server_names_the_registered_ones(
    rest: tuple[str, Answers], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from audiencefit.models.registry import current_version, get_version

    url, answers = rest
    answers.status = 404
    answers.body = {"error_code": "RESOURCE_DOES_NOT_EXIST", "message": "Registered Model 'audiencefit' not found"}
    settings = settings_for(url, tmp_path, monkeypatch)
    with pytest.raises(InputError, match=r"no registered model 'audiencefit'.*\['other'\]"):
        get_version("models:/audiencefit@champion", settings=settings)
    assert current_version(settings=settings) is None


def test_mlflow_credentials_are_scrubbed_from_logs(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    from audiencefit.logs import settings_secrets
    from audiencefit.settings import Settings

    monkeypatch.setenv("MLFLOW_TRACKING_PASSWORD", "Tracking-Pw-31")
    monkeypatch.setenv("MLFLOW_TRACKING_TOKEN", "Tracking-Token-32")
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "https://ops:Uri-Pw-33@mlflow.example")
    secrets = set(settings_secrets(Settings(data_dir=tmp_path)))
    assert {"Tracking-Pw-31", "Tracking-Token-32", "Uri-Pw-33"} <= secrets


@pytest.mark.parametrize(
    ("uri", "local"),
    [
        ("sqlite:///x/mlflow.db", True),
        ("postgresql://u@db/mlflow", True),
        ("/srv/mlruns", True),
        ("file:///srv/mlruns", True),
        ("http://mlflow:5000", False),
        ("https://mlflow.example", False),
        ("databricks", False),
    ],
)
def test_artifacts_of_a_store_written_here_stay_under_the_data_dir(
    uri: str, local: bool, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from audiencefit.settings import Settings
    from audiencefit.training.tracking import artifact_root

    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    root = artifact_root(Settings(data_dir=tmp_path))
    assert root == ((tmp_path / "mlartifacts").resolve().as_uri() if local else None)


def test_the_run_page_of_a_server_carries_no_credentials(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from audiencefit.settings import Settings
    from audiencefit.training.tracking import run_url

    monkeypatch.setenv("MLFLOW_TRACKING_URI", "https://ops:Uri-Pw-33@mlflow.example:8443/base/")
    url = run_url(Settings(data_dir=tmp_path), "4", "abc")
    assert url == "https://mlflow.example:8443/base/#/experiments/4/runs/abc"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "sqlite:///x.db")
    assert run_url(Settings(data_dir=tmp_path), "4", "abc") is None


def test_a_deleted_training_experiment_is_refused_by_name(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from mlflow import MlflowClient

    from audiencefit.training.tracking import EXPERIMENT, ensure_experiment

    settings = settings_for(f"sqlite:///{tmp_path / 'mlflow.db'}", tmp_path, monkeypatch)
    first = ensure_experiment(settings)
    assert ensure_experiment(settings) == first
    MlflowClient(tracking_uri=settings.tracking_uri).delete_experiment(first)
    with pytest.raises(InputError, match=f"experiment '{EXPERIMENT}' .* is deleted; restore it"):
        ensure_experiment(settings)
