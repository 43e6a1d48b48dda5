"""The API contract for integrators, checked on the app's own OpenAPI document and on answers of the whole
middleware stack (no state loaded: nothing here needs a feature set or a model).

- every field of every schema and every parameter is described; every operation has an example of its answer (and
  of its body when it takes one), and each example holds against the schema it illustrates;
- every operation declares the errors it can answer (401/403 behind a key, 404 where a creator is named, 413 with
  a body, 422 with input, 429 and 500 everywhere, 503 where the loaded state is needed), each as a problem
  (``application/problem+json``);
- every error the stack answers is a problem of the declared shape (RFC 9457);
- ``/docs`` and ``/redoc`` reference no other host, and their assets answer 200.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from jsonschema import Draft202012Validator

from audiencefit.serving.app import _bare_app, create_app
from audiencefit.serving.problems import PROBLEM_JSON, PROBLEM_TYPES, TYPE_PREFIX, ProblemError, problem
from audiencefit.settings import Settings

KEY = "contract-key"
ADMIN = "contract-admin-key"
METHODS = {"get", "post", "put", "patch", "delete"}


@pytest.fixture(scope="module")
def doc() -> dict[str, Any]:
    return _bare_app().openapi()


def _client(tmp_path_factory: pytest.TempPathFactory, **limits: float) -> TestClient:
    settings = Settings(
        data_dir=tmp_path_factory.mktemp("contract"),
        api_keys=[KEY],
        admin_api_keys=[ADMIN],
        **limits,
    )
    app = create_app(settings, features_dir=Path("/nonexistent"), bundle_source=Path("/nonexistent"), max_body_bytes=64)
    # No ``with``: the lifespan never runs, so the state is never loaded (routes that need it answer 503).
    return TestClient(app, raise_server_exceptions=False)


@pytest.fixture(scope="module")
def client(tmp_path_factory: pytest.TempPathFactory) -> TestClient:
    return _client(tmp_path_factory, rate_limit_address_per_second=10_000.0, rate_limit_address_burst=10_000)


@pytest.fixture(scope="module")
def limited(tmp_path_factory: pytest.TempPathFactory) -> TestClient:
    return _client(tmp_path_factory, rate_limit_address_per_second=1.0, rate_limit_address_burst=5)


def _operations(doc: dict[str, Any]) -> Iterator[tuple[str, str, dict[str, Any]]]:
    for path, item in doc["paths"].items():
        for method, op in item.items():
            if method in METHODS:
                yield method.upper(), path, op


def _validator(doc: dict[str, Any], schema: dict[str, Any]) -> Draft202012Validator:
    """A validator of ``schema`` whose ``#/components/...`` references resolve in ``doc``."""
    return Draft202012Validator({**schema, "components": doc["components"]})


def _undescribed(name: str, schema: dict[str, Any]) -> list[str]:
    return [f"{name}.{prop}" for prop, sub in schema.get("properties", {}).items() if not sub.get("description")]


def test_every_field_and_parameter_is_described(doc: dict[str, Any]) -> None:
    missing = [m for name, schema in doc["components"]["schemas"].items() for m in _undescribed(name, schema)]
    for method, path, op in _operations(doc):
        if not op.get("description") and not op.get("summary"):
            missing.append(f"{method} {path}: no description")
        missing += [f"{method} {path} ?{p['name']}" for p in op.get("parameters", []) if not p.get("description")]
    assert missing == []


def test_the_value_a_list_is_ranked_by_is_returned(doc: dict[str, Any]) -> None:
    schemas = doc["components"]["schemas"]
    assert "ranking_value" in schemas["RecommendedCreator"]["required"]
    assert "ranked_by" in schemas["RecommendationResponse"]["required"]
    assert "gain_per_cost" in schemas["PlannedCreator"]["required"]
    assert "similarity" in schemas["Lookalike"]["required"]
    fit = schemas["CreatorScore"]["properties"]["fit"]["description"]
    assert "[-1, 1]" in fit and "higher fits better" in fit
    assert "USD" in schemas["CreatorScore"]["properties"]["price"]["description"]


def _expected_errors(path: str, op: dict[str, Any]) -> set[str]:
    codes = {"429", "500"}
    keyed = path.startswith(("/v1/", "/admin/"))
    if keyed:
        codes |= {"401", "403", "503"}
    if op.get("parameters") or "requestBody" in op:
        codes.add("422")
    if "requestBody" in op:
        codes |= {"413", "415"}
    if "{creator_id}" in path or path == "/v1/score":
        codes.add("404")
    return codes


def test_every_operation_declares_its_errors_as_problems(doc: dict[str, Any]) -> None:
    problems = {f"#/components/schemas/{n}" for n in ("ProblemDetails", "ValidationProblem", "ReloadProblem")}
    wrong = []
    for method, path, op in _operations(doc):
        responses = op["responses"]
        missing = _expected_errors(path, op) - set(responses)
        if missing:
            wrong.append(f"{method} {path}: {sorted(missing)} not declared")
        for code, response in responses.items():
            if int(code) < 400 or (path == "/readyz" and code == "503"):  # /readyz: a probe's answer, not an error
                continue
            content = response.get("content", {})
            ref = content.get(PROBLEM_JSON, {}).get("schema", {}).get("$ref")
            if set(content) != {PROBLEM_JSON} or ref not in problems:
                wrong.append(f"{method} {path} {code}: {content}")
        if "422" in responses:
            assert responses["422"]["content"][PROBLEM_JSON]["schema"]["$ref"].endswith("/ValidationProblem")
    assert wrong == []
    assert "HTTPValidationError" not in doc["components"]["schemas"], "FastAPI's own 422 shape is never declared"


