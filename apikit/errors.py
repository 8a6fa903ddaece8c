"""The JSON API's error vocabulary (SPEC §4) and the project's error handlers.

Every error under `/api/` is `{"error": "<code>", "message": "<one sentence>"}`, plus `fields`
for `invalid_request`, `required_scope` for `insufficient_scope` and `request_id` for
`server_error`. `ERROR_CODES` is the one list of codes: the OpenAPI document, docs/api.md and the
tests read it.

`handler400/403/404/500` (wired in `config/urls.py`) answer JSON for paths under `/api/` and
render the dashboard's templates everywhere else.
"""

from __future__ import annotations

import logging
import re
import secrets
from http import HTTPStatus
from typing import Any

from django.http import HttpRequest, HttpResponse, JsonResponse
from django.views import defaults

logger = logging.getLogger("apikit.requests")

API_PREFIX = "/api/"

# code → (HTTP status, when it is answered). Order: by status, as in SPEC §4's table.
ERROR_CODES: dict[str, tuple[int, str]] = {
    "invalid_request": (400, "Malformed JSON, a bad field, a bad parameter or header; `fields` "
                             "names each problem."),
    "missing_credentials": (401, "No credential: send `Authorization: Bearer <token>`."),
    "invalid_credentials": (401, "The credential is malformed, unknown, or sent with an "
                                 "unsupported scheme."),
    "key_revoked": (401, "The API key was revoked."),
    "key_expired": (401, "The API key expired (or its rotation overlap ended)."),
    "key_paused": (401, "The API key is paused; an admin can resume it."),
    "environment_mismatch": (401, "The API key belongs to another environment (gk_prod_, "
                                  "gk_stg_, gk_dev_)."),
    "invalid_token": (401, "The OAuth access token is unknown, expired or revoked."),
    "overage_required": (402, "The plan's passport cap is reached on a plan with overage."),
    "insufficient_scope": (403, "The credential lacks the scope the endpoint requires; "
                                "`required_scope` names it."),
    "ip_not_allowed": (403, "The API key may not be used from the client's IP address."),
    "app_not_approved": (403, "The OAuth app's grant awaits approval by a workspace admin "
                              "(the workspace's app access policy); the message says who can "
                              "approve it."),
    "policy_violation": (403, "The API key breaks its workspace's enforced credential policy "
                              "(the message names the rule); it works again once edited to "
                              "comply."),
    "plan_limit_reached": (403, "The plan's passport cap is reached (no overage on this plan)."),
    "not_found": (404, "No such endpoint, or no such object in the caller's workspace."),
    "method_not_allowed": (405, "The endpoint does not support the method; `Allow` lists those "
                                "it does."),
    "conflict": (409, "The object conflicts with an existing one (a passport's GTIN and serial "
                      "number are unique in a workspace)."),
    "idempotency_key_in_use": (409, "A request with the same Idempotency-Key is still running."),
    "request_too_large": (413, "The request body is larger than 1 MiB."),
    "unsupported_media_type": (415, "A write's body is not `application/json`."),
    "idempotency_key_reused": (422, "The Idempotency-Key was used with a different request."),
    "rate_limited": (429, "Too many requests (per-key rate limit, or unrecognised tokens from the "
                          "client's address; never for a valid or known credential); wait "
                          "`Retry-After` seconds."),
    "quota_exceeded": (429, "The workspace's daily budget is spent (`Retry-After`: the time to "
                            "the next UTC midnight), or the credential's own daily cap or "
                            "credits are (`Retry-After`: the time to their reset or refill; "
                            "none for credits that never refill)."),
    "server_error": (500, "An unexpected error; `request_id` identifies it in the server's logs."),
    "service_unavailable": (503, "A backing service is down; nothing was changed."),
}

# RFC 6750 §3: error_description is limited to printable ASCII without `"` and `\`.
_UNSAFE_DESCRIPTION = re.compile(r'[^\x20\x21\x23-\x5b\x5d-\x7e]')


