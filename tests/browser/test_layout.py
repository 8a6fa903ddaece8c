"""The dashboard at a phone's and a laptop's width, with and without JavaScript, on realistic data
(issue 15 points 1–3): no page scrolls sideways, row actions stay on screen, emails and ids do not
break mid-word, the sidebar folds into a menu on a phone; every dialog is the shared one, opens
again after it was closed (the OAuth Apps links once replaced `#modal-root` itself), takes the
focus and gives it back; copy-once dialogs stay until the secret is saved; refusals are focused
and all of a form's errors come at once; OAuth apps and Connected apps post/redirect/get without
JavaScript. Screenshots go to tests/browser/screenshots/ (not in git) for a person to look at."""

import re
from pathlib import Path

import pytest
from django.contrib.auth.hashers import check_password
from playwright.sync_api import Browser, Page, expect

from apikeys.models import ApiKey
from apikeys.services import (
    apikey_create,
    apikey_pause,
    apikey_resume,
    apikey_revoke,
    apikey_rotate,
)
from audit.models import AuditEvent
from core.context import RequestContext
from oauth.models import Connection, WorkspaceApp
from oauth.services import connection_grant, oauth_app_create
from tests.factories import PASSWORD, by, plan_named

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

SCREENSHOTS = Path(__file__).parent / "screenshots"  # kept out of git (.gitignore)
SIZES = {"phone": (390, 844), "laptop": (1280, 800)}


def dashboard_pages() -> list[str]:
    """Every dashboard page a signed-in admin can open, with the realistic data loaded, including
    the dialogs' own pages (what a browser without JavaScript shows for each dialog)."""
    live = ApiKey.objects.filter(name="Deploy worker number 5").get()
    revoked = ApiKey.objects.filter(status="revoked").get()
    app = WorkspaceApp.objects.select_related("application").order_by("pk").first()
    client_id = app.application.client_id
    connection = Connection.objects.order_by("pk").first()
    keys = "/w/acme/settings/api-keys/"
    apps = "/w/acme/settings/oauth-apps/"
    return [
        "/w/acme/",
        keys,
        f"{keys}?q=worker&status=active&environment=development",
        f"{keys}new/",
        f"{keys}{live.public_id}/",
        f"{keys}{live.public_id}/edit/",
        f"{keys}{live.public_id}/rotate/",
        f"{keys}{live.public_id}/revoke/",
        f"{keys}{revoked.public_id}/",
        apps,
        f"{apps}new",
        f"{apps}{client_id}/edit",
        f"{apps}{client_id}/rotate-secret",
        f"{apps}{client_id}/delete",
        "/w/acme/settings/audit-log/",
        "/w/acme/settings/audit-log/?action=key.paused",
        "/w/acme/settings/members/",
        "/w/acme/settings/usage/",
        "/w/acme/settings/security/",
        "/settings/connected-apps/",
        f"/settings/connected-apps/{connection.public_id}/revoke",
        "/accounts/two-factor/",
    ]


@pytest.fixture
def realistic(workspace, members) -> None:
    """20 keys (one rotated, one revoked), 3 OAuth apps the owner has connected, and over 100
    audit events."""
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
        application, _secret = oauth_app_create(
            workspace=workspace,
            name=f"Acme CRM integration {n}",
            redirect_uris=[f"https://crm-{n}.example.com/oauth/callback/with/a/long/path"],
            confidential=True,
            **actor,
        )
        connection_grant(
            user=members["owner"], application=application, workspace=workspace,
            scopes=["passports:read", "passports:write"], context=RequestContext(),
        )
    assert AuditEvent.objects.count() >= 100


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
    page.get_by_label("Email").fill("owner@acme.test")
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Log in").click()
    page.wait_for_url("**/w/**")
    return page


def shot(page: Page, name: str, size: str, javascript: bool = True) -> None:
    SCREENSHOTS.mkdir(exist_ok=True)
    page.screenshot(
        path=SCREENSHOTS / f"{name}-{size}-{'js' if javascript else 'nojs'}.png", full_page=True
    )


# Text that must not break mid-word: emails, and ids and hints in <code> (not URLs, which may).
BROKEN_WORDS = r"""() => {
  const broken = [];
  const lines = (node, start, end) => {
    const range = document.createRange();
    range.setStart(node, start); range.setEnd(node, end);
    const rects = [...range.getClientRects()].filter(r => r.width > 0);
    return new Set(rects.map(r => Math.round(r.top))).size;
  };
  const walker = document.createTreeWalker(document.body, NodeFilter.SHOW_TEXT);
  for (let node = walker.nextNode(); node; node = walker.nextNode()) {
    const parent = node.parentElement;
    const skip = "pre, .hash, .wrap-code, script, style, .visually-hidden";
    if (!parent || parent.closest(skip)) continue;
    if (!parent.checkVisibility()) continue;
    const pattern = parent.closest("code") ? /\S+/g : /[\w.+-]+@[\w-]+(\.[\w-]+)+/g;
    for (const match of node.data.matchAll(pattern)) {
      if (lines(node, match.index, match.index + match[0].length) > 1) broken.push(match[0]);
    }
  }
  return broken;
}"""

