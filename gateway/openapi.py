"""The OpenAPI 3.1 document of `/api/v1/` (served at `GET /api/v1/openapi.json`, public),
assembled from what each app declares next to its endpoints.

Each app's `openapi.py` (`passports`, `apikeys`, `audit`, and this module for the gateway's own
`me`, `leaked-credentials` and this document) declares its schemas and operations into an
`apikit.openapi.OpenApiRegistry`; `build_document` adds the API's description and security
schemes and lists the paths in the order of the URL conf. Kept true by tests:
`tests/api/test_openapi.py` walks the URL conf and checks every route, method and scope against
the document and every SPEC §4 error code is in it; schemathesis checks the live API against it;
`docs/api.md` is rendered from it (`manage.py render_api_docs`) and a test fails when the
committed file is stale. Scopes and error codes come from their registries
(`workspaces.scopes`, `apikit.errors.ERROR_CODES`).
"""

from __future__ import annotations

import re
from typing import Any

from django.http import HttpRequest, JsonResponse
from django.urls import URLResolver, get_resolver

from apikeys import openapi as apikeys_openapi
from apikit.endpoints import api_endpoint
from apikit.errors import ERROR_CODES
from apikit.openapi import (
    TIMESTAMP,
    OpenApiRegistry,
    authenticated_operation,
    json_response,
    object_schema,
    response_ref,
    schema_ref,
)
from audit import openapi as audit_openapi
from passports import openapi as passports_openapi
from workspaces.scopes import all_scopes

from .leaks import MAX_CREDENTIAL_LENGTH, MAX_CREDENTIALS, MAX_URL_LENGTH, REPORTS_PER_MINUTE
from .secret_scanning import MAX_FIELD_LENGTH as MAX_GITHUB_FIELD_LENGTH

API_VERSION = "1.0.0"


