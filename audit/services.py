"""Writing the audit log: services that change access call `audit_record` in their transaction."""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from django.db import connection, transaction
from django.http import HttpRequest
from django.utils import timezone

from workspaces.models import Workspace

from .models import ActorType, AuditChain, AuditEvent

GENESIS_HASH = "0" * 64
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
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


class Door:
    """Which door an action came through; recorded as the event's `metadata["door"]` (SPEC §8)."""

    DASHBOARD = "dashboard"
    API = "api"
    ADMIN = "admin"
    COMMAND = "command"


def door_of(request: HttpRequest) -> str:
    """Django admin's pages (any view in the `admin` URL namespace), the JSON API and OAuth
    endpoints (under /api/), or else the dashboard."""
    match = getattr(request, "resolver_match", None)
    if match is not None and "admin" in match.namespaces:
        return Door.ADMIN
    if request.path.startswith("/api/"):
        return Door.API
    return Door.DASHBOARD


@dataclass(frozen=True, slots=True)
class RequestContext:
    """Where an action came from: the client's IP and user agent, or the command that ran it,
    and the door (`Door`); an empty door is not recorded."""

    ip: str | None = None
    user_agent: str = ""
    door: str = ""

    @classmethod
    def from_request(cls, request: HttpRequest, *, door: str | None = None) -> RequestContext:
        return cls(
            ip=request.META.get("REMOTE_ADDR") or None,
            user_agent=request.headers.get("User-Agent", "")[:512],
            door=door or door_of(request),
        )

    @classmethod
    def for_command(cls, name: str) -> RequestContext:
        return cls(ip=None, user_agent=f"manage.py {name}", door=Door.COMMAND)


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


