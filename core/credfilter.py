"""Which credentials exist: the gateway's per-process filter of issued credential digests (SPEC §5).

Why: a well-formed `gk_` or `gat_` token is easy to make (the checksum is public), and looking each
one up would let a flood make the database do a query per token. Counting failures per address
and then refusing the address instead (as this gateway once did) locks out every other tenant
behind the same office NAT, CI runner pool or cloud NAT. So the gateway asks this filter first:

- `KNOWN`: the digest is in this process's set of every credential ever issued (API keys of any
  status; OAuth access tokens issued, including those DOT has deleted since, until a week after
  they expire: each family supplies its own table): look it up. A known credential gets its own
  answer (valid, or its own 401/403), however often, and is never counted anywhere.
- `FRESH`: not in the set, but issued since the set was read (another process created it a moment
  ago): look it up, and remember it.
- `UNKNOWN`: issued by nobody: refused without any lookup, with the family's 401, or past
  `gateway.failed_auth.UNKNOWN_LIMIT` a minute from one address with 429 (counted in process
  memory: no I/O either way).
- `UNCERTAIN`: the filter cannot tell (see below): the gateway looks it up, within the
  per-address budget of `gateway.failed_auth` (the second line; it never sees a known credential).

The set: the first 64 bits of every stored digest (API keys: HMAC-SHA256 under the pepper; DOT's
access tokens: SHA-256), sorted in an `array` (8 bytes a credential: 80 KB for 10,000), plus a
small set of digests added since. It is exact but for 64-bit prefix collisions (about n / 2^64 per
token, so an attacker cannot find one to replay), and it holds digests only, never tokens. It is
read from the database when the process first needs it and again every `REBUILD_SECONDS`.

How a credential created a moment ago on another process is known on its first request:

- With Redis, every service that issues a credential calls `credential_created` in its
  transaction: a marker `gatehouse:cred:<digest prefix>` is set at once and again after the commit,
  for `MARKER_TTL_SECONDS`, longer than a rebuild interval. A miss costs one Redis `MGET` of the
  token's marker and the filter's epoch (no database): the marker present means `FRESH`. Absent,
  the credentials created since the last read are read as in the embedded mode (below), at most
  once every `PULL_SECONDS` per process, so a credential whose marker was never written (Redis
  unreachable at creation) or was evicted is known within about a second; a miss within that
  second is `UNKNOWN`. The epoch (`gatehouse:cred:epoch`, a random value) is read before the
  rows; if it changed or vanished (Redis lost its data, and with it the markers) the set is
  rebuilt first. Redis unreachable: `UNCERTAIN`.
- Without Redis (the embedded mode), a miss reads the credentials created since the last read
  (`id > floor`, a primary-key range that returns the last few rows), at most once every
  `PULL_SECONDS` per process: a miss right after that read is `UNKNOWN`, a miss between two reads
  `UNCERTAIN` (looked up within the per-address budget, so an ordinary client never notices; a key
  younger than `PULL_SECONDS` used from an address that is flooding right now gets a 429 with
  `Retry-After: 1`).

A credential that stops existing (a revoked OAuth access token: DOT deletes it) stays known: the
oauth family's table (`oauth.models.IssuedAccessToken`) keeps its digest until a week after its
expiry, so every process, with or without Redis and after any rebuild, answers it with its own
401 and never counts it.
"""

from __future__ import annotations

import enum
import logging
import math
import secrets
import threading
import time
from array import array
from bisect import bisect_left
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from django.conf import settings
from django.db import transaction
from django.db.models import Model

from .redis import redis_client, using_redis

logger = logging.getLogger("apikit.requests")

REBUILD_SECONDS = 300.0
MARKER_TTL_SECONDS = 900  # > REBUILD_SECONDS plus the longest rebuild, so no gap
PULL_SECONDS = 1.0
# Rows a pull re-reads below the highest id seen: a transaction that took its id before another
# but committed after it is still found.
PULL_SLACK_IDS = 200
EPOCH_MARKER = "gatehouse:cred:epoch"
_PREFIX_HEX = 16  # 64 bits
_CREATED_ATTEMPTS = 3

if TYPE_CHECKING:
    from apikit.principal import AuthFailure



