"""Writes for workspaces, memberships and plans, each audited in the same transaction."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone

from audit.services import audit_record
from audit.twofactor import two_factor_enabled
from core.context import Actor, RequestContext
from core.versions import epoch_bump

from .credential_policy import CREDENTIAL_POLICY_FIELDS, policy_errors
from .hooks import membership_removed_hooks, user_deleting_hooks
from .models import Membership, Plan, SecurityAlert, Workspace
from .roles import Role
from .selectors import workspaces_only_owned_by

if TYPE_CHECKING:
    from django.contrib.auth.base_user import AbstractBaseUser

# Plan fields an edit is recorded with (before → after); all of them are limits or prices.
PLAN_FIELDS = (
    "code", "name", "writes_per_day", "passport_reads_per_day", "active_keys_limit",
    "passports_limit", "overage_allowed", "overage_price_cents", "audit_retention_days",
)


def _audit_workspace(
    workspace: Workspace, action: str, *, actor: Actor, context: RequestContext, metadata: dict
) -> None:
    audit_record(
        action=action, actor=actor, workspace=workspace, target_type="workspace",
        target_id=workspace.slug, target_label=workspace.name, context=context, metadata=metadata,
    )


def workspace_create(
    *,
    slug: str,
    name: str,
    owner: AbstractBaseUser | None,
    plan: Plan,
    actor: Actor,
    context: RequestContext,
) -> Workspace:
    """Create a workspace with `owner` as its owner; `owner=None` is Django admin's add, whose
    members are then added one by one (`membership_add`)."""
    workspace = Workspace(slug=slug, name=name, plan=plan)
    workspace.full_clean()
    with transaction.atomic():
        workspace.save()
        if owner is not None:
            Membership.objects.create(user=owner, workspace=workspace, role=Role.OWNER)
        _audit_workspace(
            workspace, "workspace.created", actor=actor, context=context,
            metadata={"plan": plan.code},
        )
    return workspace


def membership_add(
    *,
    workspace: Workspace,
    user: AbstractBaseUser,
    role: str,
    actor: Actor,
    context: RequestContext,
) -> Membership:
    with transaction.atomic():
        membership = Membership.objects.create(user=user, workspace=workspace, role=Role(role))
        audit_record(
            action="member.added",
            actor=actor,
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
    actor: Actor,
    context: RequestContext,
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
        epoch_bump()  # cached OAuth tokens carry the granting user's role
        audit_record(
            action="member.role_changed",
            actor=actor,
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
    actor: Actor,
    context: RequestContext,
) -> None:
    """Remove a member; refuses to remove the last owner. What the member held in the workspace
    through apps above ends with it, in the same transaction (`workspaces.hooks`: OAuth ends
    their grants there), so re-adding the member later revives nothing without new consent."""
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
        epoch_bump()  # cached OAuth tokens carry the granting user's role
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


# A user's flags that grant or withhold access: signing in at all, and Django admin (staff sees
# every tenant; a superuser may change anything there).
USER_ACCESS_FIELDS = ("is_active", "is_staff", "is_superuser")
STAFF_FIELDS = ("is_staff", "is_superuser")


def _user_target(user: AbstractBaseUser) -> dict:
    return {"target_type": "user", "target_id": str(user.pk), "target_label": user.get_username()}


def last_owner_refusal(workspaces: list[Workspace]) -> str:
    names = ", ".join(f"{workspace.name} ({workspace.slug})" for workspace in workspaces)
    return (f"This user is the last owner of {names}: make another member owner there first "
            "(a workspace needs at least one owner).")


def user_delete(
    *,
    user: AbstractBaseUser,
    actor: Actor,
    context: RequestContext,
) -> None:
    """Delete a user account: first each of their memberships goes through `membership_remove`
    (audited per workspace; the hooks end their OAuth grants there), then the user-deleting
    hooks (oauth keeps the apps they registered), then `user.deleted` on the workspace-less
    chain, then the row — all in one transaction. Refused, with nothing done, when
    the user is the last owner of any workspace (each is named)."""
    user_model = type(user)
    with transaction.atomic():
        user = user_model.objects.select_for_update().get(pk=user.pk)
        sole = workspaces_only_owned_by(user)
        if sole:
            raise ValidationError(last_owner_refusal(sole))
        memberships = list(
            Membership.objects.filter(user=user).select_related("workspace")
            .order_by("workspace__slug")
        )
        for membership in memberships:
            membership_remove(membership=membership, actor=actor, context=context)
        for hook in user_deleting_hooks():
            hook(user=user, actor=actor, context=context)
        audit_record(
            action="user.deleted",
            actor=actor,
            context=context,
            metadata={
                "workspaces": [membership.workspace.slug for membership in memberships],
                **{field: getattr(user, field) for field in STAFF_FIELDS},
            },
            **_user_target(user),
        )
        user.delete()
        epoch_bump()


def user_change_access(
    *,
    user: AbstractBaseUser,
    changes: dict,
    actor: Actor,
    context: RequestContext,
) -> object:
    """Change a user's access flags (`changes`: field of USER_ACCESS_FIELDS → bool), on the
    workspace-less chain: `user.deactivated` / `user.reactivated` (an inactive user cannot sign
    in, their sessions stop working and the gateway refuses their OAuth tokens), and
    `user.staff_changed` with each staff flag before → after (Django admin sees every tenant).
    An unchanged flag records nothing. Returns the user as saved."""
    unknown = set(changes) - set(USER_ACCESS_FIELDS)
    if unknown:
        raise ValidationError(f"Not an access flag: {', '.join(sorted(unknown))}.")
    with transaction.atomic():
        user = type(user).objects.select_for_update().get(pk=user.pk)
        before = {field: getattr(user, field) for field in USER_ACCESS_FIELDS}
        for field, value in changes.items():
            setattr(user, field, bool(value))
        changed = [field for field in USER_ACCESS_FIELDS if getattr(user, field) != before[field]]
        if not changed:
            return user
        user.save(update_fields=changed)
        epoch_bump()  # a deactivated user's OAuth grants stop at once on every process
        if "is_active" in changed:
            audit_record(
                action="user.reactivated" if user.is_active else "user.deactivated",
                actor=actor, context=context, **_user_target(user),
            )
        staff = {
            field: {"from": before[field], "to": getattr(user, field)}
            for field in STAFF_FIELDS if field in changed
        }
        if staff:
            audit_record(
                action="user.staff_changed", actor=actor, context=context,
                metadata={"changed": staff}, **_user_target(user),
            )
    return user


WORKSPACE_EDITABLE_FIELDS = ("name", "slug")


def workspace_update(
    *,
    workspace: Workspace,
    changes: dict[str, str],
    actor: Actor,
    context: RequestContext,
) -> Workspace:
    """Rename a workspace or change its slug (`changes`: field → new value), audited as
    `workspace.updated` with each field before → after. Cached API keys carry their workspace,
    so every process reads it again on its next request. The plan changes through
    `workspace_change_plan`."""
    unknown = set(changes) - set(WORKSPACE_EDITABLE_FIELDS)
    if unknown:
        raise ValidationError(f"Not an editable workspace field: {', '.join(sorted(unknown))}.")
    with transaction.atomic():
        workspace = Workspace.objects.select_for_update().get(pk=workspace.pk)
        before = {field: getattr(workspace, field) for field in changes}
        for field, value in changes.items():
            setattr(workspace, field, value)
        changed = {field: {"from": before[field], "to": getattr(workspace, field)}
                   for field in changes if getattr(workspace, field) != before[field]}
        if not changed:
            return workspace
        workspace.full_clean()
        workspace.save(update_fields=list(changed))
        epoch_bump()
        _audit_workspace(
            workspace, "workspace.updated", actor=actor, context=context,
            metadata={"changed": changed},
        )
    return workspace


def workspace_change_plan(
    *,
    workspace: Workspace,
    plan: Plan,
    actor: Actor,
    context: RequestContext,
) -> Workspace:
    with transaction.atomic():
        workspace = Workspace.objects.select_for_update().get(pk=workspace.pk)
        old_code = workspace.plan.code
        if old_code == plan.code:
            return workspace
        workspace.plan = plan
        workspace.save(update_fields=["plan"])
        epoch_bump()  # cached API keys carry their workspace's plan
        _audit_workspace(
            workspace, "plan.changed", actor=actor, context=context,
            metadata={"from": old_code, "to": plan.code},
        )
    return workspace


def _plan_values(plan: Plan) -> dict:
    return {field: getattr(plan, field) for field in PLAN_FIELDS}


def _audit_plan(plan: Plan, action: str, *, actor: Actor, context: RequestContext,
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


def plan_create(*, values: dict, actor: Actor, context: RequestContext) -> Plan:
    plan = Plan(**{field: value for field, value in values.items() if field in PLAN_FIELDS})
    plan.full_clean()
    with transaction.atomic():
        plan.save()
        _audit_plan(plan, "plan.created", actor=actor, context=context,
                    metadata={"values": _plan_values(plan)})
    return plan


def plan_update(
    *, plan: Plan, changes: dict, actor: Actor, context: RequestContext
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
        epoch_bump()
        _audit_plan(plan, "plan.updated", actor=actor, context=context,
                    metadata={"changed": changed})
    return plan


def plan_delete(*, plan: Plan, actor: Actor, context: RequestContext) -> None:
    """Delete a plan no workspace is on (a plan in use is protected by its workspaces)."""
    with transaction.atomic():
        plan = Plan.objects.select_for_update().get(pk=plan.pk)
        if Workspace.objects.filter(plan=plan).exists():
            raise ValidationError("Workspaces are on this plan; move them to another first.")
        _audit_plan(plan, "plan.deleted", actor=actor, context=context,
                    metadata={"values": _plan_values(plan)})
        plan.delete()


def security_alerts_acknowledge(*, workspace: Workspace, actor: Actor) -> int:
    """Dismiss the workspace's open security alerts: the banner goes away for every member."""
    return SecurityAlert.objects.for_workspace(workspace).open().update(
        acknowledged_at=timezone.now(), acknowledged_by=actor.user
    )


