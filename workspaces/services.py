"""Writes for workspaces, memberships and plans, each audited in the same transaction."""

from __future__ import annotations

import hashlib
import re
from datetime import timedelta
from typing import TYPE_CHECKING

from django.contrib.auth import get_user_model
from django.contrib.auth.password_validation import validate_password
from django.core.exceptions import ValidationError
from django.core.mail import send_mail
from django.db import transaction
from django.urls import reverse
from django.utils import timezone

from audit.services import audit_record
from audit.twofactor import two_factor_enabled
from core.context import Actor, RequestContext
from core.ids import random_base62
from core.versions import epoch_bump

from .credential_policy import CREDENTIAL_POLICY_FIELDS, policy_errors
from .hooks import membership_removed_hooks, user_deleting_hooks
from .models import Invitation, Membership, Plan, SecurityAlert, Workspace
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


def workspace_set_overage(
    *,
    workspace: Workspace,
    enabled: bool,
    actor: Actor,
    context: RequestContext,
) -> Workspace:
    """Turn overage on or off (SPEC §12), audited as `plan.overage_enabled` /
    `plan.overage_disabled`. Turning it on is refused on a plan without overage. With it on,
    passports past the plan's cap are created and counted per UTC day (passports.services)."""
    with transaction.atomic():
        workspace = Workspace.objects.select_for_update().select_related("plan").get(
            pk=workspace.pk
        )
        if enabled and not workspace.plan.overage_allowed:
            raise ValidationError(
                f"The {workspace.plan.name} plan has no overage: choose a plan with overage first."
            )
        if workspace.overage_enabled == enabled:
            return workspace
        workspace.overage_enabled = enabled
        workspace.save(update_fields=["overage_enabled"])
        epoch_bump()  # cached API keys carry their workspace
        _audit_workspace(
            workspace, "plan.overage_enabled" if enabled else "plan.overage_disabled",
            actor=actor, context=context,
            metadata={"plan": workspace.plan.code,
                      "price_cents": workspace.plan.overage_price_cents},
        )
    return workspace


# --- Invitations (SPEC §12) ----------------------------------------------------------------------

INVITATION_PREFIX = "gin_"
INVITATION_LIFETIME = timedelta(days=7)


def invitation_digest(token: str) -> str:
    """What is stored of an invitation token: its SHA-256 (the token has ~178 random bits, so a
    plain hash is as good as a keyed one, and survives a SECRET_KEY rotation)."""
    return hashlib.sha256(token.encode("utf-8", "surrogatepass")).hexdigest()


def _new_invitation_token() -> tuple[str, str]:
    token = INVITATION_PREFIX + random_base62(30)
    return token, invitation_digest(token)


def _send_invitation(invitation: Invitation, token: str, *, origin: str) -> None:
    link = origin.rstrip("/") + reverse("workspaces:invitation", kwargs={"token": token})
    inviter = invitation.invited_by.get_username() if invitation.invited_by else "An owner"
    send_mail(
        subject=f"You are invited to {invitation.workspace.name} on Gatehouse",
        message=(
            f"{inviter} invited you to the workspace {invitation.workspace.name} on Gatehouse "
            f"as {invitation.get_role_display().lower()}.\n\n"
            f"Accept the invitation: {link}\n\n"
            f"The link works once and expires on "
            f"{invitation.expires_at:%Y-%m-%d %H:%M} UTC. If you did not expect it, ignore "
            "this email.\n"
        ),
        from_email=None,
        recipient_list=[invitation.email],
    )


def _audit_invitation(invitation: Invitation, action: str, *, actor: Actor,
                      context: RequestContext, metadata: dict | None = None) -> None:
    audit_record(
        action=action, actor=actor, workspace=invitation.workspace, target_type="invitation",
        target_id=str(invitation.pk), target_label=invitation.email, context=context,
        metadata={"email": invitation.email, "role": invitation.role, **(metadata or {})},
    )


def invitation_create(
    *,
    workspace: Workspace,
    email: str,
    role: str,
    origin: str,
    actor: Actor,
    context: RequestContext,
) -> tuple[Invitation, str]:
    """Invite `email` with `role` (`member.invited`) and email them the link (Django's mail
    framework, after the commit). Refused for a member's address and for an address with a
    pending invitation (resend that one). Returns the invitation and its token."""
    email = get_user_model().objects.normalize_email(email.strip())
    role = Role(role)
    with transaction.atomic():
        list(Workspace.objects.select_for_update().filter(pk=workspace.pk).values_list("pk"))
        if Membership.objects.for_workspace(workspace).filter(user__email__iexact=email).exists():
            raise ValidationError({"email": f"{email} is already a member of this workspace."})
        if (Invitation.objects.for_workspace(workspace).pending()
                .filter(email__iexact=email, expires_at__gt=timezone.now()).exists()):
            raise ValidationError(
                {"email": f"{email} already has a pending invitation: resend it instead."}
            )
        token, digest = _new_invitation_token()
        now = timezone.now()
        invitation = Invitation(
            workspace=workspace, email=email, role=role, token_digest=digest,
            invited_by=actor.user, created_at=now, sent_at=now,
            expires_at=now + INVITATION_LIFETIME,
        )
        invitation.full_clean()
        invitation.save()
        _audit_invitation(invitation, "member.invited", actor=actor, context=context)
    _send_invitation(invitation, token, origin=origin)
    return invitation, token


