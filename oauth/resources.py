"""RFC 8707 resource indicators: the resources this deployment's tokens can be for (SPEC §7).

A deployment serves two protected resources, `<origin>/api/v1` and `<origin>/mcp`, where the origin
is the one the request came to (`scheme://host[:port]`, as Django builds absolute URIs). Every
access and refresh token is bound to exactly one of them (DOT's own `resource` field holds it,
as a one-element list in the canonical form below), and a resource refuses a token bound to
another — MCP authorization's "Token Audience Binding", so a token obtained for this API can
never be replayed at another server, nor one obtained "for" another server at this one.

Identifiers are compared in a canonical form: scheme and host lower-case, the scheme's default
port dropped, one trailing slash ignored. Anything else — another host or port, another path
(sub-paths included), userinfo, a query or a fragment, non-http(s) schemes — names no resource
here and is `invalid_target`.

Tokens stored before audience binding have an empty `resource`. They were issued by this server
without a resource indicator, so for the API: they are treated as bound to `/api/v1` (at any of
this deployment's origins), and refreshing one binds the new token to the API explicitly.
"""

from __future__ import annotations

from functools import lru_cache
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

if TYPE_CHECKING:
    from django.http import HttpRequest

API_RESOURCE_PATH = "/api/v1"
MCP_RESOURCE_PATH = "/mcp"
RESOURCE_PATHS = (API_RESOURCE_PATH, MCP_RESOURCE_PATH)
MAX_RESOURCE_LENGTH = 2048
_DEFAULT_PORTS = {"http": 80, "https": 443}


def canonical_resource(uri: object) -> str | None:
    """`uri` in canonical form, or None when it is not an absolute http(s) URI without userinfo,
    query or fragment. Pure; never raises."""
    if not isinstance(uri, str):
        return None
    return _canonical(uri)


# The gateway asks about the same few identifiers on every request (its own, and the canonical
# values stored on tokens): remembered, it costs a dict lookup instead of a URL parse (~6 µs).
@lru_cache(maxsize=1024)
def _canonical(uri: str) -> str | None:
    if not isinstance(uri, str) or not uri or len(uri) > MAX_RESOURCE_LENGTH:
        return None
    if "?" in uri or "#" in uri or any(ord(ch) <= 0x20 or ord(ch) == 0x7F for ch in uri):
        return None
    try:
        parts = urlsplit(uri)
        port = parts.port
    except ValueError:  # a non-numeric or out-of-range port, a malformed IPv6 literal
        return None
    scheme = parts.scheme.lower()
    host = parts.hostname
    if scheme not in _DEFAULT_PORTS or not host or "@" in parts.netloc:
        return None
    if ":" in host:
        host = f"[{host}]"  # an IPv6 literal: urlsplit strips the brackets
    netloc = host if port is None or port == _DEFAULT_PORTS[scheme] else f"{host}:{port}"
    path = parts.path
    if path.endswith("/"):
        path = path[:-1]
    return f"{scheme}://{netloc}{path}"


def request_origin(request: HttpRequest) -> str:
    """`scheme://host[:port]` the request came to (Django's validated host)."""
    return f"{request.scheme}://{request.get_host()}"


def resource_at(origin: str, path: str) -> str:
    """The canonical identifier of the resource at `path` of `origin` (`scheme://host[:port]`)."""
    canonical = canonical_resource(origin.rstrip("/") + path)
    if canonical is None:  # the origin comes from Django's validated request, never from a client
        raise ValueError("not an http(s) origin")
    return canonical


def api_resource_at(origin: str) -> str:
    return resource_at(origin, API_RESOURCE_PATH)


def own_resource(uri: object, *, origin: str) -> str | None:
    """The canonical identifier when `uri` names one of this deployment's resources at `origin`,
    else None (the caller answers `invalid_target`)."""
    canonical = canonical_resource(uri)
    if canonical is None:
        return None
    if canonical not in {resource_at(origin, path) for path in RESOURCE_PATHS}:
        return None
    return canonical


def own_resources(values: list[str], *, origin: str) -> list[str] | None:
    """`values` in canonical form without duplicates, or None when one is not ours."""
    bound: list[str] = []
    for value in values:
        canonical = own_resource(value, origin=origin)
        if canonical is None:
            return None
        if canonical not in bound:
            bound.append(canonical)
    return bound


def audience_allows(audience: list | None, called: str) -> bool:
    """Whether a token whose stored `resource` is `audience` may be used at the resource
    `called` (its absolute identifier). An empty audience is a token from before audience
    binding: the API only."""
    called_canonical = canonical_resource(called)
    if called_canonical is None:
        return False
    if not audience:
        return urlsplit(called_canonical).path == API_RESOURCE_PATH
    return any(canonical_resource(value) == called_canonical for value in audience)


def describe_resources(origin: str) -> str:
    """For error descriptions: the identifiers a client may ask for."""
    return " and ".join(resource_at(origin, path) for path in RESOURCE_PATHS)
