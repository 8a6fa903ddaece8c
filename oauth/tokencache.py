"""A per-process cache of verified OAuth access tokens, kept coherent like API keys'.

Why: the gateway read the token, its app, grant, workspace, plan and the user's role on every
OAuth request (`oauth.selectors.gateway_grant`): OAuth requests ran at 0.53–0.60 of a cached API
key (docs/PERFORMANCE.md). Now a verified token is cached (`core.credcache`, keyed by DOT's
checksum of the token, never the token) under two version markers (core.versions): the token's
own (`gatehouse:tokver:<checksum prefix>`) and the epoch, which covers workspaces, plans and
memberships. It is served exactly as a cached key: with no Redis call under a fresh lease when
the request counts nothing (core.leases), else confirmed by the gateway's one Redis call.

What invalidates (before the change returns, on every worker; see docs/architecture.md):

- the token deleted or changed (`post_delete` / `post_save` of DOT's access token, whoever does
  it: a grant revoked from the dashboard, the API or the admin, refresh-token rotation and reuse
  detection, the revocation endpoint, an app deleted and its tokens with it, a member's grants
  ended): the token's marker (`tokencache_invalidate`), one publish per transaction;
- a member removed, demoted or deactivated, a user deleted, a workspace or plan edited: the
  epoch (`workspaces.services`), since the cached role and plan are those.

What never comes from the cache: a refusal. A cached token that has expired (checked on every
request against its exact `expires`) or is presented at another resource is discarded and read
again, and what the database says decides.
"""

from __future__ import annotations

import secrets
from typing import Any

from django.conf import settings

from core.credcache import CredentialCache
from core.redis import redis_client, using_redis
from core.versions import EPOCH_MARKER, MARKER_TTL_SECONDS, version_bump

token_cache = CredentialCache()


def token_marker(checksum: str) -> str:
    return f"gatehouse:tokver:{checksum[:32]}"


def tokencache_enabled() -> bool:
    return settings.GATEHOUSE_KEY_CACHE and using_redis()


def tokencache_versions(checksum: str) -> dict[str, str] | None:
    """The token's and the epoch's markers, created if missing, in one round trip (read before
    the row); None when Redis cannot be reached (the token is then not cached)."""
    markers = [token_marker(checksum), EPOCH_MARKER]
    try:
        pipe = redis_client().pipeline(transaction=True)
        for marker in markers:
            pipe.set(marker, secrets.token_hex(8), nx=True, ex=MARKER_TTL_SECONDS)
        pipe.mget(markers)
        values = pipe.execute()[-1]
    except Exception:  # redis.exceptions.RedisError and socket errors
        token_cache.clear()
        return None
    if any(value is None for value in values):
        return None
    return {
        marker: value.decode() if isinstance(value, bytes) else value
        for marker, value in zip(markers, values, strict=True)
    }


def tokencache_invalidate(checksum: str) -> None:
    """Every process reads the token from the database on its next request (call it inside the
    change's transaction; the change returns once every worker has dropped its copy)."""
    token_cache.discard(checksum)
    version_bump(token_marker(checksum), what="an OAuth access token")


def access_token_changed(sender: Any, instance: Any, created: bool = False, **kwargs: Any) -> None:
    """`post_save` / `post_delete` of DOT's access token model (connected in `OauthConfig`)."""
    if created:
        return  # nobody can have cached a token that did not exist
    is_expired = getattr(instance, "is_expired", None)
    if is_expired is not None and instance.expires is not None and is_expired():
        return  # a cached copy is refused by its expiry anyway (housekeeping deletes thousands)
    checksum = getattr(instance, "token_checksum", None)
    if checksum:
        tokencache_invalidate(checksum)
