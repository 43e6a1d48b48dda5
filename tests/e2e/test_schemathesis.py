"""Schemathesis fuzzing of every operation in the app's own OpenAPI schema, in process (ASGI transport, no network).

Each operation gets schema-valid (positive) and schema-violating (negative) requests; the creator routes and
``/v1/score`` also get requests naming real creators, so the fuzzer reaches the scoring code and not only the 404.
Every response must not be a 5xx, must have a status the operation declares, a declared content type
(``application/problem+json`` for every error) and conform to the schema declared for its status. The test counts
the requests it actually sent and requires at least ``MIN_REQUESTS`` of them.

The documented examples are sent too (``test_documented_examples_hold``): each operation's request example, and a
request provoking each error it declares that a loaded service can answer (401, 403, 404, 413, 422); every answer
must conform to the schema documented for it, with the problem's own checks (``type``, ``status``, ``instance``).
The 429 and 503 problems are checked in tests/code/test_openapi_contract.py (a service with low limits, and one
with nothing loaded).

The ``poisoned`` mode sends what no schema generates: a schema-valid body written as raw JSON text with one value
(a number, a text, or an unknown field) replaced by ``NaN``, ``Infinity``, ``-Infinity``, ``1e309`` or a lone
surrogate ``"\ud800"``, or a query parameter set to such a value. Every one must be a 422 with a valid JSON body.

Cut-off bodies (a client that disconnects before its body's end) are covered at the end of this file, and over
real sockets against ``serve`` in tests/e2e/test_transport.py.
"""

from __future__ import annotations

import json
import random
import time
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from tests.e2e.conftest import ADMIN_KEY, API_KEY, SEGMENT_TEXTS

schemathesis = pytest.importorskip("schemathesis")

MIN_REQUESTS = 1_000
COUNTRIES = ["US", "GB", "DE", "FR", "ES", "IT", "BR", "IN", "CA", "AU"]
BRAND_TERMS = ["@acme", "#acmefit", "acme", "@brand", "#sponsored"]

# (method, path, generation mode, examples, known creator ids?) — examples are per run; operations without
# parameters exhaust their (single-point) input space after one request, whatever the setting.
PLAN: tuple[tuple[str, str, str, int, bool], ...] = (
    ("POST", "/v1/recommendations", "positive", 200, False),
    ("POST", "/v1/recommendations", "realistic", 300, False),
    ("POST", "/v1/recommendations", "negative", 150, False),
    ("POST", "/v1/score", "positive", 200, True),
    ("POST", "/v1/score", "realistic", 100, True),
    ("POST", "/v1/score", "positive", 30, False),
    ("POST", "/v1/score", "negative", 80, False),
    ("GET", "/v1/creators/{creator_id}", "positive", 100, True),
    ("GET", "/v1/creators/{creator_id}", "positive", 30, False),
    ("GET", "/v1/creators/{creator_id}", "negative", 40, False),
    ("GET", "/v1/creators/{creator_id}/lookalikes", "positive", 120, True),
    ("GET", "/v1/creators/{creator_id}/lookalikes", "negative", 60, True),
    ("POST", "/v1/plans", "positive", 120, False),
    ("POST", "/v1/plans", "realistic", 150, False),
    ("POST", "/v1/plans", "negative", 60, False),
    ("GET", "/v1/creators/{creator_id}/overlap/{other_id}", "positive", 60, True),
    ("GET", "/v1/creators/{creator_id}/overlap/{other_id}", "negative", 30, True),
    ("GET", "/v1/model", "positive", 5, False),
    ("GET", "/healthz", "positive", 5, False),
    ("GET", "/readyz", "positive", 5, False),
    ("GET", "/metrics", "positive", 5, False),
    ("POST", "/admin/reload", "positive", 60, False),
    ("POST", "/admin/reload", "negative", 40, False),
    ("POST", "/v1/recommendations", "poisoned", 150, False),
    ("POST", "/v1/score", "poisoned", 80, True),
    ("POST", "/v1/plans", "poisoned", 120, False),
    ("GET", "/v1/creators/{creator_id}/lookalikes", "poisoned", 30, True),
    ("POST", "/admin/reload", "poisoned", 30, False),
)
POISON = ("NaN", "Infinity", "-Infinity", "1e309", "-1e309", '"\\ud800"', '"text \\udfff"')
_SLOT = "__poisoned_value__"


