"""Scopes and methods declared per endpoint (`@api_endpoint`) and enforced by the gateway."""

import re
from http import HTTPStatus

import pytest
from django.test import Client
from django.urls import get_resolver

from apikit.endpoints import ANY_METHOD, endpoints_of
from passports.models import Passport
from workspaces.scopes import get_scope

pytestmark = pytest.mark.django_db

PASSPORT = {"gtin": "4006381333931", "serial_number": "SN-1", "product_name": "Drill"}
PSP = "psp_" + "A" * 22

# (method, path, scope it needs)
SCOPED = [
    ("GET", "/api/v1/passports", "passports:read"),
    ("POST", "/api/v1/passports", "passports:write"),
    ("GET", f"/api/v1/passports/{PSP}", "passports:read"),
    ("PATCH", f"/api/v1/passports/{PSP}", "passports:write"),
    ("DELETE", f"/api/v1/passports/{PSP}", "passports:write"),
    ("GET", "/api/v1/keys", "keys:read"),
    ("GET", "/api/v1/audit-events", "audit:read"),
]


@pytest.mark.parametrize(("method", "path", "scope"), SCOPED)
def test_missing_scope_is_403_insufficient_scope(method, path, scope, make_key, api) -> None:
    others = [s for s in ("audit:read", "keys:read", "passports:read", "passports:write")
              if s != scope]
    _key, token = make_key(others)
    response = api(token).generic(
        method, path, '{"product_name": "x"}', content_type="application/json"
    )
    assert response.status_code == HTTPStatus.FORBIDDEN
    body = response.json()
    assert body["error"] == "insufficient_scope"
    assert body["required_scope"] == scope
    assert scope in body["message"]
    challenge = response["WWW-Authenticate"]
    assert challenge.startswith('Bearer realm="gatehouse"')
    assert 'error="insufficient_scope"' in challenge
    assert f'scope="{scope}"' in challenge
    assert "resource_metadata=" in challenge


def test_read_scope_cannot_write(make_key, api) -> None:
    _key, token = make_key(["passports:read"])
    response = api(token).post("/api/v1/passports", PASSPORT, content_type="application/json")
    assert response.status_code == HTTPStatus.FORBIDDEN
    assert response.json()["required_scope"] == "passports:write"
    assert not Passport.objects.exists()


def test_me_needs_no_particular_scope(make_key, api) -> None:
    _key, token = make_key(["keys:read"])
    assert api(token).get("/api/v1/me").status_code == HTTPStatus.OK


WRONG_METHODS = [  # HEAD is answered wherever GET is (tests/gateway/test_http_edges.py)
    ("POST", "/api/v1/me", "GET, HEAD"),
    ("DELETE", "/api/v1/passports", "GET, HEAD, POST"),
    ("PUT", "/api/v1/passports", "GET, HEAD, POST"),
    ("POST", f"/api/v1/passports/{PSP}", "DELETE, GET, HEAD, PATCH"),
    ("PUT", f"/api/v1/passports/{PSP}", "DELETE, GET, HEAD, PATCH"),
    ("POST", "/api/v1/keys", "GET, HEAD"),
    ("DELETE", "/api/v1/audit-events", "GET, HEAD"),
    ("POST", "/api/v1/openapi.json", "GET, HEAD"),
    ("OPTIONS", "/api/v1/me", "GET, HEAD"),
]


@pytest.mark.parametrize(("method", "path", "allow"), WRONG_METHODS)
def test_wrong_method_is_405_with_allow(method, path, allow, client_api) -> None:
    response = client_api.generic(method, path)
    assert response.status_code == HTTPStatus.METHOD_NOT_ALLOWED
    assert response["Allow"] == allow
    assert response.json()["error"] == "method_not_allowed"
    assert allow.split(", ")[0] in response.json()["message"]


def test_csrf_does_not_apply_to_token_calls(members, token) -> None:
    # A browser session next to the token changes nothing: the API authenticates the token only.
    client = Client(enforce_csrf_checks=True, headers={"Authorization": f"Bearer {token}"})
    client.force_login(members["owner"])
    response = client.post("/api/v1/passports", PASSPORT, content_type="application/json")
    assert response.status_code == HTTPStatus.CREATED


def test_a_dashboard_session_is_not_an_api_credential(client_for) -> None:
    response = client_for("owner").get("/api/v1/me")
    assert response.status_code == HTTPStatus.UNAUTHORIZED
    assert response.json()["error"] == "missing_credentials"


def _api_routes():
    """(route, view) for every route under /api/v1/."""
    for pattern in get_resolver().url_patterns:
        if str(pattern.pattern) == "api/v1/":
            for route in pattern.url_patterns:
                yield str(route.pattern), route.callback


def test_every_api_route_is_declared_and_its_scopes_are_registered() -> None:
    routes = list(_api_routes())
    assert len(routes) >= 7
    for route, view in routes:
        endpoints = endpoints_of(view)
        assert endpoints, f"{route} is not declared with @api_endpoint"
        assert getattr(view, "csrf_exempt", False), route
        for method, endpoint in endpoints.items():
            assert method == ANY_METHOD or re.fullmatch(r"[A-Z]+", method)
            if endpoint.scope is not None:
                assert get_scope(endpoint.scope) is not None, (route, endpoint.scope)
            if endpoint.public:
                assert route in {"openapi.json", "leaked-credentials", "^"}, route
