"""Carrying a new token across the no-JavaScript redirect (POST → 303 → list page) exactly once.

With JavaScript the token is in the one HTMX response that created it. Without it, the form POST
redirects, and the token has to reach the page after the redirect without ever being stored
(SPEC §3: never in the database, a cache or a URL). So it is split in two halves that are each
worthless alone: a one-time pad kept in the session (which lives in the database) and the token
XOR that pad in a short-lived HttpOnly cookie scoped to the list page. The list page joins them
once, checks the result against the key's digest, and forgets both; a reload finds neither.
"""

from __future__ import annotations

import base64
import hmac
import secrets

from django.http import HttpRequest, HttpResponse
from django.urls import reverse

from .models import ApiKey
from .tokens import token_digest

SESSION_KEY = "apikeys:reveal"
COOKIE_NAME = "gatehouse_reveal"
COOKIE_MAX_AGE = 300  # seconds: long enough for a slow redirect, short enough to be forgotten


def _xor(data: bytes, pad: bytes) -> bytes:
    return bytes(a ^ b for a, b in zip(data, pad, strict=True))


def _cookie_path(request: HttpRequest) -> str:
    return reverse("apikeys:list", kwargs={"slug": request.workspace.slug})


def reveal_stash(request: HttpRequest, response: HttpResponse, *, key: ApiKey, token: str) -> None:
    raw = token.encode("ascii")
    pad = secrets.token_bytes(len(raw))
    request.session[SESSION_KEY] = {
        "key": key.public_id,
        "pad": base64.urlsafe_b64encode(pad).decode(),
    }
    response.set_cookie(
        COOKIE_NAME,
        base64.urlsafe_b64encode(_xor(raw, pad)).decode(),
        max_age=COOKIE_MAX_AGE,
        path=_cookie_path(request),
        secure=request.is_secure(),
        httponly=True,
        samesite="Strict",
    )


def reveal_pop(request: HttpRequest, keys: list[ApiKey]) -> tuple[ApiKey, str] | None:
    """The (key, token) stashed for this page, once; None when there is none or it does not check
    out. `keys` are the keys the page lists; the stashed key must be one of them."""
    stash = request.session.pop(SESSION_KEY, None)
    cipher = request.COOKIES.get(COOKIE_NAME)
    if not stash or not cipher:
        return None
    key = next((k for k in keys if k.public_id == stash.get("key")), None)
    if key is None:
        return None
    try:
        pad = base64.urlsafe_b64decode(stash["pad"])
        token = _xor(base64.urlsafe_b64decode(cipher), pad).decode("ascii")
    except (KeyError, ValueError, UnicodeDecodeError):
        return None
    if not hmac.compare_digest(token_digest(token), key.digest):
        return None
    return key, token


def reveal_forget(request: HttpRequest, response: HttpResponse) -> None:
    """Expire the cookie half (the session half is already popped)."""
    if COOKIE_NAME in request.COOKIES:
        response.delete_cookie(COOKIE_NAME, path=_cookie_path(request), samesite="Strict")
