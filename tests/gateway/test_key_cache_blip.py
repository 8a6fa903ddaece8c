"""The key cache after a Redis blip (issue 13 point 10): it never outlives what it can confirm,
and a change that could not reach Redis says so to the person who made it.

Redis here keeps its data across a stop and start (an append-only file, as in production), so
the version markers come back with the values the cache was read under: only what the workers
do about the blip can make them refuse a key that was revoked during it."""

from http import HTTPStatus

import pytest
from django.core.management import CommandError, call_command
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from apikeys.keycache import PENDING_WARNING, key_cache, keycache_pending
from apikeys.models import ApiKey, KeyStatus
from apikeys.tokens import token_digest
from tests.factories import UserFactory
from tests.servers import wait_until

pytestmark = [
    pytest.mark.django_db,
    # Keeps its data across a stop and start, and gives up on a dead socket within half a second.
    pytest.mark.parametrize("own_redis", [{"persist": True, "timeout": 0.5}], indirect=True),
]


def _me(token: str):
    return Client(headers={"Authorization": f"Bearer {token}"}).get("/api/v1/me")


def test_a_worker_that_could_not_reach_redis_reads_every_key_from_the_database(
    own_redis, make_key
) -> None:
    key, token = make_key(name="Cached before the blip")
    _other, other_token = make_key(name="Used during the blip")
    assert _me(token).status_code == HTTPStatus.OK
    assert key_cache.get(token_digest(token)) is not None

    own_redis.stop()
    # This process's Redis call fails (a key that needs no counting is still served, from the
    # database) ...
    assert _me(other_token).status_code == HTTPStatus.OK
    # ... while another process revokes the first key and cannot bump its marker (the bump is
    # lost: here the row is changed without one).
    ApiKey.objects.filter(pk=key.pk).update(status=KeyStatus.REVOKED, revoked_at=timezone.now())
    own_redis.start()  # the markers come back unchanged

    refused = _me(token)
    assert refused.status_code == HTTPStatus.UNAUTHORIZED
    assert refused.json()["error"] == "key_revoked"
    assert _me(other_token).status_code == HTTPStatus.OK  # cached again, under fresh markers


def test_a_dashboard_revoke_that_cannot_reach_redis_says_so(
    own_redis, make_key, client_for
) -> None:
    key, token = make_key(name="Revoked in the blip")
    assert _me(token).status_code == HTTPStatus.OK
    admin = client_for("admin")
    url = reverse("apikeys:revoke", args=["acme", key.public_id])
    own_redis.stop()
    response = admin.post(url, follow=True)
    assert response.status_code == HTTPStatus.OK
    page = response.content.decode()
    assert "Revoked “Revoked in the blip”" in page
    assert "Redis could not be reached" in page
    key.refresh_from_db()
    assert key.status == KeyStatus.REVOKED
    assert keycache_pending(key)

    # The same over htmx: the warning is shown on the list page it is sent to.
    key2, _token2 = make_key(name="Also revoked")
    htmx = admin.post(reverse("apikeys:revoke", args=["acme", key2.public_id]),
                      headers={"HX-Request": "true"})
    assert htmx.status_code == HTTPStatus.OK
    assert htmx["HX-Redirect"] == reverse("apikeys:list", args=["acme"])
    assert "Redis could not be reached" in admin.get(htmx["HX-Redirect"]).content.decode()

    own_redis.start()
    # This process keeps retrying the bump it owes; once Redis is back it gets through.
    wait_until(lambda: not keycache_pending(key) and not keycache_pending(key2), timeout=10,
               what="the owed invalidation")
    assert _me(token).json()["error"] == "key_revoked"


def test_a_dashboard_revoke_with_redis_up_says_nothing_more(
    own_redis, make_key, client_for
) -> None:
    key, _token = make_key(name="Plain revoke")
    response = client_for("admin").post(
        reverse("apikeys:revoke", args=["acme", key.public_id]), follow=True
    )
    page = response.content.decode()
    assert "Revoked “Plain revoke”" in page
    assert "Redis could not be reached" not in page
    assert not keycache_pending(key)


def test_an_admin_revoke_that_cannot_reach_redis_says_so(own_redis, make_key) -> None:
    key, _token = make_key(name="Admin revoke")
    staff = UserFactory(email="ops@gatehouse.test", is_staff=True, is_superuser=True)
    client = Client()
    client.force_login(staff)
    own_redis.stop()
    response = client.post(
        reverse("admin:apikeys_apikey_changelist"),
        {"action": "revoke_selected", "_selected_action": [key.pk], "apply": "1"}, follow=True,
    )
    assert response.status_code == HTTPStatus.OK
    page = response.content.decode()
    assert "Revoked 1 key(s)." in page
    assert "Admin revoke" in page and "Redis could not be reached" in page
    key.refresh_from_db()
    assert key.status == KeyStatus.REVOKED


def test_the_revoke_command_exits_3_when_redis_cannot_be_told(own_redis, make_key, capsys) -> None:
    key, _token = make_key(name="Command revoke")
    other, _ = make_key(name="Command revoke, Redis up")
    call_command("revoke_api_key", other.public_id)  # Redis up: exit 0, no warning
    assert "Revoked" in capsys.readouterr().out
    own_redis.stop()
    with pytest.raises(CommandError) as refused:
        call_command("revoke_api_key", key.public_id)
    assert refused.value.returncode == 3
    assert str(refused.value) == PENDING_WARNING
    assert f"Revoked {key.public_id}" in capsys.readouterr().out
    key.refresh_from_db()
    assert key.status == KeyStatus.REVOKED
