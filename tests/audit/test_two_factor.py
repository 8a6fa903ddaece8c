"""Two-factor sign-in through the doors: enrolment, the code step after the password (dashboard
and Django admin), recovery codes, the throttle over the code step, and what is stored."""

from __future__ import annotations

import re
from http import HTTPStatus

import pyotp
import pytest
import time_machine
from django.test import Client

from audit import login_throttle
from audit.models import AuditEvent, RecoveryCode, TotpDevice
from audit.twofactor import totp_enrolment_confirm, totp_enrolment_start, totp_secret_base32
from tests.clock import day_ahead
from tests.factories import PASSWORD, by

pytestmark = pytest.mark.django_db

LOGIN = "/accounts/login/"
VERIFY = "/accounts/login/verify/"
ENROL = "/accounts/two-factor/enrol/"


def enrol(user) -> tuple[pyotp.TOTP, list[str]]:
    """Two-factor on for `user` through the services; the authenticator and the recovery codes."""
    device = totp_enrolment_start(user=user, **by(user))
    totp = pyotp.TOTP(totp_secret_base32(device))
    codes = totp_enrolment_confirm(device=device, code=totp.now(), **by(user))
    assert codes is not None
    return totp, codes


def sign_in(client: Client, email: str, password: str = PASSWORD, path: str = LOGIN, **extra):
    return client.post(path, {"username": email, "password": password, **extra},
                       REMOTE_ADDR="198.51.100.7")


def code_step(client: Client, code: str):
    return client.post(VERIFY, {"code": code}, REMOTE_ADDR="198.51.100.7")


def test_enrol_through_the_page_shows_a_qr_and_ten_codes_once(client: Client, members) -> None:
    user = members["editor"]
    client.force_login(user)
    page = client.get(ENROL)
    assert page.status_code == HTTPStatus.OK
    html = page.content.decode()
    assert "<svg" in html and "<img" not in html  # drawn here, no image service
    secret = re.search(r'data-testid="totp-secret">([A-Z2-7]+)<', html).group(1)
    totp = pyotp.TOTP(secret)

    wrong = client.post(ENROL, {"code": "000000" if totp.now() != "000000" else "111111"})
    assert wrong.status_code == HTTPStatus.OK and b"not right" in wrong.content
    assert not TotpDevice.objects.filter(user=user, confirmed=True).exists()

    with time_machine.travel(day_ahead(0, 12), tick=False):
        done = client.post(ENROL, {"code": pyotp.TOTP(secret).at(day_ahead(0, 12))})
    assert done.status_code == HTTPStatus.OK
    assert "no-store" in done["Cache-Control"]
    codes = re.findall(r"<code>([a-z2-7]{4}(?:-[a-z2-7]{4}){3})</code>", done.content.decode())
    assert len(codes) == 10 and len(set(codes)) == 10
    # Stored sealed and hashed: neither the secret nor a code is anywhere in the database rows.
    device = TotpDevice.objects.get(user=user, confirmed=True)
    stored = str(list(TotpDevice.objects.values())) + str(list(RecoveryCode.objects.values()))
    assert secret not in stored and secret.lower() not in stored
    assert all(c.replace("-", "") not in stored for c in codes)
    assert device.sealed_secret
    event = AuditEvent.objects.get(action="user.two_factor_enabled")
    assert event.target_id == str(user.pk)
    assert secret not in str(event.metadata)
    # Shown once: the settings page does not show them again.
    again = client.get("/accounts/two-factor/")
    assert b"10 recovery codes left" in again.content
    assert codes[0].encode() not in again.content


def test_sign_in_asks_for_the_code_after_the_password(client: Client, members) -> None:
    user = members["owner"]
    totp, _ = enrol(user)
    with time_machine.travel(day_ahead(0, 9), tick=False):
        response = sign_in(client, "owner@acme.test", next="/w/acme/")
        assert response.status_code == HTTPStatus.FOUND and response["Location"] == VERIFY
        # Not signed in yet.
        assert client.get("/w/acme/").status_code == HTTPStatus.FOUND
        assert not AuditEvent.objects.filter(action="user.logged_in").exists()

        wrong = code_step(client, "12345x")
        assert wrong.status_code == HTTPStatus.OK and b"not right" in wrong.content
        failed = AuditEvent.objects.get(action="user.login_failed")
        assert failed.metadata["reason"] == "invalid_code"

    with time_machine.travel(day_ahead(0, 9, 0, 1), tick=False):
        done = code_step(client, totp.at(day_ahead(0, 9)))
        assert done.status_code == HTTPStatus.FOUND, done.content.decode()[-1500:]
        assert done["Location"] == "/w/acme/"
        assert client.get("/w/acme/").status_code == HTTPStatus.OK
    event = AuditEvent.objects.get(action="user.logged_in")
    assert event.metadata == {"door": "dashboard", "second_factor": "totp"}


