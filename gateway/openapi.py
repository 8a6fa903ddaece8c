"""The OpenAPI 3.1 document of `/api/v1/` (served at `GET /api/v1/openapi.json`, public).

Written once, here; kept true by tests: `tests/api/test_openapi.py` walks the URL conf and checks
every route, method and scope against this document and every SPEC §4 error code is in it;
schemathesis checks the live API against it; `docs/api.md` is rendered from it
(`manage.py render_api_docs`) and a test fails when the committed file is stale. Scopes and
error codes come from their registries (`workspaces.scopes`, `apikit.errors.ERROR_CODES`).
"""

from __future__ import annotations

from typing import Any

from django.http import HttpRequest, JsonResponse

from apikit.endpoints import api_endpoint
from apikit.errors import ERROR_CODES
from core.pagination import DEFAULT_LIMIT, MAX_LIMIT
from workspaces.scopes import all_scopes

from .leaks import MAX_CREDENTIAL_LENGTH, MAX_CREDENTIALS, MAX_URL_LENGTH, REPORTS_PER_MINUTE

API_VERSION = "1.0.0"
REF = "#/components"

# --- schemas -------------------------------------------------------------------------------------

_TIMESTAMP = {"type": "string", "format": "date-time"}
_NULLABLE_TIMESTAMP = {"type": ["string", "null"], "format": "date-time"}
_NO_CONTROL = "^[^\\u0000-\\u001F\\u007F]*$"
_GTIN = {
    "type": "string",
    "pattern": "^([0-9]{8}|[0-9]{12,14})$",
    "description": "GTIN-8, -12, -13 or -14 with a valid GS1 check digit (the last digit).",
    "examples": ["4006381333931"],
}
_SERIAL = {
    "type": "string",
    "pattern": "^[!\"%&'()*+,\\-./0-9:;<=>?A-Z_a-z]{1,20}$",
    "description": "GS1 AI (21) serial number: 1-20 characters of GS1 character set 82. "
                   "Unique per GTIN in a workspace.",
    "examples": ["SN-0001"],
}
_PRODUCT_NAME = {
    "type": "string",
    "minLength": 1,
    "maxLength": 200,
    "allOf": [{"pattern": "\\S"}, {"pattern": _NO_CONTROL}],
    "description": "1-200 characters, not blank, no control characters; trimmed.",
    "examples": ["Cordless drill XR-18"],
}
_STATUS = {"type": "string", "enum": ["draft", "published"]}


def _object(properties: dict[str, Any], required: list[str] | None = None) -> dict[str, Any]:
    schema: dict[str, Any] = {
        "type": "object", "properties": properties, "additionalProperties": False,
    }
    if required:
        schema["required"] = required
    return schema


def _list_of(ref: str) -> dict[str, Any]:
    return _object(
        {
            "data": {"type": "array", "items": {"$ref": f"{REF}/schemas/{ref}"}},
            "next_cursor": {
                "type": ["string", "null"],
                "description": "Pass as `cursor` for the next page; null on the last page.",
            },
        },
        ["data", "next_cursor"],
    )


