"""Fixtures for the Usage page and the key detail page (keys: `make_key` of tests/conftest.py),
usage written the way the gateway writes it (the shared budget counters, the usage flush)."""

from collections.abc import Callable
from datetime import datetime

import pytest
from django.utils import timezone

from apikeys.models import ApiKey
from gateway.usage import UsageBuffer
from tests.metering import quota_consume
from workspaces.models import Workspace
from workspaces.quotas import Budget


@pytest.fixture
def consume() -> Callable[..., None]:
    """`consume(workspace, Budget.WRITES, n)`: n admitted units of today's budget, taken the way
    the gateway takes them."""

    def take(workspace: Workspace, budget: Budget, n: int, now: datetime | None = None) -> None:
        for _ in range(n):
            allowance = quota_consume(
                workspace_id=workspace.pk, plan=workspace.plan, budget=budget,
                now=now or timezone.now(),
            )
            assert allowance is not None and allowance.admitted

    return take


@pytest.fixture
def record_requests() -> Callable[..., None]:
    """`record_requests(key, n, at=..., **event)`: n requests of `key` through a usage buffer,
    flushed to the database as the gateway's flusher does."""

    def record(key: ApiKey, n: int, *, at: datetime | None = None, **event) -> None:
        buffer = UsageBuffer()
        fields = {"ip": "203.0.113.7", "method": "GET", "path": "/api/v1/passports",
                  "status": 200, "latency_ms": 4}
        for _ in range(n):
            buffer.record(key_id=key.pk, at=at or timezone.now(), **{**fields, **event})
        assert buffer.flush() == n

    return record


@pytest.fixture
def htmx() -> dict[str, str]:
    return {"HX-Request": "true"}