def rebuild_seconds() -> float:
    """How often the set is read again (`GATEHOUSE_CREDENTIAL_FILTER_REBUILD_SECONDS`; tests
    shorten it to watch a rebuild)."""
    return getattr(settings, "GATEHOUSE_CREDENTIAL_FILTER_REBUILD_SECONDS", REBUILD_SECONDS)


class Verdict(enum.Enum):
    KNOWN = "known"
    FRESH = "fresh"
    UNKNOWN = "unknown"
    UNCERTAIN = "uncertain"


@dataclass(frozen=True, slots=True)
class CredentialFamily:
    """How the filter knows one family of credentials; a verifier declares it as its
    `credential_family` attribute (`apikeys.verifier.verify_api_key`, `oauth.credentials`).

    `screen(token)`: the token's stored digest (hex) when it passes every check its verifier makes
    without I/O, else None (the verifier then refuses it without I/O, with its own message).
    `model`/`column`: the table of every issued credential and its digest column (a callable, so
    swappable models resolve late). `unknown`: the verifier's answer to a token nobody issued.
    """

    screen: Callable[[str], str | None]
    source: Callable[[], tuple[type[Model], str]]
    unknown: AuthFailure


def _fold(digest: str) -> int:
    return int(digest[:_PREFIX_HEX], 16)


def marker_key(digest: str) -> str:
    # A prefix of the digest, which the database holds anyway; never the token.
    return f"gatehouse:cred:{digest[:32]}"


class DigestSet:
    """64-bit digest prefixes: a sorted array read at once, plus a set of later additions.
    Readers never lock: both are replaced or grown by single operations under the GIL."""

    def __init__(self, folded: Iterable[int] = ()) -> None:
        self._sorted = array("Q", sorted(set(folded)))
        self._added: set[int] = set()

    def __contains__(self, digest: str) -> bool:
        value = _fold(digest)
        if value in self._added:
            return True
        index = bisect_left(self._sorted, value)
        return index < len(self._sorted) and self._sorted[index] == value

    def add(self, digest: str) -> None:
        self._added.add(_fold(digest))

    def __len__(self) -> int:
        return len(self._sorted) + len(self._added)


