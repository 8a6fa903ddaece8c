"""The OpenAPI schemas and operations of `passports/api.py` (assembled by `gateway/openapi.py`)."""

from __future__ import annotations

from typing import Any

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


def declare(api: OpenApiRegistry) -> None:
    passport_fields = {
        "gtin": _GTIN, "serial_number": _SERIAL, "product_name": _PRODUCT_NAME, "status": _STATUS,
    }
    api.schema("Passport", object_schema(
        {
            "id": {"type": "string", "pattern": "^psp_[0-9A-Za-z]{22}$"},
            **passport_fields,
            "created_at": TIMESTAMP,
            "updated_at": TIMESTAMP,
        },
        ["id", "gtin", "serial_number", "product_name", "status", "created_at", "updated_at"],
    ))
    api.schema("PassportCreate", object_schema(
        passport_fields, ["gtin", "serial_number", "product_name"]
    ) | {"description": "`status` defaults to draft."})
    api.schema("PassportUpdate", object_schema(passport_fields) | {
        "description": "Only the fields given change."
    })
    api.schema("PassportList", list_of("Passport"))

    api.operation("/api/v1/passports", "get", authenticated_operation(
        operation_id="listPassports", summary="List passports", tag="Passports",
        scope="passports:read", ok={"200": json_response("PassportList")},
        parameters=[
            *page_parameters(), query("status", _STATUS, "Only passports with this status."),
        ],
        description="In creation order (oldest first), so a client can page to the end "
                    "and later continue from its last cursor.",
    ))
    api.operation("/api/v1/passports", "post", authenticated_operation(
        operation_id="createPassport", summary="Create a passport", tag="Passports",
        scope="passports:write", write=True, creates=True, body="PassportCreate",
        ok={"201": json_response("Passport", "Created") | {"headers": {"Location": {
            "description": "The new passport's URL.", "required": True,
            "schema": {"type": "string"}}}, "links": _passport_links()}},
    ))
    detail = {"detail": True, "parameters": [_PASSPORT_ID]}
    api.operation("/api/v1/passports/{passport_id}", "get", authenticated_operation(
        operation_id="getPassport", summary="Get a passport", tag="Passports",
        scope="passports:read", ok={"200": json_response("Passport")}, **detail,
    ))
    api.operation("/api/v1/passports/{passport_id}", "patch", authenticated_operation(
        operation_id="updatePassport", summary="Update a passport", tag="Passports",
        scope="passports:write", write=True, body="PassportUpdate",
        ok={"200": json_response("Passport") | {"links": _passport_links()}}, **detail,
    ))
    api.operation("/api/v1/passports/{passport_id}", "delete", authenticated_operation(
        operation_id="deletePassport", summary="Delete a passport", tag="Passports",
        scope="passports:write", write=True, deletes=True,
        ok={"204": {"description": "Deleted."}}, **detail,
    ))
