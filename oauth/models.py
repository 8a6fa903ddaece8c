"""Gatehouse's side of django-oauth-toolkit: which workspace an app and every grant belong to.

DOT's own models (Application, Grant, AccessToken, RefreshToken) are used unchanged. Instead of
swapping them — DOT's swappable token models form a migration cycle (DOT issues #487, #1221) that
needs every model swapped plus `run_before` tricks — each DOT row that matters is linked here by a
one-to-one side row:

- `WorkspaceApp`: an app registered from a workspace's dashboard (dynamically registered apps
  have none);
- `Connection`: one user's consent for one app in one workspace — the "grant" that Connected apps
  lists and revokes, and that every token of it belongs to;
- `GrantLink`, `AccessTokenLink`, `RefreshTokenLink`: which connection an authorization code and
  each token belong to. They cascade with the DOT row, so revoking (deleting) a token removes its
  link, and deleting a connection deletes its links.
"""

from __future__ import annotations

from datetime import timedelta
from typing import TYPE_CHECKING

from django.conf import settings
from django.db import models
from django.utils import timezone
from oauth2_provider.settings import oauth2_settings

from core.ids import new_public_id
from workspaces.caps import CredentialBudget, CredentialCaps, caps_of
from workspaces.models import Workspace

if TYPE_CHECKING:
    from django.contrib.auth.base_user import AbstractBaseUser
    from django.contrib.auth.models import AnonymousUser


def new_connection_id() -> str:
    return new_public_id("con")


class WorkspaceAppQuerySet(models.QuerySet["WorkspaceApp"]):
    def for_workspace(self, workspace: Workspace) -> WorkspaceAppQuerySet:
        return self.filter(workspace=workspace)


class WorkspaceApp(models.Model):
    """An OAuth app registered in a workspace's dashboard: the workspace's admins manage it."""

    application = models.OneToOneField(
        oauth2_settings.APPLICATION_MODEL,
        on_delete=models.CASCADE,
        primary_key=True,
        related_name="workspace_app",
    )
    workspace = models.ForeignKey(Workspace, on_delete=models.CASCADE, related_name="oauth_apps")
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(default=timezone.now)

    objects = WorkspaceAppQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"{self.application} in {self.workspace}"


class ConnectionQuerySet(models.QuerySet["Connection"]):
    def for_user(self, user: AbstractBaseUser | AnonymousUser) -> ConnectionQuerySet:
        return self.filter(user=user)

    def active(self) -> ConnectionQuerySet:
        return self.filter(revoked_at__isnull=True)

    def for_workspace(self, workspace: Workspace) -> ConnectionQuerySet:
        return self.filter(workspace=workspace)

    def pending(self) -> ConnectionQuerySet:
        return self.active().filter(approval=Connection.Approval.PENDING)


class Connection(CredentialBudget):
    """A user's consent for an app to act in one workspace, with the scopes they granted.

    Created (or widened) by the consent screen; ended by Revoke in Connected apps, by the app
    revoking a token (RFC 7009), by refresh-token reuse, or by deleting the app. Every token issued
    under it is linked to it, so ending it ends them all.
    """

    class Approval(models.TextChoices):
        APPROVED = "approved", "Approved"
        PENDING = "pending", "Awaiting approval"

    public_id = models.CharField(
        max_length=32, unique=True, default=new_connection_id, editable=False
    )
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="oauth_connections"
    )
    application = models.ForeignKey(
        oauth2_settings.APPLICATION_MODEL,
        on_delete=models.CASCADE,
        related_name="gatehouse_connections",
    )
    workspace = models.ForeignKey(
        Workspace, on_delete=models.CASCADE, related_name="oauth_connections"
    )
    scope = models.TextField(blank=True, help_text="Granted scopes, space separated.")
    created_at = models.DateTimeField(default=timezone.now)
    granted_at = models.DateTimeField(default=timezone.now)
    last_used_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)
    # SPEC §12 app access policy: a grant made where apps need admin approval waits, its tokens
    # refused with 403 `app_not_approved`, until an admin approves it (a denial revokes it).
    approval = models.CharField(
        max_length=16, choices=Approval.choices, default=Approval.APPROVED
    )
    decided_at = models.DateTimeField(null=True, blank=True)
    decided_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    # SPEC §11: the collection row ids the grant reaches, chosen on the consent screen; None
    # reaches every passport (ids of deleted collections match nothing: a delete never widens).
    collections = models.JSONField(null=True, blank=True, default=None)

    objects = ConnectionQuerySet.as_manager()

    class Meta:
        ordering = ["-granted_at"]
        constraints = [
            *CredentialBudget.Meta.constraints,
            models.UniqueConstraint(
                fields=["user", "application", "workspace"],
                condition=models.Q(revoked_at__isnull=True),
                name="oauth_connection_one_active",
            ),
        ]

    def __str__(self) -> str:
        return self.public_id

    @property
    def scopes(self) -> list[str]:
        return self.scope.split()

    @property
    def is_pending(self) -> bool:
        return self.approval == self.Approval.PENDING
    def caps(self) -> CredentialCaps | None:
        """The grant's own budget for the gateway and the dashboard (None: it has none)."""
        return caps_of(f"grant:{self.pk}", "OAuth grant", self)


