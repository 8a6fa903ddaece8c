"""A per-process cache of verified API keys that every request validates in Redis.

Why: without it the gateway reads the key's row (joined to its workspace and plan) on every
request, one PostgreSQL round trip that cost a third of an `apikey` request (docs/PERFORMANCE.md).

How a revocation still reaches the very next request on every process:

- Each cached key was read under two *version markers* kept in Redis: the key's own
  (`gatehouse:keyver:<digest prefix>`) and the epoch (`gatehouse:keyver:epoch`) that covers
  workspaces and plans. A marker's value is random, never a counter, so a marker lost with Redis
  data (a restart, an eviction, a failover) can never come back with the value a process cached.
- Every service that changes something a cached key carries (status, expiry, rate limit; a
  workspace's plan; a plan's limits) calls `keycache_invalidate` inside its transaction: the
  marker is set to a new value at once and again after the commit (`transaction.on_commit`).
  The bump after the commit is the one that matters: a process that refreshed in between read
  the row as it was before the commit, and the second bump makes it refresh again.
- A request served from the cache passes the markers' values to the gateway's one Redis call
  (`gateway.gate.gate_take`), which refuses to count anything when a marker moved; the
  gateway then reads the key from the database, exactly as without the cache
  (`ApiGatewayMiddleware`). If Redis cannot be reached the cached entry is not trusted either.
- On a miss the markers are read (or created) *before* the row, so a change that commits after
  the row was read always moves a marker the entry was cached under.
- Refusals are never answered from the cache: a cached key that fails a local check (expiry,
  allowed IPs) is evicted and read again. Only keys that passed are cached.
- The cache never outlives what it can confirm. A worker that fails to reach Redis (the
  gateway's call, reading markers, a bump) empties its whole cache (`keycache_distrust`): bumps
  may have been lost while Redis was unreachable, so nothing it cached before can be confirmed
  by unchanged markers, and it reads keys from the database until it can cache them again
  under markers read from Redis. A bump that could not reach Redis is owed: this process keeps
  retrying it (`core.versions`) for `MAX_AGE_SECONDS` (after that every entry cached before it
  has expired anyway), so once Redis is back a worker that saw nothing of the blip refreshes
  too, and `keycache_pending` tells the person who made the change (dashboard, admin,
  `revoke_api_key`) that other processes may not know yet.
- An entry lives at most `MAX_AGE_SECONDS`, which bounds what a lost bump (Redis unreachable at
  commit and the owing process gone, logged as an error) or a change made behind the services'
  back (raw SQL) can leave.

With push invalidation (`core.leases`, on by default with Redis: `GATEHOUSE_CACHE_PUSH`), an
entry cached under a fresh lease is served with no Redis call at all when the request counts
nothing (no budget, no per-key rate limit): the invalidation the services publish reaches every
worker's subscriber before the change returns, or the worker's lease runs out first
(docs/architecture.md). The cache itself is `core.credcache`, shared with OAuth access tokens.

It is used only with Redis (`keycache_enabled`); the embedded mode reads the row on every
request, as before. `GATEHOUSE_KEY_CACHE=0` turns it off, and a server that does not meter (the
benchmark's `bench/middleware.py`) turns it off too: metering's Redis call is what confirms a
cached key.
"""

from __future__ import annotations

import logging
import secrets

from django.conf import settings

from core import credcache
from core.redis import redis_client, using_redis
from core.versions import (
    EPOCH_MARKER,
    MARKER_TTL_SECONDS,
    on_bump_failed,
    version_bump,
    version_pending,
)

from .models import ApiKey

logger = logging.getLogger(__name__)

MAX_AGE_SECONDS = credcache.MAX_AGE_SECONDS
MAX_ENTRIES = credcache.MAX_ENTRIES


def key_marker(digest: str) -> str:
    # A prefix of the keyed digest (not a secret; the database holds all of it) is unique enough:
    # a collision only costs an extra refresh.
    return f"gatehouse:keyver:{digest[:32]}"


# Digest -> the verified `ApiKey` (with its workspace and plan attached; shared, so never
# modified), the markers it was read under and its lease ticket (core.credcache).
key_cache = credcache.CredentialCache()


def keycache_enabled() -> bool:
    return settings.GATEHOUSE_KEY_CACHE and using_redis()


def keycache_versions(digest: str) -> dict[str, str] | None:
    """The current values of the key's and the epoch's markers, creating missing ones, in one
    round trip; None when Redis cannot be reached (the key is then not cached)."""
    markers = [key_marker(digest), EPOCH_MARKER]
    try:
        pipe = redis_client().pipeline(transaction=True)
        for marker in markers:
            pipe.set(marker, secrets.token_hex(8), nx=True, ex=MARKER_TTL_SECONDS)
        pipe.mget(markers)
        values = pipe.execute()[-1]
    except Exception:  # redis.exceptions.RedisError and socket errors
        keycache_distrust()
        return None
    if any(value is None for value in values):
        return None
    return {
        marker: value.decode() if isinstance(value, bytes) else value
        for marker, value in zip(markers, values, strict=True)
    }


def keycache_distrust() -> None:
    """This process could not reach Redis: drop every cached key (see the module docstring)."""
    key_cache.clear()


def keycache_invalidate(key: ApiKey | None = None) -> None:
    """Make every process read `key` (None: every key, for a change of workspace or plan) from
    the database on its next request. Call it inside the transaction that makes the change;
    afterwards `keycache_pending(key)` says whether Redis could not be told yet."""
    if key is None:
        version_bump(EPOCH_MARKER, what="every API key")
    else:
        version_bump(key_marker(key.digest), what=f"API key {key.public_id}")


def keycache_pending(key: ApiKey | None = None) -> bool:
    """True while this process still owes Redis the invalidation of `key` (None: the epoch):
    other processes may use their cached copy until it gets through (at most
    `MAX_AGE_SECONDS`)."""
    return version_pending(key_marker(key.digest) if key is not None else EPOCH_MARKER)


PENDING_WARNING = (
    "Saved, but Redis could not be reached to tell the other servers: a server that had this key "
    f"cached may still accept it for up to {int(MAX_AGE_SECONDS)} seconds (Gatehouse keeps "
    "retrying)."
)

on_bump_failed(keycache_distrust)
