"""`manage.py verify_audit_log [--workspace SLUG] [--expect-head HASH …]`: walk every hash chain
from its anchor, checking every link, every event's HMAC and every chain head's seal.

`--expect-head` takes a head hash recorded outside the database (the `gatehouse.audit.anchor` log
line of a write): the chain must still hold that event, which catches a tail that was deleted and
rewound to an older head. Exit status 0 when everything verifies, 1 naming the first broken link of
each broken chain or the missing tail, 2 for a workspace that does not exist.
"""

from __future__ import annotations

import re
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from audit.models import AuditChain
from audit.verification import ChainReport, verify_chain
from workspaces.models import Workspace

HASH = re.compile(r"[0-9a-f]{64}")


def _summary(reports: list[tuple[str, ChainReport]], expected: frozenset[str]) -> str:
    total = sum(report.events for _label, report in reports)
    legacy = sum(report.legacy for _label, report in reports)
    summary = f"Audit log intact: {total} events in {len(reports)} chains verified"
    if expected:
        summary += f", {len(expected)} anchored head(s) found"
    if legacy:
        summary += (
            f"; {legacy} of them predate the audit key (unkeyed SHA-256, protected only by "
            "the sealed heads that follow them)"
        )
    return summary + "."


class Command(BaseCommand):
    help = "Verify the audit log's hash chains and name the first broken link."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--workspace", metavar="SLUG", help="Verify only this workspace.")
        parser.add_argument(
            "--expect-head", metavar="HASH", action="append", default=[], dest="expect",
            help="A head hash from the gatehouse.audit.anchor log: the log must still hold it "
            "(repeatable).",
        )

    def handle(self, *args: Any, workspace: str | None, expect: list[str], **options: Any) -> None:
        expected = frozenset(value.strip().lower() for value in expect)
        malformed = sorted(value for value in expected if not HASH.fullmatch(value))
        if malformed:
            raise CommandError(
                f"--expect-head takes a 64-character hex hash, not {malformed[0]!r}.", returncode=2
            )
        chains = self._chains_named(workspace) if workspace is not None else self._all_chains()
        reports = [(label, verify_chain(workspace_id, expect=expected))
                   for workspace_id, label in chains]
        broken = self._report_chains(reports, every=workspace is not None)
        headline = [f"{len(broken)} of {len(chains)} audit chains are broken"] if broken else []
        found = set().union(*(report.found for _label, report in reports))
        missing = sorted(expected - found)
        for value in missing:
            problem = self._missing_tail(value, reports)
            broken.append(problem)
            self.stderr.write(f"MISSING TAIL {problem}")
        if missing:
            headline.append(f"{len(missing)} anchored head(s) are missing")
        if broken:
            raise CommandError(
                "; ".join(headline) + ". First broken link — " + " | ".join(broken), returncode=1
            )
        self.stdout.write(self.style.SUCCESS(_summary(reports, expected)))

    @staticmethod
    def _chains_named(slug: str) -> list[tuple[int, str]]:
        ws = Workspace.objects.filter(slug=slug).values_list("id", "slug").first()
        if ws is None:
            raise CommandError(f"No workspace with slug {slug!r}.", returncode=2)
        return [ws]

    def _report_chains(self, reports: list[tuple[str, ChainReport]], *, every: bool) -> list[str]:
        """One line per chain (an empty, unanchored chain only when asked for by name); returns
        the broken ones."""
        broken: list[str] = []
        for label, report in reports:
            if report.ok:
                if report.events or report.anchor_event_id or every:
                    self.stdout.write(self._ok_line(label, report))
            else:
                broken.append(f"{label}: {report.problem}")
                self.stderr.write(f"BROKEN {label}: {report.problem}")
        return broken

    @staticmethod
    def _missing_tail(missing: str, reports: list[tuple[str, ChainReport]]) -> str:
        if len(reports) == 1:
            label, report = reports[0]
            end = report.last_event or "its anchor"
            return (
                f"{label}: the anchored head {missing[:16]}… is not in the chain, which ends at "
                f"{end} (seq {report.head_seq}): the events after {end}, up to the anchored one, "
                "are missing — the tail was deleted or rewritten and the head rewound (or the "
                "anchor is older than the retention, or of another chain)."
            )
        return (
            f"the anchored head {missing[:16]}… is in no chain: the tail it ended was deleted or "
            "rewritten and its head rewound (pass --workspace to name where the chain ends now)."
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
        line = (
            f"ok {label}: {report.events} events from {start}, head {report.head_hash[:16]}… "
            f"(seq {report.head_seq})"
        )
        if report.legacy:
            line += f", {report.legacy} of them unkeyed from before the audit key"
        return line
