"""Sign-in throttling (django-ratelimit's core API on the shared cache): failed sign-ins are
counted per account and per client IP, and a sign-in is refused (429) once either count is
spent, before the password is even checked.

- Per account: `ACCOUNT_LIMIT` failures in `WINDOW` for one username, whoever sends them —
  online guessing of one password is slow, from any number of addresses. It counts usernames
  whether or not an account exists, so a refusal says nothing about existence.
- Per IP (IPv6: per /64): `IP_LIMIT` failures in `WINDOW` — one client spraying many accounts.

Only failures count: a member who signs in at the first try is never counted. Windows are fixed
(django-ratelimit's), so a block lasts until its window ends (`Retry-After`). If the cache is
down the throttle fails open with a warning, as the API's failed-authentication limit does: an
outage of Redis must not lock everyone out, and Argon2 keeps each guess slow anyway.
"""

from __future__ import annotations

import logging
import math

from django.http import HttpRequest
from django_ratelimit.core import get_usage

from apikeys.failed_auth import ip_bucket

logger = logging.getLogger("audit.login")

WINDOW_MINUTES = 15
ACCOUNT_LIMIT = 10
IP_LIMIT = 50
_ACCOUNT = ("gatehouse.login.account", f"{ACCOUNT_LIMIT}/{WINDOW_MINUTES}m")
_IP = ("gatehouse.login.ip", f"{IP_LIMIT}/{WINDOW_MINUTES}m")


def _account_key(username: str):  # noqa: ANN202
    normalized = username.strip().lower()
    return lambda group, request: f"account:{normalized}"


def _usages(request: HttpRequest, username: str, *, increment: bool) -> list[dict]:
    usages = [
        get_usage(request, group=_IP[0], key=ip_bucket, rate=_IP[1], increment=increment),
    ]
    if username.strip():
        usages.append(get_usage(request, group=_ACCOUNT[0], key=_account_key(username),
                                rate=_ACCOUNT[1], increment=increment))
    return [usage for usage in usages if usage is not None]


def login_blocked(request: HttpRequest, username: str) -> int | None:
    """Seconds until this sign-in may be tried again, or None when it may be tried now."""
    try:
        usages = _usages(request, username, increment=False)
    except Exception:  # the cache is down: fail open (module docstring)
        logger.warning("Sign-in throttle unavailable (cache error); not checking.", exc_info=True)
        return None
    spent = [u for u in usages if u["count"] >= u["limit"]]
    if not spent:
        return None
    return max(max(math.ceil(u["time_left"]) + 1, 1) for u in spent)


def login_failed(request: HttpRequest, username: str) -> None:
    """Count one failed sign-in for the username and the client's IP."""
    try:
        _usages(request, username, increment=True)
    except Exception:
        logger.warning("Sign-in throttle unavailable (cache error); not counting.", exc_info=True)
