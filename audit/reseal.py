"""Re-sealing a chain head that no longer carries a valid seal, once an operator vouches for it.

A head found altered stays `tainted` through every later write (audit.services), so the break is
never laundered; and a head sealed with a key that was rotated away without being kept in
`GATEHOUSE_AUDIT_KEYS_OLD` cannot be checked. Both leave `verify_audit_log` failing for good. After
investigating, an operator re-seals with an anchor from outside the database: the chain must
verify in every other respect and hold that anchored head, and the re-seal is itself an event of
the chain (`audit.resealed`), so it is on the record who vouched, when and against which anchor.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from django.db import transaction

from core.context import Actor, RequestContext

from .models import AuditChain, AuditEvent
from .services import audit_record, chain_key, chain_reseal
from .verification import verify_chain

if TYPE_CHECKING:
    from workspaces.models import Workspace



class ResealRefusedError(Exception):
    """The chain is not fit to re-seal: the message says why."""


def audit_reseal(
    *, workspace: Workspace | None, anchor: str, reason: str, actor: Actor,
    context: RequestContext,
) -> AuditEvent:
    """Re-seal the chain's head and record `audit.resealed`, holding the chain lock throughout.

    Refused unless every event from the anchor of retention to the head verifies (links, HMACs)
    and the chain holds `anchor`, a head hash from the `gatehouse.audit.anchor` log; what the
    seal alone protected between that anchor and now cannot be re-proved, which is why the event
    names the anchor.
    """
    workspace_id = workspace.pk if workspace is not None else None
    key = chain_key(workspace_id)
    with transaction.atomic():
        chain = AuditChain.objects.select_for_update().filter(key=key).first()
        if chain is None:
            raise ResealRefusedError(f"The {key} chain has no head row.")
        report = verify_chain(workspace_id, expect=frozenset({anchor}))
        if report.ok:
            raise ResealRefusedError(f"The {key} chain is sealed and verifies: nothing to do.")
        if not report.only_seal_broken:
            raise ResealRefusedError(f"The {key} chain is broken, not only its seal: "
                                     f"{report.problem}")
        if anchor not in report.found:
            raise ResealRefusedError(
                f"The {key} chain does not hold the anchored head {anchor[:16]}…: events up to "
                "it are missing, so the chain cannot be vouched for."
            )
        previous = chain.seal_key_id
        chain_reseal(chain, was_ok=True)
        AuditChain.objects.filter(pk=chain.pk).update(seal=chain.seal,
                                                      seal_key_id=chain.seal_key_id)
        return audit_record(
            action="audit.resealed", actor=actor, workspace=workspace, target_type="audit_log",
            target_id=key, context=context,
            metadata={"anchor": anchor, "reason": reason[:500], "events": report.events,
                      "previous_seal_key_id": previous},
        )
