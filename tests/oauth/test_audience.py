"""RFC 8707 resource indicators and audience binding (SPEC §7, MCP "Token Audience Binding"):
the authorization and token endpoints accept only this deployment's `/api/v1` and `/mcp`, every
token is bound to one of them, refresh keeps it, and `/api/v1` refuses a token bound elsewhere."""

from __future__ import annotations

from http import HTTPStatus

import pytest
from django.test import Client
from oauth2_provider.models import AccessToken, RefreshToken

from oauth.models import Connection

from .conftest import (
    API_RESOURCE,
    AUTHORIZE,
    TOKEN,
    authorize_params,
    pkce_pair,
    query_of,
)

MCP_RESOURCE = "http://testserver/mcp"
FOREIGN = [
    "https://evil.example/mcp",
    "https://evil.example/api/v1",
    "http://testserver.evil.example/api/v1",
    "http://testserver:8080/api/v1",  # another port is another origin
    "https://testserver/api/v1",  # another scheme too
    "http://testserver/api/v1/me",  # a sub-path is not the resource
    "http://testserver/api",
    "http://testserver/",
    "http://testserver/api/v1?x=1",
    "http://user@testserver/api/v1",
    "urn:gatehouse:api",
    "not a uri",
]


def me(access_token: str):
    return Client().get("/api/v1/me", HTTP_AUTHORIZATION=f"Bearer {access_token}")


def refresh(app, refresh_token: str, **extra: str):
    data = {"grant_type": "refresh_token", "refresh_token": refresh_token, **extra}
    return Client().post(TOKEN, data, **app.token_auth())


# --- Token endpoint ---------------------------------------------------------------------------


@pytest.mark.parametrize("resource", FOREIGN)
def test_token_endpoint_refuses_a_foreign_resource(
    client_for, oauth_app, authorize, exchange, resource
) -> None:
    authorized = authorize(client_for("editor"), oauth_app)

    response = exchange(oauth_app, authorized, resource=resource)

    assert response.status_code == HTTPStatus.BAD_REQUEST
    assert response.json()["error"] == "invalid_target"
    assert "http://testserver/api/v1 and http://testserver/mcp" in response.json()[
        "error_description"
    ]
    assert AccessToken.objects.count() == 0
    assert RefreshToken.objects.count() == 0


@pytest.mark.parametrize(
    "resource",
    ["http://testserver/api/v1", "HTTP://TestServer/api/v1", "http://testserver:80/api/v1/"],
)
def test_token_endpoint_normalises_and_stores_the_audience(
    client_for, oauth_app, authorize, exchange, resource
) -> None:
    authorized = authorize(client_for("editor"), oauth_app)

    response = exchange(oauth_app, authorized, resource=resource)

    assert response.status_code == HTTPStatus.OK, response.content
    assert AccessToken.objects.get().resource == [API_RESOURCE]
    assert RefreshToken.objects.get().resource == [API_RESOURCE]
    assert me(response.json()["access_token"]).status_code == HTTPStatus.OK


def test_a_token_without_resource_is_bound_to_the_api(oauth_app, tokens_for) -> None:
    body = tokens_for(oauth_app)

    assert AccessToken.objects.get().resource == [API_RESOURCE]
    assert me(body["access_token"]).status_code == HTTPStatus.OK


def test_a_token_for_mcp_is_refused_by_the_api(client_for, oauth_app, authorize, exchange) -> None:
    authorized = authorize(client_for("editor"), oauth_app)

    response = exchange(oauth_app, authorized, resource=MCP_RESOURCE)

    assert response.status_code == HTTPStatus.OK, response.content
    assert AccessToken.objects.get().resource == [MCP_RESOURCE]
    refused = me(response.json()["access_token"])
    assert refused.status_code == HTTPStatus.UNAUTHORIZED
    assert refused.json()["error"] == "invalid_token"
    assert "another resource" in refused.json()["message"]
    assert 'error="invalid_token"' in refused["WWW-Authenticate"]


def test_two_resources_in_one_token_request_are_refused(
    client_for, oauth_app, authorize, exchange
) -> None:
    authorized = authorize(client_for("editor"), oauth_app)

    response = exchange(oauth_app, authorized, resource=[API_RESOURCE, MCP_RESOURCE])

    assert response.status_code == HTTPStatus.BAD_REQUEST
    assert response.json()["error"] == "invalid_target"
    assert AccessToken.objects.count() == 0


# --- Authorization endpoint --------------------------------------------------------------------


@pytest.mark.parametrize("resource", FOREIGN)
def test_authorization_endpoint_refuses_a_foreign_resource(editor, oauth_app, resource) -> None:
    _, challenge = pkce_pair()

    response = editor.get(AUTHORIZE, authorize_params(oauth_app, challenge, resource=resource))

    # RFC 8707 §2: an error response to the client (or Gatehouse's own error page for a client
    # that registered itself); never the consent screen.
    assert response.status_code in (HTTPStatus.FOUND, HTTPStatus.BAD_REQUEST)
    if response.status_code == HTTPStatus.FOUND:
        assert query_of(response["Location"])["error"] == "invalid_target"
    else:
        assert "invalid_target" in response.content.decode()


