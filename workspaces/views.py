from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils import timezone
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.http import require_POST

from core.context import Actor
from core.counters import CounterUnavailable
from workspaces.permissions import WorkspaceRequest

from .hooks import overview_notices
from .overview import overview_attention
from .permissions import workspace_view
from .quotas import quota_usage_today
from .roles import Action
from .selectors import last_used_workspace
from .services import security_alerts_acknowledge


@login_required
def home(request: HttpRequest) -> HttpResponse:
    """Where sign-in lands: the workspace the member used last (else the first by name)."""
    workspace = last_used_workspace(request.user)
    if workspace is not None:
        return redirect("workspaces:overview", slug=workspace.slug)
    return render(request, "workspaces/no_workspace.html")


@workspace_view()
def overview(request: WorkspaceRequest) -> HttpResponse:
    try:
        budgets = quota_usage_today(workspace_id=request.workspace.pk,
                                    plan=request.workspace.plan, now=timezone.now())
    except CounterUnavailable:
        budgets = None  # the page still shows; the Usage page says more
    for budget in budgets or []:
        budget["percent"] = (min(100, budget["used"] * 100 // budget["limit"])
                             if budget["limit"] else None)
    return render(request, "workspaces/workspace_overview.html", {
        "attention": overview_attention(request.workspace),
        "notices": overview_notices(membership=request.membership),
        "budgets": budgets,
    })


@workspace_view()
def settings_index(request: WorkspaceRequest) -> HttpResponse:
    """`/w/<slug>/settings/`: the first settings page, API Keys."""
    return redirect("apikeys:list", slug=request.workspace.slug)


@require_POST
@workspace_view(Action.MANAGE_KEYS)
def security_alerts_dismiss(request: WorkspaceRequest) -> HttpResponse:
    """An admin acknowledges the workspace's security alerts: the banner goes for everyone."""
    count = security_alerts_acknowledge(
        workspace=request.workspace, actor=Actor.for_user(request.user)
    )
    if count:
        messages.success(request, "Security alert acknowledged.")
    next_url = request.POST.get("next", "")
    if not url_has_allowed_host_and_scheme(
        next_url, allowed_hosts={request.get_host()}, require_https=request.is_secure()
    ):
        next_url = reverse("workspaces:overview", kwargs={"slug": request.workspace.slug})
    return redirect(next_url)
