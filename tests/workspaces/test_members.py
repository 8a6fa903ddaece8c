"""Members, invitations and the plan through the dashboard (SPEC §2, §12): invite by email
(single-use, expiring link, stored as a digest), accept as a new or an existing user, resend,
cancel; remove a member and change roles with a confirmation; plan and overage for owners."""

from __future__ import annotations

import re
from datetime import timedelta
from http import HTTPStatus

import pytest
import time_machine
from django.test import Client
from django.utils import timezone

from audit.models import AuditEvent
from tests.factories import PASSWORD, UserFactory, plan_named
from workspaces.models import Invitation, Membership
from workspaces.services import invitation_digest

pytestmark = pytest.mark.django_db

MEMBERS = "/w/acme/settings/members/"
LINK = re.compile(r"http://testserver(/invitations/(gin_[0-9A-Za-z]+)/)")


def invite(client: Client, email: str = "new@acme.test", role: str = "editor", **headers):
    return client.post(f"{MEMBERS}invite", {"email": email, "role": role}, headers=headers)


def link_in(mail) -> tuple[str, str]:
    match = LINK.search(mail.body)
    assert match, mail.body
    return match.group(1), match.group(2)


def test_owner_invites_by_email_and_the_link_is_stored_only_as_a_digest(
    owner_client, workspace, mailoutbox
) -> None:
    response = invite(owner_client)
    assert response.status_code == HTTPStatus.FOUND and response["Location"] == MEMBERS
    assert len(mailoutbox) == 1
    mail = mailoutbox[0]
    assert mail.to == ["new@acme.test"] and "Acme" in mail.subject
    path, token = link_in(mail)
    invitation = Invitation.objects.get()
    assert invitation.role == "editor" and invitation.email == "new@acme.test"
    assert invitation.token_digest == invitation_digest(token) and token not in str(
        Invitation.objects.values().get()
    )
    assert invitation.expires_at - invitation.created_at == timedelta(days=7)
    event = AuditEvent.objects.get(action="member.invited")
    assert token not in str(event.metadata) and event.metadata["email"] == "new@acme.test"
    page = owner_client.get(MEMBERS).content.decode()
    assert "new@acme.test" in page and "Pending invitations" in page


@pytest.mark.parametrize("email", ["", "not-an-email", "a\x00b@acme.test", "x" * 200 + "@a.test"])
def test_bad_invitation_email_is_a_form_error(owner_client, mailoutbox, email) -> None:
    response = invite(owner_client, email=email)
    assert response.status_code == HTTPStatus.UNPROCESSABLE_ENTITY
    assert b"errorlist" in response.content or b"form-error" in response.content
    assert not Invitation.objects.exists() and not mailoutbox


def test_member_or_pending_address_is_refused(owner_client, mailoutbox) -> None:
    response = invite(owner_client, email="Viewer@acme.test")
    assert response.status_code == HTTPStatus.UNPROCESSABLE_ENTITY
    assert b"already a member" in response.content
    invite(owner_client)
    again = invite(owner_client, **{"HX-Request": "true"})
    assert again.status_code == HTTPStatus.UNPROCESSABLE_ENTITY
    assert b"pending invitation" in again.content and b"<html" not in again.content
    assert Invitation.objects.count() == 1 and len(mailoutbox) == 1


@pytest.mark.parametrize("role", ["admin", "editor", "viewer"])
def test_non_owners_cannot_invite_resend_or_cancel(client_for, owner_client, role) -> None:
    invite(owner_client)
    invitation = Invitation.objects.get()
    client = client_for(role)
    assert invite(client, email="x@acme.test").status_code == HTTPStatus.FORBIDDEN
    url = f"{MEMBERS}invitations/{invitation.pk}/"
    assert client.post(url + "resend").status_code == HTTPStatus.FORBIDDEN
    assert client.post(url + "cancel").status_code == HTTPStatus.FORBIDDEN
    assert b"Invite someone" not in client.get(MEMBERS).content
    assert Invitation.objects.pending().count() == 1


