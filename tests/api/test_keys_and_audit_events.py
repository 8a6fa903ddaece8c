"""`GET /api/v1/keys` (metadata only) and `GET /api/v1/audit-events` (filters, newest first)."""

import json
from datetime import timedelta
from http import HTTPStatus

import pytest
import time_machine
from django.utils import timezone

from apikeys.models import ApiKey
from apikeys.services import apikey_pause, apikey_revoke
from audit.models import AuditEvent
from tests.factories import by

pytestmark = pytest.mark.django_db


def test_keys_are_listed_newest_first_with_metadata_only(make_key, api, members) -> None:
    first, _ = make_key(["passports:read"], name="First", allowed_ips=["10.0.0.0/8"])
    paused, _ = make_key(["passports:read"], name="Paused")
    apikey_pause(key=paused, **by(members["admin"]))
    revoked, _ = make_key(["passports:read"], name="Revoked")
    apikey_revoke(key=revoked, **by(members["admin"]))
    caller, token = make_key(["keys:read"], name="Caller")
    response = api(token).get("/api/v1/keys")
    assert response.status_code == HTTPStatus.OK
    body = response.json()
    assert [k["name"] for k in body["data"]] == ["Caller", "Revoked", "Paused", "First"]
    assert body["next_cursor"] is None
    by_name = {k["name"]: k for k in body["data"]}
    assert by_name["First"] == {
        "id": first.public_id,
        "name": "First",
        "note": "",
        "hint": first.display_hint,
        "environment": "development",
        "scopes": ["passports:read"],
        "status": "active",
        "created_at": by_name["First"]["created_at"],
        "expires_at": None,
        "revoked_at": None,
        "last_used_at": None,
        "rate_limit_per_minute": None,
        "allowed_ips": ["10.0.0.0/8"],
        "rotated_from": None,
        "collections": None,
        "budget": {
            "daily_cap": None, "used_today": None, "credits": None, "credits_remaining": None,
            "credits_refill": None, "credits_refill_at": None,
        },
        "new_network": None,
    }
    assert by_name["Paused"]["status"] == "paused"
    assert by_name["Revoked"]["status"] == "revoked"
    assert by_name["Revoked"]["revoked_at"].endswith("Z")
    # Neither the token nor its digest ever leaves the server.
    text = response.content.decode()
    assert token not in text and "gk_dev_" + token[7:11] not in text
    for key in ApiKey.objects.all():
        assert key.digest not in text


def test_expired_keys_show_as_expired(make_key, api) -> None:
    make_key(["passports:read"], name="Short", expires_at=timezone.now() + timedelta(hours=1))
    _caller, token = make_key(["keys:read"])
    with time_machine.travel(timezone.now() + timedelta(hours=2)):
        body = api(token).get("/api/v1/keys").json()
    assert {k["name"]: k["status"] for k in body["data"]}["Short"] == "expired"


def test_keys_page_and_stay_in_the_workspace(make_key, api, other_workspace) -> None:
    make_key(workspace=other_workspace, name="Theirs")
    for n in range(4):
        make_key(["passports:read"], name=f"Key {n}")
    _caller, token = make_key(["keys:read"], name="Caller")
    client = api(token)
    page1 = client.get("/api/v1/keys?limit=3").json()
    page2 = client.get(f"/api/v1/keys?limit=3&cursor={page1['next_cursor']}").json()
    names = [k["name"] for k in page1["data"] + page2["data"]]
    assert names == ["Caller", "Key 3", "Key 2", "Key 1", "Key 0"]
    assert page2["next_cursor"] is None


def test_key_list_query_count_does_not_grow(make_key, api, django_assert_max_num_queries) -> None:
    for n in range(4):
        make_key(["passports:read"], name=f"Key {n}")
    _caller, token = make_key(["keys:read"])
    client = api(token)
    with django_assert_max_num_queries(3):
        assert len(client.get("/api/v1/keys").json()["data"]) == 5


# --- audit events --------------------------------------------------------------------------------


@pytest.fixture
def auditor(make_key, api):
    _key, token = make_key(["audit:read", "passports:write"], name="Auditor")
    return api(token)


