"""RFC 8414 / RFC 9728 metadata and RFC 7591 dynamic client registration."""

from __future__ import annotations

import json
from http import HTTPStatus

import pytest
import time_machine
from django.test import Client
from oauth2_provider.models import AccessToken, Application

from audit.models import AuditEvent
from oauth.models import WorkspaceApp
from workspaces.scopes import all_scopes

from .conftest import REGISTER

MCP_LIKE = {
    "client_name": "Claude",
    "redirect_uris": ["http://localhost:33418/callback"],
    "grant_types": ["authorization_code", "refresh_token"],
    "response_types": ["code"],
    "token_endpoint_auth_method": "none",
    "scope": "passports:read offline_access",
}


def register(body, **extra) -> object:
    payload = body if isinstance(body, (str, bytes)) else json.dumps(body)
    return Client().post(REGISTER, payload, content_type="application/json", **extra)


def test_authorization_server_metadata_advertises_exactly_what_works(db) -> None:
    response = Client().get("/.well-known/oauth-authorization-server")

    assert response.status_code == HTTPStatus.OK
    data = response.json()
    base = "http://testserver"
    assert data["issuer"] == base
    assert data["authorization_endpoint"] == f"{base}/api/oauth/authorize"
    assert data["token_endpoint"] == f"{base}/api/oauth/token"
    assert data["revocation_endpoint"] == f"{base}/api/oauth/revoke"
    assert data["introspection_endpoint"] == f"{base}/api/oauth/introspect"
    assert data["registration_endpoint"] == f"{base}/api/oauth/register"
    assert data["response_types_supported"] == ["code"]
    assert data["grant_types_supported"] == ["authorization_code", "refresh_token"]
    assert data["code_challenge_methods_supported"] == ["S256"]
    assert data["token_endpoint_auth_methods_supported"] == [
        "none", "client_secret_basic", "client_secret_post",
    ]
    assert data["scopes_supported"] == sorted(s.name for s in all_scopes())
    assert "offline_access" in data["scopes_supported"]
    assert data["authorization_response_iss_parameter_supported"] is True


def test_protected_resource_metadata_names_the_api_and_its_issuer(db) -> None:
    response = Client().get("/.well-known/oauth-protected-resource")

    assert response.status_code == HTTPStatus.OK
    data = response.json()
    assert data["resource"] == "http://testserver/api/v1"
    assert data["authorization_servers"] == ["http://testserver"]
    assert data["bearer_methods_supported"] == ["header"]
    # The API's scopes; offline_access is the authorization server's (RFC 9728 §2).
    assert data["scopes_supported"] == sorted(
        s.name for s in all_scopes() if s.name != "offline_access"
    )
    assert "passports:read" in data["scopes_supported"]


def test_protected_resource_metadata_is_also_at_the_path_inserted_url(db) -> None:
    # RFC 9728 §3.1: for the resource <origin>/api/v1, the well-known suffix goes between the
    # origin and the path; clients that were not given a URL (MCP clients first) look there.
    root = Client().get("/.well-known/oauth-protected-resource")
    inserted = Client().get("/.well-known/oauth-protected-resource/api/v1")

    assert inserted.status_code == HTTPStatus.OK
    assert inserted.json() == root.json()
    assert inserted.json()["resource"] == "http://testserver/api/v1"  # §3.3: matches the URL


def test_metadata_uses_the_public_origin_behind_a_proxy(db, settings) -> None:
    settings.SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    settings.USE_X_FORWARDED_HOST = True
    settings.ALLOWED_HOSTS = ["gatehouse.example.com", "testserver"]
    proxied = {"HTTP_X_FORWARDED_PROTO": "https", "HTTP_X_FORWARDED_HOST": "gatehouse.example.com"}

    server = Client().get("/.well-known/oauth-authorization-server", **proxied).json()
    resource = Client().get("/.well-known/oauth-protected-resource", **proxied).json()

    assert server["issuer"] == "https://gatehouse.example.com"
    assert server["token_endpoint"] == "https://gatehouse.example.com/api/oauth/token"
    assert resource["resource"] == "https://gatehouse.example.com/api/v1"
    assert resource["authorization_servers"] == ["https://gatehouse.example.com"]


