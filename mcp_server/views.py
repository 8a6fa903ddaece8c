"""`/mcp` and `/mcp/readonly`: the MCP streamable HTTP transport, stateless, JSON responses
(MCP 2025-11-25 "Transports"; SPEC §14). A door: it speaks JSON-RPC with the `mcp` SDK's wire
types (`mcp.types`) and leaves every decision about access to the gateway.

One POST carries one JSON-RPC message. In order:

1. the gateway's size limits (URL, chunked and declared body; 414/413), then authentication of
   the `Authorization` header at this resource (`<origin>/mcp`, RFC 8707: a token bound to
   `/api/v1` is refused, and `/api/v1` refuses tokens bound here). A refusal keeps the API's
   status and headers — 401 with `WWW-Authenticate: Bearer … resource_metadata=
   "…/.well-known/oauth-protected-resource/mcp"`, which MCP clients follow to discovery — and its
   body is a JSON-RPC error whose `data` is the API's error object;
2. the message: malformed JSON `-32700` (400), not a JSON-RPC 2.0 request or a batch (batches
   were removed in MCP 2025-06-18) `-32600` (400); a notification or a response is accepted
   with 202 and no body;
3. the method: `initialize`, `ping`, `tools/list`, `tools/call`; anything else `-32601`.
   Unknown tools and arguments of the wrong shape are `-32602`. A request other than a tool
   call passes the gateway's gate as an endpoint without scope or budget (a cached key is
   confirmed, the key's rate limit counts it, its usage is recorded under `/mcp`).
4. `tools/call` runs the API operation behind the gateway (`mcp_server.calls`). The API's
   answer becomes the tool result: `structuredContent` is the API's JSON, `isError` when it
   refused (`structuredContent` is then `{"error", "message", …}`, the API's own). A missing
   scope is not the tool's error but the caller's: HTTP 403 with the step-up challenge
   (`error="insufficient_scope", scope="…"`) and a JSON-RPC error carrying
   `insufficient_scope`, so an MCP client can ask the user for more (MCP authorization,
   "Scope Challenge Handling"). A credential refused on the way (a cached key revoked
   meanwhile) is a 401 the same way.

No sessions (`Mcp-Session-Id` is never issued), no server-to-client stream: `GET` and `DELETE`
answer 405. `settings.GATEHOUSE_MCP_ENABLED = False` makes every path here a 404.
"""

from __future__ import annotations

import json
import logging
from http import HTTPStatus
from typing import Any

import mcp.types as types
from django.conf import settings
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.utils.cache import patch_vary_headers
from django.views.decorators.csrf import csrf_exempt
from mcp.types.version import HANDSHAKE_PROTOCOL_VERSIONS, KNOWN_PROTOCOL_VERSIONS
from pydantic import ValidationError

from apikit.endpoints import Endpoint
from apikit.principal import Principal
from oauth.resources import MCP_RESOURCE_PATH, request_origin, resource_at

from .calls import ArgumentError, check_arguments, gateway, run_tool
from .tools import Tool, read_scopes, tools_for

logger = logging.getLogger("gatehouse.mcp")

SERVER_NAME = "gatehouse"
SERVER_VERSION = "1.0.0"
METADATA_PATH = "/.well-known/oauth-protected-resource" + MCP_RESOURCE_PATH
# JSON-RPC server-error codes (the -32000 range) for refusals at the HTTP level; the API's own
# error code is in `data.error` either way.
CREDENTIAL_REFUSED = -32011  # 401, 429 of the authentication step
INSUFFICIENT_SCOPE = -32013  # 403 with the step-up challenge
REQUEST_REFUSED = -32012  # 413, 414, 415
INSTRUCTIONS = (
    "Gatehouse: the digital product passports of one workspace (the one your credential "
    "belongs to). Every tool call is an API request: it needs the scope its description names, "
    "counts against the workspace's daily budgets (see get_usage) and is in the audit log."
)
# What `initialize`, `ping` and `tools/list` require of the gateway: a live credential.
PROTOCOL_ENDPOINT = Endpoint()
_COPIED_HEADERS = ("WWW-Authenticate", "Retry-After", "Connection")


