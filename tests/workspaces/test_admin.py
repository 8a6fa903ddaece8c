"""Django admin for members, workspaces and plans: every change of access made there goes through
the audited service and says it came through the admin, on the member's own pages, in a
workspace's inline and through the bulk action. (Removal ending OAuth grants, with a real refresh:
tests/oauth/test_member_removal.py.)"""

from __future__ import annotations

import threading
import time
from http import HTTPStatus

import pytest
from django.db import connection, transaction
from django.test import Client

from audit.models import AuditEvent
from core.context import Actor, RequestContext
from tests.admin_forms import form_data, inline_row
from tests.factories import MembershipFactory, UserFactory, by, plan_named
from workspaces.models import Membership, Plan, Workspace
from workspaces.services import membership_remove

pytestmark = pytest.mark.django_db

STAFF_IP = "192.0.2.77"
MEMBERSHIPS = "/admin/workspaces/membership/"
WORKSPACES = "/admin/workspaces/workspace/"
PLANS = "/admin/workspaces/plan/"


@pytest.fixture
def staff_user(db):
    return UserFactory(email="ops@gatehouse.test", is_staff=True, is_superuser=True)


@pytest.fixture
def staff(staff_user) -> Client:
    client = Client(REMOTE_ADDR=STAFF_IP, headers={"User-Agent": "ops-browser/1.0"})
    client.force_login(staff_user)
    return client


def event(action: str) -> AuditEvent:
    return AuditEvent.objects.get(action=action)


def assert_from_admin(evt: AuditEvent, staff_user) -> None:
    assert (evt.actor_type, evt.actor_id, evt.actor_label) == (
        "user", str(staff_user.pk), "ops@gatehouse.test"
    )
    assert evt.metadata["door"] == "admin"
    assert (evt.ip, evt.user_agent) == (STAFF_IP, "ops-browser/1.0")


# --- a member's own pages -----------------------------------------------------------------------

def test_adding_a_member_is_audited(staff, staff_user, workspace, members) -> None:
    newcomer = UserFactory(email="new@acme.test")
    response = staff.post(f"{MEMBERSHIPS}add/", {
        "user": newcomer.pk, "workspace": workspace.pk, "role": "admin",
    })
    assert response.status_code == HTTPStatus.FOUND, response.content[:2000]
    assert Membership.objects.get(workspace=workspace, user=newcomer).role == "admin"
    added = event("member.added")
    assert added.workspace == workspace
    assert (added.target_type, added.target_id) == ("user", str(newcomer.pk))
    assert added.metadata == {"role": "admin", "door": "admin"}
    assert_from_admin(added, staff_user)


def test_changing_a_role_is_audited(staff, staff_user, workspace, members) -> None:
    membership = Membership.objects.get(user=members["viewer"])
    response = staff.post(f"{MEMBERSHIPS}{membership.pk}/change/", {"role": "admin"})
    assert response.status_code == HTTPStatus.FOUND
    membership.refresh_from_db()
    assert membership.role == "admin"
    changed = event("member.role_changed")
    assert changed.metadata == {"from": "viewer", "to": "admin", "door": "admin"}
    assert_from_admin(changed, staff_user)


def test_a_membership_cannot_change_hands(staff, workspace, members) -> None:
    membership = Membership.objects.get(user=members["viewer"])
    staff.post(f"{MEMBERSHIPS}{membership.pk}/change/",
               {"role": "viewer", "user": UserFactory().pk})
    membership.refresh_from_db()
    assert membership.user == members["viewer"]  # read-only on the change page


def test_deleting_a_member_is_audited(staff, staff_user, workspace, members) -> None:
    membership = Membership.objects.get(user=members["editor"])
    response = staff.post(f"{MEMBERSHIPS}{membership.pk}/delete/", {"post": "yes"})
    assert response.status_code == HTTPStatus.FOUND
    assert not Membership.objects.filter(pk=membership.pk).exists()
    removed = event("member.removed")
    assert removed.workspace == workspace
    assert (removed.target_type, removed.target_id) == ("user", str(members["editor"].pk))
    assert removed.metadata == {"role": "editor", "door": "admin"}
    assert_from_admin(removed, staff_user)


def test_delete_selected_members_is_audited(staff, staff_user, workspace, members) -> None:
    chosen = list(Membership.objects.filter(role__in=["editor", "viewer"]).values_list(
        "pk", flat=True))
    response = staff.post(MEMBERSHIPS, {"action": "delete_selected",
                                        "_selected_action": chosen, "post": "yes"})
    assert response.status_code == HTTPStatus.FOUND
    assert not Membership.objects.filter(pk__in=chosen).exists()
    removed = AuditEvent.objects.filter(action="member.removed")
    assert sorted(removed.values_list("metadata__role", flat=True)) == ["editor", "viewer"]
    for evt in removed:
        assert_from_admin(evt, staff_user)