def test_endpoints_have_no_trailing_slash(db) -> None:
    assert Client().get("/.well-known/oauth-authorization-server/").status_code == 404
    assert Client().post("/api/oauth/token/").status_code == 404


# --- RFC 7591 ---------------------------------------------------------------------------------


def test_public_client_registers_without_a_secret(db) -> None:
    response = register(MCP_LIKE)

    assert response.status_code == HTTPStatus.CREATED
    data = response.json()
    assert data["token_endpoint_auth_method"] == "none"
    assert "client_secret" not in data
    assert "registration_access_token" not in data  # RFC 7592 management is not offered
    assert data["grant_types"] == ["authorization_code", "refresh_token"]
    app = Application.objects.get(client_id=data["client_id"])
    assert app.client_type == "public"
    assert app.authorization_grant_type == "authorization-code"
    assert app.registration_source == "dcr"
    assert app.redirect_uris == "http://localhost:33418/callback"
    assert not WorkspaceApp.objects.exists()
    assert AccessToken.objects.count() == 0  # no registration token either
    event = AuditEvent.objects.get(action="oauth_app.created")
    assert event.workspace is None and event.metadata["registration"] == "dynamic"


def test_confidential_client_gets_its_secret_once_and_it_is_stored_hashed(db) -> None:
    body = {**MCP_LIKE, "token_endpoint_auth_method": "client_secret_post"}
    data = register(body).json()

    assert data["token_endpoint_auth_method"] == "client_secret_post"
    assert len(data["client_secret"]) >= 64
    assert data["client_secret_expires_at"] == 0
    stored = Application.objects.get(client_id=data["client_id"]).client_secret
    assert data["client_secret"] not in stored
    assert stored.startswith(("argon2", "pbkdf2", "md5"))


def test_defaults_register_a_confidential_code_client(db) -> None:
    data = register({"redirect_uris": ["https://app.example.com/cb"]}).json()

    assert data["token_endpoint_auth_method"] == "client_secret_basic"
    assert data["response_types"] == ["code"]
    assert "client_secret" in data


@pytest.mark.parametrize(
    ("body", "error"),
    [
        ({**MCP_LIKE, "grant_types": ["client_credentials"]}, "invalid_client_metadata"),
        ({**MCP_LIKE, "grant_types": ["password"]}, "invalid_client_metadata"),
        ({**MCP_LIKE, "grant_types": ["implicit"]}, "invalid_client_metadata"),
        ({**MCP_LIKE, "grant_types": ["authorization_code", "client_credentials"]},
         "invalid_client_metadata"),
        ({**MCP_LIKE, "grant_types": ["refresh_token"]}, "invalid_client_metadata"),
        ({**MCP_LIKE, "grant_types": "authorization_code"}, "invalid_client_metadata"),
        ({**MCP_LIKE, "response_types": ["token"]}, "invalid_client_metadata"),
        ({**MCP_LIKE, "response_types": ["code", "token"]}, "invalid_client_metadata"),
        ({**MCP_LIKE, "token_endpoint_auth_method": "private_key_jwt"}, "invalid_client_metadata"),
        ({**MCP_LIKE, "client_name": "x" * 101}, "invalid_client_metadata"),
        ({**MCP_LIKE, "client_name": ["not", "a", "string"]}, "invalid_client_metadata"),
        ({**MCP_LIKE, "scope": "passports:read root"}, "invalid_client_metadata"),
        ({**MCP_LIKE, "redirect_uris": []}, "invalid_redirect_uri"),
        ({k: v for k, v in MCP_LIKE.items() if k != "redirect_uris"}, "invalid_redirect_uri"),
        ({**MCP_LIKE, "redirect_uris": "https://app.example.com/cb"}, "invalid_redirect_uri"),
        ({**MCP_LIKE, "redirect_uris": [42]}, "invalid_redirect_uri"),
        ({**MCP_LIKE, "redirect_uris": ["javascript:alert(1)"]}, "invalid_redirect_uri"),
        ({**MCP_LIKE, "redirect_uris": ["data:text/html,hi"]}, "invalid_redirect_uri"),
        ({**MCP_LIKE, "redirect_uris": ["https://app.example.com/cb#frag"]},
         "invalid_redirect_uri"),
        ({**MCP_LIKE, "redirect_uris": ["http://app.example.com/cb"]}, "invalid_redirect_uri"),
        ({**MCP_LIKE, "redirect_uris": ["/relative/callback"]}, "invalid_redirect_uri"),
        ({**MCP_LIKE, "redirect_uris": ["https://*.example.com/cb"]}, "invalid_redirect_uri"),
        ({**MCP_LIKE, "redirect_uris": ["https://user:pw@app.example.com/cb"]},
         "invalid_redirect_uri"),
        ({**MCP_LIKE, "redirect_uris": ["https://app.example.com:99999/cb"]},
         "invalid_redirect_uri"),
        ({**MCP_LIKE, "redirect_uris": ["https://app.example.com/" + "a" * 2001]},
         "invalid_redirect_uri"),
        ({**MCP_LIKE, "redirect_uris": [f"https://app.example.com/{i}" for i in range(11)]},
         "invalid_redirect_uri"),
        ("not json", "invalid_client_metadata"),
        ("[1, 2, 3]", "invalid_client_metadata"),
        (b"\xff\xfe", "invalid_client_metadata"),
    ],
)
def test_bad_registration_bodies_are_refused(db, body, error) -> None:
    response = register(body)

    assert response.status_code == HTTPStatus.BAD_REQUEST, response.content
    assert response.json()["error"] == error
    assert response.json()["error_description"]
    assert Application.objects.count() == 0


