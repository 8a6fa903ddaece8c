"""Version markers in Redis: how a process learns that something it cached has changed.

A marker's value is random, never a counter, so a marker lost with Redis data (a restart, an
eviction, a failover) can never come back with a value a process cached. A change bumps its
marker inside its transaction and again after the commit (`version_bump`); whatever was cached
under the old value is then read again (`apikeys.keycache`). `EPOCH_MARKER` covers what every
cached credential carries from `workspaces` (a workspace, its plan, a plan's limits), so
`workspaces` can invalidate without knowing who caches.

A bump that cannot reach Redis is owed: this process retries it every `RETRY_SECONDS` for
`OWED_SECONDS` (the longest any cached entry lives), `version_pending` says so meanwhile, and
the callbacks registered with `on_bump_failed` run at once (the key cache empties itself).

With push invalidation (`core.leases`, `GATEHOUSE_CACHE_PUSH`), the same Redis transaction that
moves the markers publishes them on the invalidation channel, and after the commit the change
waits until every live worker acknowledged it or its lease ran out (`leases.wait_for_acks`), so
a service returns only once no process can serve the old state without asking Redis. The
markers a transaction moves are published together, once, after its commit.
"""

from __future__ import annotations

import logging
import secrets
import threading
import time
from collections.abc import Callable

from django.db import transaction

from . import leases
from .redis import redis_client, using_redis

logger = logging.getLogger(__name__)

MARKER_TTL_SECONDS = 24 * 3600
EPOCH_MARKER = "gatehouse:keyver:epoch"
OWED_SECONDS = 30.0  # = apikeys.keycache.MAX_AGE_SECONDS: after that nothing cached before lives
RETRY_SECONDS = 0.25
_BUMP_ATTEMPTS = 3

_bump_failed: list[Callable[[], None]] = []


def on_bump_failed(callback: Callable[[], None]) -> None:
    """Run `callback` whenever a bump could not reach Redis (a cache that must distrust itself)."""
    if callback not in _bump_failed:
        _bump_failed.append(callback)


def epoch_bump() -> None:
    """Every cached credential is read again: a workspace, a plan or a membership changed."""
    version_bump(EPOCH_MARKER, what="every cached credential")


def version_bump(marker: str, *, what: str) -> None:
    """Move `marker` now and again after the commit (see the module docstring)."""
    if not using_redis():
        return
    if leases.push_enabled():
        leases.apply_locally([marker])
    # At once as well as after the commit: harmless, and it reaches requests served inside a
    # transaction that never commits, such as a test's.
    if not _bump([marker]):
        _owe(marker, what)
    _pending_after_commit().setdefault(marker, what)
    transaction.on_commit(_flush_after_commit, robust=True)


# The markers moved by this thread's transactions, bumped (and published) together after the
# commit; the first callback of a commit takes them all, the others find nothing left.
_local = threading.local()


def _pending_after_commit() -> dict[str, str]:
    pending = getattr(_local, "pending", None)
    if pending is None:
        pending = _local.pending = {}
    return pending


def _flush_after_commit() -> None:
    pending = _pending_after_commit()
    if not pending:
        return
    markers = dict(pending)
    pending.clear()
    if leases.push_enabled():
        leases.apply_locally(markers)
    for _ in range(_BUMP_ATTEMPTS):
        published_at = time.monotonic()
        invalidation = _bump(list(markers))
        if invalidation:
            for marker in markers:
                _owed.pop(marker, None)
            if invalidation is not True:
                confirmation = leases.wait_for_acks(invalidation, published_at=published_at)
                last_confirmation.value = confirmation
            return
    what = ", ".join(sorted(set(markers.values())))
    for marker, covers in markers.items():
        _owe(marker, covers)
    logger.error(
        "Could not reach Redis to invalidate cached copies of %s; retrying for %d seconds, "
        "other processes may use their cached copy until then.", what, int(OWED_SECONDS),
    )


class _LastConfirmation(threading.local):
    value: leases.Confirmation | None = None


# What the last change of this thread learned from the workers (tests, logs).
last_confirmation = _LastConfirmation()


def version_pending(marker: str) -> bool:
    """True while this process still owes Redis the bump of `marker`."""
    return using_redis() and marker in _owed


# marker -> (what it covers, monotonic time after which retrying is pointless)
_owed: dict[str, tuple[str, float]] = {}
_retrier: threading.Thread | None = None
_retrier_lock = threading.Lock()


def _owe(marker: str, what: str) -> None:
    global _retrier
    for callback in _bump_failed:
        callback()
    with _retrier_lock:
        _owed[marker] = (what, time.monotonic() + OWED_SECONDS)
        if _retrier is None or not _retrier.is_alive():
            _retrier = threading.Thread(
                target=_retry_owed, name="gatehouse-version-bumps", daemon=True
            )
            _retrier.start()


def _retry_owed() -> None:
    global _retrier
    while True:
        with _retrier_lock:
            if not _owed:
                _retrier = None
                return
        time.sleep(RETRY_SECONDS)
        for marker, (what, give_up_at) in list(_owed.items()):
            if _bump([marker]):
                _owed.pop(marker, None)
                logger.warning("Redis reached again: cached copies of %s invalidated.", what)
            elif time.monotonic() > give_up_at:
                _owed.pop(marker, None)  # every copy cached before has expired by now


def _bump(markers: list[str]) -> str | bool:
    """Move `markers` (and publish them, with push) in one Redis transaction: False when Redis
    could not be reached, else the invalidation's id (True without push)."""
    try:
        client = redis_client()
        pipe = client.pipeline(transaction=True)
        for marker in markers:
            pipe.set(marker, secrets.token_hex(8), ex=MARKER_TTL_SECONDS)
        if not leases.push_enabled():
            pipe.execute()
            return True
        invalidation = secrets.token_hex(12)
        epoch = leases.publisher_epoch(client)
        pipe.publish(
            leases.channel_name(), leases.invalidation_message(invalidation, markers, epoch)
        )
        pipe.get(leases.EPOCH_KEY)
        leases.note_epoch(pipe.execute()[-1])
    except Exception:  # redis.exceptions.RedisError and socket errors
        return False
    return invalidation
