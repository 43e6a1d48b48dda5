"""How requests arrive, before any route runs, against a real ``audiencefit serve`` (one process, and a front with
two workers) over raw sockets, and in process:

- a cut-off body (fewer bytes than ``Content-Length``, or a chunked body whose client leaves) is never computed;
- a slow request head or a slow body is answered 408 and closed within the configured timeout, a huge head 431;
- a client without a valid key is answered before its body is read;
- anything answered without a route (``/healthz`` by the front) takes ``GET`` only: 405 with ``Allow``; every
  route refuses the methods it does not take;
- the keyless endpoints reveal no reload input, error text or path.
"""

from __future__ import annotations

import asyncio
import json
import re
import socket
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.e2e.conftest import ADMIN_KEY, API_KEY, SEGMENTS, make_client
from tests.e2e.serve_process import ROOT, readiness, running_serve, serve_env

HEADER_TIMEOUT_S = 1.0
BODY_TIMEOUT_S = 1.5
MAX_CONNECTIONS = 24


@pytest.fixture(scope="module", params=[1, 2], ids=["one-process", "two-workers"])
def server(request, tmp_path_factory: pytest.TempPathFactory, small_features: Path, bundles) -> Iterator[str]:
    """``audiencefit serve --workers N`` with short transport timeouts: its base URL."""
    workers = int(request.param)
    tmp = tmp_path_factory.mktemp(f"serve-{workers}")
    env = serve_env(
        tmp,
        AUDIENCEFIT_HTTP_HEADER_TIMEOUT_S=str(HEADER_TIMEOUT_S),
        AUDIENCEFIT_HTTP_BODY_TIMEOUT_S=str(BODY_TIMEOUT_S),
        AUDIENCEFIT_HTTP_MAX_CONNECTIONS=str(MAX_CONNECTIONS),
        # Bundle paths reloaded by the tests live in their own temporary directories.
        AUDIENCEFIT_RELOAD_ROOTS=str(tmp_path_factory.getbasetemp()),
    )
    ready = lambda base: len(_reload_times(base)) >= workers  # noqa: E731
    with running_serve(tmp, small_features, bundles[0], workers=workers, env=env, ready=ready) as server:
        yield server.base


def _reload_times(base: str, tries: int = 10) -> dict[int, str | None]:
    """worker pid → when it last reloaded, from readiness checks on new connections."""
    return {pid: body["last_reload_at"] for pid, body in readiness(base, tries).items()}


def _reloads_counted(base: str) -> int:
    text = httpx.get(f"{base}/metrics", timeout=5).text
    return sum(int(n) for n in re.findall(r"audiencefit_model_reloads_total\{[^}]*\} (\d+)", text))


def _address(base: str) -> tuple[str, int]:
    host, port = base.removeprefix("http://").split(":")
    return host, int(port)


def _connect(base: str) -> socket.socket:
    sock = socket.create_connection(_address(base), timeout=10)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return sock


def _read_until_closed(sock: socket.socket, timeout: float) -> tuple[bytes, float]:
    """Everything the server sends until it closes the connection, and how long that took."""
    started = time.monotonic()
    sock.settimeout(timeout)
    data = b""
    try:
        while chunk := sock.recv(65536):
            data += chunk
    except TimeoutError:
        pytest.fail(f"the server kept the connection open for {timeout} s; sent {data[:200]!r}")
    except ConnectionResetError:
        pass
    return data, time.monotonic() - started


def _status(data: bytes) -> int:
    assert data.startswith(b"HTTP/1.1 "), data[:200]
    return int(data[9:12])


def _problem(data: bytes, status: int, kind: str) -> None:
    """``data`` is one raw response: a problem (RFC 9457) of this status and type, as every error the server
    answers, down to the protocol layer's own."""
    head, _, body = data.partition(b"\r\n\r\n")
    assert _status(data) == status, data[:300]
    assert b"content-type: application/problem+json" in head.lower(), head
    problem = json.loads(body)
    assert problem["status"] == status and problem["type"] == f"urn:audiencefit:problem:{kind}" and problem["detail"]


def cut_off_raw(base: str, head: bytes, partial_body: bytes) -> None:
    """Send a request head and part of its body over a raw socket, then close the connection."""
    with _connect(base) as sock:
        sock.sendall(head + partial_body)
        time.sleep(0.1)  # the head and the partial body are in the server's hands before the close
    time.sleep(0.4)  # whatever the server does with it, it has done by now


