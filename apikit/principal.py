"""Who is calling the JSON API: the gateway's common result for every kind of credential.

`/api/v1/` tokens are routed by prefix to a verifier (settings.GATEHOUSE_TOKEN_VERIFIERS):
`gk_` → API keys (`apikeys`), `gat_` → OAuth access tokens (`oauth`). A verifier takes the token,
the client IP and the absolute identifier of the resource being called (`<origin>/api/v1`, RFC
8707), and returns a `Principal` or an `AuthFailure`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from http import HTTPStatus
from typing import TYPE_CHECKING, Literal

from django.contrib.auth import get_user_model
from django.http import HttpRequest

from core.context import Actor, ActorType

if TYPE_CHECKING:
    from workspaces.caps import CredentialCaps
    from workspaces.models import Workspace


@dataclass(frozen=True, slots=True)
class Principal:
    kind: Literal["api_key", "oauth"]
    id: str  # the key's public id, or the OAuth app's client id
    name: str  # the key's name, or the OAuth app's name
    workspace: Workspace
    scopes: frozenset[str]
    api_key: object | None = None  # apikeys.models.ApiKey for kind="api_key"
    user_id: int | None = None  # the granting user, for kind="oauth"
    # Set when the principal came from a per-process cache (apikeys.keycache): the version
    # markers the gateway's Redis call must confirm before the request is served.
    versions: dict[str, str] | None = None
    # The cached entry's lease ticket (core.leases): while its lease is fresh, a request that
    # counts nothing is served without asking Redis. 0: confirm `versions` with Redis.
    lease: int = 0
    extra: dict = field(default_factory=dict)
    # SPEC §11: the collection row ids a restricted credential reaches; None reaches every
    # passport of the workspace, an empty set reaches none (a deleted collection never widens).
    collections: frozenset[int] | None = None
    # SPEC §3 per-credential caps (a daily cap, credits); None: the credential has none and the
    # gateway counts nothing more for it.
    caps: CredentialCaps | None = None


@dataclass(frozen=True, slots=True)
class AuthFailure:
    error: str  # a SPEC §4 error code
    message: str
    status: int = HTTPStatus.UNAUTHORIZED
    # False when the token was refused from its shape alone (prefix, length, checksum), without
    # any I/O.
    looked_up: bool = True
    # True when the credential exists but is refused (revoked, expired, paused, another address,
    # an OAuth grant that ended): its own answer, never counted as a failed guess (SPEC §3, §5).
    known: bool = False
    # Which API key was refused, so the refusal shows in its recent requests (SPEC §5 usage):
    # the key's row id when the verifier looked it up, or, for a token refused without a lookup
    # (another environment's key), its stored digest, which the gateway attributes only if the
    # credential filter knows it. Neither is ever logged or sent.
    api_key_id: int | None = None
    digest: str | None = field(default=None, repr=False)


class ApiRequest(HttpRequest):
    """The request an authenticated `@api_endpoint` view receives, as the gateway's middleware
    sets it (`gateway/middleware.py`): the request id sent back as `X-Request-Id`, the caller,
    its workspace and its effective scopes. A type for annotations; never instantiated."""

    request_id: str
    principal: Principal
    workspace: Workspace
    scopes: frozenset[str]


def actor_for_principal(principal: Principal | None) -> Actor:
    """Who an API write is attributed to in the audit log. An OAuth app acts for the user who
    granted it: that user rides along (`Actor.user`), so the event names them too (one indexed
    lookup, on writes only; never on the authentication path)."""
    if principal is None:
        return Actor.system("api")
    if principal.kind == "api_key":
        return Actor(ActorType.API_KEY, principal.id, principal.name)
    user = None
    if principal.user_id is not None:
        user = get_user_model()._default_manager.filter(pk=principal.user_id).first()
    return Actor(ActorType.OAUTH_APP, principal.id, principal.name, user=user)