def _error(
    id_: types.RequestId | None, code: int, message: str, *, status: int = HTTPStatus.OK,
    data: Any = None, headers: dict[str, str] | None = None,
) -> JsonResponse:
    error = types.JSONRPCError(
        jsonrpc="2.0", id=id_, error=types.ErrorData(code=code, message=message, data=data)
    )
    body = error.model_dump(by_alias=True, mode="json", exclude_none=True)
    body["id"] = id_  # JSON-RPC 2.0 §5: null when the request's id could not be read
    response = JsonResponse(body, status=status)
    for name, value in (headers or {}).items():
        response[name] = value
    return response


def _result(id_: types.RequestId, result: Any) -> JsonResponse:
    message = types.JSONRPCResponse(
        jsonrpc="2.0", id=id_, result=result.model_dump(by_alias=True, mode="json",
                                                        exclude_none=True),
    )
    return JsonResponse(message.model_dump(by_alias=True, mode="json", exclude_none=True))


def _from_api(
    id_: types.RequestId | None, response: HttpResponse, code: int
) -> JsonResponse:
    """An API refusal (status, challenge headers) as a JSON-RPC error with the API's body."""
    body = _api_body(response)
    answer = _error(
        id_, code, str(body.get("message") or "The request was refused."),
        status=response.status_code, data=body,
    )
    for name in _COPIED_HEADERS:
        if name in response:
            answer[name] = response[name]
    return answer


def _api_body(response: HttpResponse) -> dict[str, Any]:
    if not response.content:
        return {}
    try:
        body = json.loads(response.content)
    except ValueError:
        return {"error": "server_error", "message": "The API's answer was not JSON."}
    return body if isinstance(body, dict) else {"data": body}


def mcp_resource(request: HttpRequest) -> str:
    return resource_at(request_origin(request), MCP_RESOURCE_PATH)


def disabled_response() -> JsonResponse:
    return JsonResponse(
        {"error": "not_found", "message": "This deployment does not run an MCP server."},
        status=HTTPStatus.NOT_FOUND,
    )


@csrf_exempt
def mcp_endpoint(request: HttpRequest, *, readonly: bool = False) -> HttpResponse:
    if not settings.GATEHOUSE_MCP_ENABLED:
        return disabled_response()
    pipeline = gateway()
    pipeline.begin(request)
    request.resource_metadata_path = METADATA_PATH
    # The 401 challenge names what this server's tools need, so a client asks for just that.
    request.endpoint_scope = " ".join(read_scopes()) if readonly else None
    response = _serve(request, readonly=readonly)
    patch_vary_headers(response, ("Authorization",))
    response["X-Request-Id"] = request.request_id
    return response


