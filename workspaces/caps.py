"""Per-credential budgets (SPEC §3 "Per-key caps"): an API key's, or an OAuth grant's, own daily
request cap and credit balance, on top of the workspace's budgets (`workspaces.quotas`).

Both are counters of the one counting mechanism (`core.counters`, the gateway's one `EVALSHA` on
Redis), so they are exact under concurrency on any number of processes:

- the daily cap counts the credential's served requests per UTC day (`dc:<owner>:<day>`);
- the credits count what was spent of the balance since it was last set, per refill period
  (`cr:<owner>:<epoch>:<period>`): with a daily or monthly refill the period is the UTC day or
  month, so the balance is whole again at 00:00 UTC; without, there is one period. Setting the
  balance (`credits_epoch` + 1) starts a new counter: the credential has the new balance at once.

A credential with neither (`caps_of` → None) pays nothing: no counter, no extra round trip.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

from django.core.exceptions import ValidationError
from django.db import models
from django.db.models import Q

from core.counters import counter_values

from .quotas import Allowance, next_utc_midnight

if TYPE_CHECKING:
    from collections.abc import Iterable

# Far above any real need and inside the columns (PostgreSQL's integer and bigint), so a huge
# number is a form error, never a database error.
MAX_DAILY_CAP = 1_000_000_000
MAX_CREDITS = 1_000_000_000_000
# A balance that never refills still needs an expiry for its counter row or Redis key.
_NEVER = datetime(2100, 1, 1, tzinfo=UTC)


class Refill(models.TextChoices):
    NONE = "", "No refill"
    DAILY = "daily", "Daily, at 00:00 UTC"
    MONTHLY = "monthly", "Monthly, on the 1st at 00:00 UTC"


class CredentialBudget(models.Model):
    """The fields an API key and an OAuth grant (`oauth.Connection`) share; written only by their
    `*_set_budget` services."""

    daily_cap = models.PositiveIntegerField(
        null=True, blank=True, help_text="Requests per UTC day; empty: no cap of its own."
    )
    credits = models.PositiveBigIntegerField(
        null=True, blank=True, help_text="Credit balance (one per request); empty: no credits."
    )
    credits_refill = models.CharField(
        max_length=8, choices=Refill.choices, blank=True, default=Refill.NONE
    )
    # Bumped whenever the balance is set, so the spent counter starts again from zero.
    credits_epoch = models.PositiveIntegerField(default=0, editable=False)

    class Meta:
        abstract = True
        constraints = [
            models.CheckConstraint(
                condition=Q(daily_cap__isnull=True) | Q(daily_cap__gt=0),
                name="%(app_label)s_%(class)s_daily_cap_positive",
            ),
            models.CheckConstraint(
                condition=Q(credits__isnull=False) | Q(credits_refill=""),
                name="%(app_label)s_%(class)s_refill_needs_credits",
            ),
        ]


@dataclass(frozen=True, slots=True)
class CredentialCaps:
    """What the gateway needs of a capped credential (`apikit.principal.Principal.caps`)."""

    owner: str  # the counters' namespace: "key:<row id>" or "grant:<row id>"
    noun: str  # "API key" or "OAuth grant", for messages
    daily_cap: int | None
    credits: int | None
    refill: str
    epoch: int


def caps_of(owner: str, noun: str, row: CredentialBudget) -> CredentialCaps | None:
    if row.daily_cap is None and row.credits is None:
        return None
    return CredentialCaps(
        owner, noun, row.daily_cap, row.credits, row.credits_refill, row.credits_epoch
    )


@dataclass(frozen=True, slots=True)
class CapWindow:
    """One of a credential's counters for now: its key, limit, expiry and when it resets (None:
    never, a balance without refill)."""

    kind: str  # "daily_cap" or "credits"
    key: str
    limit: int
    expires_at: datetime
    reset_at: datetime | None


def _next_month(now: datetime) -> datetime:
    day = now.astimezone(UTC).date()
    year, month = (day.year + 1, 1) if day.month == 12 else (day.year, day.month + 1)
    return datetime(year, month, 1, tzinfo=UTC)


def cap_windows(caps: CredentialCaps, now: datetime) -> list[CapWindow]:
    """The daily cap first, then the credits: the gate's order (SPEC §3)."""
    windows: list[CapWindow] = []
    today = now.astimezone(UTC).date()
    if caps.daily_cap is not None:
        midnight = next_utc_midnight(now)
        windows.append(CapWindow(
            "daily_cap", f"dc:{caps.owner}:{today.isoformat()}", caps.daily_cap,
            midnight + timedelta(hours=1), midnight,
        ))
    if caps.credits is not None:
        if caps.refill == Refill.DAILY:
            period, reset = today.isoformat(), next_utc_midnight(now)
        elif caps.refill == Refill.MONTHLY:
            period, reset = today.strftime("%Y-%m"), _next_month(now)
        else:
            period, reset = "once", None
        windows.append(CapWindow(
            "credits", f"cr:{caps.owner}:{caps.epoch}:{period}", caps.credits,
            reset + timedelta(hours=1) if reset else _NEVER, reset,
        ))
    return windows


