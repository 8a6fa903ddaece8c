from __future__ import annotations

from typing import TYPE_CHECKING

from django.conf import settings
from django.core.validators import RegexValidator
from django.db import models
from django.utils import timezone

from .credential_policy import MAX_LIFETIME_DAYS, PolicyMode
from .roles import Role

if TYPE_CHECKING:
    from django.contrib.auth.base_user import AbstractBaseUser
    from django.contrib.auth.models import AnonymousUser


class Plan(models.Model):
    """What a workspace buys (SPEC §2). Null limits mean unlimited. Editable by ops in admin."""

    code = models.SlugField(max_length=32, unique=True)
    name = models.CharField(max_length=64)
    writes_per_day = models.PositiveIntegerField(null=True, blank=True)
    passport_reads_per_day = models.PositiveIntegerField(null=True, blank=True)
    active_keys_limit = models.PositiveIntegerField()
    passports_limit = models.PositiveIntegerField(null=True, blank=True)
    overage_allowed = models.BooleanField(default=False)
    overage_price_cents = models.PositiveIntegerField(
        null=True, blank=True, help_text="Price per passport over the cap, in cents."
    )
    audit_retention_days = models.PositiveIntegerField(default=365)

    class Meta:
        ordering = ["id"]

    def __str__(self) -> str:
        return self.name


class WorkspaceQuerySet(models.QuerySet["Workspace"]):
    def for_user(self, user: AbstractBaseUser | AnonymousUser) -> WorkspaceQuerySet:
        if not user.is_authenticated:
            return self.none()
        return self.filter(memberships__user=user)


slug_validator = RegexValidator(
    r"^[a-z0-9](?:[a-z0-9-]{0,48}[a-z0-9])?$",
    "Use 1–50 lowercase letters, digits and hyphens, not starting or ending with a hyphen.",
)


class AppAccessPolicy(models.TextChoices):
    """Which OAuth apps members may connect to a workspace (SPEC §12)."""

    ANY = "any", "Members may connect any app"
    APPROVAL = "approval", "Apps need admin approval"
    REGISTERED = "registered", "Only apps registered by this workspace"


class Workspace(models.Model):
    slug = models.CharField(max_length=50, unique=True, validators=[slug_validator])
    name = models.CharField(max_length=100)
    plan = models.ForeignKey(Plan, on_delete=models.PROTECT, related_name="workspaces")
    created_at = models.DateTimeField(auto_now_add=True)
    # Owners' policies (SPEC §12), changed through `workspace_policies_update`.
    require_two_factor = models.BooleanField(default=False)
    app_access_policy = models.CharField(
        max_length=16, choices=AppAccessPolicy.choices, default=AppAccessPolicy.ANY
    )
    # Hosts whose apps (every redirect URI on one of them) are approved without asking.
    trusted_app_domains = models.JSONField(default=list, blank=True)
    # The credential policy (SPEC §12; workspaces.credential_policy).
    key_max_lifetime_days = models.PositiveSmallIntegerField(
        null=True, blank=True, choices=[(d, f"{d} days") for d in MAX_LIFETIME_DAYS],
        help_text="New and rotated keys must expire within this many days; empty: no maximum.",
    )
    # Environments keys may be created in; empty: any.
    key_environments = models.JSONField(default=list, blank=True)
    production_keys_need_ip_allowlist = models.BooleanField(default=False)
    # New OAuth grants reach only selected collections unless the user widens them.
    oauth_collections_by_default = models.BooleanField(default=False)
    credential_policy_mode = models.CharField(
        max_length=8, choices=PolicyMode.choices, default=PolicyMode.WARN
    )
    # Owners turn overage on (`workspace_set_overage`): on a plan that allows it, passports past
    # the cap are created and counted per UTC day (passports.PassportOverageDay).
    overage_enabled = models.BooleanField(default=False)

    objects = WorkspaceQuerySet.as_manager()

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class MembershipQuerySet(models.QuerySet["Membership"]):
    def for_workspace(self, workspace: Workspace) -> MembershipQuerySet:
        return self.filter(workspace=workspace)


