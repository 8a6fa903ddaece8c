"""The API gateway middleware: the one door of the JSON API (`/api/v1/`, SPEC §4).

Where it sits: in `settings.MIDDLEWARE` after `AuthenticationMiddleware` (it uses neither the
session nor `request.user`: the API authenticates tokens only, and its views are CSRF-exempt).
Paths outside `/api/v1/` pass through untouched.

What it does, in order (each step is one small method, so quotas, per-key rate limits,
idempotency and usage metering can be slotted in between without reshaping it):

`__call__` (every `/api/v1/` request)
    1. `begin`: sets `request.request_id` (also sent back as `X-Request-Id`) and the unauthenticated
       defaults `request.principal = None`, `request.workspace = None`,
       `request.scopes = frozenset()`.
    2. `refuse_oversized_url`: 414 `request_too_large` for a URL (path and query) over
       `MAX_URL_BYTES`, before anything parses it. `read_chunked_body`: a chunked body (no
       `Content-Length`, which Django reads as empty) is read here, at most 1 MiB (413 beyond).
       `refuse_oversized_body`: 413 `request_too_large` for a declared body over 1 MiB, before
       anything reads it.
    3. the rest of the stack and the view (URL resolution, then `process_view` below).
    4. `finish`: `Vary: Authorization` and `X-Request-Id` on every response.

`process_view` (the route is known)
    5. `select_endpoint`: the method's declaration from `@api_endpoint` (405 with `Allow` when
       the route does not answer the method; `HEAD` is answered as the route's `GET`, with the
       same authentication, scope, budget and headers, and the server drops the body); sets
       `request.endpoint_scope`, which the `WWW-Authenticate` challenge of any 401 names. Public
       endpoints (`openapi.json`, the JSON 404) stop here.
    6. `authenticate`: `Authorization: Bearer <token>` or `ApiKey <token>`, routed by prefix to
       the verifiers of `settings.GATEHOUSE_TOKEN_VERIFIERS` (resolved once, at startup). A
       well-formed token is first put to the credential filter (`core.credfilter`): one
       nobody issued is refused without a lookup (401, or 429 `rate_limited` past 20 a minute
       from its address, counted in memory); one the filter cannot place right now is looked up
       within its address's budget (`gateway.failed_auth`, else 429 `rate_limited`). A known
       credential is always looked up and answered on its own: no address is blocked.
    7. `attach`: sets `request.principal` (`apikit.principal.Principal`), `request.workspace`
       (the principal's workspace; every endpoint reads only from it) and `request.scopes` (the
       principal's effective scopes; for OAuth already narrowed to the user's role).
    8. `authorize`: 403 `insufficient_scope` (with `required_scope`) when the endpoint's scope
       is not in `request.scopes`.
    9. `gateway.metering.meter_request`, the one gate: the cached key's confirmation, the
       scope refusal of step 8, the key's rate limit, `Idempotency-Key` (claim or replay) and
       the daily budget the endpoint declares (`@api_endpoint(budget=…)`), in that order; its
       answer is a `Gate` with an `Outcome`; sets `request.metering`.
    (and in `finish`, `gateway.metering.meter_response`: store or release the idempotency claim,
    give back the budget unit of an unserved request, `X-RateLimit-*` headers, usage recording.)

Steps 6–9 are one method, `pass_gate(request, endpoint, resource=…, principal=…)`, which the
MCP server (`mcp_server.calls`) calls for each tool call with the API request the call
corresponds to (and the principal it already authenticated at the `/mcp` resource): the same
scope ∩ role, rate limit, idempotency and budget, then the same `finish`. There is one gateway.

The benchmark's comparison server leaves step 9 out with a subclass of its own
(`bench/middleware.py`), to measure what metering costs; the product always meters.

With Redis, a verified API key or OAuth token may come from a per-process cache
(`apikeys.keycache`, `oauth.tokencache`); step 9's one Redis call confirms that it has not changed
since, and when it has (`Outcome.STALE`) the request goes back to step 6 with the credential read
from the database. Under a fresh lease (`core.leases`: pushed invalidations reach this process
before any change returns) a request that counts nothing makes no Redis call at all. A
revocation is refused by the very next request on every process either way.
"""