def test_new_user_accepts_with_a_password_and_the_link_is_single_use(
    owner_client, workspace, mailoutbox
) -> None:
    invite(owner_client)
    path, token = link_in(mailoutbox[0])
    visitor = Client()
    page = visitor.get(path)
    assert page.status_code == HTTPStatus.OK and b"Choose a password" in page.content
    short = visitor.post(path, {"password1": "abc", "password2": "abc"})
    assert short.status_code == HTTPStatus.UNPROCESSABLE_ENTITY
    assert not Membership.objects.filter(user__email="new@acme.test").exists()
    response = visitor.post(path, {"password1": "a-long-new-pass-1",
                                   "password2": "a-long-new-pass-1"})
    assert response.status_code == HTTPStatus.FOUND and response["Location"] == "/w/acme/"
    membership = Membership.objects.get(user__email="new@acme.test", workspace=workspace)
    assert membership.role == "editor"
    assert visitor.get("/w/acme/").status_code == HTTPStatus.OK  # signed in
    assert AuditEvent.objects.filter(action="user.logged_in",
                                     target_id=str(membership.user_id)).exists()
    accepted = AuditEvent.objects.get(action="member.invitation_accepted")
    added = AuditEvent.objects.get(action="member.added", target_id=str(membership.user_id))
    assert accepted.actor_label == added.actor_label == "new@acme.test"
    # Single use: the link is dead now, for anyone.
    assert Client().get(path).status_code == HTTPStatus.NOT_FOUND
    assert visitor.post(path).status_code == HTTPStatus.NOT_FOUND


def test_existing_user_signs_in_then_accepts(owner_client, workspace, mailoutbox) -> None:
    user = UserFactory(email="known@else.test")
    invite(owner_client, email="known@else.test", role="viewer")
    path, _token = link_in(mailoutbox[0])
    anonymous = Client().get(path)
    assert b"Sign in to accept" in anonymous.content
    assert f"/accounts/login/?next={path}".encode() in anonymous.content
    client = Client()
    client.force_login(user)
    assert client.post(path).status_code == HTTPStatus.FOUND
    assert Membership.objects.get(user=user, workspace=workspace).role == "viewer"


def test_someone_else_cannot_use_a_forwarded_link(owner_client, workspace, mailoutbox) -> None:
    invite(owner_client, email="known@else.test")
    path, _token = link_in(mailoutbox[0])
    intruder = Client()
    intruder.force_login(UserFactory(email="intruder@evil.test"))
    response = intruder.post(path)
    assert response.status_code == HTTPStatus.UNPROCESSABLE_ENTITY
    assert b"This invitation is for known@else.test" in response.content
    assert not Membership.objects.filter(user__email="intruder@evil.test").exists()
    assert Invitation.objects.get().accepted_at is None


def test_expired_link_is_refused(owner_client, mailoutbox) -> None:
    invite(owner_client)
    path, _token = link_in(mailoutbox[0])
    with time_machine.travel(timezone.now() + timedelta(days=7, seconds=1)):
        response = Client().post(path, {"password1": "a-long-new-pass-1",
                                        "password2": "a-long-new-pass-1"})
        assert response.status_code == HTTPStatus.NOT_FOUND
        assert b"not valid any more" in response.content
        assert b"Expired" in owner_client.get(MEMBERS).content
    assert not Membership.objects.filter(user__email="new@acme.test").exists()


@pytest.mark.parametrize("token", ["gin_nope", "gin_" + "a" * 500, "gk_dev_x", "gin_\x00"])
def test_unknown_tokens_are_404(client, token) -> None:
    assert client.get(f"/invitations/{token}/").status_code == HTTPStatus.NOT_FOUND