def test_a_code_for_mcp_cannot_be_exchanged_for_the_api(
    client_for, oauth_app, authorize, exchange
) -> None:
    authorized = authorize(client_for("editor"), oauth_app, resource="HTTP://testserver:80/mcp")

    widened = exchange(oauth_app, authorized, resource=API_RESOURCE)

    assert widened.status_code == HTTPStatus.BAD_REQUEST
    assert widened.json()["error"] == "invalid_target"
    assert AccessToken.objects.count() == 0
    # The code was not used up by the refused request: the right one still works.
    response = exchange(oauth_app, authorized)
    assert response.status_code == HTTPStatus.OK, response.content
    assert AccessToken.objects.get().resource == [MCP_RESOURCE]


def test_a_code_for_both_resources_needs_the_token_request_to_name_one(
    client_for, oauth_app, authorize, exchange
) -> None:
    verifier, challenge = pkce_pair()
    client = client_for("editor")
    params = {**authorize_params(oauth_app, challenge), "resource": [API_RESOURCE, MCP_RESOURCE]}
    page = client.get(AUTHORIZE, params)
    assert page.status_code == HTTPStatus.OK
    assert page.context["resource"] == f"{API_RESOURCE} {MCP_RESOURCE}"
    data = {**page.context["fields"], "scope": page.context["scope"], "decision": "allow",
            "workspace": "acme", "resource": page.context["resource"]}
    code = query_of(client.post(AUTHORIZE, data)["Location"])["code"]
    token_request = {"grant_type": "authorization_code", "code": code, "code_verifier": verifier,
                     "redirect_uri": oauth_app.redirect_uri}

    unnamed = Client().post(TOKEN, token_request, **oauth_app.token_auth())
    named = Client().post(TOKEN, {**token_request, "resource": MCP_RESOURCE},
                          **oauth_app.token_auth())

    assert unnamed.status_code == HTTPStatus.BAD_REQUEST
    assert unnamed.json()["error"] == "invalid_target"
    assert named.status_code == HTTPStatus.OK, named.content
    assert AccessToken.objects.get().resource == [MCP_RESOURCE]


# --- Refresh ---------------------------------------------------------------------------------


@pytest.mark.parametrize("resource", [*FOREIGN[:2], MCP_RESOURCE])
def test_refresh_cannot_change_the_audience(oauth_app, tokens_for, resource) -> None:
    body = tokens_for(oauth_app)

    response = refresh(oauth_app, body["refresh_token"], resource=resource)

    assert response.status_code == HTTPStatus.BAD_REQUEST
    assert response.json()["error"] == "invalid_target"
    # Nothing rotated: the refresh token and its access token still work.
    assert RefreshToken.objects.get().revoked is None
    assert me(body["access_token"]).status_code == HTTPStatus.OK
    assert refresh(oauth_app, body["refresh_token"]).status_code == HTTPStatus.OK


def test_refresh_keeps_the_audience(client_for, oauth_app, authorize, exchange) -> None:
    authorized = authorize(client_for("editor"), oauth_app, resource=MCP_RESOURCE)
    body = exchange(oauth_app, authorized).json()

    response = refresh(oauth_app, body["refresh_token"])
    same = refresh(oauth_app, response.json()["refresh_token"], resource=MCP_RESOURCE)

    assert response.status_code == HTTPStatus.OK, response.content
    assert same.status_code == HTTPStatus.OK, same.content
    assert me(same.json()["access_token"]).status_code == HTTPStatus.UNAUTHORIZED
    live = AccessToken.objects.get()
    assert live.resource == [MCP_RESOURCE]
    assert RefreshToken.objects.get(revoked__isnull=True).resource == [MCP_RESOURCE]


# --- Tokens stored before audience binding ------------------------------------------------------


def test_a_token_from_before_audience_binding_counts_as_the_apis(oauth_app, tokens_for) -> None:
    body = tokens_for(oauth_app)
    AccessToken.objects.update(resource=[])
    RefreshToken.objects.update(resource=[])

    assert me(body["access_token"]).status_code == HTTPStatus.OK
    to_mcp = refresh(oauth_app, body["refresh_token"], resource=MCP_RESOURCE)
    assert to_mcp.status_code == HTTPStatus.BAD_REQUEST
    assert to_mcp.json()["error"] == "invalid_target"
    response = refresh(oauth_app, body["refresh_token"])
    assert response.status_code == HTTPStatus.OK, response.content
    assert AccessToken.objects.get().resource == [API_RESOURCE]


def test_a_token_minted_for_another_server_before_the_fix_is_refused(
    oauth_app, tokens_for
) -> None:
    body = tokens_for(oauth_app)
    AccessToken.objects.update(resource=["https://evil.example/mcp"])
    RefreshToken.objects.update(resource=["https://evil.example/mcp"])

    assert me(body["access_token"]).status_code == HTTPStatus.UNAUTHORIZED
    response = refresh(oauth_app, body["refresh_token"])
    assert response.status_code == HTTPStatus.BAD_REQUEST
    assert response.json()["error"] == "invalid_target"
    assert Connection.objects.active().count() == 1  # refused, not treated as an attack


@pytest.fixture
def editor(client_for) -> Client:
    return client_for("editor")
