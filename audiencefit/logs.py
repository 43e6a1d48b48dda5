"""Structured logging: one JSON object per line (``AUDIENCEFIT_LOG_FORMAT=json``) or readable console lines.

Both formats carry a record's traceback (``exc_info``) and stack (``stack_info``). No line carries a secret:

- uvicorn's access log shows the path with every query value replaced by ``***`` (a client may send its key as
  ``?api_key=...``; the routes take few query parameters, so nothing useful is lost);
- no line carries a terminal colour code: uvicorn's ``color_message`` (its message again, with ANSI colours) is
  dropped, JSON lines never hold an escape sequence, and console lines lose theirs when the stream is not a
  terminal (a file, a pipe, a log collector);
- every line is scrubbed of the configured secrets (API keys, admin keys, the follower-id secret), of any
  ``X-API-Key`` header value and of passwords in URLs (``scheme://user:password@host``), wherever they appear
  (message, extra fields, traceback).
"""

from __future__ import annotations

import io
import json
import logging
import os
import re
import sys
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any, TextIO
from urllib.parse import parse_qsl, quote, unquote, urlencode, urlsplit

# Record attributes that are not extra fields: the standard ones, and uvicorn's ``color_message`` (the message
# again with ANSI colours, for its own coloured formatter).
_RESERVED = set(logging.makeLogRecord({}).__dict__) | {"message", "asctime", "color_message"}
# ANSI escape sequences: CSI (colours, cursor moves: ESC [ ... final byte), OSC (ESC ] ... BEL or ESC \), and the
# two-byte ones (ESC followed by one of @-Z, \, ], ^, _).
_ANSI = re.compile(r"\x1b(?:\[[0-?]*[ -/]*[@-~]|\][^\x07\x1b]*(?:\x07|\x1b\\)|[@-Z\\-_])")
REDACTED = "***"
ACCESS_LOGGER = "uvicorn.access"
# The X-API-Key header as it can appear in a logged text: 'x-api-key': 'v', (b'x-api-key', b'v'), X-API-Key: v.
_HEADER_VALUE = re.compile(
    r"""(x-api-key['"\\]*\s*[:=,]\s*['"\\]*b?['"\\]*)([^'"\\\s,)}\]]+)""",
    re.IGNORECASE,
)
# user:password@ in a URL (an MLflow tracking URI, a database URL): the password goes.
_URL_PASSWORD = re.compile(r"(?P<head>[A-Za-z][A-Za-z0-9+.-]*://[^/\s:@]*:)[^/\s@]+@")
_MIN_SCRUBBED = 4  # shorter "secrets" (a development key like "k") would redact ordinary words

_secrets: list[str] = []  # longest first: a key containing another is replaced whole


def _spellings(value: str) -> set[str]:
    """``value`` as a log line can spell it: as is, in a Python repr (an error message quoting it), and each of
    those escaped again in a JSON line (a quote or backslash in a key is escaped there)."""
    plain = {value, repr(value)[1:-1]}
    return plain | {json.dumps(v, ensure_ascii=False)[1:-1] for v in plain}


def register_secrets(values: Iterable[str]) -> None:
    """Values that must never appear in a log line (every formatter replaces them by ``***``)."""
    found = {spelling for v in values if len(v) >= _MIN_SCRUBBED for spelling in _spellings(v)} | set(_secrets)
    _secrets[:] = sorted(found, key=len, reverse=True)


def scrub(text: str) -> str:
    """``text`` without any registered secret or X-API-Key header value."""
    for value in _secrets:
        if value in text:
            text = text.replace(value, REDACTED)
    if "api-key" in text.lower():
        text = _HEADER_VALUE.sub(lambda m: m.group(1) + REDACTED, text)
    if "@" in text:
        text = redact_url(text)
    return text


def redact_url(text: str) -> str:
    """``https://user:pw@host/x`` → ``https://user:***@host/x`` (every URL in ``text``)."""
    return _URL_PASSWORD.sub(lambda m: m["head"] + REDACTED + "@", text)


