"""The gateway's one Redis round trip per metered request: the per-key rate limit, the budget
and a cached key's version markers, in one `EVALSHA` (`gate_take`)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from core.counters import CounterUnavailable, redis_counter_key
from core.redis import redis_client

# KEYS: the key's rate-limit counter, the budget counter, then the version markers of a cached key
# (apikeys.keycache), if any.
# ARGV: now (unix seconds), rate limit (0: none), its expiry, budget limit (0: none), its expiry,
# then the versions the cached key was read under.
# Returns {4} when a version marker moved (the cached key is stale: nothing is counted, the
# caller reads the key again), {0, rate count, budget count} when admitted (both counted),
# {2, rate count} over the rate limit, {3, budget count} over the budget; a refusal counts nothing
# it refuses (the rate limit still counts a request the budget refuses, as the separate calls did).
# No address is ever blocked here: a verified credential is never refused for other credentials'
# failures (SPEC §5, core.credfilter).
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
            keys=[
                redis_counter_key(rate_key or "-"), redis_counter_key(budget_key or "-"), *markers
            ],
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
