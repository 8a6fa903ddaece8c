"""Sudo mode (SPEC §12) through the dashboard and Django admin, with a frozen clock: a sensitive
action needs a sign-in within the last 10 minutes; the prompt carries the action on."""

from __future__ import annotations

from datetime import timedelta
from http import HTTPStatus

import pyotp
import pytest
import time_machine
from django.test import Client

from apikeys.models import ApiKey
from audit.models import AuditEvent
from tests.audit.test_two_factor import enrol
from tests.clock import day_ahead
from tests.factories import PASSWORD
from workspaces.models import Membership

pytestmark = pytest.mark.django_db

OK = {"confirmed": "1"}  # the role change's confirmation step, answered

START = day_ahead(0, 10)


def signed_in(user, at=START) -> Client:
    client = Client()
    with time_machine.travel(at, tick=False):
        client.force_login(user)
    return client


def role_url(membership: Membership) -> str:
    return f"/w/acme/settings/members/{membership.pk}/role"


def test_a_role_change_within_ten_minutes_of_sign_in_needs_nothing(members) -> None:
    client = signed_in(members["owner"])
    viewer = Membership.objects.get(user=members["viewer"])
    with time_machine.travel(START + timedelta(minutes=9, seconds=59), tick=False):
        response = client.post(role_url(viewer), {**OK, "role": "editor"})
    assert response.status_code == HTTPStatus.FOUND
    viewer.refresh_from_db()
    assert viewer.role == "editor"


def test_after_ten_minutes_the_role_change_asks_then_carries_on(members) -> None:
    client = signed_in(members["owner"])
    viewer = Membership.objects.get(user=members["viewer"])
    with time_machine.travel(START + timedelta(minutes=10, seconds=1), tick=False):
        prompt = client.post(role_url(viewer), {**OK, "role": "editor"})
        assert prompt.status_code == HTTPStatus.FORBIDDEN
        assert b'name="sudo_password"' in prompt.content
        assert b'name="role" value="editor"' in prompt.content  # the action is carried
        viewer.refresh_from_db()
        assert viewer.role == "viewer"

        wrong = client.post(role_url(viewer), {**OK, "role": "editor", "sudo_password": "nope"})
        assert wrong.status_code == HTTPStatus.FORBIDDEN and b"did not match" in wrong.content
        viewer.refresh_from_db()
        assert viewer.role == "viewer"

        done = client.post(role_url(viewer), {**OK, "role": "editor", "sudo_password": PASSWORD})
        assert done.status_code == HTTPStatus.FOUND
        viewer.refresh_from_db()
        assert viewer.role == "editor"
        # Recent again: the next sensitive action does not ask.
        again = client.post(role_url(viewer), {**OK, "role": "viewer"})
        assert again.status_code == HTTPStatus.FOUND
    assert AuditEvent.objects.filter(action="user.reauthenticated").count() == 1
    assert AuditEvent.objects.get(action="user.login_failed").metadata["reason"] == (
        "sudo_invalid_credentials"
    )


def test_htmx_gets_the_prompt_as_a_dialog(members) -> None:
    client = signed_in(members["owner"])
    viewer = Membership.objects.get(user=members["viewer"])
    with time_machine.travel(START + timedelta(minutes=11), tick=False):
        response = client.post(role_url(viewer), {**OK, "role": "editor"},
                               headers={"HX-Request": "true"})
    assert response.status_code == HTTPStatus.OK
    assert response["HX-Retarget"] == "#modal-root"
    assert b"<dialog" in response.content and b"data-open" in response.content
    assert b"<html" not in response.content


def test_with_two_factor_the_prompt_asks_for_a_code_too(members) -> None:
    owner = members["owner"]
    totp, _ = enrol(owner)
    client = signed_in(owner)
    viewer = Membership.objects.get(user=members["viewer"])
    at = START + timedelta(minutes=20)
    with time_machine.travel(at, tick=False):
        only_password = client.post(role_url(viewer), {**OK, "role": "editor",
                                                       "sudo_password": PASSWORD})
        assert only_password.status_code == HTTPStatus.FORBIDDEN
        assert b'name="sudo_code"' in only_password.content
    with time_machine.travel(at + timedelta(seconds=5), tick=False):
        done = client.post(role_url(viewer), {**OK, "role": "editor", "sudo_password": PASSWORD,
                                              "sudo_code": pyotp.TOTP(totp.secret).at(at)})
    assert done.status_code == HTTPStatus.FOUND
    viewer.refresh_from_db()
    assert viewer.role == "editor"


