"""Settings → Security: the owners' policies of SPEC §12."""

from __future__ import annotations

from http import HTTPStatus

from django.contrib import messages
from django.core.exceptions import ValidationError
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_http_methods

from core.context import Actor, RequestContext

from .forms import WorkspacePoliciesForm
from .permissions import workspace_view
from .roles import Action
from .services import workspace_policies_update
from .sudo import sudo_required


def _initial(request: HttpRequest) -> dict:
    ws = request.workspace
    return {"require_two_factor": ws.require_two_factor,
            "app_access_policy": ws.app_access_policy,
            "trusted_app_domains": "\n".join(ws.trusted_app_domains or [])}


def _changes(request: HttpRequest, cleaned: dict) -> dict:
    """What the form changes: an unticked checkbox is sent as nothing, so two-factor is always
    part of it; the other policies only when the form sent them (left as they are otherwise)."""
    return {field: value for field, value in cleaned.items()
            if field == "require_two_factor" or (field in request.POST and value != "")}


@require_http_methods(["GET", "POST"])
@workspace_view(Action.MANAGE_POLICIES)
@sudo_required
def workspace_policies(request: HttpRequest) -> HttpResponse:
    form = WorkspacePoliciesForm(request.POST or None, initial=_initial(request))
    if request.method == "POST" and form.is_valid():
        try:
            workspace_policies_update(
                workspace=request.workspace, changes=_changes(request, form.cleaned_data),
                actor=Actor.for_user(request.user), context=RequestContext.from_request(request),
            )
        except ValidationError as exc:
            if hasattr(exc, "error_dict"):
                for field, errors in exc.message_dict.items():
                    form.add_error(field if field in form.fields else None, errors)
            else:
                form.add_error(None, exc)
        else:
            messages.success(request, "Policies saved.")
            return redirect("workspaces:policies", slug=request.workspace.slug)
    status = HTTPStatus.UNPROCESSABLE_ENTITY if form.is_bound else HTTPStatus.OK
    return render(request, "workspaces/workspace_policies.html", {"form": form}, status=status)
