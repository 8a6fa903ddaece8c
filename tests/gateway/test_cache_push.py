"""Push invalidation with leases inside one process (core/leases.py), on a Redis of the test's
own: a key that counts nothing makes no Redis call under a fresh lease, a committed change waits
for this process's acknowledgement, and messages the subscriber doubts drop the lease (and, for
an invalidation it cannot read, the cache) instead of granting anything. The cases that cross
processes are tests/reliability/test_push_invalidation.py."""

from __future__ import annotations

import json
import threading
import time
from http import HTTPStatus

import pytest
import redis
from django.conf import settings

from apikeys.keycache import key_cache
from apikeys.services import apikey_revoke
from apikeys.tokens import token_digest
from core import leases, versions
from tests.factories import by
from tests.servers import wait_until


def wait_for_lease() -> None:
    leases.ensure_subscriber()
    wait_until(
        lambda: leases.state.url == settings.REDIS_URL
        and time.monotonic() < leases.state.lease_until - 0.5,
        timeout=10, what="a lease on the test's Redis",
    )


@pytest.fixture
def redis_commands(monkeypatch):
    sent: list[str] = []
    execute = redis.Redis.execute_command
    me = threading.current_thread()

    def counting(self, *args, **options):
        if threading.current_thread() is me:
            sent.append(str(args[0]))
        return execute(self, *args, **options)

    monkeypatch.setattr(redis.Redis, "execute_command", counting)
    return sent


def test_a_key_that_counts_nothing_makes_no_redis_call_under_a_lease(
    own_redis, make_key, api, redis_commands
) -> None:
    _key, token = make_key()  # no per-key rate limit; /me declares no budget
    wait_for_lease()
    client = api(token)
    assert client.get("/api/v1/me").status_code == HTTPStatus.OK
    redis_commands.clear()
    for _ in range(5):
        assert client.get("/api/v1/me").status_code == HTTPStatus.OK
    assert redis_commands == []


def test_a_key_with_a_rate_limit_keeps_its_one_round_trip(
    own_redis, make_key, api, redis_commands
) -> None:
    _key, token = make_key(rate_limit_per_minute=100)
    wait_for_lease()
    client = api(token)
    assert client.get("/api/v1/me").status_code == HTTPStatus.OK
    redis_commands.clear()
    assert client.get("/api/v1/me").status_code == HTTPStatus.OK
    assert redis_commands == ["EVALSHA"]


@pytest.mark.django_db(transaction=True)
def test_a_committed_revocation_returns_once_this_process_acknowledged(
    own_redis, make_key, api, members
) -> None:
    key, token = make_key()
    wait_for_lease()
    client = api(token)
    assert client.get("/api/v1/me").status_code == HTTPStatus.OK
    apikey_revoke(key=key, **by(members["admin"]))
    confirmation = versions.last_confirmation.value
    assert confirmation is not None and confirmation.confirmed
    assert confirmation.acked >= 1 and confirmation.waited_out == 0
    response = client.get("/api/v1/me")
    assert (response.status_code, response.json()["error"]) == (
        HTTPStatus.UNAUTHORIZED, "key_revoked")


def _publish(channel: str, payload: str | bytes) -> None:
    redis.Redis.from_url(settings.REDIS_URL).publish(channel, payload)


def _doubted_after(send) -> None:
    before = leases.state.doubts
    send()
    wait_until(lambda: leases.state.doubts > before, timeout=10, what="the doubt")


@pytest.mark.parametrize("payload", [
    b"\xff not json",
    "[" * 10_000,
    json.dumps({"v": 1, "kind": "inv", "id": "x"}),  # no markers
    json.dumps({"v": 1, "kind": "inv", "id": "x", "epoch": "older", "markers": []}),
    json.dumps({"v": 2, "kind": "inv", "id": "x", "markers": []}),
    json.dumps({"v": 1, "kind": "inv", "id": "x", "markers": [1, {"a": None}]}),
])
def test_an_invalidation_the_worker_cannot_vouch_for_empties_the_cache(
    own_redis, make_key, api, payload
) -> None:
    _key, token = make_key()
    wait_for_lease()
    assert api(token).get("/api/v1/me").status_code == HTTPStatus.OK
    assert key_cache.get(token_digest(token)) is not None
    _doubted_after(lambda: _publish(leases.channel_name(), payload))
    assert key_cache.get(token_digest(token)) is None


@pytest.mark.parametrize("beat", ["duplicate", "future", "other epoch", "garbage"])
def test_a_heartbeat_the_worker_did_not_send_never_extends_the_lease(own_redis, beat) -> None:
    wait_for_lease()
    state = leases.state
    body = {"v": 1, "kind": "hb", "epoch": state.epoch, "seq": state.last_seq}
    if beat == "future":
        body["seq"] = state.seq + 1000
    elif beat == "other epoch":
        body["epoch"], body["seq"] = "older", state.seq + 1
    payload = "\x00" if beat == "garbage" else json.dumps(body)
    _doubted_after(lambda: _publish(leases.heartbeat_channel(state.worker_id), payload))
    # Nothing was granted by it: the lease, if any, is again from a heartbeat this worker sent.
    assert state.lease_until <= time.monotonic() + leases.LEASE_SECONDS


def test_a_heartbeat_received_twice_drops_the_lease() -> None:
    """The subscriber's own bookkeeping, on a state of its own: the second copy of an accepted
    heartbeat is doubted and leaves no lease behind."""
    state = leases.LeaseState(epoch="e")
    saved, leases.state = leases.state, state
    try:
        state.sent[1] = time.monotonic()
        leases._heartbeat_received({"v": 1, "kind": "hb", "epoch": "e", "seq": 1}, "e")
        assert state.lease_until > time.monotonic()
        leases._heartbeat_received({"v": 1, "kind": "hb", "epoch": "e", "seq": 1}, "e")
        assert state.lease_until == 0.0 and state.doubts == 1
    finally:
        leases.state = saved
