"""`manage.py prune`: remove what has outlived its retention, one step at a time.

Each step is a function `(now) -> summary line`; later steps (expired idempotency records, old
usage) are added to STEPS. `--step NAME` runs only the named steps.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.utils import timezone

from audit.services import GLOBAL_RETENTION_DAYS, ChainBrokenError, audit_prune
from workspaces.models import Workspace


class StepFailedError(Exception):
    """A step finished what it could and reports what it could not do."""


def prune_audit_events(now: datetime) -> str:
    """Events older than the workspace plan's `audit_retention_days` (the global chain: a year)."""
    deleted = 0
    chains = 0
    problems: list[str] = []
    targets: list[tuple[Workspace | None, int]] = [
        (ws, ws.plan.audit_retention_days) for ws in Workspace.objects.select_related("plan")
    ]
    targets.append((None, GLOBAL_RETENTION_DAYS))
    for workspace, days in targets:
        try:
            count = audit_prune(workspace=workspace, before=now - timedelta(days=days))
        except ChainBrokenError as exc:
            problems.append(str(exc))
            continue
        deleted += count
        chains += bool(count)
    summary = f"audit events: deleted {deleted} from {chains} chains"
    if problems:
        raise StepFailedError(f"{summary}; refused: " + " ".join(problems))
    return summary


def prune_oauth(now: datetime) -> str:
    """Dynamically registered OAuth clients nobody connected within a week; expired codes and
    tokens (django-oauth-toolkit's `clear_expired`)."""
    from oauth.services import oauth_prune

    deleted = oauth_prune(now=now)
    return f"oauth: deleted {deleted} unused dynamically registered clients and expired tokens"


def prune_api_metering(now: datetime) -> str:
    """Idempotency records past their 24 hours, usage older than 90 days, expired counters."""
    from apikeys.counters import counters_prune
    from apikeys.idempotency import idempotency_prune
    from apikeys.usage import usage_prune

    records = idempotency_prune(now)
    usage = usage_prune(now)
    counters = counters_prune(now)
    return (
        f"api: deleted {records} expired idempotency records, {usage} usage rows older than "
        f"90 days, {counters} expired counters"
    )


STEPS: dict[str, Callable[[datetime], str]] = {
    "audit": prune_audit_events,
    "oauth": prune_oauth,
    "api": prune_api_metering,
}


class Command(BaseCommand):
    help = "Delete data past its retention: " + ", ".join(STEPS) + "."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--step", action="append", choices=list(STEPS), dest="steps",
            help="Run only this step (repeatable). Default: all.",
        )

    def handle(self, *args, steps: list[str] | None, **options) -> None:  # noqa: ANN002, ANN003
        now = timezone.now()
        failures: list[str] = []
        for name in steps or list(STEPS):
            try:
                self.stdout.write(STEPS[name](now))
            except StepFailedError as exc:
                failures.append(str(exc))
                self.stderr.write(str(exc))
        if failures:
            raise CommandError(f"{len(failures)} prune step(s) did not finish.", returncode=1)
