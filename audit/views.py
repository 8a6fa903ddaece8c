"""The audit log page and its CSV export; and the sign-in doors (dashboard and Django admin),
which are throttled and record sign-ins."""

from __future__ import annotations

import csv
import json
from collections.abc import Iterable, Iterator
from http import HTTPStatus
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

from django.contrib import admin
from django.contrib.admin.forms import AdminAuthenticationForm
from django.contrib.auth import REDIRECT_FIELD_NAME
from django.contrib.auth import views as auth_views
from django.contrib.auth.decorators import login_not_required
from django.contrib.auth.forms import AuthenticationForm
from django.core.exceptions import NON_FIELD_ERRORS
from django.forms.utils import ErrorDict
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect, StreamingHttpResponse
from django.shortcuts import render
from django.urls import reverse
from django.utils import timezone
from django.utils.cache import patch_vary_headers
from django.utils.http import content_disposition_header
from django.utils.translation import gettext as _
from django.views.decorators.cache import never_cache
from oauth2_provider.models import get_application_model

from core.context import Door, RequestContext
from core.pagination import InvalidPageRequest
from workspaces.permissions import WorkspaceRequest, workspace_view
from workspaces.roles import Action

from .forms import AuditFilterForm
from .login_throttle import login_blocked, login_failed
from .models import AuditEvent
from .selectors import audit_event_page, audit_event_queryset, audit_event_stream
from .services import audit_login_failed, audit_login_succeeded
from .signin import signin_mark_recent, signin_pending_start
from .twofactor import two_factor_enabled

PAGE_SIZE = 50
TEMPLATE = "audit/event_list.html"


def _apply_page_error(form: AuditFilterForm, exc: InvalidPageRequest) -> None:
    if exc.field in form.fields and exc.field != "cursor":
        form.add_error(exc.field, exc.message)
    else:
        form.add_error(
            None, "That page link does not belong to this filter. Start from the newest events."
        )


def _render_list(request: HttpRequest, context: dict[str, Any], status: int = HTTPStatus.OK
                 ) -> HttpResponse:
    partial = request.htmx and not request.htmx.history_restore_request
    response = render(request, f"{TEMPLATE}#event-table" if partial else TEMPLATE, context,
                      status=status)
    # The same URL answers with a page or a fragment: caches must keep them apart.
    patch_vary_headers(response, ["HX-Request"])
    return response


@workspace_view(Action.READ_AUDIT_LOG)
def event_list(request: WorkspaceRequest) -> HttpResponse:
    form = AuditFilterForm(request.GET)
    events: list[AuditEvent] = []
    next_cursor = None
    if form.is_valid():
        try:
            events, next_cursor = audit_event_page(
                workspace=request.workspace,
                **form.filters(),
                cursor=form.cleaned_data["cursor"] or None,
                limit=PAGE_SIZE,
            )
        except InvalidPageRequest as exc:
            _apply_page_error(form, exc)
    base = reverse("audit:list", kwargs={"slug": request.workspace.slug})
    query = form.query()
    context = {
        "form": form,
        "events": events,
        "filtered": bool(query),
        "paged": bool(request.GET.get("cursor")),
        "newest_url": f"{base}?{urlencode(query)}" if query else base,
        "older_url": f"{base}?{urlencode({**query, 'cursor': next_cursor})}"
        if next_cursor else None,
        "export_url": reverse("audit:export", kwargs={"slug": request.workspace.slug})
        + (f"?{urlencode(query)}" if query else ""),
    }
    return _render_list(request, context)


# --- CSV export ---------------------------------------------------------------------------------

CSV_COLUMNS = [
    "id", "time", "actor_type", "actor_id", "actor", "action", "target_type", "target_id",
    "target", "ip", "user_agent", "metadata", "prev_hash", "hash",
]
# A cell starting with one of these is a formula to a spreadsheet (OWASP "CSV injection"); labels
# and user agents come from users, so such cells are prefixed with a quote.
_FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def _cell(value: str) -> str:
    return f"'{value}" if value.startswith(_FORMULA_STARTS) else value


