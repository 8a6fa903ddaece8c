from datetime import UTC, datetime, timedelta

import pytest
from playwright.sync_api import expect

from apikeys.models import ApiKey, KeyUsageDay
from workspaces.quotas import Budget

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_usage_meters_then_a_keys_chart_and_rate_limit(
    page, login, workspace, make_key, consume, record_requests
) -> None:
    key, _ = make_key(name="Billing sync")
    consume(workspace, Budget.WRITES, 30)
    record_requests(key, 4, method="POST", status=201)
    today = datetime.now(UTC).date()
    KeyUsageDay.objects.bulk_create(
        KeyUsageDay(api_key=key, day=today - timedelta(days=ago), count=n)
        for ago, n in {3: 20, 12: 10}.items()
    )
    violations = []
    page.on("console", lambda m: violations.append(m.text) if "Content Security" in m.text else 0)

    login("admin@acme.test")
    page.get_by_role("navigation", name="Settings").get_by_role("link", name="Usage").click()
    writes = page.get_by_test_id("budget-writes")
    expect(writes).to_contain_text("30 / 100")
    expect(writes).to_contain_text("Resets in")
    meter = writes.locator("meter")
    expect(meter).to_have_attribute("value", "30")
    assert meter.bounding_box()["width"] > 100  # the stylesheet applies
    expect(page.get_by_test_id("budget-passport_reads")).to_contain_text("0 / 100")
    expect(page.locator("#key-usage")).to_contain_text("Billing sync")

    page.locator("#key-usage").get_by_role("link", name="Billing sync").click()
    chart = page.get_by_role("img", name="Requests per day, last 30 days (UTC)")
    expect(chart).to_be_visible()
    bars = chart.locator("rect.chart-bar")
    expect(bars).to_have_count(30)
    tallest, today_bar, empty = (bars.nth(i).bounding_box() for i in (26, 29, 0))
    assert tallest["height"] > today_bar["height"] > 0  # 20 against 4, drawn to scale
    assert tallest["height"] == pytest.approx(5 * today_bar["height"], rel=0.05)
    assert empty["height"] == 0
    expect(page.locator("#recent-requests tbody tr")).to_have_count(4)
    expect(page.locator("#recent-requests")).to_contain_text("POST")

    # The rate limit changes in place (no page load), then the value stays after a reload.
    page.evaluate("window.samePage = true")
    section = page.locator("#rate-limit")
    section.get_by_label("Requests per minute").fill("75")
    section.get_by_role("button", name="Save rate limit").click()
    expect(page.get_by_test_id("rate-limit-saved")).to_have_text("Saved.")
    assert page.evaluate("window.samePage === true")
    assert ApiKey.objects.get(pk=key.pk).rate_limit_per_minute == 75
    page.reload()
    expect(page.locator("#rate-limit").get_by_label("Requests per minute")
           ).to_have_value("75")
    assert violations == []