def _declare_gateway(api: OpenApiRegistry) -> None:
    """The gateway's own endpoints (`gateway/api.py`): who is calling, leaked-credential intake
    and this document."""
    api.schema("LeakedCredentialList", {
        "type": "array",
        "minItems": 1,
        "maxItems": MAX_CREDENTIALS,
        "items": {"type": "string", "minLength": 1, "maxLength": MAX_CREDENTIAL_LENGTH},
        "description": "Strings found in the wild, each as found (surrounding whitespace "
                       "is ignored); anything that is not a Gatehouse credential is "
                       "ignored.",
        "examples": [["gk_prod_0123456789abcdefghijABCDEFGHIJ0a1B2c"]],
    })
    api.schema("LeakReport", object_schema(
        {
            "credentials": schema_ref("LeakedCredentialList"),
            "url": {"type": "string", "maxLength": MAX_URL_LENGTH,
                    "description": "Where the strings were found (kept in the audit log, "
                                   "with any credential in it redacted)."},
        },
        ["credentials"],
    ))
    github_text = {"type": "string", "maxLength": MAX_GITHUB_FIELD_LENGTH}
    api.schema("GitHubSecretScanningReport", {
        "type": "array",
        "minItems": 1,
        "maxItems": MAX_CREDENTIALS,
        "description": "GitHub's secret-scanning partner format, signed with the "
                       "`Github-Public-Key-Identifier` and `Github-Public-Key-Signature` "
                       "headers (ECDSA P-256 with SHA-256 over the raw body, base64 DER). "
                       "Other members of each match are ignored.",
        "items": {
            "type": "object",
            "required": ["token"],
            "properties": {
                "token": {"type": "string", "minLength": 1,
                          "maxLength": MAX_CREDENTIAL_LENGTH},
                "type": github_text, "url": github_text, "source": github_text,
            },
        },
    })
    api.schema("GitHubSecretScanningFeedback", {
        "type": "array",
        "description": "One entry per reported match, in order: only for a report whose "
                       "signature verified against a configured GitHub key.",
        "items": object_schema(
            {
                "token_hash": {"type": "string", "pattern": "^[0-9a-f]{64}$",
                               "description": "SHA-256 of the token, hex."},
                "token_type": {"type": "string"},
                "label": {"enum": ["true_positive", "false_positive"],
                          "description": "`true_positive`: a credential Gatehouse issued "
                                         "(now revoked if it was live)."},
            },
            ["token_hash", "token_type", "label"],
        ),
    })
    api.schema("LeakAccepted", object_schema(
        {"status": {"const": "accepted"}, "message": {"type": "string"}},
        ["status", "message"],
    ))
    api.schema("Workspace", object_schema(
        {"slug": {"type": "string", "description": "As in the dashboard's `/w/<slug>/`."},
         "name": {"type": "string"}},
        ["slug", "name"],
    ))
    api.schema("Principal", object_schema(
        {
            "kind": {"type": "string", "enum": ["api_key", "oauth"]},
            "id": {"type": "string", "description": "key_… or an OAuth client id"},
            "name": {"type": "string", "description": "The key's or the app's name."},
        },
        ["kind", "id", "name"],
    ))
    api.schema("Plan", object_schema(
        {
            "code": {"type": "string", "description": "free, basic, pro …"},
            "name": {"type": "string"},
            "writes_per_day": {"type": ["integer", "null"],
                               "description": "Null: unlimited."},
            "passport_reads_per_day": {"type": ["integer", "null"],
                                       "description": "Null: unlimited."},
            "passports_limit": {"type": ["integer", "null"],
                                "description": "Passports included; null: unlimited."},
            "active_keys_limit": {"type": "integer"},
        },
        ["code", "name", "writes_per_day", "passport_reads_per_day",
         "passports_limit", "active_keys_limit"],
    ))
    api.schema("Overage", object_schema(
        {
            "allowed": {"type": "boolean", "description": "The plan offers overage."},
            "enabled": {"type": "boolean",
                        "description": "An owner turned it on: passports past "
                                       "`passports_limit` are created (not 402) and counted."},
            "price_cents": {"type": ["integer", "null"],
                            "description": "Price per overage passport, in cents."},
            "units_today": {"type": "integer", "minimum": 0,
                            "description": "Passports created past the cap today (UTC)."},
            "units_last_30_days": {"type": "integer", "minimum": 0},
        },
        ["allowed", "enabled", "price_cents", "units_today", "units_last_30_days"],
    ))
    api.schema("Me", object_schema(
        {
            "workspace": schema_ref("Workspace"),
            "principal": schema_ref("Principal"),
            "scopes": {"type": "array", "items": {"type": "string"},
                       "description": "Effective scopes: granted ∩ the user's role (OAuth)."},
            "plan": schema_ref("Plan"),
            "overage": schema_ref("Overage"),
        },
        ["workspace", "principal", "scopes", "plan", "overage"],
    ))

    api.operation("/api/v1/me", "get", authenticated_operation(
        operation_id="getMe", summary="Who is calling", tag="Account", scope=None,
        ok={"200": json_response("Me")},
        description="The caller's workspace, credential, effective scopes, plan and overage "
                    "(passports created past the plan's cap, per UTC day).",
    ))
    api.schema("Usage", object_schema(
        {
            "plan": object_schema(
                {"code": {"type": "string"}, "name": {"type": "string"}}, ["code", "name"]
            ),
            "budgets": {"type": "array", "items": object_schema(
                {
                    "budget": {"type": "string", "enum": ["writes", "passport_reads"]},
                    "limit": {"type": ["integer", "null"],
                              "description": "null: unlimited on this plan."},
                    "used": {"type": "integer"},
                    "remaining": {"type": ["integer", "null"]},
                    "resets_at": TIMESTAMP,
                },
                ["budget", "limit", "used", "remaining", "resets_at"],
            )},
        },
        ["plan", "budgets"],
    ))
    api.operation("/api/v1/usage", "get", authenticated_operation(
        operation_id="getUsage", summary="Usage and budgets", tag="Account", scope=None,
        ok={"200": json_response("Usage")},
        description="The workspace's daily budgets (writes, passport reads) and today's use "
                    "of them; they reset at 00:00 UTC (SPEC §5).",
    ))
    api.operation("/api/v1/leaked-credentials", "post", {
        "operationId": "reportLeakedCredentials",
        "summary": "Report leaked credentials",
        "tags": ["Security"],
        "security": [],
        "description": (
            "Public, for secret scanners and anyone who finds a Gatehouse credential in "
            "the wild (like GitHub's credential-revocation API). Any live API key "
            "(`gk_…`), OAuth access token (`gat_…`) or refresh token (`grt_…`) among the "
            "strings is revoked at once (an OAuth token ends its whole grant), recorded "
            "in the audit log with reason `leaked`, your IP address and `url`, and shown "
            "to the workspace's admins. The answer is always the same 202: it never says "
            "whether a string was live — except to GitHub's secret scanning: a report in its "
            "partner format signed by a configured GitHub key gets its feedback (200). "
            f"At most {REPORTS_PER_MINUTE} reports a minute per "
            "IP address."
        ),
        "requestBody": {
            "required": True,
            "content": {"application/json": {"schema": {"oneOf": [
                schema_ref("LeakedCredentialList"),
                schema_ref("LeakReport"),
                schema_ref("GitHubSecretScanningReport"),
            ]}}},
        },
        "parameters": [
            {"name": name, "in": "header", "required": False,
             "schema": {"type": "string"}, "description": text}
            for name, text in (
                ("Github-Public-Key-Identifier",
                 "GitHub secret scanning: which configured key signed the body."),
                ("Github-Public-Key-Signature",
                 "GitHub secret scanning: base64 DER ECDSA P-256/SHA-256 signature of the "
                 "raw body. Missing, unknown or invalid: the report is handled as an "
                 "anonymous one (202)."),
            )
        ],
        "responses": {
            "200": json_response(
                "GitHubSecretScanningFeedback",
                "A verified GitHub secret-scanning report: its feedback.",
            ),
            "202": json_response("LeakAccepted", "Accepted; the same answer whatever was sent."),
            "400": response_ref("BadRequest"),
            "413": response_ref("TooLarge"),
            "415": response_ref("UnsupportedMediaType"),
            "429": response_ref("TooManyRequests"),
            "500": response_ref("ServerError"),
            "503": response_ref("ServiceUnavailable"),
        },
    })
    api.operation("/api/v1/openapi.json", "get", {
        "operationId": "getOpenApi",
        "summary": "This document",
        "tags": ["Meta"],
        "security": [],
        "responses": {
            "200": {
                "description": "The OpenAPI 3.1 document.",
                "content": {"application/json": {"schema": {"type": "object"}}},
            },
        },
    })


