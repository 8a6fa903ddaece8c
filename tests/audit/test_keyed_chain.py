"""The chain resists an attacker who can write the database but does not hold the audit key.

The attacker works in raw SQL through a connection, with the prune switch set (the app's own
role can set it): deleting the newest events and rewinding the head, or rewriting events and
recomputing every hash it can compute (unkeyed SHA-256, HMAC under a key it guesses). The HMAC
and the sealed head catch a rewrite and a rewind; the head anchored in the application log
catches a truncation even when the attacker replays an old, once-valid head row from a backup.
"""

from __future__ import annotations

import hashlib
import hmac
import importlib
import logging
import re
from collections.abc import Iterator
from contextlib import contextmanager

import pytest
from django.apps import apps as django_apps
from django.db import connection, transaction
from django.test import override_settings

from audit.keys import audit_key_id, derive_audit_key, signing_key
from audit.models import AuditChain, AuditEvent
from audit.services import _canonical, chain_key, event_digest
from tests.audit.helpers import TABLE, manage, record

pytestmark = pytest.mark.django_db
CHAIN_TABLE = AuditChain._meta.db_table
ANCHOR = re.compile(
    r"audit anchor chain=(?P<chain>\S+) workspace=(?P<ws>\S+) seq=(?P<seq>\d+) "
    r"event=(?P<event>evt_\w+) head=(?P<head>[0-9a-f]{64}) key_id=(?P<key_id>[0-9a-f]{16})"
)


@contextmanager
def database_writer() -> Iterator[object]:
    """Raw SQL as the application's database role, with the prune switch on (PostgreSQL): what
    an intruder holding the database credentials can do, and no more. No key, no code changes."""
    with transaction.atomic(), connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute("SELECT set_config('gatehouse.audit_prune', 'on', true)")
        yield cursor


def _head_row(workspace) -> dict:
    return AuditChain.objects.filter(key=chain_key(workspace.pk)).values(
        "head_hash", "head_seq", "head_created_at", "seal", "seal_key_id"
    ).get()


def _set_head(cursor, workspace, **row) -> None:
    columns = ", ".join(f"{name} = %s" for name in row)
    cursor.execute(
        f"UPDATE {CHAIN_TABLE} SET {columns} WHERE key = %s",
        [*row.values(), chain_key(workspace.pk)],
    )


def _replace_events(cursor, rewritten: list[AuditEvent]) -> None:
    """UPDATE is refused even with the switch on, so the intruder deletes and re-inserts."""
    cursor.execute(
        f"DELETE FROM {TABLE} WHERE id IN ({', '.join(['%s'] * len(rewritten))})",
        [e.pk for e in rewritten],
    )
    AuditEvent.objects.bulk_create(rewritten)


def _rewrite_tail(workspace, start: int, hasher, *, unkey: bool,
                  stop: int | None = None) -> list[AuditEvent]:
    """Edit event `start`, then recompute its hash and every later link (up to `stop`) with
    `hasher`, and the head: a consistent rewrite by the intruder's own means."""
    events = list(AuditEvent.objects.for_workspace(workspace).order_by("id"))
    events[start].ip = "198.51.100.66"
    previous = events[start - 1].hash if start else events[0].prev_hash
    for event in events[start:stop]:
        if unkey:
            event.key_id, event.seq = "", None
        event.prev_hash = previous
        event.hash = hasher(event)
        previous = event.hash
    with database_writer() as cursor:
        _replace_events(cursor, events[start:stop])
        if stop is None:
            _set_head(cursor, workspace, head_hash=previous)
    return events


# --- A rewind, a rewrite: caught without any anchor ------------------------------------------

def test_deleting_the_newest_events_and_rewinding_the_head_fails(workspace) -> None:
    events = record(workspace, 5)
    with database_writer() as cursor:
        cursor.execute(f"DELETE FROM {TABLE} WHERE id >= %s", [events[3].pk])
        _set_head(cursor, workspace, head_hash=events[2].hash, head_seq=3,
                  head_created_at=events[2].created_at)
    assert AuditEvent.objects.for_workspace(workspace).count() == 3  # the attack landed

    code, out, err = manage("verify_audit_log", "--workspace", "acme")

    assert code == 1, out
    assert f"The chain head row 'ws:{workspace.pk}' was altered outside Gatehouse" in err
    assert "intact" not in out


