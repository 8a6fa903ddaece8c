"""One `tools/call`, run as the API request it corresponds to, through the gateway.

The MCP view has already authenticated the HTTP request (at the `/mcp` resource). A call:

1. checks the arguments' shape against the tool's input schema — names, required members and
   JSON types only (`ArgumentError`, a JSON-RPC `-32602`); values (a GTIN's check digit, a
   limit's range, an id's form) are the API view's to judge, with the API's error codes;
2. builds the API request — method, path, query string, JSON body, `Idempotency-Key` from the
   `idempotency_key` argument — as a copy of the MCP request's environ (same client address,
   user agent and `Authorization`), marked with the tool (`mcp_tool`: audit door `mcp` and
   `metadata.tool`; `usage_path`: the key's recent requests show `/mcp/tools/<name>`);
3. hands it to `ApiGatewayMiddleware.pass_gate` — the same method the API's `process_view`
   calls: scope ∩ role, the key's rate limit, idempotency, the daily budget — then to the
   operation's own view (collections, validation, services and their audit events), then to
   the gateway's `finish` (the idempotency record, budget give-back, usage).

The answer is the API's response; `mcp_server.views` turns it into a tool result.
"""

from __future__ import annotations

import io
import json
from collections.abc import Mapping
from functools import cache
from typing import Any
from urllib.parse import quote, urlencode

from django.core.handlers.wsgi import WSGIRequest
from django.http import HttpRequest, HttpResponse
from django.urls import resolve

from apikit.principal import Principal
from gateway.middleware import ApiGatewayMiddleware

from .tools import IDEMPOTENCY_ARGUMENT, Tool

_JSON_TYPES: dict[str, tuple[type, ...]] = {
    "string": (str,),
    "integer": (int,),
    "number": (int, float),
    "boolean": (bool,),
    "null": (type(None),),
    "object": (dict,),
    "array": (list,),
}
# Environ entries the API request must not inherit from the MCP request.
_DROPPED = ("HTTP_IDEMPOTENCY_KEY", "HTTP_TRANSFER_ENCODING", "wsgi.input_terminated",
            "HTTP_CONTENT_TYPE", "HTTP_CONTENT_LENGTH")


class ArgumentError(Exception):
    """Arguments that do not fit the tool's input schema (JSON-RPC -32602)."""

    def __init__(self, message: str, fields: dict[str, str]) -> None:
        super().__init__(message)
        self.message = message
        self.fields = fields


@cache
def gateway() -> ApiGatewayMiddleware:
    """The gateway pipeline of this process, as the API's middleware is built (its verifiers
    resolved once). Its `get_response` is never called: tool calls use `pass_gate`."""
    return ApiGatewayMiddleware(lambda request: HttpResponse(status=500))


def _has_json_type(value: Any, expected: object) -> bool:
    names = expected if isinstance(expected, list) else [expected]
    for name in names:
        types = _JSON_TYPES.get(name) if isinstance(name, str) else None
        if types is None:
            return True  # no type constraint the call could break
        if isinstance(value, bool) and name in {"integer", "number"}:
            continue
        if isinstance(value, types):
            return True
    return False


MAX_ARGUMENT_DEPTH = 32  # no tool's arguments nest; deeper is refused before anything walks it


def _value_problem(value: Any) -> str | None:
    """Why a value cannot be an argument, or None: a string that is not valid Unicode text (a
    lone surrogate, which JSON can spell but no URL, header or database text can hold), or
    nesting deeper than any tool takes. Walked without recursion."""
    stack: list[tuple[Any, int]] = [(value, 0)]
    while stack:
        item, depth = stack.pop()
        if depth > MAX_ARGUMENT_DEPTH:
            return "Nested too deeply."
        if isinstance(item, str):
            try:
                item.encode("utf-8")
            except UnicodeEncodeError:
                return "Must be valid Unicode text."
        elif isinstance(item, dict):
            stack.extend((k, depth + 1) for k in item)
            stack.extend((v, depth + 1) for v in item.values())
        elif isinstance(item, list):
            stack.extend((v, depth + 1) for v in item)
    return None


def check_arguments(tool: Tool, arguments: Mapping[str, Any]) -> None:
    schema = tool.input_schema
    properties: dict[str, Any] = schema["properties"]
    fields: dict[str, str] = {}
    for name, value in arguments.items():
        member = properties.get(name)
        if member is None:
            fields[str(name)[:64].encode("utf-8", "replace").decode()] = "Unknown argument."
        elif (problem := _value_problem(value)) is not None:
            fields[name] = problem
        elif not _has_json_type(value, member.get("type")):
            expected = member.get("type")
            words = " or ".join(expected) if isinstance(expected, list) else expected
            fields[name] = f"Must be of type {words}."
    for name in schema["required"]:
        if name not in arguments:
            fields[name] = "This argument is required."
    if fields:
        names = ", ".join(sorted(fields))
        raise ArgumentError(f"Invalid arguments for {tool.name}: {names}.", fields)


def api_request(
    request: HttpRequest, tool: Tool, arguments: Mapping[str, Any]
) -> tuple[WSGIRequest, str]:
    """The API request `tool` with `arguments` is, and its path."""
    spec = tool.spec
    path = spec.path
    for name in spec.path_parameters:
        path = path.replace("{" + name + "}", quote(str(arguments[name]), safe=""))
    consumed = {*spec.path_parameters, IDEMPOTENCY_ARGUMENT}
    rest = {k: v for k, v in arguments.items() if k not in consumed}
    query = ""
    body = b""
    if spec.method == "GET":
        query = urlencode({k: _query_value(v) for k, v in rest.items()})
    elif spec.body_arguments or spec.fixed_body is not None:
        body = json.dumps({**rest, **(spec.fixed_body or {})}).encode()
    environ = {k: v for k, v in request.META.items() if k not in _DROPPED}
    environ.update({
        "REQUEST_METHOD": spec.method,
        "PATH_INFO": path,
        "QUERY_STRING": query,
        "CONTENT_LENGTH": str(len(body)),
        "wsgi.input": io.BytesIO(body),
    })
    if body:
        environ["CONTENT_TYPE"] = "application/json"
    else:
        environ.pop("CONTENT_TYPE", None)
    if IDEMPOTENCY_ARGUMENT in arguments:
        environ["HTTP_IDEMPOTENCY_KEY"] = arguments[IDEMPOTENCY_ARGUMENT]
    return WSGIRequest(environ), path


def _query_value(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def run_tool(
    request: HttpRequest,
    tool: Tool,
    arguments: Mapping[str, Any],
    *,
    principal: Principal,
    resource: str,
) -> HttpResponse:
    """The API's response to the request the call corresponds to (see the module docstring)."""
    sub, path = api_request(request, tool, arguments)
    pipeline = gateway()
    pipeline.begin(sub)
    sub.request_id = request.request_id  # one id for the MCP request and what it ran
    sub.started = request.started
    sub.mcp_tool = tool.name
    sub.usage_path = f"{request.path_info.rstrip('/')}/tools/{tool.name}"
    sub.resource_metadata_path = request.resource_metadata_path
    sub.endpoint_scope = tool.endpoint.scope
    match = resolve(path)
    sub.resolver_match = match
    response = pipeline.pass_gate(sub, tool.endpoint, resource=resource, principal=principal)
    if response is None:
        response = match.func(sub, *match.args, **match.kwargs)
    return pipeline.finish(sub, response)