def reload_head(content_length: int | None, key: str = ADMIN_KEY) -> bytes:
    length = f"Content-Length: {content_length}" if content_length is not None else "Transfer-Encoding: chunked"
    return (
        f"POST /admin/reload HTTP/1.1\r\nHost: test\r\nX-API-Key: {key}\r\nContent-Type: application/json\r\n"
        f"{length}\r\n\r\n"
    ).encode()


# -- item 1: a cut-off request is never computed ------------------------------------------------------------------


def test_a_cut_off_reload_is_not_acted_on(server: str):
    before = _reload_times(server)
    reloads = _reloads_counted(server)
    # Content-Length 45, 10 bytes sent, then the connection closed.
    cut_off_raw(server, reload_head(45), b'{"bundle_p')
    # A chunked body whose last chunk never comes.
    cut_off_raw(server, reload_head(None), b"2\r\n{}\r\n")
    # A head with a declared body and nothing of it.
    cut_off_raw(server, reload_head(2), b"")
    assert _reloads_counted(server) == reloads
    after = _reload_times(server)
    assert after == before, "a worker reloaded on a cut-off request"


def test_a_cut_off_brief_is_not_computed(server: str):
    body = json.dumps({"segments": SEGMENTS}).encode()
    head = (
        f"POST /v1/recommendations HTTP/1.1\r\nHost: test\r\nX-API-Key: {API_KEY}\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
    ).encode()
    pattern = r'audiencefit_http_requests_total\{method="POST",route="/v1/recommendations",status="(\d+)"\} (\d+)'

    def counted() -> dict[str, int]:
        return {s: int(n) for s, n in re.findall(pattern, httpx.get(f"{server}/metrics", timeout=5).text)}

    before = counted()
    cut_off_raw(server, head, body[: len(body) // 2])
    time.sleep(1.0)  # worker metrics are shared every 0.5 s
    after = counted()
    assert {s: n for s, n in after.items() if s != "499"} == {s: n for s, n in before.items() if s != "499"}


# -- item 13: slow or oversized heads and bodies, and keys before bodies ------------------------------------------


def test_a_silent_connection_and_a_slow_head_are_closed_in_time(server: str):
    with _connect(server) as sock:  # says nothing at all
        data, took = _read_until_closed(sock, HEADER_TIMEOUT_S + 5)
        assert took < HEADER_TIMEOUT_S + 2 and (not data or _status(data) == 408)
    with _connect(server) as sock:  # a request line, one header, then nothing
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: test\r\n")
        data, took = _read_until_closed(sock, HEADER_TIMEOUT_S + 5)
        assert _status(data) == 408 and took < HEADER_TIMEOUT_S + 2
    with _connect(server) as sock:  # a header byte every 0.3 s: the deadline is for the whole head
        sock.sendall(b"GET /healthz HTTP/1.1\r\nX-Slow: ")
        started = time.monotonic()
        try:
            while time.monotonic() - started < HEADER_TIMEOUT_S + 5:
                sock.sendall(b"a")
                time.sleep(0.3)
        except (BrokenPipeError, ConnectionResetError):
            pass
        assert time.monotonic() - started < HEADER_TIMEOUT_S + 2


def test_a_slow_body_gets_408_and_is_closed(server: str):
    with _connect(server) as sock:
        sock.sendall(
            f"POST /v1/recommendations HTTP/1.1\r\nHost: test\r\nX-API-Key: {API_KEY}\r\n"
            f"Content-Type: application/json\r\nContent-Length: 100\r\n\r\n{{".encode()
        )
        data, took = _read_until_closed(sock, BODY_TIMEOUT_S + 5)
        assert _status(data) == 408 and took < BODY_TIMEOUT_S + 2


def test_a_huge_head_gets_431(server: str):
    with _connect(server) as sock:
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: test\r\n")
        try:
            for _ in range(64):
                sock.sendall(b"X-Filler: " + b"a" * 1000 + b"\r\n")
        except (BrokenPipeError, ConnectionResetError):
            pass
        data, _ = _read_until_closed(sock, 5)
        _problem(data, 431, "headers-too-large")


def _responses(data: bytes) -> list[int]:
    """The statuses of the responses in ``data``, in order."""
    return [int(status) for status in re.findall(rb"HTTP/1\.1 (\d{3}) ", data)]


def _last_head(data: bytes) -> bytes:
    """The head of the last response in ``data``, lower case."""
    return data[data.rindex(b"HTTP/1.1 ") :].split(b"\r\n\r\n", 1)[0].lower()


def _requests_counted(base: str, route: str) -> int:
    text = httpx.get(f"{base}/metrics", timeout=5).text
    pattern = rf'audiencefit_http_requests_total\{{method="[A-Z]+",route="{re.escape(route)}",status="\d+"\}} (\d+)'
    return sum(int(n) for n in re.findall(pattern, text))


ONE_PACKET_HEADS = {
    "100-kB-header": b"GET /healthz HTTP/1.1\r\nHost: test\r\nX-Big: " + b"a" * 100_000 + b"\r\n\r\n",
    "20-kB-request-line": b"GET /healthz?" + b"a" * 20_000 + b" HTTP/1.1\r\nHost: test\r\n\r\n",
    "3000-small-headers": b"GET /healthz HTTP/1.1\r\nHost: test\r\n" + b"X-A: b\r\n" * 3000 + b"\r\n",
    "keyless-model": b"GET /v1/model HTTP/1.1\r\nHost: test\r\nX-Big: " + b"a" * 100_000 + b"\r\n\r\n",
}


@pytest.mark.parametrize("head", list(ONE_PACKET_HEADS.values()), ids=list(ONE_PACKET_HEADS))
def test_a_huge_head_in_one_packet_gets_431_and_never_reaches_the_app(server: str, head: bytes):
    model_requests = _requests_counted(server, "/v1/model")
    with _connect(server) as sock:
        sock.sendall(head)  # the whole head in one write: parsed in one read if it fits
        data, _ = _read_until_closed(sock, 5)
    assert _responses(data) == [431], data[:300]
    assert b"\r\nconnection: close" in _last_head(data)
    time.sleep(1.0)  # worker metrics are shared every 0.5 s
    assert _requests_counted(server, "/v1/model") == model_requests


@pytest.mark.parametrize("path", ["/healthz", "/v1/model"])
def test_a_huge_pipelined_head_after_a_normal_request_gets_431_after_its_answer(server: str, path: str):
    model_requests = _requests_counted(server, "/v1/model")
    first = b"GET /healthz HTTP/1.1\r\nHost: test\r\n\r\n"
    huge = f"GET {path} HTTP/1.1\r\nHost: test\r\nX-Big: ".encode() + b"a" * 100_000 + b"\r\n\r\n"
    after = b"GET /healthz HTTP/1.1\r\nHost: test\r\n\r\n"  # never parsed: the connection is refused by then
    with _connect(server) as sock:
        sock.sendall(first + huge + after)
        data, _ = _read_until_closed(sock, 5)
    assert _responses(data) == [200, 431], data[:300]
    assert b"\r\nconnection: close" in _last_head(data)
    time.sleep(1.0)
    assert _requests_counted(server, "/v1/model") == model_requests


@pytest.mark.parametrize(
    ("path", "key", "status"),
    [
        ("/v1/recommendations", None, 401),
        ("/v1/recommendations", "wrong-key", 403),
        ("/admin/reload", None, 401),
        ("/admin/reload", API_KEY, 403),
        ("/v1/no-such-route", None, 401),
    ],
)
def test_no_valid_key_is_answered_before_the_body(server: str, path: str, key: str | None, status: int):
    header = f"X-API-Key: {key}\r\n" if key else ""
    with _connect(server) as sock:
        sock.sendall(
            f"POST {path} HTTP/1.1\r\nHost: test\r\n{header}Content-Type: application/json\r\n"
            f"Content-Length: 1000000\r\n\r\n".encode()
        )
        sock.settimeout(BODY_TIMEOUT_S / 2)  # well before the body deadline: the answer does not wait for a body
        data = sock.recv(65536)
        assert _status(data) == status, data


def test_connections_over_the_cap_get_503(server: str):
    idle = [_connect(server) for _ in range(MAX_CONNECTIONS)]
    try:
        with _connect(server) as sock:
            sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: test\r\n\r\n")
            sock.settimeout(5)
            data, _ = _read_until_closed(sock, 5)
            _problem(data, 503, "unavailable")
    finally:
        for sock in idle:
            sock.close()
    time.sleep(0.2)
    assert httpx.get(f"{server}/healthz", timeout=5).status_code == 200


# -- item 7: methods ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("method", ["TRACE", "DELETE", "POST", "PUT", "OPTIONS", "HEAD"])
@pytest.mark.parametrize("path", ["/healthz", "/readyz", "/metrics"])
def test_probes_take_get_only(server: str, method: str, path: str):
    resp = httpx.request(method, f"{server}{path}", timeout=5)
    assert resp.status_code == 405
    assert resp.headers["allow"] == "GET"


# -- item 5: what the keyless endpoints reveal ----------------------------------------------------------------------


def test_keyless_endpoints_reveal_no_reload_input_or_error(server: str, tmp_path: Path):
    # a marker no metric value can contain (a digit string like "4711" turns up in float sums now and then)
    secret = tmp_path / "secret-bundle-dir-qxzv"
    resp = httpx.post(
        f"{server}/admin/reload", json={"bundle_path": str(secret)}, headers={"X-API-Key": ADMIN_KEY}, timeout=60
    )
    assert resp.status_code == 409
    for path in ("/readyz", "/healthz", "/metrics"):
        for _ in range(4):  # each worker
            text = httpx.get(f"{server}{path}", timeout=5).text
            assert "qxzv" not in text and str(tmp_path) not in text and "Error" not in text, (path, text)
    ready = [httpx.get(f"{server}/readyz", timeout=5).json() for _ in range(8)]
    assert any(r["last_reload_failed"] for r in ready)  # the worker asked knows it failed, and says only that
    assert str(ROOT) not in httpx.get(f"{server}/metrics", timeout=5).text  # nor where the bundle came from


# -- in process: every route's methods, and the body reader -------------------------------------------------------


@pytest.fixture(scope="module")
def client(api_settings, small_features: Path, bundles):
    yield from make_client(api_settings, small_features, bundles[0])


def test_every_route_refuses_the_methods_it_does_not_take(client):
    for template, item in client.app.openapi()["paths"].items():
        path = re.sub(r"\{[^}]+\}", "x", template)
        takes = {method.upper() for method in item}
        for method in ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "TRACE"):
            if method in takes:
                continue
            resp = client.request(method, path, headers={"X-API-Key": ADMIN_KEY if "admin" in path else API_KEY})
            assert resp.status_code == 405, (method, path, resp.status_code)
            assert set(resp.headers["allow"].split(", ")) == takes, (method, path)


async def send_cut_off(app: Any, path: str, headers: list[tuple[bytes, bytes]], parts: list[bytes]) -> list[Any]:
    """Drive an ASGI app with a request whose body arrives in ``parts`` and whose client then disconnects;
    the messages the app sent back."""
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "root_path": "",
        "headers": headers,
        "client": ("127.0.0.1", 1),
        "server": ("127.0.0.1", 80),
    }
    messages = [{"type": "http.request", "body": part, "more_body": True} for part in parts]
    sent: list[Any] = []

    async def receive() -> dict[str, Any]:
        if messages:
            return messages.pop(0)
        return {"type": "http.disconnect"}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    await app(scope, receive, send)
    return sent


