"""audit_event_page: the one read behind the dashboard, the export and GET /api/v1/audit-events."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
import time_machine
from django.db import connection
from django.test.utils import CaptureQueriesContext

from audit.selectors import audit_event_page, audit_event_queryset, audit_event_stream
from core.context import Actor, ActorType
from core.pagination import InvalidPageRequest, encode_cursor
from tests.audit.helpers import record

pytestmark = pytest.mark.django_db


def _ids(events) -> list[str]:
    return [e.public_id for e in events]


def test_pages_are_newest_first_and_disjoint(workspace) -> None:
    events = record(workspace, 7)
    page1, cursor = audit_event_page(workspace=workspace, limit=3)
    page2, cursor2 = audit_event_page(workspace=workspace, limit=3, cursor=cursor)
    page3, cursor3 = audit_event_page(workspace=workspace, limit=3, cursor=cursor2)
    newest_first = _ids(reversed(events))
    assert _ids(page1) == newest_first[:3]
    assert _ids(page2) == newest_first[3:6]
    assert _ids(page3) == newest_first[6:]
    assert cursor3 is None


def test_exactly_full_last_page_has_no_next_cursor(workspace) -> None:
    record(workspace, 4)
    page, cursor = audit_event_page(workspace=workspace, limit=4)
    assert len(page) == 4
    assert cursor is None


def test_a_page_is_one_query_however_deep(workspace) -> None:
    record(workspace, 30)
    _page, cursor = audit_event_page(workspace=workspace, limit=5)
    for _ in range(3):
        with CaptureQueriesContext(connection) as queries:
            _page, cursor = audit_event_page(workspace=workspace, limit=5, cursor=cursor)
        assert len(queries) == 1
        sql = queries[0]["sql"].upper()
        assert "OFFSET" not in sql
        assert "ORDER BY" in sql and "DESC" in sql


def test_new_events_do_not_shift_the_next_page(workspace) -> None:
    events = record(workspace, 6)
    _page, cursor = audit_event_page(workspace=workspace, limit=3)
    record(workspace, 5)  # arriving while the reader looks at page 1
    page2, _ = audit_event_page(workspace=workspace, limit=3, cursor=cursor)
    assert _ids(page2) == _ids(reversed(events[:3]))


def test_filters(workspace) -> None:
    alice = Actor(ActorType.USER, "7", "alice@acme.test")
    key = Actor(ActorType.API_KEY, "key_abc", "Deploy")
    a = record(workspace, action="key.revoked", actor=alice)
    b = record(workspace, action="key.created", actor=key)
    assert _ids(audit_event_page(workspace=workspace, action="key.revoked")[0]) == _ids(a)
    assert _ids(audit_event_page(workspace=workspace, actor="key_abc")[0]) == _ids(b)
    assert _ids(audit_event_page(workspace=workspace, actor="Deploy")[0]) == _ids(b)
    assert _ids(audit_event_page(workspace=workspace, actor="alice@acme.test")[0]) == _ids(a)
    assert audit_event_page(workspace=workspace, actor="alice")[0] == []  # exact, not contains


def test_since_is_inclusive_and_until_exclusive(workspace) -> None:
    event = record(workspace)[0]
    at = event.created_at
    assert _ids(audit_event_page(workspace=workspace, since=at)[0]) == [event.public_id]
    assert audit_event_page(workspace=workspace, until=at)[0] == []
    assert _ids(
        audit_event_page(workspace=workspace, until=at + timedelta(microseconds=1))[0]
    ) == [event.public_id]


def test_ranges_outside_the_log_are_empty(workspace) -> None:
    (event,) = record(workspace)
    later = event.created_at + timedelta(seconds=1)
    assert audit_event_page(workspace=workspace, since=later)[0] == []
    assert audit_event_page(workspace=workspace, until=event.created_at)[0] == []
    next_day = later + timedelta(days=1)
    assert audit_event_page(workspace=workspace, since=later, until=next_day)[0] == []


def test_date_bounds_are_exact_at_the_edges(workspace) -> None:
    times = [datetime(2025, 3, d, tzinfo=UTC) for d in (1, 2, 3, 4)]
    events = []
    for at in times:
        with time_machine.travel(at, tick=False):
            events += record(workspace, 2)
    page, _ = audit_event_page(workspace=workspace, since=times[1], until=times[3])
    assert _ids(page) == _ids(reversed(events[2:6]))


def test_other_workspaces_events_never_appear(workspace, other_workspace) -> None:
    record(other_workspace, 3)
    record(None, 2, action="user.logged_in")
    assert audit_event_page(workspace=workspace)[0] == []


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"cursor": "not-a-cursor"}, "cursor"),
        ({"cursor": encode_cursor(10**6, scope="keys:1")}, "cursor"),
        ({"limit": 0}, "limit"),
        ({"limit": 101}, "limit"),
        ({"action": "key.exploded"}, "action"),
        ({"since": datetime(2025, 3, 2, tzinfo=UTC), "until": datetime(2025, 3, 1, tzinfo=UTC)},
         "until"),
        ({"actor": "nul\x00"}, "actor"),
    ],
)
def test_bad_requests_raise_invalid_page_request(workspace, kwargs, field) -> None:
    with pytest.raises(InvalidPageRequest) as excinfo:
        audit_event_page(workspace=workspace, **kwargs)
    assert excinfo.value.field == field
    assert excinfo.value.message


def test_cursor_is_bound_to_workspace_and_filter(workspace, other_workspace) -> None:
    record(workspace, 3, action="key.revoked")
    record(other_workspace, 3, action="key.revoked")
    _page, cursor = audit_event_page(workspace=workspace, action="key.revoked", limit=1)
    assert cursor
    for kwargs in (
        {"workspace": other_workspace, "action": "key.revoked"},
        {"workspace": workspace},
        {"workspace": workspace, "action": "key.created"},
        {"workspace": workspace, "action": "key.revoked", "actor": "someone"},
        {"workspace": workspace, "action": "key.revoked",
         "since": datetime(2020, 1, 1, tzinfo=UTC)},
    ):
        with pytest.raises(InvalidPageRequest, match="different list or filter"):
            audit_event_page(**kwargs, cursor=cursor)


def test_stream_reads_everything_in_batches(workspace, monkeypatch) -> None:
    monkeypatch.setattr("audit.selectors.EXPORT_BATCH_SIZE", 4)
    events = record(workspace, 10)
    with CaptureQueriesContext(connection) as queries:
        streamed = list(audit_event_stream(audit_event_queryset(workspace=workspace)))
    assert _ids(streamed) == _ids(reversed(events))
    assert len(queries) == 3  # 4 + 4 + 2
