"""Sign-ins on the workspace-less log, from both sign-in doors (the dashboard's and Django
admin's). Their throttle: tests/security/test_abuse_limits.py."""

from __future__ import annotations

from http import HTTPStatus

import pytest
from django.test import Client

from audit.models import AuditEvent
from tests.factories import UserFactory

pytestmark = pytest.mark.django_db

LOGIN = "/accounts/login/"
HEADERS = {"User-Agent": "Mozilla/5.0 (pytest)"}


def _post(client: Client, username: str, password: str):
    return client.post(LOGIN, {"username": username, "password": password}, headers=HEADERS,
                       REMOTE_ADDR="198.51.100.23")


def test_sign_in_is_recorded(client: Client, members, password) -> None:
    user = members["owner"]
    response = _post(client, "owner@acme.test", password)
    assert response.status_code == HTTPStatus.FOUND
    event = AuditEvent.objects.get(action="user.logged_in")
    assert event.workspace is None
    assert (event.actor_type, event.actor_id, event.actor_label) == (
        "user", str(user.pk), "owner@acme.test"
    )
    assert (event.target_type, event.target_id) == ("user", str(user.pk))
    assert event.ip == "198.51.100.23"
    assert event.user_agent == "Mozilla/5.0 (pytest)"
    assert event.metadata == {"door": "dashboard"}


def test_failed_sign_in_records_the_username_never_the_password(client: Client, members) -> None:
    response = _post(client, "owner@acme.test", "hunter2-wrong-password")
    assert response.status_code == HTTPStatus.OK
    assert b"enter a correct" in response.content
    event = AuditEvent.objects.get(action="user.login_failed")
    assert event.workspace is None
    assert event.actor_type == "system"
    assert event.target_label == "owner@acme.test"
    assert event.metadata == {
        "username": "owner@acme.test", "reason": "invalid_credentials", "door": "dashboard"
    }
    assert event.ip == "198.51.100.23"
    assert event.user_agent == "Mozilla/5.0 (pytest)"
    assert "hunter2" not in str(list(AuditEvent.objects.values()))
    assert not AuditEvent.objects.filter(action="user.logged_in").exists()


def test_inactive_user_is_a_failed_sign_in(client: Client, password) -> None:
    UserFactory(email="gone@acme.test", is_active=False)
    _post(client, "gone@acme.test", password)
    event = AuditEvent.objects.get(action="user.login_failed")
    assert event.target_label == "gone@acme.test"


def test_empty_form_is_not_a_sign_in_attempt(client: Client, db) -> None:
    client.post(LOGIN, {"username": "", "password": ""})
    client.post(LOGIN, {"username": "someone@acme.test", "password": ""})
    assert not AuditEvent.objects.exists()


def test_credential_typed_as_username_is_redacted(client: Client, db) -> None:
    token = "gk_dev_" + "A" * 36
    _post(client, token, "whatever")
    event = AuditEvent.objects.get(action="user.login_failed")
    assert token not in str(event.metadata) + event.target_label
    assert event.target_label.startswith("[redacted")


def test_sign_ins_are_not_on_a_workspace_page(owner_client, client, members, password) -> None:
    _post(Client(), "owner@acme.test", password)
    body = owner_client.get("/w/acme/settings/audit-log/").content.decode()
    assert "user.logged_in" not in body


# --- Django admin's sign-in -----------------------------------------------------------------

ADMIN_LOGIN = "/admin/login/"


def _admin_post(client: Client, username: str, password: str):
    return client.post(ADMIN_LOGIN, {"username": username, "password": password,
                                     "next": "/admin/"}, headers=HEADERS,
                       REMOTE_ADDR="198.51.100.24")


def test_admin_sign_in_is_recorded_with_its_door(client: Client, password) -> None:
    staff = UserFactory(email="ops@gatehouse.test", is_staff=True)
    response = _admin_post(client, "ops@gatehouse.test", password)
    assert response.status_code == HTTPStatus.FOUND
    assert response["Location"] == "/admin/"
    assert client.get("/admin/").status_code == HTTPStatus.OK  # really signed in
    event = AuditEvent.objects.get(action="user.logged_in")
    assert event.workspace is None
    assert (event.actor_type, event.actor_id) == ("user", str(staff.pk))
    assert (event.ip, event.user_agent) == ("198.51.100.24", "Mozilla/5.0 (pytest)")
    assert event.metadata == {"door": "admin"}


def test_admin_sign_in_failure_is_recorded_never_the_password(client: Client, db) -> None:
    UserFactory(email="ops@gatehouse.test", is_staff=True)
    response = _admin_post(client, "ops@gatehouse.test", "hunter2-wrong-password")
    assert response.status_code == HTTPStatus.OK
    assert b"Please enter the correct" in response.content  # the admin's own form and message
    event = AuditEvent.objects.get(action="user.login_failed")
    assert event.metadata == {
        "username": "ops@gatehouse.test", "reason": "invalid_credentials", "door": "admin"
    }
    assert event.ip == "198.51.100.24"
    assert "hunter2" not in str(list(AuditEvent.objects.values()))
    assert client.get("/admin/").status_code == HTTPStatus.FOUND  # still signed out


def test_a_member_without_staff_status_is_refused_and_recorded(client: Client, members,
                                                               password) -> None:
    response = _admin_post(client, "owner@acme.test", password)
    assert response.status_code == HTTPStatus.OK
    event = AuditEvent.objects.get(action="user.login_failed")
    assert event.metadata["reason"] == "not_staff"
    assert not AuditEvent.objects.filter(action="user.logged_in").exists()


def test_the_admin_login_page_is_the_admins(client: Client, db) -> None:
    response = client.get(ADMIN_LOGIN)
    assert response.status_code == HTTPStatus.OK
    assert "admin/login.html" in [t.name for t in response.templates]
    assert 'name="next" value="/admin/"' in response.content.decode()


def test_signed_in_staff_is_sent_on_to_the_admin(client: Client, db) -> None:
    client.force_login(UserFactory(is_staff=True))
    response = client.get(ADMIN_LOGIN)
    assert response.status_code == HTTPStatus.FOUND
    assert response["Location"] == "/admin/"