def test_resend_replaces_the_link_and_cancel_kills_it(owner_client, mailoutbox) -> None:
    invite(owner_client)
    old_path, _ = link_in(mailoutbox[0])
    invitation = Invitation.objects.get()
    response = owner_client.post(f"{MEMBERS}invitations/{invitation.pk}/resend")
    assert response.status_code == HTTPStatus.FOUND
    new_path, _ = link_in(mailoutbox[1])
    assert new_path != old_path
    assert Client().get(old_path).status_code == HTTPStatus.NOT_FOUND
    assert Client().get(new_path).status_code == HTTPStatus.OK
    cancel_url = f"{MEMBERS}invitations/{invitation.pk}/cancel"
    confirm = owner_client.get(cancel_url)
    assert b"Cancel the invitation of new@acme.test?" in confirm.content
    assert Invitation.objects.pending().count() == 1  # asking changed nothing
    assert owner_client.post(cancel_url).status_code == HTTPStatus.FOUND
    assert Client().get(new_path).status_code == HTTPStatus.NOT_FOUND
    assert AuditEvent.objects.filter(
        action__in=["member.invitation_resent", "member.invitation_cancelled"]
    ).count() == 2


def test_other_workspaces_invitations_are_404(owner_client, other_workspace) -> None:
    foreign = Invitation.objects.create(
        workspace=other_workspace, email="a@b.test", role="viewer", token_digest="0" * 64,
        expires_at=timezone.now() + timedelta(days=1),
    )
    for action in ("resend", "cancel"):
        url = f"{MEMBERS}invitations/{foreign.pk}/{action}"
        assert owner_client.post(url).status_code == HTTPStatus.NOT_FOUND
    assert Invitation.objects.pending().count() == 1


# --- Role changes and removal ------------------------------------------------------------------


def test_role_change_asks_first_then_saves(owner_client, members, workspace) -> None:
    target = Membership.objects.get(user=members["viewer"], workspace=workspace)
    url = f"{MEMBERS}{target.pk}/role"
    ask = owner_client.post(url, {"role": "admin"})
    assert ask.status_code == HTTPStatus.OK
    assert b"Change the role of viewer@acme.test?" in ask.content
    target.refresh_from_db()
    assert target.role == "viewer"
    done = owner_client.post(url, {"role": "admin", "confirmed": "1"}, follow=True)
    assert b"Saved: viewer@acme.test is now Admin." in done.content
    target.refresh_from_db()
    assert target.role == "admin"


def test_role_change_with_htmx_answers_a_dialog_then_the_saved_row(
    owner_client, members, workspace
) -> None:
    target = Membership.objects.get(user=members["viewer"], workspace=workspace)
    url = f"{MEMBERS}{target.pk}/role"
    ask = owner_client.post(url, {"role": "editor"}, headers={"HX-Request": "true"})
    assert ask["HX-Retarget"] == "#modal-root" and b"<dialog" in ask.content
    done = owner_client.post(url, {"role": "editor", "confirmed": "1"},
                             headers={"HX-Request": "true"})
    assert done["HX-Retarget"] == f"#member-{target.pk}"
    assert b'data-testid="saved"' in done.content and b"dialog-close" in done[
        "HX-Trigger-After-Swap"].encode()


def test_member_removal_asks_then_ends_access(owner_client, client_for, members, workspace):
    editor_client = client_for("editor")
    assert editor_client.get("/w/acme/").status_code == HTTPStatus.OK
    target = Membership.objects.get(user=members["editor"], workspace=workspace)
    url = f"{MEMBERS}{target.pk}/remove"
    ask = owner_client.get(url)
    assert ask.status_code == HTTPStatus.OK and b"Remove editor@acme.test?" in ask.content
    assert Membership.objects.filter(pk=target.pk).exists()
    done = owner_client.post(url, follow=True)
    assert b"Removed editor@acme.test" in done.content
    assert not Membership.objects.filter(pk=target.pk).exists()
    # Their signed-in session no longer reaches the workspace.
    assert editor_client.get("/w/acme/").status_code == HTTPStatus.NOT_FOUND
    assert AuditEvent.objects.filter(action="member.removed").count() == 1


def test_last_owner_cannot_be_removed(owner_client, members, workspace) -> None:
    me = Membership.objects.get(user=members["owner"], workspace=workspace)
    response = owner_client.post(f"{MEMBERS}{me.pk}/remove")
    assert response.status_code == HTTPStatus.UNPROCESSABLE_ENTITY
    assert b"at least one owner" in response.content
    assert Membership.objects.filter(pk=me.pk).exists()


