"""Every abuse limit, tested at its edge: sign-in throttling per account and per IP, account
enumeration from the login form, and request body size limits outside the API. (The API's
failed-authentication limit: tests/api/test_failed_auth_limit.py; registration and token
endpoint limits: tests/oauth/test_discovery_and_registration.py; the API's 413:
tests/api/test_errors.py; leak reports: test_leaked_credentials.py.)"""

from __future__ import annotations

import re
import statistics
import time
from datetime import timedelta
from http import HTTPStatus
from unittest import mock

import pytest
import time_machine
from django.test import Client
from django.utils import timezone

from audit import login_throttle
from audit.models import AuditEvent
from tests.factories import PASSWORD, UserFactory

pytestmark = pytest.mark.django_db

LOGIN = "/accounts/login/"
INVALID = "Please enter a correct username and password."


def sign_in(username: str, password: str = "wrong-password-123", ip: str = "198.51.100.10"):  # noqa: ANN201
    return Client().post(LOGIN, {"username": username, "password": password}, REMOTE_ADDR=ip)


@pytest.fixture
def frozen():
    with time_machine.travel(timezone.now(), tick=False) as traveller:
        yield traveller


def assert_throttled(response) -> int:  # noqa: ANN001
    assert response.status_code == HTTPStatus.TOO_MANY_REQUESTS
    assert "Too many failed sign-ins" in response.content.decode()
    retry_after = int(response["Retry-After"])
    assert 1 <= retry_after <= login_throttle.WINDOW_MINUTES * 60 + 1
    return retry_after


def test_an_account_is_throttled_after_its_failures_from_any_ip(frozen, members) -> None:
    for n in range(login_throttle.ACCOUNT_LIMIT):
        assert sign_in("owner@acme.test", ip=f"203.0.113.{n}").status_code == HTTPStatus.OK
    # Even the right password, from a new address, waits: the password is not checked at all.
    assert_throttled(sign_in("owner@acme.test", PASSWORD, ip="192.0.2.99"))
    assert_throttled(sign_in("  OWNER@acme.test ", PASSWORD, ip="192.0.2.98"))  # same account
    assert sign_in("admin@acme.test", PASSWORD, ip="192.0.2.99").status_code == HTTPStatus.FOUND
    failed = AuditEvent.objects.filter(action="user.login_failed").count()
    assert failed == login_throttle.ACCOUNT_LIMIT  # refusals are not sign-in attempts


def test_the_account_block_ends_with_its_window(frozen, members) -> None:
    for _ in range(login_throttle.ACCOUNT_LIMIT):
        sign_in("owner@acme.test")
    retry_after = assert_throttled(sign_in("owner@acme.test", PASSWORD))
    frozen.shift(timedelta(seconds=retry_after))
    assert sign_in("owner@acme.test", PASSWORD).status_code == HTTPStatus.FOUND


def test_an_unknown_account_is_throttled_the_same_way(frozen, db) -> None:
    """A refusal must not tell an attacker which emails have accounts."""
    for n in range(login_throttle.ACCOUNT_LIMIT):
        sign_in("nobody@acme.test", ip=f"203.0.113.{n}")
    unknown = sign_in("nobody@acme.test", ip="192.0.2.1")
    assert_throttled(unknown)


def test_an_ip_is_throttled_across_accounts(frozen, members) -> None:
    for n in range(login_throttle.IP_LIMIT):
        assert sign_in(f"spray{n}@acme.test").status_code == HTTPStatus.OK
    assert_throttled(sign_in("owner@acme.test", PASSWORD))
    assert sign_in("owner@acme.test", PASSWORD, ip="192.0.2.50").status_code == HTTPStatus.FOUND


def test_successful_sign_ins_are_not_counted(frozen, members) -> None:
    for _ in range(login_throttle.ACCOUNT_LIMIT + 5):
        assert sign_in("owner@acme.test", PASSWORD).status_code == HTTPStatus.FOUND
    assert sign_in("owner@acme.test").status_code == HTTPStatus.OK


