"""Editing an OAuth app's name and redirect URIs from the dashboard (issue 15 point 4) through
`oauth_app_update`: audited `oauth_app.updated`, the app's grants and tokens kept; a page that
posts and redirects without JavaScript, a form that swaps itself with htmx."""

from __future__ import annotations

from http import HTTPStatus

import pytest
from django.test import Client
from django.urls import reverse

from audit.models import AuditEvent

pytestmark = pytest.mark.django_db


def edit_url(app) -> str:
    return reverse("oauth:app_edit", kwargs={"slug": "acme", "client_id": app.client_id})


LIST = reverse("oauth:app_list", kwargs={"slug": "acme"})


def test_rename_and_change_redirects_keeps_the_grants(oauth_app, tokens_for, client_for) -> None:
    token = tokens_for(oauth_app, "editor")["access_token"]
    admin = client_for("admin")
    listing = admin.get(LIST).content.decode()
    assert edit_url(oauth_app) in listing
    page = admin.get(edit_url(oauth_app)).content.decode()
    assert 'value="Acme CRM"' in page and oauth_app.redirect_uri in page
    response = admin.post(edit_url(oauth_app), {
        "name": "Acme CRM (EU)",
        "redirect_uris": f"{oauth_app.redirect_uri}\nhttps://eu.crm.example.com/callback",
    })
    assert response.status_code == HTTPStatus.SEE_OTHER and response["Location"] == LIST
    oauth_app.application.refresh_from_db()
    assert oauth_app.application.name == "Acme CRM (EU)"
    assert oauth_app.application.redirect_uris.split() == [
        oauth_app.redirect_uri, "https://eu.crm.example.com/callback"]
    event = AuditEvent.objects.get(action="oauth_app.updated")
    assert event.metadata["door"] == "dashboard"
    assert event.metadata["changed"]["name"] == {"from": "Acme CRM", "to": "Acme CRM (EU)"}
    assert "Saved “Acme CRM (EU)”" in admin.get(LIST).content.decode()
    me = Client(headers={"Authorization": f"Bearer {token}"}).get("/api/v1/me")
    assert me.status_code == HTTPStatus.OK  # the grant survived the edit


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"name": "", "redirect_uris": "https://ok.example.com/cb"}, "This field is required."),
        ({"name": "x" * 300, "redirect_uris": "https://ok.example.com/cb"}, "at most"),
        ({"name": "Ok", "redirect_uris": "http://evil.example.com/cb"}, "https"),
        ({"name": "Ok", "redirect_uris": "javascript:alert(1)"}, "https"),
        ({"name": "Ok\x00", "redirect_uris": "https://ok.example.com/cb"}, "Null characters"),
        ({"name": "Ok", "redirect_uris": ""}, "This field is required."),
    ],
)
def test_bad_input_is_a_form_error_and_saves_nothing(
    oauth_app, client_for, htmx_headers, data, message
) -> None:
    admin = client_for("admin")
    for headers in ({}, htmx_headers):
        response = admin.post(edit_url(oauth_app), data, headers=headers)
        assert response.status_code == HTTPStatus.UNPROCESSABLE_ENTITY
        assert message in response.content.decode()
    oauth_app.application.refresh_from_db()
    assert oauth_app.application.name == "Acme CRM"
    assert not AuditEvent.objects.filter(action="oauth_app.updated").exists()


def test_htmx_save_goes_to_the_list(oauth_app, client_for, htmx_headers) -> None:
    response = client_for("owner").post(edit_url(oauth_app), {
        "name": "Renamed", "redirect_uris": oauth_app.redirect_uri}, headers=htmx_headers)
    assert response.status_code == HTTPStatus.OK and response["HX-Redirect"] == LIST


def test_editors_cannot_edit(oauth_app, client_for) -> None:
    response = client_for("editor").post(edit_url(oauth_app), {
        "name": "Mine", "redirect_uris": oauth_app.redirect_uri})
    assert response.status_code == HTTPStatus.FORBIDDEN


@pytest.fixture
def htmx_headers() -> dict[str, str]:
    return {"HX-Request": "true"}
