"""Log lines carry tracebacks in both formats and never a secret (access-log query values, X-API-Key)."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator

import pytest

from audiencefit import logs

SECRET_KEY = "live-key-Ab3De5Gh7Jk9"


@pytest.fixture()
def captured(request: pytest.FixtureRequest) -> Iterator[tuple[io.StringIO, str]]:
    fmt = request.param
    root = logging.getLogger()
    saved = root.handlers[:], root.level, list(getattr(logs, "_secrets", ()))
    logs.configure_logging("INFO", fmt)
    getattr(logs, "register_secrets", lambda values: None)([SECRET_KEY])  # what configure_logging(secrets=) does
    stream = io.StringIO()
    root.handlers[0].setStream(stream)  # type: ignore[attr-defined]
    try:
        yield stream, fmt
    finally:
        root.handlers[:] = saved[0]
        getattr(logs, "_secrets", [])[:] = saved[2]
        root.setLevel(saved[1])


@pytest.mark.parametrize("captured", ["console", "json"], indirect=True)
def test_exceptions_and_stacks_are_logged_in_both_formats(captured):
    stream, fmt = captured
    try:
        raise RuntimeError("boom-in-depth")
    except RuntimeError:
        logging.getLogger("t").exception("it failed", extra={"path": "/v1/x"})
    logging.getLogger("t").warning("with stack", stack_info=True)
    text = stream.getvalue()
    assert "Traceback (most recent call last)" in text
    assert "RuntimeError: boom-in-depth" in text
    assert "test_exceptions_and_stacks_are_logged_in_both_formats" in text  # the stack_info frame
    if fmt == "json":
        lines = [json.loads(line) for line in text.splitlines() if line.startswith("{")]
        assert "RuntimeError" in lines[0]["exc"] and "stack" in lines[1]


@pytest.mark.parametrize("captured", ["console", "json"], indirect=True)
def test_access_log_redacts_query_values(captured):
    stream, _ = captured
    access = logging.getLogger("uvicorn.access")
    path = f"/v1/recommendations?api_key={SECRET_KEY[:-1]}Z&token=abc%20def&k"
    access.info('%s - "%s %s HTTP/%s" %d', "127.0.0.1:5000", "GET", path, "1.1", 200)
    text = stream.getvalue()
    assert "/v1/recommendations?api_key=***&token=***&k=***" in text
    assert "abc" not in text and SECRET_KEY[:-1] not in text


@pytest.mark.parametrize("captured", ["console", "json"], indirect=True)
def test_no_line_carries_a_configured_secret_or_the_api_key_header(captured):
    stream, _ = captured
    log = logging.getLogger("t")
    log.info("request", extra={"headers": [(b"x-api-key", b"other-key-0000"), (b"host", b"h")]})
    log.info("headers %s", {"X-API-Key": "third-key-1111"})
    log.warning(f"bad key {SECRET_KEY}")
    try:
        raise ValueError(f"refused {SECRET_KEY}")
    except ValueError:
        log.exception("failed")
    text = stream.getvalue()
    for secret in (SECRET_KEY, "other-key-0000", "third-key-1111"):
        assert secret not in text
    assert "***" in text


def test_redact_query_keeps_paths_without_query():
    assert logs.redact_query("/healthz") == "/healthz"
    assert logs.redact_query("/v1/x?") == "/v1/x?"
    assert logs.redact_query("/v1/x?=") == "/v1/x?=***"


@pytest.mark.parametrize("captured", ["console"], indirect=True)
def test_a_real_uvicorn_access_log_line_is_redacted(captured):
    """Through uvicorn itself (as ``audiencefit serve`` runs it: log_config=None, our handler on the root)."""
    import socket
    import threading
    import time

    import httpx
    import uvicorn

    async def app(scope, receive, send):
        if scope["type"] != "http":
            return
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"ok"})

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_config=None, lifespan="off"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + 10
        while not server.started and time.monotonic() < deadline:
            time.sleep(0.05)
        resp = httpx.get(
            f"http://127.0.0.1:{port}/v1/creators?api_key={SECRET_KEY}x&limit=5",
            headers={"X-API-Key": SECRET_KEY},
            timeout=5,
        )
        assert resp.status_code == 200
    finally:
        server.should_exit = True
        thread.join(timeout=10)
    stream, _ = captured
    text = stream.getvalue()
    assert "/v1/creators?api_key=***&limit=***" in text
    assert SECRET_KEY not in text


@pytest.mark.parametrize("captured", ["console", "json"], indirect=True)
def test_url_passwords_are_redacted(captured):
    stream, _ = captured
    logging.getLogger("t").info("tracking", extra={"uri": "https://alice:pa55word@mlflow.example/x"})
    text = stream.getvalue()
    assert "pa55word" not in text and "https://alice:***@mlflow.example/x" in text
    assert logs.redact_url("sqlite:////tmp/a@b.db") == "sqlite:////tmp/a@b.db"


@pytest.mark.parametrize("captured", ["json"], indirect=True)
def test_a_secret_with_quotes_is_scrubbed_from_json_lines(captured):
    stream, _ = captured
    quoted = 'k3y-with-"quote"-and-\\-backslash'
    logs.register_secrets([quoted])
    logging.getLogger("t").info("seen", extra={"value": quoted})
    assert "quote" not in stream.getvalue()


@pytest.mark.parametrize("captured", ["console", "json"], indirect=True)
def test_a_secret_quoted_in_an_error_message_is_scrubbed(captured):
    """An error that quotes the secret with ``%r`` escapes its quote and backslash once more (probe: the reload
    ``error`` field of a JSON line carried the key)."""
    stream, _ = captured
    quoted = 'quo"te\\key-0123456789abcdef'
    logs.register_secrets([quoted])
    logging.getLogger("t").error("reload failed", extra={"error": f"InputError: no registered model {quoted!r}"})
    assert "0123456789abcdef" not in stream.getvalue()


@pytest.mark.parametrize("captured", ["console", "json"], indirect=True)
@pytest.mark.parametrize(
    "path",
    [
        "/v1/creators/plus%2Bkey%3D0123456789abcdef",
        "/v1/creators/%70lus+key%3d0123456789abcdef",
        "/v1/creators/plus%2bkey%3D0123456789abcdef?k=1",
    ],
)
def test_a_percent_encoded_secret_in_an_access_log_path_is_scrubbed(captured, path):
    stream, _ = captured
    logs.register_secrets(["plus+key=0123456789abcdef"])
    access = logging.getLogger(logs.ACCESS_LOGGER)
    access.info('%s - "%s %s HTTP/%s" %d', "127.0.0.1:5", "GET", path, "1.1", 404)
    line = stream.getvalue()
    assert "0123456789abcdef" not in line and "/v1/creators/***" in line, line


@pytest.mark.parametrize("captured", ["console"], indirect=True)
def test_a_path_decoded_for_scrubbing_carries_no_line_break(captured):
    stream, _ = captured
    logs.register_secrets(["plus+key=0123456789abcdef"])
    logging.getLogger(logs.ACCESS_LOGGER).info(
        '%s - "%s %s HTTP/%s" %d', "127.0.0.1:5", "GET", "/v1/x%0Afake-line/plus%2Bkey%3D0123456789abcdef", "1.1", 404
    )
    assert stream.getvalue().count("\n") == 1


COLOURED = "\x1b[36mhttp://127.0.0.1:8000\x1b[0m"


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


@pytest.mark.parametrize("captured", ["console", "json"], indirect=True)
def test_uvicorns_color_message_and_ansi_codes_never_reach_a_stream_that_is_not_a_terminal(captured):
    stream, fmt = captured
    logging.getLogger("uvicorn.error").info(
        "Uvicorn running on %s", "http://127.0.0.1:8000", extra={"color_message": f"Uvicorn running on {COLOURED}"}
    )
    logging.getLogger("t").warning(f"a library's coloured line {COLOURED}", extra={"url": COLOURED})
    text = stream.getvalue()
    assert "\x1b" not in text and "\\u001b" not in text and "[36m" not in text, text
    assert "color_message" not in text
    assert "Uvicorn running on http://127.0.0.1:8000" in text
    assert "a library's coloured line http://127.0.0.1:8000" in text
    if fmt == "json":
        lines = [json.loads(line) for line in text.splitlines()]
        assert lines[1]["url"] == "http://127.0.0.1:8000"


@pytest.mark.parametrize("captured", ["console"], indirect=True)
def test_a_terminal_keeps_what_a_library_coloured(captured):
    terminal = _Terminal()
    logging.getLogger().handlers[0].setStream(terminal)  # type: ignore[attr-defined]
    logging.getLogger("t").warning(f"coloured {COLOURED}")
    assert COLOURED in terminal.getvalue()


def test_strip_ansi_removes_every_kind_of_escape_sequence():
    assert logs.strip_ansi("\x1b[1;31;40mred\x1b[m \x1b]0;title\x07tab \x1bMup") == "red tab up"
    assert logs.strip_ansi("no escapes [36m here") == "no escapes [36m here"


@pytest.mark.parametrize("fmt", ["console", "json"])
def test_a_real_uvicorn_start_and_stop_logs_no_colour_into_a_pipe(fmt):
    """uvicorn itself, as ``serve`` runs it (log_config=None, our handler on the root logger), writing to a
    stream that is not a terminal: no color_message, no escape sequence."""
    import asyncio

    import uvicorn

    async def app(scope, receive, send):  # a bare ASGI app: nothing is requested
        raise AssertionError("not called")

    root = logging.getLogger()
    saved = root.handlers[:], root.level
    logs.configure_logging("INFO", fmt)
    stream = io.StringIO()
    root.handlers[0].setStream(stream)  # type: ignore[attr-defined]
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=0, log_config=None, lifespan="off"))

    async def run() -> None:
        task = asyncio.create_task(server.serve())
        while not server.started:
            await asyncio.sleep(0.01)
        server.should_exit = True
        await task

    try:
        asyncio.run(run())
    finally:
        root.handlers[:], _ = saved[0], root.setLevel(saved[1])
    text = stream.getvalue()
    assert "Uvicorn running on http://127.0.0.1:" in text, text
    assert "\x1b" not in text and "\\u001b" not in text and "color_message" not in text, text


_THIRD_PARTY_NOISE = """
import logging, pathlib, sys, tempfile, warnings
from audiencefit.logs import configure_logging
configure_logging("DEBUG" if sys.argv[1] == "verbose" else "INFO")
import mlflow.artifacts
from mlflow.utils.logging_utils import eprint
from audiencefit.logs import silence_mlflow_prints
src = pathlib.Path(tempfile.mkdtemp())
for i in range(3):
    (src / f"f{i}.txt").write_text("x")
