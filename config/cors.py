"""Credential-less CORS for the endpoints that browser-based clients call (SPEC §4, §7).

A browser-based MCP client or single-page app discovers Gatehouse (the two metadata documents),
registers itself, exchanges and revokes tokens, and calls `/api/v1/` from its own origin. Those
paths, and only those, answer any origin with `Access-Control-Allow-Origin: *` — never
`Access-Control-Allow-Credentials` — so a page can read a response to a request that carries
its own token, but a browser never attaches Gatehouse's cookies to it (the Fetch standard refuses
a credentialed response whose allowed origin is `*`). The API authenticates tokens only, so
nothing a cookie could carry is reachable this way.

Never on `/api/oauth/authorize` (the consent screen is a page the user's browser navigates to,
with the session cookie, and must not be readable cross-origin), on introspection (RFC 7662 is
for resource servers, server to server, and the contract does not list it), or on any dashboard
page: a path not listed here gets no CORS header at all.

Where it sits: first in `settings.MIDDLEWARE`. A preflight (`OPTIONS` with
`Access-Control-Request-Method`) is answered here, 204, before the session, CSRF and the API
gateway run, so it is never authenticated, metered or counted toward a rate limit; every other
response on these paths — a 401 from the gateway, a 429, a 503 from `config.outages` —
passes back through here and gets the headers, so a browser client can read the challenge.

Hand-written rather than django-cors-headers: the policy is one fixed rule (any origin, no
credentials) on a fixed list of paths, about forty lines, and adding a dependency for it would
also add its settings surface (origin allow-lists, credentials switches) that this contract
forbids using.
"""

from __future__ import annotations

from collections.abc import Callable
from http import HTTPStatus

from django.http import HttpRequest, HttpResponse

READ = ("GET", "HEAD")
POST = ("POST",)
API = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE")

# path → the methods a cross-origin request may use on it.
CORS_PATHS: dict[str, tuple[str, ...]] = {
    "/.well-known/oauth-authorization-server": READ,
    "/.well-known/oauth-protected-resource": READ,
    "/.well-known/oauth-protected-resource/api/v1": READ,
    "/.well-known/oauth-protected-resource/mcp": READ,
    # The MCP server (SPEC §14): bearer tokens only, like the API; POST is its only method.
    "/mcp": POST,
    "/mcp/readonly": POST,
    "/api/oauth/register": POST,
    "/api/oauth/token": POST,
    "/api/oauth/revoke": POST,
}
CORS_PREFIXES: dict[str, tuple[str, ...]] = {"/api/v1/": API}

ALLOW_HEADERS = ", ".join(
    [
        "Authorization",
        "Content-Type",
        "Idempotency-Key",
        # The MCP streamable HTTP transport's headers (harmless elsewhere).
        "Mcp-Protocol-Version",
        "Mcp-Session-Id",
        "Last-Event-ID",
    ]
)
EXPOSE_HEADERS = ", ".join(
    [
        "WWW-Authenticate",
        "Retry-After",
        "X-RateLimit-Limit",
        "X-RateLimit-Remaining",
        "X-RateLimit-Reset",
        "X-Request-Id",
        "Idempotent-Replayed",
        "Mcp-Session-Id",
    ]
)
# Browsers cap it (Chromium at 2 h); a changed policy reaches every browser within this time.
PREFLIGHT_MAX_AGE_SECONDS = 600


def cors_methods(path: str) -> tuple[str, ...] | None:
    """The methods a cross-origin request may use on `path`; None: no CORS there."""
    methods = CORS_PATHS.get(path)
    if methods is not None:
        return methods
    for prefix, prefixed in CORS_PREFIXES.items():
        if path.startswith(prefix):
            return prefixed
    return None


def is_preflight(request: HttpRequest) -> bool:
    return request.method == "OPTIONS" and "HTTP_ACCESS_CONTROL_REQUEST_METHOD" in request.META


class CorsMiddleware:
    """Answers preflights and adds `Access-Control-*` headers on `CORS_PATHS` (see the module
    docstring for the policy and why it sits first)."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        methods = cors_methods(request.path_info)
        if methods is None:
            return self.get_response(request)
        if is_preflight(request):
            response = HttpResponse(status=HTTPStatus.NO_CONTENT)
            response["Access-Control-Allow-Methods"] = ", ".join(methods)
            response["Access-Control-Allow-Headers"] = ALLOW_HEADERS
            response["Access-Control-Max-Age"] = str(PREFLIGHT_MAX_AGE_SECONDS)
        else:
            response = self.get_response(request)
            response["Access-Control-Expose-Headers"] = EXPOSE_HEADERS
        response["Access-Control-Allow-Origin"] = "*"
        return response
