"""The authorization-code flow with PKCE through the consent screen and the token endpoint."""

from __future__ import annotations

import hashlib
from datetime import timedelta
from http import HTTPStatus

import time_machine
from django.test import Client
from django.utils import timezone
from oauth2_provider.models import AccessToken, Grant, RefreshToken

from audit.models import AuditEvent
from oauth.models import Connection
from oauth.tokens import is_well_formed

from .conftest import AUTHORIZE, TOKEN, authorize_params, consent_post_data, pkce_pair, query_of


def test_code_flow_issues_gat_access_and_grt_refresh_tokens(oauth_app, tokens_for) -> None:
    body = tokens_for(oauth_app, "editor")

    assert is_well_formed(body["access_token"], "gat_")
    assert is_well_formed(body["refresh_token"], "grt_")
    assert body["token_type"] == "Bearer"
    assert body["expires_in"] == 900
    assert set(body["scope"].split()) == {"passports:read", "passports:write", "offline_access"}


def test_tokens_are_stored_as_checksums_only(oauth_app, tokens_for) -> None:
    body = tokens_for(oauth_app)

    access = AccessToken.objects.get()
    refresh = RefreshToken.objects.get()
    assert access.token == "" and refresh.token == ""
    assert access.token_checksum == hashlib.sha256(body["access_token"].encode()).hexdigest()
    assert refresh.token_checksum == hashlib.sha256(body["refresh_token"].encode()).hexdigest()


def test_no_refresh_token_without_offline_access(oauth_app, tokens_for) -> None:
    body = tokens_for(oauth_app, scope="passports:read")

    assert "refresh_token" not in body
    assert body["scope"] == "passports:read"
    assert RefreshToken.objects.count() == 0


def test_authorization_response_carries_state_and_iss(client_for, oauth_app, authorize) -> None:
    authorized = authorize(client_for("editor"), oauth_app)

    assert authorized.redirect.startswith(oauth_app.redirect_uri + "?")
    assert authorized.params["state"] == "state-123"
    assert authorized.params["iss"] == "http://testserver"


def test_consent_requires_login(oauth_app) -> None:
    _, challenge = pkce_pair()
    response = Client().get(AUTHORIZE, authorize_params(oauth_app, challenge))

    assert response.status_code == HTTPStatus.FOUND
    assert response["Location"].startswith("/accounts/login/?next=/api/oauth/authorize")


def test_consent_screen_shows_app_scopes_and_only_the_users_workspaces(
    client_for, oauth_app, other_workspace
) -> None:
    _, challenge = pkce_pair()
    response = client_for("viewer").get(AUTHORIZE, authorize_params(oauth_app, challenge))

    assert response.status_code == HTTPStatus.OK
    html = response.content.decode()
    assert "Acme CRM" in html
    assert "Read product passports." in html
    assert "Create, change and delete product passports." in html
    assert "Stay connected" in html
    assert 'value="acme"' in html
    assert "Globex" not in html  # not a member there
    assert "registered itself" not in html  # registered from a dashboard


def test_consent_creates_a_connection_and_audits_it(client_for, members, oauth_app, authorize):
    authorize(client_for("editor"), oauth_app)

    connection = Connection.objects.get()
    assert connection.user == members["editor"]
    assert connection.workspace.slug == "acme"
    assert set(connection.scopes) == {"passports:read", "passports:write", "offline_access"}
    event = AuditEvent.objects.get(action="oauth.consent_granted")
    assert event.workspace == connection.workspace
    assert event.actor_id == str(members["editor"].pk)
    assert event.target_id == oauth_app.client_id


def test_scopes_the_role_cannot_use_are_narrowed_away_not_refused(oauth_app, tokens_for) -> None:
    body = tokens_for(oauth_app, "viewer", scope="passports:read passports:write audit:read")

    assert body["scope"] == "passports:read"


