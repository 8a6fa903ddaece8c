"""OAuth access tokens verified like API keys (oauth/tokencache.py): cached per process, served
with no query (and, under a fresh lease, no Redis call) and invalidated by every change that ends
or narrows them — a grant revoked, refresh-token reuse, a member demoted or removed, an app
deleted — and a token's expiry is honoured to the instant. Through the gateway, on a Redis of
the test's own; the processes-crossing cases are tests/reliability/test_push_invalidation.py."""

from __future__ import annotations

import threading
import time
from datetime import timedelta
from http import HTTPStatus

import pytest
import redis
import time_machine
from django.conf import settings
from django.test import Client
from django.utils import timezone
from oauth2_provider.models import AccessToken

from core import leases
from oauth.models import Connection
from oauth.selectors import token_checksum
from oauth.services import connection_revoke, oauth_app_delete
from oauth.tokencache import token_cache, token_marker
from oauth.verifier import verify_access_token
from tests.factories import by
from tests.servers import wait_until
from workspaces.models import Membership
from workspaces.services import membership_change_role, membership_remove

from .conftest import API_RESOURCE
from .test_tokens import refresh


def bearer(token: str) -> Client:
    return Client(headers={"Authorization": f"Bearer {token}"})


def wait_for_lease() -> None:
    leases.ensure_subscriber()
    wait_until(
        lambda: leases.state.url == settings.REDIS_URL
        and time.monotonic() < leases.state.lease_until - 0.5,
        timeout=10, what="a lease on the test's Redis",
    )


@pytest.fixture
def redis_commands(monkeypatch):
    """The Redis commands this thread sends (the subscriber thread's own are not counted)."""
    sent: list[str] = []
    execute = redis.Redis.execute_command
    me = threading.current_thread()

    def counting(self, *args, **options):
        if threading.current_thread() is me:
            sent.append(str(args[0]))
        return execute(self, *args, **options)

    monkeypatch.setattr(redis.Redis, "execute_command", counting)
    return sent


def test_a_cached_token_needs_no_query_and_under_a_lease_no_redis_call(
    own_redis, oauth_app, tokens_for, django_assert_num_queries, redis_commands
) -> None:
    token = tokens_for(oauth_app)["access_token"]
    wait_for_lease()
    client = bearer(token)
    assert client.get("/api/v1/me").status_code == HTTPStatus.OK  # read, touched, cached
    entry = token_cache.get(token_checksum(token))
    assert entry is not None and leases.lease_fresh(entry.ticket)
    assert token not in repr(entry.versions)  # kept by DOT's checksum; markers name a prefix
    with django_assert_num_queries(0):
        principal = verify_access_token(token, ip=None, resource=API_RESOURCE)
    assert principal.kind == "oauth" and principal.lease == entry.ticket

    redis_commands.clear()
    for _ in range(5):
        response = client.get("/api/v1/me")
        assert response.status_code == HTTPStatus.OK
        assert response.json()["principal"]["kind"] == "oauth"
    assert redis_commands == []


def test_without_a_lease_the_gateways_one_call_confirms_the_cached_token(
    own_redis, oauth_app, tokens_for, redis_commands, members, settings
) -> None:
    settings.GATEHOUSE_CACHE_PUSH = False
    token = tokens_for(oauth_app)["access_token"]
    client = bearer(token)
    assert client.get("/api/v1/me").status_code == HTTPStatus.OK
    redis_commands.clear()
    assert client.get("/api/v1/me").status_code == HTTPStatus.OK
    assert redis_commands == ["EVALSHA"]  # the markers, confirmed in the gate's one call

    connection_revoke(connection=Connection.objects.get(), **by(members["admin"]))
    response = client.get("/api/v1/me")
    assert (response.status_code, response.json()["error"]) == (
        HTTPStatus.UNAUTHORIZED, "invalid_token")


def _served_then(client: Client, change) -> dict:
    assert client.get("/api/v1/me").status_code == HTTPStatus.OK
    assert client.get("/api/v1/me").status_code == HTTPStatus.OK  # from the cache
    change()
    response = client.get("/api/v1/me")
    assert response.status_code == HTTPStatus.UNAUTHORIZED, response.content
    return response.json()


def test_a_revoked_grant_is_refused_by_the_next_request(
    own_redis, oauth_app, tokens_for, members
) -> None:
    token = tokens_for(oauth_app)["access_token"]
    wait_for_lease()
    body = _served_then(
        bearer(token),
        lambda: connection_revoke(connection=Connection.objects.get(), **by(members["admin"])),
    )
    assert body["error"] == "invalid_token"
    assert token_cache.get(token_checksum(token)) is None