def test_a_code_is_accepted_once(members) -> None:
    user = members["owner"]
    totp, _ = enrol(user)
    with time_machine.travel(day_ahead(0, 10), tick=False):
        code = totp.at(day_ahead(0, 10))
        first, second = Client(), Client()
        sign_in(first, "owner@acme.test")
        assert code_step(first, code).status_code == HTTPStatus.FOUND
        sign_in(second, "owner@acme.test")
        replay = code_step(second, code)
        assert replay.status_code == HTTPStatus.OK and b"already used" in replay.content


def test_a_recovery_code_signs_in_once(members) -> None:
    user = members["owner"]
    _, codes = enrol(user)
    first = Client()
    sign_in(first, "owner@acme.test")
    assert code_step(first, codes[3].upper()).status_code == HTTPStatus.FOUND
    used = AuditEvent.objects.get(action="user.recovery_code_used")
    assert used.metadata["remaining"] == 9
    assert codes[3] not in str(used.metadata) and codes[3].replace("-", "") not in str(
        list(AuditEvent.objects.values()))
    with time_machine.travel(day_ahead(0, 11)):  # after the device's back-off
        second = Client()
        sign_in(second, "owner@acme.test")
        assert code_step(second, codes[3]).status_code == HTTPStatus.OK
    assert RecoveryCode.objects.filter(device__user=user).count() == 9


def test_bad_codes_are_form_errors_not_500s(client: Client, members) -> None:
    enrol(members["owner"])
    sign_in(client, "owner@acme.test")
    for bad in ["\x00123456", "1" * 5000, "gk_live_" + "a" * 40, "", "１２３４５６"]:
        response = code_step(client, bad)
        assert response.status_code == HTTPStatus.OK, bad
    assert client.get("/w/acme/").status_code == HTTPStatus.FOUND


def test_the_login_throttle_covers_the_code_step(client: Client, members) -> None:
    enrol(members["owner"])
    with time_machine.travel(day_ahead(1, 8), tick=False):
        sign_in(client, "owner@acme.test")
        for _ in range(login_throttle.ACCOUNT_ADDRESS_LIMIT):
            assert code_step(client, "000000").status_code == HTTPStatus.OK
        refused = code_step(client, "000000")
    assert refused.status_code == HTTPStatus.TOO_MANY_REQUESTS
    assert int(refused["Retry-After"]) >= 1


def test_admin_sign_in_uses_the_same_code_step(client: Client, members) -> None:
    user = members["owner"]
    user.is_staff = user.is_superuser = True
    user.save()
    totp, _ = enrol(user)
    with time_machine.travel(day_ahead(0, 13), tick=False):
        response = sign_in(client, "owner@acme.test", path="/admin/login/", next="/admin/")
        assert response.status_code == HTTPStatus.FOUND and response["Location"] == VERIFY
        assert client.get("/admin/").status_code == HTTPStatus.FOUND  # still not in
        assert code_step(client, totp.at(day_ahead(0, 13)))["Location"] == "/admin/"
        assert client.get("/admin/").status_code == HTTPStatus.OK
    event = AuditEvent.objects.get(action="user.logged_in")
    assert event.metadata == {"door": "admin", "second_factor": "totp"}


def test_the_code_step_without_a_password_step_goes_back_to_login(client: Client, db) -> None:
    response = code_step(client, "123456")
    assert response.status_code == HTTPStatus.FOUND and response["Location"] == "/accounts/login/"


def test_removing_two_factor_is_audited(members) -> None:
    user = members["owner"]
    enrol(user)
    client = Client()
    client.force_login(user)
    page = client.get("/accounts/two-factor/").content.decode()
    assert 'href="/accounts/two-factor/remove/"' in page  # a link to a confirmation, not a POST
    confirm = client.get("/accounts/two-factor/remove/")  # without JavaScript: the dialog in place
    html = confirm.content.decode()
    assert confirm.status_code == HTTPStatus.OK
    assert "Turn off two-factor sign-in?" in html and "<dialog" in html and " open" in html
    assert TotpDevice.objects.filter(user=user).exists()  # asking changes nothing
    dialog = client.get("/accounts/two-factor/remove/", headers={"HX-Request": "true"})
    assert dialog.content.decode().lstrip().startswith('<dialog id="two-factor-dialog"')
    response = client.post("/accounts/two-factor/remove/")
    assert response.status_code == HTTPStatus.FOUND
    assert not TotpDevice.objects.filter(user=user).exists()
    assert not RecoveryCode.objects.filter(device__user=user).exists()
    assert AuditEvent.objects.filter(action="user.two_factor_disabled").count() == 1
    # Sign-in is one step again.
    assert sign_in(Client(), "owner@acme.test")["Location"] != VERIFY
