from __future__ import annotations

from http import HTTPStatus

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import ValidationError
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.http import require_POST

from core.context import Actor, RequestContext
from workspaces.permissions import WorkspaceRequest

from .forms import RoleChangeForm
from .hooks import overview_notices
from .models import Membership
from .permissions import workspace_view
from .roles import Action
from .selectors import workspaces_for_user
from .services import membership_change_role, security_alerts_acknowledge
from .sudo import sudo_required


@login_required
def home(request: HttpRequest) -> HttpResponse:
    workspaces = workspaces_for_user(request.user)
    if len(workspaces) >= 1:
        return redirect("workspaces:overview", slug=workspaces[0].slug)
    return render(request, "workspaces/no_workspace.html")


@workspace_view()
def overview(request: WorkspaceRequest) -> HttpResponse:
    notices = overview_notices(membership=request.membership)
    return render(request, "workspaces/workspace_overview.html", {"notices": notices})


@workspace_view()
def member_list(request: WorkspaceRequest) -> HttpResponse:
    members = (
        Membership.objects.for_workspace(request.workspace)
        .select_related("user")
        .order_by("user__email", "user__username")
    )
    return render(request, "workspaces/member_list.html", {"members": members})


@require_POST
@workspace_view(Action.MANAGE_MEMBERS)
@sudo_required
def member_change_role(request: WorkspaceRequest, membership_id: int) -> HttpResponse:
    membership = get_object_or_404(
        Membership.objects.for_workspace(request.workspace).select_related("user"), pk=membership_id
    )
    form = RoleChangeForm(request.POST)
    error = None
    if form.is_valid():
        try:
            membership = membership_change_role(
                membership=membership,
                role=form.cleaned_data["role"],
                actor=Actor.for_user(request.user),
                context=RequestContext.from_request(request),
            )
        except ValidationError as exc:
            error = exc.messages[0]
    else:
        error = "Choose one of the roles."
    if request.htmx:
        return render(
            request,
            "workspaces/member_list.html#member-row",
            {"m": membership, "error": error},
            status=HTTPStatus.OK if error is None else HTTPStatus.UNPROCESSABLE_ENTITY,
        )
    if error:
        messages.error(request, error)
    else:
        messages.success(request, f"{membership.user.get_username()} is now {membership.role}.")
    return redirect("workspaces:members", slug=request.workspace.slug)


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