MAX_TRUSTED_DOMAINS = 20
_DOMAIN = re.compile(r"^(?=.{4,253}$)(?:[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z]{2,63}$")


def trusted_domains_normalize(values: list[str]) -> list[str]:
    """The trusted app domains as stored: lowercase host names (a leading `*.` or trailing dot
    dropped), without duplicates, at most `MAX_TRUSTED_DOMAINS`. A domain trusts itself and its
    subdomains, so bare top-level names, IP addresses and localhost are refused: they would
    trust apps anyone can run."""
    domains: list[str] = []
    for raw in values:
        value = str(raw).strip().lower().removeprefix("*.").rstrip(".")
        if not value:
            continue
        try:
            value = value.encode("idna").decode("ascii")
        except UnicodeError:
            value = "\x00"  # refused below
        if not _DOMAIN.fullmatch(value):
            shown = str(raw).encode("unicode_escape").decode("ascii")[:80]
            raise ValidationError({"trusted_app_domains": (
                f"“{shown}” is not a domain name (such as apps.example.com)."
            )})
        if value not in domains:
            domains.append(value)
    if len(domains) > MAX_TRUSTED_DOMAINS:
        raise ValidationError(
            {"trusted_app_domains": f"List at most {MAX_TRUSTED_DOMAINS} trusted domains."}
        )
    return domains
