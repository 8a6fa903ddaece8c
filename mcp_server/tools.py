"""The MCP server's tools: each one *is* a JSON API operation (SPEC §14).

A tool names the API operation it corresponds to (method and path template). Everything else
is read from what the API already declares, so there is one source of truth:

- the input schema: the operation's path and query parameters and its JSON body schema, from the
  assembled OpenAPI document (`gateway.openapi.build_document`, which `tests/api/test_openapi.py`
  keeps equal to what the views accept), plus `idempotency_key` for writes (the
  `Idempotency-Key` header of SPEC §6);
- the scope it needs and the daily budget it costs: the view's `@api_endpoint` declaration,
  the same object the gateway enforces for the API request.

A call runs the operation's own view behind the gateway (`mcp_server.calls`), so validation,
error codes and messages are the API's.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from functools import cache
from typing import Any

from django.urls import resolve

from apikit.endpoints import Endpoint, endpoint_for, endpoints_of
from gateway.openapi import build_document

IDEMPOTENCY_ARGUMENT = "idempotency_key"
_SAMPLE_ID = "x"  # fills a path template to find the route's declaration


@dataclass(frozen=True, slots=True)
class ToolSpec:
    name: str
    title: str
    description: str
    method: str
    path: str  # OpenAPI path template, e.g. /api/v1/passports/{passport_id}
    read_only: bool
    destructive: bool = False
    # Body members the tool sets itself (publish = PATCH {"status": "published"}); a tool with
    # `fixed_body` takes no body arguments.
    fixed_body: dict[str, Any] | None = None
    body_arguments: bool = True
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def path_parameters(self) -> list[str]:
        return [part[1:-1] for part in self.path.split("/") if part.startswith("{")]

    def endpoint(self) -> Endpoint:
        return _endpoint(self.method, self.path)


SPECS: tuple[ToolSpec, ...] = (
    ToolSpec(
        "list_passports", "List passports",
        "List or search the workspace's digital product passports, oldest first, filtered by "
        "status and collection; page with `cursor` (the previous page's `next_cursor`).",
        "GET", "/api/v1/passports", read_only=True,
    ),
    ToolSpec(
        "get_passport", "Get a passport", "One passport by its id (psp_…).",
        "GET", "/api/v1/passports/{passport_id}", read_only=True,
    ),
    ToolSpec(
        "create_passport", "Create a passport",
        "Create a draft (or published) passport: GTIN with a valid GS1 check digit, serial "
        "number, product name, optionally a collection.",
        "POST", "/api/v1/passports", read_only=False,
    ),
    ToolSpec(
        "update_passport", "Update a passport", "Change the given fields of a passport.",
        "PATCH", "/api/v1/passports/{passport_id}", read_only=False,
    ),
    ToolSpec(
        "publish_passport", "Publish a passport", "Set a passport's status to published.",
        "PATCH", "/api/v1/passports/{passport_id}", read_only=False,
        fixed_body={"status": "published"}, body_arguments=False,
    ),
    ToolSpec(
        "delete_passport", "Delete a passport", "Delete a passport for good.",
        "DELETE", "/api/v1/passports/{passport_id}", read_only=False, destructive=True,
        body_arguments=False,
    ),
    ToolSpec(
        "get_usage", "Usage and budgets",
        "The workspace's plan, its daily budgets (writes, passport reads) and today's use of "
        "them; they reset at 00:00 UTC.",
        "GET", "/api/v1/usage", read_only=True,
    ),
    ToolSpec(
        "list_audit_events", "List audit events",
        "The workspace's tamper-evident audit log, newest first, filtered by action, actor "
        "and time.",
        "GET", "/api/v1/audit-events", read_only=True,
    ),
)
BY_NAME = {spec.name: spec for spec in SPECS}


@cache
def _endpoint(method: str, path: str) -> Endpoint:
    sample = path
    for name in [p[1:-1] for p in path.split("/") if p.startswith("{")]:
        sample = sample.replace("{" + name + "}", _SAMPLE_ID)
    endpoints = endpoints_of(resolve(sample).func)
    endpoint = endpoint_for(endpoints or {}, method)
    if endpoint is None:
        raise LookupError(f"{method} {path} is not a declared API operation.")
    return endpoint


def _resolved(document: dict[str, Any], node: Any) -> Any:
    """`node` with every local `$ref` replaced by what it points at."""
    if isinstance(node, dict):
        ref = node.get("$ref")
        if isinstance(ref, str) and ref.startswith("#/"):
            target: Any = document
            for part in ref[2:].split("/"):
                target = target[part]
            return _resolved(document, target)
        return {key: _resolved(document, value) for key, value in node.items()}
    if isinstance(node, list):
        return [_resolved(document, value) for value in node]
    return node


def _input_schema(document: dict[str, Any], spec: ToolSpec) -> dict[str, Any]:
    operation = document["paths"][spec.path][spec.method.lower()]
    properties: dict[str, Any] = {}
    required: list[str] = []
    for parameter in operation.get("parameters", []):
        where = parameter["in"]
        if where == "header":
            if parameter["name"] == "Idempotency-Key":
                properties[IDEMPOTENCY_ARGUMENT] = copy.deepcopy(parameter["schema"]) | {
                    "description": "Makes the call safe to retry: the same key with the same "
                                   "arguments within 24 hours returns the first result, "
                                   "counted once.",
                }
            continue
        schema = copy.deepcopy(parameter["schema"])
        if parameter.get("description"):
            schema["description"] = parameter["description"]
        properties[parameter["name"]] = schema
        if parameter.get("required"):
            required.append(parameter["name"])
    body = operation.get("requestBody")
    if body is not None and spec.body_arguments:
        schema = _resolved(document, body["content"]["application/json"]["schema"])
        for name, member in schema.get("properties", {}).items():
            properties[name] = member
        required.extend(schema.get("required", []))
    return {
        "type": "object",
        "properties": properties,
        "required": required,
        "additionalProperties": False,
    }


@dataclass(frozen=True, slots=True)
class Tool:
    spec: ToolSpec
    endpoint: Endpoint
    input_schema: dict[str, Any]

    @property
    def name(self) -> str:
        return self.spec.name


@cache
def all_tools() -> dict[str, Tool]:
    """Every tool, built once per process from the OpenAPI document and the declarations."""
    document = build_document()
    return {
        spec.name: Tool(spec, spec.endpoint(), _input_schema(document, spec)) for spec in SPECS
    }


def tools_for(*, readonly: bool) -> list[Tool]:
    """`/mcp/readonly` lists (and answers) only the tools that change nothing."""
    return [tool for tool in all_tools().values() if tool.spec.read_only or not readonly]


def mcp_scopes() -> list[str]:
    """The scopes the MCP server's tools need (its RFC 9728 `scopes_supported`)."""
    scopes = [tool.endpoint.scope for tool in all_tools().values() if tool.endpoint.scope]
    return list(dict.fromkeys(scopes))


def read_scopes() -> list[str]:
    scopes = [t.endpoint.scope for t in tools_for(readonly=True) if t.endpoint.scope]
    return list(dict.fromkeys(scopes))
