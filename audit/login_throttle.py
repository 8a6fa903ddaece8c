"""Sign-in throttling for every sign-in door (the dashboard's and Django admin's), on
django-ratelimit's core API and the shared cache: failed sign-ins are counted per (account,
address) and per address, and a sign-in is refused (429) once either count is spent, before the
password is even checked.

- Per (account, address): `ACCOUNT_ADDRESS_LIMIT` failures in `WINDOW` for one username from one
  address (IPv6: one /64). It counts usernames whether or not an account exists, so a refusal
  says nothing about existence.
- Per address: `ADDRESS_LIMIT` failures in `WINDOW` — one client spraying many accounts.

There is deliberately no count per account alone: with one, anyone could lock the real user out
by guessing wrong ten times from anywhere (SPEC §5). The user signing in from their own address
is refused only for failures from that address. What remains — a guesser spreading one
account's guesses over many addresses — is paid for in Argon2 time per guess, and every failure
is on the audit log (`user.login_failed`, with the address) for alerting.

Only failures count: a member who signs in at the first try is never counted. Windows are fixed
(django-ratelimit's), so a block lasts until its window ends (`Retry-After`). If the cache is
down the throttle fails open with a warning, as the API's failed-authentication limit does: an
outage of Redis must not lock everyone out, and Argon2 keeps each guess slow anyway.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable

from django.http import HttpRequest
from django_ratelimit.core import get_usage

from core.addresses import ip_bucket

logger = logging.getLogger("audit.login")

WINDOW_MINUTES = 15
ACCOUNT_ADDRESS_LIMIT = 10
ADDRESS_LIMIT = 50
_ACCOUNT_ADDRESS = ("gatehouse.login.account_address", f"{ACCOUNT_ADDRESS_LIMIT}/{WINDOW_MINUTES}m")
_ADDRESS = ("gatehouse.login.address", f"{ADDRESS_LIMIT}/{WINDOW_MINUTES}m")


def _account_address_key(username: str) -> Callable[[str, HttpRequest], str]:
    normalized = username.strip().lower()
    # django-ratelimit hashes the key into the cache key: no username is stored in the cache.
    return lambda group, request: f"{ip_bucket(group, request)}|{normalized}"


def _usages(request: HttpRequest, username: str, *, increment: bool) -> list[dict]:
    usages = [
        get_usage(request, group=_ADDRESS[0], key=ip_bucket, rate=_ADDRESS[1],
                  increment=increment),
    ]
    if username.strip():
        usages.append(get_usage(request, group=_ACCOUNT_ADDRESS[0],
                                key=_account_address_key(username), rate=_ACCOUNT_ADDRESS[1],
                                increment=increment))
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
    """Count one failed sign-in for the (username, address) pair and for the address."""
    try:
        _usages(request, username, increment=True)
    except Exception:
        logger.warning("Sign-in throttle unavailable (cache error); not counting.", exc_info=True)
