"""Writing the audit log: services that change access call `audit_record` in their transaction."""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Protocol

from django.db import connection, transaction
from django.utils import timezone

from core.context import Actor, ActorType, RequestContext
from core.credentials import CREDENTIAL_PATTERN, redact_credentials, redact_credentials_in

from .hooks import event_recorded_hooks
from .keys import AuditKey, signing_key, verification_key
from .models import AuditChain, AuditEvent

if TYPE_CHECKING:
    from django.contrib.auth.base_user import AbstractBaseUser

    from workspaces.models import Workspace

GENESIS_HASH = "0" * 64
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
# Every write logs its chain's new head here: an anchor outside the database that
# `verify_audit_log --expect-head` checks the log against (docs/audit-log.md).
anchor_logger = logging.getLogger("gatehouse.audit.anchor")
# What a chain head's seal becomes when the head was found altered: never a valid seal again, so
# later writes cannot launder the evidence (verify_audit_log keeps reporting it).
TAINTED_SEAL = "tainted"


def chain_key(workspace_id: int | None) -> str:
    return f"ws:{workspace_id}" if workspace_id is not None else "global"


def _canonical(event: AuditEvent) -> bytes:
    """The event's canonical JSON form, which includes the previous event's hash (and, for keyed
    events, its key id and position, so neither can be changed without the key)."""
    fields: dict[str, Any] = {
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
    }
    if event.key_id:
        fields |= {"key_id": event.key_id, "seq": event.seq}
    return json.dumps(
        fields, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str
    ).encode()


def event_digest(event: AuditEvent) -> str | None:
    """The hash `event` must carry: HMAC-SHA256 under the audit key named by its `key_id`, or the
    unkeyed SHA-256 of before the key existed when `key_id` is empty. None when the event names a
    key that is not configured (it cannot be verified here)."""
    if not event.key_id:
        return hashlib.sha256(_canonical(event)).hexdigest()
    key = verification_key(event.key_id)
    return key.mac(_canonical(event)) if key else None


class ChainHead(Protocol):
    """What a seal covers: an `AuditChain` row, or the values verification read from one."""

    key: str
    head_seq: int
    head_hash: str
    anchor_event_id: int | None
    anchor_hash: str
    legacy_through: int | None
    seal: str
    seal_key_id: str


def chain_seal(chain: ChainHead, key: AuditKey) -> str:
    """HMAC over what a database writer must not change in a chain head row: the head and its
    sequence number, the anchor, and how far unkeyed events may reach."""
    message = "|".join(
        str(part) for part in (
            chain.key, chain.head_seq, chain.head_hash,
            chain.anchor_event_id, chain.anchor_hash, chain.legacy_through,
        )
    )
    return key.mac(message.encode())


def chain_seal_ok(chain: ChainHead) -> bool:
    key = verification_key(chain.seal_key_id)
    return key is not None and hmac.compare_digest(chain.seal, chain_seal(chain, key))


def chain_reseal(chain: AuditChain, *, was_ok: bool) -> None:
    """Sign the chain's (new) head with the current key — unless it was found altered: then it
    stays tainted, so the break is still reported after later writes."""
    key = signing_key()
    chain.seal_key_id = key.id
    chain.seal = chain_seal(chain, key) if was_ok else TAINTED_SEAL


def _redacted_text(text: str) -> str:
    return redact_credentials(text) if CREDENTIAL_PATTERN.search(text) else text


