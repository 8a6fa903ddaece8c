"""The counting backends of the gateway's one gate (`gateway.metering.meter_request`).

The gate states the order of checks (SPEC §5, §6); a backend only counts, through one small
interface, `Counters.take`:

- `RedisCounters` (`REDIS_URL` set): the key's rate limit, the daily budget and a cached key's
  version markers in one `EVALSHA` — exactly one round trip per metered request
  (docs/PERFORMANCE.md). It must know before that call whether the budget counts, so it runs the
  idempotency step first (a database claim); when the rate limit then refuses, the gate
  releases the claim, so the answer is the one the order says.
- `DatabaseCounters` (the embedded default): one statement per counter (`core.counters`), in
  the gate's order: the rate limit, then the idempotency step (not run when the rate limit
  refused), then the budget.

Both count the budget only when the rate limit admitted and the idempotency step left the request
to be served (no replay, no refusal); a refusal counts nothing it refuses (the rate limit still
counts a request the budget refuses). A capped credential's own counters (`caps`: its daily cap,
its credits; SPEC §3) come after the budget and are all-or-nothing with it: the script checks
every one before it counts any, and the database takes them in one transaction that a refusal
rolls back. An uncapped credential asks for none and pays nothing for them. No address is ever
blocked here: a verified credential is never refused for other credentials' failures (SPEC §5,
core.credfilter).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from enum import Enum
from typing import Protocol

from django.db import transaction

from apikeys.keycache import keycache_distrust
from core.counters import CounterUnavailable, counter_take, redis_counter_key
from core.leases import lease_fresh
from core.redis import redis_client


class Outcome(Enum):
    """What the gate decided for one request."""

    ADMITTED = "admitted"
    STALE = "stale"  # a cached key's markers moved or could not be confirmed: verify it again
    INSUFFICIENT_SCOPE = "insufficient_scope"
    RATE_LIMITED = "rate_limited"
    REPLAYED = "replayed"  # Idempotency-Key: the stored response
    IDEMPOTENCY_REFUSED = "idempotency_refused"  # Idempotency-Key: 400, 409 or 422
    OVER_BUDGET = "quota_exceeded"
    OVER_CAP = "over_cap"  # the credential's own daily cap or credits (SPEC §3)
    UNAVAILABLE = "service_unavailable"  # the counters' backing service is unreachable


@dataclass(frozen=True, slots=True)
class Limit:
    """One counter to take a unit of: admitted while below `limit`; gone at `expires_at`."""

    key: str
    limit: int
    expires_at: datetime


@dataclass(frozen=True, slots=True)
class Taken:
    """What a backend counted. `outcome` is `ADMITTED`, `STALE`, `RATE_LIMITED` or
    `OVER_BUDGET`; `rate` and `budget` are the counters after the take (or as they stand when
    refused; 0 when not asked). When the idempotency step left the budget uncounted (a replay),
    a backend may report where it stands in `budget` if that costs no extra round trip."""

    outcome: Outcome
    rate: int = 0
    budget: int | None = None  # None: not counted, and not read either
    # The caps' counters in the order asked (empty when not counted); for `OVER_CAP`, which one
    # refused (`refused_cap`) and where it stands.
    caps: tuple[int, ...] = ()
    refused_cap: int | None = None


class IdempotencyStep(Protocol):
    """The gate's idempotency step, run at most once by a backend (`run` is idempotent)."""

    def run(self) -> bool:
        """Claim the request's `Idempotency-Key`; True when the budget is to be counted (no key,
        or a fresh claim), False for a replay or a refusal."""


class Counters(Protocol):
    def take(
        self,
        *,
        versions: Mapping[str, str] | None,
        rate: Limit | None,
        idempotency: IdempotencyStep | None,
        budget: Limit | None,
        caps: Sequence[Limit] = (),
        lease: int = 0,
    ) -> Taken:
        """Confirm `versions` (a cached key's markers; `lease` is its lease ticket, core.leases),
        take `rate`, run `idempotency`, take `budget` and `caps` — counting them only when the
        rate limit admitted and `idempotency` returned True, and only all together. Raises
        `CounterUnavailable` when something to count cannot be."""