from __future__ import annotations

import io
import re
import time
from collections.abc import Callable
from http import HTTPStatus
from typing import Any

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.http import HttpRequest, HttpResponse
from django.utils import timezone
from django.utils.cache import patch_vary_headers
from django.utils.module_loading import import_string

from apikit.endpoints import Endpoint, endpoint_for, endpoints_of, method_not_allowed
from apikit.errors import error_response, new_request_id, service_unavailable, www_authenticate
from apikit.principal import AuthFailure, Principal
from core.addresses import client_ip
from core.credfilter import CredentialFamily, Verdict, credential_filter
from core.leases import ensure_subscriber, push_enabled

from .failed_auth import (
    failed_auth_exhausted,
    failed_auth_record,
    too_many_failures,
    unknown_over_limit,
)
from .gate import Outcome
from .metering import (
    Gate,
    meter_request,
    meter_response,
    one_transaction_writes,
    serve_claimed,
)
from .usage import usage_record_refusal

API_V1_PREFIX = "/api/v1/"
MAX_BODY_BYTES = 1024 * 1024
# The longest URL (path and query string) the API reads. Its ids, cursors and filters need a few
# hundred bytes; gunicorn lets request lines up to 8190 bytes through (gunicorn.conf.py).
MAX_URL_BYTES = 4096
# Longer than any credential Gatehouse issues by a wide margin; anything beyond is refused
# before it is examined further.
MAX_AUTHORIZATION_LENGTH = 512
SCHEMES = frozenset({"bearer", "apikey"})
# RFC 6750 §2.1 b64token.
_TOKEN = re.compile(r"[A-Za-z0-9\-._~+/]+=*")
# Tokens of a family whose verifier is not installed still get that family's error code.
_UNVERIFIED_PREFIX_ERRORS = {"gat_": "invalid_token"}
_QUERY_CREDENTIALS = ("access_token", "api_key")

Verifier = Callable[..., Principal | AuthFailure]



def load_verifiers(paths: dict[str, str]) -> list[tuple[str, Verifier]]:
    """Resolve `{prefix: "dotted.path"}` once; longest prefix first."""
    verifiers = []
    for prefix, path in paths.items():
        try:
            verifiers.append((prefix, import_string(path)))
        except ImportError as exc:
            raise ImproperlyConfigured(
                f"GATEHOUSE_TOKEN_VERIFIERS[{prefix!r}]: cannot import {path!r} ({exc})."
            ) from exc
    return sorted(verifiers, key=lambda item: -len(item[0]))


