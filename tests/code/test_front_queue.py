"""The front's line (``audiencefit.serving.dispatch.Front``): a worker gets at most ``in_flight`` requests at a time,
the others wait first come first served and go to the first worker that frees up; a client that leaves while waiting
gives its turn away. Workers are stand-ins answering after a set time, so this runs in milliseconds."""

from __future__ import annotations

import asyncio
import json
from collections.abc import MutableMapping
from pathlib import Path
from typing import Any

import pytest

from audiencefit.serving.dispatch import Front, WorkerLink
from audiencefit.serving.frames import write_frame


class FakeLink(WorkerLink):
    """A connected worker that answers each request after ``seconds``, recording what it was doing."""

    def __init__(self, pid: int, seconds: float, log: list[tuple[str, int, int]]) -> None:
        super().__init__(pid, reader=None, writer=None)  # type: ignore[arg-type]
        self.seconds = seconds
        self.log = log
        self.most = 0

    async def call(self, request_id: int, header: dict[str, Any], body: bytes) -> tuple[dict[str, Any], bytes]:
        self.pending[request_id] = asyncio.get_running_loop().create_future()
        self.most = max(self.most, len(self.pending))
        self.log.append(("start", self.pid, int(json.loads(body)["n"])))
        try:
            await asyncio.sleep(self.seconds)
        finally:
            self.pending.pop(request_id, None)
        return {"status": 200, "headers": []}, body