def _serve(request: HttpRequest, *, readonly: bool) -> HttpResponse:
    if request.method != "POST":
        response = _error(
            None, types.INVALID_REQUEST,
            "This MCP server is stateless and offers no event stream: POST one JSON-RPC "
            "message per request.", status=HTTPStatus.METHOD_NOT_ALLOWED,
        )
        response["Allow"] = "POST"
        return response
    pipeline = gateway()
    refused = (
        pipeline.refuse_oversized_url(request)
        or pipeline.read_chunked_body(request)
        or pipeline.refuse_oversized_body(request)
    )
    if refused is not None:
        return _from_api(None, refused, REQUEST_REFUSED)
    principal = pipeline.authenticate(request, resource=mcp_resource(request))
    if isinstance(principal, HttpResponse):
        return _from_api(None, principal, CREDENTIAL_REFUSED)
    content_type = request.content_type or ""
    if request.body and content_type != "application/json":
        return _error(
            None, REQUEST_REFUSED, "Send the JSON-RPC message as application/json.",
            status=HTTPStatus.UNSUPPORTED_MEDIA_TYPE,
            data={"error": "unsupported_media_type",
                  "message": "Send the JSON-RPC message as application/json."},
        )
    version = request.headers.get("MCP-Protocol-Version")
    if version is not None and version not in KNOWN_PROTOCOL_VERSIONS:
        return _error(
            None, types.INVALID_REQUEST,
            f"Unsupported MCP-Protocol-Version; this server speaks "
            f"{', '.join(HANDSHAKE_PROTOCOL_VERSIONS)}.", status=HTTPStatus.BAD_REQUEST,
        )
    try:
        message = json.loads(request.body)
    except (ValueError, RecursionError):
        return _error(None, types.PARSE_ERROR, "The body is not valid JSON.",
                      status=HTTPStatus.BAD_REQUEST)
    if isinstance(message, list):
        return _error(None, types.INVALID_REQUEST,
                      "Batches are not supported: send one JSON-RPC message per request.",
                      status=HTTPStatus.BAD_REQUEST)
    if not isinstance(message, dict) or message.get("jsonrpc") != "2.0":
        return _error(None, types.INVALID_REQUEST, "Not a JSON-RPC 2.0 message.",
                      status=HTTPStatus.BAD_REQUEST)
    if "method" not in message:
        if "id" in message and ("result" in message or "error" in message):
            return HttpResponse(status=HTTPStatus.ACCEPTED)  # a response to nothing we asked
        return _error(None, types.INVALID_REQUEST, "Not a JSON-RPC 2.0 message.",
                      status=HTTPStatus.BAD_REQUEST)
    if "id" not in message:
        try:
            types.JSONRPCNotification.model_validate(message)
        except (ValidationError, RecursionError):
            return _error(None, types.INVALID_REQUEST, "Not a JSON-RPC 2.0 notification.",
                          status=HTTPStatus.BAD_REQUEST)
        return HttpResponse(status=HTTPStatus.ACCEPTED)
    try:
        rpc = types.JSONRPCRequest.model_validate(message)
    except (ValidationError, RecursionError):
        id_ = message.get("id")
        valid_id = id_ if isinstance(id_, (str, int)) and not isinstance(id_, bool) else None
        return _error(valid_id, types.INVALID_REQUEST, "Not a JSON-RPC 2.0 request.",
                      status=HTTPStatus.BAD_REQUEST)
    if rpc.method != "tools/call":
        # Not an API operation, but still a request of this credential: the gate confirms a
        # cached key (a revoked one is refused here too) and counts the key's rate limit;
        # no scope, no budget, no idempotency (the header means nothing at this level).
        request.META.pop("HTTP_IDEMPOTENCY_KEY", None)
        refused = pipeline.pass_gate(request, PROTOCOL_ENDPOINT,
                                     resource=mcp_resource(request), principal=principal)
        if refused is not None:
            return pipeline.finish(request, _from_api(rpc.id, refused, CREDENTIAL_REFUSED))
        return pipeline.finish(request, _dispatch(request, rpc, principal, readonly=readonly))
    return _dispatch(request, rpc, principal, readonly=readonly)


def _dispatch(
    request: HttpRequest, rpc: types.JSONRPCRequest, principal: Principal, *, readonly: bool
) -> HttpResponse:
    params = rpc.params or {}
    if rpc.method == "initialize":
        return _initialize(rpc, params)
    if rpc.method == "ping":
        return _result(rpc.id, types.EmptyResult())
    if rpc.method == "tools/list":
        tools = [_tool_definition(tool) for tool in tools_for(readonly=readonly)]
        return _result(rpc.id, types.ListToolsResult(tools=tools))
    if rpc.method == "tools/call":
        return _call(request, rpc, params, principal, readonly=readonly)
    method = rpc.method[:64].encode("utf-8", "replace").decode()
    return _error(rpc.id, types.METHOD_NOT_FOUND, f"Method not found: {method}")


def _initialize(rpc: types.JSONRPCRequest, params: dict[str, Any]) -> HttpResponse:
    try:
        requested = types.InitializeRequestParams.model_validate(params).protocol_version
    except (ValidationError, RecursionError):
        return _error(rpc.id, types.INVALID_PARAMS, "Invalid initialize parameters.")
    # The client's version when this server speaks it, else the newest it does (the client
    # then decides whether to go on, as the lifecycle section says).
    version = requested if requested in HANDSHAKE_PROTOCOL_VERSIONS else (
        HANDSHAKE_PROTOCOL_VERSIONS[-1]
    )
    return _result(rpc.id, types.InitializeResult(
        protocol_version=version,
        capabilities=types.ServerCapabilities(tools=types.ToolsCapability(list_changed=False)),
        server_info=types.Implementation(name=SERVER_NAME, title="Gatehouse",
                                         version=SERVER_VERSION),
        instructions=INSTRUCTIONS,
    ))


