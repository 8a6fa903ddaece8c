"""The API reference in the dashboard (issue 15 point 9): `/w/<slug>/settings/api-reference/`,
rendered on the server from the same OpenAPI document as `GET /api/v1/openapi.json` and
docs/api.md (`gateway.openapi.build_document`) — endpoints, parameters, bodies, responses with
their error codes, objects — with curl examples that name one of the member's own keys by its
hint (never a token: tokens are not stored). No JavaScript, no CDN.
"""

from __future__ import annotations

import json
import re
from typing import Any

from django.http import HttpResponse
from django.shortcuts import render
from django.utils.html import escape
from django.utils.safestring import SafeString, mark_safe

from apikeys.models import ApiKey
from apikit.errors import ERROR_CODES
from workspaces.permissions import WorkspaceRequest, workspace_view

from .openapi import build_document

METHODS = ("get", "post", "put", "patch", "delete")
_CODE = re.compile(r"`([^`]+)`")


def _inline(text: str) -> SafeString:
    """The document's Markdown-ish prose: escaped, with `code` spans and paragraph breaks."""
    html = _CODE.sub(r"<code>\1</code>", escape(text or ""))
    return mark_safe(html.replace("\n\n", "<br><br>").replace("\n- ", "<br>• "))  # noqa: S308


def _resolve(document: dict, node: dict) -> dict:
    ref = node.get("$ref")
    if not ref:
        return node
    target: Any = document
    for part in ref.lstrip("#/").split("/"):
        target = target[part]
    return target


def _name(schema: dict) -> str:
    return schema.get("$ref", "").rsplit("/", 1)[-1]


def _type(schema: dict) -> str:
    if "$ref" in schema:
        return _name(schema)
    if "oneOf" in schema:
        return " or ".join(_type(option) for option in schema["oneOf"])
    if "const" in schema:
        return json.dumps(schema["const"])
    if "enum" in schema:
        return " | ".join(json.dumps(value) for value in schema["enum"])
    kind = schema.get("type", "object")
    kind = " or ".join(kind) if isinstance(kind, list) else kind
    if kind == "array" and "items" in schema:
        return f"array of {_type(schema['items'])}"
    if "format" in schema:
        kind += f" ({schema['format']})"
    return kind


def _fields(schema: dict) -> list[dict]:
    required = set(schema.get("required", []))
    return [
        {"name": name, "type": _type(spec), "required": name in required,
         "ref": _name(spec) or _name(spec.get("items", {})),
         "notes": _inline(spec.get("description", "") or (
             f"pattern {spec['pattern']}" if "pattern" in spec else ""))}
        for name, spec in schema.get("properties", {}).items()
    ]


def _example(document: dict, schema: dict, depth: int = 0) -> Any:
    schema = _resolve(document, schema)
    if depth > 4:
        return None
    if "examples" in schema:
        return schema["examples"][0]
    if "const" in schema:
        return schema["const"]
    if "enum" in schema:
        return schema["enum"][0]
    if "oneOf" in schema:
        return _example(document, schema["oneOf"][0], depth + 1)
    kind = schema.get("type")
    kind = kind[0] if isinstance(kind, list) else kind
    if kind == "object" or "properties" in schema:
        required = schema.get("required") or list(schema.get("properties", {}))
        return {name: _example(document, spec, depth + 1)
                for name, spec in schema.get("properties", {}).items() if name in required}
    if kind == "array":
        return [_example(document, schema.get("items", {}), depth + 1)]
    return {"integer": 1, "number": 1, "boolean": True, "null": None}.get(kind or "", "…")


def _codes(document: dict, response: dict) -> list[str]:
    schema = response.get("content", {}).get("application/json", {}).get("schema", {})
    if "allOf" in schema:
        return list(schema["allOf"][1]["properties"]["error"]["enum"])
    return []


