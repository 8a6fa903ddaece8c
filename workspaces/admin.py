from django.contrib import admin
from django.http import HttpRequest

from apikeys.keycache import keycache_invalidate
from audit.services import Actor, RequestContext

from .models import Membership, Plan, Workspace
from .services import membership_change_role, workspace_change_plan


class InvalidatesCachedKeys:
    """Every process's cached API keys carry their workspace and plan (`apikeys.keycache`): a
    change or deletion here makes them read from the database again on their next request."""

    def save_model(self, request: HttpRequest, obj, form, change: bool) -> None:  # noqa: ANN001
        super().save_model(request, obj, form, change)
        keycache_invalidate()

    def delete_model(self, request: HttpRequest, obj) -> None:  # noqa: ANN001
        super().delete_model(request, obj)
        keycache_invalidate()

    def delete_queryset(self, request: HttpRequest, queryset) -> None:  # noqa: ANN001
        super().delete_queryset(request, queryset)
        keycache_invalidate()


@admin.register(Plan)
class PlanAdmin(InvalidatesCachedKeys, admin.ModelAdmin):
    list_display = [
        "code",
        "name",
        "writes_per_day",
        "passport_reads_per_day",
        "active_keys_limit",
        "passports_limit",
        "overage_allowed",
        "audit_retention_days",
    ]


class MembershipInline(admin.TabularInline):
    model = Membership
    extra = 0
    autocomplete_fields = ["user"]
    readonly_fields = ["role", "created_at"]


@admin.register(Workspace)
class WorkspaceAdmin(InvalidatesCachedKeys, admin.ModelAdmin):
    list_display = ["slug", "name", "plan", "created_at"]
    list_filter = ["plan"]
    search_fields = ["slug", "name"]
    list_select_related = ["plan"]
    inlines = [MembershipInline]

    def save_model(self, request: HttpRequest, obj: Workspace, form, change: bool) -> None:  # noqa: ANN001
        # A plan change is a change of access: it goes through the service and is audited.
        if change and "plan" in form.changed_data:
            new_plan = obj.plan
            obj.plan = Workspace.objects.get(pk=obj.pk).plan
            super().save_model(request, obj, form, change)
            workspace_change_plan(
                workspace=obj,
                plan=new_plan,
                actor=Actor.for_user(request.user),
                context=RequestContext.from_request(request),
            )
            obj.refresh_from_db()
            return
        super().save_model(request, obj, form, change)


@admin.register(Membership)
class MembershipAdmin(admin.ModelAdmin):
    list_display = ["user", "workspace", "role", "created_at"]
    list_filter = ["role"]
    search_fields = ["user__email", "user__username", "workspace__slug"]
    list_select_related = ["user", "workspace"]
    autocomplete_fields = ["user", "workspace"]

    def save_model(self, request: HttpRequest, obj: Membership, form, change: bool) -> None:  # noqa: ANN001
        if change and "role" in form.changed_data:
            new_role = obj.role
            obj.role = Membership.objects.get(pk=obj.pk).role
            membership_change_role(
                membership=obj,
                role=new_role,
                acting_user=request.user,
                context=RequestContext.from_request(request),
            )
            obj.refresh_from_db()
            return
        super().save_model(request, obj, form, change)
