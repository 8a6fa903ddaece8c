"""The failed-authentication limits per client address (SPEC §5): how often an address may send
tokens nobody issued, and the budget of lookups for tokens nobody can place.

Unknown tokens (the filter rules them out, `Verdict.UNKNOWN`) cost no lookup; they are counted
here, in process memory (no I/O), and past `UNKNOWN_LIMIT` a minute from one address they get 429
`rate_limited` with `Retry-After`: the seconds left in that minute. Known and valid credentials
are never counted and never refused by this, whatever the address has sent.

The first line is `core.credfilter`: a token nobody issued is refused without a lookup and
without being counted, and a known credential (valid, or revoked, expired, paused, in another
environment, from a disallowed address) is looked up and answered on its own, never counted. Only
an `UNCERTAIN` token — the filter cannot confirm it right now: Redis unreachable, or in the
embedded mode a miss between two reads of new rows — costs a lookup here, and only while its
address has had fewer than `FAILED_AUTH_LIMIT` such lookups find nothing this minute. Past that,
uncertain tokens from the address get 429 `rate_limited` until the filter can place them again
(`Retry-After`: the filter's next read, usually 1 s). Nothing here ever refuses a token the
filter knows, so one tenant's failures cannot lock another tenant out of a shared address.

GitHub, often cited for blocking by IP, in fact throttles the *account* whose credentials failed,
not the address they came from. Gatehouse's counterpart: a known credential's failures are its
own (answered with its own error, never counted), and unknown ones cost no lookup.

The count is per process (a local-memory cache): it must work exactly when the shared cache
cannot be reached, and a shared count would cost a round trip (in the embedded mode a database
write) per refused token, which is what it exists to prevent. With N processes an address gets
at most N × `FAILED_AUTH_LIMIT` uncertain lookups a minute. IPv6 addresses count by /64.
"""

from __future__ import annotations

import math
import time
from http import HTTPStatus

from django.core.cache.backends.locmem import LocMemCache
from django.http import HttpRequest, HttpResponse

from apikit.errors import error_response
from core.addresses import ip_bucket

FAILED_AUTH_LIMIT = 20
UNKNOWN_LIMIT = 20  # unknown tokens a minute per address (and process) answered 401; then 429
WINDOW_SECONDS = 60
GROUP = "gatehouse.api.failed_auth"
# This process's counts, one per address and minute; bounded, the oldest culled first.
_counts = LocMemCache("gatehouse-failed-auth", {"OPTIONS": {"MAX_ENTRIES": 50_000}})


def _window_key(request: HttpRequest) -> str:
    return f"{ip_bucket(GROUP, request)}:{int(time.time()) // WINDOW_SECONDS}"


def failed_auth_exhausted(request: HttpRequest) -> bool:
    """The client's address has used its uncertain lookups for this minute."""
    return (_counts.get(_window_key(request)) or 0) >= FAILED_AUTH_LIMIT


def failed_auth_record(request: HttpRequest) -> None:
    """One uncertain lookup from the client's address found nothing."""
    key = _window_key(request)
    if not _counts.add(key, 1, timeout=WINDOW_SECONDS):
        try:
            _counts.incr(key)
        except ValueError:  # expired in between
            _counts.add(key, 1, timeout=WINDOW_SECONDS)


def unknown_over_limit(request: HttpRequest) -> int | None:
    """Count one unknown token from the client's address; past `UNKNOWN_LIMIT` this minute, the
    seconds left in the minute (the 429's `Retry-After`), else None."""
    now = time.time()
    window = int(now) // WINDOW_SECONDS
    key = f"unknown:{ip_bucket(GROUP, request)}:{window}"
    if _counts.add(key, 1, timeout=WINDOW_SECONDS):
        count = 1
    else:
        try:
            count = _counts.incr(key)
        except ValueError:  # expired in between
            _counts.add(key, 1, timeout=WINDOW_SECONDS)
            count = 1
    if count <= UNKNOWN_LIMIT:
        return None
    return max(1, math.ceil((window + 1) * WINDOW_SECONDS - now))


def failed_auth_clear() -> None:
    """Forget this process's counts (tests)."""
    _counts.clear()


def too_many_failures(request: HttpRequest, retry_after: int) -> HttpResponse:
    return error_response(
        request, HTTPStatus.TOO_MANY_REQUESTS, "rate_limited",
        "Too many unrecognised credentials from your IP address; retry in "
        f"{retry_after} second{'s' if retry_after != 1 else ''}.",
        headers={"Retry-After": str(retry_after)},
    )