def test_a_cache_outage_does_not_lock_everyone_out(members, caplog) -> None:
    with mock.patch.object(login_throttle, "get_usage", side_effect=ConnectionError("down")):
        assert sign_in("owner@acme.test", PASSWORD).status_code == HTTPStatus.FOUND
        assert sign_in("owner@acme.test").status_code == HTTPStatus.OK
    assert "Sign-in throttle unavailable" in caplog.text


# --- account enumeration ----------------------------------------------------------------------

def test_every_failure_reads_the_same(members) -> None:
    UserFactory(email="gone@acme.test", is_active=False)
    unusable = UserFactory(email="sso@acme.test")
    unusable.set_unusable_password()
    unusable.save()
    bodies = set()
    for username, password in [
        ("owner@acme.test", "wrong-password-123"),  # exists, wrong password
        ("nobody@acme.test", "wrong-password-123"),  # no such account
        ("gone@acme.test", PASSWORD),  # inactive, right password
        ("sso@acme.test", "wrong-password-123"),  # no usable password
    ]:
        response = sign_in(username, password)
        assert response.status_code == HTTPStatus.OK
        body = response.content.decode()
        assert INVALID in body
        form = body[body.index("<form"):body.index("</form>")]
        form = re.sub(r'name="csrfmiddlewaretoken" value="[^"]+"', "", form)
        bodies.add(form.replace(username, "USERNAME"))
    assert len(bodies) == 1


def test_an_unknown_account_costs_the_same_hash(settings, members) -> None:
    """With the product's Argon2 hasher, a wrong password for an existing account and any
    password for a missing one take about as long: both run one Argon2 hash."""
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.Argon2PasswordHasher"]
    owner = members["owner"]
    owner.set_password(PASSWORD)
    owner.save()

    def timed(username: str) -> float:
        started = time.perf_counter()
        assert sign_in(username, ip="192.0.2.200").status_code == HTTPStatus.OK
        return time.perf_counter() - started

    known, unknown = [], []
    for _ in range(5):  # interleaved, so machine noise hits both alike
        known.append(timed("owner@acme.test"))
        unknown.append(timed("nobody@acme.test"))
    known_median, unknown_median = statistics.median(known), statistics.median(unknown)
    # Without the dummy hash an unknown account would answer ~100x faster.
    assert 0.6 < unknown_median / known_median < 1.6, (known, unknown)


# --- body size limits outside the API ---------------------------------------------------------

def test_an_oversized_dashboard_form_is_refused_not_a_500(owner_client, settings) -> None:
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 10_000
    response = owner_client.post(
        "/w/acme/settings/api-keys/new/", {"name": "x", "note": "n" * 20_000}
    )
    assert response.status_code == HTTPStatus.BAD_REQUEST


def test_an_oversized_login_form_is_refused_not_a_500(client, settings) -> None:
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 10_000
    response = client.post(LOGIN, {"username": "u" * 20_000, "password": "p"})
    assert response.status_code == HTTPStatus.BAD_REQUEST
    assert not AuditEvent.objects.exists()


def test_too_many_form_fields_are_refused(client, settings) -> None:
    settings.DATA_UPLOAD_MAX_NUMBER_FIELDS = 100
    fields = {f"f{n}": "x" for n in range(200)}
    response = client.post(LOGIN, {"username": "a", "password": "b", **fields})
    assert response.status_code == HTTPStatus.BAD_REQUEST


def test_an_oversized_oauth_token_request_is_refused(client, settings) -> None:
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 10_000
    response = client.post("/api/oauth/token", {"grant_type": "authorization_code",
                                                "code": "c" * 20_000})
    assert HTTPStatus.BAD_REQUEST <= response.status_code < HTTPStatus.INTERNAL_SERVER_ERROR