class Membership(models.Model):
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="memberships"
    )
    workspace = models.ForeignKey(Workspace, on_delete=models.CASCADE, related_name="memberships")
    role = models.CharField(max_length=16, choices=Role.choices, default=Role.VIEWER)
    created_at = models.DateTimeField(auto_now_add=True)
    # When the member last opened one of the workspace's pages: sign-in lands in the latest.
    last_used_at = models.DateTimeField(null=True, blank=True)

    objects = MembershipQuerySet.as_manager()

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["user", "workspace"], name="membership_unique_user"),
            models.CheckConstraint(
                condition=models.Q(role__in=Role.values), name="membership_role_valid"
            ),
        ]
        ordering = ["workspace", "user__email"]

    def __str__(self) -> str:
        return f"{self.user} in {self.workspace} ({self.role})"


class SecurityAlertQuerySet(models.QuerySet["SecurityAlert"]):
    def for_workspace(self, workspace: Workspace) -> SecurityAlertQuerySet:
        return self.filter(workspace=workspace)

    def open(self) -> SecurityAlertQuerySet:
        return self.filter(acknowledged_at__isnull=True)


class SecurityAlert(models.Model):
    """Something the workspace's admins must see: a banner on every dashboard page until one of
    them acknowledges it. Today: a credential reported as leaked and revoked at once
    (`gateway.leaks`)."""

    class Kind(models.TextChoices):
        CREDENTIAL_LEAKED = "credential_leaked", "Leaked credential revoked"

    workspace = models.ForeignKey(
        Workspace, on_delete=models.CASCADE, related_name="security_alerts"
    )
    kind = models.CharField(max_length=32, choices=Kind.choices)
    # What it is about, in words an admin recognises: "API key Deploy (gk_prod_…a1b2)".
    subject = models.CharField(max_length=200)
    reporter_ip = models.GenericIPAddressField(null=True, blank=True)
    url = models.CharField(max_length=500, blank=True, help_text="Where it was found.")
    created_at = models.DateTimeField(default=timezone.now)
    acknowledged_at = models.DateTimeField(null=True, blank=True)
    acknowledged_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )

    objects = SecurityAlertQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at"]
        indexes = [
            models.Index(
                fields=["workspace"], condition=models.Q(acknowledged_at__isnull=True),
                name="securityalert_open",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.get_kind_display()}: {self.subject}"


class InvitationQuerySet(models.QuerySet["Invitation"]):
    def for_workspace(self, workspace: Workspace) -> InvitationQuerySet:
        return self.filter(workspace=workspace)

    def pending(self) -> InvitationQuerySet:
        """Neither accepted nor cancelled (it may have expired: the list says so)."""
        return self.filter(accepted_at__isnull=True, cancelled_at__isnull=True)


class Invitation(models.Model):
    """An owner's invitation of an email address into a workspace with a role (SPEC §12).

    The link carries a `gin_…` token; only its SHA-256 digest is stored (a database read does not
    yield a usable link). Single use (accepting stamps `accepted_at`), it expires after
    `INVITATION_LIFETIME`; resending issues a new token and a new expiry, so an older link stops
    working.
    """

    workspace = models.ForeignKey(Workspace, on_delete=models.CASCADE, related_name="invitations")
    email = models.EmailField()
    role = models.CharField(max_length=16, choices=Role.choices, default=Role.VIEWER)
    token_digest = models.CharField(max_length=64, unique=True)
    invited_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(default=timezone.now)
    sent_at = models.DateTimeField(default=timezone.now)
    expires_at = models.DateTimeField()
    accepted_at = models.DateTimeField(null=True, blank=True)
    accepted_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    cancelled_at = models.DateTimeField(null=True, blank=True)

    objects = InvitationQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at"]
        constraints = [
            models.CheckConstraint(
                condition=models.Q(role__in=Role.values), name="invitation_role_valid"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.email} to {self.workspace} ({self.role})"

    @property
    def is_expired(self) -> bool:
        return self.expires_at <= timezone.now()
