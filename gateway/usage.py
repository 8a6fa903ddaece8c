"""Usage metering per API key without a database write per request (SPEC §5).

Each worker process keeps its requests in memory (`usage_record` is a dict update and a deque
append under a lock) and a background thread flushes them every
`settings.GATEHOUSE_USAGE_FLUSH_SECONDS` (default 5, read before each wait), when the buffer
reaches `FLUSH_THRESHOLD` events, and at interpreter shutdown. A flush is four
statements per key at most, all idempotent in direction:

- `request_count += n` and `last_used_at`/`last_used_ip` moved forward only (a guarded UPDATE, so
  two workers flushing out of order never move it back);
- requests per UTC day upserted into `KeyUsageDay`;
- the recent requests appended to `KeyRequest` and trimmed to the newest `RECENT_PER_KEY`.

Refused attempts of a known key (revoked, expired, paused, a disallowed address, another
environment's key) are buffered the same way (`usage_record_refusal`): they join the key's
recent requests with their error code, so "why is my key failing?" has an answer, but they are
not counted as use (request count, requests per day, last used). A refusal known only by its
token's digest (another environment's key, refused without a lookup) is attributed at flush time,
in one query for the whole batch, and at most `MAX_REFUSED_DIGESTS` such digests are held
between flushes.

Recording cannot be poisoned: `record` cleans what it keeps (a NUL, which PostgreSQL refuses in
text, and anything that is not UTF-8 become U+FFFD; an address that is not one becomes NULL), and
a flush writes each key in a savepoint of its own, so a row the database still refuses is dropped
and logged (without its values) while every other key's usage is written. Only an outage
(`OperationalError`/`InterfaceError`) puts the whole batch back for the next flush.

Worst case on a crash (SIGKILL, power loss): the events of the last
`GATEHOUSE_USAGE_FLUSH_SECONDS` of that worker are lost (docs/operations.md). A graceful stop
(SIGTERM to gunicorn) flushes.
"""

from __future__ import annotations

import atexit
import functools
import ipaddress
import logging
import os
import threading
from collections import defaultdict, deque
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any

from django.conf import settings
from django.db import (
    DatabaseError,
    InterfaceError,
    OperationalError,
    close_old_connections,
    connection,
    transaction,
)
from django.db.models import F, Q

from apikeys.models import (
    NETWORKS_PER_KEY,
    RECENT_PER_KEY,
    ApiKey,
    KeyNetwork,
    KeyRequest,
    KeyUsageDay,
)
from apikeys.services import apikey_flag_new_network
from core.context import RequestContext

logger = logging.getLogger(__name__)

FLUSH_THRESHOLD = 5000
MAX_REFUSED_DIGESTS = 1000
# A network first seen after the key has this much history is "new" (issue 16 §4).
NEW_NETWORK_AFTER = timedelta(days=7)


@dataclass(slots=True)
class _KeyUsage:
    count: int = 0
    last_used_at: datetime | None = None
    last_used_ip: str | None = None
    per_day: dict[date, int] = field(default_factory=lambda: defaultdict(int))
    recent: deque = field(default_factory=lambda: deque(maxlen=RECENT_PER_KEY))
    # network -> [requests, first seen, last seen, first address]; at most NETWORKS_PER_KEY
    # between flushes.
    networks: dict[str, list] = field(default_factory=dict)


