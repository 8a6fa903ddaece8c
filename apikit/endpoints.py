"""Endpoint declarations of the JSON API: each endpoint declares its methods, the scope it
needs and the daily budget it costs with `api_endpoint`; the gateway middleware reads the
declaration before the view runs (405, 403 `insufficient_scope`, the budget it counts)."""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass
from functools import wraps
from http import HTTPStatus
from typing import Any

from django.core.exceptions import ObjectDoesNotExist
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse

from core.pagination import InvalidPageRequest
from workspaces.quotas import Budget

from .errors import ApiError, error_response, invalid_request, not_found

ANY_METHOD = "*"
# What `request.api_view_runner` is, when the gateway sets it: `runner(request, answer)` calls
# `answer()` (the view, its `ApiError`s already turned into responses) and returns its response.
ViewRunner = Callable[[HttpRequest, Callable[[], HttpResponse]], HttpResponse]


@dataclass(frozen=True, slots=True)
class Endpoint:
    """What one method of one route requires: `scope` (None: any authenticated caller) or
    nothing at all when `public`; and the daily budget each request counts against (`budget`,
    SPEC §5; None: none)."""

    scope: str | None = None
    public: bool = False
    budget: Budget | None = None


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
    *,
    scope: str | None = None,
    methods: Collection[str] = ("GET",),
    public: bool = False,
    budget: str | None = None,
) -> Callable[[Callable[..., HttpResponse]], Callable[..., HttpResponse]]:
    """Declare a JSON endpoint: the methods it answers, the scope each needs and the daily
    budget it costs (`budget`: "writes", "passport_reads" or None; `HEAD` costs what `GET` does).

    The gateway middleware enforces the declaration before the view runs (405 with `Allow`;
    authentication unless `public`; 403 `insufficient_scope`). The wrapper turns `ApiError`,
    `InvalidPageRequest` and `DoesNotExist` into JSON errors, is CSRF-exempt (the API
    authenticates with tokens, never cookies), never the target of an APPEND_SLASH redirect,
    and refuses to run without a principal, so a missing middleware fails closed.
    """

    cost = Budget(budget) if budget is not None else None  # an unknown name fails at import

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
            def answer() -> HttpResponse:
                try:
                    return view(request, *args, **kwargs)
                except ApiError as exc:
                    return exc.response(request)
                except InvalidPageRequest as exc:
                    return invalid_request({exc.field: exc.message}).response(request)
                except (ObjectDoesNotExist, Http404):
                    return not_found().response(request)

            # The gateway may run the view inside its own transaction (an idempotent write:
            # the change, its audit events and the stored response commit together).
            runner: ViewRunner | None = getattr(request, "api_view_runner", None)
            return runner(request, answer) if runner is not None else answer()

        declared = {
            method.upper(): Endpoint(scope=scope, public=public, budget=cost)
            for method in methods
        }
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
