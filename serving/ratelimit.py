"""Per-key rate limits, enforced before a request's body is read: ``429`` with ``Retry-After``.

Where: around the single-process app (inside its metrics, so 429s are counted) and around the front process of
``serve --workers N`` (``audiencefit.serving.dispatch.front_app``), so that a key has one budget for the whole service,
not one per worker; the workers behind a front do not limit again.

Who is counted: a request with a valid API or admin key (matched in constant time, as ``audiencefit.serving.security``
does) counts against a hash of that key; any other request (no key, a wrong key, the keyless ``/healthz``, ``/readyz``,
``/metrics``) counts against its client address. Guessing keys or flooding the probes never spends a real key's
budget.

What: every request costs one from its identity's budget (``rate_limit_per_second``/``rate_limit_burst``, or the
``rate_limit_address_*`` pair for an address); ``POST /v1/plans``, the costliest route, also costs one from a
smaller plans budget (``rate_limit_plans_*``). A budget is a moving window (``limits``' MovingWindowRateLimiter, in
this process's memory): at most ``burst`` requests in any ``burst / rate`` seconds (rounded up to whole seconds), so
a client may send ``burst`` requests at once and no more than ``rate`` per second over a window. A refused request
costs nothing. ``Retry-After`` is the whole seconds until the oldest request in the full window leaves it.
"""

from __future__ import annotations

import hashlib
import math
import time
from dataclasses import dataclass
from functools import cached_property

from limits import RateLimitItem, RateLimitItemPerSecond
from limits.storage import MemoryStorage
from limits.strategies import MovingWindowRateLimiter
from starlette.types import ASGIApp, Receive, Scope, Send

from audiencefit.serving.gate import header
from audiencefit.serving.problems import send_problem
from audiencefit.serving.security import API_KEY_HEADER, key_matches
from audiencefit.settings import Settings

PLANS_PATH = "/v1/plans"
_HEADER = API_KEY_HEADER.lower().encode("latin-1")


@dataclass(frozen=True)
class Budget:
    """``burst`` requests in any window of ``burst / per_second`` seconds (rounded up), for one identity."""

    name: str
    per_second: float
    burst: int

    @property
    def window_s(self) -> int:
        return max(1, math.ceil(self.burst / self.per_second))

    @cached_property
    def item(self) -> RateLimitItem:
        return RateLimitItemPerSecond(self.burst, self.window_s, namespace=self.name)

    def describe(self) -> str:
        return f"{self.burst} requests per {self.window_s} s"


@dataclass(frozen=True)
class RateLimits:
    """The budgets and the keys that identify a client (API and admin keys)."""

    per_key: Budget
    plans: Budget
    per_address: Budget
    keys: tuple[str, ...]

    @classmethod
    def from_settings(cls, settings: Settings) -> RateLimits | None:
        """The limits the settings ask for; None when rate limiting is off."""
        if not settings.rate_limit_enabled:
            return None
        return cls(
            per_key=Budget("key", settings.rate_limit_per_second, settings.rate_limit_burst),
            plans=Budget("plans", settings.rate_limit_plans_per_second, settings.rate_limit_plans_burst),
            per_address=Budget("address", settings.rate_limit_address_per_second, settings.rate_limit_address_burst),
            keys=(*settings.api_key_values(), *settings.admin_key_values()),
        )


class RateLimitMiddleware:
    """ASGI middleware: count the request against its identity's budgets, or answer 429 without reading it."""

    def __init__(self, app: ASGIApp, limits: RateLimits) -> None:
        self.app = app
        self.limits = limits
        self._limiter = MovingWindowRateLimiter(MemoryStorage())

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        who, budget = self._identity(scope)
        budgets = [budget]
        if scope.get("path") == PLANS_PATH and scope.get("method") == "POST":
            budgets.append(self.limits.plans)
        for b in budgets:  # all checked before any is spent: a refused request costs nothing
            if not self._limiter.test(b.item, who):
                per = "API key" if who.startswith("key:") else "client address"
                await _too_many(send, self._retry_after(b, who), b, per, scope.get("path"))
                return
        for b in budgets:
            self._limiter.hit(b.item, who)
        await self.app(scope, receive, send)

    def _identity(self, scope: Scope) -> tuple[str, Budget]:
        """(identity, its budget): a hash of a valid key, else the client's address."""
        key = header(scope, _HEADER)  # the first X-API-Key header: the one the gate and the routes check
        if key and key_matches(key, self.limits.keys):
            return "key:" + hashlib.sha256(key.encode("latin-1")).hexdigest(), self.limits.per_key
        client = scope.get("client")
        return f"address:{client[0] if client else 'unknown'}", self.limits.per_address

    def _retry_after(self, budget: Budget, who: str) -> int:
        reset = self._limiter.get_window_stats(budget.item, who).reset_time
        return max(1, math.ceil(reset - time.time()))


async def _too_many(send: Send, retry_after: int, budget: Budget, per: str, path: str | None) -> None:
    what = "POST /v1/plans requests" if budget.name == "plans" else "requests"
    detail = f"rate limit exceeded: at most {budget.describe().replace('requests', what)} per {per}"
    await send_problem(
        send,
        429,
        f"{detail}; retry after {retry_after} s",
        path=path,
        headers=[(b"retry-after", str(retry_after).encode())],
        retry_after=retry_after,
    )


def rate_limited(app: ASGIApp, settings: Settings) -> ASGIApp:
    """``app`` behind the rate limits the settings ask for (``app`` itself when they are off)."""
    limits = RateLimits.from_settings(settings)
    return app if limits is None else RateLimitMiddleware(app, limits)
