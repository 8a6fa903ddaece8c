"""The per-process cache of verified API keys (apikeys/keycache.py): a request served from it
touches no database, and every change of a key, its workspace or its plan reaches the very next
request, including after Redis lost its data. Runs on a redis-server of its own (`own_redis`),
so it runs in the SQLite pass too; the cross-process version is tests/reliability/test_two_servers.
"""

from __future__ import annotations

import threading
import time
from http import HTTPStatus

import pytest
import redis
from django.db import connection
from django.forms.models import model_to_dict
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from apikeys.keycache import MAX_AGE_SECONDS, key_cache
from apikeys.models import ApiKey
from apikeys.services import (
    apikey_pause,
    apikey_resume,
    apikey_revoke,
    apikey_rotate,
    apikey_set_rate_limit,
)
from gateway.models import IdempotencyRecord, IdempotencyStatus
from passports.services import passport_create
from tests.factories import UserFactory, by
from workspaces.services import workspace_change_plan

pytestmark = pytest.mark.django_db

GTIN = "4006381333931"


def key_queries(queries: CaptureQueriesContext) -> list[str]:
    return [q["sql"] for q in queries.captured_queries if "apikeys_apikey" in q["sql"]]


def me(client: Client):
    return client.get("/api/v1/me")


def test_a_verified_key_is_served_from_the_cache_without_reading_its_row(
    own_redis, make_key, api
) -> None:
    key, token = make_key()
    client = api(token)
    with CaptureQueriesContext(connection) as first:
        assert me(client).status_code == HTTPStatus.OK
    assert len(key_queries(first)) == 1
    with CaptureQueriesContext(connection) as second:
        response = me(client)
    assert response.status_code == HTTPStatus.OK
    assert response.json()["principal"]["id"] == key.public_id
    assert key_queries(second) == []
    assert len(second.captured_queries) == 0  # /me needs nothing else from the database


def test_every_change_through_a_service_reaches_the_next_request(
    own_redis, make_key, api, members, workspace, plan
) -> None:
    key, token = make_key()
    client = api(token)
    assert me(client).status_code == HTTPStatus.OK  # cached from here on

    apikey_pause(key=key, **by(members["admin"]))
    assert me(client).json()["error"] == "key_paused"
    apikey_resume(key=key, **by(members["admin"]))
    assert me(client).status_code == HTTPStatus.OK

    apikey_set_rate_limit(key=key, rate_limit_per_minute=1, **by(members["admin"]))
    assert me(client).status_code == HTTPStatus.OK
    limited = me(client)
    assert (limited.status_code, limited.json()["error"]) == (
        HTTPStatus.TOO_MANY_REQUESTS, "rate_limited")
    apikey_set_rate_limit(key=key, rate_limit_per_minute=None, **by(members["admin"]))
    assert me(client).status_code == HTTPStatus.OK

    passport = passport_create(workspace=workspace, gtin=GTIN, serial_number="SN-1",
                               product_name="Drill", **by())
    read = client.get(f"/api/v1/passports/{passport.public_id}")
    assert read["X-RateLimit-Limit"] == str(plan("free").passport_reads_per_day)
    workspace_change_plan(workspace=workspace, plan=plan("basic"), **by())
    read = client.get(f"/api/v1/passports/{passport.public_id}")
    assert read["X-RateLimit-Limit"] == str(plan("basic").passport_reads_per_day)

    apikey_rotate(key=key, overlap="now", **by(members["admin"]))
    assert me(client).json()["error"] == "key_expired"


@pytest.mark.parametrize("field", ["plan", "name"])
def test_ops_editing_a_plan_or_workspace_in_django_admin_reaches_the_next_request(
    own_redis, make_key, api, workspace, plan, field
) -> None:
    """Cached keys carry their workspace and plan: an admin edit of either moves the epoch."""
    _key, token = make_key()
    client = api(token)
    passport = passport_create(workspace=workspace, gtin=GTIN, serial_number="SN-1",
                               product_name="Drill", **by())
    read = client.get(f"/api/v1/passports/{passport.public_id}")
    assert read["X-RateLimit-Limit"] == str(plan("free").passport_reads_per_day)
    ops = Client()
    ops.force_login(UserFactory(is_staff=True, is_superuser=True))
    if field == "plan":
        free = plan("free")
        data = {**model_to_dict(free), "passport_reads_per_day": 7}
        url = reverse("admin:workspaces_plan_change", args=[free.pk])
    else:
        data = {**model_to_dict(workspace, fields=["slug", "plan"]), "name": "Acme Renamed",
                "memberships-TOTAL_FORMS": 0, "memberships-INITIAL_FORMS": 0}
        url = reverse("admin:workspaces_workspace_change", args=[workspace.pk])
    saved = ops.post(url, {k: "" if v is None else v for k, v in data.items()})
    assert saved.status_code == HTTPStatus.FOUND, saved.content[:2000]
    if field == "plan":
        read = client.get(f"/api/v1/passports/{passport.public_id}")
        assert read["X-RateLimit-Limit"] == "7"
    else:
        assert me(client).json()["workspace"]["name"] == "Acme Renamed"


