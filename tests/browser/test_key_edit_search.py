"""Editing a key and finding keys in the browser (issue 15 points 4 and 5), at a phone's and a
laptop's width, with and without JavaScript: bad input comes back as form errors with nothing
saved, a good edit lands on the key's page; the search filters as one types (htmx) or on Find
(no JavaScript). Screenshots go to tests/browser/screenshots/ (kept out of git)."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect

from apikeys.models import ApiKey
from tests.browser.test_layout import SCREENSHOTS, SIZES, new_page

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

# `realistic` (20 keys, one rotated, one revoked; 3 OAuth apps) is test_layout's fixture.
from tests.browser.test_layout import realistic  # noqa: E402, F401


def no_sideways_scroll(page, what: str) -> None:
    overflow = page.evaluate("document.documentElement.scrollWidth - window.innerWidth")
    assert overflow <= 0, f"{what} scrolls sideways by {overflow}px"


def shot(page, name: str, size: str, javascript: bool) -> None:
    SCREENSHOTS.mkdir(exist_ok=True)
    page.screenshot(
        path=SCREENSHOTS / f"{name}-{size}-{'js' if javascript else 'nojs'}.png", full_page=True
    )


@pytest.mark.parametrize("javascript", [True, False], ids=["js", "nojs"])
@pytest.mark.parametrize("size", SIZES)
def test_edit_a_key(browser, live_server, realistic, size, javascript) -> None:  # noqa: F811
    key = ApiKey.objects.get(name="Deploy worker number 5")
    page = new_page(browser, live_server, size, javascript=javascript)
    page.goto(f"/w/acme/settings/api-keys/{key.public_id}/")
    page.get_by_test_id("edit-key").click()
    page.wait_for_url(f"**/{key.public_id}/edit/")
    form = page.get_by_test_id("edit-form")
    expect(form.get_by_label("Name", exact=True)).to_have_value("Deploy worker number 5")
    no_sideways_scroll(page, "the Edit page")
    form.get_by_label("Name", exact=True).fill("Nightly export")
    form.get_by_label("Allowed IPs").fill("10.0.0.0/33, not-an-address")
    form.get_by_label("Rate limit (requests per minute)").fill("0")
    form.get_by_role("button", name="Save changes").click()
    form = page.get_by_test_id("edit-form")
    expect(form).to_contain_text("Not an IP address or CIDR range")
    expect(form).to_contain_text("The rate limit must be a positive number")
    expect(form.get_by_label("Name", exact=True)).to_have_value("Nightly export")
    shot(page, "key-edit-errors", size, javascript)
    no_sideways_scroll(page, "the Edit page with errors")
    key.refresh_from_db()
    assert key.name == "Deploy worker number 5"  # nothing saved
    form.get_by_label("Allowed IPs").fill("192.0.2.0/24")
    form.get_by_label("Rate limit (requests per minute)").fill("120")
    form.get_by_label("Note").fill("Owned by the data team")
    form.get_by_role("button", name="Save changes").click()
    page.wait_for_url(f"**/api-keys/{key.public_id}/")
    expect(page.get_by_role("heading", level=1)).to_contain_text("Nightly export")
    expect(page.locator(".messages")).to_contain_text("Saved “Nightly export”")
    expect(page.get_by_test_id("key-facts")).to_contain_text("192.0.2.0/24")
    shot(page, "key-detail-after-edit", size, javascript)
    no_sideways_scroll(page, "the key page")
    key.refresh_from_db()
    assert (key.name, key.allowed_ips, key.rate_limit_per_minute) == (
        "Nightly export", ["192.0.2.0/24"], 120)
    page.context.close()


@pytest.mark.parametrize("javascript", [True, False], ids=["js", "nojs"])
@pytest.mark.parametrize("size", SIZES)
def test_find_keys(browser, live_server, realistic, size, javascript) -> None:  # noqa: F811
    page = new_page(browser, live_server, size, javascript=javascript)
    page.goto("/w/acme/settings/api-keys/")
    rows = page.locator("#active-keys [data-testid=key-row]")
    expect(rows).to_have_count(20)  # 18 live, the rotated one and its successor
    search = page.get_by_role("searchbox", name="Search")
    search.fill("number 7")
    if javascript:
        page.evaluate("window.samePage = true")
        expect(rows).to_have_count(1)  # as one types: no button pressed
        assert page.evaluate("window.samePage === true")
    else:
        page.get_by_role("button", name="Find").click()
        expect(rows).to_have_count(1)
    expect(rows.first).to_contain_text("Deploy worker number 7")
    expect(page).to_have_url(re.compile(r"\?q=number(\+|%20)7"))
    shot(page, "key-search", size, javascript)
    no_sideways_scroll(page, "the filtered key list")
    search.fill("")
    page.get_by_label("Status").select_option("revoked")
    if not javascript:
        page.get_by_role("button", name="Find").click()
    expect(rows).to_have_count(0)
    expect(page.locator("#revoked-keys [data-testid=revoked-row]")).to_have_count(1)
    expect(page.get_by_test_id("filter-summary")).to_contain_text("0 live keys match")
    page.get_by_role("link", name="Clear filters").click()
    expect(rows).to_have_count(20)
    no_sideways_scroll(page, "the key list")
    page.context.close()
