"""Django admin for workspaces, members and plans (SPEC §10). Every change of access made here —
adding, removing or re-roling a member (on its own page or in a workspace's inline), creating a
workspace, editing, adding or deleting a plan — goes through the audited service the dashboard
uses, so the event names the staff user and the door (`admin`). Removing a member ends their
OAuth grants in that workspace, as from every door (`workspaces.hooks`).

Django's own user admin is replaced here too: deleting a user removes each membership through
`membership_remove` first (refused for a workspace's last owner), and changing whether a user is
active, staff or superuser is recorded on the workspace-less chain (`user_change_access`).

A service that refuses after the admin's own checks passed (another owner removed meanwhile) is
shown as an error message on the page, with everything the request did rolled back — never a 500."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from django import forms
from django.contrib import admin, messages
from django.contrib.auth import get_user_model
from django.contrib.auth.admin import UserAdmin as DjangoUserAdmin
from django.core.exceptions import ValidationError
from django.db import transaction
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect

from core.context import Actor, Door, RequestContext

from .credential_policy import CREDENTIAL_POLICY_FIELDS
from .models import Invitation, Membership, Plan, Workspace
from .roles import Role
from .selectors import workspaces_only_owned_by
from .services import (
    PLAN_FIELDS,
    USER_ACCESS_FIELDS,
    WORKSPACE_EDITABLE_FIELDS,
    invitation_cancel,
    last_owner_refusal,
    membership_add,
    membership_change_role,
    membership_remove,
    plan_create,
    plan_delete,
    plan_update,
    user_change_access,
    user_delete,
    workspace_change_plan,
    workspace_create,
    workspace_set_overage,
    workspace_update,
)
from .sudo import SudoAdminMixin

if TYPE_CHECKING:
    from collections.abc import Sequence

    from django import forms
    from django.contrib.auth.base_user import AbstractBaseUser
    from django.forms.models import BaseInlineFormSet

LAST_OWNER = "A workspace needs at least one owner."


def _context(request: HttpRequest) -> RequestContext:
    return RequestContext.from_request(request, door=Door.ADMIN)


def _is_last_owner(membership: Membership) -> bool:
    if membership.role != Role.OWNER:
        return False
    owners = Membership.objects.filter(workspace_id=membership.workspace_id, role=Role.OWNER)
    return not owners.exclude(pk=membership.pk).exists()


class RefusalsAsMessages:
    """A service's refusal (`ValidationError`) raised while the admin saves or deletes — its own
    checks passed, then a concurrent change made the service refuse — becomes an error message
    on the page the staff user was on. Each view runs in one transaction that the refusal rolls
    back whole (Django's change and delete views are atomic; a changelist POST — the "Delete
    selected" action — is made so here), so nothing the request did is left half-done."""

    def _refused(self, request: HttpRequest, exc: ValidationError) -> HttpResponse:
        self.message_user(request, " ".join(exc.messages), messages.ERROR)
        return HttpResponseRedirect(request.get_full_path())

    def changeform_view(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        try:
            return super().changeform_view(request, *args, **kwargs)
        except ValidationError as exc:
            return self._refused(request, exc)

    def delete_view(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        try:
            return super().delete_view(request, *args, **kwargs)
        except ValidationError as exc:
            return self._refused(request, exc)

    def changelist_view(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        if request.method != "POST":
            return super().changelist_view(request, *args, **kwargs)
        try:
            with transaction.atomic():
                return super().changelist_view(request, *args, **kwargs)
        except ValidationError as exc:
            return self._refused(request, exc)


@admin.register(Plan)
class PlanAdmin(SudoAdminMixin, admin.ModelAdmin):
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

    def save_model(
        self, request: HttpRequest, obj: Plan, form: forms.ModelForm, change: bool,
    ) -> None:
        actor = Actor.for_user(request.user)
        values = {field: form.cleaned_data[field] for field in PLAN_FIELDS
                  if field in form.cleaned_data}
        if change:
            plan_update(plan=obj, changes=values, actor=actor, context=_context(request))
            obj.refresh_from_db()
        else:
            obj.pk = plan_create(values=values, actor=actor, context=_context(request)).pk

    def delete_model(self, request: HttpRequest, obj: Plan) -> None:
        plan_delete(plan=obj, actor=Actor.for_user(request.user), context=_context(request))

    def delete_queryset(self, request: HttpRequest, queryset: QuerySet[Plan]) -> None:
        for plan in queryset:
            self.delete_model(request, plan)


class MembershipInlineForm(forms.ModelForm):
    class Meta:
        model = Membership
        fields = ["user", "role"]

    def clean_user(self) -> AbstractBaseUser:
        user = self.cleaned_data["user"]
        if self.instance.pk and user != self.instance.user:
            raise ValidationError(
                "A membership cannot change hands: remove this member and add the other user."
            )
        return user


class MembershipInlineFormSet(forms.BaseInlineFormSet):
    def clean(self) -> None:
        """A new workspace gets an owner; an existing one keeps one (SPEC §12). Rows the form
        does not carry are left as they are, so they count as they stand."""
        super().clean()
        if any(self.errors):
            return
        owners = set()
        if self.instance.pk is not None:
            owners = set(Membership.objects.filter(workspace=self.instance, role=Role.OWNER)
                         .values_list("pk", flat=True))
        had_owner = bool(owners)
        for number, form in enumerate(self.forms):
            if not form.cleaned_data:
                continue
            key = form.instance.pk or f"new-{number}"
            if self._should_delete_form(form) or form.cleaned_data.get("role") != Role.OWNER:
                owners.discard(key)
            else:
                owners.add(key)
        if self.instance.pk is None and not owners:
            raise ValidationError("Add the workspace's owner.")
        if had_owner and not owners:
            raise ValidationError(LAST_OWNER)


class MembershipInline(admin.TabularInline):
    model = Membership
    form = MembershipInlineForm
    formset = MembershipInlineFormSet
    extra = 0
    autocomplete_fields = ["user"]
    readonly_fields = ["created_at"]


@admin.register(Workspace)
class WorkspaceAdmin(SudoAdminMixin, RefusalsAsMessages, admin.ModelAdmin):
    list_display = ["slug", "name", "plan", "created_at"]
    list_filter = ["plan"]
    search_fields = ["slug", "name"]
    list_select_related = ["plan"]
    inlines = [MembershipInline]
    # Owners set these on the dashboard (Settings → Security), through workspace_policies_update.
    readonly_fields = [
        "require_two_factor", "app_access_policy", "trusted_app_domains",
        *CREDENTIAL_POLICY_FIELDS,
    ]

    def save_model(
        self, request: HttpRequest, obj: Workspace, form: forms.ModelForm, change: bool,
    ) -> None:
        if not change:
            # Its members come from the inline next, each through membership_add.
            created = workspace_create(
                slug=obj.slug, name=obj.name, owner=None, plan=obj.plan,
                actor=Actor.for_user(request.user), context=_context(request),
            )
            obj.pk, obj.created_at = created.pk, created.created_at
            return
        # Every change goes through a service and is audited: the plan is a change of access,
        # the name and slug are what cached API keys carry.
        stored = Workspace.objects.get(pk=obj.pk)
        actor, context = Actor.for_user(request.user), _context(request)
        edits = {field: getattr(obj, field) for field in WORKSPACE_EDITABLE_FIELDS
                 if field in form.changed_data}
        if edits:
            workspace_update(workspace=stored, changes=edits, actor=actor, context=context)
        if "plan" in form.changed_data:
            workspace_change_plan(workspace=stored, plan=obj.plan, actor=actor, context=context)
        if "overage_enabled" in form.changed_data:
            workspace_set_overage(workspace=stored, enabled=obj.overage_enabled, actor=actor,
                                  context=context)
        obj.refresh_from_db()

    # A workspace's audit history outlives nothing it protects (AuditEvent.workspace is PROTECT):
    # deleting one is not an operation Gatehouse offers; its members can be removed instead.
    def has_delete_permission(self, request: HttpRequest, obj: Workspace | None = None) -> bool:
        return False

    def save_formset(
        self, request: HttpRequest, form: forms.ModelForm, formset: BaseInlineFormSet, change: bool,
    ) -> None:
        if formset.model is not Membership:
            super().save_formset(request, form, formset, change)
            return
        workspace, context = form.instance, _context(request)
        formset.save(commit=False)
        # Owners first, removals last: the workspace never passes through having none. So new
        # members come first, then promotions to owner, then the other role changes (handing
        # ownership from one member to another in one save demotes the old owner last).
        for membership in formset.new_objects:
            membership_add(workspace=workspace, user=membership.user, role=membership.role,
                           actor=Actor.for_user(request.user), context=context)
        re_roled = [membership for membership, changed in formset.changed_objects
                    if "role" in changed]
        re_roled.sort(key=lambda membership: membership.role != Role.OWNER)
        for membership in re_roled:
            membership_change_role(membership=membership, role=membership.role,
                                   actor=Actor.for_user(request.user), context=context)
        for membership in formset.deleted_objects:
            membership_remove(
                membership=membership, actor=Actor.for_user(request.user), context=context
            )


@admin.register(Membership)
class MembershipAdmin(SudoAdminMixin, RefusalsAsMessages, admin.ModelAdmin):
    list_display = ["user", "workspace", "role", "created_at"]
    list_filter = ["role"]
    search_fields = ["user__email", "user__username", "workspace__slug"]
    list_select_related = ["user", "workspace"]
    autocomplete_fields = ["user", "workspace"]

    def get_readonly_fields(
        self, request: HttpRequest, obj: Membership | None = None
    ) -> list[str]:
        # A membership cannot change hands: remove it and add another.
        return ["user", "workspace", "created_at"] if obj is not None else ["created_at"]

    def save_model(
        self, request: HttpRequest, obj: Membership, form: forms.ModelForm, change: bool,
    ) -> None:
        context = _context(request)
        if not change:
            added = membership_add(workspace=obj.workspace, user=obj.user, role=obj.role,
                                   actor=Actor.for_user(request.user), context=context)
            obj.pk, obj.created_at = added.pk, added.created_at
        elif "role" in form.changed_data:
            new_role = obj.role
            obj.role = Membership.objects.get(pk=obj.pk).role
            membership_change_role(
                membership=obj, role=new_role, actor=Actor.for_user(request.user), context=context
            )
            obj.refresh_from_db()

    def get_deleted_objects(
        self, objs: Sequence[Any], request: HttpRequest
    ) -> tuple[list, dict, set, list]:
        """Admin's delete confirmation lists a workspace's last owner as protected, so the
        delete page and the "Delete selected" action refuse it before anything is removed."""
        deleted, model_count, perms_needed, protected = super().get_deleted_objects(objs, request)
        protected = [*protected, *(
            f"{membership}: {LAST_OWNER}" for membership in objs if _is_last_owner(membership)
        )]
        return deleted, model_count, perms_needed, protected

    def delete_model(self, request: HttpRequest, obj: Membership) -> None:
        membership_remove(
            membership=obj, actor=Actor.for_user(request.user), context=_context(request)
        )

    def delete_queryset(self, request: HttpRequest, queryset: QuerySet[Membership]) -> None:
        for membership in queryset:
            self.delete_model(request, membership)


# --- users --------------------------------------------------------------------------------------

User = get_user_model()
admin.site.unregister(User)


@admin.register(Invitation)
class InvitationAdmin(SudoAdminMixin, admin.ModelAdmin):
    """Invitations are made by owners on the dashboard (the email needs the link, which only the
    service sees). Ops can see them and cancel pending ones, through `invitation_cancel`."""

    list_display = ["email", "workspace", "role", "invited_by", "created_at", "expires_at",
                    "accepted_at", "cancelled_at"]
    list_filter = ["role"]
    search_fields = ["email", "workspace__slug"]
    list_select_related = ["workspace", "invited_by"]
    fields = ["email", "workspace", "role", "invited_by", "created_at", "sent_at", "expires_at",
              "accepted_at", "accepted_by", "cancelled_at"]  # never the digest
    readonly_fields = fields
    actions = ["cancel_selected"]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Invitation | None = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Invitation | None = None) -> bool:
        return False

    def has_cancel_permission(self, request: HttpRequest) -> bool:
        return request.user.is_superuser

    @admin.action(description="Cancel selected invitations", permissions=["cancel"])
    def cancel_selected(self, request: HttpRequest, queryset: QuerySet[Invitation]) -> None:
        cancelled = 0
        for invitation in queryset.pending():
            invitation_cancel(invitation=invitation, actor=Actor.for_user(request.user),
                              context=_context(request))
            cancelled += 1
        self.message_user(request, f"Cancelled {cancelled} invitation(s).", messages.SUCCESS)


@admin.register(User)
class UserAdmin(RefusalsAsMessages, DjangoUserAdmin):
    """Django's user admin, with every change of access through an audited service."""

    def save_model(
        self, request: HttpRequest, obj: AbstractBaseUser, form: forms.ModelForm, change: bool
    ) -> None:
        # The other fields are saved as Django does; the access flags as they were, and then
        # changed by the service, which records what changed.
        wanted = {field: getattr(obj, field) for field in USER_ACCESS_FIELDS}
        if change:
            stored = User.objects.get(pk=obj.pk)
            for field in USER_ACCESS_FIELDS:
                setattr(obj, field, getattr(stored, field))
        else:  # Django's add form carries none of them: a new user is active, not staff
            obj.is_active, obj.is_staff, obj.is_superuser = True, False, False
        super().save_model(request, obj, form, change)
        saved = user_change_access(user=obj, changes=wanted, actor=Actor.for_user(request.user),
                                   context=_context(request))
        for field in USER_ACCESS_FIELDS:
            setattr(obj, field, getattr(saved, field))

    def get_deleted_objects(
        self, objs: Sequence[Any], request: HttpRequest
    ) -> tuple[list, dict, set, list]:
        """The confirmation page (single and "Delete selected") lists a workspace's last owner
        as protected, naming the workspaces, so the deletion is refused before anything goes."""
        deleted, model_count, perms_needed, protected = super().get_deleted_objects(objs, request)
        # What goes with a user is ended through the services (`user_delete`): their memberships,
        # which need the permission to remove members, and with them their OAuth grants and
        # tokens — read-only in admin, so Django alone would refuse every user who ever
        # consented — ended and audited by the hooks.
        perms_needed = (set() if request.user.has_perm("workspaces.delete_membership")
                        else {Membership._meta.verbose_name})
        protected = [*protected, *(
            f"{user.get_username()}: {last_owner_refusal(sole)}"
            for user in objs if (sole := workspaces_only_owned_by(user))
        )]
        return deleted, model_count, perms_needed, protected

    def delete_model(self, request: HttpRequest, obj: AbstractBaseUser) -> None:
        user_delete(user=obj, actor=Actor.for_user(request.user), context=_context(request))

    def delete_queryset(self, request: HttpRequest, queryset: QuerySet) -> None:
        with transaction.atomic():  # all of the selected users, or none
            for user in queryset:
                self.delete_model(request, user)
