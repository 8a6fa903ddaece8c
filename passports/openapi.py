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


_COLLECTION_ID_SCHEMA = {"type": "string", "pattern": "^col_[0-9A-Za-z]{22}$"}
_COLLECTION_REF = {
    "type": ["string", "null"], "pattern": "^col_[0-9A-Za-z]{22}$",
    "description": "The collection the passport is in (SPEC §11), or null. A credential "
                   "restricted to selected collections must name one of them.",
}
_COLLECTION_ID = {
    "name": "collection_id", "in": "path", "required": True, "schema": _COLLECTION_ID_SCHEMA,
    "description": "The collection's `id`.",
}
_COLLECTION_NAME = {
    "type": "string", "minLength": 1, "maxLength": 100,
    "allOf": [{"pattern": "\\S"}, {"pattern": _NO_CONTROL}],
    "description": "1-100 characters, not blank, no control characters, unique in the "
                   "workspace; trimmed.",
    "examples": ["Power tools"],
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
        "collection": _COLLECTION_REF,
    }
    api.schema("Passport", object_schema(
        {
            "id": {"type": "string", "pattern": "^psp_[0-9A-Za-z]{22}$"},
            **passport_fields,
            "created_at": TIMESTAMP,
            "updated_at": TIMESTAMP,
        },
        ["id", "gtin", "serial_number", "product_name", "status", "collection", "created_at",
         "updated_at"],
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
            query("collection", _COLLECTION_ID_SCHEMA, "Only passports in this collection."),
        ],
        description="In creation order (oldest first), so a client can page to the end "
                    "and later continue from its last cursor. A credential restricted to "
                    "selected collections sees only their passports (SPEC §11).",
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

    _declare_collections(api)


def _declare_collections(api: OpenApiRegistry) -> None:
    api.schema("Collection", object_schema(
        {"id": _COLLECTION_ID_SCHEMA, "name": _COLLECTION_NAME, "created_at": TIMESTAMP},
        ["id", "name", "created_at"],
    ))
    api.schema("CollectionCreate", object_schema({"name": _COLLECTION_NAME}, ["name"]))
    api.schema("CollectionUpdate", object_schema({"name": _COLLECTION_NAME}) | {
        "description": "Only the fields given change."
    })
    api.schema("CollectionList", list_of("Collection"))
    restricted = (" A credential restricted to selected collections sees only its own and "
                  "cannot create collections.")
    api.operation("/api/v1/collections", "get", authenticated_operation(
        operation_id="listCollections", summary="List collections", tag="Collections",
        scope="collections:read", ok={"200": json_response("CollectionList")},
        parameters=page_parameters(), description="In creation order." + restricted,
    ))
    api.operation("/api/v1/collections", "post", authenticated_operation(
        operation_id="createCollection", summary="Create a collection", tag="Collections",
        scope="collections:write", write=True, body="CollectionCreate",
        ok={"201": json_response("Collection", "Created") | {"headers": {"Location": {
            "description": "The new collection's URL.", "required": True,
            "schema": {"type": "string"}}}}},
    ))
    detail = {"detail": True, "parameters": [_COLLECTION_ID]}
    api.operation("/api/v1/collections/{collection_id}", "get", authenticated_operation(
        operation_id="getCollection", summary="Get a collection", tag="Collections",
        scope="collections:read", ok={"200": json_response("Collection")}, **detail,
    ))
    api.operation("/api/v1/collections/{collection_id}", "patch", authenticated_operation(
        operation_id="updateCollection", summary="Rename a collection", tag="Collections",
        scope="collections:write", write=True, body="CollectionUpdate",
        ok={"200": json_response("Collection")}, **detail,
    ))
    api.operation("/api/v1/collections/{collection_id}", "delete", authenticated_operation(
        operation_id="deleteCollection", summary="Delete a collection", tag="Collections",
        scope="collections:write", write=True, deletes=True,
        ok={"204": {"description": "Deleted; its passports stay, in no collection. A "
                                   "credential restricted to it reaches nothing more."}},
        **detail,
    ))
