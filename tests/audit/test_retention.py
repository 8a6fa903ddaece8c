"""Retention: `manage.py prune` removes events past the plan's retention and keeps the chain
verifiable by anchoring it at the last pruned event."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
import time_machine
from django.db import connection

from audit.models import AuditChain, AuditEvent
from audit.services import audit_prune, chain_key
from tests.audit.helpers import TABLE, behind_the_orms_back, manage, record
from tests.factories import WorkspaceFactory, plan_named

pytestmark = pytest.mark.django_db

NOW = datetime(2025, 6, 30, 12, 0, tzinfo=UTC)


def _record_days_ago(workspace, days: int, n: int = 1) -> list[AuditEvent]:
    with time_machine.travel(NOW - timedelta(days=days), tick=False):
        return record(workspace, n)


@pytest.mark.parametrize(("plan", "days"), [("free", 30), ("basic", 90), ("pro", 365)])
def test_prune_follows_the_plan(plan, days) -> None:
    workspace = WorkspaceFactory(slug="acme", plan=plan_named(plan))
    old = _record_days_ago(workspace, days + 1, 3)
    kept = _record_days_ago(workspace, days - 1, 2)
    with time_machine.travel(NOW, tick=False):
        code, out, err = manage("prune")
    assert code == 0, err
    assert "audit events: deleted 3 from 1 chains" in out
    remaining = list(AuditEvent.objects.for_workspace(workspace).order_by("id"))
    assert [e.public_id for e in remaining[:2]] == [e.public_id for e in kept]
    # The pruning itself is on the log, after what it kept.
    assert remaining[-1].action == "audit.pruned"
    assert remaining[-1].metadata["events"] == 3
    assert remaining[-1].metadata["through"] == old[-1].public_id
    chain = AuditChain.objects.get(key=chain_key(workspace.pk))
    assert (chain.anchor_hash, chain.anchor_event_id) == (old[-1].hash, old[-1].pk)
    code, out, err = manage("verify_audit_log", "--workspace", "acme")
    assert code == 0, err
    assert f"3 events from anchor at event #{old[-1].pk}" in out


def test_prune_leaves_workspaces_and_global_chain_apart(workspace, other_workspace) -> None:
    pro = WorkspaceFactory(slug="pro", plan=plan_named("pro"))
    _record_days_ago(workspace, 40)
    _record_days_ago(other_workspace, 10)
    _record_days_ago(pro, 40)
    _record_days_ago(None, 400)
    _record_days_ago(None, 40)
    with time_machine.travel(NOW, tick=False):
        code, out, _ = manage("prune", "--step", "audit")
    assert code == 0
    assert "deleted 2 from 2 chains" in out
    assert AuditEvent.objects.for_workspace(workspace).get().action == "audit.pruned"
    assert AuditEvent.objects.for_workspace(other_workspace).count() == 1
    assert AuditEvent.objects.for_workspace(pro).count() == 1
    assert AuditEvent.objects.filter(workspace=None).count() == 2  # 40 days old + audit.pruned
    assert manage("verify_audit_log")[0] == 0


def test_prune_everything_then_write_again(workspace) -> None:
    _record_days_ago(workspace, 100, 3)
    with time_machine.travel(NOW, tick=False):
        assert audit_prune(workspace=workspace, before=NOW) == 3
        record(workspace, 2)
    assert manage("verify_audit_log")[0] == 0


def test_prune_in_batches_anchors_each_batch(workspace) -> None:
    events = _record_days_ago(workspace, 100, 7)
    assert audit_prune(workspace=workspace, before=NOW, batch_size=3) == 7
    chain = AuditChain.objects.get(key=chain_key(workspace.pk))
    assert chain.anchor_event_id == events[-1].pk
    assert manage("verify_audit_log")[0] == 0


def test_nothing_to_prune_changes_nothing(workspace) -> None:
    _record_days_ago(workspace, 1, 2)
    head = AuditChain.objects.get(key=chain_key(workspace.pk)).head_hash
    with time_machine.travel(NOW, tick=False):
        code, out, _ = manage("prune")
    assert code == 0
    assert "deleted 0 from 0 chains" in out
    assert AuditEvent.objects.count() == 2
    assert AuditChain.objects.get(key=chain_key(workspace.pk)).head_hash == head


def test_prune_refuses_to_launder_a_broken_chain(workspace) -> None:
    events = _record_days_ago(workspace, 100, 3)
    with behind_the_orms_back() as cursor:
        cursor.execute(f"UPDATE {TABLE} SET ip = '198.51.100.1' WHERE id = %s", [events[1].pk])
    with time_machine.travel(NOW, tick=False):
        code, _, err = manage("prune")
    assert code == 1
    assert f"does not verify at {events[1].public_id}" in err
    assert AuditEvent.objects.filter(pk=events[1].pk).exists()
    assert manage("verify_audit_log")[0] == 1  # still caught


def test_prune_deletes_through_the_trigger_only_with_its_setting(workspace) -> None:
    _record_days_ago(workspace, 100, 2)
    audit_prune(workspace=workspace, before=NOW)
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("SELECT current_setting('gatehouse.audit_prune', true)")
            assert cursor.fetchone()[0] == "off"
