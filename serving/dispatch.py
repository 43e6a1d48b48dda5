"""The front process of ``audiencefit serve --workers N``: one HTTP server that hands each request to the worker
with the fewest requests in flight.

Why not N uvicorn workers sharing the socket: a client keeps its connections open, and each connection stays with
the worker that accepted it, so the load splits by connection, not by request (measured with 16 keep-alive
clients at 100 req/s: 64 % / 36 %), and the busier worker sets the tail latency. Here the front parses HTTP (cheap,
asynchronous), forwards the request to the least busy worker over a Unix socket (``audiencefit.serving.frames``) and
relays the answer: join-the-shortest-queue, whatever the client's connections.

A worker is given at most ``in_flight`` requests at a time (default 1); the others wait in the front, first come
first served, and go to the first worker that frees up. A request is CPU-bound Python, so two requests in one
worker only share its GIL, and a request sent to a busy worker waits there even when the other worker frees up
first. Measured on the 100k world (docs/benchmarks.md, "Session 5 figures"): with a closed loop of 16 clients,
p99 160–163 ms against 201–224 ms when every request is sent at once; at 100 req/s the difference was within the
machine's noise. A slow request (a plan) holds its worker; raise ``--in-flight`` if they are common.

The front starts listening once every worker has loaded its state and connected (a worker that exits while
loading fails the start, as a single process would). A worker that dies later is started again: its requests in
flight get 503, the others go to the remaining workers, and ``/readyz`` answers 503 until all N are back.
``/healthz`` is answered by the front itself (the process is alive), ``GET`` only, like every route.

Before a request is forwarded (``front_app``): its key, route and method are checked before its body is read
(``audiencefit.serving.gate``), its body is read whole within the size and time limits (``audiencefit.serving.limits``),
and a client that disconnects mid-body or while its request waits in line is dropped: a request is forwarded whole or
never.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import itertools
import json
import logging
import multiprocessing
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from starlette.types import Message, Receive, Scope, Send

from audiencefit.serving.frames import decode_headers, encode_headers, read_frame, write_frame
from audiencefit.serving.gate import RequestGate, respond
from audiencefit.serving.limits import DEFAULT_MAX_BODY, BodySizeLimitMiddleware
from audiencefit.serving.problems import send_problem

# scope key: a worker answered (and counted) this request (audiencefit.serving.metrics)
FORWARDED = "audiencefit.forwarded"

if TYPE_CHECKING:
    from audiencefit.serving.metrics import Metrics
    from audiencefit.settings import Settings

log = logging.getLogger(__name__)

SOCKET_NAME = "front.sock"
RESTART_DELAY_S = 1.0
DEFAULT_IN_FLIGHT = 1
OWN_PATHS = frozenset({"/healthz", "/readyz"})  # what the front may answer itself


class _Gone:
    """A client that disconnected while its request waited for a worker."""


_GONE = _Gone()


@dataclass
class WorkerLink:
    """One connected worker: its socket and the requests it is answering."""

    pid: int
    reader: asyncio.StreamReader
    writer: asyncio.StreamWriter
    pending: dict[int, asyncio.Future[tuple[dict[str, Any], bytes]]] = field(default_factory=dict)
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)

    async def call(self, request_id: int, header: dict[str, Any], body: bytes) -> tuple[dict[str, Any], bytes]:
        future: asyncio.Future[tuple[dict[str, Any], bytes]] = asyncio.get_running_loop().create_future()
        self.pending[request_id] = future
        try:
            async with self.lock:
                await write_frame(self.writer, header, body)
            return await future
        finally:
            self.pending.pop(request_id, None)


class Front:
    """The front's ASGI app (wrap with :func:`front_app`)."""

    def __init__(
        self,
        workers: int,
        control_dir: Path,
        options: dict[str, Any],
        in_flight: int = DEFAULT_IN_FLIGHT,
        metrics: Metrics | None = None,
    ) -> None:
        if in_flight < 1:
            raise ValueError(f"in_flight must be at least 1, got {in_flight}")
        self.n_workers = workers
        self.in_flight = in_flight
        self._waiting: collections.deque[asyncio.Future[None]] = collections.deque()
        self.control_dir = control_dir
        self.options = options
        self.links: list[WorkerLink] = []
        self._ids = itertools.count(1)
        self._turn = itertools.count()
        self._processes: list[multiprocessing.process.BaseProcess | None] = [None] * workers
        self._server: asyncio.AbstractServer | None = None
        self._monitor: asyncio.Task[None] | None = None
        self._stopping = False
        self.metrics = metrics  # the front's own: what it answers itself, and its process metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await self._lifespan(receive, send)
            return
        if scope["type"] != "http":
            return
        if scope["path"] in OWN_PATHS:  # answered here (/readyz only while a worker is missing): GET only
            if scope["method"] != "GET":
                detail = f"{scope['method']} is not allowed on {scope['path']}; allowed: GET"
                await send_problem(send, 405, detail, path=scope["path"], headers=[(b"allow", b"GET")])
                return
            if scope["path"] == "/healthz":
                await respond(send, 200, {"status": "ok"})
                return
            if len(self.links) < self.n_workers:
                await respond(send, 503, self._not_ready())
                return
        body = await _read_body(receive)
        if body is None:  # the client went away before its body was complete: nothing to compute
            return
        # After the body is in: the choice is made when the request can be sent. A client that leaves while
        # waiting for a worker gives its turn away and is never forwarded.
        link: WorkerLink | _Gone | None = self._pick()
        if isinstance(link, WorkerLink) and (len(link.pending) >= self.in_flight or self._waiting):
            link = await self._acquire_while_connected(receive)
        if isinstance(link, _Gone):
            return
        if link is None:
            await send_problem(send, 503, "the service is starting; try again shortly", path=scope["path"])
            return
        header = {
            "id": next(self._ids),
            "method": scope["method"],
            "path": scope["path"],
            "raw_path": (scope.get("raw_path") or scope["path"].encode()).decode("latin-1"),
            "query": scope.get("query_string", b"").decode("latin-1"),
            "headers": encode_headers(list(scope.get("headers", []))),
            "client": list(scope["client"]) if scope.get("client") else None,
        }
        try:
            answer, out = await link.call(header["id"], header, body)
        except ConnectionError:
            detail = "the worker answering this request stopped; try again"
            await send_problem(send, 503, detail, path=scope["path"])
            return
        finally:
            self._wake()
        scope[FORWARDED] = True  # the worker that answered counted it (audiencefit.serving.metrics.MetricsMiddleware)
        await send(
            {"type": "http.response.start", "status": answer["status"], "headers": decode_headers(answer["headers"])}
        )
        await send({"type": "http.response.body", "body": out})

    async def _acquire_while_connected(self, receive: Receive) -> WorkerLink | _Gone | None:
        """:meth:`_acquire`, given up (``_GONE``) when the client disconnects while waiting in line."""
        task = asyncio.current_task()
        gone = False

        async def watch() -> None:
            nonlocal gone
            message = await receive()  # after the whole body, the next message is http.disconnect
            if message["type"] == "http.disconnect" and task is not None:
                gone = True
                task.cancel()

        watcher = asyncio.create_task(watch())
        try:
            return await self._acquire()
        except asyncio.CancelledError:
            if not gone:
                raise
            if task is not None:
                task.uncancel()
            log.info("request dropped: the client disconnected while waiting for a worker")
            return _GONE
        finally:
            watcher.cancel()

    async def _acquire(self) -> WorkerLink | None:
        """A worker with room for one more request (None when no worker is connected); when every worker is full,
        wait in line behind the requests already waiting."""
        first = True
        while True:
            link = self._pick()
            if link is None or (len(link.pending) < self.in_flight and not (first and self._waiting)):
                return link
            first = False
            turn = asyncio.get_running_loop().create_future()
            self._waiting.append(turn)
            try:
                await turn
            except asyncio.CancelledError:  # the client went away while waiting: its turn goes to the next one
                self._waiting.remove(turn)
                self._wake()
                raise
            self._waiting.remove(turn)

    def _wake(self) -> None:
        """Wake as many waiting requests, oldest first, as the workers have free room (a request that finished,
        a worker that connected); all of them when no worker is left, to be answered 503 at once."""
        free = (
            sum(max(0, self.in_flight - len(link.pending)) for link in self.links) if self.links else len(self._waiting)
        )
        for turn in self._waiting:
            if free <= 0:
                break
            if not turn.done():  # a turn already woken has not taken its room yet
                turn.set_result(None)
            free -= 1

    def _pick(self) -> WorkerLink | None:
        """The worker with the fewest requests in flight; ties go round the workers in turn."""
        if not self.links:
            return None
        start = next(self._turn) % len(self.links)
        order = self.links[start:] + self.links[:start]
        return min(order, key=lambda link: len(link.pending))

    def _not_ready(self) -> dict[str, Any]:
        """The front's own ``/readyz`` answer while a worker is missing (the ``Readiness`` schema)."""
        return {
            "ready": False,
            "features": False,
            "index": False,
            "model": False,
            "bundle_id": None,
            "feature_set_id": None,
            "last_reload_failed": False,
            "last_reload_at": None,
            "worker_pid": os.getpid(),
            "workers_ready": len(self.links),
            "workers": self.n_workers,
        }

    # -- lifespan: the Unix socket, the worker processes and their monitor -------------------------------------

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        message = await receive()
        if message["type"] == "lifespan.startup":
            try:
                await self._start()
            except Exception as exc:
                await send({"type": "lifespan.startup.failed", "message": str(exc)})
                return
            await send({"type": "lifespan.startup.complete"})
            message = await receive()
        if message["type"] == "lifespan.shutdown":
            await self._stop()
            await send({"type": "lifespan.shutdown.complete"})

    async def _start(self) -> None:
        """Start the workers and wait until every one has loaded its state and connected, as one process loads
        its state before it listens; a worker that exits first fails the start (the log above says why)."""
        path = self.control_dir / SOCKET_NAME
        self._server = await asyncio.start_unix_server(self._accept, path=str(path))
        for slot in range(self.n_workers):
            self._spawn(slot)
        while len(self.links) < self.n_workers:
            dead = [p for p in self._processes if p is not None and not p.is_alive()]
            if dead:
                await self._stop()
                raise RuntimeError(f"a worker process exited with code {dead[0].exitcode} while loading; see the log")
            await asyncio.sleep(0.1)
        self._monitor = asyncio.create_task(self._watch())

    def _spawn(self, slot: int) -> None:
        from audiencefit.serving.workers import worker_main

        ctx = multiprocessing.get_context("spawn")
        options = json.dumps(self.options | {"in_flight": self.in_flight})
        process = ctx.Process(
            target=worker_main, args=(options, str(self.control_dir / SOCKET_NAME)), name=f"audiencefit-worker-{slot}"
        )
        process.start()
        self._processes[slot] = process
        log.info("worker process started", extra={"slot": slot, "pid": process.pid})

    async def _watch(self) -> None:
        """Start a worker again if it died (not while stopping); bring the front's process metrics up to date."""
        while not self._stopping:
            await asyncio.sleep(RESTART_DELAY_S)
            if self.metrics is not None:
                self.metrics.refresh()
            for slot, process in enumerate(self._processes):
                if process is not None and not process.is_alive() and not self._stopping:
                    log.error(
                        "worker process exited; starting it again", extra={"pid": process.pid, "code": process.exitcode}
                    )
                    self._forget(process)
                    self._spawn(slot)

    def _forget(self, process: multiprocessing.process.BaseProcess) -> None:
        """Drop the per-process metrics of a worker that exited (its counts stay in the sums)."""
        if process.pid is not None:
            from audiencefit.serving.metrics import forget_process

            forget_process(process.pid)

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        hello = await read_frame(reader)
        if hello is None:
            writer.close()
            return
        link = WorkerLink(int(hello[0]["pid"]), reader, writer)
        self.links.append(link)
        log.info("worker ready", extra={"pid": link.pid, "workers_ready": len(self.links)})
        self._wake()
        try:
            while (frame := await read_frame(reader)) is not None:
                header, body = frame
                future = link.pending.get(int(header["id"]))
                if future is not None and not future.done():
                    future.set_result((header, body))
        finally:
            self.links.remove(link)
            self._wake()  # with no worker left, the requests in line are answered 503 instead of waiting
            for future in link.pending.values():
                if not future.done():
                    future.set_exception(ConnectionError(f"worker {link.pid} disconnected"))
            writer.close()
            if not self._stopping:
                log.error("worker disconnected", extra={"pid": link.pid, "requests_lost": len(link.pending)})

    async def _stop(self) -> None:
        self._stopping = True
        if self._monitor is not None:
            self._monitor.cancel()
        for process in self._processes:
            if process is not None and process.is_alive():
                process.terminate()
        loop = asyncio.get_running_loop()
        for process in self._processes:
            if process is not None:
                await loop.run_in_executor(None, process.join, 30)
                if process.is_alive():
                    process.kill()
                    await loop.run_in_executor(None, process.join, 5)
                self._forget(process)
        if self._server is not None:
            self._server.close()
            with contextlib.suppress(Exception):
                await self._server.wait_closed()


