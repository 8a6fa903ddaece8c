import pytest

from tests.factories import MembershipFactory, WorkspaceFactory

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_login_switch_workspace_and_see_settings(page, login, members, workspace) -> None:
    second = WorkspaceFactory(slug="initech", name="Initech")
    MembershipFactory(workspace=second, user=members["owner"], role="owner")

    login("owner@acme.test")
    nav = page.get_by_role("navigation", name="Settings")
    assert nav.get_by_role("link", name="Members").is_visible()

    page.get_by_test_id("workspace-switcher").locator("summary").click()
    page.get_by_role("link", name="Initech").click()
    page.wait_for_url("**/w/initech/")
    assert page.locator("h1").inner_text() == "Initech"

    nav.get_by_role("link", name="Members").click()
    page.wait_for_url("**/w/initech/settings/members/")
    assert page.locator("#member-table select").count() == 1  # the owner manages roles


def test_viewer_sees_no_member_controls(page, login, members) -> None:
    login("viewer@acme.test")
    page.goto("/w/acme/settings/members/")
    assert page.get_by_role("heading", name="Members").is_visible()
    assert page.locator("select").count() == 0
    assert page.get_by_role("button", name="Save").count() == 0


def test_wrong_password_shows_error(page, login, members) -> None:
    login("owner@acme.test", "wrong-password")
    assert page.get_by_role("alert").inner_text().startswith("Please enter a correct")
