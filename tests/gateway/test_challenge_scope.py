"""SPEC §4 / MCP authorization "Scope Selection Strategy": every 401 challenge under /api/v1 names
the scope of the endpoint that was called (`scope="…"` beside `resource_metadata`), so a client
asks the authorization server for exactly that; an endpoint any credential may call names none."""

import re
from http import HTTPStatus

import pytest
from django.test import Client

from apikeys.services import apikey_revoke
from apikeys.tokens import generate_token
from oauth.tokens import generate_access_token
from tests.factories import by

from .test_scopes_and_methods import SCOPED

pytestmark = pytest.mark.django_db

RESOURCE_METADATA = "http://testserver/.well-known/oauth-protected-resource"


def challenge(response) -> dict[str, str]:
    assert response.status_code == HTTPStatus.UNAUTHORIZED, response.content
    header = response["WWW-Authenticate"]
    assert header.startswith('Bearer realm="gatehouse"')
    return dict(re.findall(r'(\w+)="([^"]*)"', header))


def call(method: str, path: str, authorization: str | None = None):
    headers = {"Authorization": authorization} if authorization else {}
    return Client(headers=headers).generic(
        method, path, '{"product_name": "x"}', content_type="application/json"
    )


@pytest.mark.parametrize(("method", "path", "scope"), SCOPED)
def test_missing_credentials_challenge_names_the_endpoints_scope(method, path, scope) -> None:
    params = challenge(call(method, path))

    assert params == {"realm": "gatehouse", "scope": scope, "resource_metadata": RESOURCE_METADATA}


@pytest.mark.parametrize(("method", "path", "scope"), SCOPED)
def test_invalid_token_challenge_names_the_endpoints_scope(method, path, scope) -> None:
    for token in (generate_token("development"), generate_access_token()):
        params = challenge(call(method, path, f"Bearer {token}"))
        assert params["error"] == "invalid_token"
        assert params["scope"] == scope
        assert params["resource_metadata"] == RESOURCE_METADATA


def test_a_known_but_revoked_keys_challenge_names_the_scope(make_key, members) -> None:
    key, token = make_key()
    apikey_revoke(key=key, **by(members["admin"]))

    params = challenge(call("POST", "/api/v1/passports", f"Bearer {token}"))

    assert params["error"] == "invalid_token"
    assert params["scope"] == "passports:write"


def test_an_endpoint_without_a_scope_names_none() -> None:
    assert "scope" not in challenge(call("GET", "/api/v1/me"))
    unknown = f"Bearer {generate_token('development')}"
    assert "scope" not in challenge(call("GET", "/api/v1/me", unknown))