# Every row action (and every other control of the page) is on screen, not scrolled out of view
# inside a table's box.
OFFSCREEN_ACTIONS = """() => [...document.querySelectorAll(
    ".row-actions a, .row-actions button, td.actions-cell a, td.actions-cell button")]
  .filter(el => el.checkVisibility())
  .filter(el => {
    const r = el.getBoundingClientRect();
    return r.left < 0 || r.right > window.innerWidth + 0.5;
  })
  .map(el => el.getAttribute("aria-label") || el.textContent.trim())"""


@pytest.mark.parametrize("javascript", [True, False], ids=["js", "nojs"])
@pytest.mark.parametrize("size", SIZES)
def test_no_page_scrolls_sideways(browser, live_server, realistic, size, javascript) -> None:
    page = new_page(browser, live_server, size, javascript=javascript)
    for number, path in enumerate(dashboard_pages()):
        response = page.goto(path)
        assert response.status == 200, path
        name = path.strip("/").replace("/", "_").replace("?", "_").replace("&", "_") or "home"
        name = re.sub(r"(key|con)_[A-Za-z0-9]{22}", r"\1", re.sub(r"[A-Za-z0-9]{40}", "app", name))
        shot(page, f"page{number:02}-{name}", size, javascript)
        overflow = page.evaluate("document.documentElement.scrollWidth - window.innerWidth")
        assert overflow <= 0, f"{path} scrolls sideways by {overflow}px at {size}"
        assert page.evaluate(OFFSCREEN_ACTIONS) == [], f"{path}: actions off screen at {size}"
        assert page.evaluate(BROKEN_WORDS) == [], f"{path}: words broken at {size}"
    page.context.close()


@pytest.mark.parametrize("javascript", [True, False], ids=["js", "nojs"])
@pytest.mark.parametrize("size", SIZES)
def test_signed_out_pages_fit(browser, live_server, realistic, size, javascript) -> None:
    width, height = SIZES[size]
    context = browser.new_context(base_url=live_server.url, java_script_enabled=javascript,
                                  viewport={"width": width, "height": height})
    page = context.new_page()
    page.goto("/accounts/login/")
    shot(page, "login", size, javascript)
    assert page.evaluate("document.documentElement.scrollWidth - window.innerWidth") <= 0
    context.close()


@pytest.mark.parametrize("javascript", [True, False], ids=["js", "nojs"])
def test_the_sidebar_folds_into_a_menu_on_a_phone(
    browser, live_server, realistic, javascript
) -> None:
    page = new_page(browser, live_server, "phone", javascript=javascript)
    page.goto("/w/acme/settings/api-keys/")
    nav = page.get_by_role("navigation", name="Settings")
    menu = page.get_by_test_id("nav-menu").locator("summary")
    expect(menu).to_be_visible()
    expect(menu).to_contain_text("API Keys")  # says where one is
    expect(nav.get_by_role("link", name="Audit log")).to_be_hidden()
    first_row = page.get_by_test_id("key-row").first
    assert first_row.bounding_box()["y"] < 600  # the page starts near the top, not below the links
    menu.click()
    expect(nav.get_by_role("link", name="Audit log")).to_be_visible()
    shot(page, "menu-open", "phone", javascript)
    nav.get_by_role("link", name="Audit log").click()
    page.wait_for_url("**/audit-log/")
    nav = page.get_by_role("navigation", name="Settings")
    audit_link = nav.get_by_role("link", name="Audit log")
    expect(audit_link).to_be_hidden()
    page.context.close()

    page = new_page(browser, live_server, "laptop", javascript=javascript)
    page.goto("/w/acme/settings/api-keys/")
    expect(page.get_by_test_id("nav-menu").locator("summary")).to_be_hidden()
    nav = page.get_by_role("navigation", name="Settings")
    audit_link = nav.get_by_role("link", name="Audit log")
    expect(audit_link).to_be_visible()
    page.context.close()


FITS_AND_HAS_FOCUS = """() => {
  const dialog = document.querySelector("dialog[open]");
  const r = dialog.getBoundingClientRect();
  return {
    fits: r.left >= 0 && r.top >= 0 && r.right <= innerWidth && r.bottom <= innerHeight,
    focused: dialog.contains(document.activeElement),
    modal: dialog.matches(":modal"),
  };
}"""