class UsageBuffer:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._flush_lock = threading.Lock()
        self._keys: dict[int, _KeyUsage] = {}
        self._by_digest: dict[str, deque] = {}
        self._taken_digests: dict[str, deque] = {}
        self._events = 0
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None
        self._pid: int | None = None
        # The test suite turns the background flusher off and flushes explicitly.
        self.autoflush = True

    def record(
        self, *, key_id: int, at: datetime, ip: str | None, method: str, path: str,
        status: int, latency_ms: int,
    ) -> None:
        ip = _address(ip)
        with self._lock:
            usage = self._keys.get(key_id)
            if usage is None:
                usage = self._keys[key_id] = _KeyUsage()
            usage.count += 1
            if usage.last_used_at is None or at >= usage.last_used_at:
                usage.last_used_at, usage.last_used_ip = at, ip
            usage.per_day[at.date()] += 1
            usage.recent.append(
                (at, _text(method, 8), _text(path, 255), status, ip, latency_ms, "")
            )
            if network := _network(ip):
                seen = usage.networks.get(network)
                if seen is not None:
                    seen[0] += 1
                    if at > seen[2]:
                        seen[2] = at
                    elif at < seen[1]:
                        seen[1], seen[3] = at, ip
                elif len(usage.networks) < NETWORKS_PER_KEY:
                    usage.networks[network] = [1, at, at, ip]
            self._events += 1
            full = self._events >= FLUSH_THRESHOLD
        self._after_record(full)

    def record_refusal(
        self, *, key_id: int | None, digest: str | None, at: datetime, ip: str | None,
        method: str, path: str, status: int, error: str, latency_ms: int,
    ) -> None:
        """A refused attempt of a known key: a recent request with its error code, not a use."""
        row = (at, _text(method, 8), _text(path, 255), status, _address(ip), latency_ms,
               _text(error, 32))
        with self._lock:
            if key_id is not None:
                usage = self._keys.get(key_id)
                if usage is None:
                    usage = self._keys[key_id] = _KeyUsage()
                usage.recent.append(row)
            elif digest is not None:
                rows = self._by_digest.get(digest)
                if rows is None:
                    if len(self._by_digest) >= MAX_REFUSED_DIGESTS:
                        return
                    rows = self._by_digest[digest] = deque(maxlen=RECENT_PER_KEY)
                rows.append(row)
            self._events += 1
            full = self._events >= FLUSH_THRESHOLD
        self._after_record(full)

    def _after_record(self, full: bool) -> None:
        if self.autoflush:
            self._ensure_thread()
            if full:
                self._wake.set()

    def _ensure_thread(self) -> None:
        # One flusher per process; a forked worker (gunicorn) starts its own.
        if self._pid == os.getpid() and self._thread is not None and self._thread.is_alive():
            return
        with self._lock:
            if self._pid == os.getpid() and self._thread is not None and self._thread.is_alive():
                return
            self._pid = os.getpid()
            self._thread = threading.Thread(
                target=self._run, name="gatehouse-usage-flush", daemon=True
            )
            self._thread.start()

    def _run(self) -> None:
        while True:
            self._wake.wait(settings.GATEHOUSE_USAGE_FLUSH_SECONDS)
            self._wake.clear()
            try:
                self.flush()
            except Exception:  # keep the flusher alive; the events stay buffered for next time
                logger.exception("Usage flush failed; will retry.")
            finally:
                close_old_connections()

    def discard(self) -> None:
        self._take()

    def _take(self) -> dict[int, _KeyUsage]:
        with self._lock:
            taken, self._keys, self._events = self._keys, {}, 0
            self._taken_digests, self._by_digest = self._by_digest, {}
        return taken

    def _put_back(self, taken: dict[int, _KeyUsage]) -> None:
        with self._lock:
            for key_id, old in taken.items():
                new = self._keys.get(key_id)
                if new is None:
                    self._keys[key_id] = old
                    continue
                new.count += old.count
                newer = new.last_used_at is None or (
                    old.last_used_at is not None and old.last_used_at > new.last_used_at
                )
                if newer:
                    new.last_used_at, new.last_used_ip = old.last_used_at, old.last_used_ip
                for day, n in old.per_day.items():
                    new.per_day[day] += n
                for network, (n, first, last, first_ip) in old.networks.items():
                    seen = new.networks.get(network)
                    if seen is None:
                        new.networks[network] = [n, first, last, first_ip]
                    else:
                        seen[0] += n
                        if first < seen[1]:
                            seen[1], seen[3] = first, first_ip
                        seen[2] = max(seen[2], last)
                merged = sorted([*old.recent, *new.recent], key=lambda row: row[0])
                merged = merged[-RECENT_PER_KEY:]
                new.recent = deque(merged, maxlen=RECENT_PER_KEY)
                self._events += old.count

    def flush(self) -> int:
        """Write buffered usage to the database; returns the number of requests written
        (refusals are written too, but are not requests served)."""
        with self._flush_lock:
            taken = self._take()
            by_digest, self._taken_digests = self._taken_digests, {}
            if not taken and not by_digest:
                return 0
            try:
                if by_digest:
                    _attribute(taken, by_digest)
                _write(taken)
            except Exception:
                self._put_back(taken)
                raise
            return sum(u.count for u in taken.values())


