"""Every refusal of SPEC §7 / RFC 9700 at the authorization endpoint, and the grants that do not
exist: each is refused with the RFC's error code and nothing is issued."""

from __future__ import annotations

from http import HTTPStatus

import pytest
from django.test import Client
from oauth2_provider.models import AccessToken, Application, Grant

from tests.outages import cache_down

from .conftest import AUTHORIZE, TOKEN, authorize_params, basic_auth, pkce_pair, query_of


def assert_nothing_issued() -> None:
    assert Grant.objects.count() == 0
    assert AccessToken.objects.count() == 0


@pytest.fixture
def editor(client_for) -> Client:
    return client_for("editor")


def error_redirect(response, app) -> dict[str, str]:
    """An RFC 6749 §4.1.2.1 error sent back to the app's registered redirect URI."""
    assert response.status_code == HTTPStatus.FOUND, response.content[:300]
    assert response["Location"].startswith(app.redirect_uri + "?")
    return query_of(response["Location"])


def error_page(response) -> str:
    """A fatal error (§4.1.2.1: unknown client or bad redirect URI): a page, never a redirect."""
    assert response.status_code == HTTPStatus.BAD_REQUEST
    assert "Location" not in response
    return response.content.decode()


@pytest.mark.parametrize(
    ("overrides", "error"),
    [
        ({"code_challenge_method": "plain"}, "invalid_request"),
        ({"code_challenge_method": None}, "invalid_request"),  # defaults to plain: refused
        ({"code_challenge": None, "code_challenge_method": None}, "invalid_request"),
        ({"state": None}, "invalid_request"),
        ({"response_type": "token"}, "unsupported_response_type"),
        ({"response_type": "code token"}, "unauthorized_client"),
        ({"response_type": None}, "invalid_request"),
        ({"scope": "passports:read admin:everything"}, "invalid_scope"),
    ],
)
def test_authorization_request_refused_before_consent(editor, oauth_app, overrides, error):
    _, challenge = pkce_pair()
    response = editor.get(AUTHORIZE, authorize_params(oauth_app, challenge, **overrides))

    params = error_redirect(response, oauth_app)
    assert params["error"] == error
    assert params["iss"] == "http://testserver"
    if overrides.get("state", "x") is not None:
        assert params["state"] == "state-123"
    assert_nothing_issued()


def test_plain_pkce_tampered_into_the_consent_post_is_refused(editor, oauth_app) -> None:
    verifier, challenge = pkce_pair()
    page = editor.get(AUTHORIZE, authorize_params(oauth_app, challenge))
    data = {**page.context["fields"], "scope": page.context["scope"], "decision": "allow",
            "workspace": "acme", "code_challenge": verifier, "code_challenge_method": "plain"}

    response = editor.post(AUTHORIZE, data)

    assert response.status_code == HTTPStatus.SEE_OTHER
    assert query_of(response["Location"])["error"] == "invalid_request"
    assert_nothing_issued()


def test_unknown_client_gets_an_error_page(editor, oauth_app) -> None:
    _, challenge = pkce_pair()
    html = error_page(
        editor.get(AUTHORIZE, authorize_params(oauth_app, challenge, client_id="no-such-client"))
    )
    assert "invalid_client" in html or "invalid_request" in html
    assert_nothing_issued()


def test_missing_client_id_gets_an_error_page(editor, oauth_app) -> None:
    _, challenge = pkce_pair()
    error_page(editor.get(AUTHORIZE, authorize_params(oauth_app, challenge, client_id=None)))
    assert_nothing_issued()


@pytest.mark.parametrize(
    "redirect_uri",
    [
        "https://evil.example/callback",
        "https://app.example.com/callback/../other",
        "https://app.example.com/callback?extra=1",
        "https://app.example.com/callback#fragment",
        "javascript:alert(1)",
        "https://user@app.example.com/callback",
        "not a uri",
    ],
)
def test_unregistered_redirect_uri_gets_an_error_page(editor, oauth_app, redirect_uri) -> None:
    _, challenge = pkce_pair()
    response = editor.get(
        AUTHORIZE, authorize_params(oauth_app, challenge, redirect_uri=redirect_uri)
    )
    error_page(response)
    assert_nothing_issued()


def test_http_redirect_to_a_non_loopback_host_is_refused_even_if_stored(editor, oauth_app):
    # Stored by other means (a raw database write), it is still refused at /authorize.
    Application.objects.filter(pk=oauth_app.application.pk).update(
        redirect_uris="http://app.example.com/callback"
    )
    _, challenge = pkce_pair()
    response = editor.get(
        AUTHORIZE,
        authorize_params(oauth_app, challenge, redirect_uri="http://app.example.com/callback"),
    )
    error_page(response)
    assert_nothing_issued()


