"""Ops read the audit log in Django admin; nobody adds, changes or deletes events there."""

from __future__ import annotations

from typing import TYPE_CHECKING

from django.contrib import admin
from django.http import HttpRequest

from .actions import ACTIONS
from .models import AuditChain, AuditEvent

if TYPE_CHECKING:
    from django.db.models import QuerySet


class ReadOnlyAdmin(admin.ModelAdmin):
    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False


class ActionFilter(admin.SimpleListFilter):
    """Offers the catalogued actions rather than a SELECT DISTINCT over the whole table."""

    title = "action"
    parameter_name = "action"

    def lookups(self, request: HttpRequest, model_admin: admin.ModelAdmin) -> list[tuple[str, str]]:
        return sorted(ACTIONS.items())

    def queryset(self, request: HttpRequest, queryset: QuerySet) -> QuerySet:
        return queryset.filter(action=self.value()) if self.value() else queryset


@admin.register(AuditEvent)
class AuditEventAdmin(ReadOnlyAdmin):
    list_display = [
        "created_at", "workspace", "actor_label", "actor_type", "action", "target_label",
        "target_id", "ip",
    ]
    list_filter = [ActionFilter, "actor_type"]
    search_fields = ["=public_id", "actor_label", "target_id", "target_label"]
    date_hierarchy = "created_at"
    list_select_related = ["workspace"]
    # COUNT(*) over a million rows on every page view is the slow part of a changelist.
    show_full_result_count = False
    fields = [
        "public_id", "created_at", "workspace", "actor_type", "actor_id", "actor_label", "action",
        "target_type", "target_id", "target_label", "ip", "user_agent", "metadata", "prev_hash",
        "hash",
    ]
    readonly_fields = fields


@admin.register(AuditChain)
class AuditChainAdmin(ReadOnlyAdmin):
    list_display = ["key", "head_hash", "head_created_at", "anchor_event_id", "anchor_hash"]
    search_fields = ["=key"]
    fields = ["key", "head_hash", "head_created_at", "anchor_hash", "anchor_event_id"]
    readonly_fields = fields
