"""Real OAuth clients against a live server: authlib's `OAuth2Session` (code + PKCE, refresh,
rotation, reuse detection, revocation) and the MCP Python SDK's `OAuthClientProvider` (discovery
from a 401, dynamic registration, PKCE, `/api/v1/me`), both unmodified. The user's browser is
played by `UserAgent`: plain HTTP with the user's session cookie, GET the consent page, POST it."""

from __future__ import annotations

import secrets
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from html.parser import HTMLParser
from http import HTTPStatus
from urllib.parse import urljoin

import anyio
import httpx2
import pytest
import requests
import time_machine
from authlib.common.security import generate_token
from authlib.integrations.requests_client import OAuth2Session, OAuthError
from django.conf import settings
from django.test import Client
from django.utils import timezone
from mcp.client.auth import OAuthClientProvider
from mcp.shared.auth import (
    AuthorizationCodeResult,
    OAuthClientInformationFull,
    OAuthClientMetadata,
    OAuthToken,
)
from pydantic import AnyUrl

from audit.models import AuditEvent
from oauth.models import Connection
from oauth.services import oauth_app_create
from tests.factories import by

from .conftest import query_of

pytestmark = pytest.mark.django_db(transaction=True)

SCOPE = "passports:read passports:write offline_access"


class _FormFields(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.fields: dict[str, str] = {}

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        data = dict(attrs)
        if tag == "input" and data.get("type") == "hidden" and data.get("name"):
            self.fields[data["name"]] = data.get("value") or ""


class UserAgent:
    """The signed-in user's browser, headless: session cookie plus a CSRF cookie, no JavaScript."""

    def __init__(self, base_url: str, user) -> None:
        client = Client()
        client.force_login(user)
        session_id = client.cookies[settings.SESSION_COOKIE_NAME].value
        self.base_url = base_url
        self.cookie = (
            f"{settings.SESSION_COOKIE_NAME}={session_id}; "
            f"{settings.CSRF_COOKIE_NAME}={secrets.token_hex(16)}"
        )
        self.pages: list[str] = []

    def consent(self, authorize_url: str, *, workspace: str = "acme") -> str:
        """Open the authorization URL, allow access for `workspace`, return the redirect."""
        page = requests.get(authorize_url, headers={"Cookie": self.cookie}, allow_redirects=False,
                            timeout=10)
        assert page.status_code == HTTPStatus.OK, page.text[:500]
        self.pages.append(page.text)
        parser = _FormFields()
        parser.feed(page.text)
        data = {**parser.fields, "workspace": workspace, "decision": "allow"}
        posted = requests.post(
            urljoin(self.base_url, "/api/oauth/authorize"),
            data=data,
            headers={"Cookie": self.cookie},
            allow_redirects=False,
            timeout=10,
        )
        assert posted.status_code == HTTPStatus.SEE_OTHER, posted.text[:500]
        return posted.headers["Location"]


# --- authlib -------------------------------------------------------------------------------


@pytest.fixture
def confidential_app(workspace, members):
    application, secret = oauth_app_create(
        workspace=workspace,
        name="Acme CRM",
        redirect_uris=["https://crm.example.com/oauth/callback"],
        confidential=True,
        **by(members["admin"]),
    )
    return application, secret


def authlib_session(live_server, app, secret: str) -> tuple[OAuth2Session, str, str]:
    """A session for `app`, its PKCE verifier and the authorization URL (S256, with state)."""
    session = OAuth2Session(
        client_id=app.client_id,
        client_secret=secret,
        scope=SCOPE,
        redirect_uri="https://crm.example.com/oauth/callback",
        code_challenge_method="S256",
        token_endpoint_auth_method="client_secret_basic",
    )
    verifier = generate_token(64)
    url, _state = session.create_authorization_url(
        f"{live_server.url}/api/oauth/authorize", code_verifier=verifier
    )
    return session, verifier, url


def test_authlib_code_pkce_refresh_rotation_reuse_and_revocation(
    live_server, confidential_app, members
) -> None:
    app, secret = confidential_app
    token_url = f"{live_server.url}/api/oauth/token"
    session, verifier, authorize_url = authlib_session(live_server, app, secret)
    agent = UserAgent(live_server.url, members["editor"])

    # Authorize with PKCE S256 through the consent screen, then exchange the code.
    assert "code_challenge_method=S256" in authorize_url and "state=" in authorize_url
    callback = agent.consent(authorize_url)
    assert query_of(callback)["iss"] == live_server.url
    token = session.fetch_token(token_url, authorization_response=callback, code_verifier=verifier)
    assert token["access_token"].startswith("gat_")
    assert token["refresh_token"].startswith("grt_")
    assert token["expires_in"] == 900

    me = session.get(f"{live_server.url}/api/v1/me")
    assert me.status_code == HTTPStatus.OK, me.text
    assert me.json()["principal"]["id"] == app.client_id
    assert "passports:write" in me.json()["scopes"]

    # Refresh: both tokens rotate; the new access token works, the old one does not.
    first = dict(token)
    second = session.refresh_token(token_url, refresh_token=first["refresh_token"])
    assert second["refresh_token"] != first["refresh_token"]
    assert session.get(f"{live_server.url}/api/v1/me").status_code == HTTPStatus.OK
    stale = requests.get(f"{live_server.url}/api/v1/me",
                         headers={"Authorization": f"Bearer {first['access_token']}"}, timeout=10)
    assert stale.status_code == HTTPStatus.UNAUTHORIZED

    # Reuse of the rotated refresh token (later than a client's own near-simultaneous second
    # refresh could be): refused, and the whole grant ends.
    replay = OAuth2Session(client_id=app.client_id, client_secret=secret,
                           token_endpoint_auth_method="client_secret_basic")
    with (
        time_machine.travel(timezone.now() + timedelta(seconds=3), tick=True),
        pytest.raises(OAuthError) as refused,
    ):
        replay.refresh_token(token_url, refresh_token=first["refresh_token"])
    assert refused.value.error == "invalid_grant"
    assert session.get(f"{live_server.url}/api/v1/me").status_code == HTTPStatus.UNAUTHORIZED
    assert AuditEvent.objects.filter(action="oauth.refresh_token_reused").count() == 1

    # Authorize again, then revoke (RFC 7009): the grant's tokens stop working.
    session, verifier, authorize_url = authlib_session(live_server, app, secret)
    token = session.fetch_token(
        token_url, authorization_response=agent.consent(authorize_url), code_verifier=verifier
    )
    assert session.get(f"{live_server.url}/api/v1/me").status_code == HTTPStatus.OK
    revoked = session.revoke_token(
        f"{live_server.url}/api/oauth/revoke",
        token=token["refresh_token"],
        token_type_hint="refresh_token",
    )
    assert revoked.status_code == HTTPStatus.OK
    assert session.get(f"{live_server.url}/api/v1/me").status_code == HTTPStatus.UNAUTHORIZED
    with pytest.raises(OAuthError):
        session.refresh_token(token_url, refresh_token=token["refresh_token"])
    assert Connection.objects.active().count() == 0


def test_authlib_wrong_verifier_gets_invalid_grant(live_server, confidential_app, members):
    app, secret = confidential_app
    session, verifier, authorize_url = authlib_session(live_server, app, secret)
    callback = UserAgent(live_server.url, members["editor"]).consent(authorize_url)

    with pytest.raises(OAuthError) as refused:
        session.fetch_token(f"{live_server.url}/api/oauth/token",
                            authorization_response=callback, code_verifier=generate_token(64))
    assert refused.value.error == "invalid_grant"


# --- MCP Python SDK --------------------------------------------------------------------------


class MemoryTokenStorage:
    def __init__(self) -> None:
        self.tokens: OAuthToken | None = None
        self.client_info: OAuthClientInformationFull | None = None

    async def get_tokens(self) -> OAuthToken | None:
        return self.tokens

    async def set_tokens(self, tokens: OAuthToken) -> None:
        self.tokens = tokens

    async def get_client_info(self) -> OAuthClientInformationFull | None:
        return self.client_info

    async def set_client_info(self, client_info: OAuthClientInformationFull) -> None:
        self.client_info = client_info


async def _mcp_call_me(base_url: str, agent: UserAgent, storage: MemoryTokenStorage) -> tuple:
    redirects: list[str] = []

    async def redirect_handler(authorization_url: str) -> None:
        redirects.append(await anyio.to_thread.run_sync(agent.consent, authorization_url))

    async def callback_handler() -> AuthorizationCodeResult:
        params = query_of(redirects[-1])
        return AuthorizationCodeResult(
            code=params["code"], state=params.get("state"), iss=params.get("iss")
        )

    provider = OAuthClientProvider(
        server_url=f"{base_url}/api/v1/me",
        client_metadata=OAuthClientMetadata(
            client_name="Test Assistant",
            redirect_uris=[AnyUrl("http://127.0.0.1:33418/callback")],
        ),
        storage=storage,
        redirect_handler=redirect_handler,
        callback_handler=callback_handler,
    )
    async with httpx2.AsyncClient(auth=provider, timeout=20) as http:
        response = await http.get(f"{base_url}/api/v1/me")
        again = await http.get(f"{base_url}/api/v1/me")  # the stored token, no new consent
    return response, again, redirects


def test_mcp_client_discovers_registers_authorizes_and_calls_me(live_server, members):
    agent = UserAgent(live_server.url, members["editor"])
    storage = MemoryTokenStorage()

    # Its own thread: a session-wide Playwright browser may own this thread's event loop.
    with ThreadPoolExecutor(max_workers=1) as pool:
        response, again, redirects = pool.submit(
            anyio.run, _mcp_call_me, live_server.url, agent, storage
        ).result(timeout=60)

    assert response.status_code == HTTPStatus.OK, response.text
    assert again.status_code == HTTPStatus.OK
    assert len(redirects) == 1  # one consent
    body = response.json()
    assert body["principal"]["kind"] == "oauth"
    assert body["principal"]["name"] == "Test Assistant"
    assert body["workspace"]["slug"] == "acme"
    # The SDK asked for every advertised scope; the consent screen said it registered itself.
    assert "passports:write" in body["scopes"] and "audit:read" not in body["scopes"]
    assert "registered itself" in agent.pages[0]
    assert storage.client_info.client_id == body["principal"]["id"]
    assert storage.tokens.access_token.startswith("gat_")
    assert storage.tokens.refresh_token.startswith("grt_")
    connection = Connection.objects.get()
    assert connection.application.registration_source == "dcr"
    assert connection.user == members["editor"]
