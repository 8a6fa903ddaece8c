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
    return {"require_two_factor": ws.require_two_factor}


@require_http_methods(["GET", "POST"])
@workspace_view(Action.MANAGE_POLICIES)
@sudo_required
def workspace_policies(request: HttpRequest) -> HttpResponse:
    form = WorkspacePoliciesForm(request.POST or None, initial=_initial(request))
    if request.method == "POST" and form.is_valid():
        try:
            workspace_policies_update(
                workspace=request.workspace, changes=form.cleaned_data,
                actor=Actor.for_user(request.user), context=RequestContext.from_request(request),
            )
        except ValidationError as exc:
            form.add_error(None, exc)
        else:
            messages.success(request, "Policies saved.")
            return redirect("workspaces:policies", slug=request.workspace.slug)
    status = HTTPStatus.UNPROCESSABLE_ENTITY if form.is_bound else HTTPStatus.OK
    return render(request, "workspaces/workspace_policies.html", {"form": form}, status=status)
