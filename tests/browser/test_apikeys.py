from datetime import timedelta

import pytest
from django.utils import timezone
from playwright.sync_api import expect

from apikeys.models import ApiKey, KeyStatus
from apikeys.selectors import apikey_check_digest
from apikeys.services import apikey_create
from apikeys.tokens import token_digest
from tests.factories import PASSWORD, by

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

LIST = "/w/acme/settings/api-keys/"


@pytest.fixture
def admin_page(page, login, members):
    login("admin@acme.test")
    page.goto(LIST)
    # Set once per page load: still there after an action means the page was not reloaded.
    page.evaluate("window.samePage = true")
    return page


@pytest.fixture
def ci_key(workspace, members):
    return apikey_create(
        workspace=workspace, name="CI deploys", scopes=["passports:read"],
        environment="development", **by(members["admin"]),
    )


def still_same_page(page) -> bool:
    return page.evaluate("window.samePage === true")


def test_create_copy_done_and_the_token_is_gone_after_reload(admin_page) -> None:
    page = admin_page
    page.get_by_role("link", name="New key").click()
    dialog = page.get_by_role("dialog")
    expect(dialog).to_be_visible()
    dialog.get_by_label("Name", exact=True).fill("Browser key")
    expect(dialog.get_by_label("passports:read")).to_be_checked()
    expect(dialog.get_by_label("passports:write")).not_to_be_checked()
    dialog.get_by_role("button", name="Create key").click()

    token_field = dialog.get_by_test_id("new-token")
    expect(token_field).to_be_visible()
    token = token_field.input_value()
    assert apikey_check_digest(token_digest(token), ip=None).key.name == "Browser key"
    expect(dialog).to_contain_text("will not be shown again")

    dialog.get_by_role("button", name="Copy").click()
    expect(dialog.get_by_role("status")).to_have_text("Copied to the clipboard")
    expect(dialog.get_by_role("button", name="Copied")).to_be_visible()
    assert page.evaluate("navigator.clipboard.readText()") == token

    dialog.get_by_role("link", name="Done").click()
    expect(page.get_by_role("dialog")).to_have_count(0)
    expect(page.locator("#active-keys")).to_contain_text("Browser key")  # the table refreshed
    assert still_same_page(page)
    assert token not in page.content()

    page.reload()
    expect(page.locator("#active-keys")).to_contain_text("Browser key")
    assert token not in page.content()


def test_create_shows_form_errors_in_the_dialog(admin_page) -> None:
    page = admin_page
    page.get_by_role("link", name="New key").click()
    dialog = page.get_by_role("dialog")
    dialog.get_by_label("Name", exact=True).fill("Bad IPs")
    dialog.get_by_label("Allowed IPs").fill("10.0.0.0/33")
    dialog.get_by_role("button", name="Create key").click()
    expect(dialog).to_contain_text("Not an IP address or CIDR range: 10.0.0.0/33.")
    assert ApiKey.objects.count() == 0
    dialog.get_by_label("Allowed IPs").fill("10.0.0.0/8")
    dialog.get_by_role("button", name="Create key").click()
    expect(dialog.get_by_test_id("new-token")).to_be_visible()
    assert ApiKey.objects.get().allowed_ips == ["10.0.0.0/8"]


def test_rotate_with_a_one_hour_overlap(admin_page, ci_key) -> None:
    page = admin_page
    key, old_token = ci_key
    page.reload()
    page.evaluate("window.samePage = true")
    page.get_by_role("link", name="Rotate CI deploys").click()
    dialog = page.get_by_role("dialog")
    expect(dialog).to_contain_text("Rotate “CI deploys”")
    dialog.get_by_label("1 hour", exact=True).check()
    dialog.get_by_role("button", name="Rotate key").click()

    token_field = dialog.get_by_test_id("new-token")
    expect(token_field).to_be_visible()
    token = token_field.input_value()
    assert token != old_token
    new = apikey_check_digest(token_digest(token), ip=None).key
    assert new.rotated_from_id == key.pk
    expect(dialog).to_contain_text("keeps working until")
    dialog.get_by_role("link", name="Done").click()

    key.refresh_from_db()
    stops = key.expires_at
    assert timedelta(minutes=59) < stops - timezone.now() <= timedelta(hours=1)
    assert apikey_check_digest(token_digest(old_token), ip=None).ok
    old_row = page.locator(f"#key-{key.public_id}")
    expect(old_row).to_contain_text(f"stops at {stops:%Y-%m-%d %H:%M} UTC")
    expect(page.locator(f"#key-{new.public_id}")).to_be_visible()
    assert still_same_page(page)


