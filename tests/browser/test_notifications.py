"""Settings → Webhooks and Settings → Notifications in a real browser, at a phone's and a
laptop's width, with and without JavaScript: add an endpoint, see its secret once, send a test
event to a real receiver and read the delivery log; choose emails. No page scrolls sideways."""

from pathlib import Path

import pytest
from playwright.sync_api import expect

from notifications.models import EmailOptOut, WebhookEndpoint
from tests.browser.test_layout import SIZES, new_page
from tests.notifications.helpers import run_tasks
from tests.notifications.receiver import Receiver

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

SCREENSHOTS = Path(__file__).parent / "screenshots"


def no_sideways_scroll(page, name: str) -> None:
    SCREENSHOTS.mkdir(exist_ok=True)
    page.screenshot(path=SCREENSHOTS / f"{name}.png", full_page=True)
    overflow = page.evaluate("document.documentElement.scrollWidth - window.innerWidth")
    assert overflow <= 0, f"{name} scrolls sideways by {overflow}px"


@pytest.mark.parametrize("javascript", [True, False], ids=["js", "nojs"])
@pytest.mark.parametrize("size", SIZES)
def test_add_an_endpoint_test_it_and_read_its_log(browser, live_server, workspace, members,
                                                  size, javascript) -> None:
    tag = f"{size}-{'js' if javascript else 'nojs'}"
    with Receiver(secret="") as receiver:
        page = new_page(browser, live_server, size, javascript=javascript)
        page.goto("/w/acme/settings/webhooks/")
        page.get_by_label("Endpoint URL").fill(receiver.url + "/with/a/rather/long/path/segment")
        page.get_by_label("key.leaked", exact=False).check()
        page.get_by_role("button", name="Add endpoint").click()
        secret = page.get_by_test_id("secret-value")
        expect(secret).to_be_visible()
        receiver.secret = secret.inner_text()
        assert receiver.secret.startswith("whsec_")
        no_sideways_scroll(page, f"webhook-created-{tag}")

        page.get_by_role("button", name="Send test event").click()
        expect(page.get_by_text("queued.")).to_be_visible()
        assert page.get_by_test_id("secret").count() == 0  # shown once only
        run_tasks()
        page.reload()
        expect(page.get_by_test_id("deliveries").get_by_text("Sent")).to_be_visible()
        [request] = receiver.requests
        assert request.verified and request.event["type"] == "webhook.test"
        no_sideways_scroll(page, f"webhook-detail-{tag}")

        page.goto("/w/acme/settings/webhooks/")
        no_sideways_scroll(page, f"webhook-list-{tag}")
        assert WebhookEndpoint.objects.count() == 1

        page.goto("/w/acme/settings/notifications/")
        page.get_by_label("Daily budget at 80% or 100%").uncheck()
        page.get_by_role("button", name="Save preferences").click()
        expect(page.get_by_text("Notification preferences saved.")).to_be_visible()
        assert list(EmailOptOut.objects.values_list("event_type", flat=True)) == [
            "budget.threshold"]
        no_sideways_scroll(page, f"notifications-{tag}")
        page.context.close()
