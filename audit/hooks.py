"""What apps above `audit` do when an event is recorded, without `audit` importing them.

The audit log is the lowest layer every service writes (SPEC §1), so it is also the one place
that sees every change of access. An app above (notifications) registers a callable in its
AppConfig.ready; `audit_record` calls each one with the new event, inside the transaction of
the change: what a hook writes (an outbound notification and its queued task) commits with the
change or not at all — nothing is sent for a rolled-back change, nothing lost for a committed
one. A hook must be cheap for the actions it does not care about (a set lookup) and must not
do network I/O. No Django signals: the flow stays visible here.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from workspaces.models import Workspace

    from .models import AuditEvent


class EventRecordedHook(Protocol):
    def __call__(self, *, event: AuditEvent, workspace: Workspace | None) -> None: ...


_event_recorded: list[Callable[..., None]] = []


def on_event_recorded(hook: EventRecordedHook) -> EventRecordedHook:
    """Run `hook` for every recorded event (registering the same callable twice is a no-op)."""
    if hook not in _event_recorded:
        _event_recorded.append(hook)
    return hook


def event_recorded_hooks() -> tuple[EventRecordedHook, ...]:
    return tuple(_event_recorded)
