"""In a real browser, at a phone's and a laptop's width, with and without JavaScript (issue 17
points 1, 2 and 5): a member connects a self-registered app where apps need approval, choosing
one collection on the consent screen, and is told it awaits approval; the app's token is refused
with 403 `app_not_approved`; an admin approves it on Settings → Connected apps and the very next
request works; an admin revokes another grant after confirming, and denies a third."""

from __future__ import annotations

from http import HTTPStatus
from pathlib import Path
from urllib.parse import urlencode

import pytest
import requests
from playwright.sync_api import Browser, Page, expect

from core.context import RequestContext
from oauth.models import Connection
from oauth.services import connection_grant, oauth_app_create, oauth_app_register_dynamic
from passports.services import collection_create
from tests.factories import PASSWORD, by
from tests.oauth.conftest import pkce_pair, query_of

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

SCREENSHOTS = Path(__file__).parent / "screenshots"
SIZES = {"phone": (390, 844), "laptop": (1280, 800)}
CONNECTED = "/w/acme/settings/connected-apps/"


def signed_in(browser: Browser, live_server, email: str, size: str, *, javascript: bool) -> Page:
    width, height = SIZES[size]
    context = browser.new_context(base_url=live_server.url, java_script_enabled=javascript,
                                  viewport={"width": width, "height": height})
    page = context.new_page()
    page.set_default_timeout(10_000)
    page.goto("/accounts/login/")
    page.get_by_label("Email").fill(email)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Log in").click()
    page.wait_for_url("**/w/**")
    return page


def no_sideways_scroll(page: Page, shot: str) -> None:
    SCREENSHOTS.mkdir(exist_ok=True)
    page.screenshot(path=SCREENSHOTS / f"{shot}.png", full_page=True)
    overflow = page.evaluate("document.documentElement.scrollWidth - window.innerWidth")
    assert overflow <= 0, f"{page.url} scrolls sideways by {overflow}px"
    if page.viewport_size["width"] >= SIZES["laptop"][0]:
        # On a laptop the whole table fits, Approve/Deny/Revoke included (a phone scrolls it).
        hidden = page.evaluate("Math.max(0, ...Array.from(document.querySelectorAll("
                               "'.table-scroll'), e => e.scrollWidth - e.clientWidth))")
        assert hidden <= 0, f"{page.url}: the table is {hidden}px too wide"


def said(page: Page, javascript: bool):
    """The outcome message: in the swapped table with HTMX, the page's messages without JS."""
    return page.get_by_test_id("notice") if javascript else page.locator("ul.messages")


