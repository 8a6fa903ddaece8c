"""The audit hook (`audit.hooks`): the audited changes that become outbound events.

Runs inside the transaction of the change, for every audit event; returns at once for the
actions that emit nothing (a set lookup), so API writes pay nothing for it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .kinds import AUDIT_ACTIONS, HOOKED_ACTIONS
from .services import event_emit

if TYPE_CHECKING:
    from audit.models import AuditEvent
    from workspaces.models import Workspace

# Plain facts copied from the audit event into the outbound event's data (never a secret:
# audit metadata holds none, and what looks like a credential there is redacted already).
_COPIED = ("reason", "scopes", "connection", "url", "source", "rotated_from", "successor",
           "network", "approval", "workspaces")

_SUBJECTS = {
    "key.created": "API key {label} created",
    "key.rotated": "API key {label} rotated",
    "key.revoked": "API key {label} revoked",
    "oauth.refresh_token_reused": "A refresh token of {label} was replayed: its grant ended",
    "app.connected": "{label} was connected to the workspace",
    "app.awaiting_approval": "{label} awaits your approval",
    "key.new_network": "API key {label} was used from a new network",
}


def _data(event: AuditEvent) -> dict[str, Any]:
    metadata = event.metadata or {}
    return {
        "audit_event": event.public_id,
        "target": {"type": event.target_type, "id": event.target_id,
                   "label": event.target_label},
        "actor": {"type": event.actor_type, "label": event.actor_label},
        **{k: metadata[k] for k in _COPIED if k in metadata},
    }


def on_audit_event(*, event: AuditEvent, workspace: Workspace | None) -> None:
    if event.action not in HOOKED_ACTIONS or workspace is None:
        return
    label = event.target_label or event.target_id
    data = _data(event)
    if event.action in AUDIT_ACTIONS:
        kind = AUDIT_ACTIONS[event.action]
        if kind == "app.connected" and (event.metadata or {}).get("approval") == "pending":
            kind = "app.awaiting_approval"  # SPEC §12: its tokens are refused until approved
        event_emit(
            workspace=workspace, type=kind, dedup_key=f"audit:{event.public_id}:{kind}",
            subject=_SUBJECTS[kind].format(label=label[:120]), data=data,
        )
    if (event.metadata or {}).get("reason") == "leaked":
        what = "API key" if event.target_type == "api_key" else "OAuth access of"
        event_emit(
            workspace=workspace, type="key.leaked",
            dedup_key=f"leaked:{event.target_type}:{event.target_id}:{event.public_id}",
            subject=f"{what} {label[:120]} was reported leaked and revoked", data=data,
        )
