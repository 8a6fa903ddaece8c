"""Outbound events and their deliveries (SPEC §13).

An `Event` is one thing that happened in a workspace, stored once per `dedup_key` (so the sweep,
several workers or a retried change never make two); it fans out, in the transaction that made
it, into one `EmailDelivery` per recipient and one `WebhookDelivery` per subscribed endpoint.
Deliveries are the queue's source of truth: a worker claims one with a lease (`leased_until`),
so a killed worker's delivery is taken up again once the lease runs out (at least once; the
receiver deduplicates by the event id, which every attempt repeats).
"""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.utils import timezone

from core.ids import new_public_id
from workspaces.models import Workspace


def new_event_id() -> str:
    return new_public_id("evt")


def new_endpoint_id() -> str:
    return new_public_id("whe")


def new_delivery_id() -> str:
    return new_public_id("whd")


class EventQuerySet(models.QuerySet["Event"]):
    def for_workspace(self, workspace: Workspace) -> EventQuerySet:
        return self.filter(workspace=workspace)


class Event(models.Model):
    public_id = models.CharField(max_length=32, unique=True, default=new_event_id, editable=False)
    workspace = models.ForeignKey(Workspace, on_delete=models.CASCADE, related_name="+")
    type = models.CharField(max_length=64)
    dedup_key = models.CharField(max_length=200)
    created_at = models.DateTimeField(default=timezone.now)
    subject = models.CharField(max_length=200)
    data = models.JSONField(default=dict)

    objects = EventQuerySet.as_manager()

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["workspace", "dedup_key"], name="event_dedup_unique"),
        ]
        indexes = [models.Index(fields=["workspace", "-created_at"], name="event_ws_created")]

    def __str__(self) -> str:
        return f"{self.public_id} {self.type}"


class DeliveryState(models.TextChoices):
    PENDING = "pending", "Pending"
    SENT = "sent", "Sent"
    FAILED = "failed", "Failed"  # given up: bounced address, or 3 days of failed attempts
    SKIPPED = "skipped", "Skipped"  # the endpoint was disabled or deleted meanwhile


class EmailDelivery(models.Model):
    event = models.ForeignKey(Event, on_delete=models.CASCADE, related_name="emails")
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    address = models.CharField(max_length=254)
    state = models.CharField(max_length=16, choices=DeliveryState.choices,
                             default=DeliveryState.PENDING)
    attempts = models.PositiveIntegerField(default=0)
    next_attempt_at = models.DateTimeField(default=timezone.now)
    leased_until = models.DateTimeField(null=True, blank=True)
    sent_at = models.DateTimeField(null=True, blank=True)
    last_error = models.CharField(max_length=300, blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["event", "user"], name="email_delivery_once"),
        ]
        indexes = [models.Index(fields=["state", "next_attempt_at"], name="email_due")]

    def __str__(self) -> str:
        return f"{self.event_id} → {self.address}"


class EmailOptOut(models.Model):
    """A member who does not want emails of `event_type` from `workspace`."""

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    workspace = models.ForeignKey(Workspace, on_delete=models.CASCADE, related_name="+")
    event_type = models.CharField(max_length=64)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["user", "workspace", "event_type"],
                                    name="email_opt_out_unique"),
        ]

    def __str__(self) -> str:
        return f"{self.user_id} ✕ {self.event_type}"


class WebhookEndpointQuerySet(models.QuerySet["WebhookEndpoint"]):
    def for_workspace(self, workspace: Workspace) -> WebhookEndpointQuerySet:
        return self.filter(workspace=workspace)


class WebhookEndpoint(models.Model):
    public_id = models.CharField(max_length=32, unique=True, default=new_endpoint_id,
                                 editable=False)
    workspace = models.ForeignKey(Workspace, on_delete=models.CASCADE,
                                  related_name="webhook_endpoints")
    url = models.CharField(max_length=2000)
    description = models.CharField(max_length=200, blank=True)
    event_types = models.JSONField(default=list)
    # Signing secrets, sealed (core.sealing); the previous one keeps signing until it expires.
    sealed_secret = models.TextField()
    secret_hint = models.CharField(max_length=4)
    sealed_previous_secret = models.TextField(blank=True)
    previous_secret_expires_at = models.DateTimeField(null=True, blank=True)
    enabled = models.BooleanField(default=True)
    disabled_reason = models.CharField(max_length=200, blank=True)
    consecutive_failures = models.PositiveIntegerField(default=0)
    created_at = models.DateTimeField(default=timezone.now)

    objects = WebhookEndpointQuerySet.as_manager()

    def __str__(self) -> str:
        return f"{self.public_id} {self.url}"


class WebhookDelivery(models.Model):
    public_id = models.CharField(max_length=32, unique=True, default=new_delivery_id,
                                 editable=False)
    endpoint = models.ForeignKey(WebhookEndpoint, on_delete=models.CASCADE,
                                 related_name="deliveries")
    event = models.ForeignKey(Event, on_delete=models.CASCADE, related_name="webhook_deliveries")
    state = models.CharField(max_length=16, choices=DeliveryState.choices,
                             default=DeliveryState.PENDING)
    attempts = models.PositiveIntegerField(default=0)
    created_at = models.DateTimeField(default=timezone.now)
    next_attempt_at = models.DateTimeField(default=timezone.now)
    leased_until = models.DateTimeField(null=True, blank=True)
    delivered_at = models.DateTimeField(null=True, blank=True)
    last_status = models.PositiveSmallIntegerField(null=True, blank=True)
    last_error = models.CharField(max_length=300, blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["endpoint", "event"], name="webhook_delivery_once"),
        ]
        indexes = [models.Index(fields=["state", "next_attempt_at"], name="webhook_due")]

    def __str__(self) -> str:
        return f"{self.public_id} {self.event_id} → {self.endpoint_id}"


class WebhookAttempt(models.Model):
    """One HTTP request of a delivery, for the delivery log."""

    delivery = models.ForeignKey(WebhookDelivery, on_delete=models.CASCADE,
                                 related_name="attempt_log")
    started_at = models.DateTimeField(default=timezone.now)
    status = models.PositiveSmallIntegerField(null=True, blank=True)
    latency_ms = models.PositiveIntegerField(default=0)
    error = models.CharField(max_length=300, blank=True)
    response_excerpt = models.CharField(max_length=500, blank=True)

    class Meta:
        indexes = [models.Index(fields=["delivery", "-started_at"], name="attempt_delivery")]

    def __str__(self) -> str:
        return f"{self.delivery_id} {self.status or self.error}"
