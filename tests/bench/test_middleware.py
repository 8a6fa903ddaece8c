"""The bench-only gateway without metering (`bench/middleware.py`) and how the bench settings
put it in place (`BENCH_UNMETERED=1`). The product itself always meters."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from django.test import Client

from apikeys.models import ApiKey
from apikeys.services import apikey_create
from gateway.usage import usage_flush
from tests.factories import by

ROOT = Path(__file__).resolve().parents[2]
PRODUCT = "gateway.middleware.ApiGatewayMiddleware"
UNMETERED = "bench.middleware.UnmeteredGatewayMiddleware"


def bench_settings(**env: str) -> dict:
    code = (
        "import json, bench.settings as s; "
        "print(json.dumps({'middleware': s.MIDDLEWARE, 'key_cache': s.GATEHOUSE_KEY_CACHE}))"
    )
    environ = {k: v for k, v in os.environ.items() if k != "BENCH_UNMETERED"}
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True,
        env={**environ, **env}, timeout=60, check=True,
    )
    return json.loads(result.stdout)


def test_bench_settings_swap_the_gateway_only_when_unmetered() -> None:
    metered = bench_settings()
    unmetered = bench_settings(BENCH_UNMETERED="1")

    assert PRODUCT in metered["middleware"] and UNMETERED not in metered["middleware"]
    assert unmetered["middleware"] == [
        UNMETERED if path == PRODUCT else path for path in metered["middleware"]
    ]
    assert unmetered["key_cache"] is False


@pytest.mark.django_db
@pytest.mark.parametrize("middleware", [PRODUCT, UNMETERED])
def test_the_unmetered_gateway_authenticates_but_does_not_meter(
    settings, workspace, members, middleware
) -> None:
    settings.MIDDLEWARE = [middleware if p == PRODUCT else p for p in settings.MIDDLEWARE]
    key, token = apikey_create(
        workspace=workspace, name="Bench", scopes=["passports:read"], environment="development",
        **by(members["admin"]),
    )

    served = Client(headers={"Authorization": f"Bearer {token}"}).get("/api/v1/passports")
    refused = Client(headers={"Authorization": "Bearer gk_dev_nothing"}).get("/api/v1/passports")
    usage_flush()

    assert served.status_code == 200
    assert served["X-Request-Id"] and "Authorization" in served["Vary"]
    assert refused.status_code == 401
    metered = middleware == PRODUCT
    assert ("X-RateLimit-Limit" in served) is metered
    assert ApiKey.objects.get(pk=key.pk).request_count == (1 if metered else 0)