def _locked_chain(key: str) -> AuditChain:
    """The chain head row, locked until the end of the transaction; created when it is new.

    Creation is race-free without a savepoint: `INSERT … ON CONFLICT DO NOTHING` makes concurrent
    first writers wait on the unique key and then find the winner's row, which they lock in turn.
    """
    chain = AuditChain.objects.select_for_update().filter(key=key).first()
    if chain is None:
        new = AuditChain(key=key, head_hash=GENESIS_HASH, anchor_hash=GENESIS_HASH)
        chain_reseal(new, was_ok=True)
        AuditChain.objects.bulk_create([new], ignore_conflicts=True)
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
    The context's door, request id and MCP tool, when it names them, are recorded as
    `metadata["door"]`, `metadata["request_id"]` and `metadata["tool"]`.

    The event's hash is an HMAC under the audit key (audit.keys), and the head row is re-sealed
    with it; once the transaction commits, the new head is logged to `gatehouse.audit.anchor`.
    Anything shaped like a credential, in the metadata, labels or user agent, is stored redacted.
    """
    context = context or RequestContext()
    metadata = redact_credentials_in(dict(metadata or {}))
    if context.door:
        metadata["door"] = context.door
    if actor.type == ActorType.OAUTH_APP and actor.user is not None:
        # The person the app acted for (SPEC §7: a token's power is the user's role).
        metadata["on_behalf_of"] = {
            "id": str(actor.user.pk), "label": _redacted_text(actor.user.get_username())[:255],
        }
    if context.request_id:
        metadata["request_id"] = context.request_id
    if context.tool:
        metadata["tool"] = context.tool
    workspace_id = workspace.pk if workspace is not None else None
    event = AuditEvent(
        workspace_id=workspace_id,
        actor_type=actor.type,
        actor_id=actor.id,
        actor_label=_redacted_text(actor.label)[:255],
        action=action,
        target_type=target_type,
        target_id=_redacted_text(str(target_id))[:64],
        target_label=_redacted_text(target_label)[:255],
        ip=context.ip,
        user_agent=_redacted_text(context.user_agent)[:512],
        metadata=metadata,
    )
    key = chain_key(workspace_id)
    pending = _pending.get()
    if pending is not None and connection.in_atomic_block:
        # Chained when the `audit_chained_at_end` block ends (see there); the anchor line,
        # written on commit, doubles as the mark of a savepoint that was not rolled back.
        anchor = _Anchor(key, event)
        transaction.on_commit(anchor)
        pending.append(anchor)
        _run_hooks(event, workspace)
        return event
    with transaction.atomic():
        _append(_locked_chain(key), [event])
        transaction.on_commit(_Anchor(key, event))
        _run_hooks(event, workspace)
    return event


def _run_hooks(event: AuditEvent, workspace: Workspace | None) -> None:
    """The registered hooks (`audit.hooks`), in the transaction of the change."""
    for hook in event_recorded_hooks():
        hook(event=event, workspace=workspace)


@dataclass(eq=False, slots=True)
class _Anchor:
    """An event waiting for its commit, when its head is logged (`_log_anchor`)."""

    key: str
    event: AuditEvent

    def __call__(self) -> None:
        _log_anchor(self.key, self.event)


def _append(chain: AuditChain, events: list[AuditEvent]) -> None:
    """Give `events` the next positions of the locked `chain`, in order, and store them and the
    chain's new head (one INSERT and one UPDATE however many events)."""
    key = signing_key()
    was_ok = chain_seal_ok(chain)
    now = timezone.now()
    for event in events:
        event.created_at = max(now, chain.head_created_at or _EPOCH)
        event.prev_hash = chain.head_hash
        event.key_id = key.id
        event.seq = chain.head_seq + 1
        event.hash = key.mac(_canonical(event))
        chain.head_hash, chain.head_seq, chain.head_created_at = (
            event.hash, event.seq, event.created_at,
        )
    AuditEvent.objects.bulk_create(events)
    chain_reseal(chain, was_ok=was_ok)
    AuditChain.objects.filter(pk=chain.pk).update(
        head_hash=chain.head_hash, head_seq=chain.head_seq,
        head_created_at=chain.head_created_at, seal=chain.seal, seal_key_id=chain.seal_key_id,
    )


# The events recorded inside the current `audit_chained_at_end` block (None: not in one).
_pending: ContextVar[list[_Anchor] | None] = ContextVar("audit_pending", default=None)


