"""uvicorn's httptools protocol with the limits it lacks: a deadline for a request's head, a cap on its size, and
a bounded wait for the rest of a body nobody will read.

uvicorn bounds only the idle time after a response (``timeout_keep_alive``): a connection that never sends a
byte, or sends a request line and then one header byte a minute, is held forever, and httptools buffers headers
of any size. Here (``guarded_protocol``):

- The request line and headers must arrive within ``header_timeout_s`` of the connection opening or of the
  request's first byte (whichever is later: the keep-alive time between requests stays uvicorn's): otherwise 408
  and the connection is closed.
- More than ``max_header_bytes`` of request line and headers: 431 and the connection is closed, and the request
  never reaches the app, however its head arrives (in one packet or many, behind other pipelined requests). The
  head is counted as the parser hands it over (the URL, and each header's name, value and separators), checked
  before it is complete, so a head that fits in one read is refused before ``on_headers_complete`` dispatches it;
  and, for a head still incomplete after a read (httptools buffers a header until its end), as the bytes received
  since it began. A head refused behind pipelined requests still unanswered gets its 431 after their answers.
  Nothing a refused connection sends afterwards is parsed.
- A request answered before its body was read (401, 404, 405, 413 from ``audiencefit.serving.gate`` /
  ``audiencefit.serving.limits``): the rest of the body is read and thrown away, so that the client gets its answer
  rather than a reset, but for at most ``header_timeout_s`` and ``DISCARD_MAX_BYTES``; then the connection is closed.

The body's own deadline is the ASGI side's (``audiencefit.serving.limits``), where the request is known.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import httptools
from uvicorn.protocols.http.httptools_impl import STATUS_LINE, HttpToolsProtocol

from audiencefit.serving.problems import PROBLEM_JSON, problem, problem_bytes, send_problem

log = logging.getLogger(__name__)

DISCARD_MAX_BYTES = 1 << 20


class _HeadTooLargeError(Exception):
    """Raised in a parser callback once the head is refused: httptools stops parsing the data it was fed."""


def guarded_protocol(header_timeout_s: float, max_header_bytes: int) -> type[HttpToolsProtocol]:
    """uvicorn's ``http`` protocol class with these limits (``uvicorn.run(..., http=guarded_protocol(...))``)."""

    class Configured(GuardedHttpToolsProtocol):
        pass

    Configured.header_timeout_s = header_timeout_s
    Configured.max_header_bytes = max_header_bytes
    return Configured