def _csv_row(event: AuditEvent) -> list[str]:
    return [
        event.public_id,
        event.created_at.isoformat(),
        event.actor_type,
        _cell(event.actor_id),
        _cell(event.actor_label),
        event.action,
        _cell(event.target_type),
        _cell(event.target_id),
        _cell(event.target_label),
        event.ip or "",
        _cell(event.user_agent),
        json.dumps(event.metadata, sort_keys=True, separators=(",", ":"), ensure_ascii=False,
                   default=str) if event.metadata else "",
        event.prev_hash,
        event.hash,
    ]


class _Echo:
    """csv.writer writes into this and gets the line back, so rows stream one at a time."""

    def write(self, value: str) -> str:
        return value


def _csv_lines(events: Iterable[AuditEvent]) -> Iterator[str]:
    writer = csv.writer(_Echo())
    yield writer.writerow(CSV_COLUMNS)
    for event in events:
        yield writer.writerow(_csv_row(event))


@workspace_view(Action.READ_AUDIT_LOG)
def event_export(request: WorkspaceRequest) -> HttpResponse:
    """The current filter as CSV, newest first, streamed batch by batch (never all in memory)."""
    form = AuditFilterForm(request.GET)
    events = None
    if form.is_valid():
        try:
            events = audit_event_queryset(workspace=request.workspace, **form.filters())
        except InvalidPageRequest as exc:
            _apply_page_error(form, exc)
    if events is None:
        base = reverse("audit:list", kwargs={"slug": request.workspace.slug})
        context = {"form": form, "events": [], "filtered": True, "newest_url": base,
                   "older_url": None, "export_url": None}
        return _render_list(request, context, status=HTTPStatus.BAD_REQUEST)
    filename = f"audit-log-{request.workspace.slug}-{timezone.now():%Y%m%d-%H%M%S}.csv"
    response = StreamingHttpResponse(
        _csv_lines(audit_event_stream(events)), content_type="text/csv; charset=utf-8"
    )
    response["Content-Disposition"] = content_disposition_header(True, filename)
    return response


# --- The sign-in doors --------------------------------------------------------------------------

class EmailAuthenticationForm(AuthenticationForm):
    """Django's sign-in form in the dashboard's words: the field is Email, so is the error."""

    error_messages = {
        **AuthenticationForm.error_messages,
        "invalid_login": "Please enter a correct email and password. The password is "
                         "case-sensitive.",
    }


def authorizing_app_name(next_url: str) -> str | None:
    """The app asking, when sign-in interrupts an OAuth authorize link (`next` is
    /api/oauth/authorize?client_id=…): its registered name, or the host of a metadata-document
    client id. None for any other `next`."""
    parts = urlsplit(next_url or "")
    if parts.netloc or parts.path.rstrip("/") != "/api/oauth/authorize":
        return None
    client_id = parse_qs(parts.query).get("client_id", [""])[0][:500]
    if not client_id:
        return None
    app = get_application_model().objects.filter(client_id=client_id).only("name").first()
    if app is not None and app.name:
        return app.name
    host = urlsplit(client_id).hostname if client_id.startswith("https://") else None
    return host