def invitation_resend(
    *, invitation: Invitation, origin: str, actor: Actor, context: RequestContext
) -> tuple[Invitation, str]:
    """A new link for a pending invitation (the old one stops working) with a new expiry,
    emailed again (`member.invitation_resent`)."""
    with transaction.atomic():
        invitation = Invitation.objects.select_for_update().select_related("workspace").get(
            pk=invitation.pk
        )
        if invitation.accepted_at or invitation.cancelled_at:
            raise ValidationError("This invitation was already accepted or cancelled.")
        token, digest = _new_invitation_token()
        now = timezone.now()
        invitation.token_digest = digest
        invitation.sent_at = now
        invitation.expires_at = now + INVITATION_LIFETIME
        invitation.save(update_fields=["token_digest", "sent_at", "expires_at"])
        _audit_invitation(invitation, "member.invitation_resent", actor=actor, context=context)
    _send_invitation(invitation, token, origin=origin)
    return invitation, token


def invitation_cancel(
    *, invitation: Invitation, actor: Actor, context: RequestContext
) -> Invitation:
    """Withdraw a pending invitation: its link stops working (`member.invitation_cancelled`)."""
    with transaction.atomic():
        invitation = Invitation.objects.select_for_update().select_related("workspace").get(
            pk=invitation.pk
        )
        if invitation.accepted_at or invitation.cancelled_at:
            raise ValidationError("This invitation was already accepted or cancelled.")
        invitation.cancelled_at = timezone.now()
        invitation.save(update_fields=["cancelled_at"])
        _audit_invitation(invitation, "member.invitation_cancelled", actor=actor,
                          context=context)
    return invitation


INVITATION_UNUSABLE = "This invitation link is not valid any more: it was used, cancelled, " \
    "replaced by a newer one, or it expired. Ask an owner of the workspace to invite you again."


def invitation_for_token(token: str) -> Invitation | None:
    """The pending, unexpired invitation of this token, or None (whatever the reason)."""
    if not token.startswith(INVITATION_PREFIX) or len(token) > 100:
        return None
    return (
        Invitation.objects.pending().select_related("workspace", "invited_by")
        .filter(token_digest=invitation_digest(token), expires_at__gt=timezone.now()).first()
    )


def invitation_accept(
    *, token: str, user: AbstractBaseUser, context: RequestContext
) -> Membership:
    """The signed-in `user` accepts: they become a member with the invited role (`member.added`
    by the accepting user, after `member.invitation_accepted`). The link is spent. Refused when
    the link is unusable, or the user's email is not the invited one (a forwarded link does not
    let someone else in)."""
    actor = Actor.for_user(user)
    with transaction.atomic():
        invitation = (
            Invitation.objects.select_for_update().select_related("workspace")
            .filter(pk=getattr(invitation_for_token(token), "pk", None)).first()
        )
        if invitation is None or invitation.accepted_at or invitation.cancelled_at \
                or invitation.is_expired:
            raise ValidationError(INVITATION_UNUSABLE)
        if (user.email or "").lower() != invitation.email.lower():
            raise ValidationError(
                f"This invitation is for {invitation.email}; you are signed in as "
                f"{user.email or user.get_username()}. Sign in with the invited address."
            )
        invitation.accepted_at = timezone.now()
        invitation.accepted_by = user
        invitation.save(update_fields=["accepted_at", "accepted_by"])
        _audit_invitation(invitation, "member.invitation_accepted", actor=actor, context=context)
        existing = Membership.objects.filter(workspace=invitation.workspace, user=user).first()
        if existing is not None:
            return existing
        return membership_add(workspace=invitation.workspace, user=user, role=invitation.role,
                              actor=actor, context=context)


def invitation_accept_as_new_user(
    *, token: str, password: str, context: RequestContext
) -> tuple[AbstractBaseUser, Membership]:
    """Someone without an account accepts: an account for the invited email with `password`
    (Django's password validators), then `invitation_accept`. Refused, with nothing created,
    when an account with that email exists (they sign in and accept)."""
    User = get_user_model()
    with transaction.atomic():
        invitation = invitation_for_token(token)
        if invitation is None:
            raise ValidationError(INVITATION_UNUSABLE)
        if User.objects.filter(email__iexact=invitation.email).exists():
            raise ValidationError(
                f"An account for {invitation.email} exists: sign in to accept the invitation."
            )
        user = User(username=invitation.email, email=invitation.email)
        validate_password(password, user)
        user.set_password(password)
        user.save()
        membership = invitation_accept(token=token, user=user, context=context)
    return user, membership


def membership_touch(*, membership: Membership) -> None:
    """Remember the workspace a member used last (sign-in lands there); at most once a minute."""
    now = timezone.now()
    if membership.last_used_at and now - membership.last_used_at < timedelta(minutes=1):
        return
    Membership.objects.filter(pk=membership.pk).update(last_used_at=now)
    membership.last_used_at = now


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
