from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any, Never

from django.db import models
from django_otp.models import Device, ThrottlingMixin, TimestampMixin

from core.context import ActorType
from core.ids import new_public_id

if TYPE_CHECKING:
    from workspaces.models import Workspace


def new_event_id() -> str:
    return new_public_id("evt")


class AuditEventQuerySet(models.QuerySet["AuditEvent"]):
    def for_workspace(self, workspace: Workspace) -> AuditEventQuerySet:
        return self.filter(workspace=workspace)

    def update(self, **kwargs: Any) -> Never:
        raise TypeError("Audit events are append-only.")

    def delete(self) -> Never:
        raise TypeError("Audit events are append-only.")


class AuditEvent(models.Model):
    """One change of access. Append-only; `hash` chains it to the previous event of its workspace.

    Actors and targets are stored as (type, id, label) snapshots rather than foreign keys so that an
    event still says who and what after the user, key or app is gone, and never needs an UPDATE.
    """

    public_id = models.CharField(max_length=32, unique=True, default=new_event_id, editable=False)
    workspace = models.ForeignKey(
        "workspaces.Workspace", null=True, blank=True, on_delete=models.PROTECT,
        related_name="audit_events",
    )
    actor_type = models.CharField(max_length=16, choices=ActorType.choices)
    actor_id = models.CharField(max_length=64, blank=True)
    actor_label = models.CharField(max_length=255, blank=True)
    action = models.CharField(max_length=64)
    target_type = models.CharField(max_length=32, blank=True)
    target_id = models.CharField(max_length=64, blank=True)
    target_label = models.CharField(max_length=255, blank=True)
    ip = models.GenericIPAddressField(null=True, blank=True)
    user_agent = models.CharField(max_length=512, blank=True)
    metadata = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField()
    prev_hash = models.CharField(max_length=64)
    hash = models.CharField(max_length=64)
    # The id (fingerprint) of the audit key whose HMAC `hash` is; "" for an event hashed with the
    # unkeyed SHA-256 of before the key existed (audit.keys, docs/audit-log.md).
    key_id = models.CharField(max_length=16, blank=True, default="")
    # Position in its chain (1 = its first event ever); empty on unkeyed events.
    seq = models.PositiveBigIntegerField(null=True, blank=True)

    objects = AuditEventQuerySet.as_manager()

    class Meta:
        ordering = ["-id"]
        indexes = [
            models.Index(fields=["workspace", "-id"], name="audit_ws_id"),
            models.Index(fields=["workspace", "action", "-id"], name="audit_ws_action_id"),
            models.Index(fields=["workspace", "actor_id", "-id"], name="audit_ws_actor_id"),
            # The actor filter also matches a label (a user's email, a key's name).
            models.Index(
                fields=["workspace", "actor_label", "-id"], name="audit_ws_actor_label_id"
            ),
            # Date-range filters and the retention cut-off.
            models.Index(fields=["workspace", "created_at"], name="audit_ws_created"),
        ]

    def __str__(self) -> str:
        return f"{self.public_id} {self.action}"

    def save(self, *args: Any, **kwargs: Any) -> None:
        if self.pk is not None:
            raise TypeError("Audit events are append-only.")
        super().save(*args, **kwargs)

    def delete(self, *args: Any, **kwargs: Any) -> Never:
        raise TypeError("Audit events are append-only.")

    @property
    def metadata_json(self) -> str:
        return json.dumps(self.metadata, indent=2, sort_keys=True, ensure_ascii=False, default=str)


class AuditChain(models.Model):
    """The head of one hash chain: one per workspace, and `key="global"` for workspace-less events.

    Writers lock this row (`SELECT … FOR UPDATE`) so concurrent events never fork the chain.
    `anchor_hash` is the hash of the last event pruned by retention: verification starts from it.
    `seal` is an HMAC under the audit key (`seal_key_id`) over the head, its sequence number, the
    anchor and `legacy_through`: a database writer cannot rewind the head or move the anchor
    without breaking it (audit.services.chain_seal).
    `head_created_at` keeps event times monotonic along the chain despite clock skew between
    processes: an event is stamped no earlier than its predecessor.
    """

    key = models.CharField(max_length=40, unique=True)
    head_hash = models.CharField(max_length=64)
    anchor_hash = models.CharField(max_length=64)
    anchor_event_id = models.BigIntegerField(null=True, blank=True)
    # The newest event's time: the next event is never earlier, so along a chain `created_at`
    # never decreases with the id, and date filters can become id ranges (audit.selectors).
    head_created_at = models.DateTimeField(null=True, blank=True)
    head_seq = models.PositiveBigIntegerField(default=0)
    # The newest event hashed without a key (written before the audit key existed); None: none.
    legacy_through = models.BigIntegerField(null=True, blank=True)
    seal = models.CharField(max_length=64, blank=True, default="")
    seal_key_id = models.CharField(max_length=16, blank=True, default="")

    def __str__(self) -> str:
        return self.key


# --- Two-factor sign-in (audit.twofactor) -------------------------------------------------------
# Devices on django-otp's `Device` base with its throttling: each failed code doubles the wait
# before the next attempt on that device (django_otp.models.ThrottlingMixin).


class TotpDevice(TimestampMixin, ThrottlingMixin, Device):
    """An authenticator app (RFC 6238, 30 s steps, 6 digits, ±1 step). Unlike
    django_otp.plugins.otp_totp's model, whose secret is a hex column in clear, the secret here is
    sealed (Fernet under a key derived from `GATEHOUSE_OTP_KEY`): a copy of the database does not
    let anyone compute codes."""

    sealed_secret = models.TextField()
    # The time step of the last accepted code: a code is accepted once (no replay in its 30 s).
    last_t = models.BigIntegerField(default=-1)
    drift = models.SmallIntegerField(default=0)

    class Meta(Device.Meta):
        verbose_name = "TOTP device"

    def get_throttle_factor(self) -> int:
        return 1


class RecoveryCodeDevice(ThrottlingMixin, Device):
    """The ten single-use recovery codes of one user. django-otp's StaticDevice keeps its tokens
    in clear in a 16-character column; these are stored as SHA-256 digests (each code carries 80
    random bits, so a fast digest is enough) and a used code's row is deleted."""

    class Meta(Device.Meta):
        verbose_name = "recovery codes"

    def get_throttle_factor(self) -> int:
        return 1


class RecoveryCode(models.Model):
    device = models.ForeignKey(RecoveryCodeDevice, on_delete=models.CASCADE, related_name="codes")
    digest = models.CharField(max_length=64, unique=True)

    def __str__(self) -> str:
        return f"recovery code of {self.device_id}"