class LoginView(auth_views.LoginView):
    """Django's login view, recording `user.logged_in` and `user.login_failed` on the
    workspace-less audit chain with the client's IP, user agent and door (never the password),
    and throttled per (account, address) and per address (`audit.login_throttle`).

    Account enumeration: an unknown email, a wrong password and an inactive account get the same
    message, and take the same time: Django's ModelBackend runs the password hasher on a dummy
    when the user does not exist (and `verify_password` when the stored password is unusable),
    so each answer costs one Argon2 hash.
    """

    redirect_authenticated_user = True
    door = Door.DASHBOARD
    authentication_form = EmailAuthenticationForm

    def get_context_data(self, **kwargs: Any) -> dict[str, Any]:
        context = super().get_context_data(**kwargs)
        context["authorizing_app"] = authorizing_app_name(context.get("next", ""))
        return context

    def _context(self) -> RequestContext:
        return RequestContext.from_request(self.request, door=self.door)

    def post(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        retry_after = login_blocked(request, request.POST.get("username", ""))
        if retry_after is None:
            return super().post(request, *args, **kwargs)
        return _login_refused(self, retry_after)

    def form_valid(self, form: AuthenticationForm) -> HttpResponse:
        user = form.get_user()
        if two_factor_enabled(user):  # not signed in yet: the code step completes it
            signin_pending_start(self.request, user=user, door=self.door,
                                 next_url=self.get_success_url())
            return HttpResponseRedirect(reverse("audit:login_verify"))
        response = super().form_valid(form)
        signin_mark_recent(self.request)
        audit_login_succeeded(user=user, context=self._context())
        return response

    def form_invalid(self, form: AuthenticationForm) -> HttpResponse:
        _record_failed_login(self, form)
        return super().form_invalid(form)

    def failure_reason(self, form: AuthenticationForm) -> str:
        return "inactive" if form.has_error(NON_FIELD_ERRORS, "inactive") else (
            "invalid_credentials"
        )


def _login_refused(view: LoginView, retry_after: int) -> HttpResponse:
    """The sign-in page with the throttle's message, a 429 and `Retry-After`. Refused before
    validation: the password is not checked (and not hashed) at all."""
    form = view.get_form()
    form._errors, form.cleaned_data = ErrorDict(), {}
    form.add_error(None, "Too many failed sign-ins. Wait a few minutes and try again.")
    response = view.render_to_response(view.get_context_data(form=form))
    response.status_code = HTTPStatus.TOO_MANY_REQUESTS
    response["Retry-After"] = str(retry_after)
    return response


def _record_failed_login(view: LoginView, form: AuthenticationForm) -> None:
    """Count and audit a failed sign-in. Only a real attempt (both fields given) is one; an empty
    field is a typo."""
    username = form.data.get("username", "")
    if username and form.data.get("password"):
        login_failed(view.request, username)
        audit_login_failed(
            username=username, reason=view.failure_reason(form), context=view._context()
        )


class AdminLoginView(LoginView):
    """Django admin's sign-in, through the same throttle and audit events as the dashboard's
    (door `admin`). A member without staff status who gives their right password is refused by
    `AdminAuthenticationForm` with the same message as a wrong password; it is recorded as
    `not_staff` and counted like any other failure."""

    redirect_authenticated_user = False  # admin_login redirects staff; others may switch user
    door = Door.ADMIN

    def get_default_redirect_url(self) -> str:
        return reverse("admin:index")

    def failure_reason(self, form: AuthenticationForm) -> str:
        user = form.get_user()
        if user is not None and user.is_active and not user.is_staff:
            return "not_staff"
        return super().failure_reason(form)


@never_cache
@login_not_required
def admin_login(request: HttpRequest) -> HttpResponse:
    """`/admin/login/`: what `AdminSite.login` does, with `AdminLoginView` as the view."""
    site = admin.site
    redirect_url = AdminLoginView().get_redirect_url(request) or reverse(
        "admin:index", current_app=site.name
    )
    if request.method == "GET" and site.has_permission(request):
        return HttpResponseRedirect(redirect_url)
    context = {
        **site.each_context(request),
        "title": _("Log in"),
        "subtitle": None,
        "app_path": request.get_full_path(),
        "username": request.user.get_username(),
        REDIRECT_FIELD_NAME: redirect_url,
    }
    request.current_app = site.name
    return AdminLoginView.as_view(
        extra_context=context,
        authentication_form=site.login_form or AdminAuthenticationForm,
        template_name=site.login_template or "admin/login.html",
    )(request)