@pytest.fixture(scope="module")
def app(api_settings, small_features: Path, small_world: Path, bundles) -> Iterator[Any]:
    from audiencefit.serving.app import create_app

    application = create_app(api_settings, features_dir=small_features, bundle_source=bundles[0], data_dir=small_world)
    yield application
    from schemathesis.python.asgi import shutdown_lifespans

    shutdown_lifespans()  # the ASGI transport started the app's lifespan on its first request


@pytest.fixture(scope="module")
def creator_ids(small_features: Path) -> list[str]:
    from audiencefit.features.featureset import load_feature_set

    ids: list[str] = load_feature_set(small_features).creators["creator_id"].to_list()
    return ids


def _strategy(operation: Any, mode: str, known: list[str] | None) -> st.SearchStrategy[Any]:
    from schemathesis import GenerationMode

    generation = GenerationMode.NEGATIVE if mode == "negative" else GenerationMode.POSITIVE  # poisoned: positive
    if known is not None and "{other_id}" in operation.path:
        strategy = st.tuples(st.sampled_from(known), st.sampled_from(known)).flatmap(
            lambda ids: operation.as_strategy(
                generation_mode=generation, path_parameters={"creator_id": ids[0], "other_id": ids[1]}
            )
        )
    elif known is not None and "{creator_id}" in operation.path:
        strategy = st.sampled_from(known).flatmap(
            lambda cid: operation.as_strategy(generation_mode=generation, path_parameters={"creator_id": cid})
        )
    else:
        strategy = operation.as_strategy(generation_mode=generation)
    if mode in ("realistic", "poisoned"):
        # Schema-valid bodies with words the embedder knows and real country codes: random text is mostly refused
        # by the domain checks (422), which would leave ranking, bands and explanations unfuzzed.
        strategy = st.tuples(strategy, st.randoms(use_true_random=False)).map(_realistic)
    if known is not None and operation.path == "/v1/score":
        # The generated body with its creator ids replaced by real ones (random ids are all 404).
        strategy = st.tuples(strategy, st.lists(st.sampled_from(known), min_size=1, max_size=8)).map(_with_ids)
    if mode == "poisoned":
        strategy = st.tuples(strategy, st.randoms(use_true_random=False)).map(_poisoned)
    return strategy


