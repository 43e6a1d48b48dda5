"""API key checks: ``X-API-Key`` on /v1 routes, a separate admin key on /admin routes.

Keys come from settings (``AUDIENCEFIT_API_KEYS``, ``AUDIENCEFIT_ADMIN_API_KEYS``). Comparison is constant-time
and visits every configured key, so response timing says nothing about how much of a key was right.
A missing key is 401, a wrong key 403. With no admin key configured, /admin is closed.

The checks are ``async def``: they never block, and FastAPI runs a sync dependency in its thread pool (a thread
hop per request, contending for the GIL under load).
"""

from __future__ import annotations

import secrets
from collections.abc import Iterable
from typing import Annotated

from fastapi import Depends, Request, Security, status
from fastapi.security import APIKeyHeader

from audiencefit.serving.problems import ProblemError
from audiencefit.settings import Settings

API_KEY_HEADER = "X-API-Key"
_header = APIKeyHeader(name=API_KEY_HEADER, auto_error=False, description="API key (admin key for /admin routes).")


def key_matches(given: str, accepted: Iterable[str]) -> bool:
    """Constant-time match of ``given`` against every accepted key (no early exit)."""
    given_bytes = given.encode("utf-8")
    found = False
    for key in accepted:
        found |= secrets.compare_digest(given_bytes, key.encode("utf-8"))
    return found


def _settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


def _check(key: str | None, accepted: list[str]) -> None:
    if not key:
        raise ProblemError(
            status.HTTP_401_UNAUTHORIZED,
            f"missing {API_KEY_HEADER} header",
            kind="missing-api-key",
            headers={"WWW-Authenticate": "APIKey"},
        )
    if not accepted or not key_matches(key, accepted):
        raise ProblemError(status.HTTP_403_FORBIDDEN, "invalid API key", kind="invalid-api-key")


async def require_api_key(request: Request, key: Annotated[str | None, Security(_header)]) -> None:
    """Dependency for /v1 routes."""
    _check(key, _settings(request).api_key_values())


async def require_admin_key(request: Request, key: Annotated[str | None, Security(_header)]) -> None:
    """Dependency for /admin routes: only admin keys are accepted."""
    _check(key, _settings(request).admin_key_values())


ApiKey = Depends(require_api_key)
AdminKey = Depends(require_admin_key)