def test_a_write_after_the_rewind_does_not_launder_it(workspace) -> None:
    events = record(workspace, 3)
    with database_writer() as cursor:
        cursor.execute(f"DELETE FROM {TABLE} WHERE id = %s", [events[2].pk])
        _set_head(cursor, workspace, head_hash=events[1].hash, head_seq=2)
    record(workspace, 2)  # the application keeps writing and re-sealing the head

    code, _, err = manage("verify_audit_log", "--workspace", "acme")

    assert code == 1
    assert "was altered outside Gatehouse" in err
    assert _head_row(workspace)["seal"] == "tainted"


def test_rewritten_events_rehashed_unkeyed_fail(workspace) -> None:
    def sha256(event: AuditEvent) -> str:  # the scheme of before the key: public code, no key
        return hashlib.sha256(_canonical(event)).hexdigest()

    record(workspace, 4)
    events = _rewrite_tail(workspace, 2, sha256, unkey=True)

    code, _, err = manage("verify_audit_log", "--workspace", "acme")

    assert code == 1
    assert f"{events[2].public_id} is hashed without the audit key" in err


@pytest.mark.parametrize("guess", ["", "django-insecure", "gatehouse-audit-key"])
def test_rewritten_events_rehashed_under_a_guessed_key_fail(workspace, guess) -> None:
    def guessed_hmac(event: AuditEvent) -> str:
        return hmac.new(guess.encode(), _canonical(event), hashlib.sha256).hexdigest()

    record(workspace, 3)
    events = _rewrite_tail(workspace, 1, guessed_hmac, unkey=False)

    code, _, err = manage("verify_audit_log", "--workspace", "acme")

    assert code == 1
    assert f"BROKEN acme: {events[1].public_id} was edited" in err


def test_moving_the_anchor_past_deleted_old_events_fails(workspace) -> None:
    events = record(workspace, 4)
    with database_writer() as cursor:  # "prune" without retention or the key
        cursor.execute(f"DELETE FROM {TABLE} WHERE id <= %s", [events[1].pk])
        _set_head(cursor, workspace, anchor_hash=events[1].hash, anchor_event_id=events[1].pk)

    code, _, err = manage("verify_audit_log", "--workspace", "acme")

    assert code == 1
    assert "was altered outside Gatehouse" in err
    assert manage("prune", "--step", "audit")[0] == 1  # and prune will not build on it


# --- Anchors outside the database -------------------------------------------------------------

def _anchors(caplog) -> list[dict[str, str]]:
    return [m.groupdict() for r in caplog.records
            if r.name == "gatehouse.audit.anchor" and (m := ANCHOR.fullmatch(r.getMessage()))]


def test_every_committed_write_logs_its_head(workspace, caplog,
                                             django_capture_on_commit_callbacks) -> None:
    with (caplog.at_level(logging.INFO, logger="gatehouse.audit.anchor"),
          django_capture_on_commit_callbacks(execute=True)):
        events = record(workspace, 3)
    anchors = _anchors(caplog)
    assert [a["event"] for a in anchors] == [e.public_id for e in events]
    assert anchors[-1] == {
        "chain": f"ws:{workspace.pk}", "ws": str(workspace.pk), "seq": "3",
        "event": events[-1].public_id, "head": events[-1].hash, "key_id": signing_key().id,
    }
    assert _head_row(workspace)["head_hash"] == anchors[-1]["head"]
    assert signing_key().secret.decode() not in caplog.text


def test_a_rolled_back_write_logs_no_anchor(workspace, caplog,
                                            django_capture_on_commit_callbacks) -> None:
    with (caplog.at_level(logging.INFO, logger="gatehouse.audit.anchor"),
          django_capture_on_commit_callbacks(execute=True),
          pytest.raises(RuntimeError), transaction.atomic()):
        record(workspace)
        raise RuntimeError("the change failed")
    assert _anchors(caplog) == []


def test_expect_head_of_the_real_anchor_verifies(workspace, caplog,
                                                 django_capture_on_commit_callbacks) -> None:
    with (caplog.at_level(logging.INFO, logger="gatehouse.audit.anchor"),
          django_capture_on_commit_callbacks(execute=True)):
        record(workspace, 3)
    head = _anchors(caplog)[-1]["head"]
    code, out, err = manage("verify_audit_log", "--workspace", "acme", "--expect-head", head)
    assert code == 0, err
    assert "1 anchored head(s) found" in out


