"""An idempotent write commits at most twice on PostgreSQL: the claim (which a concurrent
duplicate must see), then the change, its audit event and the stored response together
(`gateway.metering.serve_claimed`). Counted at the connection: every `COMMIT` Django issues,
plus every writing statement run outside a transaction (each its own commit)."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from http import HTTPStatus
from typing import Any

import pytest
from django.db import connection
from django.test import Client

from apikeys.services import apikey_create
from audit.models import AuditEvent
from audit.verification import verify_chain
from core.redis import using_redis
from gateway.models import IdempotencyRecord, IdempotencyStatus
from passports.models import Passport
from passports.services import passport_create
from tests.factories import by

ALL = ["passports:read", "passports:write"]
WRITES = ("INSERT", "UPDATE", "DELETE")
ON_POSTGRES = connection.vendor == "postgresql"


@contextmanager
def counted_commits() -> Iterator[list[str]]:
    """The commits this thread's connection makes: Django's `commit()` calls, and writing
    statements in autocommit (outside any atomic block)."""
    commits: list[str] = []
    real_commit = connection.commit

    def commit() -> None:
        commits.append("COMMIT")
        real_commit()

    def watch(execute: Callable[..., Any], sql: str, params: Any, many: bool, context: Any) -> Any:
        if not connection.in_atomic_block and sql.lstrip().upper().startswith(WRITES):
            commits.append(sql[:60])
        return execute(sql, params, many, context)

    connection.commit = commit  # the instance's method, called by Atomic.__exit__
    try:
        with connection.execute_wrapper(watch):
            yield commits
    finally:
        del connection.commit


def without_counters(commits: list[str], *, expected: int) -> list[str]:
    """`commits` but the daily budget's own: without Redis the budget is a database counter
    (`core.counters`), each take or give-back committed on its own so that every process counts
    exactly (a shared counter, not part of the write); with Redis there are none."""
    counters = [c for c in commits if "apikeys_counter" in c]
    assert len(counters) == (0 if using_redis() else expected)
    return [c for c in commits if c not in counters]


@pytest.fixture
def writer(workspace, members) -> Client:
    token = apikey_create(
        workspace=workspace, name="Writer", scopes=ALL, environment="development",
        **by(members["admin"]),
    )[1]
    return Client(headers={"Authorization": f"Bearer {token}"})


def _passport(workspace, n: int) -> Passport:
    return passport_create(
        workspace=workspace, gtin="4006381333931", serial_number=f"SN-{n}", product_name="Drill",
        **by(),
    )


def _patch(client: Client, passport: Passport, key: str, name: str):
    return client.patch(
        f"/api/v1/passports/{passport.public_id}", {"product_name": name},
        content_type="application/json", headers={"Idempotency-Key": key},
    )


@pytest.mark.django_db(transaction=True)
def test_an_idempotent_patch_commits_the_claim_then_everything_else(writer, workspace) -> None:
    passport = _passport(workspace, 1)
    assert _patch(writer, passport, "warm-up", "Warm").status_code == HTTPStatus.OK
    events_before = AuditEvent.objects.count()
    with counted_commits() as commits:
        response = _patch(writer, passport, "one", "Hammer drill")
    assert response.status_code == HTTPStatus.OK
    # PostgreSQL: the claim, then the change + its event + the stored response; SQLite (one
    # writer per file) commits the change and the stored response on their own (see
    # gateway.metering.one_transaction_writes).
    # Without Redis the daily budget is a database counter (`core.counters`), one upsert
    # committed on its own so that every process counts exactly: a shared counter, not the write.
    commits = without_counters(commits, expected=1)
    if ON_POSTGRES:
        assert commits == ["COMMIT", "COMMIT"]
    else:
        assert commits[:2] == ["COMMIT", "COMMIT"]
        assert commits[2].startswith('UPDATE "apikeys_idempotencyrecord"')
        assert len(commits) == 3
    assert Passport.objects.get(pk=passport.pk).product_name == "Hammer drill"
    assert AuditEvent.objects.count() == events_before + 1
    record = IdempotencyRecord.objects.get(key="one")
    assert record.status == IdempotencyStatus.COMPLETED
    assert bytes(record.response_body) == response.content
    replay = _patch(writer, passport, "one", "Hammer drill")
    assert replay["Idempotent-Replayed"] == "true" and replay.content == response.content
    assert verify_chain(workspace.pk).ok


@pytest.mark.django_db(transaction=True)
def test_a_refused_write_stores_its_answer_and_changes_nothing(writer, workspace) -> None:
    passport = _passport(workspace, 1)
    with counted_commits() as commits:
        response = _patch(writer, passport, "bad", "   ")
    assert response.status_code == HTTPStatus.BAD_REQUEST
    # The claim, then the stored 400 (the budget unit taken and given back is a counter's).
    assert len(without_counters(commits, expected=2)) == 2
    assert IdempotencyRecord.objects.get(key="bad").status == IdempotencyStatus.COMPLETED
    assert Passport.objects.get(pk=passport.pk).product_name == "Drill"
    assert not AuditEvent.objects.filter(action="passport.updated").exists()


@pytest.mark.django_db(transaction=True)
def test_sixteen_concurrent_writers_leave_one_unbroken_chain(writer, workspace) -> None:
    """16 threads, each patching its own passport of one workspace through the gateway: every
    event is chained, in one order, and verify_audit_log's check passes."""
    passports = [_passport(workspace, n) for n in range(16)]
    before = AuditEvent.objects.for_workspace(workspace).count()
    barrier = threading.Barrier(16)
    statuses: list[int] = []
    lock = threading.Lock()

    def send(index: int) -> None:
        try:
            barrier.wait()
            for round_ in range(3):
                status = _patch(
                    writer, passports[index], f"w{index}-{round_}", f"Drill {index}.{round_}"
                ).status_code
                with lock:
                    statuses.append(status)
        finally:
            connection.close()

    threads = [threading.Thread(target=send, args=(i,)) for i in range(16)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert statuses == [HTTPStatus.OK] * 48
    events = list(AuditEvent.objects.for_workspace(workspace).order_by("id"))
    assert len(events) == before + 48
    assert [e.prev_hash for e in events[1:]] == [e.hash for e in events[:-1]]
    assert [e.seq for e in events] == list(range(events[0].seq, events[0].seq + len(events)))
    report = verify_chain(workspace.pk)
    assert report.ok, report.problem