def test_the_last_owner_cannot_be_deleted(staff, workspace, members) -> None:
    owner = Membership.objects.get(user=members["owner"])
    page = staff.get(f"{MEMBERSHIPS}{owner.pk}/delete/")
    assert "A workspace needs at least one owner." in page.content.decode()
    staff.post(f"{MEMBERSHIPS}{owner.pk}/delete/", {"post": "yes"})
    staff.post(MEMBERSHIPS, {"action": "delete_selected", "_selected_action": [owner.pk],
                             "post": "yes"})
    assert Membership.objects.filter(pk=owner.pk).exists()
    assert not AuditEvent.objects.filter(action="member.removed").exists()


# --- a workspace's inline -----------------------------------------------------------------------

def test_the_inline_adds_changes_and_removes_members_audited(
    staff, staff_user, workspace, members
) -> None:
    url = f"{WORKSPACES}{workspace.pk}/change/"
    data = form_data(staff.get(url))
    editor = Membership.objects.get(user=members["editor"])
    viewer = Membership.objects.get(user=members["viewer"])
    data[f"{inline_row(data, viewer)}-role"] = "admin"  # granting admin
    data[f"{inline_row(data, editor)}-DELETE"] = "on"
    total = int(data["memberships-TOTAL_FORMS"])
    newcomer = UserFactory(email="new@acme.test")
    data.update({
        f"memberships-{total}-user": str(newcomer.pk),
        f"memberships-{total}-role": "owner",
        f"memberships-{total}-workspace": str(workspace.pk),
        "memberships-TOTAL_FORMS": str(total + 1),
    })

    response = staff.post(url, data)

    assert response.status_code == HTTPStatus.FOUND, response.context["errors"]
    roles = dict(Membership.objects.filter(workspace=workspace).values_list("user__email", "role"))
    assert roles == {"owner@acme.test": "owner", "admin@acme.test": "admin",
                     "viewer@acme.test": "admin", "new@acme.test": "owner"}
    assert event("member.added").metadata == {"role": "owner", "door": "admin"}
    assert event("member.role_changed").metadata == {"from": "viewer", "to": "admin",
                                                      "door": "admin"}
    assert event("member.removed").metadata == {"role": "editor", "door": "admin"}
    for action in ["member.added", "member.role_changed", "member.removed"]:
        assert_from_admin(event(action), staff_user)


def test_the_inline_cannot_remove_or_demote_the_last_owner(staff, workspace, members) -> None:
    url = f"{WORKSPACES}{workspace.pk}/change/"
    owner = Membership.objects.get(user=members["owner"])
    for change in ["DELETE", "role"]:
        data = form_data(staff.get(url))
        data[f"{inline_row(data, owner)}-{change}"] = "on" if change == "DELETE" else "viewer"
        response = staff.post(url, data)
        assert response.status_code == HTTPStatus.OK  # the form again, with the error
        assert "A workspace needs at least one owner." in response.content.decode()
    owner.refresh_from_db()
    assert owner.role == "owner"
    assert not AuditEvent.objects.filter(action__startswith="member.").exists()


def test_the_inline_cannot_give_a_membership_to_another_user(staff, workspace, members) -> None:
    url = f"{WORKSPACES}{workspace.pk}/change/"
    data = form_data(staff.get(url))
    viewer = Membership.objects.get(user=members["viewer"])
    data[f"{inline_row(data, viewer)}-user"] = str(UserFactory().pk)
    response = staff.post(url, data)
    assert response.status_code == HTTPStatus.OK
    assert "cannot change hands" in response.content.decode()
    viewer.refresh_from_db()
    assert viewer.user == members["viewer"]


def test_adding_a_workspace_with_its_owner_is_audited(staff, staff_user) -> None:
    data = form_data(staff.get(f"{WORKSPACES}add/"))
    founder = UserFactory(email="founder@newco.test")
    data.update({
        "slug": "newco", "name": "NewCo", "plan": str(plan_named("basic").pk),
        "memberships-TOTAL_FORMS": "1",
        "memberships-0-user": str(founder.pk), "memberships-0-role": "owner",
    })
    response = staff.post(f"{WORKSPACES}add/", data)
    assert response.status_code == HTTPStatus.FOUND, response.context["errors"]
    workspace = Workspace.objects.get(slug="newco")
    assert Membership.objects.get(workspace=workspace).user == founder
    created = AuditEvent.objects.get(action="workspace.created", workspace=workspace)
    assert created.metadata == {"plan": "basic", "door": "admin"}
    assert_from_admin(created, staff_user)
    added = AuditEvent.objects.get(action="member.added", workspace=workspace)
    assert added.target_id == str(founder.pk)


