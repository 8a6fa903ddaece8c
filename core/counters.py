"""One counting mechanism for daily budgets and per-key rate limits, with two backends.

`counter_take(key, limit=N, expires_at=T)` admits the caller only while the counter is below N and
counts only admitted calls, atomically, across any number of processes:

- Redis (when `REDIS_URL` is set): a Lua script does GET/compare/INCR/EXPIREAT in one step.
- The database (the embedded default): one statement,
  `INSERT … ON CONFLICT (key) DO UPDATE SET count = count + 1 WHERE count < N RETURNING count`;
  no row back means over the limit. SQLite (≥ 3.35) and PostgreSQL both run it as written.

Both were measured exact under racing processes (../shared/PERFORMANCE-NOTES.md). A check costs
one round trip whatever the history: there is no COUNT(*) over logs.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from django.db import connection
from django.utils import timezone

from .models import Counter
from .redis import redis_client, using_redis

_TABLE = Counter._meta.db_table

_TAKE_LUA = """
local n = tonumber(redis.call('GET', KEYS[1]) or '0')
if n >= tonumber(ARGV[1]) then return -n - 1 end
n = redis.call('INCR', KEYS[1])
redis.call('EXPIREAT', KEYS[1], ARGV[2])
return n
"""
_GIVE_BACK_LUA = """
local n = tonumber(redis.call('GET', KEYS[1]) or '0')
if n > 0 then return redis.call('DECR', KEYS[1]) end
return 0
"""


class CounterUnavailable(Exception):
    """The counter's backing service could not be reached; the request must not be served."""


@dataclass(frozen=True, slots=True)
class Take:
    admitted: bool
    count: int  # the counter after this call (admitted) or its current value (refused)


def redis_counter_key(key: str) -> str:
    return f"gatehouse:counter:{key}"


def counter_take(key: str, *, limit: int, expires_at: datetime) -> Take:
    """Count one use of `key` if it is below `limit`; the counter disappears at `expires_at`."""
    if using_redis():
        try:
            expires = int(expires_at.timestamp())
            result = int(redis_client().eval(_TAKE_LUA, 1, redis_counter_key(key), limit, expires))
        except Exception as exc:  # redis.exceptions.RedisError and socket errors
            raise CounterUnavailable(str(exc)) from None
        return Take(admitted=True, count=result) if result > 0 else Take(False, -result - 1)
    # One statement is atomic on its own: no transaction (and no savepoint round trips) needed.
    with connection.cursor() as cursor:
        cursor.execute(
            f"INSERT INTO {_TABLE} (key, count, expires_at) VALUES (%s, 1, %s) "  # noqa: S608
            f"ON CONFLICT (key) DO UPDATE SET count = {_TABLE}.count + 1 "
            f"WHERE {_TABLE}.count < %s RETURNING count",
            [key, expires_at, limit],
        )
        row = cursor.fetchone()
    if row is not None:
        return Take(admitted=True, count=int(row[0]))
    return Take(admitted=False, count=counter_value(key))


def counter_give_back(key: str) -> None:
    """Undo one admitted use (the request it admitted was not served), never below zero."""
    if using_redis():
        try:
            redis_client().eval(_GIVE_BACK_LUA, 1, redis_counter_key(key))
        except Exception as exc:
            raise CounterUnavailable(str(exc)) from None
        return
    with connection.cursor() as cursor:
        cursor.execute(
            f"UPDATE {_TABLE} SET count = count - 1 WHERE key = %s AND count > 0",  # noqa: S608
            [key],
        )


def counter_value(key: str) -> int:
    if using_redis():
        try:
            value = redis_client().get(redis_counter_key(key))
        except Exception as exc:
            raise CounterUnavailable(str(exc)) from None
        return int(value or 0)
    now = timezone.now()
    row = Counter.objects.filter(key=key, expires_at__gt=now).values_list("count", flat=True)
    return int(next(iter(row), 0))


def counter_values(keys: list[str]) -> dict[str, int]:
    """Several counters in one round trip (the dashboard's meters)."""
    if not keys:
        return {}
    if using_redis():
        try:
            values = redis_client().mget([redis_counter_key(k) for k in keys])
        except Exception as exc:
            raise CounterUnavailable(str(exc)) from None
        return {k: int(v or 0) for k, v in zip(keys, values, strict=True)}
    now = timezone.now()
    found = dict(
        Counter.objects.filter(key__in=keys, expires_at__gt=now).values_list("key", "count")
    )
    return {k: int(found.get(k, 0)) for k in keys}


def counters_prune(now: datetime | None = None) -> int:
    """Delete expired database counters (Redis expires its own)."""
    deleted, _ = Counter.objects.filter(expires_at__lte=now or timezone.now()).delete()
    return deleted