def front_app(
    workers: int,
    control_dir: Path,
    options: dict[str, Any],
    settings: Settings,
    max_body_bytes: int = DEFAULT_MAX_BODY,
    in_flight: int = DEFAULT_IN_FLIGHT,
) -> Any:
    """The front's ASGI app. Before a request is forwarded: rate limits are counted (``audiencefit.serving.ratelimit``,
    once for all workers), its key, route and method are checked before its body is read (``audiencefit.serving.gate``,
    with the workers' own route table), then its body is read whole, within the size and time limits
    (``audiencefit.serving.limits``); a cut-off body is dropped, never forwarded."""
    from audiencefit.serving.app import api_routes
    from audiencefit.serving.metrics import Metrics, MetricsMiddleware
    from audiencefit.serving.ratelimit import rate_limited

    metrics = Metrics(role="front")
    front = Front(workers, control_dir, options, in_flight, metrics)
    limited = BodySizeLimitMiddleware(front, max_bytes=max_body_bytes, timeout_s=settings.http_body_timeout_s)
    # Outermost: the front counts the 429s, 401/403/404/405, 408/413 and 503s it answers itself.
    return MetricsMiddleware(
        rate_limited(RequestGate(limited, settings, api_routes), settings), metrics, skip_forwarded=True
    )


async def _read_body(receive: Receive) -> bytes | None:
    """The whole body, or None when the client disconnected before its end (never forward part of one)."""
    chunks = []
    while True:
        message: Message = await receive()
        if message["type"] != "http.request":
            return None
        chunks.append(message.get("body", b""))
        if not message.get("more_body", False):
            return b"".join(chunks)
