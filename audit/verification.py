"""Walking a hash chain from its anchor and naming the first broken link (`verify_audit_log`).

A chain is intact when its head row's seal (an HMAC under the audit key) matches the head and
anchor it holds; in id order from the anchor, every event's `prev_hash` is the hash of the event
before it (the anchor's hash for the first), every event's `hash` is the HMAC of its own content
under the key it names (or, only up to the chain's sealed `legacy_through`, the unkeyed SHA-256 of
before the key existed); and the head's `head_hash` is the hash of one of the walked events.
Optionally, hashes anchored outside the database (the `gatehouse.audit.anchor` log) must be among
the walked events, which catches a tail truncated and rewound to an older, once-valid head.

The walk reads in keyset batches, so it holds no long transaction or server-side cursor and runs
beside live traffic. Writers only append and `prune` only removes the oldest events, so a walk that
races either of them is simply repeated; see `verify_chain`.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, replace

from django.db.models import QuerySet

from .keys import verification_key
from .models import AuditChain, AuditEvent
from .services import GENESIS_HASH, chain_key, chain_seal_ok, event_digest

BATCH_SIZE = 2000
ATTEMPTS = 3
CATCH_UPS = 10


@dataclass(frozen=True, slots=True)
class ChainReport:
    key: str
    events: int
    head_hash: str
    anchor_event_id: int | None = None
    problem: str | None = None
    broken_event: str | None = None  # public id of the event where the chain breaks
    legacy: int = 0  # events verified by the unkeyed SHA-256 only (written before the key)
    head_seq: int = 0
    last_event: str | None = None  # public id of the newest event walked
    found: frozenset[str] = frozenset()  # the expected hashes found among the walked events
    # Every event verified up to the head, but the head row's seal does not match.
    only_seal_broken: bool = False

    @property
    def ok(self) -> bool:
        return self.problem is None


@dataclass(frozen=True, slots=True)
class _Head:
    key: str
    head_hash: str
    anchor_hash: str
    anchor_event_id: int | None
    head_seq: int
    legacy_through: int | None
    seal: str
    seal_key_id: str

    @property
    def sealed(self) -> bool:
        return chain_seal_ok(self)


def chain_events(workspace_id: int | None) -> QuerySet[AuditEvent]:
    if workspace_id is None:
        return AuditEvent.objects.filter(workspace__isnull=True)
    return AuditEvent.objects.filter(workspace_id=workspace_id)


def events_in_id_order(queryset: QuerySet[AuditEvent], *, after: int | None = None,
                       batch_size: int = BATCH_SIZE) -> Iterator[AuditEvent]:
    """Every event of `queryset` with id > `after`, ascending, fetched `batch_size` at a time."""
    last = after or 0
    while True:
        batch = list(queryset.filter(id__gt=last).order_by("id")[:batch_size])
        yield from batch
        if len(batch) < batch_size:
            return
        last = batch[-1].id


def _read_head(key: str) -> _Head | None:
    row = AuditChain.objects.filter(key=key).values_list(
        "key", "head_hash", "anchor_hash", "anchor_event_id", "head_seq", "legacy_through",
        "seal", "seal_key_id",
    ).first()
    return _Head(*row) if row else None


def seal_problem(head: _Head) -> str | None:
    if head.sealed:
        return None
    if verification_key(head.seal_key_id) is None and head.seal_key_id:
        return (
            f"The chain head row {head.key!r} is sealed with audit key {head.seal_key_id}, which "
            "is not configured: add that key to GATEHOUSE_AUDIT_KEYS_OLD."
        )
    return (
        f"The chain head row {head.key!r} was altered outside Gatehouse: its seal does not match "
        "its head and anchor (the head was rewound or the anchor moved: events were deleted or "
        "rewritten)."
    )


def link_problem(
    events: QuerySet[AuditEvent], event: AuditEvent, previous: AuditEvent | None
) -> str:
    """Why `event` does not follow `previous` (None: the chain's anchor), in an operator's words.

    Looks up the event `event` claims to follow: absent means it was deleted (or edited and
    re-hashed); later in id order means the two were reordered; earlier means the events between
    were inserted. Only runs on a broken chain, so the unindexed hash lookup costs nothing normally.
    """
    after = previous.public_id if previous else "the chain's anchor"
    claimed = (
        events.filter(hash=event.prev_hash).exclude(pk=event.pk)
        .values_list("id", "public_id").first()
    )
    if claimed is None:
        if previous is None:
            return (
                f"{event.public_id} does not follow the chain's anchor: the events before it "
                "were deleted, or the anchor was altered."
            )
        return (
            f"An event is missing between {after} and {event.public_id}: it was deleted, "
            "or edited and re-hashed."
        )
    claimed_id, claimed_public_id = claimed
    if claimed_id > event.id:
        return (
            f"{event.public_id} is out of order: it follows {claimed_public_id}, which comes "
            "after it (events were reordered)."
        )
    return (
        f"{after} was inserted: {event.public_id} follows {claimed_public_id}, not {after}."
    )


def digest_problem(event: AuditEvent, head: _Head, keyed_seen: bool) -> str | None:
    if not event.key_id:
        if event.id > (head.legacy_through or 0) or keyed_seen:
            return (
                f"{event.public_id} is hashed without the audit key but was not written before "
                "the key existed: it was rewritten or forged by someone without the key."
            )
    elif verification_key(event.key_id) is None:
        return (
            f"{event.public_id} is signed with audit key {event.key_id}, which is not configured: "
            "add that key to GATEHOUSE_AUDIT_KEYS_OLD."
        )
    if event_digest(event) != event.hash:
        return f"{event.public_id} was edited: its content no longer matches its hash."
    return None


@dataclass(slots=True)
class _Walk:
    key: str
    events: QuerySet[AuditEvent]
    head: _Head
    expected: str = ""
    previous: AuditEvent | None = None
    count: int = 0
    head_seen: bool = False
    problem: str | None = None
    broken: AuditEvent | None = None
    racy: bool = False
    legacy: int = 0
    keyed_seen: bool = False
    expect: frozenset[str] = frozenset()
    found: set[str] | None = None

    def run(self) -> None:
        """Verify every event after the last one verified; stop at the first broken link."""
        after = self.previous.id if self.previous else self.head.anchor_event_id
        for event in events_in_id_order(self.events, after=after):
            if event.prev_hash != self.expected:
                self.problem, self.broken, self.racy = (
                    link_problem(self.events, event, self.previous), event, True
                )
                return
            problem = digest_problem(event, self.head, self.keyed_seen)
            if problem:
                self.problem, self.broken = problem, event
                return
            if event.key_id:
                self.keyed_seen = True
            else:
                self.legacy += 1
            if event.hash in self.expect:
                self.found.add(event.hash)
            self.expected = event.hash
            self.previous = event
            self.count += 1
            if self.expected == self.head.head_hash:
                self.head_seen = True


def _walk(key: str, workspace_id: int | None, head: _Head,
          expect: frozenset[str]) -> tuple[ChainReport, bool]:
    """One pass; returns the report and whether a failure may be an artefact of a race."""
    walk = _Walk(key=key, events=chain_events(workspace_id), head=head,
                 expected=head.anchor_hash, head_seen=head.head_hash == head.anchor_hash,
                 expect=expect, found={head.anchor_hash} & expect)
    walk.run()
    for _catch_up in range(CATCH_UPS):
        if walk.problem:
            return _report(walk, walk.problem), walk.racy
        if walk.expected == head.head_hash:
            return _sealed_report(walk), False
        if not walk.head_seen:
            last = walk.previous.public_id if walk.previous else "the chain's anchor"
            problem = (
                f"The chain head {head.head_hash[:12]}… matches no event: the newest events "
                f"after {last} were deleted (or edited and re-hashed)."
            )
            return _report(walk, problem), True
        # Events link beyond the head read before the walk: appended since (the head has moved
        # on: verify those too) or inserted behind the services' back (the head has not moved).
        now = _read_head(key)
        if now is None or now.anchor_hash != head.anchor_hash:
            return _report(walk, "The chain changed during verification."), True
        if now.head_hash == walk.expected:
            walk.head = now
            return _sealed_report(walk), False
        if now.head_hash == head.head_hash:
            problem = (
                f"{walk.previous.public_id} was inserted after the chain head: the head does not "
                "point at it."
            )
            walk.broken = walk.previous
            return _report(walk, problem), False
        walk.head = now
        walk.head_seen = False
        head = now
        walk.run()
    return _report(walk, "The chain kept changing during verification."), True


def _sealed_report(walk: _Walk) -> ChainReport:
    """Every link verified up to the head: the head row itself must carry a valid seal (one row,
    read at once, so no race explains a bad one). A truncated tail with a rewound head links
    perfectly; only the seal (or an anchor kept outside the database) tells."""
    problem = seal_problem(walk.head)
    return replace(_report(walk, problem), only_seal_broken=problem is not None)


def _report(walk: _Walk, problem: str | None = None) -> ChainReport:
    return ChainReport(
        key=walk.key, events=walk.count, head_hash=walk.head.head_hash,
        anchor_event_id=walk.head.anchor_event_id, problem=problem,
        broken_event=walk.broken.public_id if walk.broken else None,
        legacy=walk.legacy, head_seq=walk.head.head_seq,
        last_event=walk.previous.public_id if walk.previous else None,
        found=frozenset(walk.found or ()),
    )


def verify_chain(workspace_id: int | None, *, expect: frozenset[str] = frozenset()) -> ChainReport:
    """Verify the chain of one workspace (None: the workspace-less chain); `report.found` says
    which of the `expect`ed hashes (anchors kept outside the database) the verified chain holds.

    A failure that a concurrent append or prune could explain (the anchor or head moved during
    the walk) is re-checked, up to `ATTEMPTS` walks; a failure that persists is reported.
    """
    key = chain_key(workspace_id)
    report: ChainReport | None = None
    for _attempt in range(ATTEMPTS):
        head = _read_head(key)
        if head is None:
            first = chain_events(workspace_id).order_by("id").first()
            if first is None:
                return ChainReport(key=key, events=0, head_hash=GENESIS_HASH)
            return ChainReport(
                key=key, events=0, head_hash="", problem=(
                    f"The chain head row {key!r} is missing although events exist "
                    f"(from {first.public_id})."
                ), broken_event=first.public_id,
            )
        report, racy = _walk(key, workspace_id, head, expect)
        if report.ok or not racy or _read_head(key) == head:
            return report
    assert report is not None
    return report
