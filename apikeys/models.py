from __future__ import annotations

from datetime import datetime, timedelta

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.utils import timezone

from core.ids import new_public_id
from workspaces.caps import CredentialBudget, CredentialCaps, caps_of
from workspaces.models import Workspace

from .tokens import display_hint


def new_key_id() -> str:
    return new_public_id("key")


class Environment(models.TextChoices):
    PRODUCTION = "production", "Production"
    STAGING = "staging", "Staging"
    DEVELOPMENT = "development", "Development"


class KeyStatus(models.TextChoices):
    ACTIVE = "active", "Active"
    PAUSED = "paused", "Paused"
    REVOKED = "revoked", "Revoked"


class ApiKeyQuerySet(models.QuerySet["ApiKey"]):
    def for_workspace(self, workspace: Workspace) -> ApiKeyQuerySet:
        return self.filter(workspace=workspace)

    def unexpired(self, now: datetime | None = None) -> ApiKeyQuerySet:
        now = now or timezone.now()
        return self.filter(Q(expires_at__isnull=True) | Q(expires_at__gt=now))

    def live(self, now: datetime | None = None) -> ApiKeyQuerySet:
        """Active or paused, not expired: the keys that count against the plan's limit."""
        return self.unexpired(now).filter(status__in=[KeyStatus.ACTIVE, KeyStatus.PAUSED])

    def inactive(self, now: datetime | None = None) -> ApiKeyQuerySet:
        """Revoked, or expired (including rotated keys past their overlap)."""
        now = now or timezone.now()
        return self.filter(Q(status=KeyStatus.REVOKED) | Q(expires_at__lte=now))


class ApiKey(CredentialBudget):
    """An API key. The token itself is never stored: only its keyed digest and last 4 characters."""

    public_id = models.CharField(max_length=32, unique=True, default=new_key_id, editable=False)
    workspace = models.ForeignKey(Workspace, on_delete=models.CASCADE, related_name="api_keys")
    name = models.CharField(max_length=100)
    note = models.TextField(blank=True, max_length=1000)
    scopes = models.JSONField(default=list)
    environment = models.CharField(max_length=16, choices=Environment.choices)
    digest = models.CharField(max_length=64, unique=True, editable=False)
    hint = models.CharField(max_length=4, editable=False)
    created_at = models.DateTimeField(default=timezone.now)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL,
        related_name="+",
    )
    expires_at = models.DateTimeField(null=True, blank=True)
    status = models.CharField(max_length=16, choices=KeyStatus.choices, default=KeyStatus.ACTIVE)
    revoked_at = models.DateTimeField(null=True, blank=True)
    revoked_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL,
        related_name="+",
    )
    revoked_reason = models.CharField(max_length=32, blank=True)
    last_used_at = models.DateTimeField(null=True, blank=True)
    last_used_ip = models.GenericIPAddressField(null=True, blank=True)
    request_count = models.BigIntegerField(default=0)
    rate_limit_per_minute = models.PositiveIntegerField(null=True, blank=True)
    allowed_ips = models.JSONField(default=list, blank=True)
    # SPEC §11: null reaches all passports; a list of passports.Collection row ids restricts the
    # key to them (ids of deleted collections match nothing, so a delete never widens a key).
    collections = models.JSONField(null=True, blank=True, default=None)
    rotated_from = models.ForeignKey(
        "self", null=True, blank=True, on_delete=models.SET_NULL, related_name="successors"
    )
    # Issue 16 §4: the first use from a network never seen before, once the key has a week of
    # history (`KeyNetwork`), flags the key until someone dismisses it or restricts the key.
    new_network = models.CharField(max_length=49, blank=True, default="", db_default="")
    new_network_at = models.DateTimeField(null=True, blank=True)

    objects = ApiKeyQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [
            *CredentialBudget.Meta.constraints,
            models.CheckConstraint(
                condition=Q(status__in=KeyStatus.values), name="apikey_status_valid"
            ),
            models.CheckConstraint(
                condition=Q(environment__in=Environment.values), name="apikey_environment_valid"
            ),
            models.CheckConstraint(
                condition=Q(rate_limit_per_minute__isnull=True) | Q(rate_limit_per_minute__gt=0),
                name="apikey_rate_limit_positive",
            ),
            models.CheckConstraint(
                condition=~Q(status=KeyStatus.REVOKED) | Q(revoked_at__isnull=False),
                name="apikey_revoked_has_date",
            ),
        ]
        indexes = [models.Index(fields=["workspace", "status"], name="apikey_ws_status")]

    def __str__(self) -> str:
        return f"{self.name} ({self.display_hint})"

    @property
    def display_hint(self) -> str:
        return display_hint(self.environment, self.hint)

    def caps(self) -> CredentialCaps | None:
        """The key's own budget for the gateway and the dashboard (None: it has none)."""
        return caps_of(f"key:{self.pk}", "API key", self)

    def is_expired(self, now: datetime | None = None) -> bool:
        return self.expires_at is not None and self.expires_at <= (now or timezone.now())

    def effective_status(self, now: datetime | None = None) -> str:
        """`active`, `paused`, `revoked` or the derived `expired`."""
        if self.status == KeyStatus.REVOKED:
            return KeyStatus.REVOKED
        if self.is_expired(now):
            return "expired"
        return self.status

    def expires_within(self, days: int, now: datetime | None = None) -> bool:
        now = now or timezone.now()
        return self.expires_at is not None and now < self.expires_at <= now + timedelta(days=days)


# How many recent requests each key keeps (`KeyRequest`), newest first; the usage flush trims.
RECENT_PER_KEY = 100


class KeyUsageDay(models.Model):
    """Requests per key per UTC day, written by the usage flush (never per request)."""

    api_key = models.ForeignKey(ApiKey, on_delete=models.CASCADE, related_name="usage_days")
    day = models.DateField()
    count = models.BigIntegerField(default=0)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["api_key", "day"], name="usage_day_unique")
        ]

    def __str__(self) -> str:
        return f"{self.api_key_id} {self.day}: {self.count}"


class KeyRequest(models.Model):
    """One recent request of a key (the last 100 are kept per key), written by the usage flush."""

    api_key = models.ForeignKey(ApiKey, on_delete=models.CASCADE, related_name="recent_requests")
    at = models.DateTimeField()
    method = models.CharField(max_length=8)
    path = models.CharField(max_length=255)
    status = models.PositiveSmallIntegerField()
    ip = models.GenericIPAddressField(null=True, blank=True)
    latency_ms = models.PositiveIntegerField(default=0)
    # The SPEC §4 error code of a refused attempt (key_revoked, ip_not_allowed…), else empty.
    error = models.CharField(max_length=32, blank=True, default="")

    class Meta:
        indexes = [models.Index(fields=["api_key", "-at"], name="keyrequest_key_at")]

    def __str__(self) -> str:
        return f"{self.method} {self.path} {self.status}"


# How many networks each key remembers (`KeyNetwork`); past it the least recently seen is dropped.
NETWORKS_PER_KEY = 32


class KeyNetwork(models.Model):
    """A network (IPv4 /24, IPv6 /48) a key was used from, with its request count; written by the
    usage flush (`gateway.usage`), never on the request path."""

    api_key = models.ForeignKey(ApiKey, on_delete=models.CASCADE, related_name="networks")
    network = models.CharField(max_length=49)
    request_count = models.BigIntegerField(default=0)
    first_seen_at = models.DateTimeField()
    last_seen_at = models.DateTimeField()

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["api_key", "network"], name="keynetwork_unique")
        ]
        ordering = ["-request_count", "network"]

    def __str__(self) -> str:
        return self.network
