"""The token endpoint against a live server with authlib, the way clients really call it: audience
binding (RFC 8707), a replayed authorization code revoking what it issued (RFC 6749 §4.1.2), and
concurrent uses of one refresh token or one code from real threads — no 500, exactly one wins."""

from __future__ import annotations

import json
import threading
from concurrent.futures import ThreadPoolExecutor
from http import HTTPStatus
from types import SimpleNamespace

import pytest
import requests
from authlib.common.security import generate_token
from authlib.integrations.requests_client import OAuth2Session, OAuthError
from oauth2_provider.models import AccessToken

from audit.models import AuditEvent
from oauth.models import Connection, UsedAuthorizationCode
from oauth.services import oauth_app_create
from tests.factories import by
from tests.servers import gunicorn

from .test_live_clients import (  # noqa: F401 — confidential_app is a fixture
    SCOPE,
    UserAgent,
    authlib_session,
    confidential_app,
)

pytestmark = pytest.mark.django_db(transaction=True)

THREADS = 6


def me(live_server, access_token: str) -> int:
    return requests.get(f"{live_server.url}/api/v1/me", timeout=10,
                        headers={"Authorization": f"Bearer {access_token}"}).status_code


def client_session(app, secret: str) -> OAuth2Session:
    return OAuth2Session(client_id=app.client_id, client_secret=secret,
                         token_endpoint_auth_method="client_secret_basic")


def all_at_once(count: int, call) -> list:
    """Run `call()` on `count` threads released together; each result, or the OAuth error code,
    or the repr of any other exception (a 500's HTML body, say)."""
    barrier = threading.Barrier(count)

    def run() -> object:
        barrier.wait(timeout=30)
        try:
            return call()
        except OAuthError as error:
            return error.error
        except Exception as error:  # recorded, and the test fails on it
            return repr(error)

    with ThreadPoolExecutor(max_workers=count) as pool:
        return list(pool.map(lambda _: run(), range(count)))


@pytest.fixture
def authorized(live_server, confidential_app, members):  # noqa: F811
    """(session, verifier, callback URL) after the editor consented in the browser."""
    app, secret = confidential_app
    session, verifier, url = authlib_session(live_server, app, secret)
    callback = UserAgent(live_server.url, members["editor"]).consent(url)
    return session, verifier, callback


def test_authlib_cannot_get_a_token_for_another_server(live_server, authorized) -> None:
    session, verifier, callback = authorized
    token_url = f"{live_server.url}/api/oauth/token"

    with pytest.raises(OAuthError) as refused:
        session.fetch_token(token_url, authorization_response=callback, code_verifier=verifier,
                            resource="https://evil.example/mcp")
    assert refused.value.error == "invalid_target"
    assert AccessToken.objects.count() == 0

    token = session.fetch_token(token_url, authorization_response=callback,
                                code_verifier=verifier, resource=f"{live_server.url}/api/v1")
    assert me(live_server, token["access_token"]) == HTTPStatus.OK
    with pytest.raises(OAuthError) as widened:
        session.refresh_token(token_url, refresh_token=token["refresh_token"],
                              resource="https://evil.example/mcp")
    assert widened.value.error == "invalid_target"
    assert AccessToken.objects.get().resource == [f"{live_server.url}/api/v1"]


def test_authlib_replayed_code_revokes_the_tokens_it_issued(
    live_server, authorized, confidential_app, members  # noqa: F811
) -> None:
    app, secret = confidential_app
    session, verifier, callback = authorized
    token_url = f"{live_server.url}/api/oauth/token"
    first = session.fetch_token(token_url, authorization_response=callback, code_verifier=verifier)
    rotated = session.refresh_token(token_url, refresh_token=first["refresh_token"])
    # Another authorization of the same app by the same user: same grant, its own code.
    other_session, other_verifier, other_url = authlib_session(live_server, app, secret)
    other = other_session.fetch_token(
        token_url, code_verifier=other_verifier,
        authorization_response=UserAgent(live_server.url, members["editor"]).consent(other_url),
    )
    assert me(live_server, rotated["access_token"]) == HTTPStatus.OK

    with pytest.raises(OAuthError) as replayed:
        client_session(app, secret).fetch_token(
            token_url, authorization_response=callback, code_verifier=verifier
        )

    assert replayed.value.error == "invalid_grant"
    # Everything that descends from the replayed code stops working …
    assert me(live_server, rotated["access_token"]) == HTTPStatus.UNAUTHORIZED
    with pytest.raises(OAuthError) as refresh_refused:
        session.refresh_token(token_url, refresh_token=rotated["refresh_token"])
    assert refresh_refused.value.error == "invalid_grant"
    # … and nothing else: the other code's tokens, and the grant itself, live on.
    assert me(live_server, other["access_token"]) == HTTPStatus.OK
    assert Connection.objects.active().count() == 1
    event = AuditEvent.objects.get(action="oauth.authorization_code_reused")
    assert event.target_id == app.client_id
    assert event.metadata["tokens_revoked"] == 2  # the rotated access and refresh token
    stored = json.dumps(event.metadata) + json.dumps(
        list(UsedAuthorizationCode.objects.values()), default=str
    )
    code = callback.split("code=")[1].split("&")[0]
    for secret_value in (code, first["access_token"], first["refresh_token"],
                         rotated["access_token"], rotated["refresh_token"]):
        assert secret_value not in stored


