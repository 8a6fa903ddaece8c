"""The in-process cache of verified credentials, shared by API keys (`apikeys.keycache`) and OAuth
access tokens (`oauth.tokencache`).

An entry is a verified credential (`value`, never a refusal), the version markers it was read
under (`versions`, core.versions: what the gateway's one Redis call confirms when it must ask)
and the lease ticket it was cached with (`ticket`, core.leases: while that subscription's lease
is fresh it is served with no round trip at all). Invalidations pushed on the channel discard
every entry read under one of their markers; the epoch marker, or an invalidation the worker
cannot read, discards everything.

Keys of the cache are digests (never a token); values hold no secret in the clear.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from typing import Any

from . import leases
from .versions import EPOCH_MARKER

MAX_AGE_SECONDS = 30.0
MAX_ENTRIES = 4096


@dataclass(frozen=True, slots=True)
class CachedCredential:
    value: Any  # shared between requests, so never modified
    versions: dict[str, str]  # marker key -> the value it had before the row was read
    loaded_at: float
    ticket: int = 0  # core.leases ticket; 0: confirmed with Redis on every request


class CredentialCache:
    """Digest -> `CachedCredential`, at most `max_entries` (the oldest goes first), each for at
    most `max_age` seconds. Safe across threads: reads are single dict operations under the GIL;
    writes and invalidations take the lock, so an invalidation never misses an entry being put."""

    def __init__(self, *, max_entries: int = MAX_ENTRIES, max_age: float = MAX_AGE_SECONDS):
        self.max_entries = max_entries
        self.max_age = max_age
        self.clock = time.monotonic
        self._entries: dict[str, CachedCredential] = {}
        self._lock = threading.Lock()
        leases.on_invalidation(self.invalidate)

    def get(self, digest: str) -> CachedCredential | None:
        entry = self._entries.get(digest)
        if entry is None:
            return None
        if self.clock() - entry.loaded_at > self.max_age:
            self.discard(digest)
            return None
        if not leases.lease_fresh(entry.ticket) and leases.lease_open():
            # Cached before this subscription's lease (or while an invalidation raced its load):
            # read it again once, under the lease, rather than confirm it on every request.
            self.discard(digest)
            return None
        return entry

    def put(self, digest: str, value: Any, versions: dict[str, str], ticket: int = 0) -> None:
        with self._lock:
            # Under the lock: an invalidation applied since `ticket` was taken either moved the
            # generation (no lease for this entry) or runs after this put and discards it.
            ticket = leases.ticket_for_put(ticket)
            self._entries.pop(digest, None)
            while len(self._entries) >= self.max_entries:
                self._entries.pop(next(iter(self._entries)))
            self._entries[digest] = CachedCredential(value, versions, self.clock(), ticket)

    def discard(self, digest: str) -> None:
        self._entries.pop(digest, None)

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()

    def invalidate(self, markers: frozenset[str] | None) -> None:
        """Drop every entry read under one of `markers` (None or the epoch: every entry)."""
        with self._lock:
            if markers is None or EPOCH_MARKER in markers:
                self._entries.clear()
                return
            for digest, entry in list(self._entries.items()):
                if not markers.isdisjoint(entry.versions):
                    self._entries.pop(digest, None)

    def __len__(self) -> int:
        return len(self._entries)
