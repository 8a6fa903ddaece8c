"""The key page's "Passports" section (SPEC §11): all passports or only selected collections,
saved through `apikey_set_restriction`, without JavaScript (post/redirect/get)."""

from http import HTTPStatus

import pytest
from django.urls import reverse

from apikeys.models import ApiKey
from audit.models import AuditEvent
from passports.services import collection_create
from tests.factories import by

pytestmark = pytest.mark.django_db


def url(key: ApiKey, name: str = "apikeys:collections") -> str:
    return reverse(name, kwargs={"slug": "acme", "key_id": key.public_id})


def test_an_admin_restricts_a_key_and_opens_it_again(client_for, make_key, workspace) -> None:
    tools = collection_create(workspace=workspace, name="Tools", **by())
    key, _token = make_key()
    admin = client_for("admin")
    page = admin.get(url(key, "apikeys:detail")).content.decode()
    assert "All passports of the workspace." in page and "Tools" in page
    saved = admin.post(url(key), {"reach": "selected", "collections": [tools.public_id]})
    assert saved.status_code == HTTPStatus.SEE_OTHER
    key.refresh_from_db()
    assert key.collections == [tools.pk]
    assert tools.public_id in admin.get(url(key, "apikeys:detail")).content.decode()
    event = AuditEvent.objects.get(action="key.updated")
    assert event.metadata["door"] == "dashboard"
    assert admin.post(url(key), {"reach": "all"}).status_code == HTTPStatus.SEE_OTHER
    key.refresh_from_db()
    assert key.collections is None


def test_selected_with_none_chosen_reaches_nothing(client_for, make_key) -> None:
    key, _token = make_key()
    assert client_for("owner").post(url(key), {"reach": "selected"}).status_code == 303
    key.refresh_from_db()
    assert key.collections == []


def test_another_workspaces_collection_is_a_form_error(
    client_for, make_key, other_workspace
) -> None:
    theirs = collection_create(workspace=other_workspace, name="Theirs", **by())
    key, _token = make_key()
    response = client_for("admin").post(
        url(key), {"reach": "selected", "collections": [theirs.public_id]}
    )
    assert response.status_code == HTTPStatus.UNPROCESSABLE_ENTITY
    key.refresh_from_db()
    assert key.collections is None
    assert not AuditEvent.objects.filter(action="key.updated").exists()


def test_editors_cannot_change_it(client_for, make_key) -> None:
    key, _token = make_key()
    response = client_for("editor").post(url(key), {"reach": "selected"})
    assert response.status_code == HTTPStatus.FORBIDDEN
    key.refresh_from_db()
    assert key.collections is None
