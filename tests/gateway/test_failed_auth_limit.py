"""Failed authentication (SPEC §5): floods of unknown tokens cost a bounded number of lookups,
and nobody is locked out by somebody else's failures. (Cross-process, through gunicorn with two
workers: tests/security/test_shared_address.py.)"""

import math
import time
from datetime import timedelta
from http import HTTPStatus

import pytest
import time_machine
from django.test import Client
from django.utils import timezone

from apikeys.services import apikey_pause, apikey_revoke
from apikeys.tokens import generate_token
from core import credfilter
from core.credfilter import credential_filter
from gateway.failed_auth import FAILED_AUTH_LIMIT, UNKNOWN_LIMIT
from tests.factories import by

pytestmark = pytest.mark.django_db

IP = "198.51.100.7"
DEAD_REDIS = "redis://127.0.0.1:1/0"


def guess(ip: str = IP) -> object:
    """A well-formed key nobody has (the checksum is public: anyone can make these)."""
    client = Client(headers={"Authorization": f"Bearer {generate_token('development')}"})
    return client.get("/api/v1/me", REMOTE_ADDR=ip)


def assert_unknown(response) -> None:
    assert response.status_code == HTTPStatus.UNAUTHORIZED
    assert response.json() == {
        "error": "invalid_credentials", "message": "The API key is not valid."
    }


def assert_rate_limited(response, retry_after: int = 1) -> None:
    """429 `rate_limited`; `Retry-After` is by default 1 (an uncertain token: the filter's next
    read of new keys can place it), for unknown tokens the seconds left in the minute."""
    assert response.status_code == HTTPStatus.TOO_MANY_REQUESTS
    assert response.json()["error"] == "rate_limited"
    assert int(response["Retry-After"]) == retry_after


def seconds_left_in_minute() -> int:
    now = time.time()
    return math.ceil((int(now) // 60 + 1) * 60 - now)


@pytest.fixture
def still_clock(monkeypatch):
    """The filter's clock stands still: no new-row read happens behind the test's back, so every
    query the test counts is one the tokens caused."""
    now = credential_filter.clock()
    monkeypatch.setattr(credential_filter, "clock", lambda: now)


@pytest.fixture
def frozen():
    # One fixed wall-clock instant: the failed-auth minute cannot roll over mid-test.
    with time_machine.travel(timezone.now(), tick=False) as traveller:
        yield traveller


@pytest.fixture
def redis_down(settings, api):
    """Redis configured but unreachable: the filter cannot confirm a miss (UNCERTAIN), so the
    per-address budget is the only line. The same on both suite variants."""
    client = api()  # a valid key, created (and known to the filter) while Redis still answered
    settings.REDIS_URL = DEAD_REDIS
    settings.CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": DEAD_REDIS,
            "OPTIONS": {"socket_connect_timeout": 0.2, "socket_timeout": 0.2},
        }
    }
    return client


def test_unknown_tokens_cost_a_bounded_number_of_lookups(
    settings, still_clock, frozen, django_assert_num_queries
) -> None:
    guesses = 500
    if settings.REDIS_URL:
        # A miss is settled by one Redis MGET (no marker: nobody issued it). No lookup at all;
        # past UNKNOWN_LIMIT a minute from the address, 429 until the minute is over.
        with django_assert_num_queries(0):
            for _ in range(UNKNOWN_LIMIT):
                assert_unknown(guess())
            for _ in range(guesses - UNKNOWN_LIMIT):
                assert_rate_limited(guess(), seconds_left_in_minute())
            # Other addresses are counted on their own; IPv6 addresses by /64.
            assert_unknown(guess("198.51.100.8"))
            for n in range(UNKNOWN_LIMIT):
                assert_unknown(guess(f"2001:db8:1:2::{n + 1:x}"))
            assert_rate_limited(guess("2001:db8:1:2:ffff::1"), seconds_left_in_minute())
            assert_unknown(guess("2001:db8:1:3::1"))
        return
    # Embedded, within PULL_SECONDS of the filter's last read of new rows: a miss is uncertain
    # and looked up, FAILED_AUTH_LIMIT a minute per address (and process); then 429 without one.
    # (Once a second a miss reads the new rows instead, one range query per family, and is then
    # certain: tests/security/test_shared_address.py counts both on a served app.)
    with django_assert_num_queries(FAILED_AUTH_LIMIT):
        for _ in range(FAILED_AUTH_LIMIT):
            assert_unknown(guess())
        for _ in range(guesses - FAILED_AUTH_LIMIT):
            assert_rate_limited(guess())


def test_a_valid_key_is_never_refused_while_its_address_floods(
    still_clock, frozen, api, make_key, workspace
) -> None:
    client = api()
    for _ in range(3 * FAILED_AUTH_LIMIT):
        guess()
    for _ in range(5):
        assert client.get("/api/v1/me", REMOTE_ADDR=IP).status_code == HTTPStatus.OK
    # Another tenant's key, created during the flood, works on its first request too.
    _key, token = make_key(name="new")
    assert api(token).get("/api/v1/me", REMOTE_ADDR=IP).status_code == HTTPStatus.OK