def test_a_revocation_reaches_the_next_request(own_redis, make_key, api, members) -> None:
    key, token = make_key()
    client = api(token)
    assert me(client).status_code == HTTPStatus.OK
    apikey_revoke(key=key, **by(members["admin"]))
    response = me(client)
    assert (response.status_code, response.json()["error"]) == (
        HTTPStatus.UNAUTHORIZED, "key_revoked")
    assert len(key_cache) == 0  # refusals are never cached


def test_a_revocation_while_redis_is_down_holds_when_redis_comes_back_empty(
    own_redis, make_key, api, members, caplog, django_capture_on_commit_callbacks
) -> None:
    key, token = make_key()
    client = api(token)
    assert me(client).status_code == HTTPStatus.OK

    own_redis.stop()
    with django_capture_on_commit_callbacks(execute=True):
        apikey_revoke(key=key, **by(members["admin"]))  # the marker cannot be moved
    assert "Could not reach Redis to invalidate" in caplog.text
    assert key.public_id in caplog.text and token not in caplog.text
    refused = me(client)  # Redis cannot confirm the cached key: read from the database
    assert refused.json()["error"] == "key_revoked"

    own_redis.start()  # same port, no data: the old marker values are gone for good
    assert me(client).json()["error"] == "key_revoked"


def test_a_cached_key_that_cannot_be_confirmed_is_read_again_before_it_is_served(
    own_redis, make_key, api
) -> None:
    key, token = make_key()
    client = api(token)
    assert me(client).status_code == HTTPStatus.OK
    own_redis.stop()
    own_redis.start()  # an empty Redis: no marker matches what the process cached
    ApiKey.objects.filter(pk=key.pk).update(status="paused")  # behind the services' back
    assert me(client).json()["error"] == "key_paused"


def test_a_change_behind_the_services_back_is_seen_within_the_max_age(
    own_redis, make_key, api, monkeypatch
) -> None:
    key, token = make_key()
    client = api(token)
    now = [1000.0]
    monkeypatch.setattr(key_cache, "clock", lambda: now[0])
    assert me(client).status_code == HTTPStatus.OK
    ApiKey.objects.filter(pk=key.pk).update(status="paused")  # raw: no marker moves
    assert me(client).status_code == HTTPStatus.OK  # the documented bound, not a bug
    now[0] += MAX_AGE_SECONDS + 1
    assert me(client).json()["error"] == "key_paused"


def test_a_stale_cached_key_releases_its_idempotency_claim_and_runs_once(
    own_redis, make_key, api, members, workspace
) -> None:
    key, token = make_key()
    client = api(token)
    passport = passport_create(workspace=workspace, gtin=GTIN, serial_number="SN-1",
                               product_name="Drill", **by())
    assert me(client).status_code == HTTPStatus.OK
    apikey_set_rate_limit(key=key, rate_limit_per_minute=50, **by(members["admin"]))

    def patch():
        return client.patch(f"/api/v1/passports/{passport.public_id}",
                            {"product_name": "Hammer drill"}, content_type="application/json",
                            headers={"Idempotency-Key": "rename-1"})

    first = patch()  # the cached key is stale: claim, release, verify again, claim, run
    assert first.status_code == HTTPStatus.OK
    # The stale attempt counted nothing: one unit of the writes budget, one of the rate limit.
    assert (first["X-RateLimit-Limit"], first["X-RateLimit-Remaining"]) == ("100", "99")
    counters = redis.Redis.from_url(own_redis.url)
    rate = [int(counters.get(name)) for name in counters.scan_iter(f"*:rl:{key.pk}:*")]
    assert rate == [1]
    record = IdempotencyRecord.objects.get(key="rename-1")
    assert record.status == IdempotencyStatus.COMPLETED
    replay = patch()
    assert replay.status_code == HTTPStatus.OK
    assert replay["Idempotent-Replayed"] == "true"


