"""Writes for workspaces, memberships and plans, each audited in the same transaction."""

from __future__ import annotations

from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone

from apikeys.keycache import keycache_invalidate
from audit.services import Actor, RequestContext, audit_record

from .models import Membership, Plan, SecurityAlert, Workspace
from .roles import Role


def workspace_create(
    *,
    slug: str,
    name: str,
    owner,  # noqa: ANN001
    plan: Plan,
    context: RequestContext | None = None,
) -> Workspace:
    workspace = Workspace(slug=slug, name=name, plan=plan)
    workspace.full_clean()
    with transaction.atomic():
        workspace.save()
        Membership.objects.create(user=owner, workspace=workspace, role=Role.OWNER)
        audit_record(
            action="workspace.created",
            actor=Actor.for_user(owner),
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


def security_alerts_acknowledge(*, workspace: Workspace, acting_user) -> int:  # noqa: ANN001
    """Dismiss the workspace's open security alerts: the banner goes away for every member."""
    return SecurityAlert.objects.for_workspace(workspace).open().update(
        acknowledged_at=timezone.now(), acknowledged_by=acting_user
    )