@pytest.mark.parametrize("javascript", [True, False], ids=["js", "nojs"])
@pytest.mark.parametrize("size", SIZES)
def test_pending_app_is_refused_until_an_admin_approves_it(
    browser, live_server, workspace, members, size, javascript
) -> None:
    tag = f"{size}-{'js' if javascript else 'nojs'}"
    workspace.app_access_policy = "approval"
    workspace.save()
    shoes = collection_create(workspace=workspace, name="Shoes", **by(members["admin"]))
    collection_create(workspace=workspace, name="Hats", **by(members["admin"]))
    callback = f"{live_server.url}/tool-callback"
    application, _secret = oauth_app_register_dynamic(
        name="Research assistant", redirect_uris=[callback], confidential=False,
        context=RequestContext(),
    )

    # The editor consents: the screen says approval is needed; they pick one collection.
    member = signed_in(browser, live_server, "editor@acme.test", size, javascript=javascript)
    verifier, challenge = pkce_pair()
    member.goto("/api/oauth/authorize?" + urlencode({
        "response_type": "code", "client_id": application.client_id, "redirect_uri": callback,
        "scope": "passports:read", "state": "s1", "code_challenge": challenge,
        "code_challenge_method": "S256",
    }))
    expect(member.get_by_test_id("needs-approval")).to_be_visible()
    member.get_by_label("Only selected collections").check()
    member.get_by_label("Shoes").check()
    no_sideways_scroll(member, f"consent-approval-{tag}")
    member.get_by_role("button", name="Allow access").click()
    expect(member.get_by_test_id("awaiting-approval")).to_contain_text("Research assistant")
    no_sideways_scroll(member, f"awaiting-approval-{tag}")
    link = member.get_by_test_id("destination-link").get_attribute("href")
    code = query_of(link)["code"]
    member.context.close()

    token = requests.post(f"{live_server.url}/api/oauth/token", data={
        "grant_type": "authorization_code", "code": code, "redirect_uri": callback,
        "code_verifier": verifier, "client_id": application.client_id,
    }, timeout=10)
    assert token.status_code == HTTPStatus.OK, token.text
    bearer = {"Authorization": f"Bearer {token.json()['access_token']}"}
    refused = requests.get(f"{live_server.url}/api/v1/passports", headers=bearer, timeout=10)
    assert refused.status_code == HTTPStatus.FORBIDDEN
    assert refused.json()["error"] == "app_not_approved"

    # The admin sees the request on the Overview and approves it on Connected apps.
    admin = signed_in(browser, live_server, "admin@acme.test", size, javascript=javascript)
    admin.goto("/w/acme/")
    admin.get_by_role("link", name="1 app awaiting your approval").click()
    row = admin.get_by_test_id("workspace-connection-row").filter(has_text="Research assistant")
    expect(row.get_by_test_id("status")).to_have_text("Awaiting approval")
    expect(row.get_by_test_id("reach")).to_have_text("Shoes")
    expect(row).to_contain_text("editor@acme.test")
    no_sideways_scroll(admin, f"connected-apps-pending-{tag}")
    if javascript:
        admin.evaluate("window.samePage = true")
    row.get_by_role("button", name="Approve Research assistant for editor@acme.test").click()
    if javascript:
        expect(admin.get_by_test_id("notice")).to_contain_text("Approved “Research assistant”")
        assert admin.evaluate("window.samePage === true")  # swapped in place
    else:  # POST → 303 → GET, with the message
        expect(admin.get_by_role("status").first).to_contain_text("Approved “Research assistant”")
    admin.goto(CONNECTED)
    row = admin.get_by_test_id("workspace-connection-row").filter(has_text="Research assistant")
    expect(row.get_by_test_id("status")).to_contain_text("Approved")
    admin.context.close()

    listed = requests.get(f"{live_server.url}/api/v1/passports", headers=bearer, timeout=10)
    assert listed.status_code == HTTPStatus.OK, listed.text
    connection = Connection.objects.get(application=application)
    assert connection.approval == "approved" and connection.collections == [shoes.pk]


@pytest.mark.parametrize("javascript", [True, False], ids=["js", "nojs"])
@pytest.mark.parametrize("size", SIZES)
def test_admin_revokes_and_denies_after_confirming(
    browser, live_server, workspace, members, size, javascript
) -> None:
    tag = f"{size}-{'js' if javascript else 'nojs'}"
    crm, _ = oauth_app_create(workspace=workspace, name="Acme CRM",
                              redirect_uris=["https://crm.example.com/cb"], confidential=True,
                              **by(members["admin"]))
    connection_grant(user=members["viewer"], application=crm, workspace=workspace,
                     scopes=["passports:read"], context=RequestContext())
    workspace.app_access_policy = "approval"
    workspace.save()
    tool, _ = oauth_app_register_dynamic(name="Scraper", redirect_uris=["https://s.example.net/c"],
                                         confidential=False, context=RequestContext())
    pending = connection_grant(user=members["editor"], application=tool, workspace=workspace,
                               scopes=["passports:read"], context=RequestContext())
    assert pending.is_pending

    admin = signed_in(browser, live_server, "owner@acme.test", size, javascript=javascript)
    admin.goto(CONNECTED)
    no_sideways_scroll(admin, f"connected-apps-{tag}")
    admin.get_by_role("link", name="Revoke Acme CRM for viewer@acme.test").click()
    dialog = admin.get_by_role("dialog")
    expect(dialog).to_contain_text("Revoke “Acme CRM” for viewer@acme.test?")
    no_sideways_scroll(admin, f"connected-apps-revoke-{tag}")
    dialog.get_by_role("button", name="Revoke access").click()
    expect(said(admin, javascript)).to_contain_text("Revoked “Acme CRM” for viewer@acme.test")
    expect(admin.get_by_test_id("workspace-connection-row").filter(has_text="Acme CRM")
           ).to_have_count(0)

    admin.get_by_role("link", name="Deny Scraper for editor@acme.test").click()
    admin.get_by_role("dialog").get_by_role("button", name="Deny access").click()
    expect(said(admin, javascript)).to_contain_text("Denied “Scraper”")
    expect(admin.get_by_test_id("workspace-connection-row")).to_have_count(0)
    admin.context.close()
    assert not Connection.objects.active().exists()