def test_expect_head_catches_a_truncation_with_a_replayed_head(
    workspace, caplog, django_capture_on_commit_callbacks
) -> None:
    events = record(workspace, 3)
    backup = _head_row(workspace)  # the intruder kept a copy of the head row (a backup)
    with (caplog.at_level(logging.INFO, logger="gatehouse.audit.anchor"),
          django_capture_on_commit_callbacks(execute=True)):
        newest = record(workspace, 2)
    anchored = _anchors(caplog)[-1]["head"]
    assert anchored == newest[-1].hash
    with database_writer() as cursor:  # delete the newest events, put the old head back
        cursor.execute(f"DELETE FROM {TABLE} WHERE id >= %s", [newest[0].pk])
        _set_head(cursor, workspace, **backup)

    # The database alone is consistent again: this is what the anchor is for.
    assert manage("verify_audit_log", "--workspace", "acme")[0] == 0
    code, _, err = manage("verify_audit_log", "--workspace", "acme", "--expect-head", anchored)
    assert code == 1
    assert f"MISSING TAIL acme: the anchored head {anchored[:16]}… is not in the chain" in err
    assert f"ends at {events[-1].public_id} (seq 3)" in err
    code, _, err = manage("verify_audit_log", "--expect-head", anchored)  # every chain
    assert code == 1
    assert "is in no chain" in err


def test_expect_head_refuses_a_malformed_hash(db) -> None:
    code, _, err = manage("verify_audit_log", "--expect-head", "not-a-hash")
    assert code == 2
    assert "64-character hex hash" in err


# --- Rotating the key ---------------------------------------------------------------------------

def test_rotating_the_key_keeps_old_events_verifiable(workspace) -> None:
    with override_settings(GATEHOUSE_AUDIT_KEY="first-key", GATEHOUSE_AUDIT_KEYS_OLD=[]):
        before = record(workspace, 2)
    with override_settings(GATEHOUSE_AUDIT_KEY="second-key",
                           GATEHOUSE_AUDIT_KEYS_OLD=["first-key"]):
        after = record(workspace, 2)
        code, out, err = manage("verify_audit_log", "--workspace", "acme")
        assert code == 0, err
        assert "ok acme: 4 events" in out
    # The key change is written in the chain: each event names its key's id, never the key.
    assert {e.key_id for e in before} == {audit_key_id("first-key")}
    assert {e.key_id for e in after} == {audit_key_id("second-key")}
    assert after[0].prev_hash == before[-1].hash
    row = AuditEvent.objects.filter(pk=before[0].pk).values().get()
    assert "first-key" not in str(row)

    # Without the old key, its events cannot be verified, and verification says which key.
    with override_settings(GATEHOUSE_AUDIT_KEY="second-key", GATEHOUSE_AUDIT_KEYS_OLD=[]):
        code, _, err = manage("verify_audit_log", "--workspace", "acme")
    assert code == 1
    assert (
        f"{before[0].public_id} is signed with audit key {audit_key_id('first-key')}, which is "
        "not configured" in err
    )


def test_a_rotated_secret_key_keeps_its_derived_audit_key(workspace) -> None:
    with override_settings(GATEHOUSE_AUDIT_KEY=derive_audit_key("old-secret")):
        record(workspace, 2)
    with override_settings(SECRET_KEY="new-secret", SECRET_KEY_FALLBACKS=["old-secret"],
                           GATEHOUSE_AUDIT_KEY=derive_audit_key("new-secret")):
        record(workspace)
        code, _, err = manage("verify_audit_log", "--workspace", "acme")
    assert code == 0, err


# --- Events from before the key -----------------------------------------------------------------

def _legacy_chain(workspace, n: int) -> list[AuditEvent]:
    """A chain as the unkeyed code wrote it, then migrated by 0004 (which seals its head)."""
    previous = "0" * 64
    events = []
    for i in range(n):
        event = AuditEvent(
            workspace=workspace, actor_type="user", actor_id="1", actor_label="owner@acme.test",
            action="key.created", target_type="api_key", target_id=f"key_{i}",
            metadata={"n": i}, created_at=workspace.created_at, prev_hash=previous,
        )
        event.hash = hashlib.sha256(_canonical(event)).hexdigest()
        previous = event.hash
        events.append(event)
    events = AuditEvent.objects.bulk_create(events)
    AuditChain.objects.create(key=chain_key(workspace.pk), head_hash=previous,
                              anchor_hash="0" * 64, head_created_at=workspace.created_at)
    migration = importlib.import_module("audit.migrations.0004_keyed_chain")
    migration.seal_existing_chains(django_apps, None)
    return list(AuditEvent.objects.for_workspace(workspace).order_by("id"))