def _schemas() -> dict[str, Any]:
    passport_fields = {
        "gtin": _GTIN, "serial_number": _SERIAL, "product_name": _PRODUCT_NAME, "status": _STATUS,
    }
    return {
        "Error": {
            "type": "object",
            "required": ["error", "message"],
            "properties": {
                "error": {"type": "string", "enum": list(ERROR_CODES)},
                "message": {"type": "string", "description": "One sentence for a human."},
                "fields": {
                    "type": "object",
                    "additionalProperties": {"type": "string"},
                    "description": "invalid_request: each bad field, parameter or header and "
                                   "what is wrong with it.",
                },
                "required_scope": {"type": "string"},
                "request_id": {"type": "string"},
            },
        },
        "Passport": _object(
            {
                "id": {"type": "string", "pattern": "^psp_[0-9A-Za-z]{22}$"},
                **passport_fields,
                "created_at": _TIMESTAMP,
                "updated_at": _TIMESTAMP,
            },
            ["id", "gtin", "serial_number", "product_name", "status", "created_at",
             "updated_at"],
        ),
        "PassportCreate": _object(
            passport_fields, ["gtin", "serial_number", "product_name"]
        ) | {"description": "`status` defaults to draft."},
        "PassportUpdate": _object(passport_fields) | {
            "description": "Only the fields given change."
        },
        "PassportList": _list_of("Passport"),
        "LeakedCredentialList": {
            "type": "array",
            "minItems": 1,
            "maxItems": MAX_CREDENTIALS,
            "items": {"type": "string", "minLength": 1, "maxLength": MAX_CREDENTIAL_LENGTH},
            "description": "Strings found in the wild, each as found (surrounding whitespace "
                           "is ignored); anything that is not a Gatehouse credential is "
                           "ignored.",
            "examples": [["gk_prod_0123456789abcdefghijABCDEFGHIJ0a1B2c"]],
        },
        "LeakReport": _object(
            {
                "credentials": {"$ref": f"{REF}/schemas/LeakedCredentialList"},
                "url": {"type": "string", "maxLength": MAX_URL_LENGTH,
                        "description": "Where the strings were found (kept in the audit log, "
                                       "with any credential in it redacted)."},
            },
            ["credentials"],
        ),
        "LeakAccepted": _object(
            {"status": {"const": "accepted"}, "message": {"type": "string"}},
            ["status", "message"],
        ),
        "Me": _object(
            {
                "workspace": _object(
                    {"slug": {"type": "string"}, "name": {"type": "string"}}, ["slug", "name"]
                ),
                "principal": _object(
                    {
                        "kind": {"type": "string", "enum": ["api_key", "oauth"]},
                        "id": {"type": "string", "description": "key_… or an OAuth client id"},
                        "name": {"type": "string"},
                    },
                    ["kind", "id", "name"],
                ),
                "scopes": {"type": "array", "items": {"type": "string"}},
                "plan": _object(
                    {
                        "code": {"type": "string"},
                        "name": {"type": "string"},
                        "writes_per_day": {"type": ["integer", "null"]},
                        "passport_reads_per_day": {"type": ["integer", "null"]},
                        "passports_limit": {"type": ["integer", "null"]},
                        "active_keys_limit": {"type": "integer"},
                    },
                    ["code", "name", "writes_per_day", "passport_reads_per_day",
                     "passports_limit", "active_keys_limit"],
                ),
            },
            ["workspace", "principal", "scopes", "plan"],
        ),
        "ApiKey": _object(
            {
                "id": {"type": "string", "pattern": "^key_[0-9A-Za-z]{22}$"},
                "name": {"type": "string"},
                "note": {"type": "string"},
                "hint": {"type": "string", "description": "gk_<env>_… and the last 4 chars."},
                "environment": {
                    "type": "string", "enum": ["production", "staging", "development"],
                },
                "scopes": {"type": "array", "items": {"type": "string"}},
                "status": {"type": "string", "enum": ["active", "paused", "revoked", "expired"]},
                "created_at": _TIMESTAMP,
                "expires_at": _NULLABLE_TIMESTAMP,
                "revoked_at": _NULLABLE_TIMESTAMP,
                "last_used_at": _NULLABLE_TIMESTAMP,
                "rate_limit_per_minute": {"type": ["integer", "null"]},
                "allowed_ips": {"type": "array", "items": {"type": "string"}},
                "rotated_from": {"type": ["string", "null"]},
            },
            ["id", "name", "note", "hint", "environment", "scopes", "status", "created_at",
             "expires_at", "revoked_at", "last_used_at", "rate_limit_per_minute",
             "allowed_ips", "rotated_from"],
        ),
        "ApiKeyList": _list_of("ApiKey"),
        "AuditEvent": _object(
            {
                "id": {"type": "string", "pattern": "^evt_[0-9A-Za-z]{22}$"},
                "action": {"type": "string", "examples": ["key.revoked"]},
                "actor": _object(
                    {
                        "type": {
                            "type": "string", "enum": ["user", "api_key", "oauth_app", "system"],
                        },
                        "id": {"type": "string"},
                        "label": {"type": "string"},
                    },
                    ["type", "id", "label"],
                ),
                "target": _object(
                    {"type": {"type": "string"}, "id": {"type": "string"},
                     "label": {"type": "string"}},
                    ["type", "id", "label"],
                ),
                "ip": {"type": ["string", "null"]},
                "user_agent": {"type": "string"},
                "metadata": {"type": "object"},
                "created_at": _TIMESTAMP,
            },
            ["id", "action", "actor", "target", "ip", "user_agent", "metadata", "created_at"],
        ),
        "AuditEventList": _list_of("AuditEvent"),
    }


# --- responses -----------------------------------------------------------------------------------

def _codes(status: int) -> list[str]:
    return [code for code, (code_status, _) in ERROR_CODES.items() if code_status == status]