def redact_query(path: str) -> str:
    """``/v1/x?api_key=abc&n=2`` → ``/v1/x?api_key=***&n=***``: the names stay, every value goes."""
    base, sep, query = path.partition("?")
    if not sep or not query:
        return path
    pairs = parse_qsl(query, keep_blank_values=True)
    if not pairs:
        return f"{base}?{REDACTED}"
    return f"{base}?" + urlencode([(name, REDACTED) for name, _ in pairs], safe="*")


class AccessLogFilter(logging.Filter):
    """Redacts the query string of uvicorn's access-log lines (args: client, method, path, http version, status)."""

    def filter(self, record: logging.LogRecord) -> bool:
        args = record.args
        if isinstance(args, tuple) and len(args) >= 3 and isinstance(args[2], str):
            record.args = (*args[:2], redact_query(_unescaped_secrets(args[2])), *args[3:])
        return True


def _unescaped_secrets(path: str) -> str:
    """A path as the client sent it can percent-encode a secret any way it likes (``plus%2Bkey``, ``%70lus+key``):
    when the decoded path holds one, the path is shown decoded, scrubbed and encoded again (canonically, so no
    control character reaches the log); otherwise as it came."""
    decoded = unquote(path, errors="replace")
    if decoded == path or scrub(decoded) == decoded:
        return path
    return quote(scrub(decoded), safe="/?&=*%")


def strip_ansi(text: str) -> str:
    """``text`` without ANSI escape sequences (colours, cursor moves, terminal titles)."""
    return _ANSI.sub("", text) if "\x1b" in text else text


def _extras(record: logging.LogRecord) -> dict[str, Any]:
    return {k: v for k, v in record.__dict__.items() if k not in _RESERVED and not k.startswith("_")}


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        payload: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "event": strip_ansi(record.getMessage()),
        }
        payload.update({k: strip_ansi(v) if isinstance(v, str) else v for k, v in _extras(record).items()})
        if record.exc_info:
            payload["exc"] = self.formatException(record.exc_info)
        elif record.exc_text:
            payload["exc"] = record.exc_text
        if record.stack_info:
            payload["stack"] = self.formatStack(record.stack_info)
        # default=str can turn an object into text with escapes; json.dumps then spells ESC as \u001b.
        return scrub(json.dumps(payload, default=lambda v: strip_ansi(str(v)), ensure_ascii=False))


class ConsoleFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        extras = " ".join(f"{k}={v}" for k, v in _extras(record).items())
        line = f"{record.levelname.lower():7s} {record.name}: {record.getMessage()}"
        if extras:
            line = f"{line}  {extras}"
        if record.exc_info:
            line = f"{line}\n{self.formatException(record.exc_info)}"
        elif record.exc_text:
            line = f"{line}\n{record.exc_text}"
        if record.stack_info:
            line = f"{line}\n{self.formatStack(record.stack_info)}"
        return scrub(line)


class LogHandler(logging.StreamHandler[TextIO]):
    """A stream handler whose lines lose their ANSI escape sequences unless the stream is a terminal (checked at
    each line: the stream can be replaced)."""

    def format(self, record: logging.LogRecord) -> str:
        text = super().format(record)
        return text if _is_terminal(self.stream) else strip_ansi(text)


def _is_terminal(stream: Any) -> bool:
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):  # no isatty, or a closed stream
        return False


