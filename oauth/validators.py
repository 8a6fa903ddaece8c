"""DOT's request validator, extended (OAUTH2_PROVIDER["OAUTH2_VALIDATOR_CLASS"]).

What Gatehouse adds to django-oauth-toolkit's `OAuth2Validator`:

- redirect URIs are checked against `oauth.redirects` at the authorization endpoint too, so an
  `http` URI to a non-loopback host is refused even if one was stored by other means;
- every authorization code and token is tied to the `Connection` (user × app × workspace) the
  consent screen created: the code carries it from consent to the token endpoint, every access and
  refresh token issued from it is linked to it, and a code or refresh token whose connection was
  revoked is refused (`invalid_grant`);
- presenting a rotated (revoked) refresh token revokes the whole connection and records
  `oauth.refresh_token_reused` (RFC 9700 §4.14.2);
- RFC 7009 revocation of either token ends the whole grant it belongs to (§2.1), audited as
  `oauth.token_revoked` with the app as the actor;
- RFC 8707 audience binding (oauth.resources): `resource` at the token endpoint must name one of
  this deployment's resources (else `invalid_target`), within what the authorization named, and
  every token is bound to exactly one (default: the API); a refresh keeps the refresh token's;
- RFC 6749 §4.1.2: an exchanged code is remembered by its digest with what it issued
  (`UsedAuthorizationCode`); a second exchange is refused and revokes those tokens;
- concurrent refreshes of one refresh token: the row is locked for the token request (the token
  view runs it in one transaction), so exactly one rotates it; the others get `invalid_grant`,
  and they are not reuse when the token was rotated while they were in flight or at most
  `REFRESH_RACE_SECONDS` before they arrived: a client firing several refreshes at once (tabs,
  threads, a retry on a slow response) is common, and ending its grant for that would be wrong.
  The winner's tokens keep working. Presented later, a rotated token is reuse (RFC 9700
  §4.14.2). The window is what a thief would need to hit to go unnoticed: use the stolen token
  less than 2 s before the client's own refresh (docs/security.md says what that costs);
- a refresh token whose family was ended by a replayed code (above) is refused without ending
  the whole grant again: that incident was already handled and audited.

The token view (oauth.endpoints.GatehouseTokenView) tells the validator two things through the
request environ, which clients cannot write (their headers arrive as `HTTP_*`): the origin the
request came to (`ORIGIN_KEY`) and when it arrived (`RECEIVED_KEY`).
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from django.db import IntegrityError, transaction
from django.db.models import F
from oauth2_provider.cimd import is_cimd_client_id
from oauth2_provider.models import (
    get_access_token_model,
    get_application_model,
    get_grant_model,
    get_refresh_token_model,
)
from oauth2_provider.oauth2_validators import OAuth2Validator
from oauthlib.oauth2.rfc6749 import errors

from core.context import Door, RequestContext
from core.credfilter import credential_created

from .codesweep import code_sweeper
from .models import (
    AccessTokenLink,
    Connection,
    GrantLink,
    IssuedAccessToken,
    RefreshTokenLink,
    UsedAuthorizationCode,
)
from .redirects import redirect_uri_problem
from .resources import api_resource_at, canonical_resource, describe_resources, own_resource
from .selectors import (
    access_token_with_grant,
    connection_of,
    current_role,
    effective_scopes,
    live_refresh_token_with_grant,
    token_checksum,
)
from .services import (
    app_actor,
    authorization_code_replay,
    connection_revoke,
    connection_revoke_for_reuse,
    oauth_app_record_metadata_document,
)

if TYPE_CHECKING:
    from oauth2_provider.models import AccessToken, RefreshToken
    from oauthlib.common import Request as OAuthlibRequest

log = logging.getLogger(__name__)
Application = get_application_model()

CONNECTION_ATTR = "gatehouse_connection"
CONNECTION_ID_ATTR = "gatehouse_connection_id"
RESOURCE_ATTR = "gatehouse_resource"
ISSUED_ACCESS_TOKEN_ATTR = "gatehouse_issued_access_token_id"
ISSUED_FAMILY_ATTR = "gatehouse_issued_token_family"
# Set by the token view in the request environ (never from a client header, see above).
ORIGIN_KEY = "gatehouse.origin"
RECEIVED_KEY = "gatehouse.received_at"
# A refresh token rotated at most this long before a request presenting it arrived (or while it
# waited) lost a race with the client's own near-simultaneous refresh: not reuse.
REFRESH_RACE_SECONDS = 2


def request_context(request: OAuthlibRequest) -> RequestContext:  # an oauthlib Request
    """Where a token-endpoint event came from: the client's address and user agent, through the
    API door (the validator only ever runs behind /api/oauth/…)."""
    headers = request.headers or {}
    return RequestContext(
        ip=headers.get("REMOTE_ADDR") or None,
        user_agent=str(headers.get("HTTP_USER_AGENT", ""))[:512],
        door=Door.API,
    )


def _active_connection(connection: Connection | None) -> Connection | None:
    if connection is None or connection.revoked_at is not None:
        return None
    return connection


def _invalid_target(request: OAuthlibRequest, description: str) -> errors.CustomOAuth2Error:
    return errors.CustomOAuth2Error(
        error="invalid_target", description=description, request=request
    )


def _origin(request: OAuthlibRequest) -> str:
    origin = (request.headers or {}).get(ORIGIN_KEY)
    if not origin:  # not through the token view: bind nothing rather than guess
        raise _invalid_target(request, "This endpoint cannot determine its own resources.")
    return origin


def _requested_resources(request: OAuthlibRequest) -> list[str]:
    """Every `resource` parameter of the token request (RFC 8707 allows repeating it; oauthlib
    keeps only the last)."""
    values = [value for key, value in (request.decoded_body or []) if key == "resource"]
    if not values and isinstance(getattr(request, "resource", None), str):
        values = [request.resource]
    return values


def bind_resource(request: OAuthlibRequest, *, allowed: list[str] | None) -> str:
    """The one resource (canonical identifier) the token being issued is bound to (RFC 8707 §2.2).

    `allowed`: what the authorization code or refresh token already allows — None for a code
    whose authorization named no resource (any of ours may be named now). Raises
    `invalid_target` for a resource that is not ours, more than one, one outside `allowed`, or a
    stored one that is not ours (a token minted for another server before audience binding)."""
    origin = _origin(request)
    ours = describe_resources(origin)
    requested: list[str] = []
    for value in _requested_resources(request):
        canonical = own_resource(value, origin=origin)
        if canonical is None:
            raise _invalid_target(request, f"Tokens from this server are only valid for {ours}.")
        if canonical not in requested:
            requested.append(canonical)
    if len(requested) > 1:
        raise _invalid_target(request, "Name one resource per token request.")
    if allowed is not None:
        allowed_ours = [own_resource(value, origin=origin) for value in allowed]
        if None in allowed_ours:
            raise _invalid_target(
                request, f"This grant is bound to a resource this server does not serve ({ours})."
            )
        if requested and requested[0] not in allowed_ours:
            raise _invalid_target(
                request, "The resource is not one this grant was authorized for."
            )
        if not requested:
            if len(allowed_ours) > 1:
                raise _invalid_target(
                    request, "The authorization named several resources: name one."
                )
            requested = allowed_ours[:1]
    return requested[0] if requested else api_resource_at(origin)


def _received_at(request: OAuthlibRequest) -> datetime | None:
    value = (request.headers or {}).get(RECEIVED_KEY)
    return value if isinstance(value, datetime) else None


class GatehouseOAuth2Validator(OAuth2Validator):
    def _load_application(self, client_id: str, request: OAuthlibRequest) -> Application | None:
        """DOT's, plus the audit event of a metadata-document app stored on first sight."""
        try:
            first_sight = (
                request.client is None
                and is_cimd_client_id(client_id or "")
                and not Application.objects.filter(client_id=client_id).exists()
            )
        except ValueError:  # a NUL byte PostgreSQL refuses: DOT answers "unknown client"
            first_sight = False
        client = super()._load_application(client_id, request)
        if first_sight and client is not None:
            oauth_app_record_metadata_document(
                application=client, context=request_context(request)
            )
        return client

    # --- Authorization endpoint -----------------------------------------------------------------

    def validate_redirect_uri(
        self, client_id: str, redirect_uri: str, request: OAuthlibRequest, *args: Any,
        **kwargs: Any,
    ) -> bool:
        if redirect_uri_problem(redirect_uri) is not None:
            return False
        client = request.client
        if (
            client is not None
            and client.registration_source == client.RegistrationSource.CIMD
        ):
            # Client ID Metadata Documents: exactly one of the document's redirect URIs, with
            # none of RFC 8252's loopback port leeway (anyone can publish such a document).
            return redirect_uri in client.redirect_uris.split()
        return super().validate_redirect_uri(client_id, redirect_uri, request, *args, **kwargs)

    def save_authorization_code(
        self, client_id: str, code: str, request: OAuthlibRequest, *args: Any, **kwargs: Any,
    ) -> None:
        """Only the consent view issues codes, and it passes the connection it created; a code
        without one is never stored."""
        connection_id = getattr(request, CONNECTION_ID_ATTR, None)
        if connection_id is None:
            raise errors.AccessDeniedError(description="Consent is required.", request=request)
        grant = self._create_authorization_code(request, code)
        GrantLink.objects.create(grant=grant, connection_id=connection_id)
        code_sweeper.schedule(grant.expires)  # deleted soon after it expires, if not exchanged

    # --- Token endpoint: authorization code --------------------------------------------------

    def validate_code(
        self, client_id: str, code: str, client: Application, request: OAuthlibRequest, *args: Any,
        **kwargs: Any,
    ) -> bool:
        # Lock the code for this token request (one transaction, see the token view): a
        # concurrent exchange of the same code waits here, then finds it exchanged — a replay.
        grant = (
            get_grant_model()
            .objects.select_for_update()
            .filter(code=code, application=client)
            .only("pk", "resource")
            .first()
        )
        if grant is None:
            self._refuse_replayed_code(code, client, request)
            return False
        if not super().validate_code(client_id, code, client, request, *args, **kwargs):
            return False
        link = (
            GrantLink.objects.select_related("connection")
            .filter(grant__code=code, grant__application=client)
            .first()
        )
        connection = _active_connection(link.connection if link else None)
        if connection is None:
            return False
        setattr(request, RESOURCE_ATTR, bind_resource(request, allowed=grant.resource or None))
        setattr(request, CONNECTION_ATTR, connection)
        return True

    def _refuse_replayed_code(
        self, code: str, client: Application, request: OAuthlibRequest,
    ) -> None:
        """RFC 6749 §4.1.2: a code exchanged before revokes what that exchange issued."""
        if not isinstance(code, str) or client is None:
            return
        used = (
            UsedAuthorizationCode.objects.select_related(
                "connection__application", "connection__workspace"
            )
            .filter(code_digest=token_checksum(code), application=client)
            .first()
        )
        if used is None:
            return
        log.warning(
            "Authorization code replayed; revoking what it issued under %s",
            used.connection.public_id,
        )
        authorization_code_replay(used=used, context=request_context(request))

    def invalidate_authorization_code(
        self, client_id: str, code: str, request: OAuthlibRequest, *args: Any, **kwargs: Any,
    ) -> None:
        """DOT deletes the grant; remember the code's digest and what its exchange issued, in the
        same transaction as the tokens."""
        super().invalidate_authorization_code(client_id, code, request, *args, **kwargs)
        try:
            with transaction.atomic():
                UsedAuthorizationCode.objects.create(
                    code_digest=token_checksum(code),
                    application=request.client,
                    connection=self._connection(request),
                    access_token_id=getattr(request, ISSUED_ACCESS_TOKEN_ATTR, None),
                    refresh_token_family=getattr(request, ISSUED_FAMILY_ATTR, None),
                )
        except IntegrityError:  # exchanged concurrently after all: issue nothing
            transaction.set_rollback(True)
            raise errors.InvalidGrantError(request=request) from None

    # --- Token endpoint: refresh token ---------------------------------------------------------

    def validate_refresh_token(
        self, refresh_token: str, client: Application, request: OAuthlibRequest, *args: Any,
        **kwargs: Any,
    ) -> bool:
        RefreshToken = get_refresh_token_model()
        rt = (
            RefreshToken.objects.filter(token_checksum=token_checksum(refresh_token))
            .select_related("gatehouse_link__connection__application")
            .order_by(F("revoked").desc(nulls_first=True))
            .first()
        )
        if rt is None:
            return False
        raced = False
        if rt.revoked is None:
            # Lock it for the rest of this token request (one transaction, see the token view):
            # a concurrent refresh of the same token waits here until this one commits.
            revoked = (
                RefreshToken.objects.select_for_update()
                .filter(pk=rt.pk)
                .values_list("revoked", flat=True)
                .first()
            )
            if revoked is not None:
                rt.revoked, raced = revoked, True
        link = getattr(rt, "gatehouse_link", None)  # reverse one-to-one: None when missing
        connection = link.connection if link is not None else None
        if rt.revoked is not None:
            # A rotated (or revoked) refresh token. If its grant is still live this is reuse:
            # end the grant — unless this request lost a race with the rotation. Either way
            # the request fails with invalid_grant.
            if _active_connection(connection) is None:
                return False
            if raced or self._rotated_just_before(rt, request):
                log.info("Concurrent refresh of one token under %s refused", connection.public_id)
                return False
            if UsedAuthorizationCode.objects.filter(
                refresh_token_family=rt.token_family, replayed_at__isnull=False
            ).exists():
                return False
            log.warning("Refresh token reuse detected; revoking %s", connection.public_id)
            connection_revoke_for_reuse(connection=connection, context=request_context(request))
            return False
        if _active_connection(connection) is None:
            return False
        if not super().validate_refresh_token(refresh_token, client, request, *args, **kwargs):
            return False
        # The new tokens keep the refresh token's audience; one from before audience binding
        # (empty) was for the API.
        setattr(
            request,
            RESOURCE_ATTR,
            bind_resource(request, allowed=rt.resource or [api_resource_at(_origin(request))]),
        )
        setattr(request, CONNECTION_ATTR, connection)
        return True

    @staticmethod
    def _rotated_just_before(rt: RefreshToken, request: OAuthlibRequest) -> bool:
        """Whether `rt` was rotated at most REFRESH_RACE_SECONDS before this request arrived,
        or after. Where the database serialises whole token requests (SQLite takes its write
        lock at BEGIN), the loser of a race only ever sees the token already rotated; on
        PostgreSQL the row lock in `validate_refresh_token` shows a race directly."""
        received = _received_at(request)
        if received is None or rt.revoked < received - timedelta(seconds=REFRESH_RACE_SECONDS):
            return False
        return get_access_token_model().objects.filter(source_refresh_token=rt).exists()

    # --- Issuing tokens ----------------------------------------------------------------------

    def _connection(self, request: OAuthlibRequest) -> Connection:
        connection = getattr(request, CONNECTION_ATTR, None)
        if connection is None:  # never issue a token that belongs to no grant
            raise errors.InvalidGrantError(request=request)
        return connection

    def _create_access_token(
        self, expires: datetime, request: OAuthlibRequest, token: dict,
        source_refresh_token: RefreshToken | None = None,
    ) -> AccessToken:
        connection = self._connection(request)
        access_token = super()._create_access_token(
            expires, request, token, source_refresh_token=source_refresh_token
        )
        AccessTokenLink.objects.create(access_token=access_token, connection=connection)
        # Remembered after DOT deletes it, so it stays a known credential (oauth.models).
        IssuedAccessToken.objects.create(
            token_checksum=access_token.token_checksum, expires_at=access_token.expires
        )
        credential_created(access_token.token_checksum)  # every process knows it from its first use
        if request.grant_type == "authorization_code":
            setattr(request, ISSUED_ACCESS_TOKEN_ATTR, access_token.pk)
        return access_token

    def _create_refresh_token(
        self, request: OAuthlibRequest, refresh_token_code: str, access_token: AccessToken,
        previous_refresh_token: RefreshToken | None,
    ) -> RefreshToken:
        connection = self._connection(request)
        refresh_token = super()._create_refresh_token(
            request, refresh_token_code, access_token, previous_refresh_token
        )
        RefreshTokenLink.objects.create(refresh_token=refresh_token, connection=connection)
        if request.grant_type == "authorization_code":
            setattr(request, ISSUED_FAMILY_ATTR, refresh_token.token_family)
        return refresh_token

    def _check_and_set_request_resource(self, request: OAuthlibRequest) -> None:
        """DOT's RFC 8707 handling at issuance, replaced: `validate_code` and
        `validate_refresh_token` chose the one resource already. Fails closed without one."""
        resource = getattr(request, RESOURCE_ATTR, None)
        if canonical_resource(resource) is None:
            raise errors.InvalidGrantError(request=request)
        request.resource = [resource]

    # --- Introspection endpoint (RFC 7662) ------------------------------------------------------

    def introspect_token(
        self, token: str, token_type_hint: str | None, request: OAuthlibRequest, *args: Any,
        **kwargs: Any,
    ) -> dict | None:
        """Claims for a live token issued to the requesting client, else None (inactive)."""
        client = request.client
        if client is None:
            return None
        access_token = access_token_with_grant(token, application=client)
        if access_token is not None:
            connection = connection_of(access_token)
            if access_token.is_expired() or connection is None:
                return None
            granted, token_type = access_token.scope, "access_token"
            claims = {"exp": int(access_token.expires.timestamp())}
            issued, audience = access_token.created, access_token.resource
        else:
            refresh_token = live_refresh_token_with_grant(token, application=client)
            connection = connection_of(refresh_token) if refresh_token is not None else None
            if connection is None or refresh_token.access_token is None:
                return None
            granted, token_type = refresh_token.access_token.scope, "refresh_token"
            claims = {}
            issued, audience = refresh_token.created, refresh_token.resource
        role = current_role(connection)
        if role is None or connection.is_pending:  # awaiting approval: not usable (SPEC §12)
            return None
        if audience:  # RFC 7662 §2.2 `aud`: the one resource the token is bound to
            claims["aud"] = audience[0]
        return {
            **claims,
            "scope": " ".join(sorted(effective_scopes(granted, role))),
            "client_id": client.client_id,
            "token_type": token_type,
            "iat": int(issued.timestamp()),
            "sub": str(connection.user_id),
            "workspace": connection.workspace.slug,
        }

    # --- Revocation endpoint (RFC 7009) --------------------------------------------------------

    def revoke_token(
        self, token: str, token_type_hint: str | None, request: OAuthlibRequest, *args: Any,
        **kwargs: Any,
    ) -> None:
        """Revoke the grant the token belongs to, if it was issued to the requesting client.
        Unknown tokens and other clients' tokens are ignored (RFC 7009 §2.2: still 200)."""
        application_pk = getattr(request.client, "pk", None)
        if application_pk is None:
            return
        checksum = token_checksum(token)
        connection = (
            Connection.objects.filter(
                application_id=application_pk,
                access_token_links__access_token__token_checksum=checksum,
            ).first()
            or Connection.objects.filter(
                application_id=application_pk,
                refresh_token_links__refresh_token__token_checksum=checksum,
            ).first()
        )
        if connection is None:
            return
        connection_revoke(
            connection=connection,
            actor=app_actor(request.client),
            context=request_context(request),
            reason="revoked_by_app",
        )

