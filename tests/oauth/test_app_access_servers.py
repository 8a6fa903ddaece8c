"""Approval states across processes (issue 17 point 5): a pending grant's token is refused with
403 `app_not_approved` by every gunicorn worker, works on the next request of each once an admin
approves it, and a denied grant's token is refused everywhere at once."""

from __future__ import annotations

import html
import re
from http import HTTPStatus
from urllib.parse import urlencode

import pytest
import requests

from core.context import Actor, RequestContext
from oauth.models import Connection
from oauth.services import connection_approve, connection_deny, oauth_app_register_dynamic
from tests.servers import gunicorn

from .conftest import AUTHORIZE, RegisteredApp, authorize_params, pkce_pair, query_of
from .test_live_clients import UserAgent, _FormFields

pytestmark = pytest.mark.django_db(transaction=True)

REQUESTS_PER_STATE = 8  # two workers: each serves some of them


def _pending_token(base: str, agent: UserAgent, name: str) -> tuple[Connection, str]:
    """The editor consents, on the server, to a self-registered app; the app exchanges the code
    from the "awaiting approval" page's link there (so the token is bound to its /api/v1)."""
    redirect_uri = f"https://{name}.example.net/cb"
    application, _ = oauth_app_register_dynamic(
        name=name, redirect_uris=[redirect_uri], confidential=False, context=RequestContext(),
    )
    app = RegisteredApp(application, None, redirect_uri)
    verifier, challenge = pkce_pair()
    url = f"{base}{AUTHORIZE}?{urlencode(authorize_params(app, challenge, scope='passports:read'))}"
    page = requests.get(url, headers={"Cookie": agent.cookie}, timeout=10)
    assert page.status_code == HTTPStatus.OK, page.text[:300]
    fields = _FormFields()
    fields.feed(page.text)
    posted = requests.post(f"{base}{AUTHORIZE}", timeout=10, allow_redirects=False,
                           data={**fields.fields, "workspace": "acme", "decision": "allow"},
                           headers={"Cookie": agent.cookie})
    assert posted.status_code == HTTPStatus.OK and "Awaiting approval" in posted.text
    link = html.unescape(re.search(r'href="([^"]+)"[^>]*data-testid="destination-link"',
                                   posted.text).group(1))
    token = requests.post(f"{base}/api/oauth/token", timeout=10, data={
        "grant_type": "authorization_code", "code": query_of(link)["code"],
        "redirect_uri": redirect_uri, "code_verifier": verifier, "client_id": app.client_id,
    })
    assert token.status_code == HTTPStatus.OK, token.text
    return Connection.objects.get(application=application), token.json()["access_token"]


def _answers(base: str, token: str) -> set[tuple[int, str | None]]:
    session = requests.Session()  # keep-alive off between calls: spread over the workers
    seen = set()
    for _ in range(REQUESTS_PER_STATE):
        response = session.get(f"{base}/api/v1/me", timeout=10,
                               headers={"Authorization": f"Bearer {token}", "Connection": "close"})
        seen.add((response.status_code, response.json().get("error")))
    return seen


def test_approval_and_denial_hold_on_the_next_request_of_every_worker(
    workspace, members
) -> None:
    workspace.app_access_policy = "approval"
    workspace.save()
    admin = Actor.for_user(members["admin"])
    with gunicorn(workers=2) as base:
        agent = UserAgent(base, members["editor"])
        approved, approved_token = _pending_token(base, agent, "approved")
        denied, denied_token = _pending_token(base, agent, "denied")
        for token in (approved_token, denied_token):
            assert _answers(base, token) == {(HTTPStatus.FORBIDDEN, "app_not_approved")}

        connection_approve(connection=approved, actor=admin, context=RequestContext())
        connection_deny(connection=denied, actor=admin, context=RequestContext())

        assert _answers(base, approved_token) == {(HTTPStatus.OK, None)}
        assert _answers(base, denied_token) == {(HTTPStatus.UNAUTHORIZED, "invalid_token")}
