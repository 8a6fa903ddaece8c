"""Networks: suggest and alert (issue 16 point 4). Each key remembers the networks (IPv4 /24,
IPv6 /48) it was used from, written by the buffered usage flush (no write on the request path);
the key's page lists them and restricts the key to them in one click; a first use from a network
never seen before, once the key has a week of history, flags the key and records
`key.new_network`."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from http import HTTPStatus

import pytest
import time_machine
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from apikeys.models import NETWORKS_PER_KEY, ApiKey, KeyNetwork
from apikeys.services import apikey_revoke
from audit.models import AuditEvent
from gateway.usage import UsageBuffer, usage_flush
from tests.factories import by

pytestmark = pytest.mark.django_db

START = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)


def detail(key: ApiKey) -> str:
    return reverse("apikeys:detail", kwargs={"slug": "acme", "key_id": key.public_id})


def restrict(key: ApiKey) -> str:
    return reverse("apikeys:networks_restrict", kwargs={"slug": "acme", "key_id": key.public_id})


def dismiss(key: ApiKey) -> str:
    return reverse("apikeys:network_dismiss", kwargs={"slug": "acme", "key_id": key.public_id})


def networks_of(key: ApiKey) -> dict[str, int]:
    return dict(KeyNetwork.objects.filter(api_key=key).values_list("network", "request_count"))


def call_from(client, ip: str) -> int:
    return client.get("/api/v1/me", REMOTE_ADDR=ip).status_code


def new_network_events(key: ApiKey) -> list[AuditEvent]:
    return list(AuditEvent.objects.filter(action="key.new_network", target_id=key.public_id))


def test_requests_remember_their_networks_with_no_write_on_the_request_path(
    make_key, api
) -> None:
    key, token = make_key()
    client = api(token)
    with CaptureQueriesContext(connection) as queries:
        for ip in ("203.0.113.5", "203.0.113.77", "198.51.100.1", "2001:db8:1:2::1",
                   "2001:db8:1:ffff::9", "::ffff:192.0.2.3"):
            assert call_from(client, ip) == HTTPStatus.OK
    assert not [q for q in queries.captured_queries
                if q["sql"].lstrip().upper().startswith(("INSERT", "UPDATE", "DELETE"))]
    assert not KeyNetwork.objects.exists()
    usage_flush()
    assert networks_of(key) == {
        "203.0.113.0/24": 2, "198.51.100.0/24": 1, "2001:db8:1::/48": 2, "192.0.2.0/24": 1,
    }
    # Later flushes add up; last seen moves forward only.
    assert call_from(client, "203.0.113.9") == HTTPStatus.OK
    usage_flush()
    assert networks_of(key)["203.0.113.0/24"] == 3
    key.refresh_from_db()
    assert key.new_network == ""  # the first networks of a key are not "new"
    assert new_network_events(key) == []


def test_a_refused_attempt_is_not_a_network_the_key_was_used_from(make_key, api) -> None:
    key, token = make_key(allowed_ips=["10.0.0.0/8"])
    assert call_from(api(token), "203.0.113.5") == HTTPStatus.FORBIDDEN
    usage_flush()
    assert networks_of(key) == {}


def test_a_new_network_after_a_week_of_history_flags_the_key_once(
    make_key, api, client_for
) -> None:
    with time_machine.travel(START, tick=False):
        key, token = make_key(scopes=["keys:read"])
        client = api(token)
        assert call_from(client, "203.0.113.5") == HTTPStatus.OK
        usage_flush()
    # Within the first week another network is just another network.
    with time_machine.travel(START + timedelta(days=3), tick=False):
        assert call_from(client, "198.51.100.20") == HTTPStatus.OK
        usage_flush()
    key.refresh_from_db()
    assert key.new_network == "" and new_network_events(key) == []

    seen = START + timedelta(days=9)
    with time_machine.travel(seen, tick=False):
        assert call_from(client, "192.0.2.44") == HTTPStatus.OK
        assert call_from(client, "192.0.2.45") == HTTPStatus.OK
        usage_flush()
        assert call_from(client, "192.0.2.46") == HTTPStatus.OK  # the same network again
        usage_flush()
        listed = client.get("/api/v1/keys", REMOTE_ADDR="192.0.2.46").json()["data"]
    key.refresh_from_db()
    assert (key.new_network, key.new_network_at) == ("192.0.2.0/24", seen)
    [event] = new_network_events(key)
    assert event.metadata["network"] == "192.0.2.0/24"
    assert (event.actor_type, event.actor_label) == ("system", "usage monitor")
    assert (event.ip, event.metadata["door"]) == ("192.0.2.44", "usage")  # the first request
    assert event.workspace_id == key.workspace_id
    [shown] = [k for k in listed if k["id"] == key.public_id]
    assert shown["new_network"] == {"network": "192.0.2.0/24", "seen_at": "2026-11-11T09:00:00Z"}

    admin = client_for("admin")
    listing = admin.get(reverse("apikeys:list", kwargs={"slug": "acme"})).content.decode()
    row = listing.split(f'id="key-{key.public_id}"', 1)[1].split("</tr>", 1)[0]
    assert 'data-warning="new_network"' in row and "New network" in row
    page = admin.get(detail(key)).content.decode()
    assert "Used from a new network, 192.0.2.0/24" in page
    assert page.count('data-testid="network-row"') == 3

    # Dismissing clears the flag and keeps the networks.
    response = admin.post(dismiss(key))
    assert response.status_code == HTTPStatus.SEE_OTHER
    key.refresh_from_db()
    assert key.new_network == "" and key.new_network_at is None
    assert len(networks_of(key)) == 3
    assert 'data-warning="new_network"' not in admin.get(detail(key)).content.decode()


def test_two_workers_flushing_the_same_new_network_record_it_once(make_key) -> None:
    key, _token = make_key()
    KeyNetwork.objects.create(api_key=key, network="203.0.113.0/24", request_count=5,
                              first_seen_at=START, last_seen_at=START)
    at = START + timedelta(days=10)
    a, b = UsageBuffer(), UsageBuffer()  # two worker processes' buffers
    for buffer in (a, b):
        buffer.record(key_id=key.pk, at=at, ip="198.51.100.7", method="GET",
                      path="/api/v1/me", status=200, latency_ms=1)
    a.flush()
    b.flush()
    assert networks_of(key)["198.51.100.0/24"] == 2
    assert len(new_network_events(key)) == 1


def test_a_key_remembers_a_bounded_number_of_networks(make_key) -> None:
    key, _token = make_key()
    buffer = UsageBuffer()
    for i in range(NETWORKS_PER_KEY + 8):  # more than a buffer keeps between flushes
        buffer.record(key_id=key.pk, at=START + timedelta(seconds=i), ip=f"10.{i}.0.1",
                      method="GET", path="/api/v1/me", status=200, latency_ms=1)
    buffer.flush()
    assert len(networks_of(key)) == NETWORKS_PER_KEY
    for i in range(8):  # newer networks push the least recently seen out
        buffer.record(key_id=key.pk, at=START + timedelta(hours=1, seconds=i),
                      ip=f"172.16.{i}.1", method="GET", path="/api/v1/me", status=200,
                      latency_ms=1)
    buffer.flush()
    remembered = networks_of(key)
    assert len(remembered) == NETWORKS_PER_KEY
    assert all(f"172.16.{i}.0/24" in remembered for i in range(8))
    assert "10.0.0.0/24" not in remembered


@pytest.mark.parametrize("ip", [None, "", "not-an-ip", "10.0.0.1\x00", "\ud800", "1" * 5000])
def test_an_address_that_is_not_one_records_no_network(make_key, ip) -> None:
    key, _token = make_key()
    buffer = UsageBuffer()
    buffer.record(key_id=key.pk, at=START, ip=ip, method="GET", path="/api/v1/me", status=200,
                  latency_ms=1)
    assert buffer.flush() == 1
    assert networks_of(key) == {}


def test_restrict_to_these_networks_in_one_click(make_key, api, client_for) -> None:
    key, token = make_key()
    client = api(token)
    for ip in ("203.0.113.5", "2001:db8:1:2::1"):
        assert call_from(client, ip) == HTTPStatus.OK
    usage_flush()
    admin = client_for("admin")
    page = admin.get(detail(key)).content.decode()
    assert f'href="{restrict(key)}"' in page

    asked = admin.get(restrict(key))  # the confirmation step, a page with or without JavaScript
    assert asked.status_code == HTTPStatus.OK
    assert "203.0.113.0/24" in asked.content.decode()
    key.refresh_from_db()
    assert key.allowed_ips == []  # asking changes nothing

    response = admin.post(restrict(key))
    assert response.status_code == HTTPStatus.SEE_OTHER
    assert response["Location"] == detail(key)
    key.refresh_from_db()
    assert key.allowed_ips == ["2001:db8:1::/48", "203.0.113.0/24"]
    [event] = AuditEvent.objects.filter(action="key.updated", target_id=key.public_id)
    assert event.metadata["allowed_ips"] == [[], ["2001:db8:1::/48", "203.0.113.0/24"]]
    # From the next request on: inside the networks served, outside refused.
    assert call_from(client, "203.0.113.200") == HTTPStatus.OK
    refused = client.get("/api/v1/me", REMOTE_ADDR="198.51.100.1")
    assert refused.status_code == HTTPStatus.FORBIDDEN
    assert refused.json()["error"] == "ip_not_allowed"
    followed = admin.get(detail(key)).content.decode()
    assert "now accepts requests only from 2001:db8:1::/48, 203.0.113.0/24" in followed


def test_restricting_a_key_never_used_is_refused_and_changes_nothing(make_key, client_for):
    key, _token = make_key()
    admin = client_for("admin")
    assert 'data-testid="no-networks"' in admin.get(detail(key)).content.decode()
    response = admin.post(restrict(key))
    assert response.status_code == HTTPStatus.UNPROCESSABLE_ENTITY
    assert "has not been used from any network yet" in response.content.decode()
    key.refresh_from_db()
    assert key.allowed_ips == []
    assert not AuditEvent.objects.filter(action="key.updated").exists()


def test_a_revoked_key_cannot_be_restricted(make_key, api, client_for) -> None:
    key, token = make_key()
    assert call_from(api(token), "203.0.113.5") == HTTPStatus.OK
    usage_flush()
    apikey_revoke(key=key, **by())
    response = client_for("admin").post(restrict(key))
    assert response.status_code == HTTPStatus.CONFLICT
    key.refresh_from_db()
    assert key.allowed_ips == []


def test_members_without_the_role_see_no_button_and_get_403(make_key, api, client_for):
    key, token = make_key()
    assert call_from(api(token), "203.0.113.5") == HTTPStatus.OK
    usage_flush()
    viewer = client_for("viewer")
    page = viewer.get(detail(key)).content.decode()
    assert "203.0.113.0/24" in page and f'href="{restrict(key)}"' not in page
    assert viewer.post(restrict(key)).status_code == HTTPStatus.FORBIDDEN
    assert viewer.post(dismiss(key)).status_code == HTTPStatus.FORBIDDEN
    key.refresh_from_db()
    assert key.allowed_ips == []