POLICY_FIELDS = (
    "require_two_factor", "app_access_policy", "trusted_app_domains", *CREDENTIAL_POLICY_FIELDS,
)


def workspace_policies_update(
    *, workspace: Workspace, changes: dict, actor: Actor, context: RequestContext
) -> Workspace:
    """Change the owners' policies of SPEC §12 (`changes`: some of `POLICY_FIELDS`), audited as
    `policy.changed` with each field before → after; the credential policy
    (`workspaces.credential_policy`) applies to every key's next request on every process.
    Requiring two-factor sign-in is refused to a person who has not turned it on themselves (they
    would lock themselves out first)."""
    unknown = set(changes) - set(POLICY_FIELDS)
    if unknown:
        raise ValidationError(f"Not a policy: {', '.join(sorted(unknown))}.")
    if "trusted_app_domains" in changes:
        changes = {**changes,
                   "trusted_app_domains": trusted_domains_normalize(changes["trusted_app_domains"])}
    if errors := policy_errors(changes):
        raise ValidationError(errors)
    if "key_environments" in changes:
        changes = {**changes, "key_environments": sorted(set(changes["key_environments"]))}
    if changes.get("require_two_factor") and actor.user is not None and not two_factor_enabled(
        actor.user
    ):
        raise ValidationError(
            "Turn on two-factor sign-in for yourself before requiring it for the workspace."
        )
    with transaction.atomic():
        workspace = Workspace.objects.select_for_update().get(pk=workspace.pk)
        changed = {field: {"from": getattr(workspace, field), "to": value}
                   for field, value in changes.items() if getattr(workspace, field) != value}
        if not changed:
            return workspace
        for field in changed:
            setattr(workspace, field, changes[field])
        workspace.full_clean()
        workspace.save(update_fields=list(changed))
        if set(changed) & set(CREDENTIAL_POLICY_FIELDS):
            epoch_bump()  # cached keys carry their workspace: the next request sees the policy
        audit_record(
            action="policy.changed", actor=actor, workspace=workspace,
            target_type="workspace", target_id=workspace.slug, target_label=workspace.name,
            context=context, metadata={"changed": changed},
        )
    return workspace