def test_resource_other_than_the_api_is_invalid_target(editor, oauth_app) -> None:
    _, challenge = pkce_pair()
    response = editor.get(
        AUTHORIZE,
        authorize_params(oauth_app, challenge, resource="https://other.example/api"),
    )
    assert error_redirect(response, oauth_app)["error"] == "invalid_target"


def test_resource_of_the_api_is_accepted(client_for, oauth_app, authorize, exchange) -> None:
    authorized = authorize(
        client_for("editor"), oauth_app, resource="http://testserver/api/v1"
    )
    response = exchange(oauth_app, authorized, resource="http://testserver/api/v1")

    assert response.status_code == HTTPStatus.OK
    assert AccessToken.objects.get().resource == ["http://testserver/api/v1"]


def test_approval_prompt_auto_does_not_skip_consent(client_for, oauth_app, tokens_for) -> None:
    tokens_for(oauth_app)  # a live token for this app and user exists
    _, challenge = pkce_pair()

    response = client_for("editor").get(
        AUTHORIZE, authorize_params(oauth_app, challenge, approval_prompt="auto")
    )

    assert response.status_code == HTTPStatus.OK  # the consent screen, not a redirect with a code
    assert Grant.objects.count() == 0


# --- No token without a user --------------------------------------------------------------------


@pytest.mark.parametrize(
    "data",
    [
        {"grant_type": "client_credentials"},
        {"grant_type": "client_credentials", "scope": "passports:read"},
        {"grant_type": "password", "username": "editor@acme.test", "password": "x"},
        {"grant_type": "implicit"},
        {"grant_type": "urn:ietf:params:oauth:grant-type:device_code", "device_code": "x"},
        {"grant_type": "urn:ietf:params:oauth:grant-type:jwt-bearer", "assertion": "x"},
    ],
)
def test_no_grant_issues_a_token_without_a_user(oauth_app, members, password, data) -> None:
    if data.get("grant_type") == "password":
        data = {**data, "password": password}
    # Even an application row switched to these grant types by hand gets nothing.
    for grant_type in ("client-credentials", "password"):
        Application.objects.filter(pk=oauth_app.application.pk).update(
            authorization_grant_type=grant_type
        )
        response = Client().post(
            TOKEN, data, HTTP_AUTHORIZATION=basic_auth(oauth_app.client_id, oauth_app.secret)
        )
        assert response.status_code == HTTPStatus.BAD_REQUEST, response.content
        assert response.json()["error"] == "unsupported_grant_type"
    assert_nothing_issued()


@pytest.mark.parametrize("challenge", ["too-short", "x" * 129, "a" * 42 + "!", "é" * 43])
def test_malformed_code_challenge_is_refused(editor, oauth_app, challenge) -> None:
    response = editor.get(AUTHORIZE, authorize_params(oauth_app, challenge))

    assert error_redirect(response, oauth_app)["error"] == "invalid_request"
    assert_nothing_issued()


def test_nul_bytes_are_refused_not_500(editor, oauth_app) -> None:
    _, challenge = pkce_pair()
    for field in ("client_id", "state", "scope", "redirect_uri"):
        params = authorize_params(oauth_app, challenge)
        params[field] = params[field] + "\x00"
        assert error_page(editor.get(AUTHORIZE, params)), field
    auth = {"HTTP_AUTHORIZATION": basic_auth(oauth_app.client_id, oauth_app.secret)}
    for path, data in [
        (TOKEN, {"grant_type": "authorization_code", "code": "abc\x00", "code_verifier": "x"}),
        (TOKEN, {"grant_type": "refresh_token", "refresh_token": "\x00"}),
        ("/api/oauth/revoke", {"token": "gat_\x00"}),
        ("/api/oauth/introspect", {"token": "gat_\x00"}),
    ]:
        response = Client().post(path, data, **auth)
        assert response.status_code == HTTPStatus.BAD_REQUEST, (path, response.content)
        assert response.json()["error"] == "invalid_request"
    registration = Client().post(
        "/api/oauth/register",
        '{"client_name": "a\\u0000b", "redirect_uris": ["https://a.example/cb"]}',
        content_type="application/json",
    )
    assert registration.status_code == HTTPStatus.BAD_REQUEST
    assert registration.json()["error"] == "invalid_client_metadata"
    assert_nothing_issued()


def test_rate_limiter_down_is_503_not_500(oauth_app) -> None:
    with cache_down(ConnectionError("cache is down")):
        response = Client().post(TOKEN, {"grant_type": "authorization_code"}, **{
            "HTTP_AUTHORIZATION": basic_auth(oauth_app.client_id, oauth_app.secret)})

    assert response.status_code == HTTPStatus.SERVICE_UNAVAILABLE
    assert response.json()["error"] == "temporarily_unavailable"
    assert response["Retry-After"]