def test_huge_metadata_is_refused(db) -> None:
    body = {**MCP_LIKE, "client_uri": "https://app.example.com/" + "a" * 20_000}

    response = register(body)

    assert response.status_code == HTTPStatus.BAD_REQUEST
    assert response.json()["error"] == "invalid_client_metadata"
    assert Application.objects.count() == 0


def test_registration_is_rate_limited_per_ip(db, settings) -> None:
    settings.GATEHOUSE_OAUTH_REGISTER_RATE = "2/m"

    statuses = [register(MCP_LIKE).status_code for _ in range(3)]
    other_ip = register(MCP_LIKE, REMOTE_ADDR="10.9.8.7")

    assert statuses == [HTTPStatus.CREATED, HTTPStatus.CREATED, HTTPStatus.TOO_MANY_REQUESTS]
    assert other_ip.status_code == HTTPStatus.CREATED
    assert Application.objects.count() == 3


def test_token_endpoint_is_rate_limited_per_ip(db, settings) -> None:
    settings.GATEHOUSE_OAUTH_TOKEN_RATE = "3/m"
    data = {"grant_type": "authorization_code", "code": "guess", "client_id": "guess"}

    statuses = [Client().post("/api/oauth/token", data).status_code for _ in range(4)]

    assert statuses[:3] == [HTTPStatus.UNAUTHORIZED] * 3
    assert statuses[3] == HTTPStatus.TOO_MANY_REQUESTS


@pytest.mark.parametrize("path", ["/api/oauth/revoke", "/api/oauth/introspect"])
def test_revocation_and_introspection_have_the_token_rate_each(db, settings, path) -> None:
    settings.GATEHOUSE_OAUTH_TOKEN_RATE = "2/m"
    data = {"token": "gat_guess", "client_id": "guess"}
    client = Client()

    statuses = [client.post(path, data).status_code for _ in range(3)]
    token_endpoint = client.post("/api/oauth/token", {"grant_type": "authorization_code"})

    assert statuses == [HTTPStatus.UNAUTHORIZED] * 2 + [HTTPStatus.TOO_MANY_REQUESTS]
    assert token_endpoint.status_code == HTTPStatus.BAD_REQUEST  # counted on its own