@pytest.mark.parametrize("role", ["admin", "editor", "viewer"])
def test_non_owners_cannot_remove(client_for, members, workspace, role) -> None:
    target = Membership.objects.get(user=members["viewer"], workspace=workspace)
    url = f"{MEMBERS}{target.pk}/remove"
    assert client_for(role).get(url).status_code == HTTPStatus.FORBIDDEN
    assert client_for(role).post(url).status_code == HTTPStatus.FORBIDDEN
    assert Membership.objects.filter(pk=target.pk).exists()


# --- Plan and overage ----------------------------------------------------------------------------


def test_owner_changes_plan_after_confirming(owner_client, workspace) -> None:
    ask = owner_client.post("/w/acme/settings/plan/change", {"plan": "basic"})
    assert ask.status_code == HTTPStatus.OK and b"Move to the Basic plan?" in ask.content
    workspace.refresh_from_db()
    assert workspace.plan.code != "basic"
    done = owner_client.post("/w/acme/settings/plan/change", {"plan": "basic", "confirmed": "1"},
                             follow=True)
    assert b"Saved: the workspace is now on the Basic plan." in done.content
    workspace.refresh_from_db()
    assert workspace.plan.code == "basic"
    assert AuditEvent.objects.get(action="plan.changed").metadata["to"] == "basic"


def test_unknown_plan_is_a_form_error(owner_client, workspace) -> None:
    response = owner_client.post("/w/acme/settings/plan/change",
                                 {"plan": "platinum\x00", "confirmed": "1"})
    assert response.status_code == HTTPStatus.UNPROCESSABLE_ENTITY
    assert not AuditEvent.objects.filter(action="plan.changed").exists()


def test_owner_turns_overage_on_and_off(owner_client, workspace) -> None:
    workspace.plan = plan_named("basic")
    workspace.save()
    assert b"Turn overage on" in owner_client.get("/w/acme/settings/plan/").content
    done = owner_client.post("/w/acme/settings/plan/overage", {"enabled": "1"}, follow=True)
    assert b"Saved: overage is on" in done.content
    workspace.refresh_from_db()
    assert workspace.overage_enabled
    owner_client.post("/w/acme/settings/plan/overage", {"enabled": "0"})
    workspace.refresh_from_db()
    assert not workspace.overage_enabled
    assert list(AuditEvent.objects.filter(action__startswith="plan.overage").order_by("id")
                .values_list("action", flat=True)) == ["plan.overage_enabled",
                                                       "plan.overage_disabled"]


def test_overage_cannot_be_turned_on_without_it_in_the_plan(owner_client, workspace) -> None:
    workspace.plan = plan_named("free")
    workspace.save()
    response = owner_client.post("/w/acme/settings/plan/overage", {"enabled": "1"}, follow=True)
    assert b"has no overage" in response.content
    workspace.refresh_from_db()
    assert not workspace.overage_enabled


@pytest.mark.parametrize("role", ["admin", "editor", "viewer"])
def test_non_owners_see_the_plan_but_cannot_change_it(client_for, workspace, role) -> None:
    client = client_for(role)
    page = client.get("/w/acme/settings/plan/")
    assert page.status_code == HTTPStatus.OK and b"Only owners change the plan" in page.content
    assert client.post("/w/acme/settings/plan/change",
                       {"plan": "pro", "confirmed": "1"}).status_code == HTTPStatus.FORBIDDEN
    assert client.post("/w/acme/settings/plan/overage",
                       {"enabled": "1"}).status_code == HTTPStatus.FORBIDDEN


def test_password_for_new_account_is_not_logged_or_audited(owner_client, mailoutbox) -> None:
    invite(owner_client)
    path, token = link_in(mailoutbox[0])
    Client().post(path, {"password1": PASSWORD + "x", "password2": PASSWORD + "x"})
    dumped = str(list(AuditEvent.objects.values()))
    assert PASSWORD not in dumped and token not in dumped
