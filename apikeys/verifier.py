"""The `gk_` verifier the gateway calls (`settings.GATEHOUSE_TOKEN_VERIFIERS`): an API key's
shape, checksum and environment without I/O, then one indexed lookup (or the per-process cache)."""

from __future__ import annotations

from dataclasses import replace
from http import HTTPStatus

from django.conf import settings

from apikit.principal import AuthFailure, Principal
from core.credfilter import CredentialFamily

from .keycache import keycache_enabled
from .models import ApiKey
from .selectors import apikey_check_digest
from .tokens import ENVIRONMENT_PREFIXES, parse_token, token_digest

_KEY_REFUSALS: dict[str, tuple[int, str]] = {
    "invalid_credentials": (HTTPStatus.UNAUTHORIZED, "The API key is not valid."),
    "key_revoked": (
        HTTPStatus.UNAUTHORIZED,
        "This API key has been revoked; create a new key in the dashboard.",
    ),
    "key_expired": (
        HTTPStatus.UNAUTHORIZED,
        "This API key has expired; create or rotate a key in the dashboard.",
    ),
    "key_paused": (
        HTTPStatus.UNAUTHORIZED,
        "This API key is paused; a workspace admin can resume it in the dashboard.",
    ),
    "ip_not_allowed": (
        HTTPStatus.FORBIDDEN,
        "This API key may not be used from your IP address; check the key's allowed IPs.",
    ),
    # The message is the check's: the rules of the workspace's credential policy it breaks.
    "policy_violation": (HTTPStatus.FORBIDDEN, ""),
}


def verify_api_key(
    token: str,
    *,
    ip: str | None,
    resource: str | None = None,
    fresh: bool = False,
    digest: str | None = None,
) -> Principal | AuthFailure:
    """`gk_` tokens: shape, checksum and environment without I/O, then `apikey_check_digest` (one
    indexed lookup by keyed digest, joined to the workspace and plan). `resource` (the resource
    being called) does not matter: a key is valid at every resource of this deployment (SPEC §14).

    With Redis, a key that passed may come from the per-process cache (`apikeys.keycache`); the
    principal then carries the `versions` that the metering step confirms in its one Redis call
    before the request is served, so a revocation is still seen by the next request on every
    process. `fresh` reads the row even when it is cached (the gateway's second look when a
    version moved).

    `digest` is what the family's `screen` returned for this token (the gateway screened it for
    the credential filter): the token already passed every check made without I/O, so it is not
    parsed or hashed a second time. Without it (any other caller) the checks run here."""
    if digest is None:
        refused = _refuse_without_io(token)
        if refused is not None:
            if refused.error == "environment_mismatch":
                # Its digest lets the gateway show the refusal on the key, if this deployment
                # has one with this token (a staging key created on a development server).
                refused = replace(refused, digest=token_digest(token))
            return refused
        digest = token_digest(token)
    check = apikey_check_digest(digest, ip=ip, cache=keycache_enabled(), fresh=fresh)
    if check.error is not None:
        status, message = _KEY_REFUSALS[check.error]
        return AuthFailure(
            check.error, check.message or message, status=status, known=check.key is not None,
            api_key_id=check.key.pk if check.key is not None else None,
        )
    key = check.key
    return Principal(
        kind="api_key",
        id=key.public_id,
        name=key.name,
        workspace=key.workspace,
        scopes=frozenset(key.scopes),
        api_key=key,
        versions=check.versions,
        lease=check.lease,
        collections=None if key.collections is None else frozenset(key.collections),
        caps=key.caps(),
    )


def _refuse_without_io(token: str) -> AuthFailure | None:
    """The refusal of a token that fails its shape, checksum or environment (no I/O), else None."""
    parsed = parse_token(token)
    if parsed is None:
        return AuthFailure(
            "invalid_credentials",
            "The API key is malformed: check that it was copied whole.",
            looked_up=False,
        )
    if parsed.environment != settings.GATEHOUSE_ENVIRONMENT:
        server = settings.GATEHOUSE_ENVIRONMENT
        return AuthFailure(
            "environment_mismatch",
            f"This is a {parsed.environment} key, but this server is {server}; use a "
            f"gk_{ENVIRONMENT_PREFIXES[server]}_ key.",
            looked_up=False,
        )
    return None


def _screen_api_key(token: str) -> str | None:
    # None: verify_api_key refuses it without I/O. Else the digest the gateway passes it back.
    return token_digest(token) if _refuse_without_io(token) is None else None


# What the gateway's credential filter (`core.credfilter`) knows about API keys: every key ever
# created, whatever its status, by its keyed digest.
verify_api_key.credential_family = CredentialFamily(
    screen=_screen_api_key,
    source=lambda: (ApiKey, "digest"),
    unknown=AuthFailure("invalid_credentials", _KEY_REFUSALS["invalid_credentials"][1]),
)
