"""The consent screen and the sign-in before it (issue 15 point 10): the login page names the
app asking; the consent lists only what the user's role lets the app do, the rest apart and
struck through."""

from http import HTTPStatus
from urllib.parse import urlencode

import pytest
from django.test import Client

from .conftest import AUTHORIZE, authorize_params, pkce_pair

pytestmark = pytest.mark.django_db


def test_viewer_sees_write_scope_withheld_and_struck_through(client_for, oauth_app) -> None:
    _verifier, challenge = pkce_pair()
    page = client_for("viewer").get(AUTHORIZE, authorize_params(oauth_app, challenge))
    assert page.status_code == HTTPStatus.OK
    body = page.content.decode()
    granted = body[body.index('data-testid="scope-list"'):body.index("Asked for, but not granted")]
    withheld = body[body.index('data-testid="withheld-scopes"'):]
    assert "passports:read" in granted and "passports:write" not in granted
    assert "<del>" in withheld and "passports:write" in withheld.split("</ul>")[0]
    assert "Your role in this workspace (Viewer)" in body


def test_editor_gets_every_requested_scope_listed_plainly(client_for, oauth_app) -> None:
    _verifier, challenge = pkce_pair()
    body = client_for("editor").get(AUTHORIZE, authorize_params(oauth_app, challenge)).content
    assert b"passports:write" in body and b"withheld-scopes" not in body


def test_login_page_names_the_app_of_an_authorize_link(oauth_app, workspace) -> None:
    _verifier, challenge = pkce_pair()
    next_url = f"{AUTHORIZE}?{urlencode(authorize_params(oauth_app, challenge))}"
    response = Client().get(AUTHORIZE, authorize_params(oauth_app, challenge), follow=True)
    assert response.redirect_chain[-1][0].startswith("/accounts/login/")
    assert b"<strong>Acme CRM</strong> is asking for access" in response.content
    plain = Client().get("/accounts/login/", {"next": "/w/acme/"})
    assert b"is asking for access" not in plain.content
    other = Client().get("/accounts/login/", {"next": "https://evil.test" + next_url})
    assert b"is asking for access" not in other.content
