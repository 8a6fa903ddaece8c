"""Concurrent writers never fork a chain: real threads, real connections, one workspace."""

from __future__ import annotations

import threading

import pytest
from django.db import connection

from audit.models import AuditChain, AuditEvent
from audit.services import chain_key
from audit.verification import verify_chain
from tests.audit.helpers import manage, record
from tests.factories import WorkspaceFactory

THREADS = 16
EVENTS_PER_THREAD = 10


def _hammer(workspace, barrier: threading.Barrier, errors: list[BaseException]) -> None:
    try:
        barrier.wait()
        record(workspace, EVENTS_PER_THREAD)
    except BaseException as exc:  # reported by the test
        errors.append(exc)
    finally:
        connection.close()


@pytest.mark.django_db(transaction=True)
def test_sixteen_threads_keep_one_unbroken_chain() -> None:
    workspace = WorkspaceFactory(slug="acme")
    # No chain row yet: the first writers also race to create the chain head.
    assert not AuditChain.objects.filter(key=chain_key(workspace.pk)).exists()
    barrier = threading.Barrier(THREADS)
    errors: list[BaseException] = []
    threads = [
        threading.Thread(target=_hammer, args=(workspace, barrier, errors))
        for _ in range(THREADS)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert errors == []
    events = list(AuditEvent.objects.for_workspace(workspace).order_by("id"))
    assert len(events) == THREADS * EVENTS_PER_THREAD
    # Every event follows exactly the one before it: no two share a predecessor (no fork).
    assert len({e.prev_hash for e in events}) == len(events)
    assert [e.prev_hash for e in events[1:]] == [e.hash for e in events[:-1]]
    assert AuditChain.objects.filter(key=chain_key(workspace.pk)).count() == 1
    report = verify_chain(workspace.pk)
    assert report.ok, report.problem
    assert report.events == THREADS * EVENTS_PER_THREAD
    code, out, err = manage("verify_audit_log", "--workspace", "acme")
    assert code == 0, err
    assert f"ok acme: {THREADS * EVENTS_PER_THREAD} events" in out