def test_a_valid_key_without_the_scope_gets_its_403_during_a_flood(
    still_clock, frozen, api, make_key
) -> None:
    for _ in range(3 * FAILED_AUTH_LIMIT):
        guess()
    _key, token = make_key(["keys:read"])
    response = api(token).get("/api/v1/passports", REMOTE_ADDR=IP)
    assert response.status_code == HTTPStatus.FORBIDDEN
    assert response.json()["error"] == "insufficient_scope"


def test_known_refused_keys_get_their_own_error_every_time_and_are_never_counted(
    still_clock, frozen, make_key, api, members
) -> None:
    revoked, revoked_token = make_key(name="revoked")
    apikey_revoke(key=revoked, **by(members["admin"]))
    paused, paused_token = make_key(name="paused")
    apikey_pause(key=paused, **by(members["admin"]))
    expired, expired_token = make_key(name="expired")
    type(expired).objects.filter(pk=expired.pk).update(expires_at=timezone.now())
    _walled, walled_token = make_key(name="walled", allowed_ips=["10.0.0.0/8"])
    _prod, prod_token = make_key(name="prod", environment="production")
    expected = {
        revoked_token: (HTTPStatus.UNAUTHORIZED, "key_revoked"),
        paused_token: (HTTPStatus.UNAUTHORIZED, "key_paused"),
        expired_token: (HTTPStatus.UNAUTHORIZED, "key_expired"),
        walled_token: (HTTPStatus.FORBIDDEN, "ip_not_allowed"),
        prod_token: (HTTPStatus.UNAUTHORIZED, "environment_mismatch"),
    }
    for token, answer in expected.items():
        client = api(token)
        for _ in range(100):
            response = client.get("/api/v1/me", REMOTE_ADDR=IP)
            assert (response.status_code, response.json()["error"]) == answer
    # Nothing was counted: the address still has its whole budget for tokens nobody can place.
    for _ in range(FAILED_AUTH_LIMIT):
        assert_unknown(guess())


def test_malformed_credentials_are_not_counted(still_clock, frozen, api) -> None:
    garbage = Client(headers={"Authorization": "Bearer gk_dev_not-a-real-key"})
    for _ in range(FAILED_AUTH_LIMIT * 2):
        response = garbage.get("/api/v1/me", REMOTE_ADDR=IP)
        assert response.status_code == HTTPStatus.UNAUTHORIZED
    for _ in range(FAILED_AUTH_LIMIT):
        assert_unknown(guess())


def test_requests_without_credentials_are_not_counted(still_clock, frozen, client) -> None:
    for _ in range(FAILED_AUTH_LIMIT * 2):
        response = client.get("/api/v1/me", REMOTE_ADDR=IP)
        assert response.status_code == HTTPStatus.UNAUTHORIZED
    for _ in range(FAILED_AUTH_LIMIT):
        assert_unknown(guess())


# --- Redis unreachable: the filter cannot settle a miss, the per-address budget can ------------

def test_with_redis_down_uncertain_lookups_are_bounded_per_address(
    redis_down, frozen, django_assert_num_queries
) -> None:
    with django_assert_num_queries(FAILED_AUTH_LIMIT):
        for _ in range(FAILED_AUTH_LIMIT):
            assert_unknown(guess())
        for _ in range(50):
            assert_rate_limited(guess())
    # The valid key is known to the filter: looked up and served, never refused.
    assert redis_down.get("/api/v1/me", REMOTE_ADDR=IP).status_code == HTTPStatus.OK
    # Other addresses have budgets of their own; IPv6 addresses count by /64.
    assert_unknown(guess("198.51.100.8"))
    for n in range(FAILED_AUTH_LIMIT):
        assert_unknown(guess(f"2001:db8:1:2::{n + 1:x}"))
    assert_rate_limited(guess("2001:db8:1:2:ffff::1"))
    assert_unknown(guess("2001:db8:1:3::1"))


def test_with_redis_down_the_budget_returns_with_the_next_minute(redis_down, frozen) -> None:
    for _ in range(FAILED_AUTH_LIMIT):
        guess()
    assert_rate_limited(guess())
    frozen.shift(timedelta(seconds=60))
    assert_unknown(guess())


def test_a_key_created_on_another_process_works_on_its_first_request_during_a_flood(
    settings, monkeypatch, frozen, api, make_key
) -> None:
    """As another process sees a key it did not create: this process's filter never saw it (it
    learns from the Redis marker `credential_created` set; embedded: from its next read of new
    rows)."""
    _key, token = make_key(name="elsewhere")
    now = credential_filter.clock()
    monkeypatch.setattr(credential_filter, "clock", lambda: now)
    credential_filter.clear(empty=True)  # the filter was read before the key existed
    for _ in range(3 * FAILED_AUTH_LIMIT):
        guess()
    response = api(token).get("/api/v1/me", REMOTE_ADDR=IP)
    if not settings.REDIS_URL:
        # Embedded, under a flood, less than PULL_SECONDS after the last read of new rows: the
        # filter cannot place it yet and says when it can. One second later, it is served.
        assert_rate_limited(response)
        monkeypatch.setattr(credential_filter, "clock", lambda: now + credfilter.PULL_SECONDS)
        response = api(token).get("/api/v1/me", REMOTE_ADDR=IP)
    assert response.status_code == HTTPStatus.OK, response.content
