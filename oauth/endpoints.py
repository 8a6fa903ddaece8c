"""The OAuth 2.0 endpoints (SPEC §7): django-oauth-toolkit's views, configured and locked down.

Mounted without trailing slashes under the `oauth2_provider` URL namespace (oauth/urls.py), which
DOT's metadata views reverse to list the endpoints:

- `/.well-known/oauth-authorization-server` (RFC 8414) — DOT's view as configured in settings;
- `/.well-known/oauth-protected-resource` and `…/oauth-protected-resource/api/v1` (RFC 9728) —
  `resource` is `<origin>/api/v1`;
- `/api/oauth/authorize` — the consent screen: login required, the user picks the workspace, scopes
  the user's role can never use are narrowed away, PKCE `S256` and `state` are required;
- `/api/oauth/token` and `/api/oauth/register` — rate-limited per client IP;
- `/api/oauth/revoke` (RFC 7009) and `/api/oauth/introspect` (RFC 7662) — for the app's own tokens.
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass
from http import HTTPStatus
from typing import Any
from urllib.parse import urlsplit

from django.conf import settings
from django.core.exceptions import DisallowedRedirect, RequestDataTooBig, ValidationError
from django.db import transaction
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.http.multipartparser import MultiPartParserError
from django.shortcuts import render
from django.utils import timezone
from django.utils.csp import CSP
from django.utils.decorators import method_decorator
from django.views import View
from django.views.decorators.cache import never_cache
from django.views.decorators.csrf import csrf_exempt
from django_ratelimit.core import get_usage
from oauth2_provider.cimd import is_cimd_client_id
from oauth2_provider.compat import login_not_required
from oauth2_provider.exceptions import OAuthToolkitError
from oauth2_provider.http import OAuth2ResponseRedirect
from oauth2_provider.models import get_application_model
from oauth2_provider.oauth2_backends import _add_iss_to_redirect
from oauth2_provider.settings import oauth2_settings
from oauth2_provider.views import (
    OAuthProtectedResourceMetadataView,
    RevokeTokenView,
    TokenView,
)
from oauth2_provider.views.base import BaseAuthorizationView
from oauth2_provider.views.dynamic_client_registration import (
    DynamicClientRegistrationView,
    _error_response,
)
from oauth2_provider.views.mixins import OAuthLibMixin
from oauthlib.common import urlencode
from oauthlib.oauth2.rfc6749 import errors

from core.addresses import ip_bucket
from core.context import RequestContext
from passports.models import Collection
from passports.selectors import collections_resolve
from workspaces.models import Membership
from workspaces.roles import Role
from workspaces.scopes import get_scope, scopes_for_role

from .cimd import all_redirects_on_loopback, client_host, refusal_for
from .redirects import redirect_uri_problem, redirects_without_asking
from .resources import describe_resources, own_resources, request_origin
from .scopes import OFFLINE_ACCESS
from .selectors import app_access_for, registration_kind
from .services import AppNotAllowed, connection_grant, oauth_app_register_dynamic
from .validators import ORIGIN_KEY, RECEIVED_KEY

Application = get_application_model()
log = logging.getLogger(__name__)

API_RESOURCE_PATH = "/api/v1"
MAX_REGISTRATION_BYTES = 16 * 1024
MAX_CLIENT_NAME_LENGTH = 100
MAX_CONSENT_COLLECTIONS = 100
OAUTH_PARAMETERS = (
    "client_id",
    "redirect_uri",
    "response_type",
    "state",
    "code_challenge",
    "code_challenge_method",
)


def api_resource(request: HttpRequest) -> str:
    """The protected resource identifier (RFC 9728 §1.2): the API's public base URL."""
    return request.build_absolute_uri(API_RESOURCE_PATH)


def _json_error(
    status: int, error: str, description: str, retry_after: int | None = None
) -> JsonResponse:
    response = JsonResponse({"error": error, "error_description": description}, status=status)
    response["Cache-Control"] = "no-store"
    if retry_after is not None:
        response["Retry-After"] = str(retry_after)
    return response


