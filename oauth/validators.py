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
  `oauth.token_revoked` with the app as the actor.
"""

from __future__ import annotations

import logging

from django.db.models import F
from oauth2_provider.models import get_refresh_token_model
from oauth2_provider.oauth2_validators import OAuth2Validator
from oauthlib.oauth2.rfc6749 import errors

from apikeys.credfilter import credential_created
from audit.services import RequestContext

from .models import AccessTokenLink, Connection, GrantLink, RefreshTokenLink
from .redirects import redirect_uri_problem
from .selectors import (
    access_token_with_grant,
    connection_of,
    current_role,
    effective_scopes,
    live_refresh_token_with_grant,
    token_checksum,
)

log = logging.getLogger(__name__)

CONNECTION_ATTR = "gatehouse_connection"
CONNECTION_ID_ATTR = "gatehouse_connection_id"


def request_context(request) -> RequestContext:  # noqa: ANN001 — an oauthlib Request
    headers = request.headers or {}
    return RequestContext(
        ip=headers.get("REMOTE_ADDR") or None,
        user_agent=str(headers.get("HTTP_USER_AGENT", ""))[:512],
    )


def _active_connection(connection: Connection | None) -> Connection | None:
    if connection is None or connection.revoked_at is not None:
        return None
    return connection


class GatehouseOAuth2Validator(OAuth2Validator):
    # --- Authorization endpoint -----------------------------------------------------------------

    def validate_redirect_uri(self, client_id, redirect_uri, request, *args, **kwargs) -> bool:  # noqa: ANN001, ANN002, ANN003
        if redirect_uri_problem(redirect_uri) is not None:
            return False
        return super().validate_redirect_uri(client_id, redirect_uri, request, *args, **kwargs)

    def save_authorization_code(self, client_id, code, request, *args, **kwargs) -> None:  # noqa: ANN001, ANN002, ANN003
        """Only the consent view issues codes, and it passes the connection it created; a code
        without one is never stored."""
        connection_id = getattr(request, CONNECTION_ID_ATTR, None)
        if connection_id is None:
            raise errors.AccessDeniedError(description="Consent is required.", request=request)
        grant = self._create_authorization_code(request, code)
        GrantLink.objects.create(grant=grant, connection_id=connection_id)

    # --- Token endpoint: authorization code --------------------------------------------------

    def validate_code(self, client_id, code, client, request, *args, **kwargs) -> bool:  # noqa: ANN001, ANN002, ANN003
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
        setattr(request, CONNECTION_ATTR, connection)
        return True

    # --- Token endpoint: refresh token ---------------------------------------------------------

    def validate_refresh_token(self, refresh_token, client, request, *args, **kwargs) -> bool:  # noqa: ANN001, ANN002, ANN003
        RefreshToken = get_refresh_token_model()
        rt = (
            RefreshToken.objects.filter(token_checksum=token_checksum(refresh_token))
            .select_related("gatehouse_link__connection__application")
            .order_by(F("revoked").desc(nulls_first=True))
            .first()
        )
        if rt is None:
            return False
        link = getattr(rt, "gatehouse_link", None)  # reverse one-to-one: None when missing
        connection = link.connection if link is not None else None
        if rt.revoked is not None:
            # A rotated (or revoked) refresh token. If its grant is still live this is reuse:
            # end the grant. Either way the request fails with invalid_grant.
            if _active_connection(connection) is not None:
                from .services import connection_revoke_for_reuse

                log.warning("Refresh token reuse detected; revoking %s", connection.public_id)
                connection_revoke_for_reuse(
                    connection=connection, context=request_context(request)
                )
            return False
        if _active_connection(connection) is None:
            return False
        if not super().validate_refresh_token(refresh_token, client, request, *args, **kwargs):
            return False
        setattr(request, CONNECTION_ATTR, connection)
        return True

    # --- Issuing tokens ----------------------------------------------------------------------

    def _connection(self, request) -> Connection:  # noqa: ANN001
        connection = getattr(request, CONNECTION_ATTR, None)
        if connection is None:  # never issue a token that belongs to no grant
            raise errors.InvalidGrantError(request=request)
        return connection

    def _create_access_token(self, expires, request, token, source_refresh_token=None):  # noqa: ANN001, ANN202
        connection = self._connection(request)
        access_token = super()._create_access_token(
            expires, request, token, source_refresh_token=source_refresh_token
        )
        AccessTokenLink.objects.create(access_token=access_token, connection=connection)
        credential_created(access_token.token_checksum)  # every process knows it from its first use
        return access_token

    def _create_refresh_token(self, request, refresh_token_code, access_token, previous_refresh_token):  # noqa: ANN001, ANN202, E501
        connection = self._connection(request)
        refresh_token = super()._create_refresh_token(
            request, refresh_token_code, access_token, previous_refresh_token
        )
        RefreshTokenLink.objects.create(refresh_token=refresh_token, connection=connection)
        return refresh_token

    # --- Introspection endpoint (RFC 7662) ------------------------------------------------------

    def introspect_token(self, token, token_type_hint, request, *args, **kwargs) -> dict | None:  # noqa: ANN001, ANN002, ANN003
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
            issued = access_token.created
        else:
            refresh_token = live_refresh_token_with_grant(token, application=client)
            connection = connection_of(refresh_token) if refresh_token is not None else None
            if connection is None or refresh_token.access_token is None:
                return None
            granted, token_type = refresh_token.access_token.scope, "refresh_token"
            claims = {}
            issued = refresh_token.created
        role = current_role(connection)
        if role is None:
            return None
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

    def revoke_token(self, token, token_type_hint, request, *args, **kwargs) -> None:  # noqa: ANN001, ANN002, ANN003
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
        from .services import app_actor, connection_revoke

        connection_revoke(
            connection=connection,
            actor=app_actor(request.client),
            context=request_context(request),
            reason="revoked_by_app",
        )

