"""Writes for workspaces, memberships and plans, each audited in the same transaction."""

from __future__ import annotations

from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone

from apikeys.keycache import keycache_invalidate
from audit.services import Actor, RequestContext, audit_record

from .hooks import membership_removed_hooks
from .models import Membership, Plan, SecurityAlert, Workspace
from .roles import Role

# Plan fields an edit is recorded with (before → after); all of them are limits or prices.
PLAN_FIELDS = (
    "code", "name", "writes_per_day", "passport_reads_per_day", "active_keys_limit",
    "passports_limit", "overage_allowed", "overage_price_cents", "audit_retention_days",
)


def workspace_create(
    *,
    slug: str,
    name: str,
    owner,  # noqa: ANN001
    plan: Plan,
    actor: Actor | None = None,
    context: RequestContext | None = None,
) -> Workspace:
    """Create a workspace with `owner` as its owner; `owner=None` is Django admin's add, whose
    members are then added one by one (`membership_add`). The actor defaults to the owner."""
    workspace = Workspace(slug=slug, name=name, plan=plan)
    workspace.full_clean()
    with transaction.atomic():
        workspace.save()
        if owner is not None:
            Membership.objects.create(user=owner, workspace=workspace, role=Role.OWNER)
        audit_record(
            action="workspace.created",
            actor=actor or Actor.for_user(owner),
            workspace=workspace,
            target_type="workspace",
            target_id=workspace.slug,
            target_label=workspace.name,
            context=context,
            metadata={"plan": plan.code},
        )
    return workspace


def membership_add(
    *,
    workspace: Workspace,
    user,  # noqa: ANN001
    role: str,
    acting_user,  # noqa: ANN001
    context: RequestContext | None = None,
) -> Membership:
    with transaction.atomic():
        membership = Membership.objects.create(user=user, workspace=workspace, role=Role(role))
        audit_record(
            action="member.added",
            actor=Actor.for_user(acting_user),
            workspace=workspace,
            target_type="user",
            target_id=str(user.pk),
            target_label=user.get_username(),
            context=context,
            metadata={"role": role},
        )
    return membership


def membership_change_role(
    *,
    membership: Membership,
    role: str,
    acting_user,  # noqa: ANN001
    context: RequestContext | None = None,
) -> Membership:
    """Change a member's role; refuses to leave a workspace without an owner."""
    new_role = Role(role)
    with transaction.atomic():
        membership = Membership.objects.select_for_update().get(pk=membership.pk)
        old_role = membership.role
        if old_role == new_role:
            return membership
        if old_role == Role.OWNER:
            owners = (
                Membership.objects.select_for_update()
                .filter(workspace_id=membership.workspace_id, role=Role.OWNER)
                .count()
            )
            if owners <= 1:
                raise ValidationError("A workspace needs at least one owner.")
        membership.role = new_role
        membership.save(update_fields=["role"])
        audit_record(
            action="member.role_changed",
            actor=Actor.for_user(acting_user),
            workspace=membership.workspace,
            target_type="user",
            target_id=str(membership.user_id),
            target_label=membership.user.get_username(),
            context=context,
            metadata={"from": old_role, "to": new_role.value},
        )
    return membership


def _refuse_last_owner(membership: Membership) -> None:
    """Lock the workspace's owners; refuse when `membership` is the only one (SPEC §12)."""
    owners = list(
        Membership.objects.select_for_update()
        .filter(workspace_id=membership.workspace_id, role=Role.OWNER)
        .values_list("pk", flat=True)
    )
    if owners == [membership.pk]:
        raise ValidationError("A workspace needs at least one owner.")


def membership_remove(
    *,
    membership: Membership,
    acting_user,  # noqa: ANN001
    context: RequestContext | None = None,
) -> None:
    """Remove a member; refuses to remove the last owner. What the member held in the workspace
    through apps above ends with it, in the same transaction (`workspaces.hooks`: OAuth ends
    their grants there), so re-adding the member later revives nothing without new consent."""
    actor = Actor.for_user(acting_user)
    with transaction.atomic():
        membership = (
            Membership.objects.select_for_update()
            .select_related("user", "workspace")
            .get(pk=membership.pk)
        )
        if membership.role == Role.OWNER:
            _refuse_last_owner(membership)
        removed_pk = membership.pk
        membership.delete()
        membership.pk = removed_pk  # hooks and the event still name the row that was removed
        audit_record(
            action="member.removed",
            actor=actor,
            workspace=membership.workspace,
            target_type="user",
            target_id=str(membership.user_id),
            target_label=membership.user.get_username(),
            context=context,
            metadata={"role": membership.role},
        )
        for hook in membership_removed_hooks():
            hook(membership=membership, actor=actor, context=context)


