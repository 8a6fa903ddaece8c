"""Helpers for the OAuth tests: a PKCE pair, apps registered through the services, and the
authorization-code flow driven through the real consent screen with Django's test client."""

from __future__ import annotations

import base64
import hashlib
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from http import HTTPStatus
from urllib.parse import parse_qs, urlsplit

import pytest
from django.test import Client

from oauth.services import oauth_app_create
from tests.factories import by

REDIRECT_URI = "https://app.example.com/callback"
API_RESOURCE = "http://testserver/api/v1"  # the test client's origin
AUTHORIZE = "/api/oauth/authorize"
TOKEN = "/api/oauth/token"
REVOKE = "/api/oauth/revoke"
INTROSPECT = "/api/oauth/introspect"
REGISTER = "/api/oauth/register"


def pkce_pair() -> tuple[str, str]:
    verifier = secrets.token_urlsafe(48)
    digest = hashlib.sha256(verifier.encode()).digest()
    return verifier, base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def basic_auth(client_id: str, secret: str) -> str:
    return "Basic " + base64.b64encode(f"{client_id}:{secret}".encode()).decode()


def query_of(url: str) -> dict[str, str]:
    return {key: values[0] for key, values in parse_qs(urlsplit(url).query).items()}


@dataclass
class RegisteredApp:
    application: object
    secret: str | None
    redirect_uri: str

    @property
    def client_id(self) -> str:
        return self.application.client_id

    def token_auth(self) -> dict[str, str]:
        """Client authentication for the token endpoint (HTTP Basic, or none for a public app)."""
        if self.secret is None:
            return {}
        return {"HTTP_AUTHORIZATION": basic_auth(self.client_id, self.secret)}


@pytest.fixture
def make_app(workspace, members) -> Callable[..., RegisteredApp]:
    def make(
        *, confidential: bool = True, redirect_uri: str = REDIRECT_URI, name: str = "Acme CRM"
    ) -> RegisteredApp:
        application, secret = oauth_app_create(
            workspace=workspace,
            name=name,
            redirect_uris=[redirect_uri],
            confidential=confidential,
            **by(members["admin"]),
        )
        return RegisteredApp(application, secret, redirect_uri)

    return make


@pytest.fixture
def oauth_app(make_app) -> RegisteredApp:
    return make_app()


@dataclass
class Authorized:
    code: str
    verifier: str
    redirect: str
    params: dict[str, str]


def authorize_params(app: RegisteredApp, challenge: str, **overrides: str | None) -> dict:
    params = {
        "response_type": "code",
        "client_id": app.client_id,
        "redirect_uri": app.redirect_uri,
        "scope": "passports:read passports:write offline_access",
        "state": "state-123",
        "code_challenge": challenge,
        "code_challenge_method": "S256",
    }
    params.update(overrides)
    return {key: value for key, value in params.items() if value is not None}


def consent_post_data(response, *, workspace: str | None, decision: str = "allow") -> dict:
    """What the consent form posts: its hidden fields plus the user's choices."""
    context = response.context
    data = {**context["fields"], "scope": context["scope"], "decision": decision}
    if context["resource"]:
        data["resource"] = context["resource"]
    if workspace is not None:
        data["workspace"] = workspace
    return data


@pytest.fixture
def authorize() -> Callable[..., Authorized]:
    """Run GET /authorize → consent → POST as `client` (a logged-in test client)."""

    def run(
        client: Client, app: RegisteredApp, *, workspace: str = "acme", **overrides: str | None
    ) -> Authorized:
        verifier, challenge = pkce_pair()
        response = client.get(AUTHORIZE, authorize_params(app, challenge, **overrides))
        assert response.status_code == HTTPStatus.OK, response.content[:500]
        posted = client.post(AUTHORIZE, consent_post_data(response, workspace=workspace))
        assert posted.status_code == HTTPStatus.SEE_OTHER, posted.content[:500]
        location = posted["Location"]
        params = query_of(location)
        assert "code" in params, location
        return Authorized(params["code"], verifier, location, params)

    return run


@pytest.fixture
def exchange() -> Callable[..., object]:
    """POST the code to the token endpoint with the verifier."""

    def run(app: RegisteredApp, authorized: Authorized, **overrides: str):
        data = {
            "grant_type": "authorization_code",
            "code": authorized.code,
            "redirect_uri": app.redirect_uri,
            "code_verifier": authorized.verifier,
        }
        if app.secret is None:
            data["client_id"] = app.client_id
        data.update(overrides)
        return Client().post(TOKEN, data, **app.token_auth())

    return run


@pytest.fixture
def tokens_for(client_for, authorize, exchange) -> Callable[..., dict]:
    """A token response for `app`, authorized by the member with `role` in acme."""

    def run(app: RegisteredApp, role: str = "editor", **overrides: str | None) -> dict:
        authorized = authorize(client_for(role), app, **overrides)
        response = exchange(app, authorized)
        assert response.status_code == HTTPStatus.OK, response.content
        return response.json()

    return run