def _declared() -> OpenApiRegistry:
    """A fresh registry with every app's declarations. Their order is the order of the
    document's components (and of docs/api.md's Objects)."""
    api = OpenApiRegistry()
    passports_openapi.declare(api)
    _declare_gateway(api)
    apikeys_openapi.declare(api)
    audit_openapi.declare(api)
    return api


def _routes() -> list[str]:
    """Every route of the URL conf, in order, in OpenAPI form (`/api/v1/passports/{id}`)."""
    routes: list[str] = []

    def walk(patterns: list, prefix: str) -> None:
        for pattern in patterns:
            route = str(pattern.pattern)
            if isinstance(pattern, URLResolver):
                walk(pattern.url_patterns, prefix + route)
            else:
                routes.append(re.sub(r"<(?:\w+:)?(\w+)>", r"{\1}", "/" + prefix + route))

    walk(get_resolver().url_patterns, "")
    return routes


def _paths(api: OpenApiRegistry) -> dict[str, Any]:
    """The declared operations in the order of the URL conf (`gateway/urls.py`)."""
    routes = _routes()
    unrouted = set(api.operations) - set(routes)
    if unrouted:
        raise ValueError(f"Operations declared for paths with no route: {sorted(unrouted)}.")
    return {path: api.operations[path] for path in routes if path in api.operations}