# KEYS: the key's rate-limit counter, the budget counter, the credential's cap counters (ARGV[7]
# of them), then the version markers of a cached key (apikeys.keycache), if any.
# ARGV: now (unix seconds), rate limit (0: none), its expiry, budget limit (0: none), its expiry,
# '1' to read the budget counter without counting (a replay's X-RateLimit headers), the number
# of caps, each cap's limit and expiry, then the versions the cached key was read under.
# Returns {'stale'} when a version marker moved (nothing is counted), {'admitted', rate count,
# budget count, cap counts…}, {'rate_limited', rate count}, {'quota_exceeded', budget count,
# rate count} or {'over_cap', budget count, rate count, which cap (1-based), its count}: the
# values of `Outcome`. The budget and the caps are checked before any of them is counted.
_GATE_LUA = """
local ncaps = tonumber(ARGV[7])
for i = 3 + ncaps, #KEYS do
  if redis.call('GET', KEYS[i]) ~= ARGV[i + 5 + ncaps] then return {'stale'} end
end
local rate_limit, budget_limit = tonumber(ARGV[2]), tonumber(ARGV[4])
local rate, budget = 0, 0
if rate_limit > 0 then
  rate = tonumber(redis.call('GET', KEYS[1]) or '0')
  if rate >= rate_limit then return {'rate_limited', rate} end
  rate = redis.call('INCR', KEYS[1])
  if rate == 1 then redis.call('EXPIREAT', KEYS[1], ARGV[3]) end
end
if budget_limit > 0 then
  budget = tonumber(redis.call('GET', KEYS[2]) or '0')
  if budget >= budget_limit then return {'quota_exceeded', budget, rate} end
end
local counts = {}
for j = 1, ncaps do
  counts[j] = tonumber(redis.call('GET', KEYS[2 + j]) or '0')
  if counts[j] >= tonumber(ARGV[6 + 2 * j]) then return {'over_cap', budget, rate, j, counts[j]} end
end
if budget_limit > 0 then
  budget = redis.call('INCR', KEYS[2])
  if budget == 1 then redis.call('EXPIREAT', KEYS[2], ARGV[5]) end
elseif ARGV[6] == '1' then
  budget = tonumber(redis.call('GET', KEYS[2]) or '0')
end
local result = {'admitted', rate, budget}
for j = 1, ncaps do
  result[3 + j] = redis.call('INCR', KEYS[2 + j])
  if result[3 + j] == 1 then redis.call('EXPIREAT', KEYS[2 + j], ARGV[7 + 2 * j]) end
end
return result
"""
_gate_scripts: dict[int, object] = {}


