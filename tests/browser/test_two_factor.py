"""Two-factor sign-in and sudo mode through the browser (issue 17 point 5): enrol by reading the
key from the page and computing codes with pyotp, sign in with the code step, and sudo mode's
ten minutes with a frozen clock (the live server runs in this process, so time_machine moves its
clock too)."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

import pyotp
import pytest
import time_machine

from audit.models import AuditEvent
from tests.factories import PASSWORD

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

START = datetime(2026, 12, 3, 9, 0, tzinfo=UTC)


def test_enrol_read_the_key_from_the_page_then_sign_in_with_a_code(page, login, members) -> None:
    with time_machine.travel(START, tick=True) as clock:
        login("editor@acme.test")
        page.goto("/accounts/two-factor/enrol/")
        secret = page.get_by_test_id("totp-secret").inner_text().strip()
        assert re.fullmatch(r"[A-Z2-7]{16,}", secret)
        assert page.locator(".qr svg").count() == 1  # drawn on the page, no image service
        totp = pyotp.TOTP(secret)

        page.get_by_label("Code").fill("000000" if totp.now() != "000000" else "111111")
        page.get_by_role("button", name="Turn on").click()
        assert "not right" in page.get_by_role("alert").inner_text()

        clock.shift(timedelta(seconds=3))  # past django-otp's throttle after a failure
        page.get_by_label("Code").fill(totp.now())
        page.get_by_role("button", name="Turn on").click()
        page.get_by_test_id("recovery-codes").wait_for()
        codes = re.findall(r"\b[a-z2-7]{4}(?:-[a-z2-7]{4}){3}\b", page.content())
        assert len(set(codes)) == 10  # shown once, here
        page.get_by_role("button", name="Log out").click()
        page.wait_for_load_state()

    later = START + timedelta(minutes=2)  # another 30 s step: a code is accepted once
    with time_machine.travel(later, tick=True) as clock:
        login("editor@acme.test")
        page.wait_for_url("**/accounts/login/verify/**")
        page.get_by_label("Code").fill("123456" if totp.at(later) != "123456" else "654321")
        page.get_by_role("button", name="Verify").click()
        assert page.get_by_role("alert").count() == 1  # a wrong code: still on the code step
        later += timedelta(seconds=3)
        clock.move_to(later)  # past the throttle
        page.get_by_label("Code").fill(totp.at(later))
        page.get_by_role("button", name="Verify").click()
        page.wait_for_url("**/w/acme/**")
        assert page.get_by_role("button", name="Log out").is_visible()

    # The recovery codes, shown once, sign in once each.
    with time_machine.travel(later + timedelta(minutes=1), tick=True):
        page.get_by_role("button", name="Log out").click()
        page.wait_for_load_state()
        login("editor@acme.test")
        page.wait_for_url("**/accounts/login/verify/**")
        page.get_by_label("Code").fill(codes[0])
        page.get_by_role("button", name="Verify").click()
        page.wait_for_url("**/w/acme/**")
    assert AuditEvent.objects.filter(action="user.two_factor_enabled").count() == 1
    for event in AuditEvent.objects.all():
        assert secret not in str(event.metadata)


def _role_of(member) -> str:
    return member.memberships.get().role


def _eventually(check, page) -> None:
    for _ in range(50):
        if check():
            return
        page.wait_for_timeout(200)
    raise AssertionError("the change did not land")


def test_sudo_mode_asks_again_after_ten_minutes(page, login, members) -> None:
    member = members["viewer"]
    with time_machine.travel(START, tick=True):
        login("owner@acme.test")
        page.goto("/w/acme/settings/members/")
        # Within ten minutes of signing in: the role change asks only for its confirmation.
        row = page.locator("#member-table tr", has_text=member.email)
        row.locator("select").select_option("editor")
        row.get_by_role("button", name="Change").click()
        page.get_by_role("button", name="Change role").click()
        _eventually(lambda: _role_of(member) == "editor", page)

    with time_machine.travel(START + timedelta(minutes=11), tick=True):
        page.goto("/w/acme/settings/members/")
        row = page.locator("#member-table tr", has_text=member.email)
        row.locator("select").select_option("viewer")
        row.get_by_role("button", name="Change").click()
        page.get_by_role("button", name="Change role").click()
        # Eleven minutes on: confirming asks for the password before the change is made.
        page.get_by_role("heading", name="Confirm it is you").wait_for()
        assert _role_of(member) == "editor"
        page.get_by_label("Password").fill("not the password")
        page.get_by_role("button", name="Confirm and continue").click()
        page.get_by_role("alert").wait_for()
        assert _role_of(member) == "editor"
        page.get_by_label("Password").fill(PASSWORD)
        page.get_by_role("button", name="Confirm and continue").click()
        _eventually(lambda: _role_of(member) == "viewer", page)
