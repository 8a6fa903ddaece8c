"""Django admin for API keys (SPEC §10): ops staff find keys by name or hint and revoke, pause,
resume or rotate them, or set their rate limit or budget (daily cap, credits), through the same
audited services as the dashboard. Nothing here shows or edits the digest, and a key is never
saved raw: "Add" runs `apikey_create` and shows the token once on the page that answers the
POST."""

from __future__ import annotations

import re
from collections.abc import Callable

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied, ValidationError
from django.db.models import Q, QuerySet
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils import timezone
from django.utils.cache import add_never_cache_headers
from django.utils.html import format_html

from core.context import Actor, RequestContext
from workspaces.forms import CredentialBudgetForm
from workspaces.models import Workspace
from workspaces.sudo import SudoAdminMixin

from .forms import OVERLAP_CHOICES, ApiKeyCreateForm, ApiKeyEditForm, edit_initial
from .keycache import PENDING_WARNING, keycache_pending
from .models import ApiKey, KeyNetwork
from .services import (
    MAX_RATE_LIMIT_PER_MINUTE,
    apikey_create,
    apikey_pause,
    apikey_resume,
    apikey_revoke,
    apikey_rotate,
    apikey_set_budget,
    apikey_set_rate_limit,
    apikey_update,
    collection_labels,
)

# `gk_prod_…abcd` (as the dashboard shows a key) or a pasted token: search by its last 4 characters.
HINT_SEARCH = re.compile(r"^gk_(?:prod|stg|dev)_(?:…|\.\.\.)?(?:[0-9A-Za-z]*?)([0-9A-Za-z]{4})$")


class StatusFilter(admin.SimpleListFilter):
    """The status as the dashboard shows it: `expired` is derived (past `expires_at`, not
    revoked), so active and paused here mean not expired."""

    title = "status"
    parameter_name = "status"

    def lookups(self, request: HttpRequest, model_admin: admin.ModelAdmin) -> list:
        return [("active", "Active"), ("paused", "Paused"), ("revoked", "Revoked"),
                ("expired", "Expired")]

    def queryset(self, request: HttpRequest, queryset: QuerySet) -> QuerySet:
        value = self.value()
        if value is None:
            return queryset
        now = timezone.now()
        live = Q(expires_at__isnull=True) | Q(expires_at__gt=now)
        if value == "expired":
            return queryset.exclude(status="revoked").filter(expires_at__lte=now)
        if value == "revoked":
            return queryset.filter(status="revoked")
        if value in ("active", "paused"):
            return queryset.filter(live, status=value)
        return queryset.none()


class _CollectionIdsMixin(forms.Form):
    # Admin forms name collections by id: the workspace (and so its collections) is not known
    # when the form is built. The service refuses an id of no collection of the key's workspace.
    collections = forms.CharField(
        required=False, max_length=5000, label="Collections",
        help_text="With “Only selected collections”: col_… ids, comma-separated.",
    )

    def clean_collections(self) -> list[str]:
        return [v for v in re.split(r"[\s,]+", self.cleaned_data["collections"]) if v]


class ApiKeyAdminCreateForm(_CollectionIdsMixin, ApiKeyCreateForm):
    workspace = forms.ModelChoiceField(queryset=Workspace.objects.select_related("plan"))

    field_order = ["workspace", "name", "note", "scopes", "environment"]


class ApiKeyAdminEditForm(_CollectionIdsMixin, ApiKeyEditForm):
    pass


class RotateForm(forms.Form):
    overlap = forms.ChoiceField(
        choices=OVERLAP_CHOICES, initial="24h", widget=forms.RadioSelect,
        label="Keep the old keys working for",
    )


class RateLimitForm(forms.Form):
    rate_limit_per_minute = forms.IntegerField(
        required=False, min_value=1, max_value=MAX_RATE_LIMIT_PER_MINUTE,
        label="Requests per minute", help_text="Leave empty for no per-key limit.",
    )


