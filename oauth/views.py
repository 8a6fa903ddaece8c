"""Dashboard pages for OAuth (SPEC §9): a workspace's OAuth Apps and a user's Connected apps.

Same conventions as the API keys pages: with HTMX, dialogs load into `#modal-root` and a change
fires `oauth-apps-changed` so the table reloads; without JavaScript the same URLs serve full
pages and plain forms that POST and redirect (303); a new client secret is rendered only in the
response to the POST that created or rotated it (HTMX) or, without JavaScript, once on the list
page after the redirect (`core.reveal`, as for API keys) — never cached, never stored in clear.
"""

from __future__ import annotations

from http import HTTPStatus

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.contrib.auth.hashers import check_password
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

from core import reveal
from core.context import Actor, RequestContext
from workspaces.caps import budget_states
from workspaces.forms import CredentialBudgetForm
from workspaces.permissions import WorkspaceRequest, workspace_view
from workspaces.roles import Action
from workspaces.sudo import sudo_required

from .forms import OAuthAppEditForm, OAuthAppForm
from .models import Connection, WorkspaceApp
from .selectors import (
    collection_names,
    connections_for_user,
    registration_kind,
    workspace_app,
    workspace_apps,
    workspace_connection,
    workspace_connections,
)
from .services import (
    connection_approve,
    connection_deny,
    connection_revoke,
    connection_revoke_by_admin,
    connection_set_budget,
    oauth_app_create,
    oauth_app_delete,
    oauth_app_rotate_secret,
    oauth_app_update,
)

PAGE = "oauth/app_list.html"
REVEAL_SLOT = reveal.RevealSlot(session_key="oauth:reveal", cookie_name="gatehouse_reveal_oauth")
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


SECRET_TITLES = {"created": "App registered", "rotated": "Client secret rotated"}


def _secret_shown(
    request: HttpRequest, app: WorkspaceApp, secret: str | None, *, kind: str
) -> HttpResponse:
    """The one response that carries a new client secret (HTMX), or the redirect that carries it
    to the list once (no JavaScript: `core.reveal`, as API keys do). Never cached."""
    if request.htmx:
        response = _dialog(request, "secret", app=app, secret=secret, title=SECRET_TITLES[kind])
        trigger_client_event(response, APPS_CHANGED)
    else:
        response = _see_other(_list_url(request))
        if secret is None:  # a public app: nothing secret to carry
            messages.success(
                request, f"Registered “{app.application.name}”. Its client ID is "
                f"{app.application.client_id}.",
            )
        else:
            reveal.reveal_stash(
                request, response, slot=REVEAL_SLOT, path=_list_url(request),
                subject=f"{kind}:{app.application.client_id}", secret=secret,
            )
    add_never_cache_headers(response)
    return response


def _revealed(request: HttpRequest) -> dict:
    """The secret stashed by `_secret_shown` for this list page, once, as dialog context."""
    found: dict = {}

    def check(subject: str, secret: str) -> bool:
        kind, _, client_id = subject.partition(":")
        if kind not in SECRET_TITLES:
            return False
        try:
            app = workspace_app(request.workspace, client_id)
        except WorkspaceApp.DoesNotExist:
            return False
        if not check_password(secret, app.application.client_secret):
            return False
        found.update(dialog="secret", app=app, secret=secret, title=SECRET_TITLES[kind])
        return True

    reveal.reveal_pop(request, slot=REVEAL_SLOT, check=check)
    return found


@require_GET
@workspace_view(Action.MANAGE_OAUTH_APPS)
def app_list(request: WorkspaceRequest) -> HttpResponse:
    if request.htmx:
        response = render(request, f"{PAGE}#app-table", _table_context(request))
    else:
        response = render(request, PAGE, {**_table_context(request), **_revealed(request)})
        reveal.reveal_forget(request, response, slot=REVEAL_SLOT, path=_list_url(request))
        add_never_cache_headers(response)
    patch_vary_headers(response, ["HX-Request"])
    return response


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
            return _secret_shown(request, app, secret, kind="created")
    if form.is_bound:  # without JavaScript too, the first field in error takes the focus
        first = next((name for name in form.fields if name in form.errors), None)
        if first is not None:
            form.fields[first].widget.attrs["autofocus"] = True
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
    return _secret_shown(request, app, secret, kind="rotated")


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


