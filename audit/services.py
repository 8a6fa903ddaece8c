"""Writing the audit log: services that change access call `audit_record` in their transaction."""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass
from typing import Any

from django.db import transaction
from django.http import HttpRequest
from django.utils import timezone

from workspaces.models import Workspace

from .models import ActorType, AuditChain, AuditEvent

GENESIS_HASH = "0" * 64
# Anything shaped like a Gatehouse secret; audit metadata must never carry one.
SECRET_PATTERN = re.compile(r"\b(?:gk_(?:prod|stg|dev)_|gat_|grt_)[A-Za-z0-9]{8,}")


@dataclass(frozen=True, slots=True)
class Actor:
    type: str
    id: str = ""
    label: str = ""

    @classmethod
    def for_user(cls, user) -> Actor:  # noqa: ANN001
        if user is None or not getattr(user, "is_authenticated", False):
            return cls(ActorType.SYSTEM, "", "anonymous")
        return cls(ActorType.USER, str(user.pk), user.get_username())

    @classmethod
    def system(cls, label: str) -> Actor:
        return cls(ActorType.SYSTEM, "", label)


@dataclass(frozen=True, slots=True)
class RequestContext:
    """Where an action came from: the client's IP and user agent, or the command that ran it."""

    ip: str | None = None
    user_agent: str = ""

    @classmethod
    def from_request(cls, request: HttpRequest) -> RequestContext:
        return cls(
            ip=request.META.get("REMOTE_ADDR") or None,
            user_agent=request.headers.get("User-Agent", "")[:512],
        )

    @classmethod
    def for_command(cls, name: str) -> RequestContext:
        return cls(ip=None, user_agent=f"manage.py {name}")


def chain_key(workspace_id: int | None) -> str:
    return f"ws:{workspace_id}" if workspace_id is not None else "global"


def event_digest(event: AuditEvent) -> str:
    """SHA-256 over the event's canonical JSON form, which includes the previous event's hash."""
    canonical = json.dumps(
        {
            "id": event.public_id,
            "workspace": event.workspace_id,
            "actor": [event.actor_type, event.actor_id, event.actor_label],
            "action": event.action,
            "target": [event.target_type, event.target_id, event.target_label],
            "ip": event.ip,
            "user_agent": event.user_agent,
            "metadata": event.metadata,
            "created_at": event.created_at.isoformat(),
            "prev": event.prev_hash,
        },
        sort_keys=True,
        separators=(",", ":"),
        ensure_ascii=False,
        default=str,
    )
    return hashlib.sha256(canonical.encode()).hexdigest()


def _assert_no_secrets(metadata: dict[str, Any]) -> None:
    if SECRET_PATTERN.search(json.dumps(metadata, default=str)):
        raise ValueError("Audit metadata must not contain a credential.")


def audit_record(
    *,
    action: str,
    actor: Actor,
    workspace: Workspace | None = None,
    target_type: str = "",
    target_id: str = "",
    target_label: str = "",
    context: RequestContext | None = None,
    metadata: dict[str, Any] | None = None,
) -> AuditEvent:
    """Append one event to its workspace's hash chain.

    Call it inside the transaction of the change it records, so both commit or neither does.
    The chain head row is locked for the rest of that transaction: events of one workspace are
    serialized, events of different workspaces are not.
    """
    metadata = dict(metadata or {})
    _assert_no_secrets(metadata)
    context = context or RequestContext()
    workspace_id = workspace.pk if workspace is not None else None
    with transaction.atomic():
        key = chain_key(workspace_id)
        AuditChain.objects.get_or_create(
            key=key, defaults={"head_hash": GENESIS_HASH, "anchor_hash": GENESIS_HASH}
        )
        chain = AuditChain.objects.select_for_update().get(key=key)
        event = AuditEvent(
            workspace_id=workspace_id,
            actor_type=actor.type,
            actor_id=actor.id,
            actor_label=actor.label[:255],
            action=action,
            target_type=target_type,
            target_id=str(target_id),
            target_label=target_label[:255],
            ip=context.ip,
            user_agent=context.user_agent[:512],
            metadata=metadata,
            created_at=timezone.now(),
            prev_hash=chain.head_hash,
        )
        event.hash = event_digest(event)
        event.save()
        AuditChain.objects.filter(pk=chain.pk).update(head_hash=event.hash)
    return event