DIALOGS = {
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
    "/settings/connected-apps/": [
        "Revoke Acme CRM integration 1",
        "Revoke Acme CRM integration 2",
    ],
}


@pytest.mark.parametrize("size", SIZES)
def test_every_dialog_opens_twice_in_a_row(browser, live_server, realistic, size) -> None:
    """On every page with dialogs, each opens, closes (Cancel, then Escape) and opens again; it
    is the shared dialog, fits the viewport, takes the focus and gives it back to its opener."""
    page = new_page(browser, live_server, size, javascript=True)
    for path, links in DIALOGS.items():
        page.goto(path)
        page.evaluate("window.samePage = true")
        for name in links:
            opener = page.get_by_role("link", name=name, exact=True)
            for _ in range(2):
                opener.click()
                dialog = page.get_by_role("dialog")
                expect(dialog).to_be_visible()
                expect(dialog).to_have_class("dialog")  # templates/dialog.html
                state = page.evaluate(FITS_AND_HAS_FOCUS)
                assert state == {"fits": True, "focused": True, "modal": True}, (path, name)
                shot(page, f"dialog-{name.replace(' ', '-')}", size)
                dialog.get_by_role("link", name="Cancel").click()
                expect(dialog).to_have_count(0)
                expect(opener).to_be_focused()
                assert page.locator("#modal-root").count() == 1
        for name in links:
            opener = page.get_by_role("link", name=name, exact=True)
            opener.click()
            expect(page.get_by_role("dialog")).to_be_visible()
            page.keyboard.press("Escape")
            expect(page.get_by_role("dialog")).to_have_count(0)
            expect(opener).to_be_focused()
        assert page.evaluate("window.samePage === true")
    page.context.close()


def _cannot_dismiss(page: Page, secret) -> None:
    """Escape pressed again and again (no click in between) and a backdrop click leave it."""
    for _ in range(3):
        page.keyboard.press("Escape")
    page.mouse.click(2, 2)  # the backdrop
    page.keyboard.press("Escape")
    expect(secret).to_be_visible()


@pytest.mark.parametrize("size", SIZES)
def test_copy_once_dialogs_stay_until_the_secret_is_saved(browser, live_server, realistic, size):
    page = new_page(browser, live_server, size, javascript=True)
    page.goto("/w/acme/settings/api-keys/")
    page.get_by_role("link", name="New key").click()
    dialog = page.get_by_role("dialog")
    dialog.get_by_label("Name", exact=True).fill("Phone key")
    dialog.get_by_role("button", name="Create key").click()
    token = dialog.get_by_test_id("new-token")
    expect(token).to_be_visible()
    expect(token).to_be_focused()
    shot(page, "dialog-new-token", size)
    _cannot_dismiss(page, token)
    dialog.get_by_role("link", name="Done, I saved it").click()
    expect(page.get_by_role("dialog")).to_have_count(0)
    expect(page.get_by_role("link", name="New key")).to_be_focused()
    # The new key made the table reload itself (`keys-changed`); a link clicked before that swap
    # lands is replaced by it, and focus could not return to it.
    page.wait_for_load_state("networkidle")

    page.goto("/w/acme/settings/oauth-apps/")
    for opener, button in (("Register app", "Register app"),
                           ("Rotate the secret of Acme CRM integration 2", "Rotate secret")):
        page.get_by_role("link", name=opener, exact=True).click()
        dialog = page.get_by_role("dialog")
        if button == "Register app":
            dialog.get_by_label("Name").fill("Phone CRM")
            dialog.get_by_label("Redirect URIs").fill("https://phone.example.com/cb")
        dialog.get_by_role("button", name=button).click()
        secret = dialog.get_by_test_id("client-secret")
        expect(secret).to_be_visible()
        expect(secret).to_be_focused()
        _cannot_dismiss(page, secret)
        dialog.get_by_role("link", name="Done, I saved it").click()
        expect(page.get_by_role("dialog")).to_have_count(0)
        page.wait_for_load_state("networkidle")
    expect(page.get_by_test_id("app-row")).to_have_count(4)
    page.context.close()


