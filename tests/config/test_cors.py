"""Credential-less CORS (SPEC §4, §7; config/cors.py) through the whole middleware stack: the API,
the two metadata documents, registration, token and revocation answer any origin with `*` and
never with credentials; preflights are answered before anything authenticates or meters them;
the consent screen, introspection and the dashboard get no CORS header at all."""

from __future__ import annotations

import json
from http import HTTPStatus

import pytest
from django.test import Client
from oauth2_provider.models import Application

from gateway.usage import usage_flush

pytestmark = pytest.mark.django_db

ORIGIN = "https://assistant.example"
# (path, the method a browser client uses there)
CORS_ENDPOINTS = [
    ("/.well-known/oauth-authorization-server", "GET"),
    ("/.well-known/oauth-protected-resource", "GET"),
    ("/.well-known/oauth-protected-resource/api/v1", "GET"),
    ("/api/oauth/register", "POST"),
    ("/api/oauth/token", "POST"),
    ("/api/oauth/revoke", "POST"),
    ("/api/v1/me", "GET"),
    ("/api/v1/passports", "POST"),
    ("/api/v1/passports/psp_AAAAAAAAAAAAAAAAAAAAAA", "DELETE"),
]
NO_CORS = [
    "/api/oauth/authorize",
    "/api/oauth/introspect",
    "/accounts/login/",
    "/admin/login/",
    "/w/acme/settings/api-keys/",
    "/settings/connected-apps/",
    "/",
]


def preflight(path: str, method: str = "POST", headers: str = "authorization, content-type"):
    return Client().options(
        path,
        headers={
            "Origin": ORIGIN,
            "Access-Control-Request-Method": method,
            "Access-Control-Request-Headers": headers,
        },
    )


def allowed(response, header: str) -> set[str]:
    return {item.strip().lower() for item in response[header].split(",")}


@pytest.mark.parametrize(("path", "method"), CORS_ENDPOINTS)
def test_preflights_are_answered_for_any_origin_without_credentials(path, method) -> None:
    response = preflight(path, method, "authorization, content-type, mcp-protocol-version")

    assert response.status_code == HTTPStatus.NO_CONTENT
    assert response.content == b""
    assert response["Access-Control-Allow-Origin"] == "*"
    assert method.lower() in allowed(response, "Access-Control-Allow-Methods")
    assert {"authorization", "content-type", "idempotency-key", "mcp-protocol-version"} <= (
        allowed(response, "Access-Control-Allow-Headers")
    )
    assert int(response["Access-Control-Max-Age"]) > 0
    assert "Access-Control-Allow-Credentials" not in response
    assert not response.cookies


@pytest.mark.parametrize("path", NO_CORS)
def test_no_cors_on_the_consent_screen_introspection_or_dashboard(path, client_for) -> None:
    for client in (Client(), client_for("owner")):  # signed out and signed in
        headers = {"Origin": ORIGIN}
        for response in (
            client.options(path, headers={**headers, "Access-Control-Request-Method": "POST"}),
            client.get(path, headers=headers),
            client.post(path, {}, headers=headers),
        ):
            assert not any(h.lower().startswith("access-control-") for h in response.headers), (
                path, response.status_code, dict(response.headers))


def test_a_preflight_is_neither_authenticated_nor_metered(make_key, api) -> None:
    key, token = make_key()
    first = api(token).get("/api/v1/passports")
    assert first.status_code == HTTPStatus.OK
    remaining = int(first["X-RateLimit-Remaining"])

    for _ in range(5):
        response = preflight("/api/v1/passports", "GET")
        assert response.status_code == HTTPStatus.NO_CONTENT  # not 401: no token is needed
        assert "WWW-Authenticate" not in response
        assert not any(h.startswith("X-RateLimit") for h in response.headers)
        assert "X-Request-Id" not in response  # the gateway never saw it

    second = api(token).get("/api/v1/passports")
    assert int(second["X-RateLimit-Remaining"]) == remaining - 1  # only the real requests count
    usage_flush()
    key.refresh_from_db()
    assert key.request_count == 2


def test_preflights_do_not_spend_the_registration_limit(settings) -> None:
    settings.GATEHOUSE_OAUTH_REGISTER_RATE = "1/m"
    for _ in range(5):
        assert preflight("/api/oauth/register").status_code == HTTPStatus.NO_CONTENT

    response = Client().post(
        "/api/oauth/register",
        json.dumps({"redirect_uris": ["http://127.0.0.1:9/cb"], "token_endpoint_auth_method":
                    "none"}),
        content_type="application/json",
        headers={"Origin": ORIGIN},
    )

    assert response.status_code == HTTPStatus.CREATED, response.content
    assert response["Access-Control-Allow-Origin"] == "*"
    assert Application.objects.count() == 1


def test_a_401_challenge_is_readable_cross_origin() -> None:
    response = Client().get("/api/v1/passports", headers={"Origin": ORIGIN})

    assert response.status_code == HTTPStatus.UNAUTHORIZED
    assert response["Access-Control-Allow-Origin"] == "*"
    exposed = allowed(response, "Access-Control-Expose-Headers")
    assert {"www-authenticate", "retry-after", "x-ratelimit-limit", "x-ratelimit-remaining",
            "x-ratelimit-reset", "x-request-id", "idempotent-replayed"} <= exposed
    assert 'scope="passports:read"' in response["WWW-Authenticate"]
    assert "Access-Control-Allow-Credentials" not in response


@pytest.mark.parametrize(
    ("method", "path", "status"),
    [
        ("GET", "/.well-known/oauth-authorization-server", HTTPStatus.OK),
        ("GET", "/.well-known/oauth-protected-resource/api/v1", HTTPStatus.OK),
        ("POST", "/api/oauth/token", HTTPStatus.BAD_REQUEST),
        ("POST", "/api/oauth/revoke", HTTPStatus.BAD_REQUEST),
        ("GET", "/api/v1/openapi.json", HTTPStatus.OK),
        ("GET", "/api/v1/no-such-endpoint", HTTPStatus.NOT_FOUND),
    ],
)
def test_responses_carry_the_headers_whatever_their_status(method, path, status) -> None:
    response = Client().generic(method, path, headers={"Origin": ORIGIN})

    assert response.status_code == status, response.content[:200]
    assert response["Access-Control-Allow-Origin"] == "*"
    assert "www-authenticate" in allowed(response, "Access-Control-Expose-Headers")
    assert "Access-Control-Allow-Credentials" not in response


def test_an_options_request_that_is_not_a_preflight_goes_to_the_route() -> None:
    # No Access-Control-Request-Method: an ordinary OPTIONS, which the gateway answers.
    response = Client().options("/api/v1/passports", headers={"Origin": ORIGIN})

    assert response.status_code != HTTPStatus.NO_CONTENT
    assert response["Content-Type"] == "application/json"
    assert response["Access-Control-Allow-Origin"] == "*"
