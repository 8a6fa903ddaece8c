"""Across processes: two gunicorn workers log the anchors of what they write, and
`verify_audit_log --expect-head` in another process checks the database against them."""

from __future__ import annotations

import json
import re
import tempfile
import time
import urllib.request
from http import HTTPStatus

import pytest
from django.db import connection, transaction

from audit.models import AuditChain, AuditEvent
from tests.audit.helpers import TABLE, manage
from tests.servers import gunicorn

ANCHOR = re.compile(r"audit anchor chain=global workspace=- seq=(\d+) event=(evt_\w+) "
                    r"head=([0-9a-f]{64}) key_id=[0-9a-f]{16}")


def _register(base: str, n: int) -> int:
    body = json.dumps({"client_name": f"Client {n}", "token_endpoint_auth_method": "none",
                       "redirect_uris": [f"http://localhost:{40000 + n}/callback"]}).encode()
    request = urllib.request.Request(f"{base}/api/oauth/register", body,
                                     headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=10) as response:
        return response.status


def _anchors(log, count: int) -> list[tuple[int, str, str]]:
    deadline = time.monotonic() + 10  # a worker's stderr reaches the file on its own time
    while True:
        log.seek(0)
        found = [(int(s), e, h) for s, e, h in ANCHOR.findall(log.read().decode())]
        if len(found) >= count or time.monotonic() > deadline:
            return sorted(found)
        time.sleep(0.1)


@pytest.mark.django_db(transaction=True)
def test_anchors_from_two_workers_catch_a_replayed_head() -> None:
    with tempfile.TemporaryFile() as log:
        with gunicorn(workers=2, output=log) as base:
            statuses = [_register(base, n) for n in range(3)]
            head_after_3 = AuditChain.objects.values().get(key="global")  # the intruder's copy
            statuses += [_register(base, n) for n in range(3, 6)]
            assert statuses == [HTTPStatus.CREATED] * 6
            anchors = _anchors(log, 6)
        events = list(AuditEvent.objects.filter(workspace__isnull=True).order_by("id"))
    assert [(seq, event) for seq, event, _ in anchors] == [
        (e.seq, e.public_id) for e in events
    ] and len(events) == 6
    newest = anchors[-1][2]
    code, _, err = manage("verify_audit_log", "--expect-head", newest)
    assert code == 0, err

    # Roll the log back to an older head row and delete what came after it.
    del head_after_3["id"]
    kept = AuditEvent.objects.get(hash=head_after_3["head_hash"])
    with transaction.atomic(), connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute("SELECT set_config('gatehouse.audit_prune', 'on', true)")
        cursor.execute(f"DELETE FROM {TABLE} WHERE workspace_id IS NULL AND id > %s",
                       [kept.pk])
        AuditChain.objects.filter(key="global").update(**head_after_3)

    assert manage("verify_audit_log")[0] == 0  # consistent in the database alone
    code, _, err = manage("verify_audit_log", "--expect-head", newest)
    assert code == 1
    assert (
        f"MISSING TAIL global: the anchored head {newest[:16]}… is not in the chain, which ends "
        f"at {kept.public_id} (seq 3)" in err
    )