def _locked_chain(key: str) -> AuditChain:
    """The chain head row, locked until the end of the transaction; created when it is new.

    Creation is race-free without a savepoint: `INSERT … ON CONFLICT DO NOTHING` makes concurrent
    first writers wait on the unique key and then find the winner's row, which they lock in turn.
    """
    chain = AuditChain.objects.select_for_update().filter(key=key).first()
    if chain is None:
        AuditChain.objects.bulk_create(
            [AuditChain(key=key, head_hash=GENESIS_HASH, anchor_hash=GENESIS_HASH)],
            ignore_conflicts=True,
        )
        chain = AuditChain.objects.select_for_update().get(key=key)
    return chain


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
    serialized, events of different workspaces are not. The event is stamped no earlier than its
    predecessor (another process's clock may be ahead), so times never go back along a chain.
    The context's door, when it names one, is recorded as `metadata["door"]`.
    """
    context = context or RequestContext()
    metadata = dict(metadata or {})
    if context.door:
        metadata["door"] = context.door
    _assert_no_secrets(metadata)
    workspace_id = workspace.pk if workspace is not None else None
    with transaction.atomic():
        chain = _locked_chain(chain_key(workspace_id))
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
            created_at=max(timezone.now(), chain.head_created_at or _EPOCH),
            prev_hash=chain.head_hash,
        )
        event.hash = event_digest(event)
        event.save()
        AuditChain.objects.filter(pk=chain.pk).update(
            head_hash=event.hash, head_created_at=event.created_at
        )
    return event


# --- Sign-ins (the workspace-less chain) --------------------------------------------------------

def audit_login_succeeded(*, user, context: RequestContext) -> AuditEvent:  # noqa: ANN001
    """Record a successful sign-in at the login door."""
    return audit_record(
        action="user.logged_in",
        actor=Actor.for_user(user),
        target_type="user",
        target_id=str(user.pk),
        target_label=user.get_username(),
        context=context,
    )


def audit_login_failed(*, username: str, reason: str, context: RequestContext) -> AuditEvent:
    """Record a refused sign-in: the attempted username (never the password), IP and user agent.

    People paste secrets into the wrong field; a username shaped like a Gatehouse credential is
    recorded as redacted rather than refused, so the failure is still on the log.
    """
    attempted = username.strip()[:150]
    if SECRET_PATTERN.search(attempted):
        attempted = "[redacted: looked like a credential]"
    return audit_record(
        action="user.login_failed",
        actor=Actor(ActorType.SYSTEM, "", "anonymous"),
        target_type="user",
        target_label=attempted,
        context=context,
        metadata={"username": attempted, "reason": reason},
    )


# --- Retention ----------------------------------------------------------------------------------

GLOBAL_RETENTION_DAYS = 365  # the workspace-less chain (sign-ins); workspaces follow their plan
PRUNE_BATCH_SIZE = 2000


class ChainBrokenError(Exception):
    """Pruning stopped: the events it would remove do not verify; removing them would hide it."""


def _delete_through(workspace_id: int | None, last_id: int) -> None:
    """DELETE the chain's events with id <= `last_id`, through the one path the trigger allows."""
    table = connection.ops.quote_name(AuditEvent._meta.db_table)
    if workspace_id is None:
        where, params = "workspace_id IS NULL AND id <= %s", [last_id]
    else:
        where, params = "workspace_id = %s AND id <= %s", [workspace_id, last_id]
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            # Transaction-local (is_local = true): it ends with this transaction.
            cursor.execute("SELECT set_config('gatehouse.audit_prune', 'on', true)")
        cursor.execute(f"DELETE FROM {table} WHERE {where}", params)  # noqa: S608
        if connection.vendor == "postgresql":
            cursor.execute("SELECT set_config('gatehouse.audit_prune', 'off', true)")


def audit_prune(
    *, workspace: Workspace | None, before: datetime, batch_size: int = PRUNE_BATCH_SIZE
) -> int:
    """Delete a chain's events created before `before`, oldest first; return how many.

    Only a prefix of the chain is removed (the walk stops at the first event not older than
    `before`), in batches of `batch_size`, each in its own short transaction holding the chain
    lock. Each batch is verified before it goes, and the hash and id of its last event become the
    chain's anchor in the same transaction, so `verify_audit_log` still verifies what remains.
    A batch that does not verify raises `ChainBrokenError` and nothing of it is deleted.
    """
    workspace_id = workspace.pk if workspace is not None else None
    key = chain_key(workspace_id)
    events = (
        AuditEvent.objects.filter(workspace_id=workspace_id)
        if workspace_id is not None
        else AuditEvent.objects.filter(workspace__isnull=True)
    )
    total = 0
    last_pruned = ""
    while True:
        with transaction.atomic():
            chain = AuditChain.objects.select_for_update().filter(key=key).first()
            if chain is None:
                break
            batch = list(
                events.filter(id__gt=chain.anchor_event_id or 0).order_by("id")[:batch_size]
            )
            expected = chain.anchor_hash
            prefix: list[AuditEvent] = []
            for event in batch:
                if event.created_at >= before:
                    break
                if event.prev_hash != expected or event_digest(event) != event.hash:
                    raise ChainBrokenError(
                        f"The {key} chain does not verify at {event.public_id}; nothing there was "
                        "pruned. Run manage.py verify_audit_log."
                    )
                expected = event.hash
                prefix.append(event)
            if not prefix:
                break
            _delete_through(workspace_id, prefix[-1].id)
            AuditChain.objects.filter(pk=chain.pk).update(
                anchor_hash=prefix[-1].hash, anchor_event_id=prefix[-1].id
            )
            total += len(prefix)
            last_pruned = prefix[-1].public_id
        if len(prefix) < batch_size:
            break
    if total:
        # The log says when it was shortened, and up to which event.
        audit_record(
            action="audit.pruned",
            actor=Actor.system("retention"),
            workspace=workspace,
            target_type="audit_log",
            target_id=key,
            context=RequestContext.for_command("prune"),
            metadata={"events": total, "before": before.isoformat(), "through": last_pruned},
        )
    return total