def test_refresh_token_reuse_cuts_off_the_cached_access_token(
    own_redis, oauth_app, tokens_for
) -> None:
    first = tokens_for(oauth_app)
    wait_for_lease()
    second = refresh(oauth_app, first["refresh_token"]).json()
    client = bearer(second["access_token"])

    def reuse() -> None:
        with time_machine.travel(timezone.now() + timedelta(seconds=3), tick=False):
            assert refresh(oauth_app, first["refresh_token"]).status_code == 400

    _served_then(client, reuse)


def test_the_rotated_access_token_is_refused_after_a_refresh(
    own_redis, oauth_app, tokens_for
) -> None:
    first = tokens_for(oauth_app)
    wait_for_lease()
    _served_then(
        bearer(first["access_token"]),
        lambda: refresh(oauth_app, first["refresh_token"]),
    )


def test_a_demoted_member_loses_write_on_the_next_request(
    own_redis, oauth_app, tokens_for, members, workspace
) -> None:
    token = tokens_for(oauth_app, "editor")["access_token"]
    wait_for_lease()
    before = verify_access_token(token, ip=None, resource=API_RESOURCE)
    assert "passports:write" in before.scopes
    assert verify_access_token(token, ip=None, resource=API_RESOURCE).versions  # cached
    membership = Membership.objects.get(user=members["editor"], workspace=workspace)
    membership_change_role(membership=membership, role="viewer", **by(members["owner"]))
    after = verify_access_token(token, ip=None, resource=API_RESOURCE)
    assert "passports:write" not in after.scopes
    response = bearer(token).post(
        "/api/v1/passports", {"gtin": "4006381333931", "serial_number": "S", "product_name": "P"},
        content_type="application/json",
    )
    assert (response.status_code, response.json()["error"]) == (
        HTTPStatus.FORBIDDEN, "insufficient_scope")


def test_a_removed_member_is_refused_on_the_next_request(
    own_redis, oauth_app, tokens_for, members, workspace
) -> None:
    token = tokens_for(oauth_app, "editor")["access_token"]
    wait_for_lease()
    membership = Membership.objects.get(user=members["editor"], workspace=workspace)
    body = _served_then(
        bearer(token), lambda: membership_remove(membership=membership, **by(members["owner"]))
    )
    assert body["error"] == "invalid_token"


def test_a_deleted_app_is_refused_on_the_next_request(
    own_redis, oauth_app, tokens_for, members
) -> None:
    token = tokens_for(oauth_app)["access_token"]
    wait_for_lease()
    _served_then(
        bearer(token),
        lambda: oauth_app_delete(application=oauth_app.application, **by(members["admin"])),
    )


def test_a_cached_token_expires_at_its_exact_instant(
    own_redis, oauth_app, tokens_for
) -> None:
    token = tokens_for(oauth_app)["access_token"]
    wait_for_lease()
    client = bearer(token)
    assert client.get("/api/v1/me").status_code == HTTPStatus.OK
    expires = AccessToken.objects.get(token_checksum=token_checksum(token)).expires
    assert token_cache.get(token_checksum(token)) is not None
    with time_machine.travel(expires - timedelta(milliseconds=1), tick=False):
        assert client.get("/api/v1/me").status_code == HTTPStatus.OK
    with time_machine.travel(expires, tick=False):
        response = client.get("/api/v1/me")
    assert response.status_code == HTTPStatus.UNAUTHORIZED
    assert "expired" in response.json()["message"]
    assert token_cache.get(token_checksum(token)) is None  # a refusal is never cached


def test_an_edited_token_is_read_again(own_redis, oauth_app, tokens_for) -> None:
    """Any change of the token row (here its scope, as the admin could) invalidates it."""
    token = tokens_for(oauth_app, "editor")["access_token"]
    wait_for_lease()
    assert "passports:write" in verify_access_token(token, ip=None, resource=API_RESOURCE).scopes
    row = AccessToken.objects.get(token_checksum=token_checksum(token))
    row.scope = "passports:read"
    row.save()
    assert verify_access_token(token, ip=None, resource=API_RESOURCE).scopes == {"passports:read"}
    assert token_marker(row.token_checksum).startswith("gatehouse:tokver:")
