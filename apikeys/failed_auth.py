"""The failed-authentication limit per client IP (SPEC §5): guessing keys is slow.

More than `FAILED_AUTH_RATE` (20 a minute) failed authentications from one client IP (IPv6: one
/64) and the IP is blocked until that minute's window ends: every credentialed request from it
is answered 429 `rate_limited` with `Retry-After`, whether or not its credential is valid, so a
guesser learns nothing from a blocked attempt (GitHub does the same). Valid traffic from that IP
is never counted and does not extend the block: it is held up at most until the window in
which the others' failures crossed the limit ends.

Counting uses django-ratelimit's core API (`get_usage`) on the shared cache, so the limit holds
across processes (exact on Redis; approximate on the embedded DatabaseCache, docs/operations.md).
Crossing the limit also writes a block marker that expires with the window: a valid request then
costs one cache read (`get`), not ratelimit's read-or-create, which would be a write per request.

Only failures that needed a lookup count. A credential refused from its shape alone (a
mistyped key, a bad checksum, an unknown prefix or scheme) cannot be a successful guess and is
answered without any I/O, cache included. If the cache is down, the limit fails open (logged):
abuse throttling must not take the API down with it.
"""

from __future__ import annotations

import functools
import ipaddress
import logging
import math
import time
from http import HTTPStatus

from django.core.cache import cache
from django.http import HttpRequest, HttpResponse
from django_ratelimit.core import get_usage

from .errors import error_response

logger = logging.getLogger("apikeys.gateway")

FAILED_AUTH_RATE = "20/m"
GROUP = "gatehouse.api.failed_auth"
_BLOCK_PREFIX = "gatehouse:failed-auth-block:"


def client_ip(request: HttpRequest) -> str | None:
    """The client's address as the WSGI server saw it. `X-Forwarded-For` is not trusted on its
    own; behind a proxy, REMOTE_ADDR must be made to carry the client (docs/operations.md)."""
    return request.META.get("REMOTE_ADDR") or None


def ip_bucket(group: str, request: HttpRequest) -> str:
    """IPv4 addresses alone, IPv6 addresses by /64 (one host usually owns a whole /64)."""
    ip = client_ip(request)
    return _bucket(ip) if ip else "unknown"


@functools.lru_cache(maxsize=4096)
def _bucket(ip: str) -> str:
    # Memoised: every credentialed API request asks (the block check), and parsing an address
    # showed up in the gateway's profile (~2% of an `apikey` request, docs/PERFORMANCE.md).
    try:
        address = ipaddress.ip_address(ip)
    except ValueError:
        return "unknown"
    if address.version == 6:
        return str(ipaddress.ip_network(f"{address}/64", strict=False).network_address)
    return str(address)


def failed_auth_record(request: HttpRequest) -> int | None:
    """Count one failed authentication from the client's IP. Returns the seconds to wait when
    this failure is over the limit (and blocks the IP until the window ends), else None."""
    try:
        usage = get_usage(
            request, group=GROUP, key=ip_bucket, rate=FAILED_AUTH_RATE, increment=True
        )
        if usage is None or not usage["should_limit"]:
            return None
        # django-ratelimit's window still holds at its last second (`time_left` == 0).
        retry_after = max(int(usage["time_left"]) + 1, 1)
        # A whole number of seconds: stored as a plain integer, so the gateway's one Redis
        # script (`apikeys.counters.gate_take`) can read it too.
        cache.set(
            _BLOCK_PREFIX + ip_bucket(GROUP, request), math.ceil(time.time() + retry_after),
            timeout=retry_after,
        )
        return retry_after
    except Exception:  # the cache is down: throttling fails open, the API stays up
        logger.warning("Failed-auth limit unavailable (cache error); not counting.", exc_info=True)
        return None


def failed_auth_block_key(request: HttpRequest) -> str:
    """The cache's own name for the client IP's block marker (for `gate_take`)."""
    return cache.make_key(_BLOCK_PREFIX + ip_bucket(GROUP, request))


def failed_auth_blocked(request: HttpRequest) -> int | None:
    """Seconds until the client's IP is unblocked, or None when it is not blocked."""
    try:
        until = cache.get(_BLOCK_PREFIX + ip_bucket(GROUP, request))
    except Exception:  # the cache is down: throttling fails open, the API stays up
        logger.warning("Failed-auth limit unavailable (cache error); not checking.", exc_info=True)
        return None
    if until is None:
        return None
    remaining = until - time.time()
    return max(math.ceil(remaining), 1) if remaining > 0 else None


def too_many_failures(request: HttpRequest, retry_after: int) -> HttpResponse:
    return error_response(
        request, HTTPStatus.TOO_MANY_REQUESTS, "rate_limited",
        f"Too many failed authentications from your IP address; retry in {retry_after} seconds.",
        headers={"Retry-After": str(retry_after)},
    )