def test_concurrent_refreshes_of_one_token_one_wins_the_rest_invalid_grant(
    live_server, authorized, confidential_app  # noqa: F811
) -> None:
    app, secret = confidential_app
    session, verifier, callback = authorized
    token_url = f"{live_server.url}/api/oauth/token"
    token = session.fetch_token(token_url, authorization_response=callback, code_verifier=verifier)

    results = all_at_once(THREADS, lambda: client_session(app, secret).refresh_token(
        token_url, refresh_token=token["refresh_token"]
    ))

    winners = [result for result in results if isinstance(result, dict)]
    assert len(winners) == 1, results
    assert [r for r in results if not isinstance(r, dict)] == ["invalid_grant"] * (THREADS - 1)
    # The losers raced the rotation; they were not reuse: the winner's tokens keep working.
    assert me(live_server, winners[0]["access_token"]) == HTTPStatus.OK
    assert client_session(app, secret).refresh_token(
        token_url, refresh_token=winners[0]["refresh_token"]
    )["access_token"].startswith("gat_")
    assert Connection.objects.active().count() == 1
    assert not AuditEvent.objects.filter(action="oauth.refresh_token_reused").exists()
    assert AccessToken.objects.count() == 1  # the losers' requests left nothing behind


def test_concurrent_exchanges_of_one_code_are_a_replay(
    live_server, authorized, confidential_app  # noqa: F811
) -> None:
    app, secret = confidential_app
    _session, verifier, callback = authorized
    token_url = f"{live_server.url}/api/oauth/token"

    results = all_at_once(THREADS, lambda: client_session(app, secret).fetch_token(
        token_url, authorization_response=callback, code_verifier=verifier,
        redirect_uri="https://crm.example.com/oauth/callback",
    ))

    winners = [result for result in results if isinstance(result, dict)]
    assert len(winners) == 1, results
    assert [r for r in results if not isinstance(r, dict)] == ["invalid_grant"] * (THREADS - 1)
    # A code used more than once revokes what it issued, however close together the uses were.
    assert me(live_server, winners[0]["access_token"]) == HTTPStatus.UNAUTHORIZED
    assert AccessToken.objects.count() == 0
    assert AuditEvent.objects.filter(action="oauth.authorization_code_reused").count() == (
        THREADS - 1
    )


def test_concurrent_refreshes_across_two_gunicorn_workers(workspace, members) -> None:
    """The same race across processes: the lock is the database's, not a process's. A public
    client (PKCE, no secret): the test process hashes secrets with MD5, gunicorn would not."""
    app, _ = oauth_app_create(
        workspace=workspace, name="CLI", redirect_uris=["https://crm.example.com/oauth/callback"],
        confidential=False, **by(members["admin"]),
    )
    with gunicorn(workers=2) as base:
        server = SimpleNamespace(url=base)
        token_url = f"{base}/api/oauth/token"
        session = OAuth2Session(
            client_id=app.client_id, scope=SCOPE, code_challenge_method="S256",
            redirect_uri="https://crm.example.com/oauth/callback",
            token_endpoint_auth_method="none",
        )
        verifier = generate_token(64)
        url, _state = session.create_authorization_url(f"{base}/api/oauth/authorize",
                                                       code_verifier=verifier)
        callback = UserAgent(base, members["editor"]).consent(url)
        token = session.fetch_token(token_url, authorization_response=callback,
                                    code_verifier=verifier)

        def refresh() -> dict:
            return OAuth2Session(client_id=app.client_id, token_endpoint_auth_method="none") \
                .refresh_token(token_url, refresh_token=token["refresh_token"])

        results = all_at_once(THREADS, refresh)

        winners = [result for result in results if isinstance(result, dict)]
        assert len(winners) == 1, results
        assert [r for r in results if not isinstance(r, dict)] == ["invalid_grant"] * (
            THREADS - 1
        )
        assert me(server, winners[0]["access_token"]) == HTTPStatus.OK
    assert Connection.objects.active().count() == 1
    assert AccessToken.objects.get().resource == [f"{base}/api/v1"]