def test_every_operation_has_examples_that_hold(doc: dict[str, Any]) -> None:
    wrong = []
    for method, path, op in _operations(doc):
        body = op.get("requestBody", {}).get("content", {}).get("application/json")
        if body is not None:
            examples = body.get("examples", {})
            if not examples:
                wrong.append(f"{method} {path}: no request example")
            for example in examples.values():
                errors = list(_validator(doc, body["schema"]).iter_errors(example["value"]))
                wrong += [f"{method} {path} request example: {e.message}" for e in errors]
        for code, response in op["responses"].items():
            for media, content in response.get("content", {}).items():
                if "example" not in content:
                    if not (path == "/readyz" and code == "503"):  # a probe's answer: its 200 example shows it
                        wrong.append(f"{method} {path} {code} {media}: no example")
                    continue
                if "schema" in content and media != "text/plain":
                    errors = list(_validator(doc, content["schema"]).iter_errors(content["example"]))
                    wrong += [f"{method} {path} {code} example: {e.message}" for e in errors]
    assert wrong == []


def test_problem_builder_refuses_what_is_not_a_problem() -> None:
    body = problem(404, "unknown creator 'x'", kind="unknown-creator", instance="/v1/creators/x", unknown_ids=["x"])
    assert body == {
        "type": TYPE_PREFIX + "unknown-creator",
        "title": PROBLEM_TYPES["unknown-creator"],
        "status": 404,
        "detail": "unknown creator 'x'",
        "instance": "/v1/creators/x",
        "unknown_ids": ["x"],
    }
    with pytest.raises(ValueError, match="unknown problem type"):
        problem(400, "x", kind="teapot")
    with pytest.raises(ValueError, match="standard members"):
        problem(400, "x", title="mine")
    with pytest.raises(ValueError, match="unknown problem type"):
        ProblemError(400, "x", kind="teapot")


def _check_problem(doc: dict[str, Any], resp: Any, status: int, kind: str, path: str) -> dict[str, Any]:
    assert resp.status_code == status, resp.text
    assert resp.headers["content-type"].split(";")[0] == PROBLEM_JSON, resp.headers
    body: dict[str, Any] = resp.json()
    schema = "ValidationProblem" if status == 422 else "ProblemDetails"
    errors = list(_validator(doc, {"$ref": f"#/components/schemas/{schema}"}).iter_errors(body))
    assert errors == [], [e.message for e in errors]
    assert body["type"] == TYPE_PREFIX + kind and body["status"] == status and body["instance"] == path
    assert body["detail"] and body["title"] == PROBLEM_TYPES[kind]
    return body


def test_every_error_of_the_stack_is_a_problem(client: TestClient, doc: dict[str, Any]) -> None:
    keyed = {"X-API-Key": KEY}
    body = _check_problem(doc, client.get("/v1/model"), 401, "missing-api-key", "/v1/model")
    assert "X-API-Key" in body["detail"]
    _check_problem(doc, client.get("/v1/model", headers={"X-API-Key": "wrong"}), 403, "invalid-api-key", "/v1/model")
    _check_problem(
        doc, client.get("/admin/reload", headers={"X-API-Key": KEY}), 403, "invalid-api-key", "/admin/reload"
    )
    _check_problem(doc, client.get("/nowhere"), 404, "not-found", "/nowhere")
    resp = client.delete("/healthz")
    _check_problem(doc, resp, 405, "method-not-allowed", "/healthz")
    assert resp.headers["allow"] == "GET"
    form = client.post(
        "/v1/plans", headers={**keyed, "Content-Type": "application/x-www-form-urlencoded"}, content=b"{}"
    )
    assert "application/json" in _check_problem(doc, form, 415, "unsupported-media-type", "/v1/plans")["detail"]
    big = client.post("/v1/recommendations", headers=keyed, content=b"{" + b" " * 100 + b"}")
    _check_problem(doc, big, 413, "body-too-large", "/v1/recommendations")
    _check_problem(doc, client.get("/v1/model", headers=keyed), 503, "unavailable", "/v1/model")
    _check_problem(doc, client.get("/docs-assets/nothing.js"), 404, "not-found", "/docs-assets/nothing.js")
    _check_problem(
        doc, client.post("/docs-assets/swagger-ui.css"), 405, "method-not-allowed", "/docs-assets/swagger-ui.css"
    )


def test_a_rate_limited_request_is_a_problem(limited: TestClient, doc: dict[str, Any]) -> None:
    for _ in range(10):
        resp = limited.get("/healthz")
        if resp.status_code == 429:
            break
    body = _check_problem(doc, resp, 429, "rate-limited", "/healthz")
    assert body["retry_after"] == int(resp.headers["retry-after"]) >= 1


URL = re.compile(r"""(?:src|href|url)\s*[=:(]\s*["']?([^"')\s>]+)""")


@pytest.mark.parametrize("page", ["/docs", "/redoc"])
def test_the_docs_work_offline(client: TestClient, page: str) -> None:
    resp = client.get(page)
    assert resp.status_code == 200 and resp.headers["content-type"].startswith("text/html")
    assert client.head(page).status_code == 200  # as FastAPI's own pages: GET and HEAD
    urls = URL.findall(resp.text)
    assert urls, resp.text
    assert [u for u in urls if not u.startswith("/")] == [], "every asset is served by the service itself"
    assert "cdn" not in resp.text.lower() and "googleapis" not in resp.text
    for url in urls:
        asset = client.get(url)
        assert asset.status_code == 200 and len(asset.content) > 0, url
    if page == "/docs":
        assert '"validatorUrl": null' in resp.text  # no badge image from swagger.io