def gate_take(
    *,
    rate: Limit | None,
    budget: Limit | None,
    now: datetime,
    versions: Mapping[str, str] | None = None,
    peek: Limit | None = None,
    caps: Sequence[Limit] = (),
) -> Taken:
    """Redis only: the rate limit, the budget and the caps (and a cached key's versions) in one
    `EVALSHA`; `peek` (instead of `budget`) is a budget read in the same call without counting.

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
                redis_counter_key(rate.key if rate else "-"),
                redis_counter_key(budget.key if budget else peek.key if peek else "-"),
                *(redis_counter_key(cap.key) for cap in caps),
                *markers,
            ],
            args=[
                int(now.timestamp()),
                rate.limit if rate else 0,
                int(rate.expires_at.timestamp()) if rate else 0,
                budget.limit if budget else 0,
                int(budget.expires_at.timestamp()) if budget else 0,
                "1" if peek is not None and budget is None else "0",
                len(caps),
                *(part for cap in caps for part in (cap.limit, int(cap.expires_at.timestamp()))),
                *markers.values(),
            ],
        )
    except Exception as exc:  # redis.exceptions.RedisError and socket errors
        raise CounterUnavailable(str(exc)) from None
    word = result[0]
    outcome = Outcome(word.decode() if isinstance(word, bytes) else word)
    if outcome is Outcome.ADMITTED:
        counted = budget is not None or peek is not None
        return Taken(
            outcome, rate=int(result[1]), budget=int(result[2]) if counted else None,
            caps=tuple(int(n) for n in result[3:]),
        )
    if outcome is Outcome.RATE_LIMITED:
        return Taken(outcome, rate=int(result[1]))
    if outcome is Outcome.OVER_BUDGET:
        return Taken(outcome, budget=int(result[1]), rate=int(result[2]))
    if outcome is Outcome.OVER_CAP:
        refused, count = int(result[3]) - 1, int(result[4])
        return Taken(
            outcome, budget=int(result[1]) if budget is not None else None, rate=int(result[2]),
            caps=tuple(count if i == refused else 0 for i in range(len(caps))),
            refused_cap=refused,
        )
    return Taken(Outcome.STALE)


class RedisCounters:
    """One `EVALSHA` per metered request, whatever it asks (even nothing: a scope refusal still
    confirms a cached key, which may be why it was refused) — except a cached credential under a
    fresh lease (`core.leases`) when nothing is to be counted or read: no round trip at all."""

    def __init__(self, now: datetime) -> None:
        self.now = now

    def take(
        self,
        *,
        versions: Mapping[str, str] | None,
        rate: Limit | None,
        idempotency: IdempotencyStep | None,
        budget: Limit | None,
        caps: Sequence[Limit] = (),
        lease: int = 0,
    ) -> Taken:
        # The budget is decided before the one call: the claim first (a database step). A
        # replay (or a refused key) counts no budget and no cap; the call reads where the budget
        # stands.
        peek = None
        if idempotency is not None and not idempotency.run():
            budget, peek, caps = None, budget, ()
        if (
            versions is not None and rate is None and budget is None and peek is None
            and not caps and lease_fresh(lease)
        ):
            # Pushed invalidations reach this worker before any change returns, or its lease
            # runs out first: the cached credential stands without asking (docs/architecture.md).
            return Taken(Outcome.ADMITTED)
        try:
            return gate_take(
                rate=rate, budget=budget, now=self.now, versions=versions, peek=peek, caps=caps
            )
        except CounterUnavailable:
            keycache_distrust()  # bumps may be lost while Redis is unreachable: cache nothing old
            if versions is not None:
                return Taken(Outcome.STALE)  # a cached key that cannot be confirmed is read again
            if rate is not None or budget is not None or caps:
                raise  # a counted request is not served uncounted: 503
            return Taken(Outcome.ADMITTED)  # nothing to count or confirm was asked


class DatabaseCounters:
    """One statement per counter, in the gate's order. Keys are never cached without Redis, so
    there are no version markers to confirm."""

    def take(
        self,
        *,
        versions: Mapping[str, str] | None,
        rate: Limit | None,
        idempotency: IdempotencyStep | None,
        budget: Limit | None,
        caps: Sequence[Limit] = (),
        lease: int = 0,
    ) -> Taken:
        if versions is not None:
            return Taken(Outcome.STALE)  # cannot be confirmed here: read the key again
        rate_count = 0
        if rate is not None:
            take = counter_take(rate.key, limit=rate.limit, expires_at=rate.expires_at)
            rate_count = take.count
            if not take.admitted:
                return Taken(Outcome.RATE_LIMITED, rate=rate_count)
        if idempotency is not None and not idempotency.run():
            return Taken(Outcome.ADMITTED, rate=rate_count)
        if not caps:
            if budget is None:
                return Taken(Outcome.ADMITTED, rate=rate_count)
            take = counter_take(budget.key, limit=budget.limit, expires_at=budget.expires_at)
            outcome = Outcome.ADMITTED if take.admitted else Outcome.OVER_BUDGET
            return Taken(outcome, rate=rate_count, budget=take.count)
        try:
            with transaction.atomic():  # the budget and the caps count together or not at all
                return _take_all(rate_count, budget, caps)
        except _CapRefused as refused:
            return refused.taken


class _CapRefused(Exception):
    def __init__(self, taken: Taken) -> None:
        self.taken = taken


def _take_all(rate_count: int, budget: Limit | None, caps: Sequence[Limit]) -> Taken:
    """The budget, then each cap; a cap's refusal raises `_CapRefused` to roll back the rest."""
    budget_count = None
    if budget is not None:
        take = counter_take(budget.key, limit=budget.limit, expires_at=budget.expires_at)
        if not take.admitted:
            return Taken(Outcome.OVER_BUDGET, rate=rate_count, budget=take.count)
        budget_count = take.count
    counts: list[int] = []
    for index, cap in enumerate(caps):
        take = counter_take(cap.key, limit=cap.limit, expires_at=cap.expires_at)
        if not take.admitted:
            raise _CapRefused(Taken(
                Outcome.OVER_CAP, rate=rate_count,
                budget=None if budget_count is None else budget_count - 1,
                caps=tuple(take.count if i == index else 0 for i in range(len(caps))),
                refused_cap=index,
            ))
        counts.append(take.count)
    return Taken(Outcome.ADMITTED, rate=rate_count, budget=budget_count, caps=tuple(counts))
