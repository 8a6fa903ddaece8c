"""The dashboard at a phone's and a laptop's width, with and without JavaScript, on realistic data:
no page scrolls sideways, and every dialog opens again after it was closed (the OAuth Apps links
once replaced `#modal-root` itself, so a second dialog had nowhere to go)."""

from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page, expect

from apikeys.services import (
    apikey_create,
    apikey_pause,
    apikey_resume,
    apikey_revoke,
    apikey_rotate,
)
from oauth.services import oauth_app_create
from tests.factories import PASSWORD, by, plan_named

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

SCREENSHOTS = Path(__file__).parent / "screenshots"
SIZES = {"phone": (390, 844), "laptop": (1280, 800)}
PAGES = [
    "/w/acme/",
    "/w/acme/settings/api-keys/",
    "/w/acme/settings/oauth-apps/",
    "/w/acme/settings/audit-log/",
    "/w/acme/settings/members/",
    "/w/acme/settings/usage/",
    "/settings/connected-apps/",
]


@pytest.fixture
def realistic(workspace, members) -> None:
    """20 keys (one rotated, one revoked), 3 OAuth apps, and over 100 audit events."""
    workspace.plan = plan_named("pro")
    workspace.save()
    actor = by(members["admin"])
    keys = [
        apikey_create(
            workspace=workspace,
            name=f"Deploy worker number {n}",
            scopes=["passports:read"],
            environment="development",
            note="Runs the nightly export for the finance team",
            **actor,
        )[0]
        for n in range(20)
    ]
    apikey_rotate(key=keys[0], overlap="24h", **actor)
    apikey_revoke(key=keys[1], **actor)
    for key in keys[2:]:
        for _ in range(3):
            apikey_pause(key=key, **actor)
            apikey_resume(key=key, **actor)
    for n in range(3):
        oauth_app_create(
            workspace=workspace,
            name=f"Acme CRM integration {n}",
            redirect_uris=[f"https://crm-{n}.example.com/oauth/callback/with/a/long/path"],
            confidential=True,
            **actor,
        )


def new_page(browser: Browser, live_server: object, size: str, *, javascript: bool) -> Page:
    width, height = SIZES[size]
    context = browser.new_context(
        base_url=live_server.url,
        viewport={"width": width, "height": height},
        java_script_enabled=javascript,
    )
    page = context.new_page()
    page.set_default_timeout(10_000)
    page.goto("/accounts/login/")
    page.get_by_label("Email").fill("admin@acme.test")
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Log in").click()
    page.wait_for_url("**/w/**")
    return page


@pytest.mark.parametrize("javascript", [True, False], ids=["js", "nojs"])
@pytest.mark.parametrize("size", SIZES)
def test_no_page_scrolls_sideways(browser, live_server, realistic, size, javascript) -> None:
    page = new_page(browser, live_server, size, javascript=javascript)
    SCREENSHOTS.mkdir(exist_ok=True)
    for path in PAGES:
        page.goto(path)
        name = path.strip("/").replace("/", "_") or "home"
        page.screenshot(
            path=SCREENSHOTS / f"{name}-{size}-{'js' if javascript else 'nojs'}.png", full_page=True
        )
        overflow = page.evaluate("document.documentElement.scrollWidth - window.innerWidth")
        assert overflow <= 0, f"{path} scrolls sideways by {overflow}px at {size}"
    page.context.close()


@pytest.mark.parametrize("size", SIZES)
def test_every_dialog_opens_twice_in_a_row(browser, live_server, realistic, size) -> None:
    page = new_page(browser, live_server, size, javascript=True)
    dialogs = {
        "/w/acme/settings/api-keys/": [
            "New key",
            "Rotate Deploy worker number 5",
            "Revoke Deploy worker number 5",
        ],
        "/w/acme/settings/oauth-apps/": [
            "Register app",
            "Rotate the secret of Acme CRM integration 1",
            "Delete Acme CRM integration 1",
        ],
    }
    for path, links in dialogs.items():
        page.goto(path)
        page.evaluate("window.samePage = true")
        for name in links:
            for _ in range(2):
                page.get_by_role("link", name=name, exact=True).click()
                dialog = page.get_by_role("dialog")
                expect(dialog).to_be_visible()
                width = page.evaluate(
                    "document.querySelector('dialog').getBoundingClientRect().right"
                )
                assert width <= SIZES[size][0]
                dialog.get_by_role("link", name="Cancel").click()
                expect(dialog).to_have_count(0)
                assert page.locator("#modal-root").count() == 1
        for name in links:
            page.get_by_role("link", name=name, exact=True).click()
            expect(page.get_by_role("dialog")).to_be_visible()
            page.keyboard.press("Escape")
            expect(page.get_by_role("dialog")).to_have_count(0)
        assert page.evaluate("window.samePage === true")
    page.context.close()


@pytest.mark.parametrize("size", SIZES)
def test_copy_once_dialog_survives_escape_and_focus_returns(browser, live_server, realistic, size):
    page = new_page(browser, live_server, size, javascript=True)
    page.goto("/w/acme/settings/api-keys/")
    page.get_by_role("link", name="New key").click()
    dialog = page.get_by_role("dialog")
    dialog.get_by_label("Name", exact=True).fill("Phone key")
    dialog.get_by_role("button", name="Create key").click()
    expect(dialog.get_by_test_id("new-token")).to_be_visible()
    page.keyboard.press("Escape")
    page.mouse.click(2, 2)  # the backdrop
    page.keyboard.press("Escape")
    expect(dialog.get_by_test_id("new-token")).to_be_visible()
    dialog.get_by_role("link", name="Done, I saved it").click()
    expect(page.get_by_role("dialog")).to_have_count(0)
    # The new key made the table reload itself (`keys-changed`); a link clicked before that swap
    # lands is replaced by it, and focus could not return to it.
    page.wait_for_load_state("networkidle")

    rotate = page.get_by_role("link", name="Rotate Deploy worker number 5", exact=True)
    rotate.click()
    expect(page.get_by_role("dialog")).to_be_visible()
    page.keyboard.press("Escape")
    expect(page.get_by_role("dialog")).to_have_count(0)
    expect(rotate).to_be_focused()
    page.context.close()


@pytest.mark.parametrize("javascript", [True, False], ids=["js", "nojs"])
def test_new_key_says_why_it_is_disabled_at_the_plan_limit(
    browser, live_server, workspace, members, javascript
) -> None:
    for n in range(workspace.plan.active_keys_limit):
        apikey_create(
            workspace=workspace,
            name=f"Key {n}",
            scopes=["passports:read"],
            environment="development",
            **by(members["admin"]),
        )
    page = new_page(browser, live_server, "phone", javascript=javascript)
    page.goto("/w/acme/settings/api-keys/")
    expect(page.get_by_test_id("new-key")).to_be_disabled()
    expect(page.get_by_test_id("key-limit-reason")).to_contain_text(
        "keys of the Free plan are in use"
    )
    page.context.close()
