"""One error shape for every error the service answers: RFC 9457 problem details (``application/problem+json``).

Every 4xx and 5xx body — from a route, a dependency, FastAPI's request validation, the gate (401/403/404/405), the
body reader (400/408/413), the rate limiter (429), the front of ``serve --workers N`` (503) and the HTTP protocol
layer (408/431) — is a JSON object with:

- ``type``: a URI naming the kind of problem (``urn:audiencefit:problem:<slug>``, listed in ``PROBLEM_TYPES`` and
  docs/api.md); stable, for a client to switch on;
- ``title``: the kind of problem in words (the same for every problem of that type);
- ``status``: the HTTP status code, repeated;
- ``detail``: what went wrong with this request, in words;
- ``instance``: the request path the problem occurred on;
- ``errors``: for a 422, every refused value: its location (``loc``, e.g. ``["body", "segments", 0, "text"]``),
  a message and an error type (``audiencefit.serving.errors`` makes them JSON-safe);
- extension members where a problem carries more (``unknown_ids`` of a 404 from ``/v1/score``, the serving ids of a
  409 from ``/admin/reload``).

Pure builders here, no IO; ``send_problem`` writes one on a raw ASGI ``send`` for the middlewares that answer before
any route runs. Nothing here imports the app: the front process (``audiencefit.serving.dispatch``) imports it too.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

from starlette.exceptions import HTTPException
from starlette.responses import JSONResponse
from starlette.types import Send

PROBLEM_JSON = "application/problem+json"
TYPE_PREFIX = "urn:audiencefit:problem:"

# slug → title. A problem type outside this table is a programming error (``problem`` raises).
PROBLEM_TYPES: dict[str, str] = {
    "bad-request": "The request could not be read",
    "missing-api-key": "API key missing",
    "invalid-api-key": "API key not accepted",
    "forbidden": "Forbidden",
    "not-found": "No such resource",
    "unknown-creator": "Unknown creator",
    "method-not-allowed": "Method not allowed on this route",
    "request-timeout": "Request not received in time",
    "conflict": "The request conflicts with the service's state",
    "reload-failed": "Reload failed; the previous bundle and feature set keep serving",
    "body-too-large": "Request body too large",
    "headers-too-large": "Request line and headers too large",
    "unsupported-media-type": "Unsupported media type",
    "validation": "The request is invalid",
    "rate-limited": "Rate limit exceeded",
    "internal": "Internal server error",
    "unavailable": "Service unavailable",
}

# The type a bare status maps to, when the code raising it names none.
_STATUS_TYPES = {
    400: "bad-request",
    401: "missing-api-key",
    403: "forbidden",
    404: "not-found",
    405: "method-not-allowed",
    408: "request-timeout",
    409: "conflict",
    413: "body-too-large",
    415: "unsupported-media-type",
    422: "validation",
    429: "rate-limited",
    431: "headers-too-large",
    500: "internal",
    503: "unavailable",
}


def type_for(status: int) -> str:
    """The problem type slug of a status no code named (``bad-request`` / ``internal`` for the other 4xx / 5xx)."""
    return _STATUS_TYPES.get(status, "internal" if status >= 500 else "bad-request")


def problem(
    status: int,
    detail: str,
    *,
    kind: str | None = None,
    instance: str | None = None,
    errors: Sequence[Mapping[str, Any]] | None = None,
    **extensions: Any,
) -> dict[str, Any]:
    """A problem details object (see the module docstring). ``kind`` is a ``PROBLEM_TYPES`` slug (default: the
    status's); ``extensions`` are extra members, which may not reuse a standard member's name."""
    slug = kind or type_for(status)
    if slug not in PROBLEM_TYPES:
        raise ValueError(f"unknown problem type {slug!r}")
    clash = {"type", "title", "status", "detail", "instance", "errors"} & set(extensions)
    if clash:
        raise ValueError(f"problem extensions may not reuse the standard members {sorted(clash)}")
    body: dict[str, Any] = {
        "type": TYPE_PREFIX + slug,
        "title": PROBLEM_TYPES[slug],
        "status": status,
        "detail": detail,
    }
    if instance is not None:
        body["instance"] = instance
    if errors is not None:
        body["errors"] = [dict(e) for e in errors]
    body.update(extensions)
    return body


def problem_bytes(body: Mapping[str, Any]) -> bytes:
    """A problem serialised as strict JSON (no NaN tokens; non-ASCII kept as UTF-8)."""
    return json.dumps(body, ensure_ascii=False, allow_nan=False, separators=(",", ":")).encode("utf-8")


def problem_response(body: Mapping[str, Any], headers: Mapping[str, str] | None = None) -> JSONResponse:
    """A Starlette response carrying ``body`` (made by ``problem``) as ``application/problem+json``."""
    return JSONResponse(dict(body), status_code=int(body["status"]), headers=headers, media_type=PROBLEM_JSON)


async def send_problem(
    send: Send,
    status: int,
    detail: str,
    *,
    path: str | None = None,
    kind: str | None = None,
    headers: Sequence[tuple[bytes, bytes]] = (),
    **extensions: Any,
) -> None:
    """Answer a problem straight on an ASGI ``send`` (the middlewares that answer before any route runs)."""
    payload = problem_bytes(problem(status, detail, kind=kind, instance=path, **extensions))
    start = [
        (b"content-type", PROBLEM_JSON.encode("latin-1")),
        (b"content-length", str(len(payload)).encode("latin-1")),
        *headers,
    ]
    await send({"type": "http.response.start", "status": status, "headers": start})
    await send({"type": "http.response.body", "body": payload})


class ProblemError(HTTPException):
    """An ``HTTPException`` that names its problem type and carries extension members (answered by the app's
    handler, ``audiencefit.serving.errors.http_problem``)."""

    def __init__(
        self,
        status: int,
        detail: str,
        *,
        kind: str | None = None,
        headers: Mapping[str, str] | None = None,
        **extensions: Any,
    ) -> None:
        super().__init__(status, detail, headers=headers)
        self.kind = kind or type_for(status)
        if self.kind not in PROBLEM_TYPES:
            raise ValueError(f"unknown problem type {self.kind!r}")
        self.extensions = extensions
