"""Settings → API Keys (SPEC §9). Every action works two ways:

- with HTMX (`HX-Request: true`): dialogs load into `#modal-root` and their forms swap the
  dialog's body; create and rotate fire `keys-changed`, on which the table reloads itself behind
  the token; pause/resume swap their row; revoke swaps the whole table (the row moves to the
  Revoked section) and closes its dialog;
- without JavaScript: the same URLs serve full pages and plain forms that POST and redirect back
  to the list, where a new token is shown once (see `reveal.py`).

The key detail page (usage chart, recent requests, warnings) edits the key's rate limit and its
budget (daily cap, credits; SPEC §3) the same two ways: each form swaps itself with HTMX, and
without JavaScript posts and redirects back to the page. Its Edit page (`key_edit`) changes
everything else that may change after creation.
The list's search and filters are GET parameters (`KeyFilterForm`); with HTMX the table
refreshes as one types.
The Usage page (Settings → Usage) shows today's budgets and requests per key.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from http import HTTPStatus
from urllib.parse import urlencode

from django.contrib import messages
from django.core.exceptions import ValidationError
from django.http import Http404, HttpResponse, HttpResponseRedirect
from django.shortcuts import render
from django.urls import reverse
from django.utils import timezone
from django.utils.cache import add_never_cache_headers, patch_vary_headers
from django.views.decorators.http import require_GET, require_http_methods, require_POST
from django_htmx.http import HttpResponseClientRedirect, reswap, retarget, trigger_client_event

from core.context import Actor, RequestContext
from core.pagination import InvalidPageRequest
from passports.models import Collection
from passports.selectors import overage_summary
from workspaces.caps import budget_states
from workspaces.forms import CredentialBudgetForm
from workspaces.permissions import WorkspaceRequest, workspace_view
from workspaces.roles import Action, role_allowed_actions
from workspaces.sudo import sudo_required

from .charts import daily_bar_chart
from .forms import (
    ApiKeyCreateForm,
    ApiKeyEditForm,
    ApiKeyRateLimitForm,
    ApiKeyRotateForm,
    KeyFilterForm,
    edit_initial,
)
from .keycache import PENDING_WARNING, keycache_pending
from .models import ApiKey, Environment
from .reveal import reveal_forget, reveal_pop, reveal_stash
from .selectors import (
    KeyFilter,
    apikey_for_dashboard,
    apikey_for_detail,
    apikey_networks,
    apikey_policy_violations,
    apikey_recent_requests,
    apikey_requests_per_day,
    apikeys_for_dashboard,
    live_key_count,
    usage_for_dashboard,
)
from .services import (
    apikey_create,
    apikey_dismiss_new_network,
    apikey_pause,
    apikey_restrict_to_networks,
    apikey_resume,
    apikey_revoke,
    apikey_rotate,
    apikey_set_budget,
    apikey_set_rate_limit,
    apikey_update,
    collection_labels,
)

PAGE = "apikeys/key_list.html"
DETAIL_PAGE = "apikeys/key_detail.html"
KEYS_CHANGED = "keys-changed"  # the key table listens for it and reloads itself
CLOSE_DIALOG = "dialog-close"  # static/js/app.js closes the open dialog
RECENT_USE = timedelta(days=7)


def _get_key(request: WorkspaceRequest, key_id: str) -> ApiKey:
    try:
        return apikey_for_dashboard(workspace=request.workspace, public_id=key_id)
    except ApiKey.DoesNotExist:
        raise Http404("No such key.") from None


def _table_context(request: WorkspaceRequest) -> dict:
    """The key table as the list's search, filters and page (GET parameters) narrow it. A bad
    filter is a form error above an unfiltered table; a bad page link, the first page."""
    form = KeyFilterForm(request.GET if request.method == "GET" else None)
    where, cursor = KeyFilter(), None
    if form.is_bound and form.is_valid():
        data = form.cleaned_data
        where = KeyFilter(
            q=data["q"], status=data["status"], environment=data["environment"],
            scope=data["scope"],
        )
        cursor = data["cursor"] or None
    try:
        live, inactive, next_cursor = apikeys_for_dashboard(
            request.workspace, where=where, cursor=cursor
        )
    except InvalidPageRequest:
        form.add_error("cursor", "That page link is out of date; this is the first page.")
        live, inactive, next_cursor = apikeys_for_dashboard(request.workspace, where=where)
        cursor = None
    live_count = live_key_count(request.workspace) if where.active else len(live)
    params = {k: v for k, v in (form.cleaned_data.items() if form.is_bound and not form.errors
                                else ()) if v and k != "cursor"}
    return {
        "live_keys": live,
        "inactive_keys": inactive,
        "live_count": live_count,
        "plan_limit": request.workspace.plan.active_keys_limit,
        "filter_form": form,
        "filtered": where.active,
        "paged": cursor is not None,
        "next_page_url": (
            f"{_list_url(request)}?{urlencode({**params, 'cursor': next_cursor})}"
            if next_cursor else None
        ),
        "first_page_url": f"{_list_url(request)}?{urlencode(params)}" if params
        else _list_url(request),
        "table_url": request.get_full_path() if request.method == "GET" else _list_url(request),
    }


def _list_url(request: WorkspaceRequest) -> str:
    return reverse("apikeys:list", kwargs={"slug": request.workspace.slug})


def _back_to_list(request: WorkspaceRequest) -> HttpResponseRedirect:
    """303 See Other: after a POST without JavaScript, the browser GETs the list."""
    response = HttpResponseRedirect(_list_url(request))
    response.status_code = HTTPStatus.SEE_OTHER
    return response


def _dialog(
    request: WorkspaceRequest, dialog: str, *, status: int = HTTPStatus.OK, **context: object
) -> HttpResponse:
    """A dialog: into `#modal-root` for an HTMX GET, its body for an HTMX POST, else a full page
    (the list with the dialog shown in place)."""
    context["dialog"] = dialog
    if request.htmx:
        part = "dialog" if request.method == "GET" else "dialog-body"
        response = render(request, f"{PAGE}#{part}", {**context, "modal": True}, status=status)
    else:
        response = render(request, PAGE, {**_table_context(request), **context}, status=status)
    # One URL, two representations: a browser cache must not answer a page load with a fragment.
    patch_vary_headers(response, ["HX-Request"])
    return response


def _token_shown(request: WorkspaceRequest, key: ApiKey, token: str) -> HttpResponse:
    """The one response that carries a new token (HTMX), or the redirect that carries it to the
    list page once (no JavaScript). Never cached."""
    if request.htmx:
        response = render(
            request, f"{PAGE}#dialog-body",
            {"dialog": "token", "new_key": key, "token": token, "modal": True},
        )
        trigger_client_event(response, KEYS_CHANGED)
    else:
        response = _back_to_list(request)
        reveal_stash(request, response, key=key, token=token)
    add_never_cache_headers(response)
    return response


@require_GET
@workspace_view()
def key_list(request: WorkspaceRequest) -> HttpResponse:
    context = _table_context(request)
    if request.htmx:
        response = render(request, f"{PAGE}#key-table", context)
        patch_vary_headers(response, ["HX-Request"])
        return response
    revealed = reveal_pop(request, context["live_keys"])
    if revealed is not None:
        context.update(dialog="token", new_key=revealed[0], token=revealed[1])
    response = render(request, PAGE, context)
    reveal_forget(request, response)
    add_never_cache_headers(response)
    patch_vary_headers(response, ["HX-Request"])
    return response


def _is_production_key_request(request: WorkspaceRequest) -> bool:
    return request.POST.get("environment") == Environment.PRODUCTION


def _is_production_key(request: WorkspaceRequest, key_id: str) -> bool:
    return _get_key(request, key_id).environment == Environment.PRODUCTION


@require_http_methods(["GET", "POST"])
@workspace_view(Action.MANAGE_KEYS)
@sudo_required(when=_is_production_key_request)
def key_create(request: WorkspaceRequest) -> HttpResponse:
    form = ApiKeyCreateForm(
        request.POST if request.method == "POST" else None,
        collection_choices=_collection_choices(request),
    )
    if form.is_bound and form.is_valid():
        try:
            key, token = apikey_create(
                workspace=request.workspace,
                actor=Actor.for_user(request.user),
                context=RequestContext.from_request(request),
                **form.service_arguments(),
            )
        except ValidationError as exc:
            form.add_error(None, exc)
        else:
            return _token_shown(request, key, token)
    if form.is_bound:
        form.autofocus_first_error()
        return _dialog(request, "create", form=form, status=HTTPStatus.UNPROCESSABLE_ENTITY)
    return _dialog(request, "create", form=form)


@require_http_methods(["GET", "POST"])
@workspace_view(Action.MANAGE_KEYS)
@sudo_required(when=_is_production_key)
def key_rotate(request: WorkspaceRequest, key_id: str) -> HttpResponse:
    key = _get_key(request, key_id)
    form = ApiKeyRotateForm(request.POST if request.method == "POST" else None)
    if form.is_bound and form.is_valid():
        try:
            new_key, token = apikey_rotate(
                key=key,
                overlap=form.cleaned_data["overlap"],
                actor=Actor.for_user(request.user),
                context=RequestContext.from_request(request),
            )
        except ValidationError as exc:
            form.add_error(None, exc)
        else:
            return _token_shown(request, new_key, token)
    status = HTTPStatus.UNPROCESSABLE_ENTITY if form.is_bound else HTTPStatus.OK
    return _dialog(request, "rotate", key=key, form=form, status=status)


@require_http_methods(["GET", "POST"])
@workspace_view(Action.MANAGE_KEYS)
def key_revoke(request: WorkspaceRequest, key_id: str) -> HttpResponse:
    key = _get_key(request, key_id)
    recently_used = key.last_used_at is not None and (
        key.last_used_at >= timezone.now() - RECENT_USE
    )
    if request.method == "GET":
        return _dialog(request, "revoke", key=key, recently_used=recently_used)
    try:
        key = apikey_revoke(
            key=key, actor=Actor.for_user(request.user),
            context=RequestContext.from_request(request),
        )
    except ValidationError as exc:
        if request.htmx:
            return _dialog(
                request, "revoke", key=key, recently_used=recently_used, error=exc.messages[0],
                status=HTTPStatus.UNPROCESSABLE_ENTITY,
            )
        messages.error(request, exc.messages[0])
        return _back_to_list(request)
    if (warned := _unpropagated(request, key, "Revoked")) is not None:
        return warned
    if request.htmx:
        return _table_replacing_dialog(request)
    messages.success(request, f"Revoked “{key.name}” ({key.display_hint}).")
    return _back_to_list(request)


def _table_replacing_dialog(request: WorkspaceRequest) -> HttpResponse:
    """One round trip: the table (with the key moved to the Revoked section) replaces the old
    table, and the dialog that asked closes — after the swap: fired on receipt it would remove
    the dialog (and the form that asked) before htmx resolves the retarget from that form."""
    response = render(request, f"{PAGE}#key-table", _table_context(request))
    retarget(response, "#key-table")
    reswap(response, "outerHTML")
    return trigger_client_event(response, CLOSE_DIALOG, after="swap")


def _unpropagated(request: WorkspaceRequest, key: ApiKey, done: str) -> HttpResponse | None:
    """The change is saved but other processes could not be told (`apikeys.keycache`): say so
    on the list page, the one place both the htmx and the plain form show messages."""
    if not keycache_pending(key):
        return None
    messages.warning(request, f"{done} “{key.name}” ({key.display_hint}). {PENDING_WARNING}")
    if request.htmx:
        return HttpResponseClientRedirect(_list_url(request))
    return _back_to_list(request)


def _change_status(
    request: WorkspaceRequest, key_id: str, service: Callable[..., ApiKey], done: str
) -> HttpResponse:
    key = _get_key(request, key_id)
    error = None
    try:
        key = service(
            key=key, actor=Actor.for_user(request.user),
            context=RequestContext.from_request(request),
        )
    except ValidationError as exc:
        error = exc.messages[0]
    else:
        if (warned := _unpropagated(request, key, done)) is not None:
            return warned
    if request.htmx:
        return render(
            request,
            f"{PAGE}#key-row",
            {"key": _get_key(request, key_id), "error": error},
            status=HTTPStatus.OK if error is None else HTTPStatus.UNPROCESSABLE_ENTITY,
        )
    if error:
        messages.error(request, error)
    else:
        messages.success(request, f"{done} “{key.name}” ({key.display_hint}).")
    return _back_to_list(request)


@require_POST
@workspace_view(Action.MANAGE_KEYS)
def key_pause(request: WorkspaceRequest, key_id: str) -> HttpResponse:
    return _change_status(request, key_id, apikey_pause, "Paused")


@require_POST
@workspace_view(Action.MANAGE_KEYS)
def key_resume(request: WorkspaceRequest, key_id: str) -> HttpResponse:
    return _change_status(request, key_id, apikey_resume, "Resumed")


# --- Usage and the key detail page -------------------------------------------------------------

@require_GET
@workspace_view()
def usage(request: WorkspaceRequest) -> HttpResponse:
    return render(request, "apikeys/usage_overview.html", {
        "usage": usage_for_dashboard(request.workspace),
        "plan": request.workspace.plan,
        "overage": overage_summary(request.workspace),
    })


def _budget_context(
    request: WorkspaceRequest, key: ApiKey, form: CredentialBudgetForm | None = None,
    *, saved: bool = False,
) -> dict:
    return {
        "budget": budget_states([key.caps()], timezone.now())[0],
        "budget_form": form or CredentialBudgetForm.for_row(key),
        "budget_url": reverse(
            "apikeys:budget", kwargs={"slug": request.workspace.slug, "key_id": key.public_id}
        ),
        "can_edit": Action.MANAGE_KEYS in role_allowed_actions(request.membership.role)
        and key.effective_status() not in ("revoked", "expired"),
        "saved": saved,
        "label": "key",
    }


def _detail_page(
    request: WorkspaceRequest, key: ApiKey, form: ApiKeyRateLimitForm, *,
    status: int = HTTPStatus.OK, budget_form: CredentialBudgetForm | None = None,
) -> HttpResponse:
    return render(request, DETAIL_PAGE, {
        **_budget_context(request, key, budget_form),
        "key": key,
        "policy_violations": apikey_policy_violations(key, workspace=request.workspace)
        if key.effective_status() not in ("revoked", "expired") else [],
        "editable": key.effective_status() not in ("revoked", "expired"),
        "chart": daily_bar_chart(apikey_requests_per_day(key)),
        "recent_requests": apikey_recent_requests(key),
        "rate_form": form,
        "key_collections": collection_labels(workspace=request.workspace, ids=key.collections),
        "networks": apikey_networks(key),
    }, status=status)


def _collection_choices(request: WorkspaceRequest) -> list[tuple[str, str]]:
    return [
        (c.public_id, c.name)
        for c in Collection.objects.filter(workspace=request.workspace).order_by("name", "id")
    ]


def _rate_limit_form(key: ApiKey) -> ApiKeyRateLimitForm:
    return ApiKeyRateLimitForm(initial={"rate_limit_per_minute": key.rate_limit_per_minute})


def _get_key_for_detail(request: WorkspaceRequest, key_id: str) -> ApiKey:
    try:
        return apikey_for_detail(workspace=request.workspace, public_id=key_id)
    except ApiKey.DoesNotExist:
        raise Http404("No such key.") from None


@require_GET
@workspace_view()
def key_detail(request: WorkspaceRequest, key_id: str) -> HttpResponse:
    key = _get_key_for_detail(request, key_id)
    return _detail_page(request, key, _rate_limit_form(key))


def _rate_limit_saved(request: WorkspaceRequest, key: ApiKey) -> HttpResponse:
    """After a saved change without HTMX: say what the limit is now, and go back to the page."""
    limit = key.rate_limit_per_minute
    messages.success(
        request,
        f"Rate limit of “{key.name}”: {limit} requests per minute." if limit
        else f"“{key.name}” has no rate limit now.",
    )
    response = HttpResponseRedirect(reverse(
        "apikeys:detail", kwargs={"slug": request.workspace.slug, "key_id": key.public_id}
    ))
    response.status_code = HTTPStatus.SEE_OTHER
    return response


@require_POST
@workspace_view(Action.MANAGE_KEYS)
def key_rate_limit(request: WorkspaceRequest, key_id: str) -> HttpResponse:
    """Set or clear (empty) the key's rate limit. With HTMX the form section swaps itself (422
    with the error in place); without, a redirect back to the page, or the page with the error."""
    key = _get_key_for_detail(request, key_id)
    form = ApiKeyRateLimitForm(request.POST)
    if form.is_valid():
        try:
            key = apikey_set_rate_limit(
                key=key, rate_limit_per_minute=form.cleaned_data["rate_limit_per_minute"],
                actor=Actor.for_user(request.user), context=RequestContext.from_request(request),
            )
        except ValidationError as exc:
            form.add_error(None, exc)
    saved = not form.errors
    if not saved:
        form.fields["rate_limit_per_minute"].widget.attrs["autofocus"] = True
    status = HTTPStatus.OK if saved else HTTPStatus.UNPROCESSABLE_ENTITY
    if request.htmx:
        response = render(
            request, f"{DETAIL_PAGE}#rate-limit",
            {"key": key, "rate_form": _rate_limit_form(key) if saved else form, "saved": saved},
            status=status,
        )
    else:
        response = _rate_limit_saved(request, key) if saved else _detail_page(
            request, key, form, status=status
        )
    patch_vary_headers(response, ["HX-Request"])
    return response


@require_POST
@workspace_view(Action.MANAGE_KEYS)
def key_budget(request: WorkspaceRequest, key_id: str) -> HttpResponse:
    """Set the key's own daily cap and credits (empty: none). With HTMX the Budget section swaps
    itself (422 with the errors in place); without, a redirect back to the page (POST → redirect →
    GET), or the page with the errors."""
    key = _get_key_for_detail(request, key_id)
    form = CredentialBudgetForm(request.POST)
    if form.is_valid():
        try:
            key = apikey_set_budget(
                key=key, **form.budget(), actor=Actor.for_user(request.user),
                context=RequestContext.from_request(request),
            )
        except ValidationError as exc:
            _form_errors(form, exc)
    saved = not form.errors
    status = HTTPStatus.OK if saved else HTTPStatus.UNPROCESSABLE_ENTITY
    if request.htmx:
        response = render(
            request, "workspaces/_credential_budget.html",
            _budget_context(request, key, None if saved else form, saved=saved), status=status,
        )
    elif saved:
        messages.success(request, f"Budget of “{key.name}” saved.")
        response = HttpResponseRedirect(_detail_url(request, key))
        response.status_code = HTTPStatus.SEE_OTHER
    else:
        response = _detail_page(
            request, key, _rate_limit_form(key), status=status, budget_form=form
        )
    patch_vary_headers(response, ["HX-Request"])
    return response


def _form_errors(form: CredentialBudgetForm, exc: ValidationError) -> None:
    if hasattr(exc, "error_dict"):
        for field, errors in exc.message_dict.items():
            form.add_error(field if field in form.fields else None, errors)
    else:
        form.add_error(None, exc)


# --- Edit ----------------------------------------------------------------------------------------

EDIT_PAGE = "apikeys/key_edit.html"


def _detail_url(request: WorkspaceRequest, key: ApiKey) -> str:
    return reverse(
        "apikeys:detail", kwargs={"slug": request.workspace.slug, "key_id": key.public_id}
    )


@require_http_methods(["GET", "POST"])
@workspace_view(Action.MANAGE_KEYS)
def key_edit(request: WorkspaceRequest, key_id: str) -> HttpResponse:
    """Edit a key's name, note, scopes, allowed IPs, rate limit, expiry and collections through
    `apikey_update`. Without JavaScript: a page whose form posts and redirects to the key's page
    (303), or comes back with every error at once (422). With HTMX the form swaps itself on an
    error and the browser goes to the key's page on success."""
    key = _get_key_for_detail(request, key_id)
    live = key.effective_status() not in ("revoked", "expired")
    labels = collection_labels(workspace=request.workspace, ids=key.collections)
    form = ApiKeyEditForm(
        request.POST if request.method == "POST" and live else None,
        initial=edit_initial(key, labels), collection_choices=_collection_choices(request),
    )
    if form.is_bound and form.is_valid():
        try:
            key = apikey_update(
                key=key, changes=form.changes_for(key), actor=Actor.for_user(request.user),
                context=RequestContext.from_request(request),
            )
        except ValidationError as exc:
            form.add_service_errors(exc)
        else:
            if (warned := _unpropagated(request, key, "Saved")) is not None:
                return warned
            messages.success(request, f"Saved “{key.name}” ({key.display_hint}).")
            if request.htmx:
                return HttpResponseClientRedirect(_detail_url(request, key))
            response = HttpResponseRedirect(_detail_url(request, key))
            response.status_code = HTTPStatus.SEE_OTHER
            return response
    status = HTTPStatus.OK
    if form.is_bound:
        form.autofocus_first_error()
        status = HTTPStatus.UNPROCESSABLE_ENTITY
    elif request.method == "POST":  # a revoked or expired key
        status = HTTPStatus.CONFLICT
    context = {"key": key, "form": form, "live": live}
    template = f"{EDIT_PAGE}#edit-form" if request.htmx and form.is_bound else EDIT_PAGE
    response = render(request, template, context, status=status)
    patch_vary_headers(response, ["HX-Request"])
    return response


