"""The OpenAPI document is true: every route, method, scope and error code is in it."""

import json
import re
from http import HTTPStatus

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.urls import URLResolver, get_resolver

from apikit.endpoints import ANY_METHOD, endpoints_of
from apikit.errors import ERROR_CODES
from gateway.management.commands.render_api_docs import api_docs_path
from gateway.openapi import build_document, render_markdown
from workspaces.scopes import all_scopes

# SPEC §4's table, copied here on purpose: the contract, not our own list, is the reference.
SPEC_ERROR_CODES = {
    "invalid_request", "missing_credentials", "invalid_credentials", "key_revoked",
    "key_expired", "key_paused", "environment_mismatch", "invalid_token", "overage_required",
    "insufficient_scope", "ip_not_allowed", "plan_limit_reached", "not_found",
    "idempotency_key_in_use", "idempotency_key_reused", "rate_limited", "quota_exceeded",
    "service_unavailable",
}
SPEC_SCOPES = {"passports:read", "passports:write", "audit:read", "keys:read", "offline_access"}


def api_routes() -> list[tuple[str, object]]:
    """(OpenAPI path, view) for every route of the URL conf under /api/v1/ (the JSON 404
    fallback excepted), found by walking the resolver."""
    routes = []

    def walk(patterns, prefix: str) -> None:
        for pattern in patterns:
            route = str(pattern.pattern)
            if isinstance(pattern, URLResolver):
                walk(pattern.url_patterns, prefix + route)
                continue
            full = "/" + prefix + route
            if full.startswith("/api/v1/") and route != "^":
                routes.append((re.sub(r"<(?:\w+:)?(\w+)>", r"{\1}", full), pattern.callback))

    walk(get_resolver().url_patterns, "")
    return routes


def test_every_api_route_method_and_scope_is_documented() -> None:
    document = build_document()
    routes = api_routes()
    assert {path for path, _ in routes} == set(document["paths"])
    for path, view in routes:
        endpoints = endpoints_of(view)
        documented = document["paths"][path]
        assert {m.lower() for m in endpoints if m != ANY_METHOD} == set(documented), path
        for method, endpoint in endpoints.items():
            operation = documented[method.lower()]
            if endpoint.public:
                assert operation["security"] == [], path
                continue
            needs = [endpoint.scope] if endpoint.scope else []
            assert operation["security"] == [{"apiKey": needs}, {"oauth2": needs}], path
            assert operation.get("x-required-scope") == endpoint.scope
            for status in ("401", "403", "429", "500"):
                assert status in operation["responses"], (path, method, status)


def test_every_error_code_is_documented() -> None:
    text = json.dumps(build_document())
    assert set(ERROR_CODES) >= SPEC_ERROR_CODES
    for code in ERROR_CODES:
        assert f'"{code}"' in text, code
    error_enum = build_document()["components"]["schemas"]["Error"]["properties"]["error"]
    assert set(error_enum["enum"]) == set(ERROR_CODES)


def test_scopes_come_from_the_registry() -> None:
    document = build_document()
    flows = document["components"]["securitySchemes"]["oauth2"]["flows"]
    documented = set(flows["authorizationCode"]["scopes"])
    assert documented == {scope.name for scope in all_scopes()}
    assert documented >= SPEC_SCOPES


def test_the_served_document_is_the_built_one(client) -> None:
    response = client.get("/api/v1/openapi.json")
    assert response.status_code == HTTPStatus.OK
    assert response.json() == json.loads(json.dumps(build_document()))


def test_docs_api_md_is_rendered_from_the_document() -> None:
    assert api_docs_path().read_text(encoding="utf-8") == render_markdown(build_document()), (
        "docs/api.md is stale: run `manage.py render_api_docs` and commit it."
    )


def test_render_api_docs_check_fails_on_a_stale_file(tmp_path, settings) -> None:
    settings.BASE_DIR = tmp_path
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "api.md").write_text("stale")
    with pytest.raises(CommandError, match="stale"):
        call_command("render_api_docs", "--check")
    call_command("render_api_docs")
    call_command("render_api_docs", "--check")
    assert "## Errors" in (tmp_path / "docs" / "api.md").read_text()


def test_the_document_is_valid_openapi_3_1() -> None:
    import jsonschema
    from schemathesis.specs.openapi.definitions import OPENAPI_31  # the official meta-schema

    errors = sorted(
        jsonschema.Draft202012Validator(OPENAPI_31).iter_errors(build_document()), key=str
    )
    assert not errors, [f"{list(e.absolute_path)}: {e.message}" for e in errors[:5]]