class CredentialFilter:
    """The process's filter over every registered family (one set: the prefixes of different
    families only ever collide at 2^-64)."""

    def __init__(self) -> None:
        self.families: list[CredentialFamily] = []
        self.clock = time.monotonic
        self._lock = threading.Lock()
        self.clear()

    def register(self, family: CredentialFamily) -> None:
        if family not in self.families:
            self.families.append(family)
            if not self._empty:
                self.clear()  # read again, with this family's rows

    def clear(self, *, empty: bool = False) -> None:
        """Forget the set: it is read again on next use. `empty` (tests): start from an empty
        set read just now, as if the database held no credential yet."""
        self._digests: DigestSet | None = DigestSet() if empty else None
        self._empty = empty
        self._built_at = self.clock() if empty else -math.inf
        self._pulled_at = self._built_at
        self._floors: dict[int, int] = {}
        self._epoch: str | None = self._read_epoch() if empty else None

    # --- the question ------------------------------------------------------------------------

    def check(self, digest: str) -> Verdict:
        digests = self._current()
        if digest in digests:
            return Verdict.KNOWN
        if using_redis():
            return self._check_redis(digest)
        with self._lock:
            if self.clock() - self._pulled_at < PULL_SECONDS:
                return Verdict.UNCERTAIN
            self._pull()
        return Verdict.KNOWN if digest in self._digests else Verdict.UNKNOWN

    def knows(self, digest: str) -> bool:
        """Whether the set holds `digest` now, with no lookup beyond the set's own periodic
        read: for attributing a refusal to a credential, never for admitting one."""
        return digest in self._current()

    def add(self, digest: str) -> None:
        """This process learned that `digest` exists (it issued it, or found it)."""
        if self._digests is not None:
            self._digests.add(digest)

    def retry_after(self) -> int:
        """Seconds until an `UNCERTAIN` answer can become certain (the next pull)."""
        waited = self.clock() - self._pulled_at
        return max(1, math.ceil(PULL_SECONDS - waited))

    def __len__(self) -> int:
        return len(self._digests or ())

    # --- keeping the set current ---------------------------------------------------------------

    def _current(self) -> DigestSet:
        every = rebuild_seconds()
        if self._digests is None or self.clock() - self._built_at > every:
            with self._lock:
                if self._digests is None or self.clock() - self._built_at > every:
                    self._rebuild()
        return self._digests

    def _check_redis(self, digest: str) -> Verdict:
        try:
            marker, epoch = redis_client().mget([marker_key(digest), EPOCH_MARKER])
        except Exception:  # redis.exceptions.RedisError and socket errors
            return Verdict.UNCERTAIN
        if marker is not None:
            return Verdict.FRESH
        epoch = epoch.decode() if isinstance(epoch, bytes) else epoch
        if epoch is None or epoch != self._epoch:
            # Redis lost its data (markers included) since the set was read: read it again, at
            # most once every PULL_SECONDS (an epoch that cannot be kept leaves misses UNCERTAIN).
            with self._lock:
                if self.clock() - self._built_at < PULL_SECONDS:
                    return Verdict.UNCERTAIN
                self._rebuild()
            return Verdict.KNOWN if digest in self._digests else Verdict.UNKNOWN
        # No marker: nobody issued it, or its marker was never written (Redis unreachable at
        # creation) or evicted. New rows are read at most once every PULL_SECONDS, as embedded;
        # in between, a miss without a marker is UNKNOWN.
        with self._lock:
            if self.clock() - self._pulled_at < PULL_SECONDS:
                return Verdict.UNKNOWN
            self._pull()
        return Verdict.KNOWN if digest in self._digests else Verdict.UNKNOWN

    def _read_epoch(self) -> str | None:
        """The epoch, created if missing, read before the rows (see the module docstring)."""
        if not using_redis():
            return None
        try:
            pipe = redis_client().pipeline(transaction=True)
            pipe.set(EPOCH_MARKER, secrets.token_hex(8), nx=True)
            pipe.get(EPOCH_MARKER)
            value = pipe.execute()[-1]
        except Exception:  # unreachable: markers cannot be trusted; misses stay UNCERTAIN
            return None
        return value.decode() if isinstance(value, bytes) else value

    def _rebuild(self) -> None:
        started = self.clock()
        epoch = self._read_epoch()
        folded: list[int] = []
        floors: dict[int, int] = {}
        for index, family in enumerate(self.families):
            model, column = family.source()
            top = 0
            for pk, digest in model.objects.values_list("pk", column).iterator(chunk_size=5000):
                folded.append(_fold(digest))
                top = max(top, pk)
            floors[index] = max(top - PULL_SLACK_IDS, 0)
        self._digests = DigestSet(folded)
        self._empty = False
        self._floors = floors
        self._epoch = epoch
        self._built_at = self._pulled_at = started

    def _pull(self) -> None:
        """Embedded mode: add what was created since the last read (a primary-key range)."""
        started = self.clock()
        for index, family in enumerate(self.families):
            model, column = family.source()
            floor = self._floors.get(index, 0)
            top = floor
            for pk, digest in model.objects.filter(pk__gt=floor).values_list("pk", column):
                self._digests.add(digest)
                top = max(top, pk)
            self._floors[index] = max(top - PULL_SLACK_IDS, floor)
        self._pulled_at = started


credential_filter = CredentialFilter()


def credential_created(digest: str) -> None:
    """Every process must know `digest` before the credential's first request: call this inside
    the transaction that stores it (the services that create API keys, the OAuth token issuer)."""
    credential_filter.add(digest)
    if not using_redis():
        return  # other processes read new rows on their next miss (`PULL_SECONDS`)
    marker = marker_key(digest)
    _mark(marker)  # at once: a request served inside the transaction (a test's) sees it too

    def after_commit() -> None:
        if not any(_mark(marker) for _ in range(_CREATED_ATTEMPTS)):
            logger.error(
                "Could not reach Redis to announce a new credential; other processes find it "
                "with their next read of new rows (within about %g s of a miss).",
                PULL_SECONDS,
            )

    transaction.on_commit(after_commit, robust=True)


def _mark(marker: str) -> bool:
    try:
        redis_client().set(marker, "1", ex=MARKER_TTL_SECONDS)
    except Exception:  # redis.exceptions.RedisError and socket errors
        return False
    return True
