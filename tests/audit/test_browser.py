"""The audit log in a real browser: filters swap the table in place and keep the URL in sync."""

from __future__ import annotations

import pytest

from core.context import Actor, ActorType
from tests.audit.helpers import record

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_owner_finds_who_revoked_a_key(page, login, members, workspace) -> None:
    record(workspace, 60, action="key.created")
    (revoked,) = record(
        workspace, action="key.revoked", actor=Actor(ActorType.USER, "9", "mallory@acme.test"),
        metadata={"reason": "leaked"},
    )
    login("owner@acme.test")
    page.get_by_role("navigation", name="Settings").get_by_role("link", name="Audit log").click()
    page.wait_for_url("**/w/acme/settings/audit-log/")
    assert page.locator("#event-table tbody tr").count() == 50
    page.evaluate("window.sameDocument = true")  # gone if the page reloads

    page.get_by_label("Action").select_option("key.revoked")
    page.wait_for_url("**/settings/audit-log/?action=key.revoked*")
    rows = page.locator("#event-table tbody tr")
    rows.first.wait_for()
    assert rows.count() == 1
    row = page.locator(f"#{revoked.public_id}")
    assert "mallory@acme.test" in row.inner_text()
    assert "203.0.113.7" in row.inner_text()
    row.get_by_text("Show").click()
    assert '"reason": "leaked"' in row.locator("pre.metadata").inner_text()
    assert page.evaluate("window.sameDocument") is True

    export = page.get_by_role("link", name="Export CSV")
    assert export.get_attribute("href").endswith("export.csv?action=key.revoked")


def test_paging_older_and_back(page, login, members, workspace) -> None:
    events = record(workspace, 55)
    login("owner@acme.test")
    page.goto("/w/acme/settings/audit-log/")
    page.get_by_role("link", name="Older →").click()
    page.wait_for_url("**/settings/audit-log/?cursor=*")
    page.locator(f"#{events[0].public_id}").wait_for()
    assert page.locator("#event-table tbody tr").count() == 5
    page.go_back()
    page.locator(f"#{events[-1].public_id}").wait_for()
