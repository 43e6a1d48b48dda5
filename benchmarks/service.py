"""The service under load: ``POST /v1/recommendations`` on the real app (uvicorn subprocess, loopback only).

Run: ``.venv/bin/python -m benchmarks.service [--creators 100000] [--duration 20] [--concurrency 1,16]``

1. A synthetic world of ``--creators`` creators (``audiencefit.features.synthetic.generate_world``), its feature set
   built with a fast embedding backend (the ``AUDIENCEFIT_EMBEDDER`` setting when it is a fast one, else the first of
   :data:`FAST_BACKENDS` whose artifacts load; with none, the torch MiniLM on at most :data:`TORCH_MAX_CREATORS`
   creators, said in the output), its indexes, and a bundle from ``audiencefit.training.train.train_models``. Everything
   is kept under ``<data_dir>/bench/work/service-<n>-seed<seed>-<backend>/`` and reused by the next run. When
   ``features-large`` (or the batch benchmark) kept a feature set of that world, it is served instead of building
   one (how the 1M run is done: ``--creators 1000000`` after ``features-large --creators 1000000``), or any feature
   set with ``--features DIR``; its indexes are built beside it when missing. After the load levels, the RSS of
   the front and of every worker process is recorded (memory per worker).
2. ``audiencefit serve`` (the product's command, with its thread settings) in a subprocess on 127.0.0.1 and a
   free port.
3. An asyncio load generator (``--client``: keep-alive HTTP/1.1 over asyncio streams by default, or ``httpx``;
   it runs on the server's 2 cores, so its own CPU per request is reported), each level for ``--duration``
   seconds:
   - closed loop: for each ``--concurrency`` level, that many clients send requests back to back (at most
     ``--max-requests``); at 16 clients once more with novel briefs. This is the service's capacity, and the two
     levels of 16 give the server CPU per request of repeat and of novel briefs under the same load, and their
     ratio.
   - open loop, the goals' levels: requests arrive at ``--rate`` per second of repeat briefs, then at
     ``--novel-rate`` per second of novel ones (Poisson-like gaps, seeded) over ``--connections`` clients; latency
     counts from arrival, so waiting for a free client is included.
   Briefs have 1–3 segments. "repeat": texts drawn from :data:`BRIEFS` (marketers re-running saved segments; the
   service remembers a text's vector after its first use). "novel": every text made new (a place, an age range and
   a campaign number added), so every segment is embedded during the request.
   Reported: p50/p95/p99 latency, requests per second, errors, and per level the CPU the server process used per
   request and how many cores it kept busy (``/proc/<pid>/stat``), and the load generator's own CPU per request:
   where the 2 cores go.
4. The same briefs answered the way the public peer does it, in this process (no HTTP, so in the peer's favour):
   embed the brief, exact search over the bio vectors (a numpy dot over every creator), then a Python loop scoring
   each creator ``0.8·cos + 0.2·ER``; reported as the ratio of its latency to the service's at one client.

Goals (issues 7 and 22), on the 100k-creator world: repeat briefs at 100 req/s offered over 16 clients, p99 ≤ 35
ms (issue 7 asked 50; 22 keeps headroom for 1M creators and slower machines); novel briefs at 50 req/s offered,
p99 ≤ 100 ms; server CPU per novel request ≤ 1.5 × per repeat request (closed loop of 16). A novel brief's texts go
through the query transformer (the ``query_model`` setting: MiniLM int8 or fp32, docs/evaluation.md), once per
text, and are then remembered.
Results go to ``<data_dir>/bench/service.json``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import functools
import json
import os
import random
import resource
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Coroutine, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow.parquet as pq

from benchmarks.common import (
    Goal,
    Results,
    conclude,
    console,
    fmt,
    latency_ms,
    print_table,
    stopwatch,
    tree_memory,
    work_dir,
)

BENCH_KEY = "bench-key-0123456789"
FAST_BACKENDS = ("minilm-aligned", "minilm-onnx-int8", "minilm-hybrid", "minilm-static")
TORCH_BACKEND = "minilm-torch"
TORCH_MAX_CREATORS = 500  # the torch MiniLM embeds ~25 texts/s on this machine: 500 creators is ~7 minutes
GOAL_P99_MS = 35.0  # issue 22: 50 ms (issue 7) with headroom for 1M creators and a ~25 % slower box
GOAL_RPS = 100.0
GOAL_CONCURRENCY = 16
NOVEL_RPS = 50.0  # issue 22: briefs never seen before, p99 ≤ NOVEL_P99_MS at this rate offered
NOVEL_P99_MS = 100.0
NOVEL_CPU_RATIO = 1.5  # issue 22: server CPU per novel request ≤ this × per repeat request (closed loop of 16)
K = 20
READY_TIMEOUT_S = 600.0
REQUEST_TIMEOUT_S = 30.0
WARMUP_REQUESTS = 20

BRIEFS = (
    "young parents interested in baby products and family life",
    "fitness fans who lift weights and run marathons",
    "home cooks who love baking and recipes",
    "gamers streaming video games",
    "budget travellers backpacking through southeast asia",
    "skincare enthusiasts who care about clean beauty",
    "vegan food lovers and plant based cooking",
    "yoga and meditation practitioners",
    "dog owners who love hiking with their pets",
    "sneaker collectors and streetwear fans",
    "personal finance and investing beginners",
    "students preparing for university exams",
    "coffee lovers who brew at home",
    "gardeners growing vegetables in small spaces",
    "cyclists and road bike enthusiasts",
    "makeup artists and beauty tutorial fans",
    "new homeowners decorating on a budget",
    "tech early adopters who review gadgets",
    "craft beer and home brewing hobbyists",
    "fashion lovers interested in sustainable clothing",
    "outdoor campers and mountain climbers",
    "photographers who shoot landscapes",
    "book readers who share reviews",
    "parents of teenagers looking for study tips",
    "wine tasting and fine dining fans",
    "runners training for their first half marathon",
    "music producers and aspiring djs",
    "small business owners and entrepreneurs",
    "cat lovers sharing funny pet videos",
    "football fans who follow the premier league",
)


# ---------------------------------------------------------------------------------------------------------------
# Setup: embedder, world, features, indexes, bundle
# ---------------------------------------------------------------------------------------------------------------


def pick_backend(requested: str | None) -> tuple[str, str]:
    """The embedding backend to build the features with, and why. Loads it once so a broken one is skipped."""
    from audiencefit.features.embed import get_embedder, known_backends
    from audiencefit.settings import get_settings

    fast = known_backends()  # registers the fast backends of audiencefit.features.embed_backends
    default = get_settings().embedder
    candidates = [requested] if requested else [*([default] if default != TORCH_BACKEND else []), *FAST_BACKENDS]
    for backend in candidates:
        if requested is None and backend not in fast:
            continue
        try:
            get_embedder(backend)
        except Exception as exc:
            console.print(f"[yellow]embedding backend {backend!r} unavailable: {type(exc).__name__}: {exc}")
            if requested:
                raise
            continue
        reason = "requested" if requested else ("AUDIENCEFIT_EMBEDDER" if backend == default else "fastest available")
        return backend, reason
    return TORCH_BACKEND, "no fast backend available"


@dataclass
class Prepared:
    world: Path
    features: Path
    bundle: Path
    backend: str
    embedder_id: str
    creators: int
    timings_s: dict[str, float] = field(default_factory=dict)
    reused: bool = False


def prepare_given(features: Path, seed: int, backend: str, train_creators: int) -> Prepared:
    """An existing feature set (``--features``, e.g. the 1M one ``features-large`` built), its indexes (built
    beside it when missing, in ``<features>/index``, timed) and a bundle trained on a separate ``train_creators`` world
    (same seed and backend), kept under ``<work>/service-given-<name>-...`` and reused by the next run."""
    from audiencefit.features.build import build_feature_set
    from audiencefit.features.embed import get_embedder
    from audiencefit.features.featureset import load_feature_set, read_manifest
    from audiencefit.features.synthetic import generate_world
    from audiencefit.models.index import build_and_save
    from audiencefit.settings import get_settings
    from audiencefit.training.train import train_models

    manifest, _ = read_manifest(features)
    embedder = get_embedder(backend)
    if manifest.get("embedder_id") != embedder.id:
        raise ValueError(
            f"--features {features}: embedded with {manifest.get('embedder_id')!r}, not {embedder.id!r} ({backend})"
        )
    n_creators = int(pq.ParquetFile(features / "creators.parquet").metadata.num_rows)
    settings = get_settings().model_copy(update={"embedder": backend})
    root = work_dir() / f"service-given-{features.name}-seed{seed}-{backend}-train{train_creators}"
    bundle = root / "bundle"
    timings: dict[str, float] = {}
    if not (features / "index").is_dir():  # audiencefit.models.index.default_index_dir
        console.print(f"building the indexes of {features} ({n_creators:,} creators) …")
        with stopwatch() as t:
            build_and_save(load_feature_set(features, mmap=True), settings)
        timings["indexes"] = t["s"]
    if not (bundle / "bundle.json").exists():
        root.mkdir(parents=True, exist_ok=True)
        train_world, train_features = root / "train-world", root / "train-features"
        console.print(f"generating the {train_creators:,}-creator training world …")
        with stopwatch() as t:
            generate_world(train_world, n_creators=train_creators, seed=seed, overwrite=True)
            build_feature_set(train_world, train_features, settings=settings, embedder=embedder)
            train_models(train_world, train_features, settings, out_dir=bundle, progress=False)
        timings["train"] = t["s"]
    return Prepared(features.parent, features, bundle, backend, embedder.id, n_creators, timings, reused=not timings)


def prepare(n_creators: int, seed: int, backend: str, train_creators: int | None = None) -> Prepared:
    """World, feature set, indexes and bundle for ``n_creators`` (reused when a previous run left them complete).

    With ``train_creators`` below ``n_creators`` the bundle is trained on a separate world of that size (same seed,
    same embedding backend, so the bundle fits the served feature set): request latency depends on the served
    world's size and on the model's size, not on how many creators it was trained on, and training on 100k
    creators' past campaigns takes far longer than the benchmark.
    """
    from audiencefit.features.build import build_feature_set
    from audiencefit.features.embed import get_embedder
    from audiencefit.features.featureset import load_feature_set
    from audiencefit.features.synthetic import generate_world
    from audiencefit.models.index import build_and_save
    from audiencefit.settings import get_settings
    from audiencefit.training.train import train_models

    # The feature set's manifest records the settings' backend; queries are embedded with it.
    settings = get_settings().model_copy(update={"embedder": backend})
    from benchmarks.features import feature_set_path

    kept = feature_set_path(n_creators, seed, backend)
    if train_creators and train_creators < n_creators and (kept / "manifest.json").is_file():
        # The world's feature set that features-large (or the batch benchmark) built and kept: served as it is.
        console.print(f"serving the kept feature set {kept}")
        return prepare_given(kept, seed, backend, train_creators)
    train_n = n_creators if train_creators is None else min(train_creators, n_creators)
    suffix = "" if train_n == n_creators else f"-train{train_n}"
    root = work_dir() / f"service-{n_creators}-seed{seed}-{backend}{suffix}"
    world, features, bundle = root / "world", root / "features", root / "bundle"
    done = root / "done.json"
    embedder = get_embedder(backend)
    if done.exists():
        meta = json.loads(done.read_text(encoding="utf-8"))
        if meta.get("embedder_id") == embedder.id and (bundle / "bundle.json").exists():
            console.print(f"reusing {root}")
            return Prepared(world, features, bundle, backend, embedder.id, n_creators, meta["timings_s"], reused=True)
    timings: dict[str, float] = {}
    root.mkdir(parents=True, exist_ok=True)
    console.print(f"generating a {n_creators:,}-creator world (seed {seed}) …")
    with stopwatch() as t:
        generate_world(world, n_creators=n_creators, seed=seed, overwrite=True)
    timings["world"] = t["s"]
    console.print(f"building features with {backend} ({embedder.id}) …")
    with stopwatch() as t:
        build_feature_set(world, features, settings=settings, embedder=embedder)
    timings["features"] = t["s"]
    with stopwatch() as t:
        build_and_save(load_feature_set(features), settings)
    timings["indexes"] = t["s"]
    train_world, train_features = world, features
    if train_n < n_creators:
        train_world, train_features = root / "train-world", root / "train-features"
        console.print(f"generating the {train_n:,}-creator training world …")
        generate_world(train_world, n_creators=train_n, seed=seed, overwrite=True)
        build_feature_set(train_world, train_features, settings=settings, embedder=embedder)
    console.print(f"training the bundle on {train_n:,} creators …")
    with stopwatch() as t:
        train_models(train_world, train_features, settings, out_dir=bundle, progress=False)
    timings["train"] = t["s"]
    done.write_text(json.dumps({"embedder_id": embedder.id, "timings_s": timings}), encoding="utf-8")
    return Prepared(world, features, bundle, backend, embedder.id, n_creators, timings)


# ---------------------------------------------------------------------------------------------------------------
# The server subprocess
# ---------------------------------------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@contextlib.contextmanager
def running_server(
    prep: Prepared,
    log_dir: Path,
    workers: int | None = None,
    threads: int | None = None,
    in_flight: int | None = None,
) -> Iterator[tuple[str, float, int]]:
    """Start the service (``workers`` processes of ``threads`` threads, ``in_flight`` requests each at a time;
    None: the command's defaults), wait until ``/readyz`` answers 200; yield (base URL, startup seconds, its pid);
    stop it after."""
    import httpx

    port = free_port()
    env = {
        **os.environ,
        "AUDIENCEFIT_API_KEYS": BENCH_KEY,
        "AUDIENCEFIT_LOG_LEVEL": "WARNING",
        "AUDIENCEFIT_EMBEDDER": prep.backend,
        # One key drives the whole load here: per-key limits (audiencefit.serving.ratelimit) far above it, so the
        # limiter runs but never refuses.
        "AUDIENCEFIT_RATE_LIMIT_PER_SECOND": "100000",
        "AUDIENCEFIT_RATE_LIMIT_BURST": "100000",
        "AUDIENCEFIT_RATE_LIMIT_ADDRESS_PER_SECOND": "100000",
        "AUDIENCEFIT_RATE_LIMIT_ADDRESS_BURST": "100000",
    }
    # The product's own command, with its thread settings (audiencefit/cli/serve_cmd.py).
    cmd = [
        sys.executable, "-c", "from audiencefit.cli import main; main()", "serve",
        "--features", str(prep.features), "--bundle", str(prep.bundle), "--host", "127.0.0.1", "--port", str(port),
    ]  # fmt: skip
    if workers is not None:
        cmd += ["--workers", str(workers)]
    if threads is not None:
        cmd += ["--threads", str(threads)]
    if in_flight is not None:
        cmd += ["--in-flight", str(in_flight)]
    log_dir.mkdir(parents=True, exist_ok=True)
    base = f"http://127.0.0.1:{port}"
    started = time.perf_counter()
    with (log_dir / "server.log").open("wb") as log:
        proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env)
        try:
            while True:
                if proc.poll() is not None:
                    raise RuntimeError(f"the server exited with {proc.returncode}; see {log_dir / 'server.log'}")
                if time.perf_counter() - started > READY_TIMEOUT_S:
                    raise TimeoutError(f"the server was not ready within {READY_TIMEOUT_S:.0f} s")
                with contextlib.suppress(httpx.HTTPError):
                    # With several workers the front listens only once every worker is loaded: one 200 means all.
                    if httpx.get(f"{base}/readyz", timeout=2.0).status_code == 200:
                        break
                time.sleep(0.5)
            yield base, time.perf_counter() - started, proc.pid
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=20)


# ---------------------------------------------------------------------------------------------------------------
# Load generation
# ---------------------------------------------------------------------------------------------------------------


PLACES = ("in London", "in Texas", "in Berlin", "in Toronto", "in Sydney", "in Madrid", "in Lyon", "in Ohio")


class Novel:
    """Makes every segment text new: a brief with a place, an age range and a campaign number never seen before."""

    def __init__(self) -> None:
        self.n = 0

    def __call__(self, rnd: random.Random, text: str) -> str:
        self.n += 1
        low = rnd.randint(18, 50)
        return f"{text} {rnd.choice(PLACES)}, aged {low}-{low + rnd.randint(5, 20)}, campaign {self.n}"


def make_brief(rnd: random.Random, novel: Novel | None = None) -> dict[str, Any]:
    """A request body: 1–3 segments of free text, sometimes weighted, sometimes with a description.

    Texts come from :data:`BRIEFS` (marketers re-running saved segments: after its first use a text's vector is
    remembered by the service), or, with ``novel``, are made new for this request (never remembered).
    """
    texts = rnd.sample(BRIEFS, rnd.randint(1, 3))
    if novel is not None:
        texts = [novel(rnd, t) for t in texts]
    segments = [{"text": t, "weight": rnd.choice((1.0, 1.0, 2.0, 0.5))} for t in texts]
    body: dict[str, Any] = {"segments": segments, "k": K, "objective": rnd.choice(("conversions", "engagement"))}
    if rnd.random() < 0.3:
        body["description"] = f"A brand for {rnd.choice(BRIEFS)}"
    return body


@dataclass
class LevelResult:
    concurrency: int
    mode: str  # "closed" (clients send back to back) or "open" (arrivals at a rate)
    briefs: str  # "repeat" or "novel"
    requests: int
    errors: int
    seconds: float
    latencies_s: list[float]
    statuses: dict[str, int]
    target_rps: float | None = None
    server_cpu_s: float | None = None  # CPU seconds the server process used during the timed part
    loadgen_cpu_s: float | None = None  # CPU seconds this process (the load generator) used meanwhile

    def summary(self) -> dict[str, Any]:
        ok = len(self.latencies_s)
        per_request = 1000.0 / self.requests if self.requests else float("nan")
        cpu = {
            "server_cpu_ms_per_request": None if self.server_cpu_s is None else self.server_cpu_s * per_request,
            "server_cores": None if self.server_cpu_s is None or not self.seconds else self.server_cpu_s / self.seconds,
            "loadgen_cpu_ms_per_request": None if self.loadgen_cpu_s is None else self.loadgen_cpu_s * per_request,
        }
        return cpu | {
            "concurrency": self.concurrency,
            "mode": self.mode,
            "briefs": self.briefs,
            "target_rps": self.target_rps,
            "requests": self.requests,
            "ok": ok,
            "errors": self.errors,
            "seconds": round(self.seconds, 3),
            "rps": ok / self.seconds if self.seconds > 0 else float("nan"),
            "latency_ms": latency_ms(self.latencies_s),
            "statuses": self.statuses,
        }


def process_cpu_s(pid: int) -> float:
    """User + system CPU seconds a process and its live descendants (worker processes) have used so far (Linux
    ``/proc``)."""
    total = 0.0
    todo = [pid]
    while todo:
        p = todo.pop()
        with contextlib.suppress(OSError):
            fields = Path(f"/proc/{p}/stat").read_text().rsplit(")", 1)[1].split()
            total += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
            for task in Path(f"/proc/{p}/task").iterdir():
                todo += [int(c) for c in (task / "children").read_text().split()]
    return total


def own_cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


class CpuMeter:
    """CPU seconds of the server process (``pid``) and of this process between :meth:`start` and :meth:`stop`."""

    def __init__(self, pid: int | None) -> None:
        self.pid = pid
        self._server = self._own = 0.0

    def start(self) -> None:
        self._server = process_cpu_s(self.pid) if self.pid else 0.0
        self._own = own_cpu_s()

    def stop(self, out: LevelResult) -> None:
        if self.pid:
            out.server_cpu_s = process_cpu_s(self.pid) - self._server
        out.loadgen_cpu_s = own_cpu_s() - self._own


async def _send(client: Any, body: dict[str, Any], since: float, out: LevelResult | None) -> None:
    """One request; its latency counts from ``since`` (the moment it was due), recorded in ``out``."""
    status = await client.post_json("/v1/recommendations", body)
    elapsed = time.perf_counter() - since
    if out is None:
        return
    out.requests += 1
    out.statuses[status] = out.statuses.get(status, 0) + 1
    if status == "200":
        out.latencies_s.append(elapsed)
    else:
        out.errors += 1


async def _client(
    client: Any,
    rnd: random.Random,
    deadline: float,
    budget: list[int],
    out: LevelResult | None,
    novel: Novel | None = None,
) -> None:
    while time.perf_counter() < deadline and budget[0] > 0:
        budget[0] -= 1
        body = make_brief(rnd, novel)
        await _send(client, body, time.perf_counter(), out)


class HttpxClient:
    """The load generator's client through ``httpx.AsyncClient`` (``--client httpx``)."""

    def __init__(self, base: str, connections: int) -> None:
        import httpx

        limits = httpx.Limits(max_connections=connections, max_keepalive_connections=connections)
        headers = {"X-API-Key": BENCH_KEY}
        self._client = httpx.AsyncClient(base_url=base, headers=headers, limits=limits, timeout=REQUEST_TIMEOUT_S)

    async def post_json(self, path: str, body: dict[str, Any]) -> str:
        """POST ``body`` as JSON; the status code, or the error's type when there is no answer."""
        import httpx

        try:
            resp = await self._client.post(path, json=body)
        except httpx.HTTPError as exc:
            return type(exc).__name__
        return str(resp.status_code)

    async def aclose(self) -> None:
        await self._client.aclose()


class RawClient:
    """The load generator's default client: HTTP/1.1 keep-alive over asyncio streams, at most ``connections`` open.

    The load generator shares the 2 cores with the server, so its own CPU is taken from the service: httpx spends
    ~2 ms per request (measured, ``--client httpx``), this client ~0.3 ms. It writes one request and reads one
    ``Content-Length`` answer per connection at a time (the service always sends a length); anything else is an
    error, counted by type like httpx's.
    """

    def __init__(self, base: str, connections: int) -> None:
        host_port = base.removeprefix("http://")
        self._host, port = host_port.rsplit(":", 1)
        self._port = int(port)
        self._head = (
            f"Host: {host_port}\r\nX-API-Key: {BENCH_KEY}\r\nContent-Type: application/json\r\n"
            "Connection: keep-alive\r\n"
        )
        self._slots = asyncio.Semaphore(connections)
        self._idle: list[tuple[asyncio.StreamReader, asyncio.StreamWriter]] = []

    async def post_json(self, path: str, body: dict[str, Any]) -> str:
        """POST ``body`` as JSON; the status code, or the error's type when there is no answer."""
        payload = json.dumps(body).encode()
        request = f"POST {path} HTTP/1.1\r\n{self._head}Content-Length: {len(payload)}\r\n\r\n".encode() + payload
        async with self._slots:
            conn = self._reusable()
            try:
                if conn is not None:
                    try:
                        status = await asyncio.wait_for(self._exchange(*conn, request), REQUEST_TIMEOUT_S)
                    except (ConnectionError, asyncio.IncompleteReadError) as exc:
                        # The server closed a kept-alive connection before this request reached it (its idle
                        # timeout): sent again on a new connection, as HTTP clients do; anything else is an error.
                        if isinstance(exc, asyncio.IncompleteReadError) and exc.partial:
                            raise
                        conn[1].close()
                        conn = None
                if conn is None:
                    conn = await asyncio.open_connection(self._host, self._port)
                    status = await asyncio.wait_for(self._exchange(*conn, request), REQUEST_TIMEOUT_S)
            except (TimeoutError, OSError, asyncio.IncompleteReadError, ValueError) as exc:
                if conn is not None:
                    conn[1].close()
                return type(exc).__name__
            self._idle.append(conn)
            return status

    def _reusable(self) -> tuple[asyncio.StreamReader, asyncio.StreamWriter] | None:
        """The most recently used open connection (others close after the server's keep-alive timeout)."""
        while self._idle:
            reader, writer = self._idle.pop()
            if not reader.at_eof() and not writer.is_closing():
                return reader, writer
            writer.close()
        return None

    @staticmethod
    async def _exchange(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, request: bytes) -> str:
        writer.write(request)
        head = await reader.readuntil(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        status = lines[0].split(" ", 2)[1]
        length = None
        for line in lines[1:]:
            name, _, value = line.partition(":")
            if name.strip().lower() == "content-length":
                length = int(value)
        if length is None:
            raise ValueError(f"answer without Content-Length: {lines[0]!r}")
        await reader.readexactly(length)
        return status

    async def aclose(self) -> None:
        for _, writer in self._idle:
            writer.close()
        self._idle.clear()


CLIENTS: dict[str, Callable[[str, int], HttpxClient | RawClient]] = {"raw": RawClient, "httpx": HttpxClient}


@contextlib.asynccontextmanager
async def _http(base: str, connections: int, kind: str) -> Any:
    client = CLIENTS[kind](base, connections)
    try:
        yield client
    finally:
        await client.aclose()


async def _warm_up(client: Any, seed: int, meter: CpuMeter | None) -> None:
    """A level's untimed first requests (connections opened, caches filled), then its CPU meter starts."""
    await _client(client, random.Random(seed - 1), time.perf_counter() + 60, [WARMUP_REQUESTS], None)
    if meter is not None:
        meter.start()


async def run_level(
    base: str,
    concurrency: int,
    duration_s: float,
    max_requests: int,
    seed: int,
    novel: bool = False,
    meter: CpuMeter | None = None,
    client_kind: str = "raw",
) -> LevelResult:
    """Closed loop: ``concurrency`` clients sending back to back for ``duration_s`` (at most ``max_requests``)."""
    out = LevelResult(concurrency, "closed", "novel" if novel else "repeat", 0, 0, 0.0, [], {})
    async with _http(base, concurrency, client_kind) as client:
        await _warm_up(client, seed, meter)
        budget = [max_requests]
        started = time.perf_counter()
        deadline = started + duration_s
        maker = Novel() if novel else None
        await asyncio.gather(
            *(_client(client, random.Random(seed * 1000 + i), deadline, budget, out, maker) for i in range(concurrency))
        )
        out.seconds = time.perf_counter() - started
        if meter is not None:
            meter.stop(out)
    return out


async def run_open(
    base: str,
    rate: float,
    connections: int,
    duration_s: float,
    seed: int,
    novel: bool = False,
    meter: CpuMeter | None = None,
    client_kind: str = "raw",
) -> LevelResult:
    """Open loop: requests arrive at ``rate`` per second (Poisson arrivals, seeded) over ``connections`` clients.

    Each request's latency counts from its arrival, so time spent waiting for one of the ``connections`` to come
    free is included (no coordinated omission). The rate achieved is answers per second, from the first arrival
    to the last answer.
    """
    out = LevelResult(connections, "open", "novel" if novel else "repeat", 0, 0, 0.0, [], {}, target_rps=rate)
    rnd = random.Random(seed)
    maker = Novel() if novel else None
    async with _http(base, connections, client_kind) as client:
        await _warm_up(client, seed, meter)
        free = asyncio.Semaphore(connections)

        async def arrive(body: dict[str, Any], due: float) -> None:
            async with free:
                await _send(client, body, due, out)

        # Exactly rate × duration arrivals, with exponential gaps scaled to span the duration: Poisson-like bursts,
        # and an offered rate that is the target, not a random draw around it.
        gaps = [rnd.expovariate(1.0) for _ in range(max(1, round(rate * duration_s)))]
        scale = duration_s / sum(gaps)
        tasks = []
        started = time.perf_counter()
        due = started
        for gap in gaps:
            due += gap * scale
            body = make_brief(rnd, maker)
            wait = due - time.perf_counter()
            if wait > 0:
                await asyncio.sleep(wait)
            tasks.append(asyncio.create_task(arrive(body, due)))
        await asyncio.gather(*tasks)
        out.seconds = time.perf_counter() - started
        if meter is not None:
            meter.stop(out)
    return out


# ---------------------------------------------------------------------------------------------------------------
# The public peer's way
# ---------------------------------------------------------------------------------------------------------------


def peer_latencies(prep: Prepared, n_requests: int, max_seconds: float, seed: int) -> list[float]:
    """Seconds per brief the peer's way: embed, exact dot over all bio vectors, Python loop 0.8·cos + 0.2·ER."""
    from audiencefit.features.embed import for_queries, get_embedder
    from audiencefit.features.featureset import load_feature_set

    fs = load_feature_set(prep.features, verify_checksums=False)
    query_side = for_queries(get_embedder(prep.backend))
    norms = np.linalg.norm(fs.bio, axis=1, keepdims=True)
    # The peer stores unit vectors; normalising is not part of a request.
    bio = (fs.bio / np.where(norms > 0, norms, 1.0)).astype(np.float32)
    er = fs.creators["er_median"].fill_null(0.0).to_list()
    followers = fs.creators["followers"].fill_null(0).to_list()
    ids = fs.creators["creator_id"].to_list()
    rnd = random.Random(seed)
    out: list[float] = []
    remembered: dict[str, np.ndarray] = {}
    stop = time.perf_counter() + max_seconds
    for _ in range(n_requests):
        if time.perf_counter() > stop:
            break
        body = make_brief(rnd)
        text = ". ".join(s["text"] for s in body["segments"])
        started = time.perf_counter()
        # The peer remembers its briefs' vectors too (as the service does), so the ratio compares the rest.
        query = remembered.get(text)
        if query is None:
            query = remembered[text] = np.asarray(query_side.embed([text])[0], dtype=np.float32)
        cos = (bio @ (query / (float(np.linalg.norm(query)) or 1.0))).tolist()
        scored = []
        for i, c in enumerate(cos):
            if 1_000 <= followers[i] <= 100_000:
                scored.append((0.8 * c + 0.2 * er[i], ids[i]))
        scored.sort(reverse=True)
        _top = scored[:K]
        out.append(time.perf_counter() - started)
    return out


# ---------------------------------------------------------------------------------------------------------------
# Main
# ---------------------------------------------------------------------------------------------------------------


def _ints(text: str) -> tuple[int, ...]:
    return tuple(int(x.replace("_", "")) for x in text.split(",") if x.strip())


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.service", description=__doc__.split("\n\n")[0])
    parser.add_argument("--creators", type=int, default=100_000, help="creators in the world (issue: 100,000)")
    parser.add_argument("--seed", type=int, default=7, help="world and load-generator seed")
    parser.add_argument("--duration", type=float, default=20.0, help="seconds per concurrency level")
    parser.add_argument("--max-requests", type=int, default=20_000, help="request cap per concurrency level")
    parser.add_argument("--concurrency", type=_ints, default=(1, GOAL_CONCURRENCY), help="comma-separated levels")
    parser.add_argument(
        "--rate",
        type=float,
        default=GOAL_RPS,
        help="open-loop arrival rate (req/s) of repeat briefs over --connections clients, the goal's level (0 = skip)",
    )
    parser.add_argument(
        "--novel-rate",
        type=float,
        default=NOVEL_RPS,
        help="open-loop arrival rate (req/s) of novel briefs over --connections clients (0 = skip)",
    )
    parser.add_argument("--connections", type=int, default=GOAL_CONCURRENCY, help="clients of the open-loop level")
    parser.add_argument("--peer-requests", type=int, default=300, help="briefs answered the peer's way")
    parser.add_argument(
        "--workers", type=int, default=None, help="server worker processes (default: audiencefit serve's default)"
    )
    parser.add_argument(
        "--threads", type=int, default=None, help="request threads per worker (default: audiencefit serve's default)"
    )
    parser.add_argument(
        "--in-flight",
        type=int,
        default=None,
        help="requests the front gives one worker at a time (default: audiencefit serve's default)",
    )
    parser.add_argument(
        "--client",
        choices=sorted(CLIENTS),
        default="raw",
        help="load generator's HTTP client: raw (asyncio streams, ~0.3 ms CPU per request) or httpx (~2 ms)",
    )
    parser.add_argument("--embedder", default=None, help="embedding backend (default: a fast one, see above)")
    parser.add_argument(
        "--features",
        type=Path,
        default=None,
        help="serve this existing feature set (e.g. the 1M one from features-large) instead of generating a world "
        "of --creators; its indexes are built beside it when missing",
    )
    parser.add_argument(
        "--train-creators",
        type=int,
        default=5_000,
        help="train the bundle on a separate world of this many creators (same seed and backend); 0 = the served one",
    )
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    """Run on its own: the results are written and the goals printed; exit code 1 on a FAIL."""
    return conclude(run_service(argv))


def run_service(argv: Sequence[str] | None = None) -> Results:
    """The benchmark (``make bench`` runs it as ``service``): every level, the peer's way, the goals."""
    args = parse_args(argv)
    backend, reason = pick_backend(args.embedder)
    given = None
    if args.features is not None:
        given = prepare_given(args.features, args.seed, backend, args.train_creators or 5_000)
    n = given.creators if given is not None else args.creators
    notes: list[str] = []
    if given is None and backend == TORCH_BACKEND and n > TORCH_MAX_CREATORS:
        notes.append(f"no fast embedding backend: {n:,} creators cut to {TORCH_MAX_CREATORS} for the torch MiniLM")
        n = TORCH_MAX_CREATORS
    if n != 100_000:
        notes.append(f"ran {n:,} creators; the goal is stated for 100,000")
    for note in notes:
        console.print(f"[yellow]{note}")
    config = {
        "creators": n,
        "creators_asked": args.creators,
        "seed": args.seed,
        "embedder": backend,
        "embedder_choice": reason,
        "duration_s": args.duration,
        "max_requests": args.max_requests,
        "concurrency": list(args.concurrency),
        "k": K,
        "briefs": len(BRIEFS),
        "client": args.client,
        "features": str(args.features) if args.features else None,
    }
    # The 100k run is the issue-#7 goal's result (service.json); other sizes keep their own file.
    res = Results("service" if n == 100_000 else f"service-{n}", config)
    prep = given or prepare(n, args.seed, backend, args.train_creators or None)
    config["embedder_id"] = prep.embedder_id
    res.results["setup_s"] = prep.timings_s
    res.results["setup_reused"] = prep.reused
    levels: list[dict[str, Any]] = []
    server = running_server(prep, prep.features.parent / "logs", args.workers, args.threads, args.in_flight)
    with server as (base, startup_s, pid):
        meter = CpuMeter(pid)
        res.results["server_startup_s"] = startup_s
        res.results["server_workers"] = args.workers
        res.results["server_threads"] = args.threads
        res.results["server_in_flight"] = args.in_flight
        console.print(f"service ready at {base} after {startup_s:.1f} s")

        def closed_level(width: int, novel: bool) -> Coroutine[Any, Any, LevelResult]:
            return run_level(
                base, width, args.duration, args.max_requests, args.seed + width, novel, meter, args.client
            )

        def open_level(rate: float, novel: bool) -> Coroutine[Any, Any, LevelResult]:
            return run_open(base, rate, args.connections, args.duration, args.seed + 500, novel, meter, args.client)

        # Each level is started only when its turn comes (a coroutine per label, made when it runs).
        runs: list[tuple[str, Callable[[], Coroutine[Any, Any, LevelResult]]]] = [
            (f"closed loop, {c} client(s), repeat briefs", functools.partial(closed_level, c, False))
            for c in args.concurrency
        ]
        if GOAL_CONCURRENCY in args.concurrency:
            label = f"closed loop, {GOAL_CONCURRENCY} clients, novel briefs"
            runs.append((label, functools.partial(closed_level, GOAL_CONCURRENCY, True)))
        for rate, novel in ((args.rate, False), (args.novel_rate, True)):
            if rate > 0:
                kind = "novel" if novel else "repeat"
                label = f"open loop, {rate:g} req/s over {args.connections} clients, {kind} briefs"
                runs.append((label, functools.partial(open_level, rate, novel)))
        for label, start in runs:
            level = asyncio.run(start())
            levels.append(level.summary() | {"label": label})
            console.print(f"{label}: {level.requests} requests, {level.errors} errors")
        # Memory after every level ran: the front (root) and each worker process it started.
        memory = tree_memory(pid)
        res.results["server_memory"] = memory
        # Workers: the processes the front started (not a resource tracker); with one worker the root serves.
        workers = [row for row in memory if row["role"] == "child"] or [row for row in memory if row["role"] == "root"]
        res.results["memory_per_worker_mb"] = {
            "processes": len(memory),
            "workers": len(workers),
            "worker_rss_max_mb": max((row["rss_mb"] or 0.0) for row in workers),
            "worker_hwm_max_mb": max((row["hwm_mb"] or 0.0) for row in workers),
            "worker_anon_max_mb": max((row["anon_mb"] or 0.0) for row in workers),
            "worker_file_max_mb": max((row["file_mb"] or 0.0) for row in workers),
            "total_rss_mb": sum((row["rss_mb"] or 0.0) for row in memory),
            # Mapped file pages are shared between the workers (the page cache holds one copy): the machine's cost
            # is every process's own (anonymous) memory plus the largest mapped set, not the sum of RSS.
            "total_anon_mb": sum((row["anon_mb"] or 0.0) for row in memory),
        }
    res.results["levels"] = levels
    peer = latency_ms(peer_latencies(prep, args.peer_requests, max(args.duration, 10.0), args.seed))
    res.results["peer_latency_ms"] = peer
    one = next((lv for lv in levels if lv["concurrency"] == 1 and lv["mode"] == "closed"), None)
    if one is not None:
        res.results["peer_vs_service_1_client"] = {
            q: peer[q] / one["latency_ms"][q] if one["latency_ms"][q] > 0 else float("nan")
            for q in ("p50", "p95", "p99")
        }

    rows = [
        (
            lv["label"],
            lv["requests"],
            lv["errors"],
            fmt(lv["rps"], ".1f"),
            fmt(lv["latency_ms"]["p50"], ".1f"),
            fmt(lv["latency_ms"]["p95"], ".1f"),
            fmt(lv["latency_ms"]["p99"], ".1f"),
            fmt(lv["server_cpu_ms_per_request"], ".1f"),
            fmt(lv["server_cores"], ".2f"),
            fmt(lv["loadgen_cpu_ms_per_request"], ".1f"),
        )
        for lv in levels
    ]
    peer_rps = 1000.0 / peer["mean"] if peer["mean"] > 0 else float("nan")
    rows.append(
        ("peer way, 1 client (in process)", args.peer_requests, 0, fmt(peer_rps, ".1f"),
         fmt(peer["p50"], ".1f"), fmt(peer["p95"], ".1f"), fmt(peer["p99"], ".1f"), "–", "–", "–")
    )  # fmt: skip
    caption = (
        f"{n:,} creators, {prep.embedder_id}, k={K}, server {args.workers or 'default'} workers × "
        f"{args.threads or 'default'} threads, {args.in_flight or 'default'} in flight, {args.client} client; "
        "server CPU: the serve processes' user+system CPU per request and the cores they kept busy; load gen: this "
        "process's CPU per request. " + "; ".join(notes)
    )
    columns = ("run", "requests", "errors", "req/s", "p50 ms", "p95 ms", "p99 ms", "server CPU ms/req",
               "server cores", "load gen CPU ms/req")  # fmt: skip
    print_table("POST /v1/recommendations", columns, rows, caption=caption)
    mem = res.results.get("memory_per_worker_mb")
    if mem:
        console.print(
            f"memory after the run: {mem['workers']} worker(s), per worker RSS ≤ {mem['worker_rss_max_mb']:,.0f} "
            f"MB (anonymous {mem['worker_anon_max_mb']:,.0f} MB, mapped files {mem['worker_file_max_mb']:,.0f} MB), "
            f"peak {mem['worker_hwm_max_mb']:,.0f} MB; all {mem['processes']} processes {mem['total_rss_mb']:,.0f} MB "
            f"RSS, of which {mem['total_anon_mb']:,.0f} MB their own (the mapped pages are shared)"
        )
        res.goals.append(
            Goal("service", f"memory per worker at {n:,} creators (information)",
                 f"RSS {mem['worker_rss_max_mb']:,.0f} MB (own {mem['worker_anon_max_mb']:,.0f} MB, peak "
                 f"{mem['worker_hwm_max_mb']:,.0f} MB) × {mem['workers']} worker(s)", None)
        )  # fmt: skip
    if "peer_vs_service_1_client" in res.results:
        ratio = res.results["peer_vs_service_1_client"]
        console.print(
            f"peer latency / service latency at 1 client: p50 {ratio['p50']:.2f}×, p95 {ratio['p95']:.2f}×, "
            f"p99 {ratio['p99']:.2f}×"
        )
    # The goal, "p99 ≤ 50 ms and ≥ 100 req/s at 16 concurrent clients", is judged on the open-loop level: 100
    # requests arriving per second over 16 clients. A closed loop of 16 clients with no pause between requests
    # cannot show it: with 16 requests always in flight, p99 ≤ 50 ms would need ≥ 320 answers per second (Little's
    # law), more than the stated rate; those levels are reported as the service's capacity.
    at_goal_size = n >= 100_000
    suffix = "" if at_goal_size else f" (ran {n:,}; target is for 100,000)"
    for lv in levels:
        if lv["mode"] != "open" or lv["concurrency"] != GOAL_CONCURRENCY:
            continue
        p99, rps, target = lv["latency_ms"]["p99"], lv["rps"], lv["target_rps"] or 0.0
        bound, briefs = (NOVEL_P99_MS, "novel") if lv["briefs"] == "novel" else (GOAL_P99_MS, "repeat")
        at_goal_rate = target >= (NOVEL_RPS if briefs == "novel" else GOAL_RPS)
        ok = p99 <= bound and rps >= target * 0.98 and lv["errors"] == 0
        res.goals.append(
            Goal("service", f"p99 ≤ {bound:.0f} ms at {target:g} req/s offered, {GOAL_CONCURRENCY} clients, "
                 f"{briefs} briefs", f"p99 {p99:.1f} ms at {rps:.1f} req/s, "
                 f"{fmt(lv['server_cpu_ms_per_request'], '.1f')} ms server CPU per request{suffix}",
                 ok if at_goal_size and at_goal_rate else None)
        )  # fmt: skip
    # CPU per request of novel against repeat briefs, both from the closed loop of 16 (the same load, the machine
    # kept busy): what a new text costs on top of a request whose texts are remembered.
    by_kind = {
        lv["briefs"]: lv["server_cpu_ms_per_request"]
        for lv in levels
        if lv["mode"] == "closed" and lv["concurrency"] == GOAL_CONCURRENCY
    }
    if by_kind.get("repeat") and by_kind.get("novel"):
        ratio = by_kind["novel"] / by_kind["repeat"]
        res.results["novel_vs_repeat_cpu"] = {"repeat_ms": by_kind["repeat"], "novel_ms": by_kind["novel"],
                                              "ratio": ratio}  # fmt: skip
        res.goals.append(
            Goal("service", f"server CPU per novel brief ≤ {NOVEL_CPU_RATIO:g} × per repeat brief (closed loop of "
                 f"{GOAL_CONCURRENCY})", f"{by_kind['novel']:.1f} / {by_kind['repeat']:.1f} ms = {ratio:.2f}×{suffix}",
                 ratio <= NOVEL_CPU_RATIO if at_goal_size else None)
        )  # fmt: skip
    closed = next((lv for lv in levels if lv["mode"] == "closed" and lv["concurrency"] == GOAL_CONCURRENCY), None)
    if closed is not None:
        res.goals.append(
            Goal("service", f"capacity, closed loop of {GOAL_CONCURRENCY} clients (information)",
                 f"{closed['rps']:.1f} req/s, p99 {closed['latency_ms']['p99']:.1f} ms", None)
        )  # fmt: skip
    res.goals.append(
        Goal("service", "no errors under load", f"{sum(lv['errors'] for lv in levels)} errors",
             all(lv["errors"] == 0 for lv in levels))
    )  # fmt: skip
    return res


if __name__ == "__main__":
    raise SystemExit(main())
