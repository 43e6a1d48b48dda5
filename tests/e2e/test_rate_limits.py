"""Per-key rate limits (issue #17, item 13): 429 with Retry-After past a key's burst, one key's budget untouched by
another key or by requests without a valid key, a smaller budget for plans, and the same limits in the front process
of ``serve --workers N`` (counted there, once for every worker)."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from fastapi.testclient import TestClient

from tests.e2e.conftest import ADMIN_KEY, API_KEY, SEGMENTS

BURST = 5
PLANS_BURST = 2
ADDRESS_BURST = 3
LOW = {
    "rate_limit_per_second": 0.1,  # a window of 50 s: nothing comes back during the test
    "rate_limit_burst": BURST,
    "rate_limit_plans_per_second": 0.05,
    "rate_limit_plans_burst": PLANS_BURST,
    "rate_limit_address_per_second": 0.1,
    "rate_limit_address_burst": ADDRESS_BURST,
}


@pytest.fixture()
def limited_settings(api_settings):
    return api_settings.model_copy(update=LOW)


@pytest.fixture()
def limited(limited_settings, small_features: Path, bundles) -> Iterator[TestClient]:
    from audiencefit.serving.app import create_app

    app = create_app(limited_settings, features_dir=small_features, bundle_source=bundles[0])
    with TestClient(app, raise_server_exceptions=False) as client:
        yield client


def _model(client: TestClient, key: str) -> httpx.Response:
    return client.get("/v1/model", headers={"X-API-Key": key})


def _is_429(resp: httpx.Response) -> bool:
    if resp.status_code != 429:
        return False
    retry = int(resp.headers["Retry-After"])
    assert 1 <= retry <= 50, retry
    assert "rate limit" in resp.json()["detail"]
    return True


def test_a_key_past_its_burst_gets_429_and_other_keys_do_not(limited: TestClient):
    assert [_model(limited, API_KEY).status_code for _ in range(BURST)] == [200] * BURST
    assert _is_429(_model(limited, API_KEY))
    assert _is_429(limited.post("/v1/recommendations", json={"segments": SEGMENTS}, headers={"X-API-Key": API_KEY}))
    # Another key, and the admin key, have budgets of their own.
    assert [_model(limited, "other-key").status_code for _ in range(BURST)] == [200] * BURST
    assert limited.post("/admin/reload", content=b"{", headers={"X-API-Key": ADMIN_KEY}).status_code == 422
    # 429s are counted in the metrics (refused before routing: route "unmatched"); /metrics is keyless.
    metrics = limited.get("/metrics")
    assert 'status="429"' in metrics.text


def test_requests_without_a_valid_key_never_spend_a_keys_budget(limited: TestClient):
    # Wrong keys and keyless requests are counted per client address...
    statuses = [_model(limited, f"wrong-{i}").status_code for i in range(ADDRESS_BURST)]
    assert statuses == [403] * ADDRESS_BURST
    assert _is_429(_model(limited, "wrong-again"))
    assert _is_429(limited.get("/healthz"))
    assert _is_429(limited.get("/v1/model"))  # no key at all
    # ... and the real key, from the same address, still has its whole burst.
    assert [_model(limited, API_KEY).status_code for _ in range(BURST)] == [200] * BURST


def test_plans_have_a_smaller_budget(limited: TestClient):
    body = {"segments": SEGMENTS, "budget": 5_000, "filters": {"min_followers": 0, "max_followers": 10**9}}
    headers = {"X-API-Key": API_KEY}
    assert [limited.post("/v1/plans", json=body, headers=headers).status_code for _ in range(PLANS_BURST)] == [200] * 2
    refused = limited.post("/v1/plans", json=body, headers=headers)
    assert _is_429(refused) and "/v1/plans" in refused.json()["detail"]
    assert _model(limited, API_KEY).status_code == 200  # the key's general budget is not exhausted


def test_a_limited_request_is_refused_before_its_body_is_read(limited: TestClient):
    headers = {"X-API-Key": API_KEY}
    for _ in range(BURST):
        _model(limited, API_KEY)
    # Larger than the body limit (413 otherwise): refused for its rate before a byte of it is read.
    big = b'{"description": "' + b"x" * (2 << 20) + b'"}'
    resp = limited.post("/v1/recommendations", content=big, headers=headers | {"Content-Type": "application/json"})
    assert _is_429(resp)


def test_limits_can_be_turned_off(api_settings, small_features: Path, bundles):
    from audiencefit.serving.app import create_app

    settings = api_settings.model_copy(update=LOW | {"rate_limit_enabled": False})
    app = create_app(settings, features_dir=small_features, bundle_source=bundles[0])
    with TestClient(app, raise_server_exceptions=False) as client:
        assert {_model(client, API_KEY).status_code for _ in range(BURST + 3)} == {200}


def test_the_front_of_several_workers_limits_per_key(limited_settings, tmp_path: Path):
    """The front (``serve --workers N``) counts every request, whichever worker would answer it: here no worker is
    connected, so a counted request is a 503 from the front and a refused one a 429."""
    from audiencefit.serving.dispatch import front_app

    app = front_app(2, tmp_path, {}, settings=limited_settings)

    async def run() -> list[httpx.Response]:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://front") as client:
            out = [await client.get("/v1/model", headers={"X-API-Key": API_KEY}) for _ in range(BURST + 1)]
            out.append(await client.get("/v1/model", headers={"X-API-Key": "other-key"}))
            out += [await client.get("/readyz") for _ in range(ADDRESS_BURST + 1)]
            return out

    responses = asyncio.run(run())
    assert [r.status_code for r in responses[:BURST]] == [503] * BURST
    assert _is_429(responses[BURST])
    assert responses[BURST + 1].status_code == 503  # another key
    assert [r.status_code for r in responses[BURST + 2 : -1]] == [503] * ADDRESS_BURST
    assert _is_429(responses[-1])
