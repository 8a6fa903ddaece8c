"""Dashboard pages for OAuth (SPEC §9): a workspace's OAuth Apps and a user's Connected apps.

Same conventions as the API keys pages: with HTMX, dialogs load into `#modal-root` and a change
fires `oauth-apps-changed` so the table reloads; without JavaScript the same URLs serve full
pages and plain forms. A client secret is rendered only in the response to the POST that created
or rotated it (never cached, never stored in clear).
"""

from __future__ import annotations

from http import HTTPStatus

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import ValidationError
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import render
from django.urls import reverse
from django.utils import timezone
from django.utils.cache import add_never_cache_headers, patch_vary_headers
from django.views.decorators.http import require_GET, require_http_methods
from django_htmx.http import (
    HttpResponseClientRedirect,
    reswap,
    retarget,
    trigger_client_event,
)

from core.context import Actor, RequestContext
from workspaces.caps import budget_states
from workspaces.forms import CredentialBudgetForm
from workspaces.permissions import WorkspaceRequest, workspace_view
from workspaces.roles import Action
from workspaces.sudo import sudo_required

from .forms import OAuthAppEditForm, OAuthAppForm
from .models import Connection, WorkspaceApp
from .selectors import connections_for_user, workspace_app, workspace_apps
from .services import (
    connection_revoke,
    connection_set_budget,
    oauth_app_create,
    oauth_app_delete,
    oauth_app_rotate_secret,
    oauth_app_update,
)

PAGE = "oauth/app_list.html"
APPS_CHANGED = "oauth-apps-changed"
CLOSE_DIALOG = "dialog-close"


def _see_other(url: str) -> HttpResponseRedirect:
    """After a POST: 303, so the browser follows with a GET."""
    response = HttpResponseRedirect(url)
    response.status_code = HTTPStatus.SEE_OTHER
    return response


def _get_app(request: HttpRequest, client_id: str) -> WorkspaceApp:
    try:
        return workspace_app(request.workspace, client_id)
    except WorkspaceApp.DoesNotExist:
        raise Http404("No such app.") from None


def _list_url(request: HttpRequest) -> str:
    return reverse("oauth:app_list", kwargs={"slug": request.workspace.slug})


def _table_context(request: HttpRequest) -> dict:
    return {"apps": list(workspace_apps(request.workspace))}


def _dialog(
    request: HttpRequest, dialog: str, *, status: int = HTTPStatus.OK, **context: object
) -> HttpResponse:
    context["dialog"] = dialog
    if request.htmx:
        part = "dialog" if request.method == "GET" else "dialog-body"
        return render(request, f"{PAGE}#{part}", {**context, "modal": True}, status=status)
    return render(request, PAGE, {**_table_context(request), **context}, status=status)


def _secret_shown(
    request: HttpRequest, app: WorkspaceApp, secret: str | None, *, title: str
) -> HttpResponse:
    response = _dialog(request, "secret", app=app, secret=secret, title=title)
    if request.htmx:
        trigger_client_event(response, APPS_CHANGED)
    add_never_cache_headers(response)
    return response


@require_GET
@workspace_view(Action.MANAGE_OAUTH_APPS)
def app_list(request: WorkspaceRequest) -> HttpResponse:
    if request.htmx:
        return render(request, f"{PAGE}#app-table", _table_context(request))
    return render(request, PAGE, _table_context(request))


@require_http_methods(["GET", "POST"])
@workspace_view(Action.MANAGE_OAUTH_APPS)
def app_create(request: WorkspaceRequest) -> HttpResponse:
    form = OAuthAppForm(request.POST if request.method == "POST" else None)
    if form.is_bound and form.is_valid():
        try:
            application, secret = oauth_app_create(
                workspace=request.workspace,
                name=form.cleaned_data["name"],
                redirect_uris=form.cleaned_data["redirect_uris"],
                confidential=form.cleaned_data["client_type"] == "confidential",
                actor=Actor.for_user(request.user),
                context=RequestContext.from_request(request),
            )
        except ValidationError as exc:
            form.add_error(None, exc)
        else:
            app = _get_app(request, application.client_id)
            return _secret_shown(request, app, secret, title="App registered")
    status = HTTPStatus.UNPROCESSABLE_ENTITY if form.is_bound else HTTPStatus.OK
    return _dialog(request, "create", form=form, status=status)


@require_http_methods(["GET", "POST"])
@workspace_view(Action.MANAGE_OAUTH_APPS)
def app_edit(request: WorkspaceRequest, client_id: str) -> HttpResponse:
    """Edit an app's name and redirect URIs (`oauth_app_update`, audited `oauth_app.updated`);
    its grants and tokens are kept. Without JavaScript: post, then 303 to the list (or 422 with
    every error); with HTMX the form swaps itself on an error and the browser goes to the list
    when saved."""
    app = _get_app(request, client_id)
    application = app.application
    form = OAuthAppEditForm(
        request.POST if request.method == "POST" else None,
        initial={"name": application.name,
                 "redirect_uris": "\n".join(application.redirect_uris.split())},
    )
    if form.is_bound and form.is_valid():
        try:
            oauth_app_update(
                application=application, changes=dict(form.cleaned_data),
                actor=Actor.for_user(request.user), context=RequestContext.from_request(request),
            )
        except ValidationError as exc:
            if hasattr(exc, "error_dict"):
                for field, errors in exc.message_dict.items():
                    form.add_error(field if field in form.fields else None, errors)
            else:
                form.add_error(None, exc.messages)
        else:
            messages.success(request, f"Saved “{form.cleaned_data['name']}”.")
            if request.htmx:
                return HttpResponseClientRedirect(_list_url(request))
            return _see_other(_list_url(request))
    status = HTTPStatus.UNPROCESSABLE_ENTITY if form.is_bound else HTTPStatus.OK
    template = "oauth/app_edit.html#edit-form" if request.htmx and form.is_bound else (
        "oauth/app_edit.html"
    )
    response = render(request, template, {"app": app, "form": form}, status=status)
    patch_vary_headers(response, ["HX-Request"])
    return response


