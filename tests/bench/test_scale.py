"""What the benchmark's figures rely on, asserted rather than timed: a malformed credential costs no
query through the real middleware (the `garbage` scenario), and the dashboard's key list and audit
log, and the API's lists, cost the same number of queries at 1,000 keys and 5,000 events as at
two (the `history` database has 10,000 and 1,000,000)."""

from __future__ import annotations

from datetime import timedelta
from http import HTTPStatus

import pytest
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from apikeys.models import ApiKey, KeyStatus
from apikeys.services import apikey_create
from audit.models import AuditEvent
from bench.run import GARBAGE_TOKEN
from core.context import ActorType
from passports.services import passport_create
from tests.factories import by

pytestmark = pytest.mark.django_db

KEYS = "/w/acme/settings/api-keys/"
AUDIT = "/w/acme/settings/audit-log/"


def test_the_garbage_scenario_costs_no_query(settings, workspace, django_assert_num_queries):
    settings.GATEHOUSE_ENVIRONMENT = "production"  # as the benchmark's servers run
    passport = passport_create(
        workspace=workspace, gtin="4006381333931", serial_number="SN-1", product_name="Bench",
        **by(),
    )
    client = Client(headers={"Authorization": f"Bearer {GARBAGE_TOKEN}"})
    with django_assert_num_queries(0):
        response = client.get(f"/api/v1/passports/{passport.public_id}")
    assert response.status_code == HTTPStatus.UNAUTHORIZED
    assert response.json()["error"] == "invalid_credentials"


def add_keys(workspace, user, n: int) -> None:
    """`n` keys as a busy workspace accumulates them: most revoked, some expired, a few live."""
    now = timezone.now()
    start = ApiKey.objects.count()
    keys = []
    for i in range(start, start + n):
        revoked = i % 10 not in (0, 1)
        keys.append(ApiKey(
            workspace=workspace, name=f"key {i}", scopes=["passports:read"],
            environment="development", digest=f"{i:064x}", hint=f"{i % 10000:04d}",
            created_at=now - timedelta(minutes=i), created_by=user,
            status=KeyStatus.REVOKED if revoked else KeyStatus.ACTIVE,
            revoked_at=now - timedelta(seconds=i) if revoked else None,
            revoked_by=user if revoked else None,
            expires_at=now - timedelta(seconds=i) if i % 10 == 1 else None,
        ))
    ApiKey.objects.bulk_create(keys)


def add_events(workspace, n: int) -> None:
    """`n` events, times increasing with ids as the append-only log guarantees."""
    now = timezone.now()
    AuditEvent.objects.bulk_create(
        AuditEvent(
            workspace=workspace, actor_type=ActorType.USER, actor_id="1",
            actor_label="owner@acme.test", action="key.created", target_type="api_key",
            target_id=f"key_{i}", target_label=f"key {i}", metadata={"n": i},
            created_at=now + timedelta(microseconds=i), prev_hash="0" * 64, hash=f"{i:064x}",
        )
        for i in range(n)
    )


def queries(client: Client, path: str) -> int:
    client.get(path)  # warm: the session, the first-request caches
    with CaptureQueriesContext(connection) as captured:
        response = client.get(path)
    assert response.status_code == HTTPStatus.OK
    return len(captured)


def test_key_list_queries_do_not_grow_with_thousands_of_keys(owner_client, workspace, members):
    add_keys(workspace, members["admin"], 2)
    few = queries(owner_client, KEYS)
    add_keys(workspace, members["admin"], 1000)
    many = queries(owner_client, KEYS)
    assert many == few
    assert owner_client.get(KEYS).content.decode().count("key 1") >= 2  # the rows are there


def test_audit_log_queries_do_not_grow_with_thousands_of_events(owner_client, workspace):
    add_events(workspace, 2)
    few = {params: queries(owner_client, AUDIT + params) for params in ("", "?action=key.created")}
    add_events(workspace, 5000)
    many = {params: queries(owner_client, AUDIT + params) for params in ("", "?action=key.created")}
    assert many == few


def test_api_lists_queries_do_not_grow(workspace, members):
    _key, token = apikey_create(
        workspace=workspace, name="lists", scopes=["audit:read", "keys:read"],
        environment="development", **by(members["admin"]),
    )
    client = Client(headers={"Authorization": f"Bearer {token}"})
    add_keys(workspace, members["admin"], 2)
    add_events(workspace, 2)
    few = [queries(client, "/api/v1/keys"), queries(client, "/api/v1/audit-events")]
    add_keys(workspace, members["admin"], 1000)
    add_events(workspace, 5000)
    many = [queries(client, "/api/v1/keys"), queries(client, "/api/v1/audit-events")]
    assert many == few
