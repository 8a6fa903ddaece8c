"""The OAuth server (OAUTH2_PROVIDER["OAUTH2_SERVER_CLASS"]): what oauthlib will accept at all.

oauthlib's pre-configured `Server` wires every grant — implicit, password, client credentials,
device code — and lets settings and validators refuse them one by one. This server is built the
other way round: only the authorization-code grant (RFC 6749 §4.1) with PKCE `S256` (RFC 7636,
RFC 9700 §2.1.1) and the refresh-token grant (§6) exist, so no token can be issued without a user
having consented, and `plain` or missing PKCE is refused before the consent screen.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from oauthlib.common import Request
from oauthlib.oauth2.rfc6749 import errors
from oauthlib.oauth2.rfc6749.endpoints import (
    AuthorizationEndpoint,
    IntrospectEndpoint,
    ResourceEndpoint,
    RevocationEndpoint,
    TokenEndpoint,
)
from oauthlib.oauth2.rfc6749.grant_types import AuthorizationCodeGrant, RefreshTokenGrant
from oauthlib.oauth2.rfc6749.grant_types.authorization_code import code_challenge_method_s256
from oauthlib.oauth2.rfc6749.tokens import BearerToken

from .scopes import OFFLINE_ACCESS
from .tokens import generate_authorization_code

if TYPE_CHECKING:
    from oauthlib.oauth2 import RequestValidator


class S256AuthorizationCodeGrant(AuthorizationCodeGrant):
    """The code grant with `S256` as the only PKCE method. A request without
    `code_challenge_method` defaults to `plain` (RFC 7636 §4.3) and is refused with it."""

    _code_challenge_methods = {"S256": code_challenge_method_s256}

    def create_authorization_code(self, request: Request) -> dict:
        """oauthlib's, with a `gac_…` code (oauth.tokens) instead of an anonymous random one,
        and without its DEBUG log line that prints the code."""
        grant = {"code": generate_authorization_code()}
        if getattr(request, "state", None):
            grant["state"] = request.state
        return grant


def require_state(request: Request) -> dict:
    """Authorization requests must carry `state` (RFC 6749 §10.12, RFC 9700 §4.7.1)."""
    if not request.state:
        raise errors.InvalidRequestError(
            description="The state parameter is required.", request=request
        )
    return {}


_CODE_CHALLENGE = re.compile(r"[A-Za-z0-9\-._~]{43,128}")


def valid_code_challenge(request: Request) -> dict:
    """A `code_challenge` must be 43–128 unreserved characters (RFC 7636 §4.2); an S256
    challenge is exactly 43. Anything else is refused before it is stored."""
    challenge = request.code_challenge
    if challenge is not None and _CODE_CHALLENGE.fullmatch(challenge) is None:
        raise errors.InvalidRequestError(
            description="The code_challenge is malformed (RFC 7636 §4.2).", request=request
        )
    return {}


def refresh_token_only_with_offline_access(
    token: dict, token_handler: BearerToken, request: Request
) -> dict:
    """A refresh token is issued only when `offline_access` was granted (SPEC §7)."""
    if OFFLINE_ACCESS not in (request.scopes or []):
        token.pop("refresh_token", None)
    return token


class GatehouseServer(
    AuthorizationEndpoint, IntrospectEndpoint, TokenEndpoint, ResourceEndpoint, RevocationEndpoint
):
    def __init__(
        self,
        request_validator: RequestValidator,
        token_expires_in: int | Callable[..., int] | None = None,
        token_generator: Callable[..., str] | None = None,
        refresh_token_generator: Callable[..., str] | None = None,
        *args: Any,
        **kwargs: Any,  # DOT passes device-flow settings we do not use
    ) -> None:
        self.auth_grant = S256AuthorizationCodeGrant(
            request_validator, pre_auth=[require_state, valid_code_challenge]
        )
        self.refresh_grant = RefreshTokenGrant(request_validator)
        for grant in (self.auth_grant, self.refresh_grant):
            grant.register_token_modifier(refresh_token_only_with_offline_access)
        self.bearer = BearerToken(
            request_validator, token_generator, token_expires_in, refresh_token_generator
        )
        AuthorizationEndpoint.__init__(
            self,
            default_response_type="code",
            response_types={"code": self.auth_grant},
            default_token_type=self.bearer,
        )
        TokenEndpoint.__init__(
            self,
            default_grant_type="authorization_code",
            grant_types={
                "authorization_code": self.auth_grant,
                "refresh_token": self.refresh_grant,
            },
            default_token_type=self.bearer,
        )
        ResourceEndpoint.__init__(self, default_token="Bearer", token_types={"Bearer": self.bearer})
        RevocationEndpoint.__init__(self, request_validator)
        IntrospectEndpoint.__init__(self, request_validator)
