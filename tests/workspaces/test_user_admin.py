"""Django admin's user pages are a door to every tenant: deleting a user removes each of their
memberships through the audited service first (refused for a workspace's last owner, on the
confirmation page and when posted), and turning a user's active, staff or superuser flag on or
off is recorded on the workspace-less chain. (Their OAuth grants ending, with a real refresh:
tests/oauth/test_member_removal.py.)"""

from __future__ import annotations

from http import HTTPStatus

import pytest
from django.contrib.auth import get_user_model
from django.test import Client

from audit.models import AuditEvent
from tests.factories import MembershipFactory, UserFactory

from .test_admin import STAFF_IP, assert_from_admin

pytestmark = pytest.mark.django_db


@pytest.fixture
def staff_user(db):
    return UserFactory(email="ops@gatehouse.test", is_staff=True, is_superuser=True)


@pytest.fixture
def staff(staff_user) -> Client:
    client = Client(REMOTE_ADDR=STAFF_IP, headers={"User-Agent": "ops-browser/1.0"})
    client.force_login(staff_user)
    return client

User = get_user_model()
USERS = "/admin/auth/user/"


def user_form(user, **overrides: str | None) -> dict:
    """What the user's change form posts as rendered, with `overrides` (None: field left out, as
    an unchecked box is)."""
    data = {
        "username": user.username, "email": user.email, "first_name": user.first_name,
        "last_name": user.last_name,
        "date_joined_0": user.date_joined.strftime("%Y-%m-%d"),
        "date_joined_1": user.date_joined.strftime("%H:%M:%S"),
        **{flag: "on" for flag in ("is_active", "is_staff", "is_superuser")
           if getattr(user, flag)},
    }
    data.update(overrides)
    return {name: value for name, value in data.items() if value is not None}


def the_event(action: str) -> AuditEvent:
    return AuditEvent.objects.get(action=action)


# --- deleting a user ----------------------------------------------------------------------------

def test_deleting_a_user_removes_each_membership_audited(
    staff, staff_user, workspace, other_workspace, members
) -> None:
    editor = members["editor"]
    MembershipFactory(user=editor, workspace=other_workspace, role="admin")

    response = staff.post(f"{USERS}{editor.pk}/delete/", {"post": "yes"})

    assert response.status_code == HTTPStatus.FOUND
    assert not User.objects.filter(pk=editor.pk).exists()
    removed = AuditEvent.objects.filter(action="member.removed").order_by("workspace__slug")
    assert [(evt.workspace.slug, evt.target_id, evt.metadata["role"]) for evt in removed] == [
        ("acme", str(editor.pk), "editor"), ("globex", str(editor.pk), "admin"),
    ]
    deleted = the_event("user.deleted")
    assert deleted.workspace is None  # the workspace-less chain
    assert (deleted.target_type, deleted.target_id, deleted.target_label) == (
        "user", str(editor.pk), "editor@acme.test"
    )
    assert deleted.metadata == {"workspaces": ["acme", "globex"], "is_staff": False,
                                "is_superuser": False, "door": "admin"}
    for evt in [*removed, deleted]:
        assert_from_admin(evt, staff_user)


def test_delete_selected_users_removes_their_memberships_audited(
    staff, staff_user, workspace, members
) -> None:
    chosen = [members["editor"].pk, members["viewer"].pk]
    response = staff.post(USERS, {"action": "delete_selected", "_selected_action": chosen,
                                  "post": "yes"})
    assert response.status_code == HTTPStatus.FOUND
    assert not User.objects.filter(pk__in=chosen).exists()
    removed = AuditEvent.objects.filter(action="member.removed", workspace=workspace)
    assert sorted(removed.values_list("metadata__role", flat=True)) == ["editor", "viewer"]
    assert AuditEvent.objects.filter(action="user.deleted").count() == 2
    for evt in AuditEvent.objects.all():
        assert_from_admin(evt, staff_user)


