"""The audit log's actor column (issue 15 point 5): an OAuth app's write names the user it acted
for; Django admin's and commands' events say so ("via Django admin", "via command")."""

from __future__ import annotations

from http import HTTPStatus

import pytest
from django.core.management import call_command
from django.test import Client
from django.urls import reverse

from audit.models import AuditEvent
from tests.factories import UserFactory

pytestmark = pytest.mark.django_db

AUDIT = reverse("audit:list", kwargs={"slug": "acme"})


def actor_cell(html: str, event: AuditEvent) -> str:
    row = html.split(f'id="{event.public_id}"', 1)[1].split("</tr>", 1)[0]
    return row.split('data-label="Actor">', 1)[1].split("</td>", 1)[0]


def test_an_oauth_apps_write_names_the_user_it_acted_for(
    oauth_app, tokens_for, client_for
) -> None:
    token = tokens_for(oauth_app, "editor")["access_token"]
    created = Client().post(
        "/api/v1/passports", {"gtin": "4006381333931", "serial_number": "SN-1",
                              "product_name": "Drill"},
        content_type="application/json", headers={"Authorization": f"Bearer {token}"},
    )
    assert created.status_code == HTTPStatus.CREATED, created.content
    event = AuditEvent.objects.get(action="passport.created")
    assert event.actor_type == "oauth_app"
    assert event.metadata["on_behalf_of"]["label"] == "editor@acme.test"
    cell = actor_cell(client_for("admin").get(AUDIT).content.decode(), event)
    assert "for editor@acme.test" in cell and "OAuth app" in cell


def test_admin_and_command_doors_are_named(make_key, client_for) -> None:
    key, _token = make_key(name="Ops")
    staff = Client()
    staff.force_login(UserFactory(is_staff=True, is_superuser=True, email="ops@example.test"))
    edit = reverse("admin:apikeys_apikey_edit", args=[key.pk])
    saved = staff.post(edit, {"name": "Ops 2", "scopes": list(key.scopes), "reach": "all"})
    assert saved.status_code == HTTPStatus.FOUND
    call_command("update_api_key", key.public_id, "--note", "rotated yearly")
    html = client_for("admin").get(AUDIT).content.decode()
    by_admin, by_command = AuditEvent.objects.filter(action="key.updated").order_by("id")
    assert "via Django admin" in actor_cell(html, by_admin)
    assert "via command" in actor_cell(html, by_command)
    created = AuditEvent.objects.get(action="key.created")  # the dashboard door says nothing
    assert "via" not in actor_cell(html, created)