def _error(description: str, codes: list[str], **extra: Any) -> dict[str, Any]:
    schema: dict[str, Any] = {
        "allOf": [
            {"$ref": f"{REF}/schemas/Error"},
            {"properties": {"error": {"enum": codes}}},
        ]
    }
    if extra.get("required"):
        schema["allOf"][1]["required"] = extra.pop("required")
    lines = "\n".join(f"- `{code}`: {ERROR_CODES[code][1]}" for code in codes)
    response: dict[str, Any] = {
        "description": f"{description}\n\n{lines}",
        "content": {"application/json": {"schema": schema}},
    }
    if extra.get("headers"):
        response["headers"] = extra.pop("headers")
    return response


def _responses() -> dict[str, Any]:
    www_authenticate = {
        "description": 'Bearer challenge (RFC 6750 §3) with `resource_metadata` (RFC 9728): '
                       '`Bearer realm="gatehouse", error="invalid_token", resource_metadata='
                       '"https://<host>/.well-known/oauth-protected-resource"`.',
        "required": True,
        "schema": {"type": "string"},
    }
    retry_after = {
        "description": "Seconds to wait before retrying.",
        "required": True,
        "schema": {"type": "integer", "minimum": 1},
    }
    return {
        "BadRequest": _error(
            "The request is malformed: see `fields`.", _codes(400), required=["fields"]
        ),
        "Unauthorized": _error(
            "No valid credential.", _codes(401), headers={"WWW-Authenticate": www_authenticate}
        ),
        "PaymentRequired": _error("Payment required.", _codes(402)),
        "Forbidden": _error(
            "The credential is valid but may not do this.",
            ["insufficient_scope", "ip_not_allowed"],
        ),
        "ForbiddenCreate": _error(
            "The credential is valid but may not do this.",
            ["insufficient_scope", "ip_not_allowed", "plan_limit_reached"],
        ),
        "NotFound": _error("Nothing here in the caller's workspace.", _codes(404)),
        "Conflict": _error("Conflict.", ["conflict", "idempotency_key_in_use"]),
        "ConflictDelete": _error("Conflict.", ["idempotency_key_in_use"]),
        "TooLarge": _error("The body is too large.", _codes(413)),
        "UriTooLong": _error(
            "The URL (path and query) is longer than 4096 bytes.", ["request_too_large"]
        ),
        "UnsupportedMediaType": _error("The body is not JSON.", _codes(415)),
        "Unprocessable": _error("The Idempotency-Key was reused.", _codes(422)),
        "TooManyRequests": _error(
            "Slow down.", _codes(429), headers={"Retry-After": retry_after}
        ),
        "ServerError": _error(
            "An unexpected error; quote `request_id`.", _codes(500), required=["request_id"]
        ),
        "ServiceUnavailable": _error("Retry later.", _codes(503)),
    }


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"{REF}/responses/{name}"}


_IDEMPOTENCY_KEY = {
    "name": "Idempotency-Key",
    "in": "header",
    "required": False,
    "schema": {"type": "string", "pattern": "^[\\x21-\\x7e]{1,255}$"},
    "description": "Makes the write safe to retry (SPEC §6): the first completed response "
                   "(status < 500) is kept 24 hours per workspace and key and replayed with "
                   "`Idempotent-Replayed: true`; the same key with a different method, path, "
                   "content type or body answers 422; while the first is running, 409.",
}
_RATE_LIMIT_HEADERS = {
    "X-RateLimit-Limit": {
        "description": "The daily budget that applies (writes, or passport reads), else the "
                       "key's per-minute rate limit. Absent when neither applies.",
        "schema": {"type": "integer"},
    },
    "X-RateLimit-Remaining": {
        "description": "What is left of it.", "schema": {"type": "integer"},
    },
    "X-RateLimit-Reset": {
        "description": "When it resets, in Unix seconds (00:00 UTC for daily budgets).",
        "schema": {"type": "integer"},
    },
}