@pytest.mark.parametrize("size", SIZES)
def test_refusals_are_shown_focused_and_all_at_once(
    browser, live_server, workspace, members, size
) -> None:
    page = new_page(browser, live_server, size, javascript=True)
    page.goto("/w/acme/settings/api-keys/")
    page.get_by_role("link", name="New key").click()
    dialog = page.get_by_role("dialog")
    scopes = dialog.locator("input[name=scopes]")
    expect(scopes.first).to_be_visible()
    for n in range(scopes.count()):
        scopes.nth(n).uncheck()
    expect(dialog.locator("input[name=scopes]:checked")).to_have_count(0)
    dialog.get_by_label("Rate limit (requests per minute)").fill("-5")
    dialog.get_by_label("Allowed IPs").fill("10.0.0.0/33")
    dialog.get_by_role("button", name="Create key").click()
    for message in ("Give the key a name.", "Choose at least one scope.",
                    "The rate limit must be a positive number of requests.",
                    "Not an IP address or CIDR range: 10.0.0.0/33."):
        expect(dialog).to_contain_text(message)
    expect(dialog.get_by_label("Name", exact=True)).to_be_focused()  # the first field in error
    shot(page, "dialog-errors", size)

    # The plan's limit is reached while the dialog is open (another tab, a colleague): the
    # refusal is brought into view and focused.
    dialog.get_by_label("Name", exact=True).fill("One too many")
    dialog.get_by_label("passports:read").check()
    dialog.get_by_label("Rate limit (requests per minute)").fill("")
    dialog.get_by_label("Allowed IPs").fill("")
    for n in range(workspace.plan.active_keys_limit):
        apikey_create(workspace=workspace, name=f"Key {n}", scopes=["passports:read"],
                      environment="development", **by(members["admin"]))
    dialog.get_by_role("button", name="Create key").click()
    refusal = dialog.get_by_role("alert")
    expect(refusal).to_contain_text("plan allows")
    expect(refusal).to_be_focused()
    expect(refusal).to_be_in_viewport()
    page.context.close()


@pytest.mark.parametrize("size", SIZES)
def test_oauth_apps_without_javascript_post_redirect_get(browser, live_server, realistic, size):
    """Registering an app or rotating its secret answers with a redirect; the secret is shown
    once after it, and a reload neither repeats the action nor shows the secret again."""
    page = new_page(browser, live_server, size, javascript=False)
    page.goto("/w/acme/settings/oauth-apps/")
    page.get_by_role("link", name="Register app").click()
    page.get_by_label("Name").fill("No-JS CRM")
    page.get_by_label("Redirect URIs").fill("https://nojs.example.com/cb")
    page.get_by_role("button", name="Register app").click()
    page.wait_for_url("**/oauth-apps/")
    secret = page.get_by_test_id("client-secret")
    expect(secret).to_be_visible()
    shot(page, "app-secret-after-redirect", size, javascript=False)
    page.reload()
    expect(secret).to_have_count(0)
    expect(page.get_by_test_id("app-row")).to_have_count(4)
    assert WorkspaceApp.objects.count() == 4

    page.get_by_role("link", name="Rotate the secret of No-JS CRM").click()
    page.get_by_role("button", name="Rotate secret").click()
    page.wait_for_url("**/oauth-apps/")
    expect(secret).to_be_visible()
    rotated = secret.input_value()
    page.reload()
    expect(secret).to_have_count(0)
    app = WorkspaceApp.objects.select_related("application").get(application__name="No-JS CRM")
    assert check_password(rotated, app.application.client_secret)  # not rotated a second time
    assert AuditEvent.objects.filter(action="oauth_app.secret_rotated").count() == 1
    page.context.close()


@pytest.mark.parametrize("javascript", [True, False], ids=["js", "nojs"])
def test_connected_apps_revoke_asks_first(browser, live_server, realistic, javascript) -> None:
    page = new_page(browser, live_server, "phone", javascript=javascript)
    page.goto("/settings/connected-apps/")
    rows = page.get_by_test_id("connection-row")
    expect(rows).to_have_count(3)
    page.get_by_role("link", name="Revoke Acme CRM integration 0").click()
    confirm = page.get_by_role("dialog")
    expect(confirm).to_contain_text("Revoke “Acme CRM integration 0”?")
    assert Connection.objects.filter(revoked_at__isnull=True).count() == 3  # nothing yet
    shot(page, "connection-revoke", "phone", javascript)
    confirm.get_by_role("button", name="Revoke access").click()
    expect(rows).to_have_count(2)
    expect(page.get_by_role("status").first).to_contain_text("Revoked “Acme CRM integration 0”")
    if not javascript:
        assert page.url.endswith("/settings/connected-apps/")
    assert Connection.objects.filter(revoked_at__isnull=True).count() == 2
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
    expect(page.get_by_test_id("new-key")).to_have_accessible_description(
        re.compile("keys of the Free plan are in use")
    )
    expect(page.get_by_test_id("key-limit-reason")).to_contain_text(
        "keys of the Free plan are in use"
    )
    page.context.close()