def build_document() -> dict[str, Any]:
    api = _declared()
    paths = _paths(api)
    tags = dict.fromkeys(
        tag for operations in paths.values() for op in operations.values() for tag in op["tags"]
    )
    scopes = {scope.name: scope.description for scope in all_scopes()}
    key_scopes = ", ".join(f"`{s.name}`" for s in all_scopes() if not s.oauth_only)
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "Gatehouse API",
            "version": API_VERSION,
            "description": (
                "The JSON API of a Gatehouse workspace. Authenticate every call except this "
                "document with `Authorization: Bearer <token>` (or `ApiKey <token>`): an API "
                "key (`gk_…`) from the dashboard or an OAuth access token (`gat_…`). Everything "
                "is scoped to the credential's workspace; another workspace's ids answer 404. "
                "Every error is `{\"error\": code, \"message\": sentence}`."
            ),
        },
        "servers": [{"url": "/"}],
        "tags": [{"name": tag} for tag in tags],
        "paths": paths,
        "components": {
            "securitySchemes": {
                "apiKey": {
                    "type": "http",
                    "scheme": "bearer",
                    "bearerFormat": "gk_<prod|stg|dev>_<36 characters>",
                    "description": "An API key from the dashboard, sent as "
                                   "`Authorization: Bearer gk_…` (or `ApiKey gk_…`). "
                                   f"Key scopes: {key_scopes}.",
                    "x-api-key-scopes": [s.name for s in all_scopes() if not s.oauth_only],
                },
                "oauth2": {
                    "type": "oauth2",
                    "description": "Authorization code with PKCE (S256). The token's "
                                   "effective scopes are those granted ∩ what the user's "
                                   "role allows.",
                    "flows": {
                        "authorizationCode": {
                            "authorizationUrl": "/api/oauth/authorize",
                            "tokenUrl": "/api/oauth/token",
                            "refreshUrl": "/api/oauth/token",
                            "scopes": scopes,
                        }
                    },
                },
            },
            "schemas": api.schemas,
            "responses": api.responses,
        },
    }


@api_endpoint(public=True)
def openapi_json(request: HttpRequest) -> JsonResponse:
    return JsonResponse(build_document(), json_dumps_params={"ensure_ascii": False})


# --- docs/api.md ---------------------------------------------------------------------------------


def _schema_name(schema: dict[str, Any]) -> str:
    ref = schema.get("$ref", "")
    return ref.rsplit("/", 1)[-1] if ref else schema.get("type", "object")


def _resolve(document: dict[str, Any], node: dict[str, Any]) -> dict[str, Any]:
    ref = node.get("$ref")
    if not ref:
        return node
    target: Any = document
    for part in ref.lstrip("#/").split("/"):
        target = target[part]
    return target


def _link(schema: dict[str, Any]) -> str:
    name = _schema_name(schema)
    return f"[{name}](#{name.lower()})"


def _fields_table(schema: dict[str, Any]) -> list[str]:
    out = ["| field | type | required | notes |", "|---|---|---|---|"]
    required = set(schema.get("required", []))
    for field, spec in schema.get("properties", {}).items():
        notes = spec.get("description", "")
        if "pattern" in spec and not notes:
            notes = f"`{spec['pattern']}`"
        out.append(f"| `{field}` | {_type_words(spec)} | {'yes' if field in required else 'no'} "
                   f"| {notes} |")
    return out


def _type_words(schema: dict[str, Any]) -> str:
    kind = schema.get("type", "")
    kind = " or ".join(kind) if isinstance(kind, list) else kind
    if "enum" in schema:
        kind = " \\| ".join(f"`{v}`" for v in schema["enum"])
    if "const" in schema:
        kind = f"`{schema['const']}`"
    if "$ref" in schema:
        kind = _link(schema)
    if "oneOf" in schema:
        kind = " or ".join(_type_words(option) for option in schema["oneOf"])
    if kind == "array" and "items" in schema:
        kind = f"array of {_type_words(schema['items'])}"
    if "format" in schema:
        kind += f" ({schema['format']})"
    if "minimum" in schema and "maximum" in schema:
        kind += f", {schema['minimum']}-{schema['maximum']}"
    if "default" in schema:
        kind += f", default {schema['default']}"
    return kind or "object"


