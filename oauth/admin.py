"""Django admin for OAuth (SPEC §10), on top of django-oauth-toolkit's own admin classes.

Wired through OAUTH2_PROVIDER["*_ADMIN_CLASS"], so DOT registers these for its models. Secrets and
token checksums are never editable; apps are registered from the dashboard or RFC 7591, not here;
editing an app (`oauth_app_update`), deleting it, revoking a grant and setting a grant's budget
(`connection_set_budget`) go through `oauth.services`,
so they are audited like the same actions in the dashboard, with the door `admin`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import ValidationError
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse
from django.template.response import TemplateResponse
from oauth2_provider import admin as dot_admin

from core.context import Actor, Door, RequestContext
from workspaces.forms import CredentialBudgetForm
from workspaces.sudo import SudoAdminMixin

from .models import Connection
from .redirects import validate_redirect_uris
from .services import (
    APP_EDITABLE_FIELDS,
    connection_approve,
    connection_deny,
    connection_revoke,
    connection_set_budget,
    oauth_app_delete,
    oauth_app_update,
)

if TYPE_CHECKING:
    from django.db.models import Model
    from oauth2_provider.models import Application


def _context(request: HttpRequest) -> RequestContext:
    return RequestContext.from_request(request, door=Door.ADMIN)


class ApplicationAdminForm(forms.ModelForm):
    def clean_redirect_uris(self) -> str:
        uris = self.cleaned_data.get("redirect_uris", "").split()
        return " ".join(validate_redirect_uris(uris))


class ApplicationAdmin(SudoAdminMixin, dot_admin.ApplicationAdmin):
    form = ApplicationAdminForm
    fields = (
        "name",
        "client_id",
        "client_type",
        "authorization_grant_type",
        "redirect_uris",
        "allowed_origins",
        "registration_source",
        "user",
        "created",
        "updated",
    )
    readonly_fields = (
        "client_id",
        "client_type",
        "authorization_grant_type",
        "registration_source",
        "user",
        "created",
        "updated",
    )
    radio_fields = {}
    actions = ("delete_apps",)

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False  # the dashboard or RFC 7591 registration, which show the secret once

    def has_delete_permission(self, request: HttpRequest, obj: Model | None = None) -> bool:
        return False  # the audited "Delete selected apps" action instead

    def save_model(
        self, request: HttpRequest, obj: Application, form: forms.ModelForm, change: bool
    ) -> None:
        # Only changes reach here (no add permission); the service validates and audits them.
        changes = {field: form.cleaned_data[field] for field in APP_EDITABLE_FIELDS
                   if field in form.changed_data}
        oauth_app_update(application=obj, changes=changes, actor=Actor.for_user(request.user),
                         context=_context(request))
        obj.refresh_from_db()

    @admin.action(
        description="Delete selected apps and revoke their grants", permissions=["change"]
    )
    def delete_apps(self, request: HttpRequest, queryset: QuerySet) -> None:
        count = 0
        for application in queryset:
            oauth_app_delete(
                application=application,
                actor=Actor.for_user(request.user),
                context=_context(request),
            )
            count += 1
        self.message_user(request, f"Deleted {count} app(s).", messages.SUCCESS)


def can_revoke_grants(request: HttpRequest) -> bool:
    """Revoking a grant changes its connection: staff who may only view OAuth data may not."""
    return request.user.has_perm("oauth.change_connection")


def revoke_connections(
    model_admin: admin.ModelAdmin, request: HttpRequest, connections: QuerySet[Connection]
) -> None:
    """The admin's grant revocations, through the audited service, by the staff user."""
    actor, context = Actor.for_user(request.user), _context(request)
    count = 0
    for connection in connections.select_related("application", "workspace"):
        connection_revoke(
            connection=connection, actor=actor, context=context, reason="revoked_by_staff"
        )
        count += 1
    model_admin.message_user(request, f"Revoked {count} grant(s).", messages.SUCCESS)


