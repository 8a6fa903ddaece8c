"""A key's Budget section and the Security page's credential policy in the browser (issue 16
points 2 and 3), at a phone's and a laptop's width, with and without JavaScript: bad input is a
form error with nothing saved, a good budget is saved in place (htmx) or after a redirect.
Screenshots go to tests/browser/screenshots/ (kept out of git)."""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

from apikeys.models import ApiKey
from tests.browser.test_key_edit_search import no_sideways_scroll, shot
from tests.browser.test_layout import SIZES, new_page
from tests.factories import PASSWORD, by, key_with_token

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


@pytest.mark.parametrize("javascript", [True, False], ids=["js", "nojs"])
@pytest.mark.parametrize("size", SIZES)
def test_set_a_keys_budget(browser, live_server, workspace, members, size, javascript) -> None:
    key, _token = key_with_token(workspace, name="Nightly export", **by(members["admin"]))
    page = new_page(browser, live_server, size, javascript=javascript)
    page.goto(f"/w/acme/settings/api-keys/{key.public_id}/")
    section = page.get_by_test_id("budget")
    expect(section).to_contain_text("None: only the workspace's budgets apply")
    section.get_by_label("Daily request cap").fill("-5")
    section.get_by_label("Credits").fill("99999999999999999999")
    section.get_by_role("button", name="Save budget").click()
    section = page.get_by_test_id("budget")
    expect(section).to_contain_text("greater than or equal to 1")
    expect(section).to_contain_text("less than or equal to")
    key.refresh_from_db()
    assert key.daily_cap is None and key.credits is None
    section.get_by_label("Daily request cap").fill("500")
    section.get_by_label("Credits").fill("10000")
    section.get_by_label("Refill").select_option("monthly")
    section.get_by_role("button", name="Save budget").click()
    section = page.get_by_test_id("budget")
    expect(section.get_by_test_id("budget-daily")).to_contain_text("0 of 500 requests used today")
    expect(section.get_by_test_id("budget-credits")).to_contain_text("10000 of 10000 left")
    if javascript:
        expect(section.get_by_test_id("budget-saved")).to_be_visible()
    else:
        expect(page.get_by_text("Budget of “Nightly export” saved.")).to_be_visible()
    no_sideways_scroll(page, "the key's page with its budget")
    shot(page, "key-budget", size, javascript)
    key = ApiKey.objects.get(pk=key.pk)
    assert (key.daily_cap, key.credits, key.credits_refill) == (500, 10000, "monthly")


@pytest.mark.parametrize("javascript", [True, False], ids=["js", "nojs"])
@pytest.mark.parametrize("size", SIZES)
def test_owner_tightens_the_credential_policy(
    browser, live_server, workspace, members, size, javascript
) -> None:
    key_with_token(workspace, name="Forever key", **by(members["admin"]))
    width, height = SIZES[size]
    context = browser.new_context(base_url=live_server.url, viewport={"width": width,
                                  "height": height}, java_script_enabled=javascript)
    page = context.new_page()
    page.set_default_timeout(10_000)
    page.goto("/accounts/login/")
    page.get_by_label("Email").fill("owner@acme.test")
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Log in").click()
    page.goto("/w/acme/settings/security/")
    expect(page.get_by_test_id("all-compliant")).to_be_visible()
    policy = page.get_by_test_id("credential-policy")
    policy.get_by_label("Maximum key lifetime").select_option("30")
    policy.get_by_label("Enforce: refuse non-compliant keys (403 policy_violation)").check()
    page.get_by_role("button", name="Save policies").click()
    expect(page.get_by_text("Policies saved.")).to_be_visible()
    listed = page.get_by_test_id("noncompliant-key")
    expect(listed).to_have_count(1)
    expect(listed).to_contain_text("Forever key")
    expect(listed).to_contain_text("requires keys to expire within 30 days")
    no_sideways_scroll(page, "the Security page")
    shot(page, "security-policy", size, javascript)
    workspace.refresh_from_db()
    assert (workspace.key_max_lifetime_days, workspace.credential_policy_mode) == (30, "enforce")
    context.close()
