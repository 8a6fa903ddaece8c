"""Members, invitations and the plan (SPEC §2, §12): what owners manage.

Every change asks first (a dialog with JavaScript, a page without it), answers a plain form with
a redirect, and goes through the audited service in `workspaces.services`. Removing a member,
changing a role and changing the plan or overage need sudo mode (a recent sign-in); inviting,
resending and cancelling do not (nobody gains access until the invited person accepts).
"""

from __future__ import annotations

from http import HTTPStatus

from django.contrib import messages
from django.contrib.auth import get_user_model, login
from django.core.exceptions import ValidationError
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils.cache import patch_vary_headers
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_http_methods, require_POST
from django_htmx.http import HttpResponseClientRedirect, reswap, retarget, trigger_client_event

from audit.services import audit_login_succeeded
from audit.signin import signin_mark_recent
from core.context import Actor, RequestContext
from workspaces.permissions import WorkspaceRequest

from .forms import AcceptAsNewUserForm, InvitationForm, PlanChangeForm, RoleChangeForm
from .models import Invitation, Membership, Plan
from .permissions import member_can, workspace_view
from .roles import Action, Role, role_can
from .services import (
    INVITATION_UNUSABLE,
    invitation_accept,
    invitation_accept_as_new_user,
    invitation_cancel,
    invitation_create,
    invitation_for_token,
    invitation_resend,
    membership_change_role,
    membership_remove,
    workspace_change_plan,
    workspace_set_overage,
)
from .sudo import sudo_required

PAGE = "workspaces/member_list.html"
PLAN_PAGE = "workspaces/plan.html"
CLOSE_DIALOG = "dialog-close"  # static/js/app.js closes the open dialog


def _origin(request: HttpRequest) -> str:
    return request.build_absolute_uri("/").rstrip("/")


def _members(request: WorkspaceRequest) -> list[Membership]:
    return list(
        Membership.objects.for_workspace(request.workspace)
        .select_related("user")
        .order_by("user__email", "user__username")
    )


def _page_context(request: WorkspaceRequest, **extra: object) -> dict:
    context: dict = {"members": _members(request), "roles": Role.choices}
    if member_can(request, Action.MANAGE_MEMBERS):
        context["invitations"] = list(
            Invitation.objects.for_workspace(request.workspace).pending()
            .select_related("invited_by").order_by("email")
        )
        context.setdefault("invite_form", InvitationForm())
    return {**context, **extra}


def _to_members(request: WorkspaceRequest) -> HttpResponse:
    url = reverse("workspaces:members", kwargs={"slug": request.workspace.slug})
    return HttpResponseClientRedirect(url) if request.htmx else redirect(url)


def _dialog(request: WorkspaceRequest, dialog: str, *, status: int = HTTPStatus.OK,
            **context: object) -> HttpResponse:
    """A confirmation: into `#modal-root` with htmx, else the members page with it in place."""
    context["dialog"] = dialog
    if request.htmx:
        response = render(request, f"{PAGE}#member-dialog", {**context, "modal": True},
                          status=status)
        response = reswap(retarget(response, "#modal-root"), "innerHTML")
    else:
        response = render(request, PAGE, _page_context(request, **context), status=status)
    patch_vary_headers(response, ["HX-Request"])
    return response


def _get_membership(request: WorkspaceRequest, membership_id: int) -> Membership:
    return get_object_or_404(
        Membership.objects.for_workspace(request.workspace).select_related("user"),
        pk=membership_id,
    )


def _get_invitation(request: WorkspaceRequest, invitation_id: int) -> Invitation:
    return get_object_or_404(
        Invitation.objects.for_workspace(request.workspace).pending(), pk=invitation_id
    )


@workspace_view()
def member_list(request: WorkspaceRequest) -> HttpResponse:
    return render(request, PAGE, _page_context(request))


def _confirmed(request: HttpRequest, *args: object, **kwargs: object) -> bool:
    return request.POST.get("confirmed") == "1"