def _slots(value: Any, path: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Paths to every number and text in a JSON value (booleans and nulls are neither)."""
    if isinstance(value, dict):
        return [p for k, v in value.items() for p in _slots(v, (*path, k))]
    if isinstance(value, list):
        return [p for i, v in enumerate(value) for p in _slots(v, (*path, i))]
    if isinstance(value, (int, float, str)) and not isinstance(value, bool):
        return [path]
    return []


def _poisoned(pair: tuple[Any, random.Random]) -> tuple[Any, list[Any]]:
    """The case with one value made non-finite or invalid text, and where the 422 must say it is: in the body as raw
    JSON text (a JSON encoder refuses such values), or in a query parameter for an operation without a body."""
    case, rnd = pair
    if case.method.upper() == "GET":
        name = rnd.choice(sorted({*(case.query or {}), "k"}))
        case.query = {**(case.query or {}), name: rnd.choice(POISON[:5])}  # text in a URL is UTF-8: no surrogates
        return case, ["query", name]
    token = rnd.choice(POISON)
    body = json.loads(json.dumps(case.body)) if isinstance(case.body, dict) else {}
    slots = _slots(body)
    if slots and rnd.random() < 0.85:
        *parents, last = rnd.choice(slots)
        target = body
        for key in parents:
            target = target[key]
        target[last] = _SLOT
        where = ["body", *parents, last]
    else:
        body["unexpected_field"] = _SLOT
        where = ["body", "unexpected_field"]
    case.body = json.dumps(body).replace(f'"{_SLOT}"', token).encode("utf-8")
    case.media_type = "application/json"
    return case, where


def _realistic(pair: tuple[Any, random.Random]) -> Any:
    case, rnd = pair
    if not isinstance(case.body, dict):
        return case
    body = dict(case.body)
    segments = [dict(seg) for seg in body.get("segments", []) if isinstance(seg, dict)]
    for seg in segments:
        seg["text"] = rnd.choice(SEGMENT_TEXTS)
        if seg.get("countries"):
            seg["countries"] = rnd.sample(COUNTRIES, rnd.randint(1, 3))
    body["segments"] = segments
    if body.get("description") is not None or not segments:
        body["description"] = rnd.choice(SEGMENT_TEXTS)
    for name in ("brand_handles", "branded_hashtags"):
        if body.get(name):
            body[name] = rnd.sample(BRAND_TERMS, rnd.randint(1, 2))
    if isinstance(body.get("filters"), dict) and body["filters"].get("countries"):
        body["filters"] = {**body["filters"], "countries": rnd.sample(COUNTRIES, rnd.randint(1, 3))}
    case.body = body
    return case


def _with_ids(pair: tuple[Any, list[str]]) -> Any:
    case, ids = pair
    if isinstance(case.body, dict):
        case.body = {**case.body, "creator_ids": ids}
    return case


def _runner(
    schema: Any, sent: Counter[str], statuses: Counter[tuple[str, int]], failures: list[str]
) -> Callable[[str, str, str, int, list[str] | None], None]:

    def run(method: str, path: str, mode: str, examples: int, known: list[str] | None) -> None:
        operation = schema[path][method]
        key = ADMIN_KEY if path.startswith("/admin") else API_KEY

        @settings(
            max_examples=examples,
            deadline=None,
            derandomize=True,
            database=None,
            phases=[Phase.explicit, Phase.generate],  # no shrinking: a failure is reported with its request
            suppress_health_check=list(HealthCheck),
        )
        @given(case=_strategy(operation, mode, known))
        def fuzz(case: Any) -> None:
            case, where = case if isinstance(case, tuple) else (case, None)
            sent[f"{method} {path}"] += 1
            response = case.call(headers={"X-API-Key": key})
            statuses[(f"{method} {path}", response.status_code)] += 1
            if where is not None and not _refused_with_json(response, where):
                failures.append(
                    f"{method} {path} [{mode}] -> {response.status_code}, not a 422 with a JSON body: "
                    f"{response.text[:300]}\n{case.as_curl_command()}"
                )
                return
            try:
                case.validate_response(response, checks=_checks())
            except (AssertionError, BaseExceptionGroup) as exc:  # schemathesis' Failure / FailureGroup
                failures.append(f"{method} {path} [{mode}] -> {response.status_code}: {exc}\n{case.as_curl_command()}")

        fuzz()

    return run


def _checks() -> list[Any]:
    from schemathesis.checks import not_a_server_error
    from schemathesis.specs.openapi.checks import (
        content_type_conformance,
        response_headers_conformance,
        response_schema_conformance,
        status_code_conformance,
    )

    return [
        not_a_server_error,
        status_code_conformance,
        content_type_conformance,
        response_headers_conformance,
        response_schema_conformance,
    ]


def _refused_with_json(response: Any, where: list[Any]) -> bool:
    """A 422 whose body is strict JSON (no NaN or Infinity tokens) and names the location ``where``."""

    def refuse(token: str) -> None:
        raise ValueError(token)

    try:
        body = json.loads(response.text, parse_constant=refuse)
    except ValueError:
        return False
    return response.status_code == 422 and any(error.get("loc") == where for error in body["errors"])


def test_fuzz_every_operation(app, creator_ids: list[str]) -> None:
    schema = schemathesis.openapi.from_dict(app.openapi())
    schema.app = app
    operations = {(method.upper(), path) for path, item in app.openapi()["paths"].items() for method in item}
    assert operations == {(m, p) for m, p, *_ in PLAN}, "every operation in the schema is fuzzed"

    sent: Counter[str] = Counter()
    failures: list[str] = []
    statuses: Counter[tuple[str, int]] = Counter()
    run = _runner(schema, sent, statuses, failures)
    for method, path, mode, examples, known in PLAN:
        t0 = time.perf_counter()
        run(method, path, mode, examples, creator_ids if known else None)
        print(f"{method} {path} [{mode}] {time.perf_counter() - t0:.1f}s")

    total = sum(sent.values())
    print(f"schemathesis sent {total} requests: {dict(sent)}")
    print(f"statuses: {sorted(statuses.items())}")
    assert not failures, f"{len(failures)} failing responses:\n" + "\n\n".join(failures[:10])
    assert total >= MIN_REQUESTS


def test_cut_off_bodies_are_never_computed(app) -> None:
    """A body cut off before its ``Content-Length``, or a chunked one whose client leaves, reaches no route."""
    import asyncio

    from tests.e2e.test_transport import send_cut_off

    for path, key in (("/admin/reload", ADMIN_KEY), ("/v1/recommendations", API_KEY), ("/v1/plans", API_KEY)):
        base = [(b"x-api-key", key.encode()), (b"content-type", b"application/json")]
        assert asyncio.run(send_cut_off(app, path, [*base, (b"content-length", b"45")], [b'{"segments'])) == []
        assert asyncio.run(send_cut_off(app, path, base, [b"{", b"}"])) == []


def _problem_holds(response: Any, status: int, path: str) -> None:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == ["application/problem+json"]  # schemathesis: every value of a header
    body = response.json()
    assert body["status"] == status and body["instance"] == path and body["type"].startswith("urn:audiencefit:problem:")
    assert body["title"] and body["detail"]


def test_documented_examples_hold(app, creator_ids: list[str]) -> None:
    """Each operation's documented request example is answered as documented (schemathesis' checks), and each error
    an operation declares and a loaded service can answer comes as the documented problem."""
    from schemathesis.core import NOT_SET

    document = app.openapi()
    schema = schemathesis.openapi.from_dict(document)
    schema.app = app
    sent = []
    for path, item in document["paths"].items():
        for method, op in item.items():
            operation = schema[path][method.upper()]
            key = ADMIN_KEY if path.startswith("/admin") else API_KEY
            ids = {"creator_id": creator_ids[0], "other_id": creator_ids[1]}
            params = {name: ids[name] for name in ("creator_id", "other_id") if "{" + name + "}" in path}
            body = op.get("requestBody", {}).get("content", {}).get("application/json")
            examples = [e["value"] for e in body["examples"].values()] if body else [None]
            for documented in examples:
                example = documented
                if path == "/v1/score" and documented is not None:
                    example = {**documented, "creator_ids": creator_ids[:3]}  # the example's ids are not this world's
                case = schema.make_case(
                    operation=operation,
                    path_parameters=params,
                    body=example if example is not None else NOT_SET,
                    media_type="application/json" if example is not None else None,
                )
                response = case.call(headers={"X-API-Key": key})
                case.validate_response(response, checks=_checks())
                expected = {409} if path == "/admin/reload" else {200}  # no registry here: the reload fails, 409
                assert response.status_code in expected, (method, path, response.text[:300])
                sent.append((method.upper(), path))
            declared = set(op["responses"])
            concrete = path.replace("{creator_id}", creator_ids[0]).replace("{other_id}", creator_ids[1])
            for status, headers in (("401", {}), ("403", {"X-API-Key": "not-a-key"})):
                if status in declared:
                    case = schema.make_case(operation=operation, path_parameters=params)
                    response = case.call(headers=headers)
                    case.validate_response(response, checks=_checks())
                    _problem_holds(response, int(status), concrete)
            if "404" in declared:
                unknown = path.replace("{creator_id}", "no-such-creator").replace("{other_id}", creator_ids[1])
                missing = {**params, "creator_id": "no-such-creator"} if params else params
                payload = {"segments": [{"text": SEGMENT_TEXTS[0]}], "creator_ids": ["no-such-creator"]}
                case = schema.make_case(
                    operation=operation,
                    path_parameters=missing,
                    body=payload if body else NOT_SET,
                    media_type="application/json" if body else None,
                )
                response = case.call(headers={"X-API-Key": key})
                case.validate_response(response, checks=_checks())
                _problem_holds(response, 404, unknown)
                assert response.json()["unknown_ids"] == ["no-such-creator"]
            if "413" in declared:
                case = schema.make_case(
                    operation=operation, body=b"{" + b" " * (2 << 20) + b"}", media_type="application/json"
                )
                response = case.call(headers={"X-API-Key": key})
                case.validate_response(response, checks=_checks())
                _problem_holds(response, 413, concrete)
            if "415" in declared:
                case = schema.make_case(operation=operation, body="k=20", media_type="text/plain")
                response = case.call(headers={"X-API-Key": key})
                case.validate_response(response, checks=_checks())
                _problem_holds(response, 415, concrete)
            if "422" in declared:
                if body:
                    case = schema.make_case(operation=operation, body={"k": "many"}, media_type="application/json")
                else:
                    case = schema.make_case(operation=operation, path_parameters=params, query={"k": 0})
                response = case.call(headers={"X-API-Key": key})
                if body or path.endswith("/lookalikes"):
                    case.validate_response(response, checks=_checks())
                    _problem_holds(response, 422, concrete)
                    assert all(error["loc"] and error["msg"] for error in response.json()["errors"])
    assert {(m.upper(), p) for p, item in document["paths"].items() for m in item} == set(sent)
