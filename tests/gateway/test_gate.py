"""The one gate (`gateway.metering.meter_request`): endpoints declare their budget, and the
order of checks — scope, rate limit, idempotency, budget — is the same on both backends."""

from http import HTTPStatus

import pytest
import time_machine
from django.test import Client
from django.urls import URLPattern, get_resolver

from apikeys.services import apikey_create
from apikit.endpoints import endpoint_for, endpoints_of
from gateway.models import IdempotencyRecord
from tests.clock import day_ahead
from tests.factories import by
from workspaces.quotas import Budget

WRITE_METHODS = ("POST", "PUT", "PATCH", "DELETE")


def _api_routes() -> list[tuple[str, object]]:
    for pattern in get_resolver().url_patterns:
        if str(pattern.pattern) == "api/v1/":
            return [(str(p.pattern), p.callback) for p in pattern.url_patterns
                    if isinstance(p, URLPattern)]
    raise AssertionError("no /api/v1/ include")


def test_every_metered_endpoint_declares_the_budget_spec_5_gives_it() -> None:
    """SPEC §5: every write under /api/v1 costs `writes`, every read of passports
    `passport_reads` (HEAD like GET), nothing else costs a budget."""
    seen = set()
    for route, view in _api_routes():
        endpoints = endpoints_of(view)
        assert endpoints is not None, route
        for method in (*endpoints, "HEAD"):
            endpoint = endpoint_for(endpoints, method)
            if endpoint is None or endpoint.public:
                continue
            if method in WRITE_METHODS:
                expected = Budget.WRITES
            elif method in ("GET", "HEAD") and route.startswith("passports"):
                expected = Budget.PASSPORT_READS
            else:
                expected = None
            assert endpoint.budget is expected, (route, method)
            seen.add((route, method, expected))
    assert ("passports", "HEAD", Budget.PASSPORT_READS) in seen
    assert ("passports/<str:passport_id>", "DELETE", Budget.WRITES) in seen


def test_an_unknown_budget_name_fails_at_declaration() -> None:
    from apikit.endpoints import api_endpoint

    with pytest.raises(ValueError):
        api_endpoint(budget="reads")


@pytest.mark.django_db
def test_the_rate_limit_answers_before_idempotency_and_the_budget(workspace, members) -> None:
    """Over the rate limit, a request whose Idempotency-Key would be refused (422) or replayed
    is answered 429 `rate_limited` and claims nothing, on either backend."""
    _key, token = apikey_create(
        workspace=workspace, name="Slow", scopes=["passports:read", "passports:write"],
        environment="development", **by(members["admin"]), rate_limit_per_minute=2,
    )
    api = Client(headers={"Authorization": f"Bearer {token}"})
    body = {"gtin": "4006381333931", "serial_number": "SN-1", "product_name": "Widget"}
    with time_machine.travel(day_ahead(0, 12, 0, 15), tick=False):
        first = api.post("/api/v1/passports", body, content_type="application/json",
                         headers={"Idempotency-Key": "k1"})
        assert first.status_code == HTTPStatus.CREATED
        replay = api.post("/api/v1/passports", body, content_type="application/json",
                          headers={"Idempotency-Key": "k1"})
        assert replay.status_code == HTTPStatus.CREATED
        assert replay["Idempotent-Replayed"] == "true"  # a replay counts against the rate limit
        for other_body in (body, {**body, "serial_number": "SN-2"}):
            refused = api.post("/api/v1/passports", other_body, content_type="application/json",
                               headers={"Idempotency-Key": "k1"})
            assert refused.status_code == HTTPStatus.TOO_MANY_REQUESTS
            assert refused.json()["error"] == "rate_limited"
        fresh = api.post("/api/v1/passports", body, content_type="application/json",
                         headers={"Idempotency-Key": "k2"})
        assert fresh.status_code == HTTPStatus.TOO_MANY_REQUESTS
    assert list(IdempotencyRecord.objects.values_list("key", flat=True)) == ["k1"]


@pytest.mark.django_db
def test_a_scope_refusal_counts_nothing(workspace, members) -> None:
    _key, token = apikey_create(
        workspace=workspace, name="Reader", scopes=["passports:read"],
        environment="development", **by(members["admin"]), rate_limit_per_minute=1,
    )
    api = Client(headers={"Authorization": f"Bearer {token}"})
    with time_machine.travel(day_ahead(0, 12, 0, 15), tick=False):
        for _ in range(3):
            refused = api.post("/api/v1/passports", {}, content_type="application/json",
                               headers={"Idempotency-Key": "k1"})
            assert refused.status_code == HTTPStatus.FORBIDDEN
            assert refused.json()["error"] == "insufficient_scope"
        assert api.get("/api/v1/passports").status_code == HTTPStatus.OK  # the one unit
        assert api.get("/api/v1/passports").status_code == HTTPStatus.TOO_MANY_REQUESTS
    assert not IdempotencyRecord.objects.exists()