def _tool_definition(tool: Tool) -> types.Tool:
    spec, endpoint = tool.spec, tool.endpoint
    costs = {"writes": "one write", "passport_reads": "one passport read"}
    cost = costs.get(endpoint.budget.value if endpoint.budget else "", "nothing")
    scope = endpoint.scope or "none (any credential)"
    return types.Tool(
        name=spec.name,
        title=spec.title,
        description=f"{spec.description} Scope: {scope}. Costs {cost} of the daily budget.",
        input_schema=tool.input_schema,
        annotations=types.ToolAnnotations(
            title=spec.title, read_only_hint=spec.read_only,
            destructive_hint=spec.destructive if not spec.read_only else None,
            idempotent_hint=spec.method in {"GET", "PATCH", "DELETE"},
            open_world_hint=False,
        ),
        meta={
            "gatehouse/scope": endpoint.scope,
            "gatehouse/budget": endpoint.budget.value if endpoint.budget else None,
            "gatehouse/operation": f"{spec.method} {spec.path}",
        },
    )


def _call(
    request: HttpRequest, rpc: types.JSONRPCRequest, params: dict[str, Any],
    principal: Principal, *, readonly: bool,
) -> HttpResponse:
    try:
        call = types.CallToolRequestParams.model_validate(params)
    except (ValidationError, RecursionError):
        return _error(rpc.id, types.INVALID_PARAMS,
                      "tools/call needs a tool name and an arguments object.")
    tool = {t.name: t for t in tools_for(readonly=readonly)}.get(call.name)
    if tool is None:
        name = call.name[:64].encode("utf-8", "replace").decode()
        return _error(rpc.id, types.INVALID_PARAMS, f"Unknown tool: {name}")
    arguments = call.arguments or {}
    try:
        check_arguments(tool, arguments)
    except ArgumentError as exc:
        return _error(rpc.id, types.INVALID_PARAMS, exc.message,
                      data={"error": "invalid_request", "message": exc.message,
                            "fields": exc.fields})
    response = run_tool(request, tool, arguments, principal=principal,
                        resource=mcp_resource(request))
    body = _api_body(response)
    if response.status_code == HTTPStatus.FORBIDDEN and body.get("error") == "insufficient_scope":
        return _from_api(rpc.id, response, INSUFFICIENT_SCOPE)
    if response.status_code == HTTPStatus.UNAUTHORIZED:
        return _from_api(rpc.id, response, CREDENTIAL_REFUSED)
    meta: dict[str, Any] = {"gatehouse/status": response.status_code,
                            "gatehouse/request_id": request.request_id}
    if response.get("Idempotent-Replayed") == "true":
        meta["gatehouse/idempotent_replayed"] = True
    if "X-RateLimit-Remaining" in response:
        meta["gatehouse/rate_limit"] = {
            "limit": int(response["X-RateLimit-Limit"]),
            "remaining": int(response["X-RateLimit-Remaining"]),
            "reset": int(response["X-RateLimit-Reset"]),
        }
    if "Retry-After" in response:
        meta["gatehouse/retry_after"] = int(response["Retry-After"])
    if response.status_code >= HTTPStatus.BAD_REQUEST:
        text = f"{body.get('error', 'error')}: {body.get('message', '')}"
        return _result(rpc.id, types.CallToolResult(
            content=[types.TextContent(type="text", text=text)],
            structured_content=body, is_error=True, meta=meta,
        ))
    if response.status_code == HTTPStatus.NO_CONTENT:
        body = {"deleted": True, "id": arguments.get("passport_id")}
    return _result(rpc.id, types.CallToolResult(
        content=[types.TextContent(type="text", text=json.dumps(body))],
        structured_content=body, meta=meta,
    ))