def refuse_unusable_request(
    request: HttpRequest, *, group: str, rate: str, form: bool = True
) -> JsonResponse | None:
    """The per-IP rate limit of `rate` (django-ratelimit's "N/s|m|h|d": 429, `Retry-After` =
    the seconds left in the client's window), or 503 when the cache that counts is down; and a
    400 for parameters that cannot be OAuth parameters (`parameter_problem`)."""
    limited = _rate_limit_refusal(request, group=group, rate=rate)
    if limited is not None:
        return limited
    problem = parameter_problem(request, form=form)
    if problem is not None:
        return _json_error(HTTPStatus.BAD_REQUEST, "invalid_request", problem)
    return None


def _rate_limit_refusal(request: HttpRequest, *, group: str, rate: str) -> JsonResponse | None:
    try:
        usage = get_usage(
            request,
            group=group,
            key=ip_bucket,
            rate=rate,
            method="POST",
            increment=True,
        )
    except Exception:  # the cache backend is down: refuse, do not guess
        log.exception("OAuth rate limiter unavailable")
        usage = {"should_limit": True, "time_left": -1}
    if usage is not None and usage["should_limit"] and usage["time_left"] < 0:
        # django-ratelimit reports a count it could not read or write as "limited, -1 s left".
        return _json_error(
            HTTPStatus.SERVICE_UNAVAILABLE,
            "temporarily_unavailable",
            "The server cannot take this request right now. Retry shortly.",
            retry_after=5,
        )
    if usage is not None and usage["should_limit"]:
        # django-ratelimit's windows are fixed per client (offset by a hash of its key) and
        # counted in whole seconds: the current one lasts through the second `time_left` from
        # now, so the next one opens at most `time_left + 1` seconds from now.
        retry_after = usage["time_left"] + 1
        return _json_error(
            HTTPStatus.TOO_MANY_REQUESTS,
            "rate_limited",
            f"Too many requests from this address. Retry in {retry_after} seconds.",
            retry_after=retry_after,
        )
    return None


def parameter_problem(request: HttpRequest, *, form: bool = True) -> str | None:
    """Why the query (and, with `form`, the form body) cannot be OAuth parameters, or None.

    No OAuth value contains a NUL byte, and PostgreSQL cannot store one. A malformed multipart
    body makes Django's parser raise (a 500 unless caught); after that `request.POST` is empty.
    `form=False` leaves the body unread, for views that read `request.body` themselves: parsing
    a multipart body consumes the stream.
    """
    try:
        posted = request.POST.lists() if form and request.method == "POST" else ()
        params = (*request.GET.lists(), *posted)
    except MultiPartParserError:
        return "The request body is not a well-formed form; send application/x-www-form-urlencoded."
    if any("\x00" in value for _key, values in params for value in values) or any(
        "\x00" in key for key, _values in params
    ):
        return "Parameters must not contain NUL bytes."
    return None


def _default_reach(memberships: list, selected: str | None, collections: dict) -> str:
    """The consent screen's first answer to "which passports": "Only selected collections" when
    the chosen workspace's credential policy says so (SPEC §12) and it has collections to
    choose from; "All passports" otherwise."""
    workspace = next((m.workspace for m in memberships if m.workspace.slug == selected), None)
    if workspace is not None and workspace.oauth_collections_by_default and collections.get(
        workspace.pk
    ):
        return "selected"
    return "all"


# --- RFC 9728 ------------------------------------------------------------------------------------