class GuardedHttpToolsProtocol(HttpToolsProtocol):
    header_timeout_s: float = 10.0
    max_header_bytes: int = 16_384

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._deadline: asyncio.TimerHandle | None = None
        self._reading_head = True  # between requests or inside a request's line and headers
        self._head_received = 0  # bytes received since the current head's first read (while it is incomplete)
        self._head_parsed = 0  # the current head as parsed so far: URL, header names, values and separators
        self._refused: tuple[int, str] | None = None  # a refusal: sent, or waiting for earlier pipelined answers
        self._discarded = 0

    # -- the head: a deadline and a size cap -------------------------------------------------------------------

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm(self._head_timed_out)

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        # uvicorn's, but a refused connection is not parsed any further, and the refusal, raised from a parser
        # callback to stop httptools, is not answered 400 as an invalid request.
        if self._refused is not None:
            return
        if self._reading_head:
            self._head_received += len(data)
        self._unset_keepalive_if_required()
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError:
            if self._refused is not None:
                return
            msg = "Invalid HTTP request received."
            self.logger.warning(msg)
            self.send_400_response(msg)
            return
        except httptools.HttpParserUpgrade:
            if self._refused is not None:
                return
            if self._should_upgrade():
                self.handle_websocket_upgrade()
            else:
                self._unsupported_upgrade_warning()
            return
        # A head still incomplete after this read: httptools holds its unfinished header, uncounted so far.
        if self._reading_head and self._head_received > self.max_header_bytes and not self.transport.is_closing():
            self._head_too_large(self._head_received)

    def on_message_begin(self) -> None:
        if self._refused is not None:
            return
        super().on_message_begin()
        self._reading_head = True
        self._head_parsed = 0
        if self._deadline is None:  # a new request on a kept-alive connection: its head has its own deadline
            self._arm(self._head_timed_out)

    def on_url(self, url: bytes) -> None:
        if self._refused is not None:
            return
        self._count_head(len(url))
        super().on_url(url)

    def on_header(self, name: bytes, value: bytes) -> None:
        if self._refused is not None:
            return
        self._count_head(len(name) + len(value) + 4)  # "name: value\r\n"
        super().on_header(name, value)

    def on_headers_complete(self) -> None:
        if self._refused is not None:
            return
        self._reading_head = False
        self._head_received = 0
        self._disarm()
        limit = self.limit_concurrency
        if limit is None or (len(self.connections) < limit and len(self.tasks) < limit):
            super().on_headers_complete()
            return
        # Over the connection limit: uvicorn would answer its own text/plain 503; answer the problem every other
        # error is, by handing uvicorn's request cycle an app that sends it.
        self.logger.warning("Exceeded concurrency limit.")
        app, self.app, self.limit_concurrency = self.app, _over_limit, None
        try:
            super().on_headers_complete()
        finally:
            self.app, self.limit_concurrency = app, limit

    def on_message_complete(self) -> None:
        if self._refused is not None:
            return
        discarding = self.cycle is not None and self.cycle.response_complete
        super().on_message_complete()
        self._reading_head = True
        if discarding:  # the rest of an unread body is in: back to waiting for the next request
            self._disarm()
            if not self.transport.is_closing() and self.timeout_keep_alive_task is None:
                self.timeout_keep_alive_task = self.loop.call_later(
                    self.timeout_keep_alive, self.timeout_keep_alive_handler
                )

    def _count_head(self, n: int) -> None:
        self._head_parsed += n
        if self._head_parsed > self.max_header_bytes:
            self._head_too_large(self._head_parsed)
            raise _HeadTooLargeError  # stops httptools: nothing after this head is parsed

    def _head_too_large(self, size: int) -> None:
        log.info("request head too large", extra={"client": _client(self), "bytes": size})
        self._refused = (431, f"request line and headers larger than {self.max_header_bytes} bytes")
        self._reading_head = False
        self._disarm()
        if self.cycle is not None and not self.cycle.response_complete:
            # Pipelined behind requests still unanswered: the 431 follows their answers (on_response_complete).
            self.flow.pause_reading()
            return
        self._refuse(*self._refused)

    def _head_timed_out(self) -> None:
        self._deadline = None
        if self.transport.is_closing():
            return
        if self.cycle is not None and not self.cycle.response_complete:
            # A pipelined request's head is late while the previous one is answered: close after that answer.
            self.cycle.keep_alive = False
            return
        log.info("request head not received in time", extra={"client": _client(self)})
        self._refuse(408, f"request line and headers not received within {self.header_timeout_s:g} seconds")

    # -- a body answered before it was read: discard the rest, for a bounded time --------------------------------

    def on_body(self, body: bytes) -> None:
        if self._refused is not None:
            return
        if self.cycle is not None and self.cycle.response_complete:
            self._discarded += len(body)
            if self._discarded > DISCARD_MAX_BYTES:
                self.transport.close()
            return
        super().on_body(body)

    def on_response_complete(self) -> None:
        super().on_response_complete()
        cycle = self.cycle  # the newest request: with pipelining, it may not be the one just answered
        if self._refused is not None:
            if self.transport.is_closing():
                return
            if cycle is not None and not cycle.response_complete:  # more pipelined answers before the refusal
                self.flow.pause_reading()
                return
            self._unset_keepalive_if_required()
            self._refuse(*self._refused)
            return
        if cycle is not None and cycle.response_complete and cycle.more_body and not self.transport.is_closing():
            self._discarded = 0
            self._arm(self.transport.close)

    # -- helpers -------------------------------------------------------------------------------------------------

    def _arm(self, callback: Any) -> None:
        self._disarm()
        self._deadline = self.loop.call_later(self.header_timeout_s, callback)

    def _disarm(self) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None

    def send_400_response(self, msg: str) -> None:
        """uvicorn's answer to bytes that are not HTTP, as a problem like every other error."""
        self._refuse(400, msg)

    def _refuse(self, status: int, message: str) -> None:
        """Answer a problem (``audiencefit.serving.problems``) straight on the transport (no request to hand to the app)
        and close."""
        body = problem_bytes(problem(status, message))
        head = [STATUS_LINE[status]]
        for name, value in self.server_state.default_headers:
            head += [name, b": ", value, b"\r\n"]
        head += [
            b"content-type: " + PROBLEM_JSON.encode("latin-1") + b"\r\n",
            b"content-length: " + str(len(body)).encode("ascii") + b"\r\n",
            b"connection: close\r\n\r\n",
        ]
        self.transport.write(b"".join(head) + body)
        self.transport.close()


async def _over_limit(scope: Any, receive: Any, send: Any) -> None:
    """The 503 of a connection over ``--limit-concurrency`` (``AUDIENCEFIT_HTTP_MAX_CONNECTIONS``)."""
    detail = "too many connections to this server; try again shortly"
    await send_problem(send, 503, detail, path=scope.get("path"), headers=[(b"connection", b"close")])


def _client(protocol: HttpToolsProtocol) -> str:
    return f"{protocol.client[0]}:{protocol.client[1]}" if protocol.client else "-"
