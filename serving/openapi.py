"""The OpenAPI contract's shared parts: the declared error responses (problem details,
``audiencefit.serving.problems``), the schema generator that adds the problem schemas, and the API docs pages (Swagger
UI at ``/docs``, ReDoc at ``/redoc``) served from the ``fastapi-offline`` package's copy of their assets, so that they
work without internet access (FastAPI's own pages load them from a CDN)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request
from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html
from fastapi.openapi.utils import get_openapi
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles

from audiencefit.serving.problems import PROBLEM_JSON, problem
from audiencefit.serving.schemas import ProblemDetails, ReloadProblem, ValidationProblem

DOCS_URL = "/docs"
REDOC_URL = "/redoc"
ASSETS_URL = "/docs-assets"
REF = "#/components/schemas/"

_DESCRIPTIONS = {
    400: "The request could not be read (an invalid Content-Length, a body shorter than it says).",
    401: "No API key: send it in the X-API-Key header (an admin key for /admin routes).",
    403: "The API key is not accepted for this route.",
    404: "No such creator (unknown_ids lists every unknown id), or no such route.",
    408: "The request line, headers or body did not arrive in time; the connection is closed.",
    409: "The reload failed: nothing was swapped in and the previous bundle and feature set keep serving.",
    413: "The request body is larger than the service accepts (serve --max-body-bytes; default 1 MiB).",
    415: "The body is not sent as JSON: send Content-Type: application/json (or none).",
    422: "The request is invalid: errors lists every refused value with its location (loc) and a message.",
    429: "Rate limit exceeded (per API key, or per client address without one); retry after Retry-After seconds.",
    500: "An unexpected error (logged with its traceback; the answer carries none).",
    503: "The service is starting, or no model bundle is loaded (see /readyz); try again shortly.",
}
_EXAMPLES = {
    400: problem(400, "invalid Content-Length header: not one non-negative integer", instance="/v1/recommendations"),
    401: problem(401, "missing X-API-Key header", kind="missing-api-key", instance="/v1/recommendations"),
    403: problem(403, "invalid API key", kind="invalid-api-key", instance="/v1/recommendations"),
    404: problem(
        404,
        "unknown creator 'c999999'",
        kind="unknown-creator",
        instance="/v1/creators/c999999",
        unknown_ids=["c999999"],
    ),
    408: problem(408, "request body not received within 20 seconds", instance="/v1/recommendations"),
    409: problem(
        409,
        "bundle /srv/bundles/b7: bundle.json lists model.txt with sha256 9f2c…, the file has 41aa…",
        kind="reload-failed",
        instance="/admin/reload",
        ok=False,
        serving_bundle_id="acb1ede8bd907b04",
        previous_bundle_id="acb1ede8bd907b04",
        serving_feature_set_id="4f1c653c1548c3c2",
        previous_feature_set_id="4f1c653c1548c3c2",
        error="bundle /srv/bundles/b7: bundle.json lists model.txt with sha256 9f2c…, the file has 41aa…",
    ),
    415: problem(
        415,
        "the body must be JSON (Content-Type: application/json), not 'application/x-www-form-urlencoded'",
        kind="unsupported-media-type",
        instance="/v1/recommendations",
    ),
    413: problem(413, "request body larger than 1048576 bytes", instance="/v1/recommendations"),
    422: problem(
        422,
        "invalid request: body.k: Input should be less than or equal to 200",
        instance="/v1/recommendations",
        errors=[
            {
                "type": "less_than_equal",
                "loc": ["body", "k"],
                "msg": "Input should be less than or equal to 200",
                "input": 500,
                "ctx": {"le": 200},
            }
        ],
    ),
    429: problem(
        429,
        "rate limit exceeded: at most 40 requests per 2 s per API key; retry after 1 s",
        instance="/v1/recommendations",
        retry_after=1,
    ),
    500: problem(500, "internal server error", instance="/v1/recommendations"),
    503: problem(503, "the service is starting; try again shortly", instance="/v1/recommendations"),
}
_HEADERS = {
    401: {
        "WWW-Authenticate": {"description": "APIKey: the scheme the key is sent with.", "schema": {"type": "string"}}
    },
    405: {"Allow": {"description": "The methods the route takes.", "schema": {"type": "string"}}},
    429: {"Retry-After": {"description": "Seconds to wait before retrying.", "schema": {"type": "integer"}}},
}
_SCHEMAS = {422: "ValidationProblem", 409: "ReloadProblem"}
_EXAMPLE_KEY = "x-audiencefit-example"
_ANSWER_EXAMPLES: dict[str, dict[str, Any]] = {}  # example_response's examples, by key (see _keep_nulls_in_examples)


def error_responses(*codes: int) -> dict[int | str, dict[str, Any]]:
    """``responses=`` entries declaring these error statuses, each an ``application/problem+json`` problem with
    its schema, a description and an example."""
    out: dict[int | str, dict[str, Any]] = {}
    for code in codes:
        content: dict[str, Any] = {"schema": {"$ref": REF + _SCHEMAS.get(code, "ProblemDetails")}}
        if code in _EXAMPLES:
            content |= _example(_EXAMPLES[code])
        entry: dict[str, Any] = {"description": _DESCRIPTIONS[code], "content": {PROBLEM_JSON: content}}
        if code in _HEADERS:
            entry["headers"] = _HEADERS[code]
        out[code] = entry
    return out


def example_response(example: dict[str, Any], description: str = "Successful Response") -> dict[int | str, Any]:
    """A ``responses=`` entry giving the 200 answer's example."""
    return {200: {"description": description, "content": {"application/json": _example(example)}}}


