"""Helpers for the audit tests: recording events, running commands as manage.py does, and
editing the table behind the ORM's back (past the append-only triggers) the way an intruder with
database access would."""

from __future__ import annotations

import io
from collections.abc import Iterator
from contextlib import contextmanager

from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import connection

from audit.models import AuditEvent
from audit.services import audit_record
from core.context import Actor, ActorType, RequestContext
from workspaces.models import Workspace

CONTEXT = RequestContext(ip="203.0.113.7", user_agent="pytest-audit/1.0")
TABLE = AuditEvent._meta.db_table


def record(workspace: Workspace | None, n: int = 1, *, action: str = "key.created",
           actor: Actor | None = None, metadata: dict | None = None) -> list[AuditEvent]:
    actor = actor or Actor(ActorType.USER, "1", "owner@acme.test")
    return [
        audit_record(action=action, actor=actor, workspace=workspace, target_type="api_key",
                     target_id=f"key_{i}", target_label=f"Key {i}", context=CONTEXT,
                     metadata=metadata if metadata is not None else {"n": i})
        for i in range(n)
    ]


def manage(*argv: str) -> tuple[int, str, str]:
    """Run a command as manage.py would: (exit status, stdout, stderr). manage.py turns a
    CommandError into its message on stderr and `sys.exit(returncode)`; so does this (it cannot
    call run_from_argv itself, which closes the test's database connection)."""
    out, err = io.StringIO(), io.StringIO()
    try:
        call_command(*argv, stdout=out, stderr=err)
    except CommandError as exc:
        err.write(f"CommandError: {exc}\n")
        return exc.returncode, out.getvalue(), err.getvalue()
    return 0, out.getvalue(), err.getvalue()


@contextmanager
def behind_the_orms_back() -> Iterator[object]:
    """A raw cursor with the append-only trigger out of the way, inside the test's transaction
    (so the trigger is back for the next test: both backends roll DDL back)."""
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            # ALTER TABLE waits for no deferred foreign-key checks: run them now.
            cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")
            cursor.execute(f"ALTER TABLE {TABLE} DISABLE TRIGGER audit_event_append_only")
        else:
            cursor.execute("DROP TRIGGER audit_event_no_update")
        yield cursor
