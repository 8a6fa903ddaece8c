"""`manage.py audit_reseal (--workspace SLUG | --global) --expect-head HASH --reason TEXT`.

Re-seal a chain head that `verify_audit_log` reports as altered (or sealed with a key no longer
configured), after investigating, against a head hash from the `gatehouse.audit.anchor` log
(audit.reseal). Exit status 0 when re-sealed, 1 when refused, 2 for bad arguments.
"""

from __future__ import annotations

import re
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from audit.reseal import ResealRefusedError, audit_reseal
from core.context import Actor, RequestContext
from workspaces.models import Workspace

HASH = re.compile(r"[0-9a-f]{64}")


class Command(BaseCommand):
    help = "Re-seal an audit chain head against an anchor from the application log."

    def add_arguments(self, parser: CommandParser) -> None:
        which = parser.add_mutually_exclusive_group(required=True)
        which.add_argument("--workspace", metavar="SLUG")
        which.add_argument("--global", action="store_true", dest="global_chain",
                           help="The workspace-less chain (sign-ins).")
        parser.add_argument("--expect-head", metavar="HASH", required=True, dest="anchor")
        parser.add_argument("--reason", required=True, help="Why, for the audit event.")

    def handle(self, *args: Any, workspace: str | None, global_chain: bool, anchor: str,
               reason: str, **options: Any) -> None:
        anchor = anchor.strip().lower()
        if not HASH.fullmatch(anchor):
            raise CommandError("--expect-head takes a 64-character hex hash.", returncode=2)
        ws = None
        if not global_chain:
            ws = Workspace.objects.filter(slug=workspace).first()
            if ws is None:
                raise CommandError(f"No workspace with slug {workspace!r}.", returncode=2)
        try:
            event = audit_reseal(
                workspace=ws, anchor=anchor, reason=reason,
                actor=Actor.system("manage.py audit_reseal"),
                context=RequestContext.for_command("audit_reseal"),
            )
        except ResealRefusedError as exc:
            raise CommandError(f"Refused: {exc}", returncode=1) from None
        self.stdout.write(self.style.SUCCESS(
            f"Re-sealed {event.target_id}; recorded as {event.public_id} (audit.resealed)."
        ))