def test_the_last_owner_of_a_workspace_cannot_be_deleted(staff, workspace, members) -> None:
    owner = members["owner"]
    page = staff.get(f"{USERS}{owner.pk}/delete/")
    assert page.status_code == HTTPStatus.OK
    assert "the last owner of Acme (acme)" in page.content.decode()

    response = staff.post(f"{USERS}{owner.pk}/delete/", {"post": "yes"})
    assert response.status_code == HTTPStatus.OK  # the confirmation page again, refusing
    assert "the last owner of Acme (acme)" in response.content.decode()

    # "Delete selected" with the last owner among others deletes none of them.
    chosen = [owner.pk, members["viewer"].pk]
    response = staff.post(USERS, {"action": "delete_selected", "_selected_action": chosen,
                                  "post": "yes"})
    assert response.status_code == HTTPStatus.OK
    assert "the last owner of Acme (acme)" in response.content.decode()

    assert User.objects.filter(pk__in=chosen).count() == 2
    assert owner.memberships.get().role == "owner"
    assert not AuditEvent.objects.exists()


def test_an_owner_with_a_co_owner_can_be_deleted(staff, workspace, members) -> None:
    MembershipFactory(user=UserFactory(), workspace=workspace, role="owner")
    response = staff.post(f"{USERS}{members['owner'].pk}/delete/", {"post": "yes"})
    assert response.status_code == HTTPStatus.FOUND
    assert not User.objects.filter(pk=members["owner"].pk).exists()
    assert the_event("member.removed").metadata["role"] == "owner"


# --- active, staff and superuser flags ----------------------------------------------------------

def test_deactivating_a_user_is_audited_and_ends_their_sessions(
    staff, staff_user, workspace, members
) -> None:
    editor = members["editor"]
    session = Client()
    session.force_login(editor)
    assert session.get("/w/acme/").status_code == HTTPStatus.OK

    response = staff.post(f"{USERS}{editor.pk}/change/", user_form(editor, is_active=None))

    assert response.status_code == HTTPStatus.FOUND, response.context["errors"]
    editor.refresh_from_db()
    assert not editor.is_active
    deactivated = the_event("user.deactivated")
    assert deactivated.workspace is None
    assert (deactivated.target_type, deactivated.target_id) == ("user", str(editor.pk))
    assert_from_admin(deactivated, staff_user)
    signed_out = session.get("/w/acme/")
    assert signed_out.status_code == HTTPStatus.FOUND
    assert "/login" in signed_out["Location"]

    response = staff.post(f"{USERS}{editor.pk}/change/", user_form(editor, is_active="on"))
    assert response.status_code == HTTPStatus.FOUND
    assert_from_admin(the_event("user.reactivated"), staff_user)


def test_granting_and_removing_staff_access_is_audited(staff, staff_user, members) -> None:
    viewer = members["viewer"]
    response = staff.post(f"{USERS}{viewer.pk}/change/",
                          user_form(viewer, is_staff="on", is_superuser="on"))
    assert response.status_code == HTTPStatus.FOUND, response.context["errors"]
    viewer.refresh_from_db()
    assert viewer.is_staff and viewer.is_superuser
    granted = the_event("user.staff_changed")
    assert granted.workspace is None
    assert (granted.target_type, granted.target_id) == ("user", str(viewer.pk))
    assert granted.metadata == {
        "changed": {"is_staff": {"from": False, "to": True},
                    "is_superuser": {"from": False, "to": True}},
        "door": "admin",
    }
    assert_from_admin(granted, staff_user)

    staff.post(f"{USERS}{viewer.pk}/change/", user_form(viewer, is_superuser=None))
    viewer.refresh_from_db()
    assert viewer.is_staff and not viewer.is_superuser
    latest = AuditEvent.objects.filter(action="user.staff_changed").latest("id")
    assert latest.metadata["changed"] == {"is_superuser": {"from": True, "to": False}}


def test_an_edit_that_changes_no_access_records_nothing(staff, members) -> None:
    viewer = members["viewer"]
    response = staff.post(f"{USERS}{viewer.pk}/change/", user_form(viewer, first_name="Vera"))
    assert response.status_code == HTTPStatus.FOUND, response.context["errors"]
    viewer.refresh_from_db()
    assert viewer.first_name == "Vera"
    assert not AuditEvent.objects.exists()


def test_adding_a_user_in_admin_still_works(staff) -> None:
    response = staff.post(f"{USERS}add/", {"username": "newbie", "usable_password": "true",
                                           "password1": "a-Long-unusual-pass-42",
                                           "password2": "a-Long-unusual-pass-42"})
    assert response.status_code == HTTPStatus.FOUND, response.context["errors"]
    newbie = User.objects.get(username="newbie")
    assert newbie.is_active and not newbie.is_staff
    assert not AuditEvent.objects.exists()
