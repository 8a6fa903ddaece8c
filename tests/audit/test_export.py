"""Export CSV: the current filter, newest first, streamed."""

from __future__ import annotations

import csv
import io
import json
from http import HTTPStatus

import pytest

from core.context import Actor, ActorType
from tests.audit.helpers import record

pytestmark = pytest.mark.django_db

URL = "/w/acme/settings/audit-log/export.csv"


def _csv(response) -> list[dict[str, str]]:
    assert response.streaming
    body = b"".join(response.streaming_content).decode()
    return list(csv.DictReader(io.StringIO(body)))


def test_export_streams_every_event_of_the_filter(owner_client, workspace, other_workspace,
                                                  monkeypatch) -> None:
    monkeypatch.setattr("audit.selectors.EXPORT_BATCH_SIZE", 7)  # several batches
    revoked = record(workspace, 20, action="key.revoked")
    record(workspace, 5, action="key.created")
    record(other_workspace, 3, action="key.revoked")
    response = owner_client.get(URL, {"action": "key.revoked"})
    assert response.status_code == HTTPStatus.OK
    assert response["Content-Type"] == "text/csv; charset=utf-8"
    assert response["Content-Disposition"].startswith('attachment; filename="audit-log-acme-')
    rows = _csv(response)
    assert [r["id"] for r in rows] == [e.public_id for e in reversed(revoked)]


def test_export_columns(owner_client, workspace) -> None:
    (event,) = record(
        workspace, action="key.revoked", actor=Actor(ActorType.API_KEY, "key_ops", "Ops"),
        metadata={"reason": "leaked", "successor": None},
    )
    (row,) = _csv(owner_client.get(URL))
    assert row == {
        "id": event.public_id,
        "time": event.created_at.isoformat(),
        "actor_type": "api_key",
        "actor_id": "key_ops",
        "actor": "Ops",
        "action": "key.revoked",
        "target_type": "api_key",
        "target_id": "key_0",
        "target": "Key 0",
        "ip": "203.0.113.7",
        "user_agent": "pytest-audit/1.0",
        "metadata": '{"reason":"leaked","successor":null}',
        "prev_hash": event.prev_hash,
        "hash": event.hash,
    }
    assert json.loads(row["metadata"]) == event.metadata


def test_export_defuses_spreadsheet_formulas(owner_client, workspace) -> None:
    record(workspace, actor=Actor(ActorType.API_KEY, "key_x", '=HYPERLINK("http://evil")'))
    (row,) = _csv(owner_client.get(URL))
    assert row["actor"] == "'=HYPERLINK(\"http://evil\")"


def test_export_of_nothing_is_just_the_header(owner_client, workspace) -> None:
    response = owner_client.get(URL)
    assert b"".join(response.streaming_content).decode().strip().startswith("id,time,")
    assert _csv(owner_client.get(URL)) == []


def test_export_link_carries_the_filter(owner_client, workspace) -> None:
    body = owner_client.get(
        "/w/acme/settings/audit-log/", {"action": "key.revoked", "actor": "a b"}
    ).content.decode()
    assert f'href="{URL}?action=key.revoked&amp;actor=a+b"' in body


@pytest.mark.parametrize(
    "params",
    [{"since": "nope"}, {"action": "key.exploded"}, {"since": "2025-02-02", "until": "2025-02-01"}],
)
def test_export_of_a_bad_filter_is_a_form_error(owner_client, workspace, params) -> None:
    record(workspace)
    response = owner_client.get(URL, params)
    assert response.status_code == HTTPStatus.BAD_REQUEST
    assert not response.streaming
    assert 'data-testid="filter-errors"' in response.content.decode()
