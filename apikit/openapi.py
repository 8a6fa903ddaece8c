"""Building blocks of the OpenAPI 3.1 document of `/api/v1/`: a registry that each app's
`openapi.py` fills with the schemas and operations of its own endpoints, and the pieces every
endpoint shares — the error and list envelopes, the standard error responses, paging, the
`Idempotency-Key` and `X-RateLimit-*` headers.

An app declares with a `declare(api: OpenApiRegistry) -> None` function next to its `api.py`;
each operation names the route and method of the endpoint it describes
(`api.operation("/api/v1/keys", "get", ...)`). `gateway/openapi.py` builds a fresh registry, has
every app declare into it and assembles the document; `tests/api/test_openapi.py` checks that
every route, method and scope of the URL conf is documented.
"""

from __future__ import annotations

from typing import Any

from core.pagination import DEFAULT_LIMIT, MAX_LIMIT

from .errors import ERROR_CODES

REF = "#/components"

TIMESTAMP = {"type": "string", "format": "date-time"}
NULLABLE_TIMESTAMP = {"type": ["string", "null"], "format": "date-time"}


class OpenApiRegistry:
    """The components and operations declared so far, in declaration order. Starts with the
    shared `Error` schema and the standard error responses; a name or an operation declared
    twice is a mistake and raises."""

    def __init__(self) -> None:
        self.schemas: dict[str, dict[str, Any]] = {"Error": _error_schema()}
        self.responses: dict[str, dict[str, Any]] = _error_responses()
        self.operations: dict[str, dict[str, dict[str, Any]]] = {}

    def schema(self, name: str, schema: dict[str, Any]) -> None:
        if name in self.schemas:
            raise ValueError(f"Schema {name} is declared twice.")
        self.schemas[name] = schema

    def operation(self, path: str, method: str, operation: dict[str, Any]) -> None:
        """The operation of the endpoint answering `method` at `path` (OpenAPI form:
        `/api/v1/passports/{passport_id}`)."""
        methods = self.operations.setdefault(path, {})
        if method in methods:
            raise ValueError(f"{method.upper()} {path} is declared twice.")
        methods[method] = operation


# --- schemas -------------------------------------------------------------------------------------


def schema_ref(name: str) -> dict[str, str]:
    return {"$ref": f"{REF}/schemas/{name}"}


def response_ref(name: str) -> dict[str, str]:
    return {"$ref": f"{REF}/responses/{name}"}


def object_schema(
    properties: dict[str, Any], required: list[str] | None = None
) -> dict[str, Any]:
    """A closed object: no properties beyond those listed."""
    schema: dict[str, Any] = {
        "type": "object", "properties": properties, "additionalProperties": False,
    }
    if required:
        schema["required"] = required
    return schema


def list_of(name: str) -> dict[str, Any]:
    """The list envelope of `apikit.requests`: a page of `name` and the cursor of the next."""
    return object_schema(
        {
            "data": {"type": "array", "items": schema_ref(name)},
            "next_cursor": {
                "type": ["string", "null"],
                "description": "Pass as `cursor` for the next page; null on the last page.",
            },
        },
        ["data", "next_cursor"],
    )


def _error_schema() -> dict[str, Any]:
    return {
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
    }


# --- responses -----------------------------------------------------------------------------------


def _codes(status: int) -> list[str]:
    return [code for code, (code_status, _) in ERROR_CODES.items() if code_status == status]


def _error(description: str, codes: list[str], **extra: Any) -> dict[str, Any]:
    schema: dict[str, Any] = {
        "allOf": [
            schema_ref("Error"),
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


def _error_responses() -> dict[str, Any]:
    www_authenticate = {
        "description": 'Bearer challenge (RFC 6750 §3) with `resource_metadata` (RFC 9728): '
                       '`Bearer realm="gatehouse", error="invalid_token", resource_metadata='
                       '"https://<host>/.well-known/oauth-protected-resource"`.',
        "required": True,
        "schema": {"type": "string"},
    }
    retry_after = {
        "description": "Seconds to wait before retrying. Absent only when a credential's own "
                       "credits are used up and never refill (waiting would not help).",
        "required": False,
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
            ["insufficient_scope", "ip_not_allowed", "app_not_approved", "policy_violation"],
        ),
        "ForbiddenCreate": _error(
            "The credential is valid but may not do this.",
            ["insufficient_scope", "ip_not_allowed", "app_not_approved", "policy_violation",
             "plan_limit_reached"],
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


def json_response(schema: str, description: str = "OK") -> dict[str, Any]:
    """A response whose body is the component schema `schema`."""
    return {
        "description": description,
        "content": {"application/json": {"schema": schema_ref(schema)}},
    }


# --- parameters and operations -------------------------------------------------------------------


def query(name: str, schema: dict[str, Any], description: str) -> dict[str, Any]:
    """An optional query parameter."""
    return {"name": name, "in": "query", "required": False, "schema": schema,
            "description": description}


def page_parameters() -> list[dict[str, Any]]:
    """`limit` and `cursor` of a list endpoint (`apikit.requests`)."""
    return [
        query("limit", {"type": "integer", "minimum": 1, "maximum": MAX_LIMIT,
                        "default": DEFAULT_LIMIT}, "Page size."),
        query("cursor", {"type": "string"}, "`next_cursor` of the previous page."),
    ]


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


def authenticated_operation(
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
    """The operation of an endpoint behind the gateway's authentication: `ok` (its success
    responses) plus every error the pipeline may answer — 404 for a `detail` route; for a
    `write`, `Idempotency-Key` and its 409/422, 413, 415 (unless it `deletes`: no body) and 402
    and `plan_limit_reached` when it `creates`."""
    responses: dict[str, Any] = {
        **ok,
        "400": response_ref("BadRequest"),
        "401": response_ref("Unauthorized"),
        "403": response_ref("ForbiddenCreate" if creates else "Forbidden"),
    }
    if detail:
        responses["404"] = response_ref("NotFound")
    if write:
        if creates:
            responses["402"] = response_ref("PaymentRequired")
        responses["409"] = response_ref("ConflictDelete" if deletes else "Conflict")
        responses["413"] = response_ref("TooLarge")
        if not deletes:
            responses["415"] = response_ref("UnsupportedMediaType")
        responses["422"] = response_ref("Unprocessable")
    responses["414"] = response_ref("UriTooLong")
    responses["429"] = response_ref("TooManyRequests")
    responses["500"] = response_ref("ServerError")
    responses["503"] = response_ref("ServiceUnavailable")
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
            "content": {"application/json": {"schema": schema_ref(body)}},
        }
    return operation
