"""RFC 9700 §4.11.2 (SPEC §7): an app that registered itself (RFC 7591) is never redirected to
automatically with an error. The authorization endpoint shows its own page naming the destination,
with a link; a workspace-registered (vetted) app keeps the RFC 6749 §4.1.2.1 redirect."""

from __future__ import annotations

import json
from html.parser import HTMLParser
from http import HTTPStatus
from urllib.parse import urlsplit

import pytest
from django.test import Client
from oauth2_provider.models import AccessToken, Application, Grant

from oauth.models import Connection

from .conftest import (
    AUTHORIZE,
    REGISTER,
    RegisteredApp,
    authorize_params,
    consent_post_data,
    pkce_pair,
    query_of,
)

# A registered query string: the link must keep it exactly (its `&` escaped in the HTML).
DCR_REDIRECT = "https://attacker.example/land?next=home&a=1"


class Links(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.hrefs: dict[str, str] = {}

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        attributes = dict(attrs)
        if tag == "a" and attributes.get("data-testid"):
            self.hrefs[attributes["data-testid"]] = attributes.get("href") or ""


def destination_link(response) -> str:
    parser = Links()
    parser.feed(response.content.decode())
    return parser.hrefs["destination-link"]


@pytest.fixture
def editor(client_for) -> Client:
    return client_for("editor")


@pytest.fixture
def dcr_app(db) -> RegisteredApp:
    """Registered the way anyone on the internet can: POST /api/oauth/register."""
    response = Client().post(
        REGISTER,
        json.dumps({"client_name": "Totally Legit Assistant", "redirect_uris": [DCR_REDIRECT],
                    "token_endpoint_auth_method": "none"}),
        content_type="application/json",
    )
    assert response.status_code == HTTPStatus.CREATED, response.content
    application = Application.objects.get(client_id=response.json()["client_id"])
    assert application.registration_source == "dcr"
    return RegisteredApp(application, None, DCR_REDIRECT)


def assert_page_not_redirect(response, app: RegisteredApp, *, error: str) -> dict[str, str]:
    assert "Location" not in response
    html = response.content.decode()
    assert 'data-testid="unvetted-warning"' in html
    assert "Totally Legit Assistant" in html
    assert ">attacker.example</code>" in html  # the destination, named as on the consent screen
    link = destination_link(response)
    assert link.startswith(app.redirect_uri + "&")  # exactly the registered URI, then the error
    params = query_of(link)
    assert params["error"] == error
    assert params["state"] == "state-123"
    assert params["iss"] == "http://testserver"
    assert params["next"] == "home"
    return params


def assert_nothing_issued() -> None:
    assert Grant.objects.count() == 0
    assert AccessToken.objects.count() == 0
    assert Connection.objects.count() == 0


@pytest.mark.parametrize(
    ("overrides", "error"),
    [
        ({"scope": "passports:read admin:everything"}, "invalid_scope"),
        ({"code_challenge_method": "plain"}, "invalid_request"),
        ({"state": "state-123", "response_type": "token"}, "unsupported_response_type"),
        ({"resource": "https://evil.example/mcp"}, "invalid_target"),
    ],
)
def test_an_unvetted_apps_errors_are_a_page_naming_the_destination(
    editor, dcr_app, overrides, error
) -> None:
    _, challenge = pkce_pair()

    response = editor.get(AUTHORIZE, authorize_params(dcr_app, challenge, **overrides))

    assert response.status_code == HTTPStatus.BAD_REQUEST
    assert_page_not_redirect(response, dcr_app, error=error)
    assert_nothing_issued()


def test_denying_an_unvetted_app_shows_where_the_answer_goes(editor, dcr_app) -> None:
    _, challenge = pkce_pair()
    consent = editor.get(AUTHORIZE, authorize_params(dcr_app, challenge))
    assert consent.status_code == HTTPStatus.OK

    response = editor.post(AUTHORIZE, consent_post_data(consent, workspace=None, decision="deny"))

    assert response.status_code == HTTPStatus.OK
    assert "You denied access" in response.content.decode()
    assert_page_not_redirect(response, dcr_app, error="access_denied")
    assert_nothing_issued()


def test_allowing_an_unvetted_app_still_redirects_with_the_code(editor, dcr_app) -> None:
    # The consent screen named the destination before the user chose: no second page.
    _, challenge = pkce_pair()
    consent = editor.get(AUTHORIZE, authorize_params(dcr_app, challenge))

    response = editor.post(AUTHORIZE, consent_post_data(consent, workspace="acme"))

    assert response.status_code == HTTPStatus.SEE_OTHER
    assert response["Location"].startswith(dcr_app.redirect_uri + "&")
    assert "code" in query_of(response["Location"])


def test_an_unvetted_apps_fatal_errors_have_no_link(editor, dcr_app) -> None:
    # An unregistered redirect URI is never linked to, vetted app or not.
    _, challenge = pkce_pair()

    response = editor.get(
        AUTHORIZE,
        authorize_params(dcr_app, challenge, redirect_uri="https://attacker.example/other"),
    )

    assert response.status_code == HTTPStatus.BAD_REQUEST
    assert "Location" not in response
    assert 'data-testid="destination-link"' not in response.content.decode()
    assert_nothing_issued()


@pytest.mark.parametrize(
    ("overrides", "error"),
    [
        ({"scope": "passports:read admin:everything"}, "invalid_scope"),
        ({"resource": "https://evil.example/mcp"}, "invalid_target"),
    ],
)
def test_a_vetted_apps_errors_still_redirect(editor, oauth_app, overrides, error) -> None:
    _, challenge = pkce_pair()

    response = editor.get(AUTHORIZE, authorize_params(oauth_app, challenge, **overrides))

    assert response.status_code == HTTPStatus.FOUND
    assert urlsplit(response["Location"]).netloc == "app.example.com"
    assert query_of(response["Location"])["error"] == error


def test_denying_a_vetted_app_still_redirects(editor, oauth_app) -> None:
    _, challenge = pkce_pair()
    consent = editor.get(AUTHORIZE, authorize_params(oauth_app, challenge))

    response = editor.post(AUTHORIZE, consent_post_data(consent, workspace=None, decision="deny"))

    assert response.status_code == HTTPStatus.SEE_OTHER
    assert query_of(response["Location"])["error"] == "access_denied"