def test_pause_and_resume_in_place(admin_page, ci_key) -> None:
    page = admin_page
    key, token = ci_key
    page.reload()
    page.evaluate("window.samePage = true")
    row = page.locator(f"#key-{key.public_id}")
    row.get_by_role("button", name="Pause").click()
    expect(row.get_by_test_id("key-status")).to_have_text("Paused")
    assert apikey_check_digest(token_digest(token), ip=None).error == "key_paused"
    row.get_by_role("button", name="Resume").click()
    expect(row.get_by_test_id("key-status")).to_have_text("Active")
    assert apikey_check_digest(token_digest(token), ip=None).ok
    assert still_same_page(page)


def test_revoke_through_the_confirm_dialog(admin_page, ci_key) -> None:
    page = admin_page
    key, token = ci_key
    ApiKey.objects.filter(pk=key.pk).update(last_used_at=timezone.now() - timedelta(hours=3))
    page.reload()
    page.evaluate("window.samePage = true")

    page.get_by_role("link", name="Revoke CI deploys").click()
    dialog = page.get_by_role("dialog")
    expect(dialog).to_contain_text("Revoke “CI deploys”?")
    expect(dialog.get_by_test_id("recently-used")).to_contain_text("3\xa0hours ago")
    dialog.get_by_role("link", name="Cancel").click()
    expect(page.get_by_role("dialog")).to_have_count(0)
    key.refresh_from_db()
    assert key.status == KeyStatus.ACTIVE

    page.get_by_role("link", name="Revoke CI deploys").click()
    page.get_by_role("dialog").get_by_role("button", name="Revoke key").click()
    expect(page.get_by_role("dialog")).to_have_count(0)
    expect(page.locator("#revoked-keys")).to_contain_text("CI deploys")
    expect(page.locator("#active-keys")).not_to_contain_text("CI deploys")
    assert still_same_page(page)
    assert apikey_check_digest(token_digest(token), ip=None).error == "key_revoked"


def test_everything_works_with_javascript_off(browser, live_server, members) -> None:
    context = browser.new_context(base_url=live_server.url, java_script_enabled=False)
    page = context.new_page()
    page.set_default_timeout(10_000)
    try:
        page.goto("/accounts/login/")
        page.get_by_label("Email").fill("admin@acme.test")
        page.get_by_label("Password").fill(PASSWORD)
        page.get_by_role("button", name="Log in").click()
        page.goto(LIST)

        page.get_by_role("link", name="New key").click()
        page.wait_for_url("**/api-keys/new/")
        page.get_by_label("Name", exact=True).fill("No-JS key")
        page.get_by_role("button", name="Create key").click()
        page.wait_for_url(f"**{LIST}")
        token = page.get_by_test_id("new-token").input_value()
        key = apikey_check_digest(token_digest(token), ip=None).key
        assert key.name == "No-JS key"
        page.get_by_role("link", name="Done").click()
        page.wait_for_load_state()
        assert token not in page.content()

        page.get_by_role("link", name="Rotate No-JS key").click()
        page.get_by_label("24 hours", exact=True).check()
        page.get_by_role("button", name="Rotate key").click()
        page.wait_for_url(f"**{LIST}")
        new_token = page.get_by_test_id("new-token").input_value()
        new = apikey_check_digest(token_digest(new_token), ip=None).key
        assert new.rotated_from_id == key.pk
        page.reload()
        assert new_token not in page.content()

        row = page.locator(f"#key-{new.public_id}")
        row.get_by_role("button", name="Pause").click()
        expect(page.get_by_role("status")).to_contain_text("Paused “No-JS key”")
        page.locator(f"#key-{new.public_id}").get_by_role("button", name="Resume").click()
        expect(page.get_by_role("status")).to_contain_text("Resumed “No-JS key”")

        page.locator(f"#key-{new.public_id}").get_by_role("link", name="Revoke").click()
        page.get_by_role("button", name="Revoke key").click()
        page.wait_for_url(f"**{LIST}")
        expect(page.locator("#revoked-keys")).to_contain_text("No-JS key")
        new.refresh_from_db()
        assert new.status == KeyStatus.REVOKED
    finally:
        context.close()


def test_copy_falls_back_to_selecting_the_token(admin_page) -> None:
    page = admin_page
    # A browser without the Clipboard API (or one that refuses it): the token gets selected.
    page.evaluate("Object.defineProperty(navigator, 'clipboard', {value: undefined})")
    page.get_by_role("link", name="New key").click()
    dialog = page.get_by_role("dialog")
    dialog.get_by_label("Name", exact=True).fill("Fallback")
    dialog.get_by_role("button", name="Create key").click()
    token = dialog.get_by_test_id("new-token").input_value()
    dialog.get_by_role("button", name="Copy").click()
    expect(dialog.get_by_role("status")).to_contain_text("press Ctrl+C")
    selected = page.evaluate(
        "(() => { const el = document.activeElement;"
        " return el.value.slice(el.selectionStart, el.selectionEnd); })()"
    )
    assert selected == token