class KeyNetworkInline(admin.TabularInline):
    """The networks a key was used from (written by the usage flush; read-only here)."""

    model = KeyNetwork
    fields = readonly_fields = ["network", "request_count", "first_seen_at", "last_seen_at"]
    extra = 0
    can_delete = False
    verbose_name_plural = "Networks used from (IPv4 /24, IPv6 /48)"

    def has_add_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False


@admin.register(ApiKey)
class ApiKeyAdmin(SudoAdminMixin, admin.ModelAdmin):
    list_display = [
        "name", "workspace", "display_hint", "status_display", "environment", "last_used_at",
        "request_count", "created_at",
    ]
    list_filter = [StatusFilter, "environment"]
    search_fields = ["name", "hint", "public_id", "workspace__slug"]
    list_select_related = ["workspace"]
    ordering = ["-created_at", "-id"]
    actions = [
        "revoke_selected", "pause_selected", "resume_selected", "rotate_selected",
        "set_rate_limit_selected", "set_budget_selected",
    ]
    # The digest is deliberately absent: not shown, not editable.
    fields = [
        "public_id", "workspace", "name", "note", "display_hint", "status_display", "environment",
        "scopes", "created_at", "created_by", "expires_at", "revoked_at", "revoked_by",
        "revoked_reason", "last_used_at", "last_used_ip", "request_count",
        "rate_limit_per_minute", "budget_display", "allowed_ips", "rotated_from",
        "collections_display", "new_network", "new_network_at", "edit_link",
    ]
    readonly_fields = fields
    inlines = [KeyNetworkInline]

    @admin.display(description="Edit")
    def edit_link(self, obj: ApiKey) -> str:
        if obj.pk is None or obj.effective_status() in ("revoked", "expired"):
            return "Only a live key can be edited."
        url = reverse("admin:apikeys_apikey_edit", args=[obj.pk])
        return format_html('<a href="{}">Edit name, note, scopes, IPs, limits…</a>', url)

    def get_urls(self) -> list:
        edit = path(
            "<int:object_id>/edit/", self.admin_site.admin_view(self.edit_view),
            name="apikeys_apikey_edit",
        )
        return [edit, *super().get_urls()]

    def edit_view(self, request: HttpRequest, object_id: int) -> HttpResponse:
        """Edit a key through `apikey_update` (audited `key.updated`, door `admin`)."""
        if not self.has_manage_permission(request):
            raise PermissionDenied
        key = ApiKey.objects.select_related("workspace").filter(pk=object_id).first()
        if key is None:
            raise Http404("No such key.")
        initial = edit_initial(key, collection_labels(workspace=key.workspace, ids=key.collections))
        initial["collections"] = ", ".join(initial["collections"])
        form = ApiKeyAdminEditForm(request.POST if request.method == "POST" else None,
                                   initial=initial)
        if form.is_bound and form.is_valid():
            try:
                apikey_update(
                    key=key, changes=form.changes_for(key), actor=Actor.for_user(request.user),
                    context=RequestContext.from_request(request),
                )
            except ValidationError as exc:
                form.add_service_errors(exc)
            else:
                self.message_user(request, f"Saved “{key.name}”.", messages.SUCCESS)
                return HttpResponseRedirect(
                    reverse("admin:apikeys_apikey_change", args=[key.pk])
                )
        return TemplateResponse(request, "admin/apikeys/apikey/add.html", {
            **self.admin_site.each_context(request),
            "title": f"Edit {key.name} ({key.display_hint})", "opts": self.model._meta,
            "form": form, "has_view_permission": True, "submit_label": "Save key",
            "intro": "Saved through the same service as the dashboard (audited as key.updated); "
                     "the change applies to the key's next request on every server.",
        }, status=422 if form.is_bound else 200)

    @admin.display(description="Passports")
    def collections_display(self, obj: ApiKey) -> str:
        labels = collection_labels(workspace=obj.workspace, ids=obj.collections)
        if labels is None:
            return "All passports"
        return "Only collections: " + ", ".join(labels) if labels else "No passport"

    @admin.display(description="Budget")
    def budget_display(self, obj: ApiKey) -> str:
        parts = []
        if obj.daily_cap:
            parts.append(f"{obj.daily_cap} requests/day")
        if obj.credits:
            refill = f", refilled {obj.credits_refill}" if obj.credits_refill else ", no refill"
            parts.append(f"{obj.credits} credits{refill}")
        return "; ".join(parts) or "None (only the workspace's budgets)"

    @admin.display(description="Key")
    def display_hint(self, obj: ApiKey) -> str:
        return obj.display_hint

    @admin.display(description="Status")
    def status_display(self, obj: ApiKey) -> str:
        return obj.effective_status()

    # Keys are changed only through the services (the actions below); deleting one would erase
    # the history that revocation keeps.
    def has_change_permission(self, request: HttpRequest, obj: ApiKey | None = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: ApiKey | None = None) -> bool:
        return False

    def has_manage_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm("apikeys.change_apikey")

    def get_search_results(
        self, request: HttpRequest, queryset: QuerySet, search_term: str
    ) -> tuple[QuerySet, bool]:
        match = HINT_SEARCH.match(search_term.strip())
        if match:
            search_term = match.group(1)
        return super().get_search_results(request, queryset, search_term)

    def _apply(
        self, request: HttpRequest, keys: QuerySet | list[ApiKey],
        service: Callable[..., ApiKey], done: str,
    ) -> None:
        context = RequestContext.from_request(request)
        changed, refused, unpropagated = 0, [], []
        if isinstance(keys, QuerySet):
            keys = keys.select_related("workspace")
        for key in keys:
            try:
                service(key=key, actor=Actor.for_user(request.user), context=context)
            except ValidationError as exc:
                refused.append(f"{key.name} ({key.display_hint}): {exc.messages[0]}")
            else:
                changed += 1
                if keycache_pending(key):  # saved, but other processes could not be told
                    unpropagated.append(f"{key.name} ({key.display_hint})")
        if changed:
            self.message_user(request, f"{done} {changed} key(s).", messages.SUCCESS)
        if unpropagated:
            self.message_user(
                request, f"{', '.join(unpropagated)}: {PENDING_WARNING}", messages.WARNING
            )
        for line in refused:
            self.message_user(request, line, messages.WARNING)

    @admin.action(description="Revoke selected keys…", permissions=["manage"])
    def revoke_selected(self, request: HttpRequest, queryset: QuerySet) -> HttpResponse | None:
        """Asks first (revoking is permanent), like Django's own delete action."""
        keys = list(queryset.select_related("workspace"))
        if "apply" not in request.POST:
            return self._action_form(
                request, keys, forms.Form(), title="Revoke API keys", action="revoke_selected",
                submit_label="Yes, revoke these keys",
                intro="Each key below stops working at once, on every server. This cannot be "
                      "undone: whatever uses them fails with key_revoked.",
            )
        self._apply(request, keys, apikey_revoke, "Revoked")
        return None

    @admin.action(description="Pause selected keys", permissions=["manage"])
    def pause_selected(self, request: HttpRequest, queryset: QuerySet) -> None:
        self._apply(request, queryset, apikey_pause, "Paused")

    @admin.action(description="Resume selected keys", permissions=["manage"])
    def resume_selected(self, request: HttpRequest, queryset: QuerySet) -> None:
        self._apply(request, queryset, apikey_resume, "Resumed")

    def _action_form(
        self, request: HttpRequest, keys: list[ApiKey], form: forms.Form, **page: object
    ) -> TemplateResponse:
        """The page that asks an action's question (`templates/admin/.../action_form.html`)."""
        return TemplateResponse(request, "admin/apikeys/apikey/action_form.html", {
            **self.admin_site.each_context(request),
            "opts": self.model._meta, "keys": keys, "form": form,
            "action_checkbox_name": admin.helpers.ACTION_CHECKBOX_NAME, **page,
        })

    @admin.action(description="Set the rate limit of selected keys…", permissions=["manage"])
    def set_rate_limit_selected(
        self, request: HttpRequest, queryset: QuerySet
    ) -> HttpResponse | None:
        keys = list(queryset.select_related("workspace"))
        form = RateLimitForm(request.POST if "apply" in request.POST else None)
        if not form.is_valid():
            return self._action_form(
                request, keys, form, title="Set the rate limit of API keys",
                action="set_rate_limit_selected", submit_label="Set the rate limit",
                show_rate_limit=True,
                intro="Each key below gets this per-key limit (requests per minute, counted "
                      "across every server); the next request of each key is counted against it.",
            )
        per_minute = form.cleaned_data["rate_limit_per_minute"]
        self._apply(
            request, keys,
            lambda **kw: apikey_set_rate_limit(rate_limit_per_minute=per_minute, **kw),
            "Set the rate limit of",
        )
        return None

    @admin.action(description="Set the budget of selected keys…", permissions=["manage"])
    def set_budget_selected(
        self, request: HttpRequest, queryset: QuerySet
    ) -> HttpResponse | None:
        """Each key's own daily cap and credits (`apikey_set_budget`, audited `key.updated`)."""
        keys = list(queryset.select_related("workspace"))
        form = CredentialBudgetForm(request.POST if "apply" in request.POST else None)
        if not form.is_valid():
            return self._action_form(
                request, keys, form, title="Set the budget of API keys",
                action="set_budget_selected", submit_label="Set the budget",
                intro="Each key below gets this budget of its own, on top of the workspace's "
                      "(empty: none); a new credit amount or refill sets the balance to it.",
            )
        budget = form.budget()
        self._apply(
            request, keys, lambda **kw: apikey_set_budget(**budget, **kw), "Set the budget of"
        )
        return None

    @admin.action(description="Rotate selected keys…", permissions=["manage"])
    def rotate_selected(self, request: HttpRequest, queryset: QuerySet) -> HttpResponse | None:
        keys = list(queryset.select_related("workspace"))
        form = RotateForm(request.POST if "apply" in request.POST else None)
        if not form.is_valid():
            return self._action_form(
                request, keys, form, title="Rotate API keys", action="rotate_selected",
                submit_label="Rotate keys",
                intro="Each key below gets a successor with the same name, scopes and settings; "
                      "the new tokens are shown once on the next page. The old keys keep working "
                      "for the overlap you choose, then stop.",
            )
        context = RequestContext.from_request(request)
        rotated, refused = [], []
        for key in keys:
            try:
                new, token = apikey_rotate(
                    key=key, overlap=form.cleaned_data["overlap"],
                    actor=Actor.for_user(request.user), context=context,
                )
            except ValidationError as exc:
                refused.append(f"{key.name} ({key.display_hint}): {exc.messages[0]}")
            else:
                key.refresh_from_db(fields=["expires_at"])  # the overlap moved it
                rotated.append({"old": key, "new": new, "token": token})
        return self._tokens_page(request, "Rotated API keys", rotated, refused)

    def _tokens_page(
        self, request: HttpRequest, title: str, created: list[dict], refused: list[str]
    ) -> HttpResponse:
        """The one response that carries new tokens: rendered, not redirected to, never cached."""
        response = TemplateResponse(request, "admin/apikeys/apikey/tokens.html", {
            **self.admin_site.each_context(request),
            "title": title, "opts": self.model._meta, "created": created, "refused": refused,
        })
        add_never_cache_headers(response)
        return response

    def add_view(
        self, request: HttpRequest, form_url: str = "", extra_context: dict | None = None
    ) -> HttpResponse:
        if not self.has_add_permission(request):
            raise PermissionDenied
        form = ApiKeyAdminCreateForm(request.POST if request.method == "POST" else None)
        if form.is_bound and form.is_valid():
            fields = {**form.service_arguments(), "workspace": form.cleaned_data["workspace"]}
            try:
                key, token = apikey_create(
                    actor=Actor.for_user(request.user),
                    context=RequestContext.from_request(request), **fields,
                )
            except ValidationError as exc:
                form.add_error(None, exc)
            else:
                return self._tokens_page(
                    request, "API key created", [{"new": key, "token": token}], []
                )
        return TemplateResponse(request, "admin/apikeys/apikey/add.html", {
            **self.admin_site.each_context(request),
            "title": "Add API key", "opts": self.model._meta, "form": form,
            "has_view_permission": True,
        })