class _ReadOnlyTokenAdmin:
    """Tokens are issued by the flows and revoked through their grant; nothing here edits them."""

    def has_change_permission(self, request: HttpRequest, obj: Model | None = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Model | None = None) -> bool:
        return False

    def get_exclude(self, request: HttpRequest, obj: Model | None = None) -> tuple[str, ...]:
        return ("token", "token_checksum", "code", "code_challenge")

    def has_revoke_permission(self, request: HttpRequest) -> bool:
        return can_revoke_grants(request)

    @admin.action(description="Revoke the grants these belong to", permissions=["revoke"])
    def revoke_grants(self, request: HttpRequest, queryset: QuerySet) -> None:
        connections = Connection.objects.active().filter(**{f"{self.link_path}__in": queryset})
        revoke_connections(self, request, connections.distinct())


class AccessTokenAdmin(_ReadOnlyTokenAdmin, dot_admin.AccessTokenAdmin):
    link_path = "access_token_links__access_token"
    actions = ("revoke_grants",)


class RefreshTokenAdmin(_ReadOnlyTokenAdmin, dot_admin.RefreshTokenAdmin):
    link_path = "refresh_token_links__refresh_token"
    actions = ("revoke_grants",)


class GrantAdmin(_ReadOnlyTokenAdmin, dot_admin.GrantAdmin):
    link_path = "grant_links__grant"
    actions = ("revoke_grants",)


@admin.register(Connection)
class ConnectionAdmin(SudoAdminMixin, admin.ModelAdmin):
    list_display = (
        "public_id", "application", "user", "workspace", "approval", "granted_at", "revoked_at",
        "daily_cap", "credits", "credits_refill",
    )
    list_select_related = ("application", "user", "workspace")
    list_filter = ("approval", "revoked_at")
    search_fields = ("public_id", "application__name", "application__client_id", "workspace__slug")
    actions = ("revoke", "approve", "deny", "set_budget")

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Model | None = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Model | None = None) -> bool:
        return False

    def has_revoke_permission(self, request: HttpRequest) -> bool:
        return can_revoke_grants(request)

    @admin.action(description="Revoke selected grants", permissions=["revoke"])
    def revoke(self, request: HttpRequest, queryset: QuerySet) -> None:
        revoke_connections(self, request, queryset.active())

    @admin.action(description="Approve selected pending grants", permissions=["revoke"])
    def approve(self, request: HttpRequest, queryset: QuerySet) -> None:
        self._decide(request, queryset, connection_approve, "Approved")

    @admin.action(description="Deny selected pending grants", permissions=["revoke"])
    def deny(self, request: HttpRequest, queryset: QuerySet) -> None:
        self._decide(request, queryset, connection_deny, "Denied")

    def _decide(
        self, request: HttpRequest, queryset: QuerySet, service: Callable[..., object], verb: str
    ) -> None:
        """SPEC §12 decisions by staff, through the same audited services as the dashboard;
        grants not pending (approved, revoked) are left alone and counted."""
        actor, context = Actor.for_user(request.user), _context(request)
        done = skipped = 0
        for connection in queryset.select_related("application", "workspace", "user"):
            try:
                service(connection=connection, actor=actor, context=context)
            except ValidationError:
                skipped += 1
            else:
                done += 1
        self.message_user(request, f"{verb} {done} grant(s); {skipped} were not pending.",
                          messages.SUCCESS if done else messages.WARNING)
    @admin.action(description="Set the budget of selected grants…", permissions=["revoke"])
    def set_budget(self, request: HttpRequest, queryset: QuerySet) -> HttpResponse | None:
        """Each live grant's own daily cap and credits, through `connection_set_budget`."""
        connections = list(queryset.active().select_related("application", "user", "workspace"))
        form = CredentialBudgetForm(request.POST if "apply" in request.POST else None)
        if not form.is_valid():
            return TemplateResponse(request, "admin/oauth/connection/budget_form.html", {
                **self.admin_site.each_context(request), "opts": self.model._meta,
                "title": "Set the budget of OAuth grants", "connections": connections,
                "form": form, "action_checkbox_name": admin.helpers.ACTION_CHECKBOX_NAME,
            })
        actor, context, count = Actor.for_user(request.user), _context(request), 0
        for connection in connections:
            try:
                connection_set_budget(
                    connection=connection, **form.budget(), actor=actor, context=context
                )
            except ValidationError as exc:
                self.message_user(request, f"{connection}: {exc.messages[0]}", messages.WARNING)
            else:
                count += 1
        self.message_user(request, f"Set the budget of {count} grant(s).", messages.SUCCESS)
        return None

