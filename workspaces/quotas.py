"""Daily budgets per workspace (SPEC §5) and per-key rate limits, on `core.counters`.

Two budgets per workspace per UTC day: `writes` (every POST/PUT/PATCH/DELETE under /api/v1) and
`passport_reads` (every GET on passport endpoints); each endpoint declares the one it costs
(`@api_endpoint(budget=…)`, `apikit.endpoints`). They reset at 00:00 UTC. A request is counted
when admitted; a request refused for the budget is not, and a request that was admitted but then
not served (an error response) gives its unit back, so "N per day" means N served requests.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from enum import StrEnum

from core.counters import counter_give_back, counter_values
from workspaces.models import Plan


class Budget(StrEnum):
    WRITES = "writes"
    PASSPORT_READS = "passport_reads"


BUDGET_WORDS = {Budget.WRITES: "writes", Budget.PASSPORT_READS: "passport reads"}


@dataclass(frozen=True, slots=True)
class Allowance:
    """The outcome of a budget or rate-limit check, with what the X-RateLimit headers show."""

    admitted: bool
    limit: int
    used: int
    reset_at: datetime | None  # None: never (a per-credential balance without refill)
    counter_key: str
    message: str = ""

    @property
    def remaining(self) -> int:
        return max(self.limit - self.used, 0)

    def retry_after(self, now: datetime) -> int | None:
        if self.reset_at is None:
            return None  # waiting does not help: nothing to retry after
        return max(int((self.reset_at - now).total_seconds() + 0.999), 1)


def next_utc_midnight(now: datetime) -> datetime:
    today = now.astimezone(UTC).date()
    return datetime(today.year, today.month, today.day, tzinfo=UTC) + timedelta(days=1)


def budget_limit(plan: Plan, budget: Budget) -> int | None:
    return plan.writes_per_day if budget is Budget.WRITES else plan.passport_reads_per_day


def budget_counter_key(workspace_id: int, budget: Budget, now: datetime) -> str:
    return f"q:{workspace_id}:{budget.value}:{now.astimezone(UTC).date().isoformat()}"


def quota_usage_today(*, workspace_id: int, plan: Plan, now: datetime) -> list[dict]:
    """Today's budgets for the Usage page: one counter read for both."""
    keys = {b: budget_counter_key(workspace_id, b, now) for b in Budget}
    values = counter_values(list(keys.values()))
    return [
        {
            "budget": b,
            "label": BUDGET_WORDS[b].capitalize(),
            "limit": budget_limit(plan, b),
            "used": values[keys[b]],
            "reset_at": next_utc_midnight(now),
        }
        for b in Budget
    ]


def rate_limit_window(key_id: int, now: datetime) -> tuple[str, datetime]:
    """The counter key and end of the key's current one-minute window."""
    window = int(now.timestamp()) // 60
    return f"rl:{key_id}:{window}", datetime.fromtimestamp((window + 1) * 60, tz=UTC)


def rate_limit_allowance(
    *, admitted: bool, per_minute: int, used: int, counter_key: str, reset_at: datetime,
    now: datetime,
) -> Allowance:
    message = "" if admitted else (
        f"This API key is limited to {per_minute} requests per minute. "
        f"Retry in {max(int((reset_at - now).total_seconds()), 1)} seconds."
    )
    return Allowance(admitted, per_minute, used, reset_at, counter_key, message)


def budget_allowance(
    *, admitted: bool, budget: Budget, limit: int, used: int, counter_key: str, now: datetime
) -> Allowance:
    message = "" if admitted else (
        f"API rate limit: {limit} {BUDGET_WORDS[budget]}/day via /api/v1. "
        f"Currently {used} today; requested 1. "
        "Retry tomorrow (UTC) or upgrade your plan."
    )
    return Allowance(admitted, limit, used, next_utc_midnight(now), counter_key, message)


def allowance_give_back(allowance: Allowance | None) -> Allowance | None:
    """Return an admitted unit (its request was not served); the allowance as it now stands, so
    the response's `X-RateLimit-Remaining` shows the unit as not spent."""
    if allowance is None or not allowance.admitted:
        return allowance
    counter_give_back(allowance.counter_key)
    return replace(allowance, used=max(allowance.used - 1, 0))