class GrantLink(models.Model):
    grant = models.OneToOneField(
        oauth2_settings.GRANT_MODEL,
        on_delete=models.CASCADE,
        primary_key=True,
        related_name="gatehouse_link",
    )
    connection = models.ForeignKey(
        Connection, on_delete=models.CASCADE, related_name="grant_links"
    )

    def __str__(self) -> str:
        return f"grant #{self.pk} → connection #{self.connection_id}"


class AccessTokenLink(models.Model):
    access_token = models.OneToOneField(
        oauth2_settings.ACCESS_TOKEN_MODEL,
        on_delete=models.CASCADE,
        primary_key=True,
        related_name="gatehouse_link",
    )
    connection = models.ForeignKey(
        Connection, on_delete=models.CASCADE, related_name="access_token_links"
    )

    def __str__(self) -> str:
        return f"access_token #{self.pk} → connection #{self.connection_id}"


class RefreshTokenLink(models.Model):
    refresh_token = models.OneToOneField(
        oauth2_settings.REFRESH_TOKEN_MODEL,
        on_delete=models.CASCADE,
        primary_key=True,
        related_name="gatehouse_link",
    )
    connection = models.ForeignKey(
        Connection, on_delete=models.CASCADE, related_name="refresh_token_links"
    )

    def __str__(self) -> str:
        return f"refresh_token #{self.pk} → connection #{self.connection_id}"


# How long an exchanged code is remembered: a replay after that is refused (the code is gone) but
# no longer revokes what it issued.
USED_CODE_RETENTION = timedelta(days=1)


class UsedAuthorizationCode(models.Model):
    """An authorization code that was exchanged, remembered by its digest after DOT deletes the
    grant, with what its exchange issued: RFC 6749 §4.1.2 — a second use is refused and revokes
    the tokens issued from it (OAuth 2.1 §4.1.3). The access token is the first one; the refresh
    token family (DOT's `token_family`) covers every rotation that descends from the code.
    Kept for `USED_CODE_RETENTION`, then deleted (oauth.codesweep, `prune`)."""

    code_digest = models.CharField(max_length=64, unique=True, help_text="SHA-256 of the code.")
    application = models.ForeignKey(
        oauth2_settings.APPLICATION_MODEL, on_delete=models.CASCADE, related_name="+"
    )
    connection = models.ForeignKey(
        Connection, on_delete=models.CASCADE, related_name="used_codes"
    )
    # No database constraint and no cascade: the access token is deleted when it is rotated or
    # revoked, and deleting it must not cost a query here; a stale id simply matches nothing.
    access_token = models.ForeignKey(
        oauth2_settings.ACCESS_TOKEN_MODEL,
        on_delete=models.DO_NOTHING,
        db_constraint=False,
        null=True,
        blank=True,
        related_name="+",
    )
    refresh_token_family = models.UUIDField(null=True, blank=True)
    used_at = models.DateTimeField(default=timezone.now, db_index=True)
    replayed_at = models.DateTimeField(null=True, blank=True)

    def __str__(self) -> str:
        return f"used code #{self.pk} → connection #{self.connection_id}"


# How long an issued access token is remembered after it expires: a client polling a token that
# was revoked, rotated or cleaned up keeps getting "revoked or expired" (never counted) that long.
ISSUED_TOKEN_RETENTION = timedelta(days=7)


class IssuedAccessToken(models.Model):
    """Every access token ever issued, by DOT's checksum (SHA-256 of the token; never the token)
    and expiry, inserted in the transaction that stores the token and kept after DOT deletes it
    (RFC 7009 revocation, refresh rotation, revoked grants, removed members, `cleartokens`) until
    `ISSUED_TOKEN_RETENTION` past its expiry (oauth.codesweep, `prune`). The gateway's credential
    filter (core.credfilter) reads its access tokens from here, so a token that existed is a
    known credential on every process: answered with its own 401, never counted."""

    token_checksum = models.CharField(max_length=64, unique=True, help_text="SHA-256 of the token.")
    expires_at = models.DateTimeField(db_index=True)

    def __str__(self) -> str:
        return f"issued access token #{self.pk}"