def test_a_new_workspace_needs_an_owner(staff) -> None:
    data = form_data(staff.get(f"{WORKSPACES}add/"))
    data.update({"slug": "newco", "name": "NewCo", "plan": str(plan_named("free").pk)})
    response = staff.post(f"{WORKSPACES}add/", data)
    assert response.status_code == HTTPStatus.OK
    assert "Add the workspace" in response.content.decode()
    assert not Workspace.objects.filter(slug="newco").exists()
    assert not AuditEvent.objects.exists()


def test_a_plan_change_of_a_workspace_is_audited(staff, staff_user, workspace, members) -> None:
    url = f"{WORKSPACES}{workspace.pk}/change/"
    data = form_data(staff.get(url))
    data["plan"] = str(plan_named("basic").pk)
    assert staff.post(url, data).status_code == HTTPStatus.FOUND
    changed = event("plan.changed")
    assert changed.metadata == {"from": "free", "to": "basic", "door": "admin"}
    assert_from_admin(changed, staff_user)


def test_overage_in_admin_goes_through_the_service(staff, staff_user, workspace, members):
    url = f"{WORKSPACES}{workspace.pk}/change/"
    data = form_data(staff.get(url))
    data["plan"] = str(plan_named("basic").pk)
    data["overage_enabled"] = "on"
    assert staff.post(url, data).status_code == HTTPStatus.FOUND
    assert_from_admin(event("plan.overage_enabled"), staff_user)
    workspace.refresh_from_db()
    assert workspace.overage_enabled and workspace.plan.code == "basic"


# --- plans --------------------------------------------------------------------------------------

def test_renaming_a_workspace_is_audited_and_it_cannot_be_deleted(
    staff, staff_user, workspace, members
) -> None:
    url = f"{WORKSPACES}{workspace.pk}/change/"
    data = form_data(staff.get(url))
    old_name, data["name"] = workspace.name, "Acme Renamed"
    assert staff.post(url, data).status_code == HTTPStatus.FOUND
    renamed = event("workspace.updated")
    assert_from_admin(renamed, staff_user)
    assert renamed.metadata["changed"] == {"name": {"from": old_name, "to": "Acme Renamed"}}
    workspace.refresh_from_db()
    assert workspace.name == "Acme Renamed"
    assert not AuditEvent.objects.filter(action="plan.changed").exists()
    # A workspace's audit history is protected: Django admin offers no delete.
    assert staff.get(f"{WORKSPACES}{workspace.pk}/delete/").status_code == HTTPStatus.FORBIDDEN
    assert Workspace.objects.filter(pk=workspace.pk).exists()


def test_editing_plan_limits_is_audited(staff, staff_user, workspace) -> None:
    free = plan_named("free")
    url = f"{PLANS}{free.pk}/change/"
    data = form_data(staff.get(url))
    data.update({"writes_per_day": "5000", "active_keys_limit": "50"})
    response = staff.post(url, data)
    assert response.status_code == HTTPStatus.FOUND
    free.refresh_from_db()
    assert (free.writes_per_day, free.active_keys_limit) == (5000, 50)
    updated = event("plan.updated")
    assert updated.workspace is None  # plans are shared: the workspace-less chain
    assert (updated.target_type, updated.target_id) == ("plan", "free")
    assert updated.metadata == {
        "changed": {"writes_per_day": {"from": 100, "to": 5000},
                    "active_keys_limit": {"from": 5, "to": 50}},
        "workspaces": 1,
        "door": "admin",
    }
    assert_from_admin(updated, staff_user)


def test_an_unchanged_plan_save_records_nothing(staff) -> None:
    url = f"{PLANS}{plan_named('free').pk}/change/"
    assert staff.post(url, form_data(staff.get(url))).status_code == HTTPStatus.FOUND
    assert not AuditEvent.objects.exists()


def test_adding_and_deleting_a_plan_is_audited(staff, staff_user) -> None:
    data = form_data(staff.get(f"{PLANS}add/"))
    data.update({"code": "team", "name": "Team", "active_keys_limit": "20"})
    assert staff.post(f"{PLANS}add/", data).status_code == HTTPStatus.FOUND
    team = Plan.objects.get(code="team")
    created = event("plan.created")
    assert created.metadata["values"]["active_keys_limit"] == 20
    assert_from_admin(created, staff_user)

    response = staff.post(f"{PLANS}{team.pk}/delete/", {"post": "yes"})
    assert response.status_code == HTTPStatus.FOUND
    assert not Plan.objects.filter(code="team").exists()
    assert_from_admin(event("plan.deleted"), staff_user)