def test_consent_with_no_usable_scope_asks_again(client_for, oauth_app) -> None:
    client = client_for("viewer")
    _, challenge = pkce_pair()
    page = client.get(AUTHORIZE, authorize_params(oauth_app, challenge, scope="passports:write"))

    response = client.post(AUTHORIZE, consent_post_data(page, workspace="acme"))

    assert response.status_code == HTTPStatus.UNPROCESSABLE_ENTITY
    assert "allows none of the permissions" in response.content.decode()
    assert Grant.objects.count() == 0


def test_consent_for_a_workspace_the_user_is_not_in_is_refused(
    client_for, oauth_app, other_workspace
) -> None:
    client = client_for("owner")
    _, challenge = pkce_pair()
    page = client.get(AUTHORIZE, authorize_params(oauth_app, challenge))

    response = client.post(AUTHORIZE, consent_post_data(page, workspace="globex"))

    assert response.status_code == HTTPStatus.UNPROCESSABLE_ENTITY
    assert Grant.objects.count() == 0
    assert Connection.objects.count() == 0


def test_deny_redirects_with_access_denied(client_for, oauth_app) -> None:
    client = client_for("editor")
    _, challenge = pkce_pair()
    page = client.get(AUTHORIZE, authorize_params(oauth_app, challenge))

    response = client.post(AUTHORIZE, consent_post_data(page, workspace=None, decision="deny"))

    assert response.status_code == HTTPStatus.SEE_OTHER
    params = query_of(response["Location"])
    assert response["Location"].startswith(oauth_app.redirect_uri)
    assert params == {"error": "access_denied", "state": "state-123", "iss": "http://testserver"}
    assert Grant.objects.count() == 0


def test_tampered_redirect_uri_in_the_consent_form_is_not_followed(client_for, oauth_app):
    client = client_for("editor")
    _, challenge = pkce_pair()
    page = client.get(AUTHORIZE, authorize_params(oauth_app, challenge))
    data = consent_post_data(page, workspace="acme", decision="deny")
    data["redirect_uri"] = "https://evil.example/steal"

    response = client.post(AUTHORIZE, data)

    assert response.status_code == HTTPStatus.BAD_REQUEST
    assert "Location" not in response
    assert Grant.objects.count() == 0


def test_public_client_uses_pkce_without_a_secret(make_app, tokens_for) -> None:
    app = make_app(confidential=False, redirect_uri="http://127.0.0.1/callback")

    body = tokens_for(app)

    assert body["access_token"].startswith("gat_")


def test_loopback_redirect_accepts_any_port(make_app, client_for, authorize, exchange) -> None:
    app = make_app(confidential=False, redirect_uri="http://127.0.0.1/callback")
    authorized = authorize(client_for("editor"), app, redirect_uri="http://127.0.0.1:53124/callback")
    app.redirect_uri = "http://127.0.0.1:53124/callback"

    assert exchange(app, authorized).status_code == HTTPStatus.OK


# --- The token endpoint refuses ------------------------------------------------------------


def test_wrong_code_verifier_is_invalid_grant(client_for, oauth_app, authorize, exchange):
    authorized = authorize(client_for("editor"), oauth_app)
    wrong, _ = pkce_pair()

    response = exchange(oauth_app, authorized, code_verifier=wrong)

    assert response.status_code == HTTPStatus.BAD_REQUEST
    assert response.json()["error"] == "invalid_grant"
    assert AccessToken.objects.count() == 0


def test_missing_code_verifier_is_refused(client_for, oauth_app, authorize, exchange) -> None:
    authorized = authorize(client_for("editor"), oauth_app)
    data = {
        "grant_type": "authorization_code",
        "code": authorized.code,
        "redirect_uri": oauth_app.redirect_uri,
    }

    response = Client().post(TOKEN, data, **oauth_app.token_auth())

    assert response.status_code == HTTPStatus.BAD_REQUEST
    assert response.json()["error"] == "invalid_request"
    assert AccessToken.objects.count() == 0