@require_http_methods(["GET", "POST"])
@workspace_view(Action.MANAGE_OAUTH_APPS)
@sudo_required
def app_rotate_secret(request: WorkspaceRequest, client_id: str) -> HttpResponse:
    app = _get_app(request, client_id)
    if request.method == "GET":
        return _dialog(request, "rotate", app=app)
    try:
        secret = oauth_app_rotate_secret(
            application=app.application,
            actor=Actor.for_user(request.user),
            context=RequestContext.from_request(request),
        )
    except ValidationError as exc:
        return _dialog(
            request, "rotate", app=app, error=exc.messages[0],
            status=HTTPStatus.UNPROCESSABLE_ENTITY,
        )
    return _secret_shown(request, app, secret, title="Client secret rotated")


@require_http_methods(["GET", "POST"])
@workspace_view(Action.MANAGE_OAUTH_APPS)
def app_delete(request: WorkspaceRequest, client_id: str) -> HttpResponse:
    app = _get_app(request, client_id)
    if request.method == "GET":
        return _dialog(request, "delete", app=app)
    name = app.application.name
    oauth_app_delete(
        application=app.application,
        actor=Actor.for_user(request.user),
        context=RequestContext.from_request(request),
    )
    if request.htmx:
        response = render(request, f"{PAGE}#app-table", _table_context(request))
        retarget(response, "#app-table")
        reswap(response, "outerHTML")
        return trigger_client_event(response, CLOSE_DIALOG)
    messages.success(request, f"Deleted “{name}”; its tokens no longer work.")
    return _see_other(_list_url(request))


# --- Connected apps (per user, across workspaces) ------------------------------------------


@require_GET
@login_required
def connected_apps(request: HttpRequest) -> HttpResponse:
    connections = list(connections_for_user(request.user))
    budgets = budget_states([c.caps() for c in connections], timezone.now())
    for connection, budget in zip(connections, budgets, strict=True):
        connection.budget = budget
    return render(request, "oauth/connected_apps.html", {"connections": connections})


def _budget_context(
    request: HttpRequest, connection: Connection, form: CredentialBudgetForm | None = None,
    *, saved: bool = False,
) -> dict:
    return {
        "connection": connection,
        "budget": budget_states([connection.caps()], timezone.now())[0],
        "budget_form": form or CredentialBudgetForm.for_row(connection),
        "budget_url": reverse("oauth:connection_budget", args=[connection.public_id]),
        "can_edit": True,
        "saved": saved,
        "label": "grant",
    }


@require_http_methods(["GET", "POST"])
@login_required
def connection_budget(request: HttpRequest, connection_id: str) -> HttpResponse:
    """A grant's own budget (SPEC §3: daily cap, credits), set by the user who granted it
    (`connection_set_budget`, audited `oauth.grant_updated`). With HTMX the Budget section swaps
    itself; without, POST → redirect → GET."""
    try:
        connection = connections_for_user(request.user).get(public_id=connection_id)
    except Connection.DoesNotExist:
        raise Http404("No such connected app.") from None
    page = "oauth/connection_budget.html"
    if request.method == "GET":
        return render(request, page, _budget_context(request, connection))
    form = CredentialBudgetForm(request.POST)
    if form.is_valid():
        try:
            connection = connection_set_budget(
                connection=connection, **form.budget(), actor=Actor.for_user(request.user),
                context=RequestContext.from_request(request),
            )
        except ValidationError as exc:
            form.add_error(None, exc)
    saved = not form.errors
    status = HTTPStatus.OK if saved else HTTPStatus.UNPROCESSABLE_ENTITY
    if request.htmx:
        response = render(
            request, "workspaces/_credential_budget.html",
            _budget_context(request, connection, None if saved else form, saved=saved),
            status=status,
        )
    elif saved:
        label = connection.application.name or connection.application.client_id
        messages.success(request, f"Budget of “{label}” saved.")
        response = _see_other(reverse("oauth:connection_budget", args=[connection.public_id]))
    else:
        response = render(request, page, _budget_context(request, connection, form),
                          status=status)
    patch_vary_headers(response, ["HX-Request"])
    return response


@require_http_methods(["POST"])
@login_required
def connection_revoke_view(request: HttpRequest, connection_id: str) -> HttpResponse:
    try:
        connection = connections_for_user(request.user).get(public_id=connection_id)
    except Connection.DoesNotExist:
        raise Http404("No such connected app.") from None
    connection_revoke(
        connection=connection,
        actor=Actor.for_user(request.user),
        context=RequestContext.from_request(request),
        reason="revoked_by_user",
    )
    label = connection.application.name or connection.application.client_id
    if request.htmx:
        return render(
            request,
            "oauth/connected_apps.html#connection-table",
            {"connections": list(connections_for_user(request.user)), "revoked": label},
        )
    messages.success(request, f"Revoked “{label}”: it can no longer act for you.")
    return _see_other(reverse("oauth:connected_apps"))
