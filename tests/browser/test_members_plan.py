"""Members, invitations and the plan in a real browser (issue 15 point 6), at a phone's and a
laptop's width, with and without JavaScript: invite, accept as a new user, change a role and
remove a member after confirming, change the plan and turn overage on. Also the pages of points
8 and 9 (Overview, API reference) do not scroll sideways. Screenshots go to
tests/browser/screenshots/ (kept out of git)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from django.core import mail
from playwright.sync_api import Browser, Page, expect

from tests.factories import PASSWORD, plan_named
from workspaces.models import Invitation, Membership

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

SCREENSHOTS = Path(__file__).parent / "screenshots"
SIZES = {"phone": (390, 844), "laptop": (1280, 800)}
MODES = [pytest.param(True, id="js"), pytest.param(False, id="nojs")]


def new_page(browser: Browser, live_server: object, size: str, *, javascript: bool,
             email: str | None = "owner@acme.test") -> Page:
    width, height = SIZES[size]
    context = browser.new_context(base_url=live_server.url, java_script_enabled=javascript,
                                  viewport={"width": width, "height": height})
    page = context.new_page()
    page.set_default_timeout(10_000)
    if email:
        page.goto("/accounts/login/")
        page.get_by_label("Email").fill(email)
        page.get_by_label("Password").fill(PASSWORD)
        page.get_by_role("button", name="Log in").click()
        page.wait_for_url("**/w/**")
    return page


def shot(page: Page, name: str, size: str, javascript: bool) -> None:
    SCREENSHOTS.mkdir(exist_ok=True)
    page.screenshot(path=SCREENSHOTS / f"{name}-{size}-{'js' if javascript else 'nojs'}.png",
                    full_page=True)
    overflow = page.evaluate("document.documentElement.scrollWidth - window.innerWidth")
    assert overflow <= 0, f"{name} scrolls sideways by {overflow}px at {size}"


@pytest.mark.parametrize("javascript", MODES)
@pytest.mark.parametrize("size", SIZES)
def test_invite_and_accept_as_a_new_user(browser, live_server, members, size, javascript):
    page = new_page(browser, live_server, size, javascript=javascript)
    page.goto("/w/acme/settings/members/")
    form = page.locator("#invite-form")
    form.get_by_label("Email").fill("not-an-email")
    form.get_by_role("button", name="Send invitation").click()
    expect(page.locator("#invite-form")).to_contain_text("valid email")
    page.locator("#invite-form").get_by_label("Email").fill("newcomer@acme.test")
    page.locator("#invite-form").get_by_label("Role").select_option("editor")
    page.locator("#invite-form").get_by_role("button", name="Send invitation").click()
    expect(page.get_by_role("status")).to_contain_text("Invitation sent to newcomer@acme.test")
    expect(page.get_by_test_id("invitation-row")).to_contain_text("newcomer@acme.test")
    shot(page, "members-invited", size, javascript)
    link = re.search(r"http://\S+/invitations/gin_\w+/", mail.outbox[-1].body).group(0)
    page.context.close()

    guest = new_page(browser, live_server, size, javascript=javascript, email=None)
    guest.goto(link)
    expect(guest.get_by_role("heading", name="Join Acme")).to_be_visible()
    shot(guest, "invitation-accept", size, javascript)
    guest.get_by_label("Password", exact=True).fill("a-long-new-pass-1")
    guest.get_by_label("Password again").fill("a-long-new-pass-1")
    guest.get_by_role("button", name="Create account and join").click()
    guest.wait_for_url("**/w/acme/")
    expect(guest.get_by_role("status")).to_contain_text("Welcome to Acme")
    assert Membership.objects.get(user__email="newcomer@acme.test").role == "editor"
    guest.goto(link)  # single use
    expect(guest.get_by_role("alert")).to_contain_text("not valid any more")
    guest.context.close()


@pytest.mark.parametrize("javascript", MODES)
@pytest.mark.parametrize("size", SIZES)
def test_change_a_role_and_remove_a_member_after_confirming(
    browser, live_server, members, workspace, size, javascript
):
    viewer = Membership.objects.get(user=members["viewer"], workspace=workspace)
    editor = Membership.objects.get(user=members["editor"], workspace=workspace)
    page = new_page(browser, live_server, size, javascript=javascript)
    page.goto("/w/acme/settings/members/")
    row = page.locator(f"#member-{viewer.pk}")
    row.get_by_label("Role of viewer@acme.test").select_option("admin")
    row.get_by_role("button", name="Change").click()
    dialog = page.get_by_role("dialog")
    expect(dialog).to_contain_text("Change the role of viewer@acme.test?")
    shot(page, "members-role-confirm", size, javascript)
    viewer.refresh_from_db()
    assert viewer.role == "viewer"  # asking changed nothing
    dialog.get_by_role("button", name="Change role").click()
    if javascript:
        expect(page.locator(f"#member-{viewer.pk}").get_by_test_id("saved")).to_have_text("Saved")
        expect(page.get_by_role("dialog")).to_have_count(0)
    else:
        expect(page.get_by_role("status")).to_contain_text("Saved: viewer@acme.test is now Admin.")
    viewer.refresh_from_db()
    assert viewer.role == "admin"

    page.get_by_role("link", name="Remove editor@acme.test").click()
    dialog = page.get_by_role("dialog")
    expect(dialog).to_contain_text("Remove editor@acme.test?")
    dialog.get_by_role("button", name="Remove member").click()
    expect(page.get_by_role("status")).to_contain_text("Removed editor@acme.test")
    expect(page.locator(f"#member-{editor.pk}")).to_have_count(0)
    assert not Membership.objects.filter(pk=editor.pk).exists()

    # The last owner is protected, and the refusal is shown in the dialog.
    me = Membership.objects.get(user=members["owner"], workspace=workspace)
    page.get_by_role("link", name="Remove owner@acme.test").click()
    page.get_by_role("dialog").get_by_role("button", name="Remove member").click()
    expect(page.get_by_role("alert")).to_contain_text("at least one owner")
    assert Membership.objects.filter(pk=me.pk).exists()
    page.context.close()


@pytest.mark.parametrize("javascript", MODES)
@pytest.mark.parametrize("size", SIZES)
def test_change_plan_and_turn_overage_on(browser, live_server, members, workspace, size,
                                         javascript):
    page = new_page(browser, live_server, size, javascript=javascript)
    page.goto("/w/acme/settings/plan/")
    shot(page, "plan", size, javascript)
    page.get_by_label("Plan").select_option("basic")
    page.get_by_role("button", name="Change plan").click()
    dialog = page.get_by_role("dialog")
    expect(dialog).to_contain_text("Move to the Basic plan?")
    dialog.get_by_role("button", name="Change plan").click()
    expect(page.get_by_role("status")).to_contain_text("Saved: the workspace is now on the Basic")
    expect(page.get_by_test_id("current-plan")).to_have_text("Basic")
    page.get_by_role("button", name="Turn overage on").click()
    expect(page.get_by_test_id("overage-state")).to_have_text("on")
    workspace.refresh_from_db()
    assert workspace.plan == plan_named("basic") and workspace.overage_enabled
    shot(page, "plan-overage-on", size, javascript)
    page.goto("/w/acme/settings/usage/")
    expect(page.get_by_test_id("overage")).to_contain_text("Overage is on")
    page.context.close()


@pytest.mark.parametrize("javascript", MODES)
@pytest.mark.parametrize("size", SIZES)
def test_overview_and_api_reference_fit(browser, live_server, members, workspace, size,
                                        javascript):
    page = new_page(browser, live_server, size, javascript=javascript)
    expect(page.get_by_test_id("needs-attention")).to_be_visible()
    shot(page, "overview", size, javascript)
    if size == "phone":  # the settings navigation is folded into its Menu there
        page.get_by_test_id("nav-menu").locator("summary").click()
    page.get_by_role("navigation", name="Settings").get_by_role(
        "link", name="API reference").click()
    expect(page.get_by_role("heading", name="API reference", exact=True)).to_be_visible()
    assert page.get_by_test_id("endpoint").count() >= 10
    shot(page, "api-reference", size, javascript)
    page.context.close()


def test_a_viewer_sees_no_member_or_plan_controls(browser, live_server, members) -> None:
    page = new_page(browser, live_server, "phone", javascript=True, email="viewer@acme.test")
    page.goto("/w/acme/settings/members/")
    assert page.get_by_role("link", name=re.compile("^Remove")).count() == 0
    assert page.locator("#invite-form").count() == 0
    page.goto("/w/acme/settings/plan/")
    assert page.get_by_role("button", name="Change plan").count() == 0
    assert not Invitation.objects.exists()
    page.context.close()