def test_a_viewer_gets_403_not_a_prompt(members) -> None:
    client = signed_in(members["viewer"])
    owner = Membership.objects.get(user=members["owner"])
    with time_machine.travel(START + timedelta(minutes=30), tick=False):
        response = client.post(role_url(owner), {**OK, "role": "viewer"})
    assert response.status_code == HTTPStatus.FORBIDDEN
    assert b"sudo_password" not in response.content


def test_a_production_key_needs_sudo_a_development_key_does_not(members) -> None:
    client = signed_in(members["admin"])
    data = {"name": "CI", "scopes": ["passports:read"], "environment": "development"}
    with time_machine.travel(START + timedelta(minutes=15), tick=False):
        dev = client.post("/w/acme/settings/api-keys/new/", data)
        assert dev.status_code != HTTPStatus.FORBIDDEN
        assert ApiKey.objects.filter(environment="development").count() == 1
        prod = client.post("/w/acme/settings/api-keys/new/", {**data, "environment": "production"})
        assert prod.status_code == HTTPStatus.FORBIDDEN and b"sudo_password" in prod.content
        assert not ApiKey.objects.filter(environment="production").exists()
        done = client.post("/w/acme/settings/api-keys/new/",
                           {**data, "environment": "production", "sudo_password": PASSWORD})
        assert done.status_code == HTTPStatus.SEE_OTHER  # to the list, which shows the token once
    assert ApiKey.objects.filter(environment="production").count() == 1


def test_django_admin_asks_the_same(members, workspace) -> None:
    staff = members["owner"]
    staff.is_staff = staff.is_superuser = True
    staff.save()
    client = signed_in(staff)
    url = f"/admin/workspaces/workspace/{workspace.pk}/change/"
    data = {"slug": "acme", "name": "Acme Renamed", "plan": str(workspace.plan_id),
            "memberships-TOTAL_FORMS": "0", "memberships-INITIAL_FORMS": "0"}
    with time_machine.travel(START + timedelta(minutes=12), tick=False):
        prompt = client.post(url, data)
        assert prompt.status_code == HTTPStatus.FORBIDDEN and b"sudo_password" in prompt.content
        workspace.refresh_from_db()
        assert workspace.name == "Acme"
        done = client.post(url, {**data, "sudo_password": PASSWORD})
    assert done.status_code == HTTPStatus.FOUND
    workspace.refresh_from_db()
    assert workspace.name == "Acme Renamed"


def test_workspace_requiring_two_factor_sends_members_to_enrol(members, workspace) -> None:
    owner = members["owner"]
    enrol(owner)
    client = Client()
    client.force_login(owner)
    response = client.post("/w/acme/settings/security/", {
        "require_two_factor": "on",
    })
    assert response.status_code == HTTPStatus.FOUND
    workspace.refresh_from_db()
    assert workspace.require_two_factor
    assert AuditEvent.objects.get(action="policy.changed").metadata["changed"] == {
        "require_two_factor": {"from": False, "to": True}
    }
    editor = Client()
    editor.force_login(members["editor"])
    blocked = editor.get("/w/acme/")
    assert blocked.status_code == HTTPStatus.FOUND
    assert blocked["Location"].startswith("/accounts/two-factor/enrol/?next=")
    assert client.get("/w/acme/").status_code == HTTPStatus.OK


def test_requiring_two_factor_without_it_yourself_is_refused(members, workspace) -> None:
    client = Client()
    client.force_login(members["owner"])
    response = client.post("/w/acme/settings/security/", {
        "require_two_factor": "on",
    })
    assert response.status_code == HTTPStatus.UNPROCESSABLE_ENTITY
    workspace.refresh_from_db()
    assert not workspace.require_two_factor
