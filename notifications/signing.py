"""Webhook signatures, as Stripe signs (docs/webhooks.md).

`Gatehouse-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256(secret, "<t>.<raw body>")>`; during a
secret rotation's overlap there is one `v1=` per live secret, so a receiver holding either one
verifies. Receivers compare in constant time and refuse a `t` older than a few minutes (replay).
"""

from __future__ import annotations

import hashlib
import hmac

from core.ids import random_base62

SECRET_PREFIX = "whsec_"
HEADER = "Gatehouse-Signature"


def new_secret() -> str:
    """`whsec_` + 43 base62 characters (~256 bits): the shape core.credentials redacts from
    logs, audit metadata and error reports."""
    return SECRET_PREFIX + random_base62(43)


def signature(secret: str, timestamp: int, body: bytes) -> str:
    message = str(timestamp).encode() + b"." + body
    return hmac.new(secret.encode(), message, hashlib.sha256).hexdigest()


def signature_header(secrets_: list[str], timestamp: int, body: bytes) -> str:
    return ",".join([f"t={timestamp}", *(f"v1={signature(s, timestamp, body)}" for s in secrets_)])


def verify(header: str, body: bytes, secret: str, *, now: int, tolerance: int = 300) -> bool:
    """What a receiver does (the reference for docs/webhooks.md and the tests' receiver)."""
    timestamp, candidates = None, []
    for part in header.split(","):
        name, _, value = part.strip().partition("=")
        if name == "t" and value.isdigit():
            timestamp = int(value)
        elif name == "v1":
            candidates.append(value)
    if timestamp is None or abs(now - timestamp) > tolerance:
        return False
    expected = signature(secret, timestamp, body)
    return any(hmac.compare_digest(expected, c) for c in candidates)