def _post_passport(client, serial: str):
    return client.post(
        "/api/v1/passports",
        json.dumps({"gtin": "4006381333931", "serial_number": serial, "product_name": "Drill"}),
        content_type="application/json",
    )


def test_audit_events_newest_first_and_paged(auditor) -> None:
    for n in range(3):
        _post_passport(auditor, f"SN-{n}")
    ids_newest_first = list(
        AuditEvent.objects.filter(workspace__slug="acme").order_by("-id")
        .values_list("public_id", flat=True)
    )
    seen, cursor = [], None
    while True:
        url = "/api/v1/audit-events?limit=2" + (f"&cursor={cursor}" if cursor else "")
        body = auditor.get(url).json()
        seen += [e["id"] for e in body["data"]]
        cursor = body["next_cursor"]
        if not cursor:
            break
    assert seen == ids_newest_first
    newest = auditor.get("/api/v1/audit-events?limit=1").json()["data"][0]
    assert newest["action"] == "passport.created"
    assert newest["actor"]["type"] == "api_key" and newest["actor"]["label"] == "Auditor"
    assert newest["target"]["type"] == "passport"
    assert newest["created_at"].endswith("Z")


def test_audit_events_filter_by_action(auditor) -> None:
    _post_passport(auditor, "SN-1")
    body = auditor.get("/api/v1/audit-events?action=key.created").json()
    assert body["data"] and {e["action"] for e in body["data"]} == {"key.created"}
    body = auditor.get("/api/v1/audit-events?action=passport.created").json()
    assert [e["action"] for e in body["data"]] == ["passport.created"]


def test_audit_events_filter_by_actor_as_the_dashboard_does(auditor) -> None:
    _post_passport(auditor, "SN-1")  # by the key "Auditor"; the key was created by admin@
    by_key = auditor.get("/api/v1/audit-events?actor=Auditor").json()["data"]
    assert [e["action"] for e in by_key] == ["passport.created"]
    by_admin = auditor.get("/api/v1/audit-events", {"actor": "admin@acme.test"}).json()["data"]
    assert by_admin and {e["actor"]["label"] for e in by_admin} == {"admin@acme.test"}
    assert "passport.created" not in {e["action"] for e in by_admin}


def test_audit_events_filter_by_time(auditor) -> None:
    start = timezone.now()
    with time_machine.travel(start + timedelta(hours=1)):
        _post_passport(auditor, "SN-LATER")
    since = (start + timedelta(minutes=30)).isoformat().replace("+00:00", "Z")
    until = start.isoformat()
    later = auditor.get("/api/v1/audit-events", {"since": since}).json()["data"]
    assert [e["action"] for e in later] == ["passport.created"]
    earlier = auditor.get("/api/v1/audit-events", {"until": until}).json()["data"]
    assert earlier and "passport.created" not in {e["action"] for e in earlier}


def test_audit_events_stay_in_the_workspace(auditor, make_key, other_workspace) -> None:
    make_key(workspace=other_workspace, name="Theirs")  # key.created in globex
    body = auditor.get("/api/v1/audit-events?limit=100").json()
    assert body["data"]
    labels = {e["target"]["label"] for e in body["data"]}
    assert not any("Theirs" in label for label in labels)


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ({"since": "yesterday"}, "since"),
        ({"until": "2026-13-45T00:00:00Z"}, "until"),
        ({"since": "0001-01-01T00:00:00+05:00"}, "since"),
        ({"since": "2026-01-02T00:00:00Z", "until": "2026-01-01T00:00:00Z"}, "until"),
        ({"action": "no.such.action"}, "action"),
        ({"cursor": "forged"}, "cursor"),
        ({"limit": "1000000"}, "limit"),
        ({"actr": "someone"}, "actr"),
    ],
)
def test_bad_audit_event_queries_are_400(auditor, query, field) -> None:
    response = auditor.get("/api/v1/audit-events", query)
    assert response.status_code == HTTPStatus.BAD_REQUEST
    body = response.json()
    assert body["error"] == "invalid_request"
    assert field in body["fields"]
