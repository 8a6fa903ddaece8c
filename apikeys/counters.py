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

from django.conf import settings
from django.core.cache import cache
from django.db import connection
from django.utils import timezone

from .models import Counter

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


def redis_client():  # noqa: ANN201
    """Django's RedisCache client (redis-py), shared with the cache: one connection pool."""
    return cache._cache.get_client(write=True)


def _redis_key(key: str) -> str:
    return f"gatehouse:counter:{key}"


def using_redis() -> bool:
    return bool(settings.REDIS_URL)


def counter_take(key: str, *, limit: int, expires_at: datetime) -> Take:
    """Count one use of `key` if it is below `limit`; the counter disappears at `expires_at`."""
    if using_redis():
        try:
            expires = int(expires_at.timestamp())
            result = int(redis_client().eval(_TAKE_LUA, 1, _redis_key(key), limit, expires))
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
            redis_client().eval(_GIVE_BACK_LUA, 1, _redis_key(key))
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
            value = redis_client().get(_redis_key(key))
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
            values = redis_client().mget([_redis_key(k) for k in keys])
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


# --- The gateway's one Redis round trip ---------------------------------------------------------

# KEYS: the key's rate-limit counter, the budget counter, then the version markers of a cached key
# (apikeys.keycache), if any.
# ARGV: now (unix seconds), rate limit (0: none), its expiry, budget limit (0: none), its expiry,
# then the versions the cached key was read under.
# Returns {4} when a version marker moved (the cached key is stale: nothing is counted, the
# caller reads the key again), {0, rate count, budget count} when admitted (both counted),
# {2, rate count} over the rate limit, {3, budget count} over the budget; a refusal counts nothing
# it refuses (the rate limit still counts a request the budget refuses, as the separate calls did).
# No address is ever blocked here: a verified credential is never refused for other credentials'
# failures (SPEC §5, apikeys.credfilter).
_GATE_LUA = """
for i = 3, #KEYS do
  if redis.call('GET', KEYS[i]) ~= ARGV[i + 3] then return {4} end
end
local rate_limit, budget_limit = tonumber(ARGV[2]), tonumber(ARGV[4])
local rate, budget = 0, 0
if rate_limit > 0 then
  rate = tonumber(redis.call('GET', KEYS[1]) or '0')
  if rate >= rate_limit then return {2, rate} end
  rate = redis.call('INCR', KEYS[1])
  if rate == 1 then redis.call('EXPIREAT', KEYS[1], ARGV[3]) end
end
if budget_limit > 0 then
  budget = tonumber(redis.call('GET', KEYS[2]) or '0')
  if budget >= budget_limit then return {3, budget, rate} end
  budget = redis.call('INCR', KEYS[2])
  if budget == 1 then redis.call('EXPIREAT', KEYS[2], ARGV[5]) end
end
return {0, rate, budget}
"""
_gate_scripts: dict[int, object] = {}

STALE = 4


@dataclass(frozen=True, slots=True)
class GateResult:
    outcome: int  # 0 admitted, 2 over the rate limit, 3 over the budget, 4 STALE
    rate: int = 0
    budget: int = 0


def gate_take(
    *,
    rate_key: str | None,
    rate_limit: int,
    rate_expires_at: datetime | None,
    budget_key: str | None,
    budget_limit: int,
    budget_expires_at: datetime | None,
    now: datetime,
    versions: dict[str, str] | None = None,
) -> GateResult:
    """Redis only: the rate limit and the budget (and a cached key's versions) in one `EVALSHA`.

    `versions` ({marker key: value}) are the version markers a cached key was read under
    (`apikeys.keycache`): if any has moved, nothing is counted and the outcome is `STALE`.
    """
    markers = versions or {}
    try:
        client = redis_client()
        script = _gate_scripts.get(id(client))
        if script is None:
            script = _gate_scripts[id(client)] = client.register_script(_GATE_LUA)
        result = script(
            keys=[_redis_key(rate_key or "-"), _redis_key(budget_key or "-"), *markers],
            args=[
                int(now.timestamp()),
                rate_limit if rate_key else 0,
                int(rate_expires_at.timestamp()) if rate_expires_at else 0,
                budget_limit if budget_key else 0,
                int(budget_expires_at.timestamp()) if budget_expires_at else 0,
                *markers.values(),
            ],
        )
    except Exception as exc:  # redis.exceptions.RedisError and socket errors
        raise CounterUnavailable(str(exc)) from None
    outcome = int(result[0])
    if outcome == 0:
        return GateResult(0, rate=int(result[1]), budget=int(result[2]))
    if outcome == 2:
        return GateResult(2, rate=int(result[1]))
    if outcome == STALE:
        return GateResult(STALE)
    return GateResult(3, budget=int(result[1]), rate=int(result[2]))