def _operation(
    *,
    operation_id: str,
    summary: str,
    tag: str,
    scope: str | None,
    ok: dict[str, Any],
    write: bool = False,
    creates: bool = False,
    deletes: bool = False,
    detail: bool = False,
    parameters: list[dict[str, Any]] | None = None,
    body: str | None = None,
    description: str = "",
) -> dict[str, Any]:
    responses: dict[str, Any] = {
        **ok,
        "400": _ref("BadRequest"),
        "401": _ref("Unauthorized"),
        "403": _ref("ForbiddenCreate" if creates else "Forbidden"),
    }
    if detail:
        responses["404"] = _ref("NotFound")
    if write:
        if creates:
            responses["402"] = _ref("PaymentRequired")
        responses["409"] = _ref("ConflictDelete" if deletes else "Conflict")
        responses["413"] = _ref("TooLarge")
        if not deletes:
            responses["415"] = _ref("UnsupportedMediaType")
        responses["422"] = _ref("Unprocessable")
    responses["414"] = _ref("UriTooLong")
    responses["429"] = _ref("TooManyRequests")
    responses["500"] = _ref("ServerError")
    responses["503"] = _ref("ServiceUnavailable")
    needs = [scope] if scope else []
    operation: dict[str, Any] = {
        "operationId": operation_id,
        "summary": summary,
        "tags": [tag],
        "security": [{"apiKey": needs}, {"oauth2": needs}],
        "responses": dict(sorted(responses.items())),
    }
    if description:
        operation["description"] = description
    if scope:
        operation["x-required-scope"] = scope
    if write:
        parameters = [*(parameters or []), _IDEMPOTENCY_KEY]
    if parameters:
        operation["parameters"] = parameters
    for response in ok.values():
        response.setdefault("headers", {}).update(_RATE_LIMIT_HEADERS)
        if write:
            response["headers"]["Idempotent-Replayed"] = {
                "description": "`true` when this is a stored response replayed for a repeated "
                               "Idempotency-Key.",
                "schema": {"type": "string", "enum": ["true"]},
            }
    if body:
        operation["requestBody"] = {
            "required": True,
            "content": {"application/json": {"schema": {"$ref": f"{REF}/schemas/{body}"}}},
        }
    return operation


def _json(schema: str, description: str = "OK") -> dict[str, Any]:
    return {
        "description": description,
        "content": {"application/json": {"schema": {"$ref": f"{REF}/schemas/{schema}"}}},
    }


def _query(name: str, schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {"name": name, "in": "query", "required": False, "schema": schema,
            "description": description}


_PAGE = [
    _query("limit", {"type": "integer", "minimum": 1, "maximum": MAX_LIMIT,
                     "default": DEFAULT_LIMIT}, "Page size."),
    _query("cursor", {"type": "string"}, "`next_cursor` of the previous page."),
]
_PASSPORT_ID = {
    "name": "passport_id", "in": "path", "required": True,
    "schema": {"type": "string", "pattern": "^psp_[0-9A-Za-z]{22}$"},
    "description": "The passport's `id`.",
}


def _passport_links() -> dict[str, Any]:
    """OpenAPI links (3.1 §4.8.20): a passport in a response is the `passport_id` of the detail
    operations, so clients (and schemathesis' stateful tests) can follow create → read → update →
    delete."""
    by_id = {"passport_id": "$response.body#/id"}
    return {
        "GetPassport": {"operationId": "getPassport", "parameters": by_id},
        "UpdatePassport": {"operationId": "updatePassport", "parameters": by_id},
        "DeletePassport": {"operationId": "deletePassport", "parameters": by_id},
    }


def _paths() -> dict[str, Any]:
    passport_detail = {"detail": True, "parameters": [_PASSPORT_ID]}
    return {
        "/api/v1/me": {
            "get": _operation(
                operation_id="getMe", summary="Who is calling", tag="Account", scope=None,
                ok={"200": _json("Me")},
                description="The caller's workspace, credential, effective scopes and plan.",
            ),
        },
        "/api/v1/passports": {
            "get": _operation(
                operation_id="listPassports", summary="List passports", tag="Passports",
                scope="passports:read", ok={"200": _json("PassportList")},
                parameters=[
                    *_PAGE, _query("status", _STATUS, "Only passports with this status."),
                ],
                description="In creation order (oldest first), so a client can page to the end "
                            "and later continue from its last cursor.",
            ),
            "post": _operation(
                operation_id="createPassport", summary="Create a passport", tag="Passports",
                scope="passports:write", write=True, creates=True, body="PassportCreate",
                ok={"201": _json("Passport", "Created") | {"headers": {"Location": {
                    "description": "The new passport's URL.", "required": True,
                    "schema": {"type": "string"}}}, "links": _passport_links()}},
            ),
        },
        "/api/v1/passports/{passport_id}": {
            "get": _operation(
                operation_id="getPassport", summary="Get a passport", tag="Passports",
                scope="passports:read", ok={"200": _json("Passport")}, **passport_detail,
            ),
            "patch": _operation(
                operation_id="updatePassport", summary="Update a passport", tag="Passports",
                scope="passports:write", write=True, body="PassportUpdate",
                ok={"200": _json("Passport") | {"links": _passport_links()}}, **passport_detail,
            ),
            "delete": _operation(
                operation_id="deletePassport", summary="Delete a passport", tag="Passports",
                scope="passports:write", write=True, deletes=True,
                ok={"204": {"description": "Deleted."}}, **passport_detail,
            ),
        },
        "/api/v1/keys": {
            "get": _operation(
                operation_id="listKeys", summary="List API keys", tag="API keys",
                scope="keys:read", ok={"200": _json("ApiKeyList")}, parameters=_PAGE,
                description="The workspace's keys, newest first, with metadata only: tokens "
                            "are never stored and cannot be listed.",
            ),
        },
        "/api/v1/audit-events": {
            "get": _operation(
                operation_id="listAuditEvents", summary="List audit events", tag="Audit log",
                scope="audit:read", ok={"200": _json("AuditEventList")},
                parameters=[
                    *_PAGE,
                    _query("action", {"type": "string", "maxLength": 64},
                           "Only this action, e.g. `key.revoked`."),
                    _query("actor", {"type": "string", "maxLength": 255},
                           "Only this actor: a user's email or id, a key's name or `key_…` "
                           "id, an OAuth app's name or client id (exact match)."),
                    _query("since", {"type": "string", "format": "date-time"},
                           "Events at or after this time (ISO 8601)."),
                    _query("until", {"type": "string", "format": "date-time"},
                           "Events before this time (ISO 8601)."),
                ],
                description="Newest first.",
            ),
        },
        "/api/v1/leaked-credentials": {
            "post": {
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
                    f"whether a string was live. At most {REPORTS_PER_MINUTE} reports a minute per "
                    "IP address."
                ),
                "requestBody": {
                    "required": True,
                    "content": {"application/json": {"schema": {"oneOf": [
                        {"$ref": f"{REF}/schemas/LeakedCredentialList"},
                        {"$ref": f"{REF}/schemas/LeakReport"},
                    ]}}},
                },
                "responses": {
                    "202": _json("LeakAccepted", "Accepted; the same answer whatever was sent."),
                    "400": _ref("BadRequest"),
                    "413": _ref("TooLarge"),
                    "415": _ref("UnsupportedMediaType"),
                    "429": _ref("TooManyRequests"),
                    "500": _ref("ServerError"),
                    "503": _ref("ServiceUnavailable"),
                },
            },
        },
        "/api/v1/openapi.json": {
            "get": {
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
            },
        },
    }


