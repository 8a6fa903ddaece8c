"""`manage.py verify_audit_log [--workspace SLUG]`: walk every hash chain from its anchor.

Exit status 0 when every chain verifies, 1 naming the first broken link of each broken chain,
2 for a workspace that does not exist.
"""

from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError, CommandParser

from audit.models import AuditChain
from audit.verification import ChainReport, verify_chain
from workspaces.models import Workspace


class Command(BaseCommand):
    help = "Verify the audit log's hash chains and name the first broken link."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--workspace", metavar="SLUG", help="Verify only this workspace.")

    def handle(self, *args, workspace: str | None, **options) -> None:  # noqa: ANN002, ANN003
        if workspace is not None:
            ws = Workspace.objects.filter(slug=workspace).values_list("id", "slug").first()
            if ws is None:
                raise CommandError(f"No workspace with slug {workspace!r}.", returncode=2)
            chains = [ws]
        else:
            chains = self._all_chains()
        broken: list[str] = []
        total = 0
        for workspace_id, label in chains:
            report = verify_chain(workspace_id)
            total += report.events
            if report.ok:
                if report.events or report.anchor_event_id or workspace is not None:
                    self.stdout.write(self._ok_line(label, report))
            else:
                broken.append(f"{label}: {report.problem}")
                self.stderr.write(f"BROKEN {label}: {report.problem}")
        if broken:
            raise CommandError(
                f"{len(broken)} of {len(chains)} audit chains are broken. First broken link — "
                + " | ".join(broken),
                returncode=1,
            )
        self.stdout.write(
            self.style.SUCCESS(
                f"Audit log intact: {total} events in {len(chains)} chains verified."
            )
        )

    @staticmethod
    def _all_chains() -> list[tuple[int | None, str]]:
        """The global chain and every workspace's (also those whose chain row is missing)."""
        keys = set(AuditChain.objects.values_list("key", flat=True))
        chains: list[tuple[int | None, str]] = [(None, "global")]
        for workspace_id, slug in Workspace.objects.order_by("slug").values_list("id", "slug"):
            chains.append((workspace_id, slug))
            keys.discard(f"ws:{workspace_id}")
        keys.discard("global")
        # A chain row whose workspace is gone cannot verify: say so rather than skip it.
        chains.extend((int(key.removeprefix("ws:")), key) for key in sorted(keys)
                      if key.startswith("ws:") and key.removeprefix("ws:").isdigit())
        return chains

    @staticmethod
    def _ok_line(label: str, report: ChainReport) -> str:
        start = (
            f"anchor at event #{report.anchor_event_id}" if report.anchor_event_id else "genesis"
        )
        return f"ok {label}: {report.events} events from {start}, head {report.head_hash[:16]}…"
