"""A new API key's token carried across the no-JavaScript redirect to the key list, once
(`core.reveal`: a one-time pad in the session, the token XOR the pad in a cookie)."""

from __future__ import annotations

import hmac

from django.http import HttpRequest, HttpResponse
from django.urls import reverse

from core import reveal

from .models import ApiKey
from .tokens import token_digest

SESSION_KEY = "apikeys:reveal"
COOKIE_NAME = "gatehouse_reveal"
SLOT = reveal.RevealSlot(session_key=SESSION_KEY, cookie_name=COOKIE_NAME)


def _cookie_path(request: HttpRequest) -> str:
    return reverse("apikeys:list", kwargs={"slug": request.workspace.slug})


def reveal_stash(request: HttpRequest, response: HttpResponse, *, key: ApiKey, token: str) -> None:
    reveal.reveal_stash(
        request, response, slot=SLOT, path=_cookie_path(request), subject=key.public_id,
        secret=token,
    )


def reveal_pop(request: HttpRequest, keys: list[ApiKey]) -> tuple[ApiKey, str] | None:
    """The (key, token) stashed for this page, once; None when there is none or it does not check
    out. `keys` are the keys the page lists; the stashed key must be one of them."""
    by_id = {k.public_id: k for k in keys}

    def check(subject: str, token: str) -> bool:
        key = by_id.get(subject)
        return key is not None and hmac.compare_digest(token_digest(token), key.digest)

    revealed = reveal.reveal_pop(request, slot=SLOT, check=check)
    return None if revealed is None else (by_id[revealed[0]], revealed[1])


def reveal_forget(request: HttpRequest, response: HttpResponse) -> None:
    reveal.reveal_forget(request, response, slot=SLOT, path=_cookie_path(request))