def test_events_from_before_the_key_verify_and_are_counted(workspace) -> None:
    legacy = _legacy_chain(workspace, 3)
    assert all(event_digest(e) == e.hash and not e.key_id for e in legacy)
    (keyed,) = record(workspace)
    assert keyed.prev_hash == legacy[-1].hash and keyed.seq == 4

    code, out, err = manage("verify_audit_log", "--workspace", "acme")

    assert code == 0, err
    assert "ok acme: 4 events from genesis" in out
    assert "3 of them unkeyed from before the audit key" in out
    assert "3 of them predate the audit key" in out


def test_an_unkeyed_event_after_the_key_is_a_forgery(workspace) -> None:
    legacy = _legacy_chain(workspace, 2)
    (keyed,) = record(workspace)
    forged = AuditEvent(
        workspace=workspace, actor_type="user", action="key.revoked",
        created_at=keyed.created_at, prev_hash=keyed.hash,
    )
    forged.hash = hashlib.sha256(_canonical(forged)).hexdigest()
    with database_writer() as cursor:
        AuditEvent.objects.bulk_create([forged])
        _set_head(cursor, workspace, head_hash=forged.hash)
    code, _, err = manage("verify_audit_log", "--workspace", "acme")
    assert code == 1
    assert f"BROKEN acme: {forged.public_id} is hashed without the audit key" in err
    assert f"ok acme: {len(legacy)}" not in err


def test_a_rewritten_legacy_prefix_breaks_at_the_first_keyed_event(workspace) -> None:
    legacy = _legacy_chain(workspace, 3)
    (keyed,) = record(workspace)
    # Unkeyed hashes anyone can recompute; the keyed event after them pins the last one.
    _rewrite_tail(workspace, 1, lambda e: hashlib.sha256(_canonical(e)).hexdigest(), unkey=True,
                  stop=3)
    code, _, err = manage("verify_audit_log", "--workspace", "acme")
    assert code == 1
    assert (
        f"An event is missing between {legacy[2].public_id} and {keyed.public_id}" in err
    )


# --- Re-sealing after an investigation ----------------------------------------------------------

def test_a_rotation_that_forgot_the_old_key_is_resealed_against_an_anchor(workspace) -> None:
    with override_settings(GATEHOUSE_AUDIT_KEY="first-key"):
        record(workspace, 2)
    with override_settings(GATEHOUSE_AUDIT_KEY="second-key", GATEHOUSE_AUDIT_KEYS_OLD=[]):
        (last,) = record(workspace)  # the head's seal could not be checked: it is tainted
    assert _head_row(workspace)["seal"] == "tainted"
    with override_settings(GATEHOUSE_AUDIT_KEY="second-key",
                           GATEHOUSE_AUDIT_KEYS_OLD=["first-key"]):
        code, _, err = manage("verify_audit_log", "--workspace", "acme")
        assert code == 1 and "was altered outside Gatehouse" in err  # the old key is back...

        code, out, err = manage("audit_reseal", "--workspace", "acme", "--expect-head",
                                last.hash, "--reason", "GATEHOUSE_AUDIT_KEYS_OLD was missed")
        assert code == 0, err
        assert manage("verify_audit_log", "--workspace", "acme")[0] == 0  # ...and it is vouched
    event = AuditEvent.objects.get(action="audit.resealed")
    assert event.metadata == {
        "anchor": last.hash, "reason": "GATEHOUSE_AUDIT_KEYS_OLD was missed", "events": 3,
        "previous_seal_key_id": audit_key_id("second-key"), "door": "command",
    }
    assert event.prev_hash == last.hash


def test_reseal_refuses_a_truncated_or_edited_chain(workspace) -> None:
    events = record(workspace, 4)
    with database_writer() as cursor:
        cursor.execute(f"DELETE FROM {TABLE} WHERE id = %s", [events[3].pk])
        _set_head(cursor, workspace, head_hash=events[2].hash, head_seq=3)
    code, _, err = manage("audit_reseal", "--workspace", "acme", "--expect-head",
                          events[3].hash, "--reason", "x")
    assert code == 1
    assert "does not hold the anchored head" in err
    with database_writer() as cursor:
        cursor.execute(f"DELETE FROM {TABLE} WHERE id = %s", [events[1].pk])
    code, _, err = manage("audit_reseal", "--workspace", "acme", "--expect-head",
                          events[2].hash, "--reason", "x")
    assert code == 1
    assert "is broken, not only its seal" in err
    assert not AuditEvent.objects.filter(action="audit.resealed").exists()
