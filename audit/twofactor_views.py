"""Two-factor pages: the code step of sign-in (both doors), and the member's own two-factor
settings (enrol with a QR code, recovery codes shown once, turn off)."""

from __future__ import annotations

from http import HTTPStatus

import django_otp
import segno
from django.contrib.auth.decorators import login_not_required, login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.utils.http import url_has_allowed_host_and_scheme
from django.utils.safestring import mark_safe
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_http_methods, require_POST

from core.context import Actor, RequestContext

from .forms import SecondFactorForm
from .login_throttle import login_blocked, login_failed
from .models import RecoveryCodeDevice
from .services import audit_login_failed, audit_login_succeeded
from .signin import signin_complete, signin_pending
from .twofactor import (
    recovery_codes_regenerate,
    recovery_codes_remaining,
    second_factor_verify,
    totp_config_uri,
    totp_enrolment_confirm,
    totp_enrolment_pending,
    totp_enrolment_start,
    totp_secret_base32,
    two_factor_disable,
    two_factor_enabled,
)

WRONG_CODE = "That code is not right, or it was already used. Enter the next code from your app."


def _safe_next(request: HttpRequest) -> str:
    candidate = request.POST.get("next") or request.GET.get("next") or ""
    ok = url_has_allowed_host_and_scheme(candidate, allowed_hosts={request.get_host()},
                                         require_https=request.is_secure())
    return candidate if ok else ""


@never_cache
@login_not_required
def login_verify(request: HttpRequest) -> HttpResponse:
    """`/accounts/login/verify/`: the second step of a sign-in whose password was right. Throttled
    and recorded like the password step (a wrong code is a failed sign-in, `invalid_code`)."""
    pending = signin_pending(request)
    if pending is None:
        return redirect("login")
    user, marker = pending
    form = SecondFactorForm(request.POST or None)
    if request.method == "POST":
        context = RequestContext.from_request(request, door=marker["door"])
        retry_after = login_blocked(request, user.get_username())
        if retry_after is not None:
            # Refused before the code is checked, like the password step (audit.views.LoginView).
            response = render(request, "registration/login_verify.html", {
                "form": SecondFactorForm(),
                "refusal": "Too many failed sign-ins. Wait a few minutes and try again.",
            }, status=HTTPStatus.TOO_MANY_REQUESTS)
            response["Retry-After"] = str(retry_after)
            return response
        code = form.cleaned_data["code"] if form.is_valid() else ""
        device = second_factor_verify(user=user, code=code, actor=Actor.for_user(user),
                                      context=context)
        if device is not None:
            signin_complete(request, user=user, backend=marker.get("backend"), device=device)
            method = "recovery_code" if isinstance(device, RecoveryCodeDevice) else "totp"
            audit_login_succeeded(user=user, context=context, second_factor=method)
            return redirect(marker["next"])
        login_failed(request, user.get_username())
        audit_login_failed(username=user.get_username(), reason="invalid_code", context=context)
        form.errors.pop("code", None)
        form.add_error("code", WRONG_CODE)
    return render(request, "registration/login_verify.html", {"form": form})


def _context(request: HttpRequest) -> dict:
    return {"actor": Actor.for_user(request.user), "context": RequestContext.from_request(request)}


@never_cache
@login_required
def two_factor_detail(request: HttpRequest) -> HttpResponse:
    """`/accounts/two-factor/`: whether two-factor is on, and what the member can do about it."""
    return render(request, "audit/two_factor_detail.html", {
        "enabled": two_factor_enabled(request.user),
        "remaining": recovery_codes_remaining(request.user),
        "next": _safe_next(request),
    })


@never_cache
@login_required
def two_factor_enrol(request: HttpRequest) -> HttpResponse:
    """`/accounts/two-factor/enrol/`: a new secret as a QR code (SVG, drawn here) and as text, and
    the code that proves the app has it. The right code turns two-factor on and shows the ten
    recovery codes, once."""
    device = totp_enrolment_pending(request.user)
    if device is None or (request.method == "GET" and request.GET.get("restart")):
        device = totp_enrolment_start(user=request.user, **_context(request))
    form = SecondFactorForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        codes = totp_enrolment_confirm(device=device, code=form.cleaned_data["code"],
                                       **_context(request))
        if codes is not None:
            device.refresh_from_db()
            django_otp.login(request, device)  # this session proved it holds the device
            return _recovery_codes(request, codes)
        form.add_error("code", WRONG_CODE)
    uri = totp_config_uri(device)
    qr_svg = segno.make(uri, error="m").svg_inline(scale=4, title="QR code for your app")
    return render(request, "audit/two_factor_enrol.html", {
        "form": form,
        "qr_svg": mark_safe(qr_svg),  # noqa: S308 — segno's SVG of our own URI, nothing from input
        "secret": totp_secret_base32(device),
        "next": _safe_next(request),
    })


def _recovery_codes(request: HttpRequest, codes: list[str]) -> HttpResponse:
    response = render(request, "audit/recovery_codes.html", {"codes": codes,
                                                             "next": _safe_next(request)})
    response["Cache-Control"] = "no-store"
    return response


@require_POST
@login_required
def recovery_codes_new(request: HttpRequest) -> HttpResponse:
    if not two_factor_enabled(request.user):
        return redirect("audit:two_factor")
    return _recovery_codes(request, recovery_codes_regenerate(user=request.user,
                                                              **_context(request)))


@require_http_methods(["GET", "POST"])
@login_required
def two_factor_remove(request: HttpRequest) -> HttpResponse:
    """GET: the confirmation (the page with the shared dialog in place); POST: turn it off."""
    if request.method == "GET":
        if not two_factor_enabled(request.user):
            return redirect("audit:two_factor")
        if request.htmx:
            return render(request, "audit/two_factor_detail.html#remove-dialog", {"modal": True})
        return render(request, "audit/two_factor_detail.html",
                      {"enabled": True, "confirm_remove": True,
                       "remaining": recovery_codes_remaining(request.user)})
    two_factor_disable(user=request.user, **_context(request))
    request.session.pop(django_otp.DEVICE_ID_SESSION_KEY, None)
    return redirect("audit:two_factor")