def _attribute(taken: dict[int, _KeyUsage], by_digest: dict[str, deque]) -> None:
    """Refusals known by their token's digest join their key's recent requests (one query)."""
    ids = dict(
        ApiKey.objects.filter(digest__in=list(by_digest)).values_list("digest", "pk")
    )
    for digest, rows in by_digest.items():
        key_id = ids.get(digest)
        if key_id is None:
            continue
        usage = taken.get(key_id)
        if usage is None:
            usage = taken[key_id] = _KeyUsage()
        merged = sorted([*usage.recent, *rows], key=lambda row: row[0])[-RECENT_PER_KEY:]
        usage.recent = deque(merged, maxlen=RECENT_PER_KEY)


def _text(value: str, limit: int) -> str:
    """`value` as text every database stores: no NUL, valid UTF-8, at most `limit` characters."""
    if value.isascii() and "\x00" not in value:  # the common case costs two scans, no copy
        return value[:limit]
    return "".join(
        "\ufffd" if char == "\x00" or "\ud800" <= char <= "\udfff" else char
        for char in value[:limit]
    )


@functools.lru_cache(maxsize=4096)
def _address(ip: str | None) -> str | None:
    if not ip:
        return None
    try:
        return str(ipaddress.ip_address(ip))
    except ValueError:
        return None


@functools.lru_cache(maxsize=4096)
def _network(ip: str | None) -> str | None:
    """The network a client address belongs to, as a key remembers it: IPv4 /24, IPv6 /48 (an
    IPv4-mapped IPv6 address counts as its IPv4 address)."""
    if not ip:
        return None
    address = ipaddress.ip_address(ip)  # `ip` is already one (`_address`)
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped:
        address = address.ipv4_mapped
    prefix = 24 if address.version == 4 else 48
    return str(ipaddress.ip_network(f"{address}/{prefix}", strict=False))


# A database error that is not an outage is about the rows, not the database: drop them.
_OUTAGES = (OperationalError, InterfaceError)


def _write(taken: dict[int, _KeyUsage]) -> None:
    existing = set(ApiKey.objects.filter(pk__in=taken).values_list("pk", flat=True))
    with transaction.atomic():
        for key_id, usage in taken.items():
            if key_id not in existing:
                continue  # the key was deleted meanwhile
            try:
                with transaction.atomic():
                    _write_counts(key_id, usage)
                    _write_rows(key_id, usage.recent)
                    _trim_recent(key_id)
            except _OUTAGES:
                raise
            except (DatabaseError, ValueError) as exc:
                _write_key_row_by_row(key_id, usage, exc)


def _write_counts(key_id: int, usage: _KeyUsage) -> None:
    if usage.count:  # refusals alone are not use
        ApiKey.objects.filter(pk=key_id).update(request_count=F("request_count") + usage.count)
    _move_last_used_forward(key_id, usage.last_used_at, usage.last_used_ip)
    for day, n in usage.per_day.items():
        _add_usage_day(key_id, day, n)
    if usage.networks:
        _write_networks(key_id, usage.networks)


def _write_rows(key_id: int, rows: Iterable[tuple]) -> None:
    KeyRequest.objects.bulk_create(
        KeyRequest(
            api_key_id=key_id, at=at, method=method, path=path, status=status, ip=ip,
            latency_ms=latency, error=error,
        )
        for at, method, path, status, ip, latency, error in rows
    )


def _write_key_row_by_row(key_id: int, usage: _KeyUsage, first: Exception) -> None:
    """The key's batch was refused: write its counts, then each recent request in a savepoint of
    its own, dropping (and logging) the ones the database refuses. The log names the key's
    database id and the error's type only: a refused value may be anything a client sent."""
    dropped: list[str] = []
    try:
        with transaction.atomic():
            _write_counts(key_id, usage)
    except _OUTAGES:
        raise
    except (DatabaseError, ValueError) as exc:
        logger.error(  # the traceback would carry the refused values
            "Usage flush dropped all %d buffered request(s) of API key id %d: the database "
            "refused them (%s).", usage.count, key_id, type(exc).__name__,
        )
        return
    for row in usage.recent:
        try:
            with transaction.atomic():
                _write_rows(key_id, [row])
        except _OUTAGES:
            raise
        except (DatabaseError, ValueError) as exc:
            dropped.append(type(exc).__name__)
    _trim_recent(key_id)
    logger.error(
        "Usage flush dropped %d recent-request row(s) of API key id %d that the database "
        "refused (%s); its counts and other rows were written.",
        len(dropped), key_id, ", ".join(sorted(set(dropped))) or type(first).__name__,
    )


