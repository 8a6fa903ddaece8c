"""The one permission helper for workspace pages: `@workspace_view(Action.…)`.

It resolves `/w/<slug>/…` to the member's workspace (404 for non-members), refuses with 403 when the
member's role lacks the action, sends a member without two-factor sign-in to enrol when the
workspace requires it, and sets `request.workspace` and `request.membership`.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps
from typing import TYPE_CHECKING, Any
from urllib.parse import urlencode

from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.urls import reverse
from django_htmx.http import HttpResponseClientRedirect

from audit.twofactor import two_factor_enabled

from .roles import Action, role_can
from .selectors import membership_for
from .services import membership_touch

if TYPE_CHECKING:
    from django.contrib.auth.base_user import AbstractBaseUser
    from django_htmx.middleware import HtmxDetails

    from .models import Membership, Workspace


class WorkspaceRequest(HttpRequest):
    """The request a `@workspace_view` view receives: a signed-in member, their workspace and
    membership, and django-htmx's details. A type for annotations; never instantiated."""

    user: AbstractBaseUser
    workspace: Workspace
    membership: Membership
    htmx: HtmxDetails


def _enrol_first(request: HttpRequest) -> HttpResponse:
    """The workspace requires two-factor sign-in and this member has none: enrol, then come back."""
    url = f"{reverse('audit:two_factor_enrol')}?{urlencode({'next': request.get_full_path()})}"
    return HttpResponseClientRedirect(url) if request.htmx else HttpResponseRedirect(url)


def workspace_view(action: Action = Action.VIEW_DASHBOARD) -> Callable:
    def decorator(view: Callable[..., HttpResponse]) -> Callable[..., HttpResponse]:
        @login_required
        @wraps(view)
        def wrapper(request: HttpRequest, slug: str, *args: Any, **kwargs: Any) -> HttpResponse:
            membership = membership_for(user=request.user, slug=slug)
            if not role_can(membership.role, action):
                raise PermissionDenied
            if membership.workspace.require_two_factor and not two_factor_enabled(request.user):
                return _enrol_first(request)
            request.membership = membership
            request.workspace = membership.workspace
            if request.method == "GET":
                membership_touch(membership=membership)  # sign-in lands here next time
            return view(request, *args, **kwargs)

        return wrapper

    return decorator


def member_can(request: HttpRequest, action: Action) -> bool:
    membership = getattr(request, "membership", None)
    return membership is not None and role_can(membership.role, action)
