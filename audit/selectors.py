"""Reading a workspace's audit log: the dashboard, the CSV export and `GET /api/v1/audit-events`
share these filters and this order (newest first, by id — the chain's order)."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from datetime import datetime
from typing import TYPE_CHECKING

from django.db.models import Q, QuerySet

from core.pagination import MAX_LIMIT, InvalidPageRequest, keyset_page

from .actions import is_known_action
from .models import AuditEvent

EXPORT_BATCH_SIZE = 2000

if TYPE_CHECKING:
    from workspaces.models import Workspace



def audit_event_queryset(
    *,
    workspace: Workspace,
    action: str | None = None,
    actor: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
) -> QuerySet[AuditEvent]:
    """The workspace's events matching every given filter (unordered).

    `action`: an action name from `audit.actions.ACTIONS`. `actor`: an actor's id (a user's id,
    `key_…`, an OAuth app's id) or label (a user's email, a key's name), matched exactly.
    `since` is inclusive, `until` exclusive; both aware datetimes. Raises `InvalidPageRequest`
    (field, message) for an unknown action or an empty range, like a bad cursor.
    """
    if action and not is_known_action(action):
        raise InvalidPageRequest("action", f"{action[:64]!r} is not an audit action.")
    if actor and (len(actor) > 255 or "\x00" in actor):
        raise InvalidPageRequest("actor", "actor must be an id or label of at most 255 characters.")
    if since is not None and until is not None and since >= until:
        raise InvalidPageRequest("until", "until must be later than since.")
    events = AuditEvent.objects.for_workspace(workspace)
    # Exact time filters, plus the same bounds as id bounds so that a page is an id-range scan.
    if since is not None:
        first = _first_id_at_or_after(workspace, since)
        events = events.filter(created_at__gte=since, id__gte=first) if first else events.none()
    if until is not None:
        after_range = _first_id_at_or_after(workspace, until)
        events = events.filter(created_at__lt=until)
        if after_range:
            events = events.filter(id__lt=after_range)
    if action:
        events = events.filter(action=action)
    if actor:
        # Two indexes, (workspace, actor_id, -id) and (workspace, actor_label, -id).
        events = events.filter(Q(actor_id=actor) | Q(actor_label=actor))
    return events


def _first_id_at_or_after(workspace: Workspace, moment: datetime) -> int | None:
    """The id of the workspace's first event at or after `moment` (index audit_ws_created).

    Along a chain `created_at` never decreases with the id (audit_record stamps each event no
    earlier than its predecessor), so "created_at >= moment" is exactly "id >= this id". Without
    the id bound PostgreSQL scans backwards from the newest event through every event newer than
    the range: hundreds of milliseconds at a million events, instead of a few.
    """
    return (
        AuditEvent.objects.for_workspace(workspace)
        .filter(created_at__gte=moment)
        .order_by("created_at", "id")
        .values_list("id", flat=True)
        .first()
    )


def _filter_scope(
    workspace: Workspace, action: str | None, actor: str | None,
    since: datetime | None, until: datetime | None,
) -> str:
    """Binds a cursor to this workspace and filter: a cursor from another list is refused."""
    canonical = json.dumps(
        [workspace.pk, action or "", actor or "",
         since.isoformat() if since else "", until.isoformat() if until else ""],
        separators=(",", ":"),
    )
    return "audit:" + hashlib.sha256(canonical.encode()).hexdigest()[:24]


def audit_event_page(
    *,
    workspace: Workspace,
    action: str | None = None,
    actor: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    cursor: str | None = None,
    limit: int = 50,
) -> tuple[list[AuditEvent], str | None]:
    """One page of the workspace's events, newest first, and the cursor of the next (older) page.

    Keyset pagination on the id (`id < cursor`), on the indexes above: page 1000 costs what page 1
    costs. Raises `core.pagination.InvalidPageRequest` for a forged cursor, a cursor issued
    for another workspace or filter, a limit outside 1–100, an unknown action or an empty range.
    """
    if not 1 <= limit <= MAX_LIMIT:
        raise InvalidPageRequest("limit", f"limit must be a whole number from 1 to {MAX_LIMIT}.")
    events = audit_event_queryset(
        workspace=workspace, action=action, actor=actor, since=since, until=until
    )
    return keyset_page(
        events,
        cursor=cursor,
        limit=limit,
        scope=_filter_scope(workspace, action, actor, since, until),
        descending=True,
    )


def audit_event_stream(events: QuerySet[AuditEvent]) -> Iterator[AuditEvent]:
    """Every event of `events`, newest first, read in keyset batches of `EXPORT_BATCH_SIZE`.

    Memory stays at one batch however long the log, and each batch is a short indexed query:
    no transaction or server-side cursor is held open while a slow client downloads.
    """
    before: int | None = None
    while True:
        batch_qs = events if before is None else events.filter(id__lt=before)
        batch = list(batch_qs.order_by("-id")[:EXPORT_BATCH_SIZE])
        yield from batch
        if len(batch) < EXPORT_BATCH_SIZE:
            return
        before = batch[-1].id
