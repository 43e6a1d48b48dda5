"""What is decided about a request before a byte of its body is read: its key, its route and its method.

``RequestGate`` runs in front of the body reader (``audiencefit.serving.limits``) in the single-process app and in the
front of ``serve --workers N``, so that a client without a valid key, or asking for a route or method that does not
exist, is answered at once and never makes the server buffer a body:

1. ``/v1/...`` needs an API key and ``/admin/...`` an admin key in ``X-API-Key`` (missing: 401, wrong: 403; the
   same answers as the routes' own dependencies in ``audiencefit.serving.security``, which still run behind the gate).
   The whole prefix is guarded, known route or not, so a client without a key learns nothing about what is there.
2. A path no route matches: 404. A route asked with a method it does not take (``TRACE``, ``DELETE /healthz``,
   ``HEAD``, ``OPTIONS``): 405 with an ``Allow`` header listing the methods it takes.
3. A ``POST`` whose ``Content-Type`` is not JSON (``application/json`` or ``application/*+json``): 415. Every body
   the API takes is JSON; without this, curl's default form type was read as a JSON text and refused with a 422
   that said nothing about the header. No ``Content-Type`` at all is read as JSON.

The routes and their methods are read from the app's own route table (``route_rules``), so the gate and the app
cannot disagree about what exists.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from starlette.routing import BaseRoute
from starlette.types import ASGIApp, Receive, Scope, Send

from audiencefit.serving.problems import send_problem
from audiencefit.serving.security import API_KEY_HEADER, key_matches
from audiencefit.settings import Settings

_KEY_HEADER = API_KEY_HEADER.lower().encode("latin-1")


@dataclass(frozen=True)
class RouteRule:
    """One route: the paths it matches and the methods it takes (None: any method)."""

    regex: re.Pattern[str]
    methods: frozenset[str] | None
    route: BaseRoute


def route_rules(routes: Iterable[BaseRoute]) -> list[RouteRule]:
    """The gate's view of an app's routes (FastAPI/Starlette routes with a ``path_regex``)."""
    rules = []
    for route in routes:
        regex = getattr(route, "path_regex", None)
        if regex is None:
            continue
        methods = getattr(route, "methods", None)
        rules.append(RouteRule(regex, frozenset(methods) if methods else None, route))
    return rules


def _under(path: str, prefix: str) -> bool:
    return path == prefix or path.startswith(prefix + "/")


def allowed_methods(rules: Sequence[RouteRule], path: str) -> tuple[frozenset[str] | None, BaseRoute | None]:
    """The methods some route takes at ``path`` (an empty set: every method; None: no route matches), and the
    first route that matches."""
    found: set[str] = set()
    first: BaseRoute | None = None
    for rule in rules:
        if rule.regex.match(path):
            if rule.methods is None:
                return frozenset(), rule.route
            first = first or rule.route
            found |= rule.methods
    return (frozenset(found), first) if first is not None else (None, None)


class RequestGate:
    """ASGI middleware: key, route and method checks before the body is read (see the module docstring).

    ``routes`` is read on the first request (an app's route table is complete by then)."""

    def __init__(self, app: ASGIApp, settings: Settings, routes: Sequence[BaseRoute] | Callable[[], Any]) -> None:
        self.app = app
        self.settings = settings
        self._routes = routes
        self._rules: list[RouteRule] | None = None

    def _route_rules(self) -> list[RouteRule]:
        if self._rules is None:
            routes = self._routes() if callable(self._routes) else self._routes
            self._rules = route_rules(routes)
        return self._rules

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path: str = scope["path"]
        methods, route = allowed_methods(self._route_rules(), path)
        if route is not None:
            scope["route"] = route  # metrics label what the gate answers by its route, as the router would
        refusal = self._key_refusal(path, scope)
        if refusal is not None:
            await refusal(send)
            return
        if methods is None:
            await send_problem(send, 404, f"no route matches {path}", path=path)
            return
        if methods and scope["method"] not in methods:
            allow = ", ".join(sorted(methods))
            detail = f"{scope['method']} is not allowed on {path}; allowed: {allow}"
            await send_problem(send, 405, detail, path=path, headers=[(b"allow", allow.encode("latin-1"))])
            return
        if scope["method"] == "POST":
            content_type = header(scope, b"content-type")
            if content_type is not None and not is_json(content_type):
                detail = f"the body must be JSON (Content-Type: application/json), not {content_type[:100]!r}"
                await send_problem(send, 415, detail, path=path, kind="unsupported-media-type")
                return
        await self.app(scope, receive, send)

    def _key_refusal(self, path: str, scope: Scope) -> Callable[[Send], Any] | None:
        if _under(path, "/v1"):
            accepted = self.settings.api_key_values()
        elif _under(path, "/admin"):
            accepted = self.settings.admin_key_values()
        else:
            return None
        key = header(scope, _KEY_HEADER)
        if not key:
            return lambda send: send_problem(
                send,
                401,
                f"missing {API_KEY_HEADER} header",
                path=path,
                kind="missing-api-key",
                headers=[(b"www-authenticate", b"APIKey")],
            )
        if not accepted or not key_matches(key, accepted):
            return lambda send: send_problem(send, 403, "invalid API key", path=path, kind="invalid-api-key")
        return None


def is_json(content_type: str) -> bool:
    """``application/json`` or ``application/<anything>+json``, with any parameters (as FastAPI reads a body)."""
    media = content_type.split(";", 1)[0].strip().lower()
    main, _, sub = media.partition("/")
    return main == "application" and (sub == "json" or sub.endswith("+json"))


def header(scope: Scope, name: bytes) -> str | None:
    """The first value of header ``name`` (lower case), as Starlette's ``Headers.get`` reads it."""
    for key, value in scope.get("headers", []):
        if key == name:
            return bytes(value).decode("latin-1")
    return None


async def respond(
    send: Send, status: int, payload: dict[str, Any], headers: Sequence[tuple[bytes, bytes]] = ()
) -> None:
    """A small JSON answer that is not an error (``/healthz``, a probe's ``/readyz``) sent straight from the ASGI
    layer; errors go through ``audiencefit.serving.problems.send_problem``."""
    body = json.dumps(payload).encode()
    start = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()), *headers]
    await send({"type": "http.response.start", "status": status, "headers": start})
    await send({"type": "http.response.body", "body": body})
