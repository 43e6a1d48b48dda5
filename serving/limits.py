"""The request body, read whole, within a size and a time limit, before the app sees any of it.

- Larger than ``max_bytes``: 413, from ``Content-Length`` before reading anything, or counted as a chunked body
  (no length header) streams in, buffering at most ``max_bytes``.
- Not all in within ``timeout_s`` of the headers (a slow client): 408, and the connection is closed.
- Cut off: a client that disconnects before the last byte is dropped: the app never sees the request (a partial
  body is never computed: an empty reload body, half a brief), and there is nobody left to answer. A body that
  ends short of its ``Content-Length`` without a disconnect (not from uvicorn, which counts) is refused, 400.

The app then gets the whole body in one ``http.request`` message; later ``receive`` calls reach the server's own
(``http.disconnect`` when the client goes).
"""

from __future__ import annotations

import asyncio
import logging

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from audiencefit.serving.gate import header
from audiencefit.serving.problems import send_problem

log = logging.getLogger(__name__)

DEFAULT_MAX_BODY = 1 << 20  # 1 MiB
DEFAULT_BODY_TIMEOUT_S = 20.0  # Settings.http_body_timeout_s


class _TooLargeError(Exception):
    pass


class BodySizeLimitMiddleware:
    """ASGI middleware: the app gets a request only with its whole body (see the module docstring)."""

    def __init__(
        self, app: ASGIApp, max_bytes: int = DEFAULT_MAX_BODY, timeout_s: float | None = DEFAULT_BODY_TIMEOUT_S
    ) -> None:
        self.app = app
        self.max_bytes = max_bytes
        self.timeout_s = timeout_s

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = _content_length(scope)
        if declared == -1:
            detail = "invalid Content-Length header: not one non-negative integer"
            await send_problem(send, 400, detail, path=scope["path"], headers=[(b"connection", b"close")])
            return
        if declared is not None and declared > self.max_bytes:
            await _too_large(send, self.max_bytes, scope["path"])
            return
        try:
            async with asyncio.timeout(self.timeout_s):
                body = await _read_body(receive, self.max_bytes)
        except TimeoutError:
            log.info("request body not received in time", extra=_where(scope, self.timeout_s))
            detail = f"request body not received within {self.timeout_s:g} seconds"
            await send_problem(send, 408, detail, path=scope["path"], headers=[(b"connection", b"close")])
            return
        except _TooLargeError:
            await _too_large(send, self.max_bytes, scope["path"])
            return
        if body is None:  # nobody to answer (the client is gone), and nothing to compute
            log.info("request dropped: the client left before the end of its body", extra=_where(scope, None))
            return
        if declared is not None and len(body) != declared:  # never from uvicorn, which counts; from anything else
            detail = f"request body of {len(body)} bytes, not the {declared} its Content-Length says"
            await send_problem(send, 400, detail, path=scope["path"], headers=[(b"connection", b"close")])
            return
        await self.app(scope, _replay({"type": "http.request", "body": body, "more_body": False}, receive), send)


async def _read_body(receive: Receive, max_bytes: int) -> bytes | None:
    """The whole body, or None when the client disconnected before its end."""
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] != "http.request":
            return None
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > max_bytes:
            raise _TooLargeError
        chunks.append(chunk)
        if not message.get("more_body", False):
            return b"".join(chunks)


def _content_length(scope: Scope) -> int | None:
    """The declared body length; None without the header; -1 when it is not one non-negative integer."""
    values = [bytes(v) for k, v in scope.get("headers", []) if k == b"content-length"]
    if not values:
        return None
    if len(set(values)) != 1 or not values[0].strip().isdigit():
        return -1
    return int(values[0])


async def _too_large(send: Send, max_bytes: int, path: str) -> None:
    await send_problem(send, 413, f"request body larger than {max_bytes} bytes", path=path)


def _where(scope: Scope, timeout_s: float | None) -> dict[str, object]:
    where: dict[str, object] = {"method": scope.get("method"), "path": scope.get("path")}
    if timeout_s is not None:
        where["timeout_s"] = timeout_s
    if header(scope, b"content-length") is not None:
        where["content_length"] = header(scope, b"content-length")
    return where


def _replay(first: Message, then: Receive) -> Receive:
    sent = False

    async def receive() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return first
        return await then()  # e.g. http.disconnect after the body

    return receive