@pytest.mark.parametrize(
    "body",
    [
        "[" * 15_000,  # unclosed: json raises RecursionError, not ValueError
        '{"client_name": ' + "[" * 15_000,
        '{"redirect_uris": ["https://app.example.com/cb"], "x": ' + "[" * 10_001,
    ],
    ids=["array", "in-a-member", "after-good-members"],
)
def test_deeply_nested_json_is_a_clear_400(db, body) -> None:
    response = register(body)

    assert response.status_code == HTTPStatus.BAD_REQUEST, response.content[:300]
    assert response.json()["error"] == "invalid_client_metadata"
    assert Application.objects.count() == 0
    assert not AuditEvent.objects.filter(action="oauth_app.created").exists()


@pytest.mark.parametrize(
    "body",
    [
        {**MCP_LIKE, "client_name": "\ud800"},
        {**MCP_LIKE, "client_name": "Claude \udfff"},
        {**MCP_LIKE, "redirect_uris": ["http://localhost:33418/\udc00"]},
        {**MCP_LIKE, "client_uri": "https://app.example.com/\ud83d"},
        {**MCP_LIKE, "\ud800": "a surrogate in a member name"},
    ],
    ids=["name", "name-tail", "redirect-uri", "ignored-member", "member-name"],
)
def test_lone_surrogates_are_a_clear_400(db, body) -> None:
    # json.dumps writes the lone surrogate as the escape `\udXXX`, which is valid JSON.
    response = register(body)

    assert response.status_code == HTTPStatus.BAD_REQUEST, response.content[:300]
    assert response.json()["error"] == "invalid_client_metadata"
    assert "surrogate" in response.json()["error_description"]
    assert Application.objects.count() == 0
    assert not AuditEvent.objects.filter(action="oauth_app.created").exists()


def test_a_paired_surrogate_is_an_ordinary_character(db) -> None:
    response = register({**MCP_LIKE, "client_name": "Claude \U0001F916"})  # escaped as a pair

    assert response.status_code == HTTPStatus.CREATED, response.content
    assert Application.objects.get().name == "Claude \U0001F916"


def test_registration_retry_after_is_when_the_window_really_opens(db, settings) -> None:
    # django-ratelimit's windows are fixed per address and offset by a hash of it, so the
    # seconds left are anywhere in the window; a constant cannot be right. (A minute, not an
    # hour: Django's DatabaseCache re-sets a counter's expiry to 300 s on every increment.)
    settings.GATEHOUSE_OAUTH_REGISTER_RATE = "2/m"
    with time_machine.travel(1_800_000_000, tick=False) as clock:
        assert [register(MCP_LIKE).status_code for _ in range(2)] == [HTTPStatus.CREATED] * 2
        refused = register(MCP_LIKE)
        assert refused.status_code == HTTPStatus.TOO_MANY_REQUESTS
        retry_after = int(refused["Retry-After"])
        assert 1 <= retry_after <= 60
        assert f"Retry in {retry_after} seconds" in refused.json()["error_description"]

        clock.shift(retry_after - 1)
        last_second = register(MCP_LIKE)
        assert last_second.status_code == HTTPStatus.TOO_MANY_REQUESTS
        assert last_second["Retry-After"] == "1"

        clock.shift(1)
        assert register(MCP_LIKE).status_code == HTTPStatus.CREATED
    assert Application.objects.count() == 3


@pytest.mark.parametrize(
    ("path", "error"),
    [
        ("/api/oauth/register", "invalid_client_metadata"),
        ("/api/oauth/token", "invalid_request"),
        ("/api/oauth/revoke", "invalid_request"),
        ("/api/oauth/introspect", "invalid_request"),
    ],
)
def test_a_malformed_multipart_body_is_a_clear_400(db, path, error) -> None:
    # Found by the fuzz test: Django's multipart parser raised on a malformed body (500), and
    # on registration it consumed the stream the view then read (RawPostDataException).
    body = b"--x\r\n" + b"A" * 9000 + b"\r\n--x--\r\n"  # a part header over Django's limit
    response = Client().generic("POST", path, body, content_type="multipart/form-data; boundary=x")

    assert response.status_code == HTTPStatus.BAD_REQUEST, response.content[:300]
    assert response.json()["error"] == error
    assert Application.objects.count() == 0