def _with_reach(connections: list[Connection]) -> list[Connection]:
    """Each grant with `reach_names` (None: all passports; else its collections' names, those
    of deleted ones left out) and `registration` (how its app was registered), in one query."""
    names = collection_names(connections)
    for connection in connections:
        connection.reach_names = (
            None if connection.collections is None
            else [names[pk] for pk in connection.collections if pk in names]
        )
        connection.registration = registration_kind(connection.application)
    return connections


@require_GET
@login_required
def connected_apps(request: HttpRequest) -> HttpResponse:
    return render(request, CONNECTIONS_PAGE, _connections_context(request))


CONNECTIONS_PAGE = "oauth/connected_apps.html"


def _connections_context(request: HttpRequest) -> dict:
    connections = _with_reach(list(connections_for_user(request.user)))
    budgets = budget_states([c.caps() for c in connections], timezone.now())
    for connection, budget in zip(connections, budgets, strict=True):
        connection.budget = budget
    return {"connections": connections}


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


@require_http_methods(["GET", "POST"])
@login_required
def connection_revoke_view(request: HttpRequest, connection_id: str) -> HttpResponse:
    """GET: the confirmation (a dialog with htmx, the page with the dialog in place without
    JavaScript); POST: revoke, then the table (htmx) or 303 back to Connected apps."""
    try:
        connection = connections_for_user(request.user).get(public_id=connection_id)
    except Connection.DoesNotExist:
        raise Http404("No such connected app.") from None
    label = connection.application.name or connection.application.client_id
    if request.method == "GET":
        context = {"dialog": "revoke", "connection": connection, "label": label}
        if request.htmx:
            response = render(request, f"{CONNECTIONS_PAGE}#dialog", {**context, "modal": True})
        else:
            response = render(request, CONNECTIONS_PAGE, {**_connections_context(request),
                                                          **context})
        patch_vary_headers(response, ["HX-Request"])
        return response
    connection_revoke(
        connection=connection,
        actor=Actor.for_user(request.user),
        context=RequestContext.from_request(request),
        reason="revoked_by_user",
    )
    if request.htmx:
        response = render(
            request, f"{CONNECTIONS_PAGE}#connection-table",
            {**_connections_context(request), "revoked": label},
        )
        retarget(response, "#connection-table")
        reswap(response, "outerHTML")
        return trigger_client_event(response, CLOSE_DIALOG, after="swap")
    messages.success(request, f"Revoked “{label}”: it can no longer act for you.")
    return _see_other(reverse("oauth:connected_apps"))


# --- Connected apps of a workspace (admins and owners, SPEC §7 and §12) ----------------------

WS_PAGE = "oauth/workspace_connections.html"


def _ws_list_url(request: HttpRequest) -> str:
    return reverse("oauth:workspace_connections", kwargs={"slug": request.workspace.slug})


def _ws_filters(request: HttpRequest) -> dict[str, str]:
    """The list's filters from the query string; a value that cannot match (too long, a NUL
    byte) is dropped rather than sent to the database."""
    filters = {}
    for name in ("status", "app", "member"):
        value = request.GET.get(name, "").strip()
        if value and len(value) <= 254 and "\x00" not in value:
            filters[name] = value
    return filters


def _ws_context(request: HttpRequest, **extra: object) -> dict:
    filters = _ws_filters(request) if request.method == "GET" else {}
    connections = _with_reach(list(workspace_connections(request.workspace, **filters)))
    everyone = list(workspace_connections(request.workspace)) if filters else connections
    apps = {c.application.client_id: (c.application.name or c.application.client_id)
            for c in everyone}
    members = sorted({c.user.get_username() for c in everyone})
    return {
        "connections": connections,
        "pending_count": sum(1 for c in everyone if c.is_pending),
        "filters": filters,
        "app_choices": sorted(apps.items(), key=lambda item: item[1].lower()),
        "member_choices": members,
        **extra,
    }


def _get_connection(request: HttpRequest, connection_id: str) -> Connection:
    try:
        return workspace_connection(request.workspace, connection_id)
    except Connection.DoesNotExist:
        raise Http404("No such connected app in this workspace.") from None


