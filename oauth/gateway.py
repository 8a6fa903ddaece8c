"""The gateway's verifier for OAuth access tokens (settings.GATEHOUSE_TOKEN_VERIFIERS["gat_"]).

`verify_access_token` answers "who is calling, in which workspace, with which scopes" for a
`gat_…` bearer token at `resource`, the absolute identifier of the protected resource being
called (`<origin>/api/v1`; later `<origin>/mcp`). A token bound to another resource (RFC 8707,
MCP "Token Audience Binding"; oauth.resources) is refused like an unknown one.
Effective scopes are the token's granted scopes ∩ what the
granting user's *current* role in the token's workspace allows (SPEC §7), so a demoted editor's
tokens lose write at once and a removed member's tokens stop working. Every failure is a 401
`invalid_token`; the message says why without revealing anything about other tenants.
Cost: a malformed token costs no query; a well-formed one costs one (`gateway_grant`: the token,
its app, grant, workspace and plan and the user's current role, in one raw statement), plus a
write at most once a minute per grant for "last used".
"""

from __future__ import annotations

from apikeys.principal import AuthFailure, Principal

from .resources import audience_allows
from .selectors import effective_scopes, gateway_grant
from .services import connection_touch
from .tokens import ACCESS_TOKEN_PREFIX, is_well_formed


def _invalid(message: str, *, looked_up: bool = True) -> AuthFailure:
    return AuthFailure("invalid_token", message, looked_up=looked_up)


def verify_access_token(token: str, *, ip: str | None, resource: str) -> Principal | AuthFailure:
    if not is_well_formed(token, ACCESS_TOKEN_PREFIX):
        return _invalid("The access token is malformed.", looked_up=False)
    grant = gateway_grant(token)
    if grant is None:
        return _invalid("The access token is unknown or has been revoked.")
    access_token, connection, role = grant.access_token, grant.connection, grant.role
    if not audience_allows(access_token.resource, resource):
        return _invalid("The access token was issued for another resource, not this one.")
    if access_token.is_expired():
        return _invalid("The access token has expired; refresh it or authorize the app again.")
    if connection is None:
        return _invalid("The access token has been revoked.")
    if role is None:
        return _invalid("The user who authorized this app is no longer a member of the workspace.")
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
    )