class ApiError(Exception):
    """Raised by an endpoint (or a helper it calls) to answer with a JSON error."""

    def __init__(
        self,
        status: int,
        error: str,
        message: str,
        *,
        fields: dict[str, str] | None = None,
        headers: dict[str, str] | None = None,
        **extra: Any,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.error = error
        self.message = message
        self.fields = fields
        self.headers = headers or {}
        self.extra = extra

    def response(self, request: HttpRequest) -> JsonResponse:
        return error_response(
            request, self.status, self.error, self.message, fields=self.fields,
            headers=self.headers, **self.extra,
        )


def invalid_request(fields: dict[str, str]) -> ApiError:
    """400 `invalid_request` naming every bad field; the message is one sentence about them."""
    if len(fields) == 1:
        ((name, problem),) = fields.items()
        message = f"{name}: {problem}"
    else:
        message = f"These fields are invalid: {', '.join(sorted(fields))}."
    return ApiError(HTTPStatus.BAD_REQUEST, "invalid_request", message, fields=fields)


def not_found(message: str = "There is no such object in this workspace.") -> ApiError:
    return ApiError(HTTPStatus.NOT_FOUND, "not_found", message)


def error_response(
    request: HttpRequest,
    status: int,
    error: str,
    message: str,
    *,
    fields: dict[str, str] | None = None,
    headers: dict[str, str] | None = None,
    **extra: Any,
) -> JsonResponse:
    body: dict[str, Any] = {"error": error, "message": message}
    if fields is not None:
        body["fields"] = fields
    body.update(extra)
    response = JsonResponse(body, status=status)
    for name, value in (headers or {}).items():
        response[name] = value
    if status == HTTPStatus.UNAUTHORIZED and "WWW-Authenticate" not in response:
        response["WWW-Authenticate"] = www_authenticate(request)
    return response


SERVICE_UNAVAILABLE_RETRY_AFTER = 5


def service_unavailable(request: HttpRequest) -> JsonResponse:
    """503 `service_unavailable`: PostgreSQL or Redis is down (the metering step and
    `config.outages` both answer with this)."""
    return error_response(
        request, HTTPStatus.SERVICE_UNAVAILABLE, "service_unavailable",
        "A backing service is unavailable; nothing was changed. Retry in a few seconds.",
        headers={"Retry-After": str(SERVICE_UNAVAILABLE_RETRY_AFTER)},
    )


def resource_metadata_url(request: HttpRequest) -> str:
    """RFC 9728 §3: where this protected resource's metadata document lives (the MCP server,
    another resource, sets `request.resource_metadata_path` to its own)."""
    path = getattr(request, "resource_metadata_path", "/.well-known/oauth-protected-resource")
    return request.build_absolute_uri(path)


def www_authenticate(
    request: HttpRequest,
    *,
    error: str | None = None,
    description: str | None = None,
    scope: str | None = None,
) -> str:
    """A `Bearer` challenge (RFC 6750 §3) with `resource_metadata` (RFC 9728 §5.1).

    `error` is left out when the request carried no usable credential (missing, or an unsupported
    scheme), as RFC 6750 §3.1 asks; `invalid_token` otherwise, `insufficient_scope` on 403s,
    `invalid_request` on a 400 with two credentials. `scope` (RFC 6750 §3) is the scope the
    endpoint requires — given, or the one the gateway found for the route
    (`request.endpoint_scope`) — so an MCP client asks for exactly it (MCP authorization,
    "Scope Selection Strategy"); left out for endpoints any credential may call.
    """
    scope = scope or getattr(request, "endpoint_scope", None)
    params = ['realm="gatehouse"']
    if error:
        params.append(f'error="{error}"')
        if description:
            params.append(f'error_description="{_UNSAFE_DESCRIPTION.sub("", description)}"')
    if scope:
        params.append(f'scope="{scope}"')
    params.append(f'resource_metadata="{resource_metadata_url(request)}"')
    return "Bearer " + ", ".join(params)


def new_request_id() -> str:
    return f"req_{secrets.token_hex(12)}"


def is_api_path(request: HttpRequest) -> bool:
    return request.path_info.startswith(API_PREFIX)


# --- Django's error handlers (config/urls.py) ---------------------------------------------------


def handler400(request: HttpRequest, exception: Exception | None = None) -> HttpResponse:
    if is_api_path(request):
        return JsonResponse(
            {"error": "invalid_request", "message": "The request is malformed.", "fields": {}},
            status=HTTPStatus.BAD_REQUEST,
        )
    return defaults.bad_request(request, exception)


def handler403(request: HttpRequest, exception: Exception | None = None) -> HttpResponse:
    if is_api_path(request):
        return JsonResponse(
            {"error": "forbidden", "message": "This request is not allowed."},
            status=HTTPStatus.FORBIDDEN,
        )
    return defaults.permission_denied(request, exception)


def handler404(request: HttpRequest, exception: Exception | None = None) -> HttpResponse:
    if is_api_path(request):
        return JsonResponse(
            {"error": "not_found", "message": "There is no API endpoint at this path."},
            status=HTTPStatus.NOT_FOUND,
        )
    return defaults.page_not_found(request, exception)


def handler500(request: HttpRequest) -> HttpResponse:
    """No traceback leaves the server: the client gets a request id that is in the log."""
    if is_api_path(request):
        request_id = getattr(request, "request_id", None) or new_request_id()
        logger.error("Server error %s on %s %s", request_id, request.method, request.path_info)
        return JsonResponse(
            {
                "error": "server_error",
                "message": f"Something went wrong on our side; quote {request_id} if you "
                           "contact support.",
                "request_id": request_id,
            },
            status=HTTPStatus.INTERNAL_SERVER_ERROR,
        )
    return defaults.server_error(request)
