"""What the session knows about the sign-in: a password step waiting for its second factor, and
when the person last proved who they are (sudo mode, SPEC §12).

- After a right password for an account with two-factor, nobody is signed in yet: the session
  holds a *pending* marker (user, backend, door, where to go), valid for `PENDING_SECONDS`, and
  `/accounts/login/verify/` completes the sign-in with a code.
- Every completed sign-in, and every re-authentication asked by sudo mode, stamps the session
  with the time; `signin_is_recent` says whether it is within `GATEHOUSE_SUDO_SECONDS`.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

import django_otp
from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth import login as auth_login

from core.context import Actor, RequestContext

from .login_throttle import login_blocked, login_failed
from .services import audit_login_failed, audit_reauthenticated
from .twofactor import second_factor_verify, two_factor_enabled

if TYPE_CHECKING:
    from django.contrib.auth.base_user import AbstractBaseUser
    from django.http import HttpRequest
    from django_otp.models import Device

PENDING_KEY = "gatehouse.signin_pending"
RECENT_KEY = "gatehouse.signed_in_at"
PENDING_SECONDS = 300


def signin_pending_start(request: HttpRequest, *, user: AbstractBaseUser, door: str,
                         next_url: str) -> None:
    request.session[PENDING_KEY] = {
        "user": user.pk, "backend": getattr(user, "backend", ""), "door": door,
        "next": next_url, "at": time.time(),
    }


def signin_pending(request: HttpRequest) -> tuple[AbstractBaseUser, dict[str, Any]] | None:
    """The user waiting for the code step and the marker, or None (none, expired or gone)."""
    pending = request.session.get(PENDING_KEY)
    if not isinstance(pending, dict) or time.time() - pending.get("at", 0) > PENDING_SECONDS:
        return None
    user = get_user_model()._default_manager.filter(pk=pending.get("user"), is_active=True).first()
    return (user, pending) if user is not None else None


def signin_complete(request: HttpRequest, *, user: AbstractBaseUser, backend: str | None,
                    device: Device | None) -> None:
    """Sign `user` in (a new session key), remember the device that verified them, stamp the
    time. The pending marker goes with the old session."""
    request.session.pop(PENDING_KEY, None)
    auth_login(request, user, backend=backend or None)
    if device is not None:
        django_otp.login(request, device)
    signin_mark_recent(request)


def signin_mark_recent(request: HttpRequest) -> None:
    request.session[RECENT_KEY] = time.time()


def signin_is_recent(request: HttpRequest) -> bool:
    stamp = request.session.get(RECENT_KEY)
    return isinstance(stamp, int | float) and 0 <= time.time() - stamp <= (
        settings.GATEHOUSE_SUDO_SECONDS
    )


def signin_reauthenticate(request: HttpRequest, *, password: str, code: str) -> str | None:
    """Sudo mode's check: the signed-in person's password, and their second factor when they have
    one. None when it holds (the session is stamped recent, `user.reauthenticated`), else the
    message to show. Throttled and recorded like a sign-in (`sudo_invalid_credentials`)."""
    user = request.user
    username = user.get_username()
    context = RequestContext.from_request(request)
    if login_blocked(request, username) is not None:
        return "Too many failed sign-ins. Wait a few minutes and try again."
    ok = bool(password) and user.check_password(password)
    device = None
    if ok and two_factor_enabled(user):
        device = second_factor_verify(user=user, code=code, actor=Actor.for_user(user),
                                      context=context)
        ok = device is not None
    if not ok:
        login_failed(request, username)
        audit_login_failed(username=username, reason="sudo_invalid_credentials", context=context)
        return "That did not match. Enter your password" + (
            " and a current code from your app." if two_factor_enabled(user) else "."
        )
    if device is not None:
        django_otp.login(request, device)
    signin_mark_recent(request)
    audit_reauthenticated(user=user, context=context)
    return None