def workspace_change_plan(
    *,
    workspace: Workspace,
    plan: Plan,
    actor: Actor,
    context: RequestContext | None = None,
) -> Workspace:
    with transaction.atomic():
        workspace = Workspace.objects.select_for_update().get(pk=workspace.pk)
        old_code = workspace.plan.code
        if old_code == plan.code:
            return workspace
        workspace.plan = plan
        workspace.save(update_fields=["plan"])
        keycache_invalidate()  # cached API keys carry their workspace's plan
        audit_record(
            action="plan.changed",
            actor=actor,
            workspace=workspace,
            target_type="workspace",
            target_id=workspace.slug,
            target_label=workspace.name,
            context=context,
            metadata={"from": old_code, "to": plan.code},
        )
    return workspace


def _plan_values(plan: Plan) -> dict:
    return {field: getattr(plan, field) for field in PLAN_FIELDS}


def _audit_plan(plan: Plan, action: str, *, actor: Actor, context: RequestContext | None,
                metadata: dict) -> None:
    # Plans are shared by workspaces, so their edits go on the workspace-less chain, with how
    # many workspaces each touched.
    audit_record(
        action=action,
        actor=actor,
        target_type="plan",
        target_id=plan.code,
        target_label=plan.name,
        context=context,
        metadata={**metadata, "workspaces": Workspace.objects.filter(plan=plan).count()},
    )


def plan_create(*, values: dict, actor: Actor, context: RequestContext | None = None) -> Plan:
    plan = Plan(**{field: value for field, value in values.items() if field in PLAN_FIELDS})
    plan.full_clean()
    with transaction.atomic():
        plan.save()
        _audit_plan(plan, "plan.created", actor=actor, context=context,
                    metadata={"values": _plan_values(plan)})
    return plan


def plan_update(
    *, plan: Plan, changes: dict, actor: Actor, context: RequestContext | None = None
) -> Plan:
    """Change a plan's limits or prices (`changes`: field → new value), recorded field by field
    as before → after. Every process's cached API keys carry their plan: they are invalidated."""
    unknown = set(changes) - set(PLAN_FIELDS)
    if unknown:
        raise ValidationError(f"Not a plan field: {', '.join(sorted(unknown))}.")
    with transaction.atomic():
        plan = Plan.objects.select_for_update().get(pk=plan.pk)
        before = _plan_values(plan)
        for field, value in changes.items():
            setattr(plan, field, value)
        plan.full_clean()
        changed = {
            field: {"from": before[field], "to": getattr(plan, field)}
            for field in PLAN_FIELDS
            if getattr(plan, field) != before[field]
        }
        if not changed:
            return plan
        plan.save(update_fields=list(changed))
        keycache_invalidate()
        _audit_plan(plan, "plan.updated", actor=actor, context=context,
                    metadata={"changed": changed})
    return plan


def plan_delete(*, plan: Plan, actor: Actor, context: RequestContext | None = None) -> None:
    """Delete a plan no workspace is on (a plan in use is protected by its workspaces)."""
    with transaction.atomic():
        plan = Plan.objects.select_for_update().get(pk=plan.pk)
        if Workspace.objects.filter(plan=plan).exists():
            raise ValidationError("Workspaces are on this plan; move them to another first.")
        _audit_plan(plan, "plan.deleted", actor=actor, context=context,
                    metadata={"values": _plan_values(plan)})
        plan.delete()


def security_alerts_acknowledge(*, workspace: Workspace, acting_user) -> int:  # noqa: ANN001
    """Dismiss the workspace's open security alerts: the banner goes away for every member."""
    return SecurityAlert.objects.for_workspace(workspace).open().update(
        acknowledged_at=timezone.now(), acknowledged_by=acting_user
    )
