"""Settings → Security: the owners' policies of SPEC §12 (two-factor, the credential policy), and
the keys that break the credential policy, each with the reason."""

from __future__ import annotations

from http import HTTPStatus

from django.contrib import messages
from django.core.exceptions import ValidationError
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.utils import timezone
from django.views.decorators.http import require_http_methods

from core.context import Actor, RequestContext

from .forms import WorkspacePoliciesForm
from .hooks import noncompliant_credentials
from .permissions import workspace_view
from .roles import Action
from .services import workspace_policies_update
from .sudo import sudo_required


def _initial(request: HttpRequest) -> dict:
    ws = request.workspace
    return {
        "require_two_factor": ws.require_two_factor,
        "app_access_policy": ws.app_access_policy,
        "trusted_app_domains": "\n".join(ws.trusted_app_domains or []),
        "key_max_lifetime_days": ws.key_max_lifetime_days or "",
        "key_environments": ws.key_environments,
        "production_keys_need_ip_allowlist": ws.production_keys_need_ip_allowlist,
        "oauth_collections_by_default": ws.oauth_collections_by_default,
        "credential_policy_mode": ws.credential_policy_mode,
    }


# Checkboxes: an unticked one is sent as nothing, so the form always decides them.
ALWAYS_SENT = {
    "require_two_factor", "key_environments", "production_keys_need_ip_allowlist",
    "oauth_collections_by_default",
}


def _changes(request: HttpRequest, cleaned: dict) -> dict:
    """What the form changes: the checkboxes always; the other policies only when the form sent
    them (left as they are otherwise)."""
    return {field: value for field, value in cleaned.items()
            if field in ALWAYS_SENT or (field in request.POST and value != "")}


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
    return render(request, "workspaces/workspace_policies.html", {
        "form": form,
        # SPEC §12: on tightening, the keys that break the policy, with the reasons.
        "noncompliant": noncompliant_credentials(
            workspace=request.workspace, now=timezone.now()
        ),
    }, status=status)