NETWORKS_PAGE = "apikeys/key_networks_restrict.html"


@require_http_methods(["GET", "POST"])
@workspace_view(Action.MANAGE_KEYS)
def key_networks_restrict(request: WorkspaceRequest, key_id: str) -> HttpResponse:
    """"Restrict to these networks" (issue 16 §4): GET asks (a page, with and without
    JavaScript: what the allowed IPs become and who would be refused), POST sets the key's
    allowed IPs to its networks through `apikey_update` and goes back to the key's page."""
    key = _get_key_for_detail(request, key_id)
    live = key.effective_status() not in ("revoked", "expired")
    error = None
    if request.method == "POST" and live:
        try:
            key = apikey_restrict_to_networks(
                key=key, actor=Actor.for_user(request.user),
                context=RequestContext.from_request(request),
            )
        except ValidationError as exc:
            error = " ".join(exc.messages)
        else:
            if (warned := _unpropagated(request, key, "Restricted")) is not None:
                return warned
            messages.success(
                request, f"“{key.name}” now accepts requests only from "
                f"{', '.join(key.allowed_ips)}.",
            )
            response = HttpResponseRedirect(_detail_url(request, key))
            response.status_code = HTTPStatus.SEE_OTHER
            return response
    status = HTTPStatus.OK
    if error:
        status = HTTPStatus.UNPROCESSABLE_ENTITY
    elif request.method == "POST":  # a revoked or expired key
        status = HTTPStatus.CONFLICT
    return render(request, NETWORKS_PAGE, {
        "key": key, "networks": apikey_networks(key), "live": live, "error": error,
    }, status=status)


@require_POST
@workspace_view(Action.MANAGE_KEYS)
def key_network_dismiss(request: WorkspaceRequest, key_id: str) -> HttpResponse:
    """Dismiss the key's new-network flag (the networks stay recorded)."""
    key = apikey_dismiss_new_network(key=_get_key_for_detail(request, key_id))
    messages.success(request, f"Dismissed the new-network warning of “{key.name}”.")
    response = HttpResponseRedirect(_detail_url(request, key))
    response.status_code = HTTPStatus.SEE_OTHER
    return response