mlflow.artifacts.download_artifacts(artifact_uri=src.as_uri(), dst_path=tempfile.mkdtemp())  # a tqdm bar
warnings.warn("a library hint", UserWarning)
logging.getLogger("mlflow.store.db.utils").info("Creating initial MLflow database tables...")
silence_mlflow_prints()
eprint("Successfully registered model 'audiencefit'.")
logging.getLogger("audiencefit.cli").info("our own line")
"""


@pytest.mark.parametrize("mode", ["quiet", "verbose"])
def test_third_party_bars_warnings_and_prints_stay_off_the_console(mode, tmp_path):
    """In a fresh process, as the CLI starts: mlflow's tqdm bar, its own handler's INFO lines and its prints, and
    Python warnings never reach stderr; audiencefit's lines do. With -v (DEBUG) the warnings come back, as log lines."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    env = {k: v for k, v in os.environ.items() if k not in logs.QUIET_ENV}
    env["PYTHONPATH"] = str(Path(__file__).resolve().parents[2])
    env["MLFLOW_TRACKING_URI"] = f"sqlite:///{tmp_path / 'mlflow.db'}"
    done = subprocess.run(
        [sys.executable, "-c", _THIRD_PARTY_NOISE, mode],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert "our own line" in done.stderr
    for noise in ("Downloading artifacts", "it/s", "Creating initial MLflow", "Successfully registered", "\x1b"):
        assert noise not in done.stderr + done.stdout, (noise, done.stderr)
    if mode == "quiet":
        assert "a library hint" not in done.stderr
    else:
        assert "warning py.warnings:" in done.stderr and "a library hint" in done.stderr


def test_mlflow_prints_inside_the_block_go_to_the_log_even_when_mlflow_enables_its_stream_again(
    capsys: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture
) -> None:
    import logging

    from mlflow.utils import logging_utils

    from audiencefit.logs import mlflow_prints_logged, silence_mlflow_prints

    logger = logging.getLogger("test.mlflow_prints")
    silence_mlflow_prints()
    try:
        with caplog.at_level(logging.DEBUG, logger="test.mlflow_prints"), mlflow_prints_logged(logger):
            logging_utils.enable_logging()  # what one of mlflow's own contexts does on leaving, inside log_model
            logging_utils.eprint("Successfully registered model 'audiencefit'.")
        # mlflow prints the line as it is; another test's leftover log handler may still echo the log record
        # ("--- Logging error ---", the message quoted): only the raw line would be mlflow's print.
        printed = capsys.readouterr().err.splitlines()
        assert not [line for line in printed if line.startswith("Successfully registered")]
        assert [r.getMessage() for r in caplog.records] == ["mlflow: Successfully registered model 'audiencefit'."]
        logging_utils.eprint("after the block")  # the stream is mlflow's own again
        assert "after the block" in capsys.readouterr().err.splitlines()
    finally:
        logging_utils.enable_logging()