def test_an_inline_carrying_only_some_rows_leaves_the_others(staff, workspace, members) -> None:
    """A form without the owner's row (INITIAL_FORMS 0) removes nobody, so it is not refused."""
    url = f"{WORKSPACES}{workspace.pk}/change/"
    data = {"slug": "acme", "name": "Acme Renamed", "plan": str(workspace.plan_id),
            "memberships-TOTAL_FORMS": "0", "memberships-INITIAL_FORMS": "0"}
    assert staff.post(url, data).status_code == HTTPStatus.FOUND
    assert Membership.objects.filter(workspace=workspace).count() == 4


def test_the_inline_hands_ownership_from_one_member_to_another(staff, workspace, members) -> None:
    """The owner's row comes first: demoting it before promoting the other made the service
    refuse (no owner in between) and the page answer 500."""
    url = f"{WORKSPACES}{workspace.pk}/change/"
    data = form_data(staff.get(url))
    owner = Membership.objects.get(user=members["owner"])
    viewer = Membership.objects.get(user=members["viewer"])
    data[f"{inline_row(data, owner)}-role"] = "viewer"
    data[f"{inline_row(data, viewer)}-role"] = "owner"
    response = staff.post(url, data)
    assert response.status_code == HTTPStatus.FOUND
    owner.refresh_from_db()
    viewer.refresh_from_db()
    assert (owner.role, viewer.role) == ("viewer", "owner")
    assert AuditEvent.objects.filter(action="member.role_changed").count() == 2


@pytest.mark.django_db(transaction=True)
def test_an_inline_removal_refused_after_a_concurrent_one_is_an_error_not_a_500(
    staff, workspace, members
) -> None:
    """Two owners; another session removes one (its transaction holding the owners' rows) while
    the staff user removes the other in the inline. The inline's own check saw two owners, so the
    service refuses once the other removal commits: an error message, and the whole request
    (a rename of the workspace included) rolled back. Needs row locks: PostgreSQL."""
    if connection.vendor != "postgresql":
        pytest.skip("needs PostgreSQL's row locks to order the two removals")
    second = MembershipFactory(user=UserFactory(email="owner2@acme.test"), workspace=workspace,
                               role="owner")
    owner = Membership.objects.get(user=members["owner"])
    url = f"{WORKSPACES}{workspace.pk}/change/"
    data = form_data(staff.get(url))
    data[f"{inline_row(data, owner)}-DELETE"] = "on"
    data["name"] = "Acme Renamed"

    holding, release = threading.Event(), threading.Event()

    def other_session() -> None:
        try:
            with transaction.atomic():
                membership_remove(membership=second, **by(members["owner"]))
                holding.set()
                release.wait(60)
        finally:
            connection.close()

    responses: list = []

    def staff_post() -> None:
        try:
            responses.append(staff.post(url, data))
        finally:
            connection.close()

    other = threading.Thread(target=other_session)
    other.start()
    assert holding.wait(60)
    poster = threading.Thread(target=staff_post)
    poster.start()
    deadline = time.monotonic() + 60  # a safety bound, not an assertion about time
    with connection.cursor() as cursor:
        while time.monotonic() < deadline:
            cursor.execute("SELECT count(*) FROM pg_locks WHERE NOT granted")
            if cursor.fetchone()[0]:
                break  # the staff request waits on the other session's locks
            time.sleep(0.05)
    release.set()
    other.join(60)
    poster.join(60)

    (response,) = responses
    assert response.status_code == HTTPStatus.FOUND  # back to the form, not a 500
    assert response["Location"] == url
    page = staff.get(url)
    assert "A workspace needs at least one owner." in page.content.decode()
    owner.refresh_from_db()
    assert owner.role == "owner"
    workspace.refresh_from_db()
    assert workspace.name == "Acme"  # the rename went with the refused removal
    removed = AuditEvent.objects.filter(action="member.removed")
    assert list(removed.values_list("target_id", flat=True)) == [str(second.user_id)]


def test_ops_see_invitations_without_their_digest_and_cancel_them(staff, staff_user, workspace,
                                                                  members) -> None:
    from workspaces.services import invitation_create

    invitation, token = invitation_create(
        workspace=workspace, email="guest@else.test", role="viewer", origin="http://testserver",
        actor=Actor.for_user(members["owner"]), context=RequestContext(),
    )
    listing = staff.get("/admin/workspaces/invitation/").content.decode()
    assert "guest@else.test" in listing and token not in listing
    detail = staff.get(f"/admin/workspaces/invitation/{invitation.pk}/change/").content.decode()
    assert invitation.token_digest not in detail
    response = staff.post("/admin/workspaces/invitation/", {
        "action": "cancel_selected", "_selected_action": [invitation.pk]}, follow=True)
    assert "Cancelled 1 invitation(s)." in response.content.decode()
    invitation.refresh_from_db()
    assert invitation.cancelled_at is not None
    assert_from_admin(event("member.invitation_cancelled"), staff_user)
