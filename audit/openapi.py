"""The OpenAPI schemas and operations of `audit/api.py` (assembled by `gateway/openapi.py`)."""

from __future__ import annotations

from apikit.openapi import (
    TIMESTAMP,
    OpenApiRegistry,
    authenticated_operation,
    json_response,
    list_of,
    object_schema,
    page_parameters,
    query,
)


def declare(api: OpenApiRegistry) -> None:
    api.schema("AuditEvent", object_schema(
        {
            "id": {"type": "string", "pattern": "^evt_[0-9A-Za-z]{22}$"},
            "action": {"type": "string", "examples": ["key.revoked"]},
            "actor": object_schema(
                {
                    "type": {
                        "type": "string", "enum": ["user", "api_key", "oauth_app", "system"],
                    },
                    "id": {"type": "string"},
                    "label": {"type": "string"},
                },
                ["type", "id", "label"],
            ),
            "target": object_schema(
                {"type": {"type": "string"}, "id": {"type": "string"},
                 "label": {"type": "string"}},
                ["type", "id", "label"],
            ),
            "ip": {"type": ["string", "null"]},
            "user_agent": {"type": "string"},
            "metadata": {"type": "object"},
            "created_at": TIMESTAMP,
        },
        ["id", "action", "actor", "target", "ip", "user_agent", "metadata", "created_at"],
    ))
    api.schema("AuditEventList", list_of("AuditEvent"))

    api.operation("/api/v1/audit-events", "get", authenticated_operation(
        operation_id="listAuditEvents", summary="List audit events", tag="Audit log",
        scope="audit:read", ok={"200": json_response("AuditEventList")},
        parameters=[
            *page_parameters(),
            query("action", {"type": "string", "maxLength": 64},
                  "Only this action, e.g. `key.revoked`."),
            query("actor", {"type": "string", "maxLength": 255},
                  "Only this actor: a user's email or id, a key's name or `key_…` "
                  "id, an OAuth app's name or client id (exact match)."),
            query("since", {"type": "string", "format": "date-time"},
                  "Events at or after this time (ISO 8601)."),
            query("until", {"type": "string", "format": "date-time"},
                  "Events before this time (ISO 8601)."),
        ],
        description="Newest first.",
    ))
