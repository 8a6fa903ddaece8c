"""A backing service is down: answer 503, in one place (SPEC §4 `service_unavailable`).

`ServiceUnavailableMiddleware` sits first in `settings.MIDDLEWARE` but for `config.cors` (which
touches no service, and so marks these 503s too) and turns an outage of PostgreSQL or Redis —
`django.db.OperationalError`/`InterfaceError`, redis-py's
`ConnectionError`/`TimeoutError`, or `core.counters.CounterUnavailable` — into a 503: JSON
`{"error": "service_unavailable", …}` under `/api/`, the `503.html` page everywhere else, with
`Retry-After`. Any other exception is left to Django (a 500).

Why a middleware and not only `handler500`: with `DEBUG=1` Django renders its technical 500 page
and never calls `handler500`, so a 503 that depends on it would exist in production only. The
middleware works either way, through two doors:

- `process_exception` catches what a view (or the rendering of its template) raises, before
  Django turns it into a 500;
- an exception raised by another middleware (the API gateway reading a key, the session loading
  for `request.user`, the session being saved on the way out) has already become a 500 response
  by the time it reaches the outermost middleware (Django wraps every middleware in
  `convert_exception_to_response`). Django sends `got_request_exception` while it handles such an
  exception; `_flag_outage` marks the request there, and `__call__` replaces that 500 with the
  503.

Nothing is half-written: every service writes its change and its audit event in one transaction,
which the database rolls back when the connection dies; counters taken from Redis are given back
by the metering middleware when the request is not served.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from functools import cache
from http import HTTPStatus
from typing import Any

from django.core.signals import got_request_exception
from django.db import InterfaceError, OperationalError
from django.http import HttpRequest, HttpResponse
from django.template import loader

logger = logging.getLogger("gatehouse.outages")

_FLAG = "_gatehouse_outage"


@cache
def _outage_types() -> tuple[type[BaseException], ...]:
    from core.counters import CounterUnavailable

    types: list[type[BaseException]] = [OperationalError, InterfaceError, CounterUnavailable]
    try:
        from redis.exceptions import ConnectionError as RedisConnectionError
        from redis.exceptions import TimeoutError as RedisTimeoutError
    except ImportError:  # redis is optional without REDIS_URL
        pass
    else:
        types += [RedisConnectionError, RedisTimeoutError]
    return tuple(types)


def outage_of(exc: BaseException | None) -> str | None:
    """Which dependency `exc` says is down (`database`, `redis`), or None for any other error.
    Follows `raise … from` and implicit chaining a few links deep, so a wrapped outage counts."""
    types = _outage_types()
    for _ in range(5):
        if exc is None:
            return None
        if isinstance(exc, types):
            if isinstance(exc, OperationalError | InterfaceError):
                return "database"
            return "redis"
        exc = exc.__cause__ or exc.__context__
    return None


def service_unavailable_response(request: HttpRequest, dependency: str) -> HttpResponse:
    """The 503: JSON under `/api/` (SPEC §4), a standalone page elsewhere. Neither touches the
    database or the cache: the page is rendered without a request context (no session, no
    `request.user`, no context processors)."""
    from apikit.errors import SERVICE_UNAVAILABLE_RETRY_AFTER, is_api_path, service_unavailable

    if is_api_path(request):
        response = service_unavailable(request)
        request_id = getattr(request, "request_id", None)
        if request_id:
            response["X-Request-Id"] = request_id
    else:
        response = HttpResponse(
            loader.get_template("503.html").render({"dependency": dependency}),
            status=HTTPStatus.SERVICE_UNAVAILABLE,
        )
        response["Retry-After"] = str(SERVICE_UNAVAILABLE_RETRY_AFTER)
    response["Cache-Control"] = "no-store"
    return response


def _log(request: HttpRequest, dependency: str, exc: BaseException) -> None:
    logger.warning(
        "503 service_unavailable on %s %s: %s unavailable (%s: %s)",
        request.method, request.path_info, dependency, type(exc).__name__, exc,
    )


def _flag_outage(sender: Any, request: HttpRequest | None = None, **kwargs: Any) -> None:
    """`got_request_exception` receiver: Django is turning an exception into a 500 inside some
    middleware; remember whether it was an outage (the exception is the one being handled)."""
    import sys

    exc = sys.exc_info()[1]
    dependency = outage_of(exc)
    if request is not None and dependency is not None:
        setattr(request, _FLAG, (dependency, exc))


got_request_exception.connect(_flag_outage, dispatch_uid="gatehouse.outages.flag")


class ServiceUnavailableMiddleware:
    """First in `MIDDLEWARE`: database and Redis outages become 503s (see the module docstring)."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        try:
            response = self.get_response(request)
        except Exception as exc:  # Django's own 500 rendering failed too (DEBUG pages query)
            dependency = outage_of(exc)
            if dependency is None:
                raise
            _log(request, dependency, exc)
            return service_unavailable_response(request, dependency)
        flagged = getattr(request, _FLAG, None)
        if flagged is not None and response.status_code >= HTTPStatus.INTERNAL_SERVER_ERROR:
            dependency, exc = flagged
            _log(request, dependency, exc)
            return service_unavailable_response(request, dependency)
        return response

    def process_exception(self, request: HttpRequest, exception: Exception) -> HttpResponse | None:
        dependency = outage_of(exception)
        if dependency is None:
            return None
        _log(request, dependency, exception)
        return service_unavailable_response(request, dependency)