def test_every_metered_request_is_one_redis_round_trip(
    own_redis, make_key, api, members, workspace, monkeypatch, settings
) -> None:
    """The gate's Redis backend: the rate limit, the budget and the cached key's markers in one
    `EVALSHA`, whatever the gate answers (admitted, replayed, over the rate limit, a scope
    refusal, a conflicting Idempotency-Key). Without push invalidation (a request that counts
    nothing under a fresh lease makes none: tests/gateway/test_cache_push.py)."""
    settings.GATEHOUSE_CACHE_PUSH = False
    key, token = make_key(rate_limit_per_minute=6)
    _reader, reader_token = make_key(scopes=["passports:read"])
    client, reader = api(token), api(reader_token)
    passport = passport_create(workspace=workspace, gtin=GTIN, serial_number="SN-1",
                               product_name="Drill", **by())
    assert me(client).status_code == HTTPStatus.OK  # cached, and the script loaded
    assert me(reader).status_code == HTTPStatus.OK
    commands: list[str] = []
    execute = redis.Redis.execute_command

    def counting(self, *args, **options):
        commands.append(str(args[0]))
        return execute(self, *args, **options)

    monkeypatch.setattr(redis.Redis, "execute_command", counting)

    def patch(name: str, idempotency_key: str, as_client: Client = client):
        return as_client.patch(f"/api/v1/passports/{passport.public_id}", {"product_name": name},
                               content_type="application/json",
                               headers={"Idempotency-Key": idempotency_key})

    answers = [
        (lambda: client.get(f"/api/v1/passports/{passport.public_id}"), HTTPStatus.OK),
        (lambda: patch("Hammer drill", "k1"), HTTPStatus.OK),
        (lambda: patch("Hammer drill", "k1"), HTTPStatus.OK),  # replayed
        (lambda: patch("Other", "k1"), HTTPStatus.UNPROCESSABLE_ENTITY),
        (lambda: patch("Other", "k2", reader), HTTPStatus.FORBIDDEN),
        (lambda: me(client), HTTPStatus.OK),
        (lambda: me(client), HTTPStatus.TOO_MANY_REQUESTS),  # the 7th in the minute
    ]
    seen = []
    for send, status in answers:
        commands.clear()
        assert send().status_code == status
        seen.append((status, commands[:]))
    assert all(c == ["EVALSHA"] for _s, c in seen), seen


def test_a_refused_cached_key_is_checked_again_from_the_database(
    own_redis, make_key, api
) -> None:
    """A local refusal of a cached key (here: its allowed IPs) is never answered from the cache:
    the row is read again, and what it says now decides."""
    key, token = make_key(allowed_ips=["10.0.0.0/8"])
    inside = Client(headers={"Authorization": f"Bearer {token}"}, REMOTE_ADDR="10.1.2.3")
    outside = Client(headers={"Authorization": f"Bearer {token}"}, REMOTE_ADDR="192.0.2.1")
    assert me(inside).status_code == HTTPStatus.OK
    ApiKey.objects.filter(pk=key.pk).update(allowed_ips=[])  # widened behind the cache's back
    assert me(outside).status_code == HTTPStatus.OK


@pytest.mark.parametrize("switch", ["no REDIS_URL", "GATEHOUSE_KEY_CACHE=0"])
def test_without_redis_or_when_turned_off_every_request_reads_the_key(
    make_key, api, settings, request, switch
) -> None:
    if switch == "no REDIS_URL":
        settings.REDIS_URL = ""
    else:
        request.getfixturevalue("own_redis")
        settings.GATEHOUSE_KEY_CACHE = False
    _key, token = make_key()
    client = api(token)
    for _ in range(2):
        with CaptureQueriesContext(connection) as queries:
            assert me(client).status_code == HTTPStatus.OK
        assert len(key_queries(queries)) == 1
    assert len(key_cache) == 0


def test_the_cache_and_redis_hold_no_secret(own_redis, make_key, api) -> None:
    key, token = make_key()
    assert me(api(token)).status_code == HTTPStatus.OK
    client = redis.Redis.from_url(own_redis.url)
    stored = b" ".join(
        name + b" " + (client.get(name) or b"") for name in client.scan_iter()
        if client.type(name) == b"string"
    )
    assert token.encode() not in stored
    assert key.digest.encode() not in stored  # only a prefix names the marker
    assert list(key_cache._entries) == [key.digest]  # the process keeps the key by its digest


@pytest.mark.django_db(transaction=True)
def test_requests_racing_a_revocation_are_refused_once_it_has_returned(
    own_redis, make_key, members
) -> None:
    """Real threads keep one key busy while the main thread revokes it: no request that started
    after `apikey_revoke` returned is served, on any thread (they get 401, then 429 once the
    failed-authentication limit blocks the address)."""
    key, token = make_key()
    halt = threading.Event()
    revoked_at: list[float] = []
    late: list[tuple[int, str]] = []
    served_after = threading.Event()
    errors: list[BaseException] = []
    threads_n = 4
    # The main thread and every hammer, each hammer once its first request has been answered.
    lined_up = threading.Barrier(threads_n + 1, timeout=30)

    def hammer() -> None:
        client = Client(headers={"Authorization": f"Bearer {token}"})
        first = True
        try:
            while not halt.is_set():
                started = time.monotonic()
                response = me(client)
                if revoked_at and started > revoked_at[0]:
                    served_after.set()
                    if response.status_code < HTTPStatus.BAD_REQUEST:
                        late.append((response.status_code, response.content.decode()[:200]))
                if first:
                    first = False
                    lined_up.wait()
        except BaseException as exc:  # reported by the main thread
            lined_up.abort()
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=hammer) for _ in range(threads_n)]
    for thread in threads:
        thread.start()
    try:
        lined_up.wait()  # every thread has been answered once: the key is cached
        apikey_revoke(key=key, **by(members["admin"]))
        revoked_at.append(time.monotonic())
        assert served_after.wait(timeout=30)
        time.sleep(0.3)
    finally:
        halt.set()
        for thread in threads:
            thread.join(timeout=30)
    assert not errors, errors
    assert late == []
