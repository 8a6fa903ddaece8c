"""Tamper evidence: verify_audit_log names the first broken link; the table refuses changes."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
import time_machine
from django.db import DatabaseError, connection, transaction

from audit.keys import signing_key
from audit.models import AuditChain, AuditEvent
from audit.services import GENESIS_HASH, chain_key, event_digest
from tests.audit.helpers import TABLE, behind_the_orms_back, manage, record
from tests.factories import WorkspaceFactory

pytestmark = pytest.mark.django_db


def test_intact_chain_verifies(workspace, other_workspace) -> None:
    record(workspace, 5)
    record(other_workspace, 2)
    record(None, 1, action="user.logged_in")
    code, out, err = manage("verify_audit_log")
    assert code == 0, err
    assert "ok acme: 5 events from genesis" in out
    assert "ok globex: 2 events" in out
    assert "ok global: 1 events" in out
    assert "Audit log intact: 8 events in 3 chains verified." in out


def test_each_event_links_to_the_one_before(workspace) -> None:
    first, second = record(workspace, 2)
    assert first.prev_hash == GENESIS_HASH
    assert second.prev_hash == first.hash
    assert second.hash == event_digest(second)
    assert AuditChain.objects.get(key=chain_key(workspace.pk)).head_hash == second.hash


def test_event_times_never_go_back_along_a_chain(workspace, other_workspace) -> None:
    # Another process's clock may run behind: its event is stamped at its predecessor's time,
    # so along a chain time never decreases with the id (date filters rely on it).
    at = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)
    with time_machine.travel(at, tick=False):
        (first,) = record(workspace)
    with time_machine.travel(at - timedelta(hours=1), tick=False):
        (second,) = record(workspace)
        (elsewhere,) = record(other_workspace)
    assert second.created_at == first.created_at == at
    assert elsewhere.created_at == at - timedelta(hours=1)
    assert manage("verify_audit_log")[0] == 0


def test_one_workspace_can_be_verified(workspace, other_workspace) -> None:
    record(workspace, 3)
    broken = record(other_workspace, 2)[0]
    with behind_the_orms_back() as cursor:
        cursor.execute(f"UPDATE {TABLE} SET action = 'key.paused' WHERE id = %s", [broken.pk])
    code, out, _ = manage("verify_audit_log", "--workspace", "acme")
    assert code == 0
    assert "ok acme: 3 events" in out
    assert manage("verify_audit_log", "--workspace", "globex")[0] == 1


def test_unknown_workspace_is_a_usage_error(db) -> None:
    code, _, err = manage("verify_audit_log", "--workspace", "nope")
    assert code == 2
    assert "No workspace with slug 'nope'" in err


def test_edited_event_is_named(workspace) -> None:
    events = record(workspace, 5)
    with behind_the_orms_back() as cursor:
        cursor.execute(
            f"UPDATE {TABLE} SET ip = '198.51.100.1' WHERE id = %s", [events[2].pk]
        )
    code, _, err = manage("verify_audit_log")
    assert code == 1
    assert f"BROKEN acme: {events[2].public_id} was edited" in err


def test_edited_metadata_is_caught(workspace) -> None:
    events = record(workspace, 3)
    with behind_the_orms_back() as cursor:
        cursor.execute(
            f"UPDATE {TABLE} SET metadata = %s WHERE id = %s", ['{"n": 99}', events[1].pk]
        )
    code, _, err = manage("verify_audit_log", "--workspace", "acme")
    assert code == 1
    assert f"{events[1].public_id} was edited" in err


def test_edited_and_rehashed_event_breaks_the_next_link(workspace) -> None:
    events = record(workspace, 4)
    forged = AuditEvent.objects.get(pk=events[1].pk)
    forged.ip = "198.51.100.1"
    with behind_the_orms_back() as cursor:
        cursor.execute(
            f"UPDATE {TABLE} SET ip = %s, hash = %s WHERE id = %s",
            [forged.ip, event_digest(forged), forged.pk],
        )
    code, _, err = manage("verify_audit_log")
    assert code == 1
    assert (
        f"An event is missing between {events[1].public_id} and {events[2].public_id}" in err
    )


def test_deleted_event_is_named(workspace) -> None:
    events = record(workspace, 5)
    with behind_the_orms_back() as cursor:
        cursor.execute(f"DELETE FROM {TABLE} WHERE id = %s", [events[2].pk])
    code, _, err = manage("verify_audit_log")
    assert code == 1
    assert (
        f"An event is missing between {events[1].public_id} and {events[3].public_id}: "
        "it was deleted" in err
    )


def test_deleted_first_event_is_named(workspace) -> None:
    events = record(workspace, 3)
    with behind_the_orms_back() as cursor:
        cursor.execute(f"DELETE FROM {TABLE} WHERE id = %s", [events[0].pk])
    code, _, err = manage("verify_audit_log")
    assert code == 1
    assert f"{events[1].public_id} does not follow the chain's anchor" in err


def test_deleted_newest_event_is_caught_by_the_head(workspace) -> None:
    events = record(workspace, 3)
    with behind_the_orms_back() as cursor:
        cursor.execute(f"DELETE FROM {TABLE} WHERE id = %s", [events[2].pk])
    code, _, err = manage("verify_audit_log")
    assert code == 1
    assert f"the newest events after {events[1].public_id} were deleted" in err


def test_emptied_table_is_caught_by_the_head(workspace) -> None:
    record(workspace, 3)
    with behind_the_orms_back() as cursor:
        cursor.execute(f"DELETE FROM {TABLE}")
    code, _, err = manage("verify_audit_log")
    assert code == 1
    assert "matches no event" in err


def test_reordered_events_are_named(workspace) -> None:
    events = record(workspace, 4)
    a, b = events[1], events[2]
    spare = max(e.pk for e in events) + 1000
    with behind_the_orms_back() as cursor:  # swap the ids of two neighbours
        cursor.execute(f"UPDATE {TABLE} SET id = %s WHERE id = %s", [spare, a.pk])
        cursor.execute(f"UPDATE {TABLE} SET id = %s WHERE id = %s", [a.pk, b.pk])
        cursor.execute(f"UPDATE {TABLE} SET id = %s WHERE id = %s", [b.pk, spare])
    code, _, err = manage("verify_audit_log")
    assert code == 1
    assert (
        f"{b.public_id} is out of order: it follows {a.public_id}, which comes after it" in err
    )


def test_inserted_event_is_named(workspace, other_workspace) -> None:
    first = record(workspace)[0]
    gap = record(other_workspace)[0]  # its id lies between acme's two events
    last = record(workspace)[0]
    forged = AuditEvent(
        pk=gap.pk, public_id="evt_forged", workspace=workspace, actor_type="user", actor_id="1",
        actor_label="mallory", action="key.created", created_at=first.created_at,
        prev_hash=first.hash, key_id=signing_key().id, seq=2,  # an insider with the key
    )
    forged.hash = event_digest(forged)
    with behind_the_orms_back() as cursor:
        cursor.execute(f"DELETE FROM {TABLE} WHERE id = %s", [gap.pk])
    AuditEvent.objects.bulk_create([forged])  # an INSERT with a chosen id
    code, _, err = manage("verify_audit_log", "--workspace", "acme")
    assert code == 1
    assert (
        f"evt_forged was inserted: {last.public_id} follows {first.public_id}, not evt_forged"
        in err
    )


def test_event_appended_behind_the_head_is_named(workspace) -> None:
    (last,) = record(workspace)
    forged = AuditEvent(
        public_id="evt_appended", workspace=workspace, actor_type="user", action="key.revoked",
        created_at=last.created_at, prev_hash=last.hash, key_id=signing_key().id, seq=2,
    )
    forged.hash = event_digest(forged)
    forged.save()
    code, _, err = manage("verify_audit_log")
    assert code == 1
    assert "evt_appended was inserted after the chain head" in err


def test_missing_chain_head_is_caught(workspace) -> None:
    (event,) = record(workspace)
    AuditChain.objects.filter(key=chain_key(workspace.pk)).delete()
    code, _, err = manage("verify_audit_log")
    assert code == 1
    assert f"chain head row 'ws:{workspace.pk}' is missing" in err
    assert event.public_id in err


def test_every_broken_chain_is_reported(workspace, other_workspace) -> None:
    a = record(workspace, 2)
    b = record(other_workspace, 2)
    with behind_the_orms_back() as cursor:
        cursor.execute(f"UPDATE {TABLE} SET action = 'x' WHERE id IN (%s, %s)", [a[0].pk, b[1].pk])
    code, _, err = manage("verify_audit_log")
    assert code == 1
    assert "2 of 3 audit chains are broken" in err
    assert f"acme: {a[0].public_id} was edited" in err
    assert f"globex: {b[1].public_id} was edited" in err


# --- Append-only: ORM, then the database itself -------------------------------------------------

def test_orm_refuses_update_and_delete(workspace) -> None:
    (event,) = record(workspace)
    event.action = "key.revoked"
    with pytest.raises(TypeError, match="append-only"):
        event.save()
    with pytest.raises(TypeError, match="append-only"):
        event.delete()
    with pytest.raises(TypeError, match="append-only"):
        AuditEvent.objects.filter(pk=event.pk).update(action="key.revoked")
    with pytest.raises(TypeError, match="append-only"):
        AuditEvent.objects.filter(pk=event.pk).delete()


def test_database_refuses_raw_update(workspace) -> None:
    (event,) = record(workspace)
    with (
        pytest.raises(DatabaseError, match="append-only"),
        transaction.atomic(),
        connection.cursor() as cursor,
    ):
        cursor.execute(f"UPDATE {TABLE} SET action = 'key.revoked' WHERE id = %s", [event.pk])
    assert AuditEvent.objects.get(pk=event.pk).action == "key.created"


def test_database_refuses_raw_delete(workspace) -> None:
    if connection.vendor != "postgresql":
        pytest.skip(
            "SQLite has no DELETE trigger: Django's flush empties SQLite tables row by row, "
            "which a trigger cannot tell from tampering (docs/audit-log.md)."
        )
    (event,) = record(workspace)
    with (
        pytest.raises(DatabaseError, match="append-only: DELETE"),
        transaction.atomic(),
        connection.cursor() as cursor,
    ):
        cursor.execute(f"DELETE FROM {TABLE} WHERE id = %s", [event.pk])
    assert AuditEvent.objects.filter(pk=event.pk).exists()


@pytest.mark.django_db(transaction=True)
def test_postgres_trigger_lets_only_the_prune_setting_delete() -> None:
    if connection.vendor != "postgresql":
        pytest.skip("The transaction-local prune setting is PostgreSQL's.")
    old, new = record(WorkspaceFactory(slug="acme"), 2)
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute("SELECT set_config('gatehouse.audit_prune', 'on', true)")
        with pytest.raises(DatabaseError, match="append-only: UPDATE"), transaction.atomic():
            cursor.execute(f"UPDATE {TABLE} SET action = 'x' WHERE id = %s", [new.pk])
        cursor.execute(f"DELETE FROM {TABLE} WHERE id = %s", [old.pk])
    assert not AuditEvent.objects.filter(pk=old.pk).exists()
    with (  # the setting ended with its transaction
        pytest.raises(DatabaseError, match="append-only: DELETE"),
        transaction.atomic(),
        connection.cursor() as cursor,
    ):
        cursor.execute(f"DELETE FROM {TABLE} WHERE id = %s", [new.pk])
