"""The pieces of the JSON API's door (`/api/v1/`); `apikeys.middleware` puts them in order.

- `verify_api_key`: the `gk_` verifier of `settings.GATEHOUSE_TOKEN_VERIFIERS`.
- `api_endpoint` / `api_methods`: each endpoint declares its methods and the scope it needs;
  the middleware reads the declaration before the view runs (405, 403 `insufficient_scope`).
- `read_query` / `read_json_object`: strict parsing of parameters and bodies (400 naming the
  fields, 415 for non-JSON bodies), `list_response` for the list envelope.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import wraps
from http import HTTPStatus
from typing import Any

from django.conf import settings
from django.core.exceptions import ObjectDoesNotExist
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse

from audit.models import ActorType
from audit.services import Actor
from workspaces.pagination import MAX_LIMIT, InvalidPageRequest, parse_limit

from .credfilter import CredentialFamily
from .errors import ApiError, error_response, invalid_request, not_found
from .keycache import keycache_enabled
from .models import ApiKey
from .principal import AuthFailure, Principal
from .selectors import apikey_check_digest
from .tokens import ENVIRONMENT_PREFIXES, parse_token, token_digest

# --- Verification --------------------------------------------------------------------------------

_KEY_REFUSALS: dict[str, tuple[int, str]] = {
    "invalid_credentials": (HTTPStatus.UNAUTHORIZED, "The API key is not valid."),
    "key_revoked": (
        HTTPStatus.UNAUTHORIZED,
        "This API key has been revoked; create a new key in the dashboard.",
    ),
    "key_expired": (
        HTTPStatus.UNAUTHORIZED,
        "This API key has expired; create or rotate a key in the dashboard.",
    ),
    "key_paused": (
        HTTPStatus.UNAUTHORIZED,
        "This API key is paused; a workspace admin can resume it in the dashboard.",
    ),
    "ip_not_allowed": (
        HTTPStatus.FORBIDDEN,
        "This API key may not be used from your IP address; check the key's allowed IPs.",
    ),
}


def verify_api_key(
    token: str, *, ip: str | None, resource: str | None = None, fresh: bool = False
) -> Principal | AuthFailure:
    """`gk_` tokens: shape, checksum and environment without I/O, then `apikey_check_digest` (one
    indexed lookup by keyed digest, joined to the workspace and plan). `resource` (the resource
    being called) does not matter: a key is valid at every resource of this deployment (SPEC §14).

    With Redis, a key that passed may come from the per-process cache (`apikeys.keycache`); the
    principal then carries the `versions` that the metering step confirms in its one Redis call
    before the request is served, so a revocation is still seen by the next request on every
    process. `fresh` reads the row even when it is cached (the gateway's second look when a
    version moved)."""
    parsed = parse_token(token)
    if parsed is None:
        return AuthFailure(
            "invalid_credentials",
            "The API key is malformed: check that it was copied whole.",
            looked_up=False,
        )
    if parsed.environment != settings.GATEHOUSE_ENVIRONMENT:
        server = settings.GATEHOUSE_ENVIRONMENT
        return AuthFailure(
            "environment_mismatch",
            f"This is a {parsed.environment} key, but this server is {server}; use a "
            f"gk_{ENVIRONMENT_PREFIXES[server]}_ key.",
            looked_up=False,
        )
    check = apikey_check_digest(
        token_digest(token), ip=ip, cache=keycache_enabled(), fresh=fresh
    )
    if check.error is not None:
        status, message = _KEY_REFUSALS[check.error]
        return AuthFailure(check.error, message, status=status, known=check.key is not None)
    key = check.key
    return Principal(
        kind="api_key",
        id=key.public_id,
        name=key.name,
        workspace=key.workspace,
        scopes=frozenset(key.scopes),
        api_key=key,
        versions=check.versions,
    )


def _screen_api_key(token: str) -> str | None:
    parsed = parse_token(token)
    if parsed is None or parsed.environment != settings.GATEHOUSE_ENVIRONMENT:
        return None  # verify_api_key refuses it without I/O
    return token_digest(token)


# What the gateway's credential filter (`apikeys.credfilter`) knows about API keys: every key ever
# created, whatever its status, by its keyed digest.
verify_api_key.credential_family = CredentialFamily(
    screen=_screen_api_key,
    source=lambda: (ApiKey, "digest"),
    unknown=AuthFailure("invalid_credentials", _KEY_REFUSALS["invalid_credentials"][1]),
)


def actor_for_principal(principal: Principal | None) -> Actor:
    """Who an API write is attributed to in the audit log."""
    if principal is None:
        return Actor.system("api")
    kind = ActorType.API_KEY if principal.kind == "api_key" else ActorType.OAUTH_APP
    return Actor(kind, principal.id, principal.name)


# --- Endpoint declarations ---------------------------------------------------------------------

ANY_METHOD = "*"


@dataclass(frozen=True, slots=True)
class Endpoint:
    """What one method of one route requires: `scope` (None: any authenticated caller) or
    nothing at all when `public`."""

    scope: str | None = None
    public: bool = False


def endpoints_of(view: Callable) -> dict[str, Endpoint] | None:
    """The declared endpoints of a view by method; None for a view not declared with
    `api_endpoint` (the middleware then requires authentication and no scope)."""
    return getattr(view, "api_endpoints", None)


def endpoint_for(endpoints: Mapping[str, Endpoint], method: str) -> Endpoint | None:
    """The declaration that applies to `method`. `HEAD` is `GET` without the body (RFC 9110
    §9.3.2): same authentication, scope, budget and headers; the server drops the body."""
    endpoint = endpoints.get(method) or endpoints.get(ANY_METHOD)
    if endpoint is None and method == "HEAD":
        return endpoints.get("GET")
    return endpoint


def allowed_methods(endpoints: Mapping[str, Endpoint]) -> list[str]:
    methods = {method for method in endpoints if method != ANY_METHOD}
    if "GET" in methods:
        methods.add("HEAD")
    return sorted(methods)


def method_not_allowed(request: HttpRequest, endpoints: Mapping[str, Endpoint]) -> JsonResponse:
    allowed = allowed_methods(endpoints)
    return error_response(
        request,
        HTTPStatus.METHOD_NOT_ALLOWED,
        "method_not_allowed",
        f"{request.method[:16]} is not allowed here; use {' or '.join(allowed)}.",
        headers={"Allow": ", ".join(allowed)},
    )


def api_endpoint(
    *, scope: str | None = None, methods: Collection[str] = ("GET",), public: bool = False
) -> Callable[[Callable[..., HttpResponse]], Callable[..., HttpResponse]]:
    """Declare a JSON endpoint: the methods it answers and the scope each needs.

    The gateway middleware enforces the declaration before the view runs (405 with `Allow`;
    authentication unless `public`; 403 `insufficient_scope`). The wrapper turns `ApiError`,
    `InvalidPageRequest` and `DoesNotExist` into JSON errors, is CSRF-exempt (the API
    authenticates with tokens, never cookies), never the target of an APPEND_SLASH redirect,
    and refuses to run without a principal, so a missing middleware fails closed.
    """

    def decorator(view: Callable[..., HttpResponse]) -> Callable[..., HttpResponse]:
        @wraps(view)
        def endpoint_view(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
            endpoint = endpoint_for(endpoint_view.api_endpoints, request.method)
            if endpoint is None:
                return method_not_allowed(request, endpoint_view.api_endpoints)
            if not endpoint.public and getattr(request, "principal", None) is None:
                return error_response(
                    request, HTTPStatus.UNAUTHORIZED, "missing_credentials",
                    "Send an API key or access token: Authorization: Bearer <token>.",
                )
            try:
                return view(request, *args, **kwargs)
            except ApiError as exc:
                return exc.response(request)
            except InvalidPageRequest as exc:
                return invalid_request({exc.field: exc.message}).response(request)
            except (ObjectDoesNotExist, Http404):
                return not_found().response(request)

        declared = {method.upper(): Endpoint(scope=scope, public=public) for method in methods}
        endpoint_view.api_endpoints = declared
        endpoint_view.csrf_exempt = True
        # No APPEND_SLASH redirects into the API (a redirected POST loses its body): 404 instead.
        endpoint_view.should_append_slash = False
        return endpoint_view

    return decorator


def api_methods(*handlers: Callable[..., HttpResponse]) -> Callable[..., HttpResponse]:
    """One route served by several `api_endpoint` handlers, one per method:
    `path("passports", api_methods(list_passports, create_passport))`."""
    by_method: dict[str, Callable[..., HttpResponse]] = {}
    endpoints: dict[str, Endpoint] = {}
    for handler in handlers:
        declared = endpoints_of(handler)
        if not declared:
            raise TypeError(f"{handler.__name__} is not declared with @api_endpoint.")
        for method, endpoint in declared.items():
            if method in by_method:
                raise TypeError(f"Two handlers for {method}.")
            by_method[method] = handler
            endpoints[method] = endpoint

    def dispatch(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        handler = by_method.get(request.method)
        if handler is None and request.method == "HEAD":
            handler = by_method.get("GET")
        if handler is None:
            return method_not_allowed(request, endpoints)
        return handler(request, *args, **kwargs)

    dispatch.api_endpoints = endpoints
    dispatch.csrf_exempt = True
    dispatch.should_append_slash = False
    dispatch.__name__ = "_".join(h.__name__ for h in handlers)
    return dispatch


# --- Requests and responses ----------------------------------------------------------------------

MAX_FIELD_NAME = 100
_TYPE_WORDS = {str: "a string", int: "an integer", bool: "true or false", list: "an array"}


def read_query(request: HttpRequest, *, allowed: Collection[str]) -> dict[str, str]:
    """The query parameters as a dict; 400 naming any unknown or repeated parameter (a typo in
    a filter must not silently return everything)."""
    errors: dict[str, str] = {}
    params: dict[str, str] = {}
    for name in request.GET:
        values = request.GET.getlist(name)
        if name not in allowed:
            errors[name[:MAX_FIELD_NAME]] = "Unknown parameter."
        elif len(values) > 1:
            errors[name] = "Give this parameter once."
        else:
            params[name] = values[0]
    if errors:
        raise invalid_request(errors)
    return params


def read_limit(query: Mapping[str, str]) -> int:
    """`?limit=` of a list: absent means the default; present it must be 1-100 (empty too is a
    400, not the default: `limit=` is a client bug worth reporting)."""
    raw = query.get("limit")
    if raw == "":
        raise InvalidPageRequest("limit", f"limit must be a whole number from 1 to {MAX_LIMIT}.")
    return parse_limit(raw)


def parse_timestamp(raw: str, field: str) -> datetime:
    """An ISO 8601 date-time (`2026-01-31T12:00:00Z`); naive times are read as UTC."""
    try:
        value = datetime.fromisoformat(raw.strip())
        return value.astimezone(UTC) if value.tzinfo is not None else value.replace(tzinfo=UTC)
    except (ValueError, OverflowError):
        raise invalid_request(
            {field: "Use an ISO 8601 date-time such as 2026-01-31T12:00:00Z."}
        ) from None


def _is_json(content_type: str) -> bool:
    return content_type == "application/json" or (
        content_type.startswith("application/") and content_type.endswith("+json")
    )


def _refuse_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for name, value in pairs:
        if name in result:
            raise invalid_request({name[:MAX_FIELD_NAME]: "This field appears twice."})
        result[name] = value
    return result


def _refuse_constant(name: str) -> None:
    raise ValueError(f"{name} is not valid JSON")


def read_json_object(
    request: HttpRequest,
    *,
    fields: Mapping[str, type],
    required: Collection[str] = (),
) -> dict[str, Any]:
    """The request body as a JSON object whose members are all in `fields` with those exact
    types (a number is not a string, `true` is not an integer, `null` is no value).

    415 for a body that is not `application/json` (or `application/*+json`); 400
    `invalid_request` for an empty or malformed body, a non-object, and for unknown, duplicate,
    missing or wrongly typed fields — each named in `fields`.
    """
    data = read_json(request)
    if not isinstance(data, dict):
        raise invalid_request({"body": "The body must be a JSON object."})
    return check_json_object(data, fields=fields, required=required)


def read_json(request: HttpRequest) -> Any:
    """The request body as any JSON value, strictly parsed (see `read_json_object`)."""
    if not request.body:
        raise invalid_request({"body": "The body is empty; send a JSON object."})
    if not _is_json(request.content_type or ""):
        raise ApiError(
            HTTPStatus.UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            "Send the body as JSON with Content-Type: application/json.",
        )
    charset = (request.content_params or {}).get("charset", "utf-8").lower()
    if charset not in {"utf-8", "utf8"}:
        raise ApiError(
            HTTPStatus.UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            "Send the JSON body in UTF-8.",
        )
    try:
        data = json.loads(
            request.body.decode("utf-8"),
            object_pairs_hook=_refuse_duplicates,
            parse_constant=_refuse_constant,
        )
    except UnicodeDecodeError:
        raise invalid_request({"body": "The body is not valid UTF-8."}) from None
    except json.JSONDecodeError as exc:
        raise invalid_request(
            {"body": f"The body is not valid JSON ({exc.msg} at line {exc.lineno} column "
                     f"{exc.colno})."}
        ) from None
    except (ValueError, RecursionError):
        raise invalid_request({"body": "The body is not valid JSON."}) from None
    return data


def check_json_object(
    data: dict[str, Any], *, fields: Mapping[str, type], required: Collection[str] = ()
) -> dict[str, Any]:
    """400 naming every unknown, missing or wrongly typed member of a parsed JSON object."""
    errors: dict[str, str] = {}
    for name in data:
        if name not in fields:
            errors[name[:MAX_FIELD_NAME]] = "Unknown field."
    for name in required:
        if name not in data:
            errors[name] = "This field is required."
    for name, expected in fields.items():
        if name not in data:
            continue
        if not _has_type(data[name], expected):
            errors[name] = f"Must be {_TYPE_WORDS[expected]}."
        elif expected is str and not is_unicode_text(data[name]):
            errors[name] = "Must be valid Unicode text (JSON allows lone surrogates; we do not)."
    if errors:
        raise invalid_request(dict(list(errors.items())[:50]))
    return data


def is_unicode_text(value: str) -> bool:
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:  # "\ud800" is valid JSON but cannot be stored as text
        return False
    return True


def _has_type(value: Any, expected: type) -> bool:
    if expected is int:
        return isinstance(value, int) and not isinstance(value, bool)
    return isinstance(value, expected)


def iso(value: datetime | None) -> str | None:
    """RFC 3339 in UTC with a `Z`, microseconds kept (so `since`/`until` round-trip)."""
    if value is None:
        return None
    return value.astimezone(UTC).isoformat().replace("+00:00", "Z")


def list_response(data: list[dict[str, Any]], next_cursor: str | None) -> JsonResponse:
    return JsonResponse({"data": data, "next_cursor": next_cursor})
