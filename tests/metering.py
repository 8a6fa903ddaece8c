"""Budget and rate-limit units taken outside a request, for tests that fill or probe a counter
directly: the same counter keys, limits, expiries and messages as the gateway's database
backend (`gateway.gate.DatabaseCounters` with `gateway.metering`), one unit at a time."""

from __future__ import annotations

from datetime import datetime, timedelta

from core.counters import counter_take
from workspaces.models import Plan
from workspaces.quotas import (
    Allowance,
    Budget,
    budget_allowance,
    budget_counter_key,
    budget_limit,
    next_utc_midnight,
    rate_limit_allowance,
    rate_limit_window,
)


def quota_consume(
    *, workspace_id: int, plan: Plan, budget: Budget, now: datetime
) -> Allowance | None:
    """Take one unit of today's `budget`; None when the plan is unlimited (nothing is counted)."""
    limit = budget_limit(plan, budget)
    if limit is None:
        return None
    key = budget_counter_key(workspace_id, budget, now)
    take = counter_take(key, limit=limit, expires_at=next_utc_midnight(now) + timedelta(hours=1))
    return budget_allowance(
        admitted=take.admitted, budget=budget, limit=limit, used=take.count, counter_key=key,
        now=now,
    )



def rate_limit_consume(*, key_id: int, per_minute: int, now: datetime) -> Allowance:
    """Fixed one-minute windows per key, shared across processes through the same counters."""
    counter_key, reset_at = rate_limit_window(key_id, now)
    take = counter_take(counter_key, limit=per_minute, expires_at=reset_at + timedelta(minutes=1))
    return rate_limit_allowance(
        admitted=take.admitted, per_minute=per_minute, used=take.count, counter_key=counter_key,
        reset_at=reset_at, now=now,
    )