def _example(example: dict[str, Any]) -> dict[str, Any]:
    """A media type's ``example``, marked so that the document keeps its nulls (``_keep_nulls_in_examples``)."""
    key = str(len(_ANSWER_EXAMPLES))
    _ANSWER_EXAMPLES[key] = example
    return {"example": example, _EXAMPLE_KEY: key}


def openapi_generator(app: FastAPI) -> Callable[[], dict[str, Any]]:
    """``app.openapi``: FastAPI's schema, with the problem schemas the error responses refer to, built once."""

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = get_openapi(
                title=app.title,
                version=app.version,
                summary=app.summary,
                description=app.description,
                routes=app.routes,
                tags=app.openapi_tags,
            )
            _keep_nulls_in_examples(schema)
            components = schema.setdefault("components", {}).setdefault("schemas", {})
            for model in (ProblemDetails, ValidationProblem, ReloadProblem):
                found = model.model_json_schema(ref_template=REF + "{model}", mode="serialization")
                components.update(found.pop("$defs", {}))
                components[model.__name__] = found
            app.openapi_schema = schema
        return app.openapi_schema

    return openapi


def _keep_nulls_in_examples(schema: dict[str, Any]) -> None:
    """Put the answer examples back as written: FastAPI drops every null from the document, and an example without
    its null fields would not hold against its own schema (``example_response`` marks each with its key)."""
    for item in schema.get("paths", {}).values():
        for operation in item.values():
            for response in operation.get("responses", {}).values():
                for content in response.get("content", {}).values():
                    key = content.pop(_EXAMPLE_KEY, None)
                    if key is not None:
                        content["example"] = _ANSWER_EXAMPLES[key]


def _assets() -> Path:
    import fastapi_offline

    return Path(fastapi_offline.__file__).parent / "static"


def add_docs(app: FastAPI) -> None:
    """``/docs`` (Swagger UI) and ``/redoc`` (ReDoc), with every asset served from ``ASSETS_URL``: nothing is
    loaded from another host (no CDN, no web fonts, no Swagger validator badge)."""

    def local(request: Request, name: str) -> str:
        return f"{request.scope.get('root_path', '')}{ASSETS_URL}/{name}"

    async def swagger_ui(request: Request) -> HTMLResponse:
        return get_swagger_ui_html(
            openapi_url=f"{request.scope.get('root_path', '')}{app.openapi_url}",
            title=f"{app.title} — API docs",
            swagger_js_url=local(request, "swagger-ui-bundle.js"),
            swagger_css_url=local(request, "swagger-ui.css"),
            swagger_favicon_url=local(request, "favicon.png"),
            oauth2_redirect_url=None,
            swagger_ui_parameters={"validatorUrl": None},  # the validator badge is an image from swagger.io
        )

    async def redoc(request: Request) -> HTMLResponse:
        return get_redoc_html(
            openapi_url=f"{request.scope.get('root_path', '')}{app.openapi_url}",
            title=f"{app.title} — API reference",
            redoc_js_url=local(request, "redoc.standalone.js"),
            redoc_favicon_url=local(request, "favicon.png"),
            with_google_fonts=False,
        )

    # Plain routes, as FastAPI adds its own docs pages: GET and HEAD, outside the schema.
    app.add_route(DOCS_URL, swagger_ui, include_in_schema=False)
    app.add_route(REDOC_URL, redoc, include_in_schema=False)
    app.mount(ASSETS_URL, StaticFiles(directory=_assets()), name="docs-assets")