@require_POST
@workspace_view(Action.MANAGE_MEMBERS)
@sudo_required(when=_confirmed)
def member_change_role(request: WorkspaceRequest, membership_id: int) -> HttpResponse:
    """First POST (the row's select): the confirmation; the confirmed POST changes the role."""
    membership = _get_membership(request, membership_id)
    form = RoleChangeForm(request.POST)
    if not form.is_valid():
        messages.error(request, "Choose one of the roles.")
        return _to_members(request)
    role = form.cleaned_data["role"]
    if role == membership.role:
        if request.htmx:
            return render(request, f"{PAGE}#member-row", {"m": membership, "roles": Role.choices})
        return _to_members(request)
    if not _confirmed(request):
        return _dialog(request, "role", member=membership, new_role=Role(role))
    try:
        membership = membership_change_role(
            membership=membership, role=role, actor=Actor.for_user(request.user),
            context=RequestContext.from_request(request),
        )
    except ValidationError as exc:
        return _dialog(request, "role", member=membership, new_role=Role(role),
                       error=exc.messages[0], status=HTTPStatus.UNPROCESSABLE_ENTITY)
    if membership.user_id == request.user.pk and not member_can_manage(membership):
        messages.success(request, f"Saved: you are now {membership.get_role_display()}.")
        url = reverse("workspaces:members", kwargs={"slug": request.workspace.slug})
        return HttpResponseClientRedirect(url) if request.htmx else redirect(url)
    if request.htmx:
        response = render(request, f"{PAGE}#member-row",
                          {"m": membership, "roles": Role.choices, "saved": True})
        response = reswap(retarget(response, f"#member-{membership.pk}"), "outerHTML")
        return trigger_client_event(response, CLOSE_DIALOG, after="swap")
    messages.success(
        request, f"Saved: {membership.user.get_username()} is now "
                 f"{membership.get_role_display()}."
    )
    return _to_members(request)


def member_can_manage(membership: Membership) -> bool:
    return role_can(membership.role, Action.MANAGE_MEMBERS)


@require_http_methods(["GET", "POST"])
@workspace_view(Action.MANAGE_MEMBERS)
@sudo_required
def member_remove(request: WorkspaceRequest, membership_id: int) -> HttpResponse:
    """GET: the confirmation; POST: remove (their sessions lose the workspace at once — every
    page checks the membership — and their OAuth grants there end)."""
    membership = _get_membership(request, membership_id)
    if request.method == "GET":
        return _dialog(request, "remove", member=membership)
    try:
        membership_remove(
            membership=membership, actor=Actor.for_user(request.user),
            context=RequestContext.from_request(request),
        )
    except ValidationError as exc:
        return _dialog(request, "remove", member=membership, error=exc.messages[0],
                       status=HTTPStatus.UNPROCESSABLE_ENTITY)
    if membership.user_id == request.user.pk:
        messages.success(request, f"You left {request.workspace.name}.")
        url = reverse("workspaces:home")
        return HttpResponseClientRedirect(url) if request.htmx else redirect(url)
    messages.success(request, f"Removed {membership.user.get_username()} from the workspace.")
    return _to_members(request)


@require_POST
@workspace_view(Action.MANAGE_MEMBERS)
def invitation_new(request: WorkspaceRequest) -> HttpResponse:
    form = InvitationForm(request.POST)
    if form.is_valid():
        try:
            invitation, _token = invitation_create(
                workspace=request.workspace, email=form.cleaned_data["email"],
                role=form.cleaned_data["role"], origin=_origin(request),
                actor=Actor.for_user(request.user), context=RequestContext.from_request(request),
            )
        except ValidationError as exc:
            for field, errors in exc.message_dict.items():
                form.add_error(field if field in form.fields else None, errors)
        else:
            messages.success(
                request, f"Invitation sent to {invitation.email} "
                         f"(valid until {invitation.expires_at:%Y-%m-%d %H:%M} UTC)."
            )
            return _to_members(request)
    if request.htmx:
        response = render(request, f"{PAGE}#invite-form", {"invite_form": form},
                          status=HTTPStatus.UNPROCESSABLE_ENTITY)
        return response
    return render(request, PAGE, _page_context(request, invite_form=form),
                  status=HTTPStatus.UNPROCESSABLE_ENTITY)


@require_POST
@workspace_view(Action.MANAGE_MEMBERS)
def invitation_resend_view(request: WorkspaceRequest, invitation_id: int) -> HttpResponse:
    invitation = _get_invitation(request, invitation_id)
    try:
        invitation, _token = invitation_resend(
            invitation=invitation, origin=_origin(request), actor=Actor.for_user(request.user),
            context=RequestContext.from_request(request),
        )
    except ValidationError as exc:
        messages.error(request, exc.messages[0])
    else:
        messages.success(request, f"Sent a new link to {invitation.email}; the old one no "
                                  "longer works.")
    return _to_members(request)


@require_http_methods(["GET", "POST"])
@workspace_view(Action.MANAGE_MEMBERS)
def invitation_cancel_view(request: WorkspaceRequest, invitation_id: int) -> HttpResponse:
    invitation = _get_invitation(request, invitation_id)
    if request.method == "GET":
        return _dialog(request, "cancel", invitation=invitation)
    try:
        invitation_cancel(invitation=invitation, actor=Actor.for_user(request.user),
                          context=RequestContext.from_request(request))
    except ValidationError as exc:
        messages.error(request, exc.messages[0])
    else:
        messages.success(request, f"Cancelled the invitation of {invitation.email}.")
    return _to_members(request)


# --- Accepting ---------------------------------------------------------------------------------


