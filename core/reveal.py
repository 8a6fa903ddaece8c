"""Carrying a one-time secret across the no-JavaScript redirect (POST → 303 → GET) exactly once.

With JavaScript a new secret (an API key's token, an OAuth app's client secret) is in the one
HTMX response that created it. Without it, the form POST redirects, and the secret has to reach the
page after the redirect without ever being stored (SPEC §3: never in the database, a cache or a
URL). So it is split in two halves that are each worthless alone: a one-time pad kept in the
session (which lives in the database) and the secret XOR that pad in a short-lived HttpOnly cookie
scoped to the page it is shown on. That page joins them once, checks the result against the
stored hash of the secret (`check`), and forgets both; a reload finds neither.

A `slot` names one use (its session key and cookie); `path` is the page that shows the secret.
"""

from __future__ import annotations

import base64
import secrets
from collections.abc import Callable
from dataclasses import dataclass

from django.http import HttpRequest, HttpResponse

COOKIE_MAX_AGE = 300  # seconds: long enough for a slow redirect, short enough to be forgotten


@dataclass(frozen=True)
class RevealSlot:
    session_key: str
    cookie_name: str


def _xor(data: bytes, pad: bytes) -> bytes:
    return bytes(a ^ b for a, b in zip(data, pad, strict=True))


def reveal_stash(
    request: HttpRequest, response: HttpResponse, *, slot: RevealSlot, path: str, subject: str,
    secret: str,
) -> None:
    """Stash `secret` (ASCII) for the next GET of `path`; `subject` names what it belongs to."""
    raw = secret.encode("ascii")
    pad = secrets.token_bytes(len(raw))
    request.session[slot.session_key] = {
        "key": subject,
        "pad": base64.urlsafe_b64encode(pad).decode(),
    }
    response.set_cookie(
        slot.cookie_name,
        base64.urlsafe_b64encode(_xor(raw, pad)).decode(),
        max_age=COOKIE_MAX_AGE,
        path=path,
        secure=request.is_secure(),
        httponly=True,
        samesite="Strict",
    )


def reveal_pop(
    request: HttpRequest, *, slot: RevealSlot, check: Callable[[str, str], bool]
) -> tuple[str, str] | None:
    """(subject, secret) stashed for this page, once; None when there is none or
    `check(subject, secret)` refuses it (a tampered or stale half)."""
    stash = request.session.pop(slot.session_key, None)
    cipher = request.COOKIES.get(slot.cookie_name)
    if not stash or not cipher or not isinstance(stash, dict):
        return None
    subject = stash.get("key")
    try:
        pad = base64.urlsafe_b64decode(stash["pad"])
        secret = _xor(base64.urlsafe_b64decode(cipher), pad).decode("ascii")
    except (KeyError, TypeError, ValueError, UnicodeDecodeError):
        return None
    if not isinstance(subject, str) or not check(subject, secret):
        return None
    return subject, secret


def reveal_forget(
    request: HttpRequest, response: HttpResponse, *, slot: RevealSlot, path: str
) -> None:
    """Expire the cookie half (the session half is already popped)."""
    if slot.cookie_name in request.COOKIES:
        response.delete_cookie(slot.cookie_name, path=path, samesite="Strict")
