"""Sudo mode (SPEC §12): sensitive actions need a sign-in within the last
`GATEHOUSE_SUDO_SECONDS` (10 minutes).

`@sudo_required` goes under `@workspace_view` (membership and role are checked first, so a member
who may not act gets 403, not a password prompt). A POST without a recent sign-in is answered with
a prompt for the password (and the second factor when the person has one): a dialog for HTMX, a
page without JavaScript. The prompt's form posts the same request again, with the fields the
person had sent, plus the password; when it holds, the action runs — the person does not have to
start over. Django admin's equivalents ask the same through `SudoAdminMixin`.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps
from http import HTTPStatus
from typing import Any

from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django_htmx.http import reswap, retarget

from audit.signin import signin_is_recent, signin_reauthenticate
from audit.twofactor import two_factor_enabled

SUDO_FIELDS = ("sudo_password", "sudo_code")
_NOT_REPLAYED = {"csrfmiddlewaretoken", *SUDO_FIELDS}
TEMPLATE = "workspaces/sudo_prompt.html"


def sudo_prompt(request: HttpRequest, *, error: str = "") -> HttpResponse:
    """The request again as a form, with the password (and code) fields added."""
    carried = [(name, value) for name in request.POST if name not in _NOT_REPLAYED
               for value in request.POST.getlist(name)]
    context = {"action": request.get_full_path(), "carried": carried, "error": error,
               "needs_code": two_factor_enabled(request.user)}
    if request.htmx:
        response = render(request, f"{TEMPLATE}#sudo-dialog", {**context, "modal": True})
        return reswap(retarget(response, "#modal-root"), "innerHTML")
    return render(request, TEMPLATE, context, status=HTTPStatus.FORBIDDEN)


def sudo_check(request: HttpRequest) -> HttpResponse | None:
    """None when the request may go ahead (not a write, a recent sign-in, or the prompt's
    password just held); else the prompt to answer with."""
    if request.method in ("GET", "HEAD", "OPTIONS") or signin_is_recent(request):
        return None
    if "sudo_password" not in request.POST:
        return sudo_prompt(request)
    error = signin_reauthenticate(request, password=request.POST.get("sudo_password", ""),
                                  code=request.POST.get("sudo_code", ""))
    return None if error is None else sudo_prompt(request, error=error)


def sudo_required(view: Callable[..., HttpResponse] | None = None, *,
                  when: Callable[..., bool] | None = None) -> Callable:
    """`@sudo_required`, or `@sudo_required(when=lambda request, *args, **kwargs: …)` for an
    action that is sensitive only sometimes (a production key, not a development one)."""

    def decorator(view: Callable[..., HttpResponse]) -> Callable[..., HttpResponse]:
        @wraps(view)
        def wrapper(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
            if when is None or when(request, *args, **kwargs):
                prompt = sudo_check(request)
                if prompt is not None:
                    return prompt
            return view(request, *args, **kwargs)

        return wrapper

    return decorator(view) if view is not None else decorator


class SudoAdminMixin:
    """Django admin's writes (add, change, delete, bulk actions) ask for sudo mode like the
    dashboard's: a POST without a recent sign-in gets the prompt page, which posts it again."""

    def changeform_view(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        return sudo_check(request) or super().changeform_view(request, *args, **kwargs)

    def add_view(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        return sudo_check(request) or super().add_view(request, *args, **kwargs)

    def delete_view(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        return sudo_check(request) or super().delete_view(request, *args, **kwargs)

    def changelist_view(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        # Only an action is a write here (the search and filters are GETs).
        if request.method == "POST" and "action" in request.POST:
            prompt = sudo_check(request)
            if prompt is not None:
                return prompt
        return super().changelist_view(request, *args, **kwargs)