def test_the_app_never_sees_a_cut_off_body(client):
    app = client.app
    models = app.state.serving
    before = models.last_reload_at
    headers = [(b"x-api-key", ADMIN_KEY.encode()), (b"content-type", b"application/json"), (b"content-length", b"45")]
    assert asyncio.run(send_cut_off(app, "/admin/reload", headers, [b'{"bundle_p'])) == []
    chunked = [(b"x-api-key", ADMIN_KEY.encode()), (b"content-type", b"application/json")]
    assert asyncio.run(send_cut_off(app, "/admin/reload", chunked, [b"{", b"}"])) == []
    assert models.last_reload_at == before


def test_a_body_shorter_than_its_length_is_refused_not_computed():
    from audiencefit.serving.limits import BodySizeLimitMiddleware

    called = []

    async def app(scope: Any, receive: Any, send: Any) -> None:
        called.append(scope["path"])

    sent: list[Any] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b'{"bundle_p', "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    scope = {"type": "http", "method": "POST", "path": "/admin/reload", "headers": [(b"content-length", b"45")]}
    asyncio.run(BodySizeLimitMiddleware(app)(scope, receive, send))
    assert called == [] and sent[0]["status"] == 400


def test_the_keyless_routes_are_exactly_the_documented_ones():
    """docs/security.md lists the keyless endpoints; a route added outside /v1 and /admin must be listed there."""
    from audiencefit.serving.app import api_routes

    keyless = {route.path for route in api_routes() if not route.path.startswith(("/v1", "/admin"))}
    assert keyless == {"/healthz", "/readyz", "/metrics", "/openapi.json", "/docs", "/redoc", "/docs-assets"}
    documented = (ROOT / "docs" / "security.md").read_text()
    assert all(f"`{path}`" in documented for path in keyless)