def render_markdown(document: dict[str, Any]) -> str:
    """docs/api.md: the reference, rendered from the document (never edited by hand)."""
    out = [
        "# Gatehouse API reference",
        "",
        "<!-- Generated by `manage.py render_api_docs` from gateway/openapi.py; do not edit. "
        "A test fails when this file is stale. -->",
        "",
        document["info"]["description"],
        "",
        "Quickstart with curl: [quickstart.md](quickstart.md). Machine-readable: "
        "`GET /api/v1/openapi.json` (OpenAPI 3.1, no credential needed).",
        "",
        "## Scopes",
        "",
        "| scope | what it allows | API keys |",
        "|---|---|---|",
    ]
    schemes = document["components"]["securitySchemes"]
    key_scopes = set(schemes["apiKey"]["x-api-key-scopes"])
    for name, description in schemes["oauth2"]["flows"]["authorizationCode"]["scopes"].items():
        for_keys = "yes" if name in key_scopes else "OAuth only"
        out.append(f"| `{name}` | {description} | {for_keys} |")
    out += ["", "## Endpoints", ""]
    for path, operations in document["paths"].items():
        for method, op in operations.items():
            out += [f"### `{method.upper()} {path}` — {op['summary']}", ""]
            if op.get("description"):
                out += [op["description"], ""]
            scope = op.get("x-required-scope")
            if op.get("security") == []:
                out += ["Public: no credential needed.", ""]
            elif scope:
                out += [f"Scope: `{scope}`.", ""]
            else:
                out += ["Any valid credential.", ""]
            params = op.get("parameters", [])
            if params:
                out += ["| parameter | in | type | description |", "|---|---|---|---|"]
                for param in params:
                    out.append(
                        f"| `{param['name']}` | {param['in']} | {_type_words(param['schema'])} "
                        f"| {param.get('description', '')} |"
                    )
                out.append("")
            if "requestBody" in op:
                schema = op["requestBody"]["content"]["application/json"]["schema"]
                out += [f"Body (`application/json`): {_type_words(schema)}.", ""]
            statuses = []
            for status, response in op["responses"].items():
                response = _resolve(document, response)
                content = response.get("content", {}).get("application/json", {})
                schema = content.get("schema", {})
                codes = ""
                if "allOf" in schema:
                    codes = ", ".join(f"`{c}`" for c in schema["allOf"][1]["properties"]
                                      ["error"]["enum"])
                elif "$ref" in schema:
                    codes = _link(schema)
                elif schema:
                    codes = "JSON"
                statuses.append(f"{status} {codes}".strip())
            out += ["Responses: " + "; ".join(statuses) + ".", ""]
    out += ["## Objects", ""]
    for name, schema in document["components"]["schemas"].items():
        if name == "Error":
            continue
        out += [f"### {name}", ""]
        if schema.get("description"):
            out += [schema["description"], ""]
        if schema.get("type") == "array":
            items = schema.get("items", {})
            bounds = ""
            if "minItems" in schema or "maxItems" in schema:
                bounds = f" ({schema.get('minItems', 0)}–{schema.get('maxItems', '…')} items)"
            out += [f"A JSON array{bounds} of {_type_words(items)}"
                    + (":" if items.get("properties") else "."), ""]
            if items.get("properties"):
                out += [*_fields_table(items), ""]
            continue
        out += [*_fields_table(schema), ""]
    out += [
        "## Errors",
        "",
        "Every error is JSON: `{\"error\": \"<code>\", \"message\": \"<one sentence>\"}`, plus "
        "`fields` (invalid_request), `required_scope` (insufficient_scope) or `request_id` "
        "(server_error). Every 401 carries `WWW-Authenticate: Bearer realm=\"gatehouse\"` with "
        "`resource_metadata` (RFC 9728) and, when a token was sent, `error=\"invalid_token\"`; "
        "every 429 carries `Retry-After` (except for a credential's used-up credits that never "
        "refill); every response carries `X-Request-Id` and "
        "`Vary: Authorization`.",
        "",
        "| status | error | when |",
        "|---|---|---|",
    ]
    for code, (status, when) in ERROR_CODES.items():
        out.append(f"| {status} | `{code}` | {when} |")
    out.append("")
    return "\n".join(out)
