"""Every abuse limit, tested at its edge: sign-in throttling per (account, address) and per
address at both sign-in doors, account enumeration from the login form, and request body size
limits outside the API. (The API's failed-authentication limit:
tests/gateway/test_failed_auth_limit.py; registration and token endpoint limits:
tests/oauth/test_discovery_and_registration.py; the API's 413: tests/gateway/test_errors.py; leak
reports: tests/gateway/test_leaked_credentials.py; the sign-in doors' audit events:
tests/audit/test_login.py.)"""

from __future__ import annotations

import re
import statistics
import time
from datetime import timedelta
from http import HTTPStatus

import pytest
import time_machine
from django.test import Client
from django.utils import timezone

from audit import login_throttle
from audit.models import AuditEvent
from tests.factories import PASSWORD, UserFactory
from tests.outages import cache_down

pytestmark = pytest.mark.django_db

LOGIN = "/accounts/login/"
ADMIN_LOGIN = "/admin/login/"
INVALID = "Please enter a correct email and password."
# Where each door sends a successful sign-in (the dashboard's home; the admin's index).
DOORS = {LOGIN: "/", ADMIN_LOGIN: "/admin/"}
VICTIM = "owner@acme.test"


def sign_in(username: str, password: str = "wrong-password-123", ip: str = "198.51.100.10",
            door: str = LOGIN):
    return Client().post(door, {"username": username, "password": password}, REMOTE_ADDR=ip)


def assert_signed_in(response, door: str) -> None:
    assert response.status_code == HTTPStatus.FOUND, response.content[:300]
    assert response["Location"] == DOORS[door]


@pytest.fixture
def frozen():
    with time_machine.travel(timezone.now(), tick=False) as traveller:
        yield traveller


@pytest.fixture(params=sorted(DOORS))
def door(request, members) -> str:
    """Each sign-in door in turn; the accounts are staff, so the admin's door lets them in."""
    for user in members.values():
        user.is_staff = True
        user.save(update_fields=["is_staff"])
    return request.param


def assert_throttled(response) -> int:
    assert response.status_code == HTTPStatus.TOO_MANY_REQUESTS
    assert "Too many failed sign-ins" in response.content.decode()
    retry_after = int(response["Retry-After"])
    assert 1 <= retry_after <= login_throttle.WINDOW_MINUTES * 60 + 1
    return retry_after


def test_guesses_from_one_address_block_that_account_only_there(frozen, door) -> None:
    attacker = "203.0.113.66"
    for _ in range(login_throttle.ACCOUNT_ADDRESS_LIMIT):
        assert sign_in(VICTIM, ip=attacker, door=door).status_code == HTTPStatus.OK
    # From the guesser's address even the right password waits: it is not checked at all.
    assert_throttled(sign_in(VICTIM, PASSWORD, ip=attacker, door=door))
    assert_throttled(sign_in("  OWNER@acme.test ", PASSWORD, ip=attacker, door=door))
    # The real user, from their own address, is not refused because someone else guessed.
    assert_signed_in(sign_in(VICTIM, PASSWORD, ip="192.0.2.99", door=door), door)
    # Another account from the guesser's address is under the address limit still.
    assert_signed_in(sign_in("admin@acme.test", PASSWORD, ip=attacker, door=door), door)
    failed = AuditEvent.objects.filter(action="user.login_failed").count()
    assert failed == login_throttle.ACCOUNT_ADDRESS_LIMIT  # refusals are not sign-in attempts


def test_guesses_from_many_addresses_do_not_lock_the_account_out(frozen, door) -> None:
    """Ten wrong passwords from anywhere used to lock the account for everyone."""
    for n in range(3 * login_throttle.ACCOUNT_ADDRESS_LIMIT):
        assert sign_in(VICTIM, ip=f"203.0.113.{n}", door=door).status_code == HTTPStatus.OK
    assert_signed_in(sign_in(VICTIM, PASSWORD, ip="192.0.2.99", door=door), door)


def test_the_two_doors_share_one_count(frozen, door) -> None:
    other = ADMIN_LOGIN if door == LOGIN else LOGIN
    for _ in range(login_throttle.ACCOUNT_ADDRESS_LIMIT):
        sign_in(VICTIM, door=door)
    assert_throttled(sign_in(VICTIM, PASSWORD, door=other))


def test_an_ipv6_client_is_one_address_per_64(frozen, door) -> None:
    for n in range(login_throttle.ACCOUNT_ADDRESS_LIMIT):
        sign_in(VICTIM, ip=f"2001:db8:1:2::{n + 1:x}", door=door)
    assert_throttled(sign_in(VICTIM, PASSWORD, ip="2001:db8:1:2:ffff::1", door=door))
    assert_signed_in(sign_in(VICTIM, PASSWORD, ip="2001:db8:1:3::1", door=door), door)


def test_the_block_ends_with_its_window(frozen, members) -> None:
    for _ in range(login_throttle.ACCOUNT_ADDRESS_LIMIT):
        sign_in(VICTIM)
    retry_after = assert_throttled(sign_in(VICTIM, PASSWORD))
    frozen.shift(timedelta(seconds=retry_after))
    assert sign_in(VICTIM, PASSWORD).status_code == HTTPStatus.FOUND


def test_an_unknown_account_is_throttled_the_same_way(frozen, db) -> None:
    """A refusal must not tell an attacker which emails have accounts."""
    for _ in range(login_throttle.ACCOUNT_ADDRESS_LIMIT):
        sign_in("nobody@acme.test")
    assert_throttled(sign_in("nobody@acme.test"))


def test_an_address_is_throttled_across_accounts(frozen, door) -> None:
    for n in range(login_throttle.ADDRESS_LIMIT):
        assert sign_in(f"spray{n}@acme.test", door=door).status_code == HTTPStatus.OK
    assert_throttled(sign_in(VICTIM, PASSWORD, door=door))
    assert_signed_in(sign_in(VICTIM, PASSWORD, ip="192.0.2.50", door=door), door)


def test_successful_sign_ins_are_not_counted(frozen, members) -> None:
    for _ in range(login_throttle.ACCOUNT_ADDRESS_LIMIT + 5):
        assert sign_in(VICTIM, PASSWORD).status_code == HTTPStatus.FOUND
    assert sign_in(VICTIM).status_code == HTTPStatus.OK


def test_a_cache_outage_does_not_lock_everyone_out(members, caplog) -> None:
    with cache_down(ConnectionError("down")):
        assert sign_in(VICTIM, PASSWORD).status_code == HTTPStatus.FOUND
        assert sign_in(VICTIM).status_code == HTTPStatus.OK
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
