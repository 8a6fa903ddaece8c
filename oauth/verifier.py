"""The gateway's verifier for OAuth access tokens (settings.GATEHOUSE_TOKEN_VERIFIERS["gat_"]).

`verify_access_token` answers "who is calling, in which workspace, with which scopes" for a
`gat_…` bearer token at `resource`, the absolute identifier of the protected resource being
called (`<origin>/api/v1`; later `<origin>/mcp`). A token bound to another resource (RFC 8707,
MCP "Token Audience Binding"; oauth.resources) is refused like an unknown one.
Effective scopes are the token's granted scopes ∩ what the
granting user's *current* role in the token's workspace allows (SPEC §7), so a demoted editor's
tokens lose write at once and a removed member's tokens stop working. A grant awaiting an
admin's approval (SPEC §12) is 403 `app_not_approved`; every other failure is a 401
`invalid_token`; the message says why without revealing anything about other tenants.
Cost: a malformed token costs no query; a well-formed one costs one (`gateway_grant`: the token,
its app, grant, workspace and plan and the user's current role, in one raw statement), plus a
write at most once a minute per grant for "last used". A token DOT no longer stores costs a second
(`IssuedAccessToken` by checksum): one that existed is "revoked or expired", a known credential.
With Redis, a verified token may come from the per-process cache (`oauth.tokencache`), like a
key: none of that then, and no Redis call either under a fresh lease (core.leases).
"""

from __future__ import annotations

from dataclasses import replace
from http import HTTPStatus

from apikit.principal import AuthFailure, Principal
from core.credfilter import CredentialFamily
from core.leases import lease_ticket

from .models import IssuedAccessToken
from .resources import audience_allows
from .selectors import GatewayGrant, effective_scopes, gateway_grant, token_checksum
from .services import connection_touch
from .tokencache import token_cache, tokencache_enabled, tokencache_versions
from .tokens import ACCESS_TOKEN_PREFIX, is_well_formed


def _invalid(message: str, *, looked_up: bool = True, known: bool = False) -> AuthFailure:
    return AuthFailure("invalid_token", message, looked_up=looked_up, known=known)


UNKNOWN_TOKEN = "The access token is unknown or has been revoked."
GONE_TOKEN = "The access token has been revoked or has expired."


def verify_access_token(
    token: str,
    *,
    ip: str | None,
    resource: str,
    digest: str | None = None,
    fresh: bool = False,
) -> Principal | AuthFailure:
    """`digest`: what the family's `screen` returned (DOT's checksum of a well-formed token), so
    the gateway's screened token is not checked or hashed again; without it, both happen here.
    `fresh` reads past the cache (the gateway's second look when a cached token's markers
    moved)."""
    if digest is None:
        if not is_well_formed(token, ACCESS_TOKEN_PREFIX):
            return _invalid("The access token is malformed.", looked_up=False)
        digest = token_checksum(token)
    versions, ticket = None, 0
    if tokencache_enabled():
        entry = None if fresh else token_cache.get(digest)
        if entry is not None:
            principal = _principal(entry.value, resource)
            if isinstance(principal, Principal):  # a refusal is never answered from the cache
                return replace(principal, versions=entry.versions, lease=entry.ticket)
        token_cache.discard(digest)
        ticket = lease_ticket()  # before the markers and the row (core.leases)
        versions = tokencache_versions(digest)  # before the row (oauth.tokencache)
    grant = gateway_grant(digest)
    result = _principal(grant, resource, digest=digest)
    if versions is not None and isinstance(result, Principal):
        token_cache.put(digest, grant, versions, ticket)
    return result


def _principal(
    grant: GatewayGrant | None, resource: str, *, digest: str | None = None
) -> Principal | AuthFailure:
    """What the grant says at `resource` now (the token's expiry against the clock, exactly)."""
    if grant is None:
        # DOT deleted it (revoked, rotated, grant or member removed, cleaned up), or nobody
        # issued it. One that existed is the client's own business: known, never counted.
        if digest and IssuedAccessToken.objects.filter(token_checksum=digest).exists():
            return _invalid(GONE_TOKEN, known=True)
        return _invalid(UNKNOWN_TOKEN)
    access_token, connection, role = grant.access_token, grant.connection, grant.role
    if not audience_allows(access_token.resource, resource):
        return _invalid("The access token was issued for another resource, not this one.")
    if access_token.is_expired():
        return _invalid(
            "The access token has expired; refresh it or authorize the app again.", known=True
        )
    if connection is None:
        return _invalid("The access token has been revoked.", known=True)
    if role is None:
        return _invalid(
            "The user who authorized this app is no longer a member of the workspace.", known=True
        )
    if connection.is_pending:
        # SPEC §12: read with the token in the same statement, so an approval or a denial
        # holds from the next request on every process.
        return AuthFailure(
            "app_not_approved",
            f"This app is awaiting approval in the workspace {connection.workspace.name}: an "
            "admin or owner of the workspace can approve it under Settings → Connected apps.",
            status=HTTPStatus.FORBIDDEN, known=True,
        )
    application = access_token.application
    connection_touch(connection=connection)
    return Principal(
        kind="oauth",
        id=application.client_id,
        name=application.name or application.client_id,
        workspace=connection.workspace,
        scopes=effective_scopes(access_token.scope, role),
        user_id=connection.user_id,
        extra={"connection_id": connection.public_id, "role": role},
        collections=(
            None if connection.collections is None else frozenset(connection.collections)
        ),
        caps=connection.caps(),
    )


def _screen_access_token(token: str) -> str | None:
    return token_checksum(token) if is_well_formed(token, ACCESS_TOKEN_PREFIX) else None


# What the gateway's credential filter (core.credfilter) knows about access tokens: every one
# issued (oauth.models.IssuedAccessToken, by DOT's own checksum), including those DOT has since
# deleted, until a week after they expire. A token nobody issued is refused as unknown.
verify_access_token.credential_family = CredentialFamily(
    screen=_screen_access_token,
    source=lambda: (IssuedAccessToken, "token_checksum"),
    unknown=_invalid(UNKNOWN_TOKEN),
)