class ProtectedResourceMetadataView(OAuthProtectedResourceMetadataView):
    """RFC 9728 §3 for the API, served at `/.well-known/oauth-protected-resource` and at the
    path-inserted URL of the resource, `…/oauth-protected-resource/api/v1` (§3.1), which clients
    without a `resource_metadata` hint (and MCP clients first) derive from the URL they call.

    `scopes_supported` lists what the API's endpoints require: `offline_access` asks the
    authorization server for a refresh token and is not a scope of this resource (MCP clients
    add it themselves when the authorization server's metadata lists it)."""

    def get_resource(self, request: HttpRequest) -> str:
        return api_resource(request)

    def get_scopes_supported(self) -> list[str]:
        return [scope for scope in super().get_scopes_supported() if scope != OFFLINE_ACCESS]


# --- Authorization endpoint ------------------------------------------------------------------


def _scope_rows(scopes: list[str], role: str | None = None) -> list[dict]:
    """The requested scopes in words. With the chosen workspace's `role`, each says whether the
    role lets the app have it (`withheld`: shown apart, struck through, never granted)."""
    allowed = scopes_for_role(role) if role else None
    rows = []
    for name in scopes:
        scope = get_scope(name)
        rows.append(
            {
                "name": name,
                "description": scope.description if scope else name,
                "min_role": Role(scope.min_role).label if scope else "",
                "restricted": bool(scope and scope.min_role != Role.VIEWER),
                "withheld": allowed is not None and scope is not None
                and name != OFFLINE_ACCESS and name not in allowed,
            }
        )
    return rows


