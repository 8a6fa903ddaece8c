"""The client's address, and the bucket limits count it in (IPv6 by /64)."""

from __future__ import annotations

import functools
import ipaddress

from django.http import HttpRequest


def client_ip(request: HttpRequest) -> str | None:
    """The client's address as the WSGI server saw it. `X-Forwarded-For` is not trusted on its
    own; behind a proxy, REMOTE_ADDR must be made to carry the client (docs/operations.md)."""
    return request.META.get("REMOTE_ADDR") or None


def ip_bucket(group: str, request: HttpRequest) -> str:
    """A django-ratelimit key: IPv4 addresses alone, IPv6 addresses by /64 (one host usually owns
    a whole /64); "unknown" without an address."""
    ip = client_ip(request)
    return address_bucket(ip) if ip else "unknown"


@functools.lru_cache(maxsize=4096)
def address_bucket(ip: str) -> str:
    """`ip`'s bucket. Memoised: every credentialed API request asks, and parsing an address showed
    up in the gateway's profile (docs/PERFORMANCE.md)."""
    try:
        address = ipaddress.ip_address(ip)
    except ValueError:
        return "unknown"
    if address.version == 6:
        return str(ipaddress.ip_network(f"{address}/64", strict=False).network_address)
    return str(address)
