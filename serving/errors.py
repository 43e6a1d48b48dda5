"""Error answers as problem details (``audiencefit.serving.problems``), and 422 bodies that are always valid JSON,
whatever the request held.

FastAPI's own handler echoes each refused value (``input``) and the error's context (``ctx``) as they came. A value
that JSON cannot carry (``NaN``, ``Infinity``, a lone surrogate such as ``"\\ud800"``) then makes the error response
itself fail, a 500; and a huge body missing one field was echoed whole. Here every error keeps its type, location
and message, made JSON-safe: non-finite numbers become the strings ``"NaN"``, ``"Infinity"``, ``"-Infinity"``, text
that is not valid Unicode is shown with backslash escapes, long text is cut, and an ``input`` or ``ctx`` too large to
echo usefully is left out.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from typing import Any

from fastapi import Request
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import Response

from audiencefit.serving.problems import ProblemError, problem, problem_response

MAX_ECHO = 200  # characters of a refused value echoed in a 422 (serialised); larger inputs are left out
MAX_MESSAGE = 4_000
MAX_LOC_PART = 100
MAX_NODES = 50  # values in a refused list or object echoed (beyond: the input is left out)
MAX_ERRORS = 50  # errors listed in one 422


class _TooLargeError(Exception):
    pass


def safe_text(text: str, limit: int) -> str:
    """``text`` as valid Unicode (lone surrogates as ``\\udXXX`` escapes), cut to ``limit`` characters."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        text = text.encode("utf-8", "backslashreplace").decode("utf-8")
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _number(value: float) -> float | str:
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "Infinity" if value > 0 else "-Infinity"
    return value


def _safe(value: Any, budget: list[int], depth: int = 0) -> Any:
    """A JSON-safe copy of a small value; raises ``_TooLargeError`` past ``MAX_NODES`` values or 20 levels."""
    budget[0] -= 1
    if budget[0] < 0 or depth > 20:
        raise _TooLargeError
    if value is None or isinstance(value, bool):
        return value
    if isinstance(value, int):
        return value if abs(value) < 10**18 else str(value)[:MAX_ECHO]
    if isinstance(value, float):
        return _number(value)
    if isinstance(value, str):
        return safe_text(value, MAX_ECHO)
    if isinstance(value, dict):
        return {safe_text(str(k), MAX_LOC_PART): _safe(v, budget, depth + 1) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_safe(v, budget, depth + 1) for v in value]
    return safe_text(str(value), MAX_ECHO)  # e.g. the exception behind a value_error in ctx


def _echo(value: Any) -> tuple[bool, Any]:
    """(True, a JSON-safe copy) when ``value`` is small enough to echo, else (False, None)."""
    try:
        safe = _safe(value, [MAX_NODES])
        return len(json.dumps(safe, ensure_ascii=False, allow_nan=False)) <= MAX_ECHO, safe
    except (_TooLargeError, ValueError, TypeError, RecursionError):
        return False, None


def _loc_part(part: Any) -> str | int:
    if isinstance(part, int) and not isinstance(part, bool):
        return part
    return safe_text(str(part), MAX_LOC_PART)


def safe_errors(errors: Sequence[Any]) -> list[dict[str, Any]]:
    """Validation errors with JSON-safe ``loc``, ``msg``, ``input`` and ``ctx`` (see the module docstring)."""
    out: list[dict[str, Any]] = []
    for error in list(errors)[:MAX_ERRORS]:
        raw = error if isinstance(error, dict) else {"msg": str(error)}
        item: dict[str, Any] = {
            "type": safe_text(str(raw.get("type", "value_error")), MAX_LOC_PART),
            "loc": [_loc_part(p) for p in raw.get("loc", ())][:32],
            "msg": safe_text(str(raw.get("msg", "")), MAX_MESSAGE),
        }
        if "input" in raw:
            ok, value = _echo(raw["input"])
            if ok:
                item["input"] = value
        ctx = raw.get("ctx")
        if isinstance(ctx, dict):
            ok, value = _echo({k: v if isinstance(v, (int, float, str, bool)) else str(v) for k, v in ctx.items()})
            if ok:
                item["ctx"] = value
        out.append(item)
    return out


def _location(errors: Sequence[dict[str, Any]]) -> str:
    first = errors[0] if errors else {}
    where = ".".join(str(p) for p in first.get("loc", ()))
    more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
    return f"{where}: {first.get('msg', '')}{more}" if where else f"{first.get('msg', '')}{more}"


def validation_problem(request: Request, errors: Sequence[Any]) -> Response:
    """A 422 problem listing every refused value (JSON-safe); its ``detail`` names the first."""
    safe = safe_errors(errors)
    detail = safe_text(f"invalid request: {_location(safe)}", MAX_MESSAGE)
    return problem_response(problem(422, detail, kind="validation", instance=request.url.path, errors=safe))


async def validation_error(request: Request, exc: Exception) -> Response:
    """A request FastAPI refused (body, query, path or header): 422 with a JSON-safe list of what is wrong."""
    errors = exc.errors() if isinstance(exc, RequestValidationError) else [{"msg": str(exc)}]
    return validation_problem(request, errors)


async def http_problem(request: Request, exc: Exception) -> Response:
    """Every ``HTTPException`` (a route's 404, a dependency's 401/403/503, Starlette's own) as a problem.

    FastAPI answers a JSON body that is not valid UTF-8, nested deeper than Python's parser follows or holding an
    integer longer than it converts with a bare 400 ("There was an error parsing the body"); that is answered as a
    422 that says what is wrong, like any other invalid JSON."""
    if not isinstance(exc, StarletteHTTPException):
        raise exc
    cause = exc.__cause__
    if exc.status_code == 400 and isinstance(cause, UnicodeDecodeError):
        message = f"the body is not valid {cause.encoding.upper()}: byte {cause.start} cannot be decoded"
        return validation_problem(request, [{"type": "json_invalid", "loc": ["body", cause.start], "msg": message}])
    if exc.status_code == 400 and isinstance(cause, RecursionError | ValueError):
        # Python's JSON parser gives up on nesting deeper than its recursion limit and on integers of more than
        # 4,300 digits; no field of any request nests or counts that far.
        reason = "nested too deeply" if isinstance(cause, RecursionError) else "holds an integer with too many digits"
        message = f"the JSON body {reason} to be a request"
        return validation_problem(request, [{"type": "json_invalid", "loc": ["body"], "msg": message}])
    kind = exc.kind if isinstance(exc, ProblemError) else None
    extensions = exc.extensions if isinstance(exc, ProblemError) else {}
    detail = exc.detail if isinstance(exc.detail, str) else str(exc.detail)
    body = problem(exc.status_code, safe_text(detail, MAX_MESSAGE), kind=kind, instance=request.url.path, **extensions)
    return problem_response(body, exc.headers)