def _operations(document: dict, *, origin: str, credential: str) -> list[dict]:
    operations = []
    for path, methods in document["paths"].items():
        for method in METHODS:
            op = methods.get(method)
            if op is None:
                continue
            public = op.get("security") == []
            body = op.get("requestBody", {}).get("content", {}).get("application/json", {})
            body_schema = body.get("schema")
            example_body = _example(document, body_schema) if body_schema else None
            parameters = [
                {"name": p["name"], "in": p["in"], "type": _type(p["schema"]),
                 "required": p.get("required", False),
                 "notes": _inline(p.get("description", ""))}
                for p in op.get("parameters", [])
            ]
            url_path = re.sub(r"\{(\w+)\}", lambda m: f"{m.group(1).split('_')[0][:3]}_…", path)
            curl = ["curl"]
            if method != "get":
                curl.append(f"-X {method.upper()}")
            if not public:
                curl.append(f'-H "Authorization: Bearer {credential}"')
            if example_body is not None and method in ("post", "put", "patch"):
                curl += ['-H "Content-Type: application/json"',
                         f"-d '{json.dumps(example_body, ensure_ascii=False)}'"]
            curl.append(f"{origin}{url_path}")
            responses = []
            for status, response in op["responses"].items():
                resolved = _resolve(document, response)
                schema = resolved.get("content", {}).get("application/json", {}).get("schema", {})
                responses.append({
                    "status": status, "description": _inline(
                        resolved.get("description", "").split("\n\n")[0]),
                    "codes": _codes(document, resolved), "schema": _name(schema),
                })
            operations.append({
                "id": op.get("operationId", f"{method}-{path}"), "method": method.upper(),
                "path": path, "summary": op.get("summary", ""),
                "description": _inline(op.get("description", "")), "tag": op["tags"][0],
                "public": public, "scope": op.get("x-required-scope"),
                "parameters": parameters, "body": _type(body_schema) if body_schema else "",
                "body_ref": _name(body_schema or {}), "responses": responses,
                "curl": " \\\n  ".join(curl),
            })
    return operations


@workspace_view()
def api_reference(request: WorkspaceRequest) -> HttpResponse:
    document = build_document()
    key_hint = request.GET.get("key", "")
    hints = _key_hints(request)
    credential = next((hint for hint in hints if hint == key_hint), hints[0] if hints else "")
    origin = request.build_absolute_uri("/").rstrip("/")
    operations = _operations(document, origin=origin,
                             credential=credential or "<your API key>")
    tags = list(dict.fromkeys(op["tag"] for op in operations))
    schemes = document["components"]["securitySchemes"]
    scopes = [
        {"name": name, "description": description,
         "for_keys": name in set(schemes["apiKey"]["x-api-key-scopes"])}
        for name, description in schemes["oauth2"]["flows"]["authorizationCode"]["scopes"].items()
    ]
    schemas = [
        {"name": name, "description": _inline(schema.get("description", "")),
         "fields": _fields(schema.get("items", schema) if schema.get("type") == "array"
                           else schema),
         "array": schema.get("type") == "array"}
        for name, schema in document["components"]["schemas"].items() if name != "Error"
    ]
    return render(request, "gateway/api_reference.html", {
        "info": {**document["info"], "description": _inline(document["info"]["description"])},
        "sections": [{"tag": tag, "operations": [op for op in operations if op["tag"] == tag]}
                     for tag in tags],
        "scopes": scopes, "schemas": schemas,
        "errors": [{"code": code, "status": status, "when": when}
                   for code, (status, when) in ERROR_CODES.items()],
        "key_hints": hints, "credential": credential,
    })


def _key_hints(request: WorkspaceRequest) -> list[str]:
    """The hints (`gk_dev_…a1b2`) of the workspace's live keys, for the examples: the member
    recognises their key; the token itself is theirs to paste (it is never stored)."""
    keys = ApiKey.objects.for_workspace(request.workspace).live().order_by("-created_at")[:20]
    return [key.display_hint for key in keys]