def _move_last_used_forward(key_id: int, at: datetime | None, ip: str | None) -> None:
    if at is None:
        return
    moved_back = Q(last_used_at__isnull=True) | Q(last_used_at__lt=at)
    ApiKey.objects.filter(moved_back, pk=key_id).update(last_used_at=at, last_used_ip=ip)


def _add_usage_day(key_id: int, day: date, n: int) -> None:
    table = KeyUsageDay._meta.db_table
    with connection.cursor() as cursor:
        cursor.execute(
            f"INSERT INTO {table} (api_key_id, day, count) VALUES (%s, %s, %s) "  # noqa: S608
            f"ON CONFLICT (api_key_id, day) DO UPDATE SET count = {table}.count + excluded.count",
            [key_id, day, n],
        )


def _write_networks(key_id: int, networks: dict[str, list]) -> None:
    """Add the flushed requests to the key's networks (one upsert each), keep the newest
    `NETWORKS_PER_KEY`, and flag a network never seen before once the key has a week of history
    (`apikey_flag_new_network`). A forgotten (trimmed) network counts as new when it returns."""
    known = dict(
        KeyNetwork.objects.filter(api_key_id=key_id).values_list("network", "first_seen_at")
    )
    table = KeyNetwork._meta.db_table
    adapt = connection.ops.adapt_datetimefield_value
    with connection.cursor() as cursor:
        for network, (n, first, last, _ip) in networks.items():
            cursor.execute(
                f"INSERT INTO {table} (api_key_id, network, request_count, first_seen_at, "  # noqa: S608
                "last_seen_at) VALUES (%s, %s, %s, %s, %s) "
                "ON CONFLICT (api_key_id, network) DO UPDATE SET "
                f"request_count = {table}.request_count + excluded.request_count, "
                f"last_seen_at = CASE WHEN excluded.last_seen_at > {table}.last_seen_at "
                f"THEN excluded.last_seen_at ELSE {table}.last_seen_at END",
                [key_id, network, n, adapt(first), adapt(last)],
            )
    unseen = sorted((first, network, ip) for network, (_n, first, _l, ip) in networks.items()
                    if network not in known)
    if len(known) + len(unseen) > NETWORKS_PER_KEY:
        keep = (
            KeyNetwork.objects.filter(api_key_id=key_id)
            .order_by("-last_seen_at", "-id").values_list("id", flat=True)[:NETWORKS_PER_KEY]
        )
        KeyNetwork.objects.filter(api_key_id=key_id).exclude(id__in=list(keep)).delete()
    if unseen and known:
        first, network, ip = unseen[0]
        if first - min(known.values()) >= NEW_NETWORK_AFTER:
            apikey_flag_new_network(
                key_id=key_id, network=network, at=first,
                context=RequestContext(ip=ip, door="usage"),
            )


def _trim_recent(key_id: int) -> None:
    keep = list(
        KeyRequest.objects.filter(api_key_id=key_id)
        .order_by("-at", "-id")
        .values_list("id", flat=True)[:RECENT_PER_KEY]
    )
    if len(keep) >= RECENT_PER_KEY:
        KeyRequest.objects.filter(api_key_id=key_id).exclude(id__in=keep).delete()


USAGE_RETENTION_DAYS = 90


def usage_prune(now: datetime) -> int:
    """Per-day counts and recent requests older than 90 days."""
    cutoff = now - timedelta(days=USAGE_RETENTION_DAYS)
    days, _ = KeyUsageDay.objects.filter(day__lt=cutoff.date()).delete()
    requests, _ = KeyRequest.objects.filter(at__lt=cutoff).delete()
    return days + requests


usage_buffer = UsageBuffer()


def usage_record(**event: Any) -> None:
    usage_buffer.record(**event)


def usage_record_refusal(**event: Any) -> None:
    usage_buffer.record_refusal(**event)


def usage_flush() -> int:
    return usage_buffer.flush()


@atexit.register
def _flush_at_exit() -> None:
    if not usage_buffer.autoflush:
        return
    try:
        usage_buffer.flush()
    except Exception:
        logger.exception("Usage flush at shutdown failed; buffered usage is lost.")