async def _request(
    front: Front, n: int, answers: list[int], gone: asyncio.Event | None = None, cut_off: bool = False
) -> None:
    """One client: its body, then it stays until ``gone`` is set (then ``http.disconnect``); ``cut_off``: it
    sends half its body and disconnects."""
    scope = {"type": "http", "method": "POST", "path": "/v1/recommendations", "headers": [], "query_string": b""}
    sent = False

    async def receive() -> dict[str, Any]:
        nonlocal sent
        if sent:
            if not cut_off:
                await (gone or asyncio.Event()).wait()  # without ``gone`` the client does not go away
            return {"type": "http.disconnect"}
        sent = True
        body = json.dumps({"n": n}).encode()
        if cut_off:
            return {"type": "http.request", "body": body[: len(body) // 2], "more_body": True}
        return {"type": "http.request", "body": body, "more_body": False}

    async def send(message: MutableMapping[str, Any]) -> None:
        if message["type"] == "http.response.start":
            answers.append(message["status"])

    await front(scope, receive, send)


def _front(tmp_path: Path, links: list[FakeLink], in_flight: int) -> Front:
    front = Front(len(links), tmp_path, {}, in_flight=in_flight)
    front.links.extend(links)
    return front


def test_one_request_per_worker_first_come_first_served(tmp_path: Path):
    log: list[tuple[str, int, int]] = []
    fast, slow = FakeLink(1, 0.01, log), FakeLink(2, 0.05, log)
    front = _front(tmp_path, [fast, slow], in_flight=1)
    answers: list[int] = []

    async def main() -> None:
        tasks = []
        for n in range(12):  # all arrive at once, in order
            tasks.append(asyncio.create_task(_request(front, n, answers)))
            await asyncio.sleep(0)
        await asyncio.gather(*tasks)

    asyncio.run(main())
    assert answers == [200] * 12
    assert fast.most == 1 and slow.most == 1  # never two at once in one worker
    started = [n for _, _, n in log]
    assert started == sorted(started)  # served in arrival order
    # The line goes to whichever worker frees up: the fast one answers most of it.
    assert sum(1 for _, pid, _ in log if pid == 1) >= 8
    assert not front._waiting


def test_in_flight_two_lets_a_worker_take_two(tmp_path: Path):
    log: list[tuple[str, int, int]] = []
    links = [FakeLink(1, 0.02, log), FakeLink(2, 0.02, log)]
    front = _front(tmp_path, links, in_flight=2)
    answers: list[int] = []

    async def main() -> None:
        await asyncio.gather(*(_request(front, n, answers) for n in range(10)))

    asyncio.run(main())
    assert answers == [200] * 10
    assert max(link.most for link in links) == 2


def test_a_client_leaving_the_line_gives_its_turn_away(tmp_path: Path):
    log: list[tuple[str, int, int]] = []
    link = FakeLink(1, 0.03, log)
    front = _front(tmp_path, [link], in_flight=1)
    answers: list[int] = []

    async def main() -> None:
        busy = asyncio.create_task(_request(front, 0, answers))
        await asyncio.sleep(0.005)
        leaving = asyncio.create_task(_request(front, 1, answers))
        staying = asyncio.create_task(_request(front, 2, answers))
        await asyncio.sleep(0.005)
        leaving.cancel()
        await asyncio.gather(busy, staying)
        with pytest.raises(asyncio.CancelledError):
            await leaving

    asyncio.run(main())
    assert answers == [200, 200]
    assert [n for _, _, n in log] == [0, 2]
    assert not front._waiting


def test_in_flight_must_be_positive(tmp_path: Path):
    with pytest.raises(ValueError, match="in_flight"):
        Front(2, tmp_path, {}, in_flight=0)


class _Sink:
    """A worker socket's writing end that keeps what is written."""

    def __init__(self) -> None:
        self.data = b""

    def write(self, data: bytes) -> None:
        self.data += data

    async def drain(self) -> None:
        return None

    def close(self) -> None:
        return None


def test_requests_in_line_get_503_when_the_last_worker_goes(tmp_path: Path):
    front = Front(1, tmp_path, {}, in_flight=1)
    answers: list[int] = []

    async def main() -> None:
        reader, sink = asyncio.StreamReader(), _Sink()
        await write_frame(sink, {"pid": 7})  # type: ignore[arg-type]
        reader.feed_data(sink.data)
        connected = asyncio.create_task(front._accept(reader, sink))  # type: ignore[arg-type]
        while not front.links:
            await asyncio.sleep(0)
        busy = asyncio.create_task(_request(front, 0, answers))  # handed to the worker, never answered
        waiting = [asyncio.create_task(_request(front, n, answers)) for n in (1, 2)]
        await asyncio.sleep(0.01)
        assert len(front._waiting) == 2
        reader.feed_eof()  # the worker's socket closes
        await asyncio.wait_for(asyncio.gather(busy, *waiting), timeout=2)
        await connected

    asyncio.run(main())
    assert answers == [503, 503, 503]
    assert not front._waiting


def test_a_client_that_disconnects_while_waiting_is_never_forwarded(tmp_path: Path):
    log: list[tuple[str, int, int]] = []
    link = FakeLink(1, 0.03, log)
    front = _front(tmp_path, [link], in_flight=1)
    answers: list[int] = []

    async def main() -> None:
        gone = asyncio.Event()
        busy = asyncio.create_task(_request(front, 0, answers))
        await asyncio.sleep(0.005)
        leaving = asyncio.create_task(_request(front, 1, answers, gone=gone))
        staying = asyncio.create_task(_request(front, 2, answers))
        await asyncio.sleep(0.005)
        gone.set()  # the client closes its connection while its request waits in line
        await asyncio.wait_for(asyncio.gather(busy, leaving, staying), timeout=2)

    asyncio.run(main())
    assert answers == [200, 200]
    assert [n for _, _, n in log] == [0, 2]  # request 1 never reached the worker
    assert not front._waiting


def test_a_cut_off_body_is_never_forwarded(tmp_path: Path):
    log: list[tuple[str, int, int]] = []
    front = _front(tmp_path, [FakeLink(1, 0.0, log)], in_flight=1)
    answers: list[int] = []
    asyncio.run(asyncio.wait_for(_request(front, 0, answers, cut_off=True), timeout=2))
    assert answers == [] and log == []
