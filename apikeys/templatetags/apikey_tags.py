from __future__ import annotations

from datetime import datetime

from django import template
from django.utils import timezone

from apikeys.models import ApiKey

register = template.Library()

EXPIRY_WARNING_DAYS = 7  # SPEC §3: the list shows keys expiring within 7 days


def _plural(n: int, unit: str) -> str:
    return f"{n} {unit}" if n == 1 else f"{n} {unit}s"


@register.filter
def expiry_countdown(key: ApiKey) -> str:
    """`expires in N days` (hours, under a day) for a key expiring within 7 days, else ''."""
    now = timezone.now()
    if not key.expires_within(EXPIRY_WARNING_DAYS, now):
        return ""
    remaining = key.expires_at - now
    if remaining.days >= 1:
        return f"expires in {_plural(remaining.days, 'day')}"
    hours = remaining.seconds // 3600
    if hours >= 1:
        return f"expires in {_plural(hours, 'hour')}"
    return "expires in under an hour"


@register.filter
def time_left(moment: datetime) -> str:
    """`5 h 12 min` from now until `moment` (whole minutes, rounded down), `under a minute` in the
    last minute: the Usage page's "resets in …"."""
    minutes = int((moment - timezone.now()).total_seconds()) // 60
    if minutes < 1:
        return "under a minute"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes} min" if hours else f"{minutes} min"
