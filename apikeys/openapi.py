"""The OpenAPI schemas and operations of `apikeys/api.py` (assembled by `gateway/openapi.py`)."""

from __future__ import annotations

from apikit.openapi import (
    NULLABLE_TIMESTAMP,
    TIMESTAMP,
    OpenApiRegistry,
    authenticated_operation,
    json_response,
    list_of,
    object_schema,
    page_parameters,
)


def declare(api: OpenApiRegistry) -> None:
    api.schema("ApiKey", object_schema(
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
            "created_at": TIMESTAMP,
            "expires_at": NULLABLE_TIMESTAMP,
            "revoked_at": NULLABLE_TIMESTAMP,
            "last_used_at": NULLABLE_TIMESTAMP,
            "rate_limit_per_minute": {"type": ["integer", "null"]},
            "allowed_ips": {"type": "array", "items": {"type": "string"}},
            "rotated_from": {"type": ["string", "null"]},
            "collections": {
                "type": ["array", "null"], "items": {"type": "string"},
                "description": "null: the key reaches all passports; otherwise only those in "
                               "these collections (SPEC §11; none when empty).",
            },
            "budget": {
                **object_schema({
                    "daily_cap": {"type": ["integer", "null"],
                                  "description": "The key's own requests per UTC day."},
                    "used_today": {"type": ["integer", "null"]},
                    "credits": {"type": ["integer", "null"],
                                "description": "The balance it was set to (one per request)."},
                    "credits_remaining": {"type": ["integer", "null"]},
                    "credits_refill": {"type": ["string", "null"],
                                       "enum": ["daily", "monthly", None]},
                    "credits_refill_at": NULLABLE_TIMESTAMP,
                }, ["daily_cap", "used_today", "credits", "credits_remaining", "credits_refill",
                    "credits_refill_at"]),
                "description": "The key's own budget (SPEC §3 per-key caps), on top of the "
                               "workspace's; all null when it has none.",
            },
            "new_network": {
                "type": ["object", "null"],
                "properties": {
                    "network": {"type": "string", "description": "IPv4 /24 or IPv6 /48."},
                    "seen_at": TIMESTAMP,
                },
                "required": ["network", "seen_at"],
                "additionalProperties": False,
                "description": "Set when the key, with a week of history, was first used from "
                               "a network it had never been used from (until dismissed or "
                               "restricted in the dashboard); null otherwise.",
            },
        },
        ["id", "name", "note", "hint", "environment", "scopes", "status", "created_at",
         "expires_at", "revoked_at", "last_used_at", "rate_limit_per_minute", "allowed_ips",
         "rotated_from", "collections", "budget", "new_network"],
    ))
    api.schema("ApiKeyList", list_of("ApiKey"))

    api.operation("/api/v1/keys", "get", authenticated_operation(
        operation_id="listKeys", summary="List API keys", tag="API keys",
        scope="keys:read", ok={"200": json_response("ApiKeyList")}, parameters=page_parameters(),
        description="The workspace's keys, newest first, with metadata only: tokens "
                    "are never stored and cannot be listed.",
    ))