class ApiGatewayMiddleware:
    """Authenticates and scope-checks `/api/v1/`; sets `request.principal`, `request.workspace`
    and `request.scopes` (see the module docstring for where it sits and its steps)."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response
        self.verifiers = load_verifiers(getattr(settings, "GATEHOUSE_TOKEN_VERIFIERS", {}))
        for _prefix, verifier in self.verifiers:
            family = getattr(verifier, "credential_family", None)
            if family is not None:
                credential_filter.register(family)
        if push_enabled():
            ensure_subscriber()  # subscribed before the first request (core.leases)

    def __call__(self, request: HttpRequest) -> HttpResponse:
        if not request.path_info.startswith(API_V1_PREFIX):
            return self.get_response(request)
        self.begin(request)
        response = (
            self.refuse_oversized_url(request)
            or self.read_chunked_body(request)
            or self.refuse_oversized_body(request)
            or self.get_response(request)
        )
        return self.finish(request, response)

    def process_view(
        self,
        request: HttpRequest,
        view_func: Callable[..., HttpResponse],
        view_args: tuple[Any, ...],
        view_kwargs: dict[str, Any],
    ) -> HttpResponse | None:
        if not request.path_info.startswith(API_V1_PREFIX):
            return None
        endpoint = self.select_endpoint(request, view_func)
        if isinstance(endpoint, HttpResponse):
            return endpoint
        request.endpoint_scope = endpoint.scope  # named by every 401 challenge (errors.py)
        if endpoint.public:
            return None
        return self.pass_gate(request, endpoint, resource=api_resource_of(request))

    def pass_gate(
        self,
        request: HttpRequest,
        endpoint: Endpoint,
        *,
        resource: str,
        principal: Principal | None = None,
    ) -> HttpResponse | None:
        """Everything between a known endpoint and its view, for the API and for each MCP tool
        call alike (`mcp_server`): authentication at `resource` (skipped when the caller
        already authenticated this request and passes `principal`), scope ∩ role, the gate
        (rate limit, idempotency, budget), the one-transaction runner of a claimed write.
        None: run the view (and `finish`/`meter_response` after it); else the refusal or
        replay to send instead."""
        if principal is None:
            principal = self.authenticate(request, resource=resource)
            if isinstance(principal, HttpResponse):
                return principal
        gate = self.admit(request, endpoint, principal)
        if gate.outcome is Outcome.STALE:
            # A cached key's version moved since it was cached: verify again from the database
            # (nothing was counted) and go through the same steps with what it says now.
            self.detach(request)
            principal = self.authenticate(request, resource=resource, fresh=True)
            if isinstance(principal, HttpResponse):
                return principal
            gate = self.admit(request, endpoint, principal)
            if gate.outcome is Outcome.STALE:  # a key read from the database carries no markers
                return service_unavailable(request)
        claimed = request.metering is not None and request.metering.claim is not None
        if gate.response is None and claimed and one_transaction_writes():
            request.api_view_runner = serve_claimed  # one transaction: change, audit, response
        return gate.response

    def admit(self, request: HttpRequest, endpoint: Endpoint, principal: Principal) -> Gate:
        """Scope, then the gate (`gateway.metering.meter_request`): its `response` refuses or
        replays the request (None runs the view); `Outcome.STALE` verifies the key again."""
        self.attach(request, principal)
        refused = self.authorize(request, endpoint)
        return meter_request(request, endpoint, scope_refusal=refused)

    # --- the steps -------------------------------------------------------------------------

    def begin(self, request: HttpRequest) -> None:
        request.started = time.perf_counter()
        request.request_id = new_request_id()
        self.detach(request)

    def detach(self, request: HttpRequest) -> None:
        request.metering = None
        request.principal = None
        request.workspace = None
        request.scopes = frozenset()

    def refuse_oversized_url(self, request: HttpRequest) -> HttpResponse | None:
        length = len(request.path) + len(request.META.get("QUERY_STRING", ""))
        if length <= MAX_URL_BYTES:
            return None
        return error_response(
            request, HTTPStatus.REQUEST_URI_TOO_LONG, "request_too_large",
            f"The URL is longer than {MAX_URL_BYTES} bytes; no Gatehouse URL needs that many.",
        )

    def read_chunked_body(self, request: HttpRequest) -> HttpResponse | None:
        """Django reads a body without `Content-Length` as empty; a chunked one (gunicorn
        de-chunks it and marks the stream `wsgi.input_terminated`) is read here instead, at most
        `MAX_BODY_BYTES` + 1 bytes, and handed to Django as if its length had been declared."""
        meta = request.META
        chunked = "chunked" in meta.get("HTTP_TRANSFER_ENCODING", "").lower()
        if not chunked or meta.get("CONTENT_LENGTH") or not meta.get("wsgi.input_terminated"):
            return None
        body = meta["wsgi.input"].read(MAX_BODY_BYTES + 1)
        if len(body) > MAX_BODY_BYTES:
            return error_response(
                request, HTTPStatus.REQUEST_ENTITY_TOO_LARGE, "request_too_large",
                f"The request body is over the limit of {MAX_BODY_BYTES} bytes (1 MiB).",
                headers={"Connection": "close"},  # the rest of the body is never read
            )
        meta["CONTENT_LENGTH"] = str(len(body))
        request._stream = io.BytesIO(body)  # what Django's WSGIRequest reads the body from
        return None

    def refuse_oversized_body(self, request: HttpRequest) -> HttpResponse | None:
        try:
            length = int(request.META.get("CONTENT_LENGTH") or 0)
        except ValueError:
            length = 0
        if length <= MAX_BODY_BYTES:
            return None
        return error_response(
            request, HTTPStatus.REQUEST_ENTITY_TOO_LARGE, "request_too_large",
            f"The request body is {length} bytes; the limit is {MAX_BODY_BYTES} bytes (1 MiB).",
        )

    def select_endpoint(
        self, request: HttpRequest, view_func: Callable[..., HttpResponse]
    ) -> Endpoint | HttpResponse:
        endpoints = endpoints_of(view_func)
        if endpoints is None:  # not declared: authenticate, require no particular scope
            return Endpoint()
        endpoint = endpoint_for(endpoints, request.method)
        if endpoint is None:
            return method_not_allowed(request, endpoints)
        return endpoint

    def authenticate(
        self, request: HttpRequest, *, resource: str | None = None, fresh: bool = False
    ) -> Principal | HttpResponse:
        """`resource`: the absolute identifier of the resource being called (RFC 8707; default
        the API's): OAuth tokens bound to another are refused."""
        token = read_credential(request)
        if isinstance(token, HttpResponse):
            return token
        ip = client_ip(request)
        resource = resource or api_resource_of(request)
        verifier = self.route(token)
        family: CredentialFamily | None = getattr(verifier, "credential_family", None)
        digest = family.screen(token) if family is not None else None
        if digest is None:  # refused by the verifier without I/O, or a family without a filter
            result = self.verify(token, ip=ip, resource=resource, fresh=fresh)
            return self.refused(request, result) if isinstance(result, AuthFailure) else result
        verdict = credential_filter.check(digest)
        if verdict is Verdict.UNKNOWN:  # no lookup; counted in memory, per address
            retry_after = unknown_over_limit(request)
            if retry_after is not None:
                return too_many_failures(request, retry_after)
            return failure_response(request, family.unknown)
        if verdict is Verdict.UNCERTAIN and failed_auth_exhausted(request):
            return too_many_failures(request, credential_filter.retry_after())
        # The screen's digest goes to the verifier: the token is not parsed or hashed twice.
        result = self.verify(token, ip=ip, resource=resource, fresh=fresh, digest=digest)
        if isinstance(result, AuthFailure) and not result.known:
            if verdict is Verdict.UNCERTAIN:
                failed_auth_record(request)
        elif verdict is not Verdict.KNOWN:
            credential_filter.add(digest)  # it exists: the next request needs no second look
        return self.refused(request, result) if isinstance(result, AuthFailure) else result

    def refused(self, request: HttpRequest, failure: AuthFailure) -> HttpResponse:
        """The refusal's response; a refused API key of this deployment is also recorded in its
        recent requests with the error code (buffered like usage: no write on this path). A
        token refused without a lookup (another environment's) is attributed only when the
        credential filter holds its digest, so guesses are never buffered."""
        response = failure_response(request, failure)
        key_id, digest = failure.api_key_id, failure.digest
        if key_id is None and (digest is None or not credential_filter.knows(digest)):
            return response
        usage_record_refusal(
            key_id=key_id, digest=None if key_id is not None else digest,
            at=timezone.now(), ip=client_ip(request), method=request.method or "",
            path=request.path_info, status=response.status_code, error=failure.error,
            latency_ms=int((time.perf_counter() - request.started) * 1000),
        )
        return response

    def route(self, token: str) -> Verifier | None:
        for prefix, verifier in self.verifiers:
            if token.startswith(prefix):
                return verifier
        return None

    def verify(
        self,
        token: str,
        *,
        ip: str | None,
        resource: str,
        fresh: bool = False,
        digest: str | None = None,
    ) -> Principal | AuthFailure:
        """`digest`: what the token's family `screen` returned (None: the verifier checks it)."""
        verifier = self.route(token)
        if verifier is not None:
            extra: dict[str, Any] = {} if digest is None else {"digest": digest}
            # `fresh` only after a cached principal went stale (a verifier that caches).
            if fresh:
                extra["fresh"] = True
            return verifier(token, ip=ip, resource=resource, **extra)
        for prefix, error in _UNVERIFIED_PREFIX_ERRORS.items():
            if token.startswith(prefix):
                return AuthFailure(
                    error, "This server does not accept OAuth access tokens.", looked_up=False
                )
        return AuthFailure(
            "invalid_credentials",
            "This is not a Gatehouse credential; send an API key (gk_...) or an OAuth access "
            "token (gat_...).",
            looked_up=False,
        )

    def attach(self, request: HttpRequest, principal: Principal) -> None:
        request.principal = principal
        request.workspace = principal.workspace
        request.scopes = principal.scopes

    def authorize(self, request: HttpRequest, endpoint: Endpoint) -> HttpResponse | None:
        if endpoint.scope is None or endpoint.scope in request.scopes:
            return None
        return error_response(
            request, HTTPStatus.FORBIDDEN, "insufficient_scope",
            f"This request needs the {endpoint.scope} scope, which this credential does not "
            "have.",
            headers={
                "WWW-Authenticate": www_authenticate(
                    request, error="insufficient_scope", scope=endpoint.scope
                )
            },
            required_scope=endpoint.scope,
        )

    def finish(self, request: HttpRequest, response: HttpResponse) -> HttpResponse:
        meter_response(request, response)
        patch_vary_headers(response, ("Authorization",))
        response["X-Request-Id"] = request.request_id
        return response


def api_resource_of(request: HttpRequest) -> str:
    """The API's resource identifier at the origin `request` came to (`<origin>/api/v1`)."""
    return request.build_absolute_uri(API_V1_PREFIX.rstrip("/"))


# --- credentials ---------------------------------------------------------------------------------


def read_credential(request: HttpRequest) -> str | HttpResponse:
    """The one token of the `Authorization` header, or the JSON error that refuses the header.

    Only the header carries credentials: tokens in URLs leak into logs and histories
    (RFC 9700 §4.3.2), so `?access_token=` is not accepted, and is refused outright (RFC 6750
    §3.1 `invalid_request`) next to a header, like any second credential in one request.
    """
    header = request.META.get("HTTP_AUTHORIZATION", "")
    in_query = any(name in request.GET for name in _QUERY_CREDENTIALS)
    if not header.strip():
        message = (
            "Send the token in the Authorization header, not in the URL."
            if in_query
            else "Send an API key or access token: Authorization: Bearer <token>."
        )
        return error_response(request, HTTPStatus.UNAUTHORIZED, "missing_credentials", message)
    if len(header) > MAX_AUTHORIZATION_LENGTH:
        return _malformed(request, "The Authorization header is too long to hold a credential.")
    scheme, _, rest = header.strip().partition(" ")
    token = rest.strip()
    if "," in header or len(token.split()) > 1 or in_query:
        return error_response(
            request, HTTPStatus.BAD_REQUEST, "invalid_request",
            "Send exactly one credential, in one Authorization header.",
            fields={"Authorization": "More than one credential."},
            headers={"WWW-Authenticate": www_authenticate(request, error="invalid_request")},
        )
    if scheme.lower() not in SCHEMES:
        # RFC 6750 §3.1: an unsupported scheme gets a challenge without an error code.
        return error_response(
            request, HTTPStatus.UNAUTHORIZED, "invalid_credentials",
            "Unsupported authorization scheme; use Authorization: Bearer <token> (or ApiKey "
            "<token>).",
        )
    if not token:
        return _malformed(request, "The Authorization header has no token after the scheme.")
    if not _TOKEN.fullmatch(token):
        return _malformed(request, "The credential contains characters no token has.")
    return token


def _malformed(request: HttpRequest, message: str) -> HttpResponse:
    return failure_response(
        request, AuthFailure("invalid_credentials", message, looked_up=False)
    )


def failure_response(request: HttpRequest, failure: AuthFailure) -> HttpResponse:
    headers = {}
    if failure.status == HTTPStatus.UNAUTHORIZED:
        headers["WWW-Authenticate"] = www_authenticate(
            request, error="invalid_token", description=failure.message
        )
    return error_response(request, failure.status, failure.error, failure.message, headers=headers)
