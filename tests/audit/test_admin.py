"""Django admin: audit events and chain heads are read-only."""

from __future__ import annotations

from http import HTTPStatus

import pytest
from django.test import Client

from audit.models import AuditChain, AuditEvent
from tests.audit.helpers import record
from tests.factories import UserFactory

pytestmark = pytest.mark.django_db

EVENTS = "/admin/audit/auditevent/"


@pytest.fixture
def staff_client(db) -> Client:
    client = Client()
    client.force_login(UserFactory(email="ops@gatehouse.test", is_staff=True, is_superuser=True))
    return client


def test_changelist_lists_and_searches(staff_client, workspace) -> None:
    revoked, = record(workspace, action="key.revoked")
    record(workspace, action="key.created")
    response = staff_client.get(EVENTS)
    assert response.status_code == HTTPStatus.OK
    assert b"203.0.113.7" in response.content
    body = staff_client.get(EVENTS, {"q": revoked.public_id}).content.decode()
    assert "1 result" in body
    body = staff_client.get(EVENTS, {"action": "key.revoked"}).content.decode()
    assert "key.revoked" in body
    assert staff_client.get(EVENTS, {"actor_type__exact": "user"}).status_code == HTTPStatus.OK


def test_no_add_change_or_delete(staff_client, workspace) -> None:
    (event,) = record(workspace)
    assert staff_client.get(f"{EVENTS}add/").status_code == HTTPStatus.FORBIDDEN
    change = staff_client.get(f"{EVENTS}{event.pk}/change/")
    assert change.status_code == HTTPStatus.OK
    assert b'name="_save"' not in change.content
    response = staff_client.post(f"{EVENTS}{event.pk}/change/", {"action": "key.revoked"})
    assert response.status_code == HTTPStatus.FORBIDDEN
    assert staff_client.post(f"{EVENTS}{event.pk}/delete/", {"post": "yes"}).status_code == 403
    response = staff_client.post(
        EVENTS, {"action": "delete_selected", "_selected_action": [event.pk], "post": "yes"}
    )
    assert AuditEvent.objects.get(pk=event.pk).action == "key.created"
    chain = AuditChain.objects.get()
    assert staff_client.get(f"/admin/audit/auditchain/{chain.pk}/delete/").status_code == 403
    assert staff_client.get("/admin/audit/auditchain/").status_code == HTTPStatus.OK