def cap_allowance(
    window: CapWindow, caps: CredentialCaps, *, admitted: bool, used: int, now: datetime
) -> Allowance:
    """A cap's `Allowance`; refused, its message names the credential's cap (SPEC §3)."""
    message = ""
    if not admitted and window.kind == "daily_cap":
        message = (
            f"This {caps.noun}'s daily cap: {window.limit} requests/day. Currently {used} today; "
            "requested 1. Retry tomorrow (UTC) or ask a workspace admin to raise the cap."
        )
    elif not admitted:
        when = {
            Refill.DAILY: "They refill tomorrow at 00:00 UTC.",
            Refill.MONTHLY: "They refill on the 1st of next month at 00:00 UTC.",
        }.get(caps.refill, "They do not refill: a workspace admin can add credits.")
        message = f"This {caps.noun} has used all {window.limit} of its credits. {when}"
    return Allowance(admitted, window.limit, used, window.reset_at, window.key, message)


@dataclass(frozen=True, slots=True)
class BudgetState:
    """A credential's budget as the dashboard and `GET /api/v1/keys` show it."""

    daily_cap: int | None
    used_today: int | None
    credits: int | None
    credits_remaining: int | None
    refill: str
    refills_at: datetime | None

    def as_json(self) -> dict:
        return {
            "daily_cap": self.daily_cap,
            "used_today": self.used_today,
            "credits": self.credits,
            "credits_remaining": self.credits_remaining,
            "credits_refill": self.refill or None,
            "credits_refill_at": self.refills_at.isoformat() if self.refills_at else None,
        }


UNCAPPED = BudgetState(None, None, None, None, "", None)


def budget_states(
    caps: Iterable[CredentialCaps | None], now: datetime
) -> list[BudgetState]:
    """Where each credential's caps stand, in one counter read for all of them."""
    caps = list(caps)
    windows = [cap_windows(c, now) if c is not None else [] for c in caps]
    values = counter_values([w.key for ws in windows for w in ws])
    states: list[BudgetState] = []
    for cap, ws in zip(caps, windows, strict=True):
        if cap is None:
            states.append(UNCAPPED)
            continue
        by_kind = {w.kind: w for w in ws}
        daily, credit = by_kind.get("daily_cap"), by_kind.get("credits")
        states.append(BudgetState(
            daily_cap=cap.daily_cap,
            used_today=min(values[daily.key], daily.limit) if daily else None,
            credits=cap.credits,
            credits_remaining=max(credit.limit - values[credit.key], 0) if credit else None,
            refill=cap.refill,
            refills_at=credit.reset_at if credit else None,
        ))
    return states


def budget_errors(
    *, daily_cap: object, credits: object, refill: object
) -> dict[str, str]:
    """What is wrong with a budget (field → message); empty when it may be saved."""
    errors: dict[str, str] = {}
    for field, value, most, what in (
        ("daily_cap", daily_cap, MAX_DAILY_CAP, "requests per day"),
        ("credits", credits, MAX_CREDITS, "credits"),
    ):
        if value is None:
            continue
        if isinstance(value, bool) or not isinstance(value, int):
            errors[field] = "Enter a whole number."
        elif value <= 0:
            errors[field] = "Enter a number above 0, or leave it empty for none."
        elif value > most:
            errors[field] = f"At most {most:,} {what}."
    if refill not in Refill.values:
        errors["credits_refill"] = "Choose no refill, daily or monthly."
    elif refill and credits is None:
        errors["credits_refill"] = "A refill needs a credit balance to refill to."
    return errors


BUDGET_FIELDS = ("daily_cap", "credits", "credits_refill")


def budget_change(
    row: CredentialBudget, *, daily_cap: int | None, credits: int | None, refill: str
) -> dict[str, list]:
    """Validate a credential's new budget and set it on `row` (not saved): the fields that
    changed, each [before, after]. Changing the credits or their refill sets the balance anew
    (`credits_epoch`). A ValidationError names each bad field; then `row` is untouched."""
    errors = budget_errors(daily_cap=daily_cap, credits=credits, refill=refill)
    if errors:
        raise ValidationError(errors)
    wanted = {"daily_cap": daily_cap, "credits": credits, "credits_refill": refill}
    changed = {
        field: [getattr(row, field), value]
        for field, value in wanted.items() if getattr(row, field) != value
    }
    for field in changed:
        setattr(row, field, wanted[field])
    if "credits" in changed or "credits_refill" in changed:
        row.credits_epoch += 1
    return changed
