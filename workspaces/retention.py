"""The audit log's retention step for `manage.py prune`: each workspace keeps its events for its
plan's `audit_retention_days` (the global chain: a year). Registered in `WorkspacesConfig.ready`:
`audit` cannot know plans."""

from __future__ import annotations

from datetime import datetime, timedelta

from audit.services import GLOBAL_RETENTION_DAYS, ChainBrokenError, audit_prune
from core.retention import StepFailedError

from .models import Workspace


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
