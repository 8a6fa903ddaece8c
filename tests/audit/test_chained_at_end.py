"""`audit_chained_at_end`: events take their chain position when the block ends, so the chain's
head row is locked only for a transaction's last statements; the chain is the same as ever."""

from __future__ import annotations

import threading

import pytest
from django.db import connection, transaction

from audit.models import AuditChain, AuditEvent
from audit.services import audit_chained_at_end, chain_key
from audit.verification import verify_chain
from tests.audit.helpers import manage, record
from tests.factories import WorkspaceFactory


@pytest.mark.django_db
def test_events_are_chained_when_the_block_ends() -> None:
    workspace = WorkspaceFactory(slug="acme")
    record(workspace, 1)
    head = AuditChain.objects.get(key=chain_key(workspace.pk)).head_seq
    with transaction.atomic(), audit_chained_at_end():
        first, second = record(workspace, 2)
        assert first.pk is None and second.pk is None  # no position yet
        assert AuditChain.objects.get(key=chain_key(workspace.pk)).head_seq == head
        assert AuditEvent.objects.for_workspace(workspace).count() == 1
    assert (first.seq, second.seq) == (head + 1, head + 2)
    assert second.prev_hash == first.hash
    assert AuditChain.objects.get(key=chain_key(workspace.pk)).head_hash == second.hash
    report = verify_chain(workspace.pk)
    assert report.ok and report.events == 3


@pytest.mark.django_db
def test_an_event_of_a_rolled_back_savepoint_is_dropped_with_it() -> None:
    workspace = WorkspaceFactory(slug="acme")
    with transaction.atomic(), audit_chained_at_end():
        kept = record(workspace, 1, action="key.created")[0]
        try:
            with transaction.atomic():
                record(workspace, 1, action="key.revoked")
                raise RuntimeError("the change failed")
        except RuntimeError:
            pass
        after = record(workspace, 1, action="key.paused")[0]
    actions = list(AuditEvent.objects.for_workspace(workspace).order_by("id")
                   .values_list("action", flat=True))
    assert actions == ["key.created", "key.paused"]
    assert after.prev_hash == kept.hash
    assert verify_chain(workspace.pk).ok


@pytest.mark.django_db
def test_nothing_is_chained_when_the_block_raises_or_rolls_back() -> None:
    workspace = WorkspaceFactory(slug="acme")
    with pytest.raises(ValueError), transaction.atomic(), audit_chained_at_end():
        record(workspace, 1)
        raise ValueError("refused")
    with transaction.atomic(), audit_chained_at_end():
        record(workspace, 1)
        transaction.set_rollback(True)
    assert not AuditEvent.objects.for_workspace(workspace).exists()


@pytest.mark.django_db(transaction=True)
def test_it_needs_a_transaction() -> None:
    with pytest.raises(RuntimeError, match="needs a transaction"), audit_chained_at_end():
        pass


@pytest.mark.django_db(transaction=True)
def test_an_unrelated_write_does_not_wait_for_an_open_transaction_that_recorded() -> None:
    """Real threads and connections: a transaction has recorded an event (chained at its end)
    and is still running; another write of the same workspace records and commits meanwhile.
    On SQLite one writer holds the whole file, so only PostgreSQL can show it."""
    if connection.vendor != "postgresql":
        pytest.skip("SQLite has one writer for the whole database file")
    workspace = WorkspaceFactory(slug="acme")
    record(workspace, 1)
    recorded, other_done = threading.Event(), threading.Event()
    errors: list[BaseException] = []

    def long_write() -> None:
        try:
            with transaction.atomic(), audit_chained_at_end():
                record(workspace, 1, action="key.created")
                recorded.set()
                assert other_done.wait(10), "the other write waited on the chain head"
        except BaseException as exc:  # reported by the test
            errors.append(exc)
        finally:
            connection.close()

    def other_write() -> None:
        try:
            assert recorded.wait(10)
            record(workspace, 1, action="key.revoked")  # its own transaction, chained at once
            other_done.set()
        except BaseException as exc:
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=long_write), threading.Thread(target=other_write)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    actions = list(AuditEvent.objects.for_workspace(workspace).order_by("seq")
                   .values_list("action", flat=True))
    assert actions[1:] == ["key.revoked", "key.created"]  # positions taken at each commit's end
    code, out, err = manage("verify_audit_log", "--workspace", "acme")
    assert code == 0, err
