"""The periodic sweep (`manage.py notify_due`, every minute): time-based events, and deliveries
whose task was lost.

- An API key expiring within 7 days gets `key.expiring` (days=7) once, within 1 day once more
  (days=1); the dedup key names the expiry, so a key whose expiry is moved is told again.
- A workspace's daily budget (writes, passport reads) at 80% and at 100% of its plan's limit
  gets `budget.threshold` once per UTC day and level.
- A pending delivery overdue by more than its lease (its worker was killed, or its task row
  was lost) is queued again; the claim in `notifications.delivery` keeps it from being sent
  twice at a time.

Several sweeps may run at once (two schedulers, an operator's manual run): the events'
dedup keys make each event once.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta

from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from apikeys.models import ApiKey, KeyStatus
from core.counters import counter_values
from workspaces.models import Workspace
from workspaces.quotas import BUDGET_WORDS, Budget, budget_counter_key, budget_limit

from . import tasks
from .delivery import webhook_lease_seconds
from .models import DeliveryState, EmailDelivery, WebhookDelivery
from .services import event_emit

REQUEUE_BATCH = 500
THRESHOLDS = (100, 80)


@dataclass
class SweepResult:
    emitted: dict[str, int] = field(default_factory=dict)
    requeued: int = 0

    def count(self, kind: str) -> None:
        self.emitted[kind] = self.emitted.get(kind, 0) + 1


def _expiring_keys(now: datetime, result: SweepResult) -> None:
    keys = (
        ApiKey.objects.filter(status__in=[KeyStatus.ACTIVE, KeyStatus.PAUSED],
                              expires_at__gt=now, expires_at__lte=now + timedelta(days=7))
        .select_related("workspace").order_by("expires_at")
    )
    for key in keys:
        days = 1 if key.expires_at <= now + timedelta(days=1) else 7
        with transaction.atomic():
            event = event_emit(
                workspace=key.workspace, type="key.expiring",
                dedup_key=f"key.expiring:{days}:{key.public_id}:{key.expires_at.isoformat()}",
                subject=f"API key {key.name[:100]} expires in {'1 day' if days == 1 else '7 days'}",
                data={
                    "key": {"id": key.public_id, "name": key.name, "hint": key.display_hint,
                            "environment": key.environment},
                    "expires_at": key.expires_at.isoformat(), "days": days,
                },
            )
        if event is not None:
            result.count("key.expiring")


def _budgets(now: datetime, result: SweepResult) -> None:
    workspaces = list(
        Workspace.objects.select_related("plan").filter(
            Q(plan__writes_per_day__isnull=False) | Q(plan__passport_reads_per_day__isnull=False)
        )
    )
    keys = {(ws.pk, b): budget_counter_key(ws.pk, b, now) for ws in workspaces for b in Budget}
    values = counter_values(list(keys.values()))
    day = now.date().isoformat()
    for ws in workspaces:
        for budget in Budget:
            limit = budget_limit(ws.plan, budget)
            if not limit:
                continue
            used = values[keys[(ws.pk, budget)]]
            level = next((t for t in THRESHOLDS if used * 100 >= limit * t), None)
            if level is None:
                continue
            words = BUDGET_WORDS[budget]
            with transaction.atomic():
                event = event_emit(
                    workspace=ws, type="budget.threshold",
                    dedup_key=f"budget:{budget.value}:{level}:{day}",
                    subject=f"Daily {words} budget at {level}% ({used} of {limit})",
                    data={"budget": budget.value, "percent": level, "used": used,
                          "limit": limit, "day": day},
                )
            if event is not None:
                result.count("budget.threshold")


def _requeue(now: datetime, result: SweepResult) -> None:
    grace = timedelta(seconds=webhook_lease_seconds())
    stalled = Q(state=DeliveryState.PENDING, next_attempt_at__lte=now - grace) & (
        Q(leased_until__isnull=True) | Q(leased_until__lte=now)
    )
    for model, task in ((WebhookDelivery, tasks.deliver_webhook),
                        (EmailDelivery, tasks.send_email)):
        ids = list(model.objects.filter(stalled).order_by("next_attempt_at")
                   .values_list("pk", flat=True)[:REQUEUE_BATCH])
        for pk in ids:
            task.enqueue(pk)
        result.requeued += len(ids)


def notify_due(now: datetime | None = None) -> SweepResult:
    now = now or timezone.now()
    result = SweepResult()
    _expiring_keys(now, result)
    _budgets(now, result)
    _requeue(now, result)
    return result