@never_cache
@require_http_methods(["GET", "POST"])
def invitation_accept_view(request: HttpRequest, token: str) -> HttpResponse:
    """The link in the email. Signed in as the invited address: accept. No account for it:
    choose a password (an account is made and signed in). Else: sign in first."""
    invitation = invitation_for_token(token)
    if invitation is None:
        return render(request, "workspaces/invitation_accept.html", {"error": INVITATION_UNUSABLE},
                      status=HTTPStatus.NOT_FOUND)
    has_account = get_user_model().objects.filter(email__iexact=invitation.email).exists()
    context: dict = {"invitation": invitation, "has_account": has_account,
                     "login_url": f"{reverse('login')}?next={request.path}"}
    if not request.user.is_authenticated and not has_account:
        context["form"] = form = AcceptAsNewUserForm(request.POST or None)
    if request.method == "GET":
        return render(request, "workspaces/invitation_accept.html", context)
    rcontext = RequestContext.from_request(request)
    try:
        if request.user.is_authenticated:
            membership = invitation_accept(token=token, user=request.user, context=rcontext)
        elif has_account:
            return redirect(context["login_url"])
        else:
            if not form.is_valid():
                return render(request, "workspaces/invitation_accept.html", context,
                              status=HTTPStatus.UNPROCESSABLE_ENTITY)
            user, membership = invitation_accept_as_new_user(
                token=token, password=form.cleaned_data["password1"], context=rcontext
            )
            login(request, user, backend="django.contrib.auth.backends.ModelBackend")
            signin_mark_recent(request)
            audit_login_succeeded(user=user, context=RequestContext.from_request(request))
    except ValidationError as exc:
        if "form" in context:
            for message in exc.messages:
                context["form"].add_error("password1", message)
        else:
            context["error"] = exc.messages[0]
        return render(request, "workspaces/invitation_accept.html", context,
                      status=HTTPStatus.UNPROCESSABLE_ENTITY)
    messages.success(request, f"Welcome to {membership.workspace.name}: you are "
                              f"{membership.get_role_display().lower()} here.")
    return redirect("workspaces:overview", slug=membership.workspace.slug)


# --- Plan and overage ----------------------------------------------------------------------------


def _plan_context(request: WorkspaceRequest, **extra: object) -> dict:
    """(The overage units counted so far are on the Usage page, next to the other meters.)"""
    plans = list(Plan.objects.order_by("id"))
    return {
        "plans": plans,
        "plan_form": PlanChangeForm(initial={"plan": request.workspace.plan.code}, plans=plans),
        **extra,
    }


@workspace_view()
def plan_detail(request: WorkspaceRequest) -> HttpResponse:
    return render(request, PLAN_PAGE, _plan_context(request))


@require_POST
@workspace_view(Action.MANAGE_PLAN)
@sudo_required(when=_confirmed)
def plan_change(request: WorkspaceRequest) -> HttpResponse:
    plans = list(Plan.objects.order_by("id"))
    form = PlanChangeForm(request.POST, plans=plans)
    if not form.is_valid():
        return render(request, PLAN_PAGE, _plan_context(request, plan_form=form),
                      status=HTTPStatus.UNPROCESSABLE_ENTITY)
    plan = next(plan for plan in plans if plan.code == form.cleaned_data["plan"])
    to_plans = reverse("workspaces:plan", kwargs={"slug": request.workspace.slug})
    if plan.pk == request.workspace.plan_id:
        return redirect(to_plans)
    if not _confirmed(request):
        context = _plan_context(request, dialog="plan", new_plan=plan)
        if request.htmx:
            response = render(request, f"{PLAN_PAGE}#plan-dialog", {**context, "modal": True})
            return reswap(retarget(response, "#modal-root"), "innerHTML")
        return render(request, PLAN_PAGE, context)
    workspace_change_plan(workspace=request.workspace, plan=plan,
                          actor=Actor.for_user(request.user),
                          context=RequestContext.from_request(request))
    messages.success(request, f"Saved: the workspace is now on the {plan.name} plan.")
    return HttpResponseClientRedirect(to_plans) if request.htmx else redirect(to_plans)


@require_POST
@workspace_view(Action.MANAGE_PLAN)
@sudo_required
def plan_overage(request: WorkspaceRequest) -> HttpResponse:
    enabled = request.POST.get("enabled") == "1"
    to_plans = reverse("workspaces:plan", kwargs={"slug": request.workspace.slug})
    try:
        workspace_set_overage(workspace=request.workspace, enabled=enabled,
                              actor=Actor.for_user(request.user),
                              context=RequestContext.from_request(request))
    except ValidationError as exc:
        messages.error(request, exc.messages[0])
    else:
        messages.success(request, "Saved: overage is on — passports past the cap are created "
                                  "and billed." if enabled else
                                  "Saved: overage is off — at the cap, creating a passport "
                                  "is refused (402).")
    return HttpResponseClientRedirect(to_plans) if request.htmx else redirect(to_plans)
