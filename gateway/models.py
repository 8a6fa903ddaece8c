from __future__ import annotations

from django.db import models
from django.utils import timezone

from workspaces.models import Workspace


class IdempotencyStatus(models.TextChoices):
    IN_FLIGHT = "in_flight", "In flight"
    COMPLETED = "completed", "Completed"


class IdempotencyRecord(models.Model):
    """One `Idempotency-Key` of a workspace (SPEC §6): claimed before the view runs, completed with
    the response to replay. The unique constraint is what makes a concurrent duplicate a 409."""

    workspace = models.ForeignKey(Workspace, on_delete=models.CASCADE, related_name="+")
    key = models.CharField(max_length=255)
    fingerprint = models.CharField(max_length=64)
    status = models.CharField(max_length=16, choices=IdempotencyStatus.choices)
    locked_until = models.DateTimeField()
    response_status = models.PositiveSmallIntegerField(null=True, blank=True)
    response_headers = models.JSONField(default=dict, blank=True)
    response_body = models.BinaryField(default=b"", blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    expires_at = models.DateTimeField(db_index=True)

    class Meta:
        db_table = "apikeys_idempotencyrecord"  # created by apikeys' migrations
        constraints = [
            models.UniqueConstraint(fields=["workspace", "key"], name="idempotency_unique_key")
        ]

    def __str__(self) -> str:
        return f"{self.workspace_id}:{self.key}"
