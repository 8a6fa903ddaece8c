"""More than 20 failed authentications a minute from one IP → 429 `rate_limited` (SPEC §5)."""

from datetime import timedelta
from http import HTTPStatus

import pytest
import time_machine
from django.test import Client
from django.utils import timezone

from apikeys.services import apikey_revoke
from apikeys.tokens import generate_token

pytestmark = pytest.mark.django_db

LIMIT = 20


def guess(ip: str = "198.51.100.7") -> object:
    """A well-formed key nobody has: it costs a lookup, so it counts."""
    client = Client(headers={"Authorization": f"Bearer {generate_token('development')}"})
    return client.get("/api/v1/me", REMOTE_ADDR=ip)


def assert_rate_limited(response) -> int:
    assert response.status_code == HTTPStatus.TOO_MANY_REQUESTS
    assert response.json()["error"] == "rate_limited"
    retry_after = int(response["Retry-After"])
    assert 1 <= retry_after <= 61
    return retry_after


@pytest.fixture
def frozen():
    # One fixed instant: the 60-second window cannot roll over in the middle of a test.
    with time_machine.travel(timezone.now(), tick=False) as traveller:
        yield traveller


def test_the_21st_failure_in_a_minute_is_rate_limited(frozen) -> None:
    for _ in range(LIMIT):
        assert guess().status_code == HTTPStatus.UNAUTHORIZED
    assert_rate_limited(guess())


def test_a_blocked_ip_gets_429_even_with_a_valid_key_and_learns_nothing(frozen, api) -> None:
    for _ in range(LIMIT + 1):
        guess()
    client = api()
    assert_rate_limited(client.get("/api/v1/me", REMOTE_ADDR="198.51.100.7"))
    # Other addresses are not affected.
    assert client.get("/api/v1/me", REMOTE_ADDR="198.51.100.8").status_code == HTTPStatus.OK


def test_a_blocked_ip_learns_nothing_from_a_valid_key_without_the_scope(
    frozen, api, make_key
) -> None:
    """The block check comes before the scope check: a 403 would tell a blocked guesser that the
    key it tried is real (on Redis the check is part of metering's one script call)."""
    for _ in range(LIMIT + 1):
        guess()
    _key, token = make_key(["keys:read"])
    response = api(token).get("/api/v1/passports", REMOTE_ADDR="198.51.100.7")
    assert_rate_limited(response)
    assert api(token).get("/api/v1/passports", REMOTE_ADDR="198.51.100.8").status_code == (
        HTTPStatus.FORBIDDEN
    )


def test_the_block_ends_with_the_window(frozen, api) -> None:
    for _ in range(LIMIT + 1):
        guess()
    client = api()
    retry_after = assert_rate_limited(client.get("/api/v1/me", REMOTE_ADDR="198.51.100.7"))
    frozen.shift(timedelta(seconds=retry_after))
    assert client.get("/api/v1/me", REMOTE_ADDR="198.51.100.7").status_code == HTTPStatus.OK
    # A fresh window: the next failures are answered 401 again, up to the limit.
    assert guess().status_code == HTTPStatus.UNAUTHORIZED


def test_valid_requests_are_not_counted(frozen, api) -> None:
    client = api()
    for _ in range(LIMIT + 10):
        assert client.get("/api/v1/me", REMOTE_ADDR="198.51.100.7").status_code == HTTPStatus.OK
    for _ in range(LIMIT):
        assert guess().status_code == HTTPStatus.UNAUTHORIZED
    assert_rate_limited(guess())


def test_malformed_credentials_are_not_counted(frozen, api) -> None:
    garbage = Client(headers={"Authorization": "Bearer gk_dev_not-a-real-key"})
    for _ in range(LIMIT * 2):
        response = garbage.get("/api/v1/me", REMOTE_ADDR="198.51.100.7")
        assert response.status_code == HTTPStatus.UNAUTHORIZED
    assert api().get("/api/v1/me", REMOTE_ADDR="198.51.100.7").status_code == HTTPStatus.OK


def test_refused_known_keys_count_as_failures(frozen, make_key, api, members) -> None:
    key, token = make_key()
    apikey_revoke(key=key, acting_user=members["admin"])
    client = api(token)
    for _ in range(LIMIT):
        response = client.get("/api/v1/me", REMOTE_ADDR="198.51.100.7")
        assert response.json()["error"] == "key_revoked"
    assert_rate_limited(client.get("/api/v1/me", REMOTE_ADDR="198.51.100.7"))


def test_ipv6_clients_are_counted_per_64(frozen) -> None:
    for n in range(LIMIT):
        assert guess(f"2001:db8:1:2::{n + 1:x}").status_code == HTTPStatus.UNAUTHORIZED
    assert_rate_limited(guess("2001:db8:1:2:ffff::1"))
    assert guess("2001:db8:1:3::1").status_code == HTTPStatus.UNAUTHORIZED


def test_requests_without_credentials_are_not_counted(frozen, client, api) -> None:
    for _ in range(LIMIT * 2):
        response = client.get("/api/v1/me", REMOTE_ADDR="198.51.100.7")
        assert response.status_code == HTTPStatus.UNAUTHORIZED
    assert api().get("/api/v1/me", REMOTE_ADDR="198.51.100.7").status_code == HTTPStatus.OK


def test_a_cache_outage_does_not_take_the_api_down(settings, api, caplog) -> None:
    # A Redis nobody listens on: every cache call fails. Throttling fails open (logged); the API
    # keeps answering valid and invalid credentials correctly.
    client = api()
    settings.CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": "redis://127.0.0.1:1/0",
            "OPTIONS": {"socket_connect_timeout": 0.2, "socket_timeout": 0.2},
        }
    }
    assert client.get("/api/v1/me").status_code == HTTPStatus.OK
    assert guess().status_code == HTTPStatus.UNAUTHORIZED
    assert "Failed-auth limit unavailable" in caplog.text
