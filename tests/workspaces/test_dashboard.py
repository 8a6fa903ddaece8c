from http import HTTPStatus

import pytest
from django.test import Client

from audit.models import AuditEvent
from workspaces.models import Membership

pytestmark = pytest.mark.django_db

OK = {"confirmed": "1"}  # the role change's confirmation step, answered


def test_login_page_renders(client: Client) -> None:
    response = client.get("/accounts/login/")
    assert response.status_code == HTTPStatus.OK
    assert b"Log in to Gatehouse" in response.content


def test_wrong_login_shows_form_error(client: Client, members) -> None:
    response = client.post("/accounts/login/", {"username": "owner@acme.test", "password": "nope"})
    assert response.status_code == HTTPStatus.OK
    assert b"enter a correct" in response.content
    assert "_auth_user_id" not in client.session


def test_login_then_home_redirects_to_workspace(client: Client, members, password) -> None:
    response = client.post(
        "/accounts/login/", {"username": "owner@acme.test", "password": password}, follow=True
    )
    assert response.status_code == HTTPStatus.OK
    assert response.redirect_chain[-1][0] == "/w/acme/"
    assert b"Acme" in response.content


def test_workspace_pages_require_login(client: Client, workspace) -> None:
    response = client.get("/w/acme/")
    assert response.status_code == HTTPStatus.FOUND
    assert response["Location"].startswith("/accounts/login/")


def test_unknown_workspace_is_404(owner_client: Client) -> None:
    assert owner_client.get("/w/nope/").status_code == HTTPStatus.NOT_FOUND


def test_non_member_gets_404(client_for, other_workspace) -> None:
    assert client_for("owner").get("/w/globex/").status_code == HTTPStatus.NOT_FOUND
    assert client_for("owner").get("/w/globex/settings/members/").status_code == 404


def test_settings_navigation_is_shown(owner_client: Client) -> None:
    body = owner_client.get("/w/acme/").content.decode()
    assert 'href="/w/acme/settings/members/"' in body


@pytest.mark.parametrize("role", ["admin", "editor", "viewer"])
def test_members_page_has_no_controls_for_non_owners(client_for, role) -> None:
    response = client_for(role).get("/w/acme/settings/members/")
    assert response.status_code == HTTPStatus.OK
    assert b"<select" not in response.content


def test_owner_changes_role(owner_client: Client, members, workspace) -> None:
    target = Membership.objects.get(user=members["viewer"], workspace=workspace)
    response = owner_client.post(
        f"/w/acme/settings/members/{target.pk}/role", {**OK, "role": "editor"}
    )
    assert response.status_code == HTTPStatus.FOUND
    target.refresh_from_db()
    assert target.role == "editor"
    event = AuditEvent.objects.get(action="member.role_changed")
    assert event.workspace == workspace
    assert event.actor_label == "owner@acme.test"
    assert event.target_id == str(members["viewer"].pk)
    assert event.metadata == {"from": "viewer", "to": "editor", "door": "dashboard"}
    assert event.ip == "127.0.0.1"


def test_owner_changes_role_with_htmx_gets_row(owner_client: Client, members, workspace) -> None:
    target = Membership.objects.get(user=members["viewer"], workspace=workspace)
    response = owner_client.post(
        f"/w/acme/settings/members/{target.pk}/role",
        {**OK, "role": "admin"},
        headers={"HX-Request": "true"},
    )
    assert response.status_code == HTTPStatus.OK
    body = response.content.decode()
    assert body.strip().startswith(f'<tr id="member-{target.pk}"')
    assert "<html" not in body
    target.refresh_from_db()
    assert target.role == "admin"


@pytest.mark.parametrize("role", ["admin", "editor", "viewer"])
def test_non_owner_cannot_change_roles(client_for, members, workspace, role) -> None:
    target = Membership.objects.get(user=members["owner"], workspace=workspace)
    response = client_for(role).post(
        f"/w/acme/settings/members/{target.pk}/role", {**OK, "role": "viewer"}
    )
    assert response.status_code == HTTPStatus.FORBIDDEN
    target.refresh_from_db()
    assert target.role == "owner"
    assert not AuditEvent.objects.filter(action="member.role_changed").exists()


def test_last_owner_cannot_be_demoted(owner_client: Client, members, workspace) -> None:
    me = Membership.objects.get(user=members["owner"], workspace=workspace)
    response = owner_client.post(
        f"/w/acme/settings/members/{me.pk}/role", {**OK, "role": "viewer"}, follow=True
    )
    assert b"at least one owner" in response.content
    me.refresh_from_db()
    assert me.role == "owner"


def test_invalid_role_changes_nothing(owner_client: Client, members, workspace) -> None:
    target = Membership.objects.get(user=members["viewer"], workspace=workspace)
    owner_client.post(f"/w/acme/settings/members/{target.pk}/role", {**OK, "role": "god"})
    target.refresh_from_db()
    assert target.role == "viewer"


def test_role_change_on_other_workspace_membership_is_404(
    owner_client: Client, other_workspace
) -> None:
    from tests.factories import MembershipFactory

    foreign = MembershipFactory(workspace=other_workspace, role="viewer")
    response = owner_client.post(
        f"/w/acme/settings/members/{foreign.pk}/role", {**OK, "role": "owner"}
    )
    assert response.status_code == HTTPStatus.NOT_FOUND
    foreign.refresh_from_db()
    assert foreign.role == "viewer"


def test_switcher_lists_only_my_workspaces(owner_client, members, other_workspace) -> None:
    from tests.factories import MembershipFactory, WorkspaceFactory

    mine = WorkspaceFactory(slug="initech", name="Initech")
    MembershipFactory(workspace=mine, user=members["owner"], role="viewer")
    body = owner_client.get("/w/acme/").content.decode()
    assert 'href="/w/initech/"' in body
    assert "/w/globex/" not in body


@pytest.mark.parametrize(
    ("role", "visible", "hidden"),
    [
        ("viewer", ["api-keys", "members"], ["oauth-apps", "audit-log"]),
        ("editor", ["api-keys", "members"], ["oauth-apps", "audit-log"]),
        ("admin", ["api-keys", "oauth-apps", "audit-log", "members"], []),
        ("owner", ["api-keys", "oauth-apps", "audit-log", "members"], []),
    ],
)
def test_settings_navigation_shows_only_pages_the_role_may_open(
    client_for, role, visible, hidden
) -> None:
    body = client_for(role).get("/w/acme/").content.decode()
    for page in visible:
        assert f'href="/w/acme/settings/{page}/"' in body
    for page in hidden:
        assert f'href="/w/acme/settings/{page}/"' not in body