def test_reused_code_is_invalid_grant_and_revokes_what_it_issued(
    client_for, oauth_app, authorize, exchange
) -> None:
    authorized = authorize(client_for("editor"), oauth_app)
    assert exchange(oauth_app, authorized).status_code == HTTPStatus.OK

    again = exchange(oauth_app, authorized)

    assert again.status_code == HTTPStatus.BAD_REQUEST
    assert again.json()["error"] == "invalid_grant"
    assert AccessToken.objects.count() == 0  # RFC 6749 §4.1.2; see test_live_token_safety.py
    assert not RefreshToken.objects.filter(revoked__isnull=True).exists()


def test_expired_code_is_invalid_grant(client_for, oauth_app, authorize, exchange) -> None:
    authorized = authorize(client_for("editor"), oauth_app)

    with time_machine.travel(timezone.now() + timedelta(seconds=61), tick=False):
        response = exchange(oauth_app, authorized)

    assert response.status_code == HTTPStatus.BAD_REQUEST
    assert response.json()["error"] == "invalid_grant"
    assert AccessToken.objects.count() == 0


def test_code_is_bound_to_its_redirect_uri(client_for, oauth_app, authorize, exchange) -> None:
    authorized = authorize(client_for("editor"), oauth_app)

    response = exchange(oauth_app, authorized, redirect_uri="https://app.example.com/other")

    assert response.status_code == HTTPStatus.BAD_REQUEST
    assert AccessToken.objects.count() == 0


def test_code_is_bound_to_its_client(client_for, make_app, authorize, exchange) -> None:
    first = make_app()
    second = make_app(name="Other app")
    authorized = authorize(client_for("editor"), first)

    response = exchange(second, authorized)

    assert response.status_code == HTTPStatus.BAD_REQUEST
    assert response.json()["error"] == "invalid_grant"
    assert AccessToken.objects.count() == 0


def test_confidential_client_must_authenticate(client_for, oauth_app, authorize, exchange):
    authorized = authorize(client_for("editor"), oauth_app)

    no_secret = Client().post(
        TOKEN,
        {
            "grant_type": "authorization_code",
            "code": authorized.code,
            "redirect_uri": oauth_app.redirect_uri,
            "code_verifier": authorized.verifier,
            "client_id": oauth_app.client_id,
        },
    )
    oauth_app.secret = "not-the-secret"
    wrong_secret = exchange(oauth_app, authorized)

    assert no_secret.status_code == HTTPStatus.UNAUTHORIZED
    assert no_secret.json()["error"] == "invalid_client"
    assert wrong_secret.status_code == HTTPStatus.UNAUTHORIZED
    assert AccessToken.objects.count() == 0


def test_client_secret_post_is_accepted(client_for, oauth_app, authorize) -> None:
    authorized = authorize(client_for("editor"), oauth_app)

    response = Client().post(
        TOKEN,
        {
            "grant_type": "authorization_code",
            "code": authorized.code,
            "redirect_uri": oauth_app.redirect_uri,
            "code_verifier": authorized.verifier,
            "client_id": oauth_app.client_id,
            "client_secret": oauth_app.secret,
        },
    )

    assert response.status_code == HTTPStatus.OK


def test_garbage_token_requests_get_rfc_errors_not_500(oauth_app) -> None:
    auth = oauth_app.token_auth()
    cases = [
        ({}, "unsupported_grant_type"),
        ({"grant_type": "authorization_code"}, "invalid_request"),
        ({"grant_type": "authorization_code", "code": "nope", "code_verifier": "x" * 43}, None),
        ({"grant_type": "refresh_token", "refresh_token": "grt_garbage"}, "invalid_grant"),
        ({"grant_type": "urn:ietf:params:oauth:grant-type:device_code"}, "unsupported_grant_type"),
    ]
    for data, error in cases:
        response = Client().post(TOKEN, data, **auth)
        assert HTTPStatus.BAD_REQUEST <= response.status_code < 500, (data, response.content)
        if error:
            assert response.json()["error"] == error, (data, response.content)
    assert AccessToken.objects.count() == 0
