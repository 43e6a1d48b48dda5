"""Prometheus metrics through ``prometheus_client``: request counts and latency histograms by route template, model
reload outcomes, the model serving, the recommendation log's record counts, and the standard process (CPU, memory,
file descriptors, start time), garbage collector and Python metrics.

Two modes, chosen by the environment when a :class:`Metrics` is made:

- One process (``serve --workers 1``, tests): each :class:`Metrics` has its own registry, so several apps in one
  process do not mix, with ``prometheus_client``'s process, GC and platform collectors.
- Several processes (``serve --workers N``): ``prometheus_client``'s multiprocess mode. The serve command creates a
  directory per run (inside its control directory, removed when the service stops) and names it in
  ``PROMETHEUS_MULTIPROC_DIR`` before the workers start (:func:`use_multiprocess_dir`). Every process (the front
  and each worker) writes its counters, histograms and gauges to its own memory-mapped files there, and
  ``/metrics`` on any worker reads them all: counters and histograms add up over the processes (those of a worker
  that stopped are kept, as a Prometheus counter must), the model info gauge shows every model some live worker
  serves. The standard process and GC metrics cannot be collected across processes, so each process copies its
  own into per-process gauges every sync interval (:class:`ProcessMirror`); ``/metrics`` shows them with a
  ``pid`` label and a ``process`` label (``front`` or ``worker``), for the processes alive. The front reports the
  processes that exit (``mark_process_dead``).
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    GCCollector,
    Histogram,
    PlatformCollector,
    ProcessCollector,
    disable_created_metrics,
    generate_latest,
    values,
)
from prometheus_client.exposition import CONTENT_TYPE_PLAIN_0_0_4
from prometheus_client.metrics_core import Metric
from prometheus_client.multiprocess import MultiProcessCollector, mark_process_dead
from prometheus_client.registry import Collector
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from audiencefit.serving.dispatch import FORWARDED

LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
CONTENT_TYPE = CONTENT_TYPE_PLAIN_0_0_4  # the text format generate_latest writes
CLIENT_CLOSED = 499  # the status recorded for a request dropped without an answer
MULTIPROCESS_ENV = "PROMETHEUS_MULTIPROC_DIR"
UNMATCHED = "unmatched"  # the route label of a request that matches no route (bounded label values)
LOG_OUTCOMES = ("written", "dropped", "failed")
MODEL_INFO = "audiencefit_model_info"


def use_multiprocess_dir(path: Path) -> None:
    """Put this process, and the processes it starts afterwards, in ``prometheus_client``'s multiprocess mode with
    its files in ``path`` (an existing directory, empty: one per service run).

    ``prometheus_client`` reads the variable when it is first imported; if it was imported before (by anything),
    its value class is switched here. Call before any :class:`Metrics` is made in this process."""
    if not path.is_dir():
        raise ValueError(f"metrics directory {path}: not a directory")
    os.environ[MULTIPROCESS_ENV] = str(path)
    if not getattr(values.ValueClass, "_multiprocess", False):
        values.ValueClass = values.get_value_class()  # type: ignore[no-untyped-call]


def multiprocess_dir() -> Path | None:
    """The multiprocess directory this process writes to (None: one process, its own registry)."""
    value = os.environ.get(MULTIPROCESS_ENV)
    if not value:
        return None
    path = Path(value)
    if not path.is_dir():
        raise ValueError(f"{MULTIPROCESS_ENV}={value}: not a directory (the metrics of several processes go there)")
    if not getattr(values.ValueClass, "_multiprocess", False):
        values.ValueClass = values.get_value_class()  # type: ignore[no-untyped-call]
    return path


def forget_process(pid: int, path: Path | None = None) -> None:
    """Drop the per-process gauges of a process that exited (its counters stay in the sums)."""
    path = path or multiprocess_dir()
    if path is not None:
        mark_process_dead(pid, str(path))  # type: ignore[no-untyped-call]


class Metrics:
    """The metrics of one app (or of the front of several workers, ``role="front"``)."""

    def __init__(self, role: str = "worker") -> None:
        disable_created_metrics()  # type: ignore[no-untyped-call]
        # no *_created series: they double the exposition and nobody graphs them
        self.multiprocess_dir = multiprocess_dir()
        # In multiprocess mode the metrics register nowhere: their values live in the files, which the collector
        # of /metrics reads (registering them too would count this process twice).
        own = None if self.multiprocess_dir is not None else CollectorRegistry()
        self._own = own
        self.requests = Counter(
            "audiencefit_http_requests",
            "HTTP requests by method, route template and status.",
            ("method", "route", "status"),
            registry=own,
        )
        self.latency = Histogram(
            "audiencefit_http_request_duration_seconds",
            "Request latency by method and route template (seconds, in the process that answered).",
            ("method", "route"),
            buckets=LATENCY_BUCKETS,
            registry=own,
        )
        self.reloads = Counter(
            "audiencefit_model_reloads", "Model reload attempts by outcome.", ("outcome",), registry=own
        )
        self.model_info = Gauge(
            MODEL_INFO,
            "The model bundle and feature set serving (1; a reload that has reached only some workers shows two).",
            ("bundle_id", "feature_set_id"),
            multiprocess_mode="livemax",
            registry=own,
        )
        self._children: dict[tuple[str, str, int], tuple[Counter, Histogram]] = {}
        self._model: tuple[str, str] | None = None
        self._lock = threading.Lock()
        self._log_counts: Callable[[], dict[str, int]] | None = None
        self._log_seen: dict[str, int] = {}
        self._log_records: Counter | None = None
        self._log_queued: Gauge | None = None
        if self.multiprocess_dir is not None:
            self.registry = CollectorRegistry()
            self.registry.register(_ServiceCollector(self.multiprocess_dir))
            self.mirror: ProcessMirror | None = ProcessMirror(role)
        else:
            assert own is not None
            self.registry = own
            ProcessCollector(registry=own)
            GCCollector(registry=own)
            self.mirror = None
        PlatformCollector(registry=self.registry)

    def observe_request(self, method: str, route: str, status: int, seconds: float) -> None:
        key = (method, route, status)
        children = self._children.get(key)
        if children is None:  # label look-ups cost more than the update itself: once per label set
            children = self.requests.labels(method, route, str(status)), self.latency.labels(method, route)
            self._children[key] = children
        children[0].inc()
        children[1].observe(seconds)

    def observe_reload(self, outcome: str) -> None:
        self.reloads.labels(outcome).inc()

    def set_model(self, bundle_id: str, source: str, feature_set_id: str) -> None:
        """The model now serving in this process (``source`` is not exported: /metrics needs no key, and where a
        bundle was loaded from is what an admin sent to /admin/reload)."""
        del source
        with self._lock:
            new = (bundle_id, feature_set_id)
            if self._model == new:
                return
            if self._model is not None:
                # Multiprocess gauges cannot be removed: 0 marks the old one, and /metrics leaves zeros out.
                self.model_info.labels(*self._model).set(0)
                if self.multiprocess_dir is None:
                    self.model_info.remove(*self._model)
            self.model_info.labels(*new).set(1)
            self._model = new

    def set_log_counts(self, counts: Callable[[], dict[str, int]]) -> None:
        """Where the recommendation log's counts come from (``RecommendationLog.counts``). The metrics are made
        once per :class:`Metrics`: an app started again (a second lifespan, as test clients do) only re-points the
        counts, instead of registering the same series twice."""
        if self._log_records is None or self._log_queued is None:
            self._log_records = Counter(
                "audiencefit_recommendation_log_records",
                "Recommendation log records by outcome (written, dropped: queue full, failed: database error).",
                ("outcome",),
                registry=self._own,
            )
            self._log_queued = Gauge(
                "audiencefit_recommendation_log_queued",
                "Recommendation log records waiting to be written.",
                multiprocess_mode="livesum",
                registry=self._own,
            )
            for outcome in LOG_OUTCOMES:
                self._log_records.labels(outcome)
        with self._lock:  # a new log counts from 0: its counts add to the counter from here on
            self._log_counts = counts
            self._log_seen = {}
        self.refresh()

    def refresh(self) -> None:
        """Bring what is read rather than counted up to date: the recommendation log's counts and, in
        multiprocess mode, this process's copy of its process and GC metrics (at each scrape, and every sync
        interval in a worker)."""
        with self._lock:
            if self._log_counts is not None and self._log_records is not None and self._log_queued is not None:
                counts = self._log_counts()
                for outcome in LOG_OUTCOMES:
                    delta = int(counts.get(outcome, 0)) - self._log_seen.get(outcome, 0)
                    if delta > 0:
                        self._log_records.labels(outcome).inc(delta)
                        self._log_seen[outcome] = int(counts.get(outcome, 0))
                self._log_queued.set(int(counts.get("queued", 0)))
            if self.mirror is not None:
                self.mirror.update()

    def render(self) -> bytes:
        """The exposition text (of every process of the service, in multiprocess mode)."""
        self.refresh()
        return generate_latest(self.registry)


class ProcessMirror:
    """Copies this process's standard process and GC metrics into multiprocess gauges (``liveall``: one series per
    live process, labelled ``pid`` by ``prometheus_client`` and ``process`` by role), so that ``/metrics`` on any
    worker shows every process. The collectors' metric names and help are kept; :class:`_ServiceCollector` gives
    the counters back their type."""

    def __init__(self, role: str) -> None:
        self.role = role
        self._source = CollectorRegistry()
        ProcessCollector(registry=self._source)
        GCCollector(registry=self._source)
        self._gauges: dict[str, Gauge] = {}
        self._lock = threading.Lock()

    def update(self) -> None:
        with self._lock:
            for family in self._source.collect():
                for sample in family.samples:
                    gauge = self._gauges.get(sample.name)
                    if gauge is None:
                        gauge = Gauge(
                            sample.name,
                            family.documentation,
                            ("process", *sample.labels),
                            multiprocess_mode="liveall",
                            registry=None,
                        )
                        self._gauges[sample.name] = gauge
                    gauge.labels(self.role, *sample.labels.values()).set(sample.value)


# sample name → (family name, type) of what ProcessMirror copies (the same in every process: standard collectors)
_MIRROR_TYPES: dict[str, tuple[str, str]] = {
    "process_cpu_seconds_total": ("process_cpu_seconds", "counter"),
    "python_gc_objects_collected_total": ("python_gc_objects_collected", "counter"),
    "python_gc_objects_uncollectable_total": ("python_gc_objects_uncollectable", "counter"),
    "python_gc_collections_total": ("python_gc_collections", "counter"),
}


class _ServiceCollector(Collector):
    """The multiprocess files as the exposition shows them: models no process serves any more (gauge 0) left out,
    the mirrored process counters typed as counters again."""

    def __init__(self, path: Path) -> None:
        self._files = MultiProcessCollector(None, str(path))  # type: ignore[no-untyped-call]

    def collect(self) -> Iterator[Metric]:
        for metric in self._files.collect():  # type: ignore[no-untyped-call]
            if metric.name == MODEL_INFO:
                metric.samples = [s for s in metric.samples if s.value > 0]
            elif metric.name in _MIRROR_TYPES and metric.type == "gauge":
                name, kind = _MIRROR_TYPES[metric.name]
                typed = Metric(name, metric.documentation, kind)
                typed.samples = list(metric.samples)
                yield typed
                continue
            yield metric


class MetricsMiddleware:
    """Counts and times every HTTP request, labelled by route template (not raw path: bounded label values).

    ``skip_forwarded``: the front of several workers counts only what it answers itself (refusals, its own
    ``/healthz``); a request it forwarded was counted by the worker that answered it."""

    def __init__(self, app: ASGIApp, metrics: Metrics, skip_forwarded: bool = False) -> None:
        self.app = app
        self.metrics = metrics
        self.skip_forwarded = skip_forwarded

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500  # an exception escaped: Starlette's error middleware answers 500

        answered = False

        async def send_wrapper(message: Message) -> None:
            nonlocal status, answered
            if message["type"] == "http.response.start":
                status = int(message["status"])
                answered = True
            await send(message)

        try:
            await self.app(scope, receive, send_wrapper)
            if not answered:  # dropped unanswered (the client went away mid-body): nginx's 499
                status = CLIENT_CLOSED
        finally:
            if not (self.skip_forwarded and scope.get(FORWARDED)):
                route = scope.get("route")
                template = str(getattr(route, "path", UNMATCHED))
                self.metrics.observe_request(scope["method"], template, status, time.perf_counter() - started)
