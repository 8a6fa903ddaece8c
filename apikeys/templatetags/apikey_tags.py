from __future__ import annotations

from datetime import datetime

from django import template
from django.conf import settings
from django.utils import timezone

from apikeys.models import ApiKey
from apikeys.selectors import apikey_warnings
from workspaces.templatetags.dashboard import ago as dashboard_ago

register = template.Library()

EXPIRY_WARNING_DAYS = 7  # SPEC §3: the list shows keys expiring within 7 days


def _plural(n: int, unit: str) -> str:
    return f"{n} {unit}" if n == 1 else f"{n} {unit}s"


def _rounded(seconds: float) -> str:
    """The nearest whole unit: `3 days` for 2 days 20 hours, `5 hours`, `12 minutes`."""
    if seconds >= 23.5 * 3600:
        return _plural(max(1, round(seconds / 86400)), "day")
    if seconds >= 59.5 * 60:
        return _plural(max(1, round(seconds / 3600)), "hour")
    return _plural(max(1, round(seconds / 60)), "minute")


@register.filter
def expiry_countdown(key: ApiKey) -> str:
    """`expires in 3 days` (hours, minutes when nearer), rounded to the nearest unit, for a key
    expiring within 7 days, else ''."""
    now = timezone.now()
    if not key.expires_within(EXPIRY_WARNING_DAYS, now):
        return ""
    remaining = (key.expires_at - now).total_seconds()
    if remaining < 30:
        return "expires in under a minute"
    return f"expires in {_rounded(remaining)}"


register.filter("ago", dashboard_ago)  # the one `ago` (workspaces/templatetags/dashboard.py)


@register.filter
def key_warnings(key: ApiKey) -> list[dict]:
    """What deserves a look on a live key (`apikeys.selectors.apikey_warnings`)."""
    return apikey_warnings(key, deployment=settings.GATEHOUSE_ENVIRONMENT)


@register.filter
def time_left(moment: datetime) -> str:
    """`5 h 12 min` from now until `moment` (whole minutes, rounded down), `under a minute` in the
    last minute: the Usage page's "resets in …"."""
    minutes = int((moment - timezone.now()).total_seconds()) // 60
    if minutes < 1:
        return "under a minute"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes} min" if hours else f"{minutes} min"