@contextmanager
def audit_chained_at_end() -> Iterator[None]:
    """Inside a transaction: the events `audit_record` records in this block take their place in
    their chains when the block ends, not when recorded, so a chain's head row is locked only for
    the last statements of the transaction (its `SELECT … FOR UPDATE`, one INSERT, one UPDATE,
    then the commit) instead of from the first event to the commit: unrelated writes of one
    workspace queue on it for that long only.

    The events are the same, and chained the same way, as if each had been recorded at the end:
    nothing is stored unchained (no event is visible before the commit either way). An event
    recorded in a savepoint that was rolled back is dropped with it (Django drops that
    savepoint's `on_commit` callbacks, which is how the block tells). The block must end inside
    the transaction; when it raises, or the transaction is marked for rollback, nothing is
    chained. Until then the returned `AuditEvent` has no id, position or hash. Nested blocks
    chain when the outermost ends.
    """
    if _pending.get() is not None:
        yield
        return
    if not connection.in_atomic_block:
        raise RuntimeError("audit_chained_at_end() needs a transaction (transaction.atomic()).")
    pending: list[_Anchor] = []
    token = _pending.set(pending)
    try:
        yield
    finally:
        _pending.reset(token)
    if transaction.get_rollback() or not pending:
        return
    alive = {id(func) for _sids, func, _robust in connection.run_on_commit}
    by_chain: dict[str, list[AuditEvent]] = {}
    for anchor in pending:
        if id(anchor) in alive:
            by_chain.setdefault(anchor.key, []).append(anchor.event)
    for key in sorted(by_chain):  # one order for every writer: no deadlock between two chains
        _append(_locked_chain(key), by_chain[key])


def _log_anchor(key: str, event: AuditEvent) -> None:
    """One line per committed event: enough to check the database against later, no secrets."""
    anchor_logger.info(
        "audit anchor chain=%s workspace=%s seq=%s event=%s head=%s key_id=%s",
        key, event.workspace_id if event.workspace_id is not None else "-", event.seq,
        event.public_id, event.hash, event.key_id,
    )


# --- Sign-ins (the workspace-less chain) --------------------------------------------------------

def audit_login_succeeded(
    *, user: AbstractBaseUser, context: RequestContext, second_factor: str = ""
) -> AuditEvent:
    """Record a successful sign-in at the login door (`second_factor`: how the code step was
    passed, `totp` or `recovery_code`, when there was one)."""
    return audit_record(
        action="user.logged_in",
        actor=Actor.for_user(user),
        target_type="user",
        target_id=str(user.pk),
        target_label=user.get_username(),
        context=context,
        metadata={"second_factor": second_factor} if second_factor else None,
    )


def audit_reauthenticated(*, user: AbstractBaseUser, context: RequestContext) -> AuditEvent:
    """Record a signed-in person proving who they are again for a sensitive action (sudo mode)."""
    return audit_record(
        action="user.reauthenticated", actor=Actor.for_user(user), target_type="user",
        target_id=str(user.pk), target_label=user.get_username(), context=context,
    )


def audit_login_failed(*, username: str, reason: str, context: RequestContext) -> AuditEvent:
    """Record a refused sign-in: the attempted username (never the password), IP and user agent.

    People paste secrets into the wrong field; a username shaped like a Gatehouse credential is
    recorded as redacted rather than refused, so the failure is still on the log.
    """
    attempted = username.strip()[:150]
    if CREDENTIAL_PATTERN.search(attempted):
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
            if not chain_seal_ok(chain):
                raise ChainBrokenError(
                    f"The {key} chain head was altered outside Gatehouse (its seal does not "
                    "match); nothing was pruned. Run manage.py verify_audit_log."
                )
            batch = list(
                events.filter(id__gt=chain.anchor_event_id or 0).order_by("id")[:batch_size]
            )
            expected = chain.anchor_hash
            prefix: list[AuditEvent] = []
            for event in batch:
                if event.created_at >= before:
                    break
                if (
                    event.prev_hash != expected or event_digest(event) != event.hash
                    or (not event.key_id and event.id > (chain.legacy_through or 0))
                ):
                    raise ChainBrokenError(
                        f"The {key} chain does not verify at {event.public_id}; nothing there was "
                        "pruned. Run manage.py verify_audit_log."
                    )
                expected = event.hash
                prefix.append(event)
            if not prefix:
                break
            _delete_through(workspace_id, prefix[-1].id)
            chain.anchor_hash, chain.anchor_event_id = prefix[-1].hash, prefix[-1].id
            chain_reseal(chain, was_ok=True)
            AuditChain.objects.filter(pk=chain.pk).update(
                anchor_hash=chain.anchor_hash, anchor_event_id=chain.anchor_event_id,
                seal=chain.seal, seal_key_id=chain.seal_key_id,
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
