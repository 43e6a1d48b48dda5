"""Prometheus metrics in the text exposition format (version 0.0.4).

``prometheus_client`` is not installed in this environment, so this is a minimal, thread-safe implementation of
the things the service exports: request counts, request latency histograms, info about the model serving (plus
reload outcomes) and the recommendation log's record counts. One :class:`Metrics` per app, so several apps in one
process do not mix; with several worker processes (``serving.workers``) each worker keeps its own and ``/metrics``
sums their snapshots.
"""

from __future__ import annotations

import math
import threading
import time
from collections import defaultdict
from collections.abc import Callable, Sequence
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
CLIENT_CLOSED = 499  # the status recorded for a request dropped without an answer


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _labels(names: tuple[str, ...], values: tuple[str, ...]) -> str:
    if not names:
        return ""
    return "{" + ",".join(f'{n}="{_escape(v)}"' for n, v in zip(names, values, strict=True)) + "}"


def _fmt(x: float) -> str:
    if math.isinf(x):
        return "+Inf" if x > 0 else "-Inf"
    return str(int(x)) if float(x).is_integer() else repr(float(x))


class Metrics:
    """Counters, latency histograms and the model info gauge of one app."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._requests: dict[tuple[str, str, str], int] = defaultdict(int)
        self._latency: dict[tuple[str, str], list[float]] = {}  # (method, route) → [bucket counts..., sum, count]
        self._reloads: dict[str, int] = defaultdict(int)
        self._model: tuple[str, str, str] | None = None
        self._log_counts: Callable[[], dict[str, int]] | None = None

    def observe_request(self, method: str, route: str, status: int, seconds: float) -> None:
        with self._lock:
            self._requests[(method, route, str(status))] += 1
            hist = self._latency.setdefault((method, route), [0.0] * (len(LATENCY_BUCKETS) + 2))
            for i, bound in enumerate(LATENCY_BUCKETS):
                if seconds <= bound:
                    hist[i] += 1
            hist[-2] += seconds
            hist[-1] += 1

    def observe_reload(self, outcome: str) -> None:
        with self._lock:
            self._reloads[outcome] += 1

    def set_model(self, bundle_id: str, source: str, feature_set_id: str) -> None:
        with self._lock:
            self._model = (bundle_id, source, feature_set_id)

    def set_log_counts(self, counts: Callable[[], dict[str, int]]) -> None:
        """Where the recommendation log's counts come from (``RecommendationLog.counts``)."""
        self._log_counts = counts

    def snapshot(self) -> dict[str, Any]:
        """This process's metrics as plain JSON-able data (what :func:`render` merges across worker processes)."""
        with self._lock:
            return {
                "requests": [[*key, n] for key, n in sorted(self._requests.items())],
                "latency": [[*key, list(hist)] for key, hist in sorted(self._latency.items())],
                "reloads": [[outcome, n] for outcome, n in sorted(self._reloads.items())],
                "model": list(self._model) if self._model is not None else None,
                "recommendation_log": self._log_counts() if self._log_counts is not None else None,
            }

    def render(self, others: Sequence[dict[str, Any]] = ()) -> str:
        """The exposition text: this process's metrics plus ``others`` (other workers' snapshots), summed."""
        return render([self.snapshot(), *others])


def _family(name: str, help_text: str, kind: str) -> list[str]:
    """The HELP and TYPE lines that open a metric family."""
    return [f"# HELP {name} {help_text}", f"# TYPE {name} {kind}"]


def render(snapshots: Sequence[dict[str, Any]]) -> str:
    """Exposition text for the sum of several processes' snapshots (counters and histograms add up; every distinct
    model serving is listed, so a reload that has reached only some workers shows as two models)."""
    requests: dict[tuple[str, ...], int] = defaultdict(int)
    latency: dict[tuple[str, ...], list[float]] = {}
    reloads: dict[str, int] = defaultdict(int)
    models: set[tuple[str, ...]] = set()
    reclog: dict[str, int] = {}
    for snap in snapshots:
        for outcome, n in (snap.get("recommendation_log") or {}).items():
            reclog[outcome] = reclog.get(outcome, 0) + int(n)
        for *key, n in snap.get("requests", []):
            requests[tuple(key)] += int(n)
        for method, route, hist in snap.get("latency", []):
            into = latency.setdefault((method, route), [0.0] * (len(LATENCY_BUCKETS) + 2))
            for i, value in enumerate(hist):
                into[i] += value
        for outcome, n in snap.get("reloads", []):
            reloads[outcome] += int(n)
        if snap.get("model"):
            models.add(tuple(snap["model"]))
    lines = _family("audiencefit_http_requests_total", "HTTP requests by method, route and status.", "counter")
    for key, n in sorted(requests.items()):
        lines.append(f"audiencefit_http_requests_total{_labels(('method', 'route', 'status'), key)} {n}")
    name = "audiencefit_http_request_duration_seconds"
    lines += _family(name, "Request latency by method and route.", "histogram")
    for (method, route), hist in sorted(latency.items()):
        cumulative = (*hist[: len(LATENCY_BUCKETS)], hist[-1])  # buckets are stored cumulative
        for bound, count in zip((*LATENCY_BUCKETS, math.inf), cumulative, strict=True):
            lab = _labels(("method", "route", "le"), (method, route, _fmt(bound)))
            lines.append(f"{name}_bucket{lab} {_fmt(count)}")
        lab = _labels(("method", "route"), (method, route))
        lines.append(f"{name}_sum{lab} {hist[-2]!r}")
        lines.append(f"{name}_count{lab} {_fmt(hist[-1])}")
    lines += _family("audiencefit_model_reloads_total", "Model reload attempts by outcome.", "counter")
    for outcome, n in sorted(reloads.items()):
        lines.append(f"audiencefit_model_reloads_total{_labels(('outcome',), (outcome,))} {n}")
    if reclog:
        name = "audiencefit_recommendation_log_records_total"
        what = "Recommendation log records by outcome (written, dropped: queue full, failed: database error)."
        lines += _family(name, what, "counter")
        for outcome in ("written", "dropped", "failed"):
            lines.append(f"{name}{_labels(('outcome',), (outcome,))} {reclog.get(outcome, 0)}")
        name = "audiencefit_recommendation_log_queued"
        lines += _family(name, "Recommendation log records waiting to be written.", "gauge")
        lines.append(f"{name} {reclog.get('queued', 0)}")
    lines += _family("audiencefit_model_info", "The model bundle serving (value is always 1).", "gauge")
    # Ids only: /metrics needs no key, and where the bundle was loaded from (a path, a registry URI) is what an
    # admin sent to /admin/reload (GET /v1/model, with a key, says it).
    for bundle_id, feature_set_id in sorted({(m[0], m[-1]) for m in models}):
        lab = _labels(("bundle_id", "feature_set_id"), (bundle_id, feature_set_id))
        lines.append(f"audiencefit_model_info{lab} 1")
    return "\n".join(lines) + "\n"


class MetricsMiddleware:
    """Counts and times every HTTP request, labelled by route template (not raw path: bounded label values)."""

    def __init__(self, app: ASGIApp, metrics: Metrics) -> None:
        self.app = app
        self.metrics = metrics

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
            route = scope.get("route")
            template = str(getattr(route, "path", "unmatched"))
            self.metrics.observe_request(scope["method"], template, status, time.perf_counter() - started)