def configure_logging(level: str = "INFO", fmt: str = "console", secrets: Iterable[str] = ()) -> None:
    """Install one stderr handler on the root logger (idempotent); ``secrets`` are scrubbed from every line, and
    the access log's query values are redacted."""
    register_secrets(secrets)
    handler = LogHandler(sys.stderr)
    handler.setFormatter(JsonFormatter() if fmt == "json" else ConsoleFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    access = logging.getLogger(ACCESS_LOGGER)
    if not any(isinstance(f, AccessLogFilter) for f in access.filters):
        access.addFilter(AccessLogFilter())
    for noisy in ("httpx", "urllib3", "sentence_transformers", "alembic", "numexpr", "faiss.loader", "mlflow"):
        logging.getLogger(noisy).setLevel(max(logging.WARNING, logging.getLevelName(level)))
    quiet_third_party_output(verbose=logging.getLevelName(level) <= logging.DEBUG)


# What other libraries would write to the console besides audiencefit's log lines: their progress bars (tqdm:
# mlflow's "Downloading artifacts", huggingface_hub, transformers) and mlflow's own log handler (its lines in its
# own format, beside ours). Set only where the environment does not say otherwise; read by each library when it
# is imported or draws a bar, so set before any of them loads (the CLI's start, a serving worker's start).
QUIET_ENV = {
    "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR": "false",
    "MLFLOW_CONFIGURE_LOGGING": "false",  # mlflow's loggers then reach the root handler (ours), at WARNING
    "HF_HUB_DISABLE_PROGRESS_BARS": "1",
    "TRANSFORMERS_VERBOSITY": "error",
    "TQDM_DISABLE": "1",
}
WARNINGS_LOGGER = "py.warnings"


def quiet_third_party_output(*, verbose: bool = False) -> None:
    """Third-party progress bars off and Python warnings (a library's deprecation, a tracer's or quantizer's hint)
    routed into the log as ``py.warnings`` lines, shown only with ``-v`` (DEBUG): audiencefit's own code logs what
    a user should see, it never warns through ``warnings``."""
    for name, value in QUIET_ENV.items():
        os.environ.setdefault(name, value)
    logging.captureWarnings(True)
    logging.getLogger(WARNINGS_LOGGER).setLevel(logging.WARNING if verbose else logging.ERROR)


def silence_mlflow_prints() -> None:
    """mlflow prints some events straight to stderr, past any logging configuration ("Successfully registered
    model 'x'.", "Created version '1' of model 'x'."); audiencefit logs the same facts itself. Call after importing
    mlflow."""
    module = sys.modules.get("mlflow.utils.logging_utils")
    if module is not None:
        module.disable_logging()


@contextmanager
def mlflow_prints_logged(logger: logging.Logger) -> Iterator[None]:
    """Within the block, mlflow's event prints reach ``logger`` at DEBUG instead of stderr.

    :func:`silence_mlflow_prints` is not enough around ``log_model``: mlflow re-enables its stream when one of its
    own contexts ends inside that call, before it prints "Successfully registered model 'x'." and "Created version
    '1' of model 'x'."."""
    module = sys.modules.get("mlflow.utils.logging_utils")
    if module is None:
        yield
        return
    stream = module.MLFLOW_LOGGING_STREAM
    captured = io.StringIO()
    stream.write, stream.flush = captured.write, captured.flush  # the instance's, over its class's methods
    try:
        yield
    finally:
        del stream.write, stream.flush
        for line in captured.getvalue().splitlines():
            if line.strip():
                logger.debug("mlflow: " + line.strip())


def settings_secrets(settings: Any) -> list[str]:
    """The secret values held by a :class:`~audiencefit.settings.Settings` (to pass to :func:`configure_logging`)."""
    values = [settings.follower_id_secret.get_secret_value()]
    values += settings.api_key_values() + settings.admin_key_values()
    log_url = getattr(settings, "recommendation_log_url", None)
    if log_url is not None:
        values += url_passwords(log_url.get_secret_value())
    # MLflow's credentials: the standard variables its REST client reads, and a password inside the tracking URI.
    values += [os.environ[name] for name in MLFLOW_SECRET_VARIABLES if os.environ.get(name)]
    tracking_uri = getattr(settings, "tracking_uri", None)
    if isinstance(tracking_uri, str):
        values += url_passwords(tracking_uri)
    return values


MLFLOW_SECRET_VARIABLES = ("MLFLOW_TRACKING_PASSWORD", "MLFLOW_TRACKING_TOKEN")


def url_passwords(url: str) -> list[str]:
    """The passwords a database URL carries: after ``user:`` and in a ``password=`` query parameter."""
    try:
        parts = urlsplit(url)
        found = [parts.password] if parts.password else []
        found += [v for k, v in parse_qsl(parts.query) if "pass" in k.lower() and v]
    except ValueError:
        return []
    return [unquote(p) for p in found] + found
