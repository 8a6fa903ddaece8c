from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.http import require_POST

from core.context import Actor
from workspaces.permissions import WorkspaceRequest

from .permissions import workspace_view
from .roles import Action
from .selectors import workspaces_for_user
from .services import security_alerts_acknowledge


@login_required
def home(request: HttpRequest) -> HttpResponse:
    workspaces = workspaces_for_user(request.user)
    if len(workspaces) >= 1:
        return redirect("workspaces:overview", slug=workspaces[0].slug)
    return render(request, "workspaces/no_workspace.html")


@workspace_view()
def overview(request: WorkspaceRequest) -> HttpResponse:
    return render(request, "workspaces/workspace_overview.html")


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