@method_decorator(never_cache, name="dispatch")
class AuthorizationView(BaseAuthorizationView):
    """RFC 6749 §4.1.1 with consent. Never skips the consent screen (no `skip_authorization`, no
    `approval_prompt=auto`): every code belongs to a consent the user just gave for a workspace."""

    def error_response(
        self, error: OAuthToolkitError, application: Application, **kwargs: Any,
    ) -> HttpResponse:
        redirect, response = OAuthLibMixin.error_response(self, error, **kwargs)
        oauthlib_error = response["error"]
        if redirect:
            # RFC 9207 §2: error responses carry `iss` too.
            url = _add_iss_to_redirect(
                response["url"], oauth2_settings.oauth2_authorization_server_issuer(self.request)
            )
            if application is None and oauthlib_error.client_id:
                # Refused by validate_authorization_request: the client is known by then.
                application = Application.objects.filter(
                    client_id=oauthlib_error.client_id
                ).first()
            if redirects_without_asking(application):
                return self.redirect(url, application)
            return self._error_destination(url, oauthlib_error, application)
        return render(
            self.request,
            "oauth/authorize_error.html",
            {"error": oauthlib_error.error, "description": oauthlib_error.description},
            status=oauthlib_error.status_code,
        )

    def _error_destination(
        self, url: str, oauthlib_error: errors.OAuth2Error, application: Application,
    ) -> HttpResponse:
        """RFC 9700 §4.11.2: an unvetted app's error response as a page that names where the
        link goes, instead of a redirect (see `oauth.redirects.redirects_without_asking`)."""
        parts = urlsplit(url)
        if parts.scheme not in oauth2_settings.ALLOWED_REDIRECT_URI_SCHEMES:
            raise DisallowedRedirect(f"Unsafe redirect to URL with protocol '{parts.scheme}'")
        denied = oauthlib_error.error == errors.AccessDeniedError.error
        return render(
            self.request,
            "oauth/authorize_error.html",
            {
                "error": oauthlib_error.error,
                "description": oauthlib_error.description,
                "application": application,
                "destination": url,
                "destination_host": parts.netloc,
                "destination_base": f"{parts.scheme}://{parts.netloc}{parts.path}",
                "denied": denied,
            },
            status=HTTPStatus.OK if denied else oauthlib_error.status_code,
        )

    def redirect(self, redirect_to: str, application: Application) -> HttpResponse:
        response = OAuth2ResponseRedirect(redirect_to, oauth2_settings.ALLOWED_REDIRECT_URI_SCHEMES)
        if self.request.method == "POST":
            response.status_code = HTTPStatus.SEE_OTHER  # RFC 9700 §4.12
        return response

    def _deny(
        self, credentials: dict, error: errors.OAuth2Error, application: Application,
    ) -> HttpResponse:
        error.state = credentials.get("state")
        return self.error_response(
            OAuthToolkitError(error=error, redirect_uri=credentials["redirect_uri"]), application
        )

    def _validate(self, request: HttpRequest) -> tuple[list[str], dict, object] | HttpResponse:
        problem = parameter_problem(request)
        if problem is not None:
            return render(
                request,
                "oauth/authorize_error.html",
                {"error": "invalid_request", "description": problem},
                status=HTTPStatus.BAD_REQUEST,
            )
        try:
            scopes, credentials = self.validate_authorization_request(request)
        except OAuthToolkitError as error:
            refused = self._metadata_document_refused(request)
            if refused is not None:
                return refused
            return self.error_response(error, application=None)
        application = Application.objects.get(client_id=credentials["client_id"])
        resources = request.GET.getlist("resource") or request.POST.get("resource", "").split()
        bound = own_resources(resources, origin=request_origin(request))
        if bound is None:  # RFC 8707 §2: only this deployment's resources (oauth.resources)
            return self._deny(
                credentials,
                errors.CustomOAuth2Error(
                    error="invalid_target",
                    description="Tokens from this server are only valid for "
                    f"{describe_resources(request_origin(request))}.",
                ),
                application,
            )
        credentials["resource"] = bound
        return scopes, credentials, application

    def _metadata_document_refused(self, request: HttpRequest) -> HttpResponse | None:
        """A `client_id` that is a metadata-document URL which could not be used (oauth.cimd):
        Gatehouse's page saying why, never a redirect (the redirect URIs are the document's)."""
        client_id = request.GET.get("client_id") or request.POST.get("client_id") or ""
        if not is_cimd_client_id(client_id) or Application.objects.filter(
            client_id=client_id
        ).exists():
            return None
        refusal = refusal_for(client_id) or {
            "reason": "unavailable",
            "message": "It could not be fetched or is not a valid client metadata document.",
        }
        return render(
            request,
            "oauth/authorize_error.html",
            {
                "error": "invalid_client",
                "description": "The app's client metadata document at "
                f"{client_host(client_id)} cannot be used. {refusal['message']}",
                "metadata_document": client_id[:300],
                "refusal_reason": refusal["reason"],
            },
            status=HTTPStatus.BAD_REQUEST,
        )

    def _consent(
        self,
        request: HttpRequest,
        *,
        scopes: list[str],
        credentials: dict,
        application: Application,
        selected: str | None = None,
        error: str | None = None,
        status: int = HTTPStatus.OK,
        reach: dict | None = None,
    ) -> HttpResponse:
        memberships = list(
            Membership.objects.filter(user=request.user)
            .select_related("workspace")
            .order_by("workspace__name")
        )
        metadata_document = (
            application.registration_source == Application.RegistrationSource.CIMD
        )
        if selected is None and len(memberships) == 1:
            selected = memberships[0].workspace.slug
        collections_by_workspace: dict[int, list[Collection]] = {}
        for collection in Collection.objects.filter(
            workspace__in=[m.workspace for m in memberships]
        ).order_by("name"):
            collections_by_workspace.setdefault(collection.workspace_id, []).append(collection)
        choices = [
            {
                "membership": m,
                "access": app_access_for(m.workspace, application),
                "collections": collections_by_workspace.get(m.workspace_id, []),
            }
            for m in memberships
        ]
        chosen = reach or {}
        role = next((m.role for m in memberships if m.workspace.slug == selected), None)
        rows = _scope_rows(scopes, role)
        context = {
            "application": application,
            "dynamic": application.registration_source == Application.RegistrationSource.DCR,
            "registration": registration_kind(application),
            "client_host": client_host(application.client_id) if metadata_document else "",
            "loopback_only": metadata_document
            and all_redirects_on_loopback(application.redirect_uris.split()),
            "scopes": [row for row in rows if not row["withheld"]],
            "withheld_scopes": [row for row in rows if row["withheld"]],
            "selected_role": Role(role).label if role else "",
            "offline": OFFLINE_ACCESS in scopes,
            "memberships": memberships,
            "choices": choices,
            "any_collections": bool(collections_by_workspace),
            "reach": chosen.get("reach", _default_reach(memberships, selected,
                                                         collections_by_workspace)),
            "chosen_collections": chosen.get("collections", []),
            "selected": selected,
            "error": error,
            "fields": {key: credentials.get(key) or "" for key in OAUTH_PARAMETERS},
            "scope": " ".join(scopes),
            "resource": " ".join(credentials.get("resource") or []),
            "redirect_host": urlsplit(credentials["redirect_uri"]).netloc,
        }
        response = render(request, "oauth/authorize.html", context, status=status)
        # Chrome applies `form-action` to the redirect that follows the consent POST, so the
        # app's callback origin is allowed for this page only.
        parts = urlsplit(credentials["redirect_uri"])
        response._csp_config = {
            **settings.SECURE_CSP,
            "form-action": [CSP.SELF, f"{parts.scheme}://{parts.netloc}"],
        }
        return response

    def get(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        validated = self._validate(request)
        if isinstance(validated, HttpResponse):
            return validated
        scopes, credentials, application = validated
        return self._consent(
            request, scopes=scopes, credentials=credentials, application=application
        )

    def post(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        # The hidden fields are re-validated exactly like the GET: nothing from the form is
        # trusted, and a denial redirects only to a redirect URI registered for the client.
        validated = self._validate(request)
        if isinstance(validated, HttpResponse):
            return validated
        scopes, credentials, application = validated
        if request.POST.get("decision") != "allow":
            return self._deny(credentials, errors.AccessDeniedError(), application)
        chosen = self._chosen_workspace(request, scopes, credentials, application)
        if isinstance(chosen, HttpResponse):
            return chosen
        membership, granted, collections = chosen
        return self._grant(
            request, application, membership, granted, credentials, collections, scopes
        )

    def _chosen_workspace(
        self, request: HttpRequest, scopes: list[str], credentials: dict,
        application: Application,
    ) -> tuple[Membership, list[str], list[Collection] | None] | HttpResponse:
        """The member's workspace the consent names, the scopes their role lets them grant there
        and the collections it reaches (None: all passports; SPEC §11), or the consent page
        again saying why not."""
        slug = request.POST.get("workspace", "")
        reach = {"reach": request.POST.get("reach", "all"),
                 "collections": request.POST.getlist("collections")}

        def again(error: str) -> HttpResponse:
            return self._consent(
                request, scopes=scopes, credentials=credentials, application=application,
                selected=slug or None, status=HTTPStatus.UNPROCESSABLE_ENTITY, error=error,
                reach=reach,
            )

        membership = (
            Membership.objects.filter(user=request.user, workspace__slug=slug)
            .select_related("workspace")
            .first()
        )
        if membership is None:
            return again("Choose the workspace this app may use.")
        allowed = scopes_for_role(membership.role)
        granted = [scope for scope in scopes if scope in allowed]
        if not [scope for scope in granted if scope != OFFLINE_ACCESS]:
            return again(
                f"Your role in {membership.workspace.name} allows none of the permissions "
                "this app asks for. Choose another workspace or deny."
            )
        if reach["reach"] not in ("all", "selected"):
            return again("Choose “All passports” or “Only selected collections”.")
        if reach["reach"] == "all":
            return membership, granted, None
        wanted = list(dict.fromkeys(reach["collections"]))
        if len(wanted) > MAX_CONSENT_COLLECTIONS:
            return again(f"Choose at most {MAX_CONSENT_COLLECTIONS} collections.")
        found = collections_resolve(workspace=membership.workspace, public_ids=wanted)
        unknown = [value for value in wanted if value not in found]
        if unknown:
            shown = unknown[0].encode("unicode_escape").decode("ascii")[:40]
            return again(
                f"“{shown}” is not a collection of {membership.workspace.name}: choose the "
                "collections of the workspace you picked."
            )
        return membership, granted, [found[value] for value in wanted]

    def _grant(
        self, request: HttpRequest, application: Application, membership: Membership,
        granted: list[str], credentials: dict, collections: list[Collection] | None,
        scopes: list[str],
    ) -> HttpResponse:
        """Record the consent and issue the code in one transaction: a code that DOT refuses to
        issue leaves no grant behind. A grant that awaits an admin's approval (SPEC §12) gets a
        page saying so before the member goes back to the app."""
        oauth_credentials = {k: credentials[k] for k in OAUTH_PARAMETERS if k in credentials}
        if credentials["resource"]:
            oauth_credentials["resource"] = credentials["resource"]
        with transaction.atomic():
            try:
                connection = connection_grant(
                    user=request.user,
                    application=application,
                    workspace=membership.workspace,
                    scopes=granted,
                    collections=collections,
                    context=RequestContext.from_request(request),
                )
            except AppNotAllowed as refused:
                return self._consent(
                    request, scopes=scopes, credentials=credentials, application=application,
                    selected=membership.workspace.slug, error=refused.messages[0],
                    status=HTTPStatus.UNPROCESSABLE_ENTITY,
                )
            oauth_credentials["gatehouse_connection_id"] = connection.pk
            try:
                uri, _headers, _body, _status = self.create_authorization_response(
                    request=request,
                    scopes=" ".join(granted),
                    credentials=oauth_credentials,
                    allow=True,
                )
            except OAuthToolkitError as error:
                transaction.set_rollback(True)
                return self.error_response(error, application)
        if connection.is_pending:
            return self._awaiting_approval(uri, application, membership)
        return self.redirect(uri, application)

    def _awaiting_approval(
        self, uri: str, application: Application, membership: Membership,
    ) -> HttpResponse:
        """The grant exists but waits for an admin: the member is told so, with a link back to
        the app (its tokens are refused with `app_not_approved` until the approval)."""
        parts = urlsplit(uri)
        if parts.scheme not in oauth2_settings.ALLOWED_REDIRECT_URI_SCHEMES:
            raise DisallowedRedirect(f"Unsafe redirect to URL with protocol '{parts.scheme}'")
        return render(
            self.request,
            "oauth/authorize_pending.html",
            {
                "application": application,
                "workspace": membership.workspace,
                "destination": uri,
                "destination_host": parts.netloc,
            },
        )


# --- Token, revocation, introspection ------------------------------------------------------


@method_decorator(never_cache, name="dispatch")
class GatehouseTokenView(TokenView):
    """RFC 6749 §3.2, rate-limited per IP. Only the grants GatehouseServer knows are accepted."""

    def post(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        refused = refuse_unusable_request(
            request, group="oauth.token", rate=settings.GATEHOUSE_OAUTH_TOKEN_RATE
        )
        if refused:
            return refused
        # What the validator cannot know from oauthlib's request (oauth.validators): the origin
        # whose resources tokens may be bound to, and when the request arrived — before it waits
        # for any lock.
        request.META[ORIGIN_KEY] = request_origin(request)
        request.META[RECEIVED_KEY] = timezone.now()
        # One transaction: the code or refresh token is locked from validation to issuance, so
        # concurrent uses of one are serialised (one wins, the others see it used).
        with transaction.atomic():
            return self.authorization_flow_token_response(request)


class GatehouseRevokeTokenView(RevokeTokenView):
    """RFC 7009. Revoking either token of a grant ends the grant (see the validator)."""

    def post(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        refused = refuse_unusable_request(
            request, group="oauth.revoke", rate=settings.GATEHOUSE_OAUTH_TOKEN_RATE
        )
        return refused or super().post(request, *args, **kwargs)


@method_decorator(csrf_exempt, name="dispatch")
@method_decorator(login_not_required, name="dispatch")
class IntrospectView(OAuthLibMixin, View):
    """RFC 7662 for the calling client's own tokens: the client authenticates as it does at the
    token endpoint (a secret, or its client_id for a public client), and any token not issued to
    it — or revoked, expired, or whose user left the workspace — is `{"active": false}`.
    `scope` is the effective scope: granted ∩ the user's current role."""

    def post(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        refused = refuse_unusable_request(
            request, group="oauth.introspect", rate=settings.GATEHOUSE_OAUTH_TOKEN_RATE
        )
        if refused:
            return refused
        core = self.get_oauthlib_core()
        headers, body, status = core.server.create_introspect_response(
            request.get_full_path(),
            http_method=request.method,
            body=urlencode(core.extract_body(request)),
            headers=core.extract_headers(request),
        )
        response = HttpResponse(body, status=status)
        for key, value in headers.items():
            response[key] = value
        return response


# --- RFC 7591 ------------------------------------------------------------------------------------


def _metadata_error(description: str, *, error: str = "invalid_client_metadata") -> JsonResponse:
    response = _error_response(error, description)
    response["Cache-Control"] = "no-store"
    return response


ALLOWED_GRANT_TYPES = {"authorization_code", "refresh_token"}
AUTH_METHODS = ("none", "client_secret_basic", "client_secret_post")


def _string_list(data: dict, key: str, default: list[str]) -> list[str] | None:
    value = data.get(key, default)
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        return None
    return value


class MetadataRefused(Exception):
    """Client metadata that RFC 7591 §3.2.2 refuses: its error code and description."""

    def __init__(self, description: str, error: str = "invalid_client_metadata") -> None:
        super().__init__(description)
        self.description, self.error = description, error


def _parse_metadata(raw: bytes) -> dict:
    """The registration body as a JSON object of storable text, or the refusal.

    Two things valid JSON can hold that no client metadata can: nesting deeper than the parser's
    recursion limit (`[[[[…` in 16 KiB raises RecursionError, not ValueError), and lone
    surrogates (`"\\ud800"` decodes to a str that neither PostgreSQL nor SQLite can store).
    Both are refused here, before anything is validated or saved.
    """
    try:
        data = json.loads(raw)
    except (ValueError, UnicodeDecodeError, RecursionError):
        raise MetadataRefused("The request body must be a JSON object.") from None
    if not isinstance(data, dict):
        raise MetadataRefused("The request body must be a JSON object.")
    try:
        json.dumps(data, ensure_ascii=False).encode("utf-8")
    except (UnicodeEncodeError, RecursionError, ValueError):
        raise MetadataRefused(
            "Client metadata must be valid Unicode text (JSON allows lone surrogates such as "
            "\\ud800; this server does not)."
        ) from None
    return data


class RegistrationView(DynamicClientRegistrationView):
    """RFC 7591 §3, open and rate-limited per IP. Registers authorization-code clients only;
    any other grant or response type is `invalid_client_metadata`, a bad redirect URI is
    `invalid_redirect_uri`. RFC 7592 management is not offered (no registration access token)."""

    @method_decorator(never_cache)
    def post(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        refused = refuse_unusable_request(
            request, group="oauth.register", rate=settings.GATEHOUSE_OAUTH_REGISTER_RATE,
            form=False,  # the body is JSON, read below
        )
        if refused:
            return refused
        try:
            metadata = _client_metadata(_registration_body(request))
            application, secret = oauth_app_register_dynamic(
                name=metadata.name,
                redirect_uris=metadata.redirect_uris,
                confidential=metadata.auth_method != "none",
                context=RequestContext.from_request(request),
            )
        except MetadataRefused as refusal:
            return _metadata_error(refusal.description, error=refusal.error)
        except ValidationError as exc:
            error = "invalid_redirect_uri" if "redirect_uris" in getattr(
                exc, "message_dict", {}
            ) else "invalid_client_metadata"
            return _metadata_error(" ".join(exc.messages), error=error)
        return JsonResponse(_registered(application, secret, metadata), status=HTTPStatus.CREATED)


@dataclass(frozen=True)
class ClientMetadata:
    name: str
    redirect_uris: list[str]
    auth_method: str
    scope: str | None


def _registration_body(request: HttpRequest) -> dict:
    """The registration body as a JSON object, refused past MAX_REGISTRATION_BYTES whether the
    client declared its length or not."""
    too_large = MetadataRefused(f"Client metadata must be at most {MAX_REGISTRATION_BYTES} bytes.")
    try:
        declared = int(request.META.get("CONTENT_LENGTH") or 0)
    except ValueError:
        declared = 0
    if declared > MAX_REGISTRATION_BYTES:
        raise too_large
    try:
        raw = request.body
    except RequestDataTooBig:
        raise too_large from None
    if len(raw) > MAX_REGISTRATION_BYTES:
        raise too_large
    return _parse_metadata(raw)


def _client_metadata(data: dict) -> ClientMetadata:
    """RFC 7591 §2: what an authorization-code client may register, or the refusal."""
    grant_types = _string_list(data, "grant_types", ["authorization_code"])
    if grant_types is None:
        raise MetadataRefused("grant_types must be an array of strings.")
    if "authorization_code" not in grant_types or not set(grant_types) <= ALLOWED_GRANT_TYPES:
        raise MetadataRefused(
            "Only authorization_code clients (optionally with refresh_token) can register."
        )
    response_types = _string_list(data, "response_types", ["code"])
    if response_types is None or set(response_types) != {"code"}:
        raise MetadataRefused('response_types must be ["code"].')
    auth_method = data.get("token_endpoint_auth_method", "client_secret_basic")
    if auth_method not in AUTH_METHODS:
        raise MetadataRefused(
            f"token_endpoint_auth_method must be one of: {', '.join(AUTH_METHODS)}."
        )
    scope = data.get("scope")
    if scope is not None and (
        not isinstance(scope, str) or any(get_scope(s) is None for s in scope.split())
    ):
        raise MetadataRefused("scope must name scopes this server supports.")
    return ClientMetadata(
        name=_client_name(data), redirect_uris=_redirect_uris(data), auth_method=auth_method,
        scope=scope,
    )


def _client_name(data: dict) -> str:
    name = data.get("client_name", "")
    if (
        not isinstance(name, str)
        or len(name) > MAX_CLIENT_NAME_LENGTH
        or any(ord(ch) < 0x20 or ord(ch) == 0x7F for ch in name)
    ):
        raise MetadataRefused(
            f"client_name must be a string of at most {MAX_CLIENT_NAME_LENGTH} printable "
            "characters."
        )
    return name


def _redirect_uris(data: dict) -> list[str]:
    redirect_uris = _string_list(data, "redirect_uris", [])
    if not redirect_uris:
        raise MetadataRefused(
            "redirect_uris must be a non-empty array of strings.", error="invalid_redirect_uri"
        )
    for uri in redirect_uris:
        problem = redirect_uri_problem(uri)
        if problem is not None:
            raise MetadataRefused(problem, error="invalid_redirect_uri")
    return redirect_uris


def _registered(
    application: Application, secret: str | None, metadata: ClientMetadata
) -> dict[str, Any]:
    """RFC 7591 §3.2.1: the client information response."""
    body: dict[str, Any] = {
        "client_id": application.client_id,
        "client_id_issued_at": int(time.time()),
        "client_name": application.name,
        "redirect_uris": application.redirect_uris.split(),
        "grant_types": ["authorization_code", "refresh_token"],
        "response_types": ["code"],
        "token_endpoint_auth_method": metadata.auth_method,
    }
    if metadata.scope is not None:
        body["scope"] = metadata.scope
    if secret is not None:
        body["client_secret"] = secret
        body["client_secret_expires_at"] = 0  # RFC 7591 §3.2.1: does not expire
    return body