def _ws_dialog(request: HttpRequest, dialog: str, connection: Connection) -> HttpResponse:
    context = {"dialog": dialog, "connection": connection}
    if request.htmx:
        return render(request, f"{WS_PAGE}#dialog", {**context, "modal": True})
    return render(request, WS_PAGE, {**_ws_context(request), **context})


def _ws_done(request: HttpRequest, message: str, *, error: bool = False) -> HttpResponse:
    """After a decision: with HTMX the table again (with the message) and the dialog closed;
    without JavaScript a message and 303 to the list."""
    if request.htmx:
        response = render(
            request, f"{WS_PAGE}#workspace-connections",
            _ws_context(request, notice=message, notice_error=error),
        )
        retarget(response, "#workspace-connections")
        reswap(response, "outerHTML")
        # After the swap: closing the dialog first would remove the form that sent the request.
        return trigger_client_event(response, CLOSE_DIALOG, after="swap")
    (messages.error if error else messages.success)(request, message)
    return _see_other(_ws_list_url(request))


def _label(connection: Connection) -> str:
    return connection.application.name or connection.application.client_id


@require_GET
@workspace_view(Action.MANAGE_OAUTH_APPS)
def workspace_connections_view(request: WorkspaceRequest) -> HttpResponse:
    """Every member's grants in the workspace: app, member, scopes, collections, how the app
    was registered, granted and last used; pending requests first to decide. Filterable by
    status, app and member (a GET form; with HTMX it swaps only the table)."""
    context = _ws_context(request)
    if request.htmx:
        response = render(request, f"{WS_PAGE}#workspace-connections", context)
    else:
        response = render(request, WS_PAGE, context)
    patch_vary_headers(response, ["HX-Request"])
    return response


@require_http_methods(["GET", "POST"])
@workspace_view(Action.MANAGE_OAUTH_APPS)
def workspace_connection_revoke(request: WorkspaceRequest, connection_id: str) -> HttpResponse:
    """Revoke a member's grant (`connection_revoke_by_admin`, `oauth.connection_revoked`):
    GET asks to confirm (a dialog with HTMX, a page without), POST revokes."""
    connection = _get_connection(request, connection_id)
    if request.method == "GET":
        if connection.revoked_at is not None:
            return _ws_done(request, f"“{_label(connection)}” was already revoked.", error=True)
        return _ws_dialog(request, "revoke", connection)
    try:
        connection_revoke_by_admin(
            connection=connection, actor=Actor.for_user(request.user),
            context=RequestContext.from_request(request),
        )
    except ValidationError as exc:
        return _ws_done(request, exc.messages[0], error=True)
    return _ws_done(
        request,
        f"Revoked “{_label(connection)}” for {connection.user.get_username()}: its tokens no "
        "longer work.",
    )


@require_http_methods(["POST"])
@workspace_view(Action.MANAGE_OAUTH_APPS)
@sudo_required
def workspace_connection_approve(request: WorkspaceRequest, connection_id: str) -> HttpResponse:
    """Approve a pending grant (`connection_approve`): its tokens work from the next request."""
    connection = _get_connection(request, connection_id)
    try:
        connection_approve(
            connection=connection, actor=Actor.for_user(request.user),
            context=RequestContext.from_request(request),
        )
    except ValidationError as exc:
        return _ws_done(request, exc.messages[0], error=True)
    return _ws_done(
        request, f"Approved “{_label(connection)}” for {connection.user.get_username()}."
    )


@require_http_methods(["GET", "POST"])
@workspace_view(Action.MANAGE_OAUTH_APPS)
@sudo_required
def workspace_connection_deny(request: WorkspaceRequest, connection_id: str) -> HttpResponse:
    """Deny a pending grant (`connection_deny`): it is revoked with its tokens. GET asks to
    confirm, POST denies."""
    connection = _get_connection(request, connection_id)
    if request.method == "GET":
        if not connection.is_pending or connection.revoked_at is not None:
            return _ws_done(request, f"“{_label(connection)}” is not awaiting approval.",
                            error=True)
        return _ws_dialog(request, "deny", connection)
    try:
        connection_deny(
            connection=connection, actor=Actor.for_user(request.user),
            context=RequestContext.from_request(request),
        )
    except ValidationError as exc:
        return _ws_done(request, exc.messages[0], error=True)
    return _ws_done(
        request, f"Denied “{_label(connection)}” for {connection.user.get_username()}."
    )
