"""Removing a member ends their OAuth grants in that workspace (SPEC §7), from every door that
removes members — Django admin's delete page, its "Delete selected" action, a workspace's
inline, and the service itself — audited; the refresh token stops working and re-adding the
member does not revive it. The last test drives it with authlib against a live server."""

from __future__ import annotations

from http import HTTPStatus

import pytest
from authlib.integrations.requests_client import OAuth2Session, OAuthError
from django.test import Client

from audit.models import AuditEvent
from oauth.models import Connection
from oauth.services import oauth_app_create
from tests.admin_forms import form_data, inline_row
from tests.factories import MembershipFactory, UserFactory, by
from workspaces.models import Membership
from workspaces.services import membership_remove

from .conftest import TOKEN
from .test_live_clients import UserAgent, authlib_session

pytestmark = pytest.mark.django_db

MEMBERSHIPS = "/admin/workspaces/membership/"


@pytest.fixture
def staff_user(db):
    return UserFactory(email="ops@gatehouse.test", is_staff=True, is_superuser=True)


@pytest.fixture
def staff(staff_user) -> Client:
    client = Client(REMOTE_ADDR="192.0.2.77")
    client.force_login(staff_user)
    return client


def refresh(app, refresh_token: str):
    return Client().post(TOKEN, {"grant_type": "refresh_token", "refresh_token": refresh_token},
                         **app.token_auth())


def me(access_token: str) -> int:
    return Client().get("/api/v1/me", HTTP_AUTHORIZATION=f"Bearer {access_token}").status_code


def assert_refused(app, tokens: dict) -> None:
    response = refresh(app, tokens["refresh_token"])
    assert response.status_code == HTTPStatus.BAD_REQUEST, response.content
    assert response.json()["error"] == "invalid_grant"
    assert me(tokens["access_token"]) == HTTPStatus.UNAUTHORIZED


def remove_on_delete_page(staff: Client, membership: Membership) -> None:
    response = staff.post(f"{MEMBERSHIPS}{membership.pk}/delete/", {"post": "yes"})
    assert response.status_code == HTTPStatus.FOUND


def remove_with_delete_selected(staff: Client, membership: Membership) -> None:
    response = staff.post(MEMBERSHIPS, {"action": "delete_selected",
                                        "_selected_action": [membership.pk], "post": "yes"})
    assert response.status_code == HTTPStatus.FOUND


def remove_in_the_inline(staff: Client, membership: Membership) -> None:
    url = f"/admin/workspaces/workspace/{membership.workspace_id}/change/"
    data = form_data(staff.get(url))
    data[f"{inline_row(data, membership)}-DELETE"] = "on"
    response = staff.post(url, data)
    assert response.status_code == HTTPStatus.FOUND


DOORS = {
    "delete page": remove_on_delete_page,
    "delete selected": remove_with_delete_selected,
    "workspace inline": remove_in_the_inline,
}


@pytest.mark.parametrize("door", sorted(DOORS))
def test_removing_a_member_in_admin_ends_their_grants_for_good(
    door, staff, staff_user, oauth_app, tokens_for, members, workspace
) -> None:
    tokens = tokens_for(oauth_app, "editor")
    assert me(tokens["access_token"]) == HTTPStatus.OK
    membership = Membership.objects.get(user=members["editor"], workspace=workspace)

    DOORS[door](staff, membership)

    assert not Membership.objects.filter(pk=membership.pk).exists()
    assert_refused(oauth_app, tokens)
    revoked = AuditEvent.objects.get(action="oauth.token_revoked")
    assert revoked.workspace == workspace
    assert revoked.metadata["reason"] == "member_removed"
    assert revoked.metadata["user_id"] == members["editor"].pk
    assert revoked.metadata["door"] == "admin"
    assert (revoked.actor_type, revoked.actor_id) == ("user", str(staff_user.pk))
    assert AuditEvent.objects.filter(action="member.removed").count() == 1

    # Re-added: the old grant stays ended; only a new consent gives the app access again.
    response = staff.post(f"{MEMBERSHIPS}add/", {"user": members["editor"].pk,
                                                 "workspace": workspace.pk, "role": "editor"})
    assert response.status_code == HTTPStatus.FOUND
    assert_refused(oauth_app, tokens)
    assert not Connection.objects.active().exists()


def test_only_the_removed_members_grants_in_that_workspace_end(
    oauth_app, tokens_for, members, workspace, other_workspace
) -> None:
    editor = members["editor"]
    MembershipFactory(user=editor, workspace=other_workspace, role="editor")
    theirs_here = tokens_for(oauth_app, "editor")
    theirs_elsewhere = tokens_for(oauth_app, "editor", workspace="globex")
    someone_elses = tokens_for(oauth_app, "viewer")

    membership_remove(membership=Membership.objects.get(user=editor, workspace=workspace),
                      **by(members["owner"]))

    assert_refused(oauth_app, theirs_here)
    assert refresh(oauth_app, theirs_elsewhere["refresh_token"]).status_code == HTTPStatus.OK
    assert refresh(oauth_app, someone_elses["refresh_token"]).status_code == HTTPStatus.OK


