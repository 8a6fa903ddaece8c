"""The gateway's retention step for `manage.py prune` (registered in `GatewayConfig.ready`)."""

from __future__ import annotations

from datetime import datetime

from core.counters import counters_prune

from .idempotency import idempotency_prune
from .usage import usage_prune


def prune_api_metering(now: datetime) -> str:
    """Idempotency records past their 24 hours, usage older than 90 days, expired counters."""
    records = idempotency_prune(now)
    usage = usage_prune(now)
    counters = counters_prune(now)
    return (
        f"api: deleted {records} expired idempotency records, {usage} usage rows older than "
        f"90 days, {counters} expired counters"
    )