def build_document() -> dict[str, Any]:
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
        "tags": [
            {"name": "Account"}, {"name": "Passports"}, {"name": "API keys"},
            {"name": "Audit log"}, {"name": "Security"}, {"name": "Meta"},
        ],
        "paths": _paths(),
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
            "schemas": _schemas(),
            "responses": _responses(),
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


def _type_words(schema: dict[str, Any]) -> str:
    kind = schema.get("type", "")
    kind = " or ".join(kind) if isinstance(kind, list) else kind
    if "enum" in schema:
        kind = " \\| ".join(f"`{v}`" for v in schema["enum"])
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
                out += [f"Body (`application/json`): [{_schema_name(schema)}]"
                        f"(#{_schema_name(schema).lower()}).", ""]
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
                    codes = f"[{_schema_name(schema)}](#{_schema_name(schema).lower()})"
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
        out += ["| field | type | required | notes |", "|---|---|---|---|"]
        required = set(schema.get("required", []))
        for field, spec in schema.get("properties", {}).items():
            if "$ref" in spec:
                kind = f"[{_schema_name(spec)}](#{_schema_name(spec).lower()})"
            elif spec.get("type") == "array" and "$ref" in spec.get("items", {}):
                item = _schema_name(spec["items"])
                kind = f"array of [{item}](#{item.lower()})"
            else:
                kind = _type_words(spec)
            notes = spec.get("description", "")
            if "pattern" in spec and not notes:
                notes = f"`{spec['pattern']}`"
            out.append(f"| `{field}` | {kind} | {'yes' if field in required else 'no'} "
                       f"| {notes} |")
        out.append("")
    out += [
        "## Errors",
        "",
        "Every error is JSON: `{\"error\": \"<code>\", \"message\": \"<one sentence>\"}`, plus "
        "`fields` (invalid_request), `required_scope` (insufficient_scope) or `request_id` "
        "(server_error). Every 401 carries `WWW-Authenticate: Bearer realm=\"gatehouse\"` with "
        "`resource_metadata` (RFC 9728) and, when a token was sent, `error=\"invalid_token\"`; "
        "every 429 carries `Retry-After`; every response carries `X-Request-Id` and "
        "`Vary: Authorization`.",
        "",
        "| status | error | when |",
        "|---|---|---|",
    ]
    for code, (status, when) in ERROR_CODES.items():
        out.append(f"| {status} | `{code}` | {when} |")
    out.append("")
    return "\n".join(out)