def test_a_refused_removal_ends_no_grant(staff, oauth_app, tokens_for, members) -> None:
    tokens = tokens_for(oauth_app, "owner")
    owner = Membership.objects.get(user=members["owner"])
    staff.post(f"{MEMBERSHIPS}{owner.pk}/delete/", {"post": "yes"})  # the last owner
    assert Membership.objects.filter(pk=owner.pk).exists()
    assert refresh(oauth_app, tokens["refresh_token"]).status_code == HTTPStatus.OK
    assert not AuditEvent.objects.filter(action="oauth.token_revoked").exists()


@pytest.mark.django_db(transaction=True)
def test_authlib_refresh_fails_after_removal_and_after_re_adding(
    live_server, members, workspace, staff
) -> None:
    app, secret = oauth_app_create(
        workspace=workspace, name="Acme CRM", redirect_uris=["https://crm.example.com/oauth/callback"],
        confidential=True, **by(members["admin"]),
    )
    token_url = f"{live_server.url}/api/oauth/token"
    session, verifier, authorize_url = authlib_session(live_server, app, secret)
    callback = UserAgent(live_server.url, members["editor"]).consent(authorize_url)
    token = session.fetch_token(token_url, authorization_response=callback, code_verifier=verifier)
    token = session.refresh_token(token_url, refresh_token=token["refresh_token"])  # it works

    membership = Membership.objects.get(user=members["editor"], workspace=workspace)
    remove_on_delete_page(staff, membership)

    fresh = OAuth2Session(client_id=app.client_id, client_secret=secret,
                          token_endpoint_auth_method="client_secret_basic")
    with pytest.raises(OAuthError) as refused:
        fresh.refresh_token(token_url, refresh_token=token["refresh_token"])
    assert refused.value.error == "invalid_grant"
    assert session.get(f"{live_server.url}/api/v1/me").status_code == HTTPStatus.UNAUTHORIZED

    staff.post(f"{MEMBERSHIPS}add/", {"user": members["editor"].pk, "workspace": workspace.pk,
                                      "role": "editor"})
    assert Membership.objects.filter(user=members["editor"], workspace=workspace).exists()
    with pytest.raises(OAuthError) as still_refused:
        fresh.refresh_token(token_url, refresh_token=token["refresh_token"])
    assert still_refused.value.error == "invalid_grant"
    assert session.get(f"{live_server.url}/api/v1/me").status_code == HTTPStatus.UNAUTHORIZED


# --- deleting the user in Django's user admin ---------------------------------------------------

USERS = "/admin/auth/user/"


def delete_user_on_its_page(staff: Client, user) -> None:
    response = staff.post(f"{USERS}{user.pk}/delete/", {"post": "yes"})
    assert response.status_code == HTTPStatus.FOUND


def delete_user_with_delete_selected(staff: Client, user) -> None:
    response = staff.post(USERS, {"action": "delete_selected", "_selected_action": [user.pk],
                                  "post": "yes"})
    assert response.status_code == HTTPStatus.FOUND


USER_DOORS = {"delete page": delete_user_on_its_page,
              "delete selected": delete_user_with_delete_selected}


@pytest.mark.parametrize("door", sorted(USER_DOORS))
def test_deleting_the_user_in_admin_ends_their_grants_audited(
    door, staff, staff_user, oauth_app, tokens_for, members, workspace
) -> None:
    tokens = tokens_for(oauth_app, "editor")
    others = tokens_for(oauth_app, "viewer")
    editor_pk = members["editor"].pk

    USER_DOORS[door](staff, members["editor"])

    assert_refused(oauth_app, tokens)
    revoked = AuditEvent.objects.get(action="oauth.token_revoked")
    assert revoked.workspace == workspace
    assert revoked.metadata["reason"] == "member_removed"
    assert revoked.metadata["user_id"] == editor_pk
    assert revoked.metadata["door"] == "admin"
    assert (revoked.actor_type, revoked.actor_id) == ("user", str(staff_user.pk))
    assert AuditEvent.objects.get(action="member.removed").target_id == str(editor_pk)
    assert AuditEvent.objects.get(action="user.deleted").target_id == str(editor_pk)
    assert refresh(oauth_app, others["refresh_token"]).status_code == HTTPStatus.OK


def test_a_refused_user_deletion_ends_no_grant(staff, oauth_app, tokens_for, members) -> None:
    tokens = tokens_for(oauth_app, "owner")
    staff.post(f"{USERS}{members['owner'].pk}/delete/", {"post": "yes"})  # the last owner
    assert Membership.objects.filter(user=members["owner"]).exists()
    assert refresh(oauth_app, tokens["refresh_token"]).status_code == HTTPStatus.OK
    assert not AuditEvent.objects.filter(
        action__in=["oauth.token_revoked", "user.deleted"]
    ).exists()


def test_deleting_the_user_who_registered_an_app_keeps_the_app(
    staff, oauth_app, tokens_for, members
) -> None:
    """DOT's Application.user cascades: without the user-deleting hook the database deleted the
    workspace's app, and every member's grant with it, unaudited."""
    tokens = tokens_for(oauth_app, "editor")
    assert oauth_app.application.user == members["admin"]  # registered it

    delete_user_on_its_page(staff, members["admin"])

    oauth_app.application.refresh_from_db()
    assert oauth_app.application.user is None
    assert refresh(oauth_app, tokens["refresh_token"]).status_code == HTTPStatus.OK
