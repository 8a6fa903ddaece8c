"""The audit log page: permissions, filters, keyset paging, htmx partials, bad input, queries."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from http import HTTPStatus

import pytest
import time_machine
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext

from core.context import Actor, ActorType
from tests.audit.helpers import record

pytestmark = pytest.mark.django_db

URL = "/w/acme/settings/audit-log/"
ALICE = Actor(ActorType.USER, "41", "alice@acme.test")
BOB = Actor(ActorType.USER, "42", "bob@acme.test")
CI_KEY = Actor(ActorType.API_KEY, "key_ci", "CI deploy")


def _rows(body: str) -> list[str]:
    """The public ids of the events shown, in order."""
    return re.findall(r'<tr id="(evt_[^"]+)"', body)


@pytest.mark.parametrize("role", ["owner", "admin"])
def test_admins_and_owners_read_the_log(client_for, workspace, role) -> None:
    (event,) = record(workspace, action="key.revoked", actor=ALICE)
    response = client_for(role).get(URL)
    assert response.status_code == HTTPStatus.OK
    body = response.content.decode()
    assert _rows(body) == [event.public_id]
    assert "alice@acme.test" in body
    assert "key.revoked" in body
    assert "203.0.113.7" in body
    assert "Export CSV" in body


@pytest.mark.parametrize("role", ["editor", "viewer"])
def test_editors_and_viewers_get_403(client_for, workspace, role) -> None:
    record(workspace)
    assert client_for(role).get(URL).status_code == HTTPStatus.FORBIDDEN
    assert client_for(role).get(URL + "export.csv").status_code == HTTPStatus.FORBIDDEN


def test_non_members_get_404(client_for, other_workspace) -> None:
    record(other_workspace)
    client = client_for("owner")
    assert client.get("/w/globex/settings/audit-log/").status_code == HTTPStatus.NOT_FOUND
    assert client.get("/w/globex/settings/audit-log/export.csv").status_code == 404


def test_anonymous_is_sent_to_login(client: Client, workspace) -> None:
    response = client.get(URL)
    assert response.status_code == HTTPStatus.FOUND
    assert response["Location"].startswith("/accounts/login/")


def test_navigation_links_the_page_for_admins_only(client_for) -> None:
    assert f'href="{URL}"' in client_for("admin").get("/w/acme/").content.decode()


def test_only_this_workspaces_events_newest_first(owner_client, workspace, other_workspace) -> None:
    mine = record(workspace, 3)
    record(other_workspace, 2)
    record(None, 1, action="user.logged_in")
    body = owner_client.get(URL).content.decode()
    assert _rows(body) == [e.public_id for e in reversed(mine)]


def test_row_expands_to_its_metadata_without_js(owner_client, workspace) -> None:
    record(workspace, action="key.revoked", metadata={"reason": "leaked <b>"})
    body = owner_client.get(URL).content.decode()
    assert "<details>" in body
    assert "&quot;reason&quot;: &quot;leaked &lt;b&gt;&quot;" in body
    assert "pytest-audit/1.0" in body  # the user agent, inside the details


def test_filter_by_action(owner_client, workspace) -> None:
    record(workspace, 2, action="key.created")
    revoked = record(workspace, 1, action="key.revoked")
    body = owner_client.get(URL, {"action": "key.revoked"}).content.decode()
    assert _rows(body) == [revoked[0].public_id]
    assert '<option value="key.revoked" selected>' in body


@pytest.mark.parametrize("value", ["bob@acme.test", "42"])
def test_filter_by_actor_label_or_id(owner_client, workspace, value) -> None:
    record(workspace, 2, actor=ALICE)
    bobs = record(workspace, 2, actor=BOB)
    body = owner_client.get(URL, {"actor": value}).content.decode()
    assert _rows(body) == [e.public_id for e in reversed(bobs)]


def test_filter_by_key_actor(owner_client, workspace) -> None:
    record(workspace, actor=ALICE)
    (by_key,) = record(workspace, actor=CI_KEY)
    assert _rows(owner_client.get(URL, {"actor": "key_ci"}).content.decode()) == [by_key.public_id]


def test_filter_by_date_range_includes_both_days(owner_client, workspace) -> None:
    days = {}
    for day in (1, 2, 3, 4):
        with time_machine.travel(datetime(2025, 3, day, 23, 59, 59, tzinfo=UTC), tick=False):
            days[day] = record(workspace)[0]
    body = owner_client.get(URL, {"since": "2025-03-02", "until": "2025-03-03"}).content.decode()
    assert _rows(body) == [days[3].public_id, days[2].public_id]
    body = owner_client.get(URL, {"since": "2025-03-04"}).content.decode()
    assert _rows(body) == [days[4].public_id]
    body = owner_client.get(URL, {"until": "2025-03-01"}).content.decode()
    assert _rows(body) == [days[1].public_id]


def test_filters_combine(owner_client, workspace) -> None:
    record(workspace, action="key.revoked", actor=ALICE)
    (wanted,) = record(workspace, action="key.revoked", actor=BOB)
    record(workspace, action="key.created", actor=BOB)
    body = owner_client.get(URL, {"action": "key.revoked", "actor": "bob@acme.test"}).content
    assert _rows(body.decode()) == [wanted.public_id]


def test_htmx_request_gets_only_the_table(owner_client, workspace) -> None:
    (event,) = record(workspace, action="key.revoked")
    response = owner_client.get(URL, {"action": "key.revoked"}, headers={"HX-Request": "true"})
    assert response.status_code == HTTPStatus.OK
    body = response.content.decode()
    assert body.strip().startswith('<div id="event-table"')
    assert "<html" not in body
    assert _rows(body) == [event.public_id]
    assert "HX-Request" in response["Vary"]


def test_history_restore_gets_the_whole_page(owner_client, workspace) -> None:
    response = owner_client.get(
        URL, headers={"HX-Request": "true", "HX-History-Restore-Request": "true"}
    )
    assert "<html" in response.content.decode()


def test_filter_form_is_a_plain_get_form_driving_htmx(owner_client, workspace) -> None:
    body = owner_client.get(URL).content.decode()
    form = re.search(r"<form[^>]*class=\"filters\"[^>]*>", body, re.S).group(0)
    assert 'method="get"' in form
    assert f'action="{URL}"' in form
    assert f'hx-get="{URL}"' in form
    assert 'hx-target="#event-table"' in form
    assert 'hx-push-url="true"' in form


def test_keyset_paging_walks_every_event_once(owner_client, workspace) -> None:
    events = record(workspace, 120)
    seen: list[str] = []
    url: str | None = URL
    pages = 0
    while url:
        body = owner_client.get(url).content.decode()
        seen += _rows(body)
        match = re.search(r'<a href="([^"]+)"[^>]*rel="next"', body)
        url = match.group(1).replace("&amp;", "&") if match else None
        pages += 1
    assert pages == 3
    assert seen == [e.public_id for e in reversed(events)]


def test_paging_keeps_the_filter(owner_client, workspace) -> None:
    revoked = record(workspace, 55, action="key.revoked")
    record(workspace, 10, action="key.created")
    body = owner_client.get(URL, {"action": "key.revoked"}).content.decode()
    older = re.search(r'<a href="([^"]+)"[^>]*rel="next"', body).group(1).replace("&amp;", "&")
    assert "action=key.revoked" in older
    body = owner_client.get(older).content.decode()
    assert _rows(body) == [e.public_id for e in reversed(revoked[:5])]
    assert "← Newest" in body


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"since": "2025-13-45"}, "From: Enter a valid date."),
        ({"until": "yesterday"}, "To: Enter a valid date."),
        ({"since": "2025-03-05", "until": "2025-03-01"},
         "To: The end date must be on or after the start date."),
        ({"action": "key.exploded"}, "Action: Select a valid choice."),
        ({"cursor": "forged"}, "That page link does not belong to this filter."),
        ({"actor": "x" * 300}, "Actor: Ensure this value has at most 255 characters"),
        ({"actor": "nul\x00byte"}, "Actor: Null characters are not allowed."),
        ({"until": "9999-12-31"}, None),
        ({"since": "0001-01-01"}, None),
    ],
)
def test_bad_filter_input_is_a_form_error(owner_client, workspace, params, message) -> None:
    record(workspace, 2)
    for headers in ({}, {"HX-Request": "true"}):
        response = owner_client.get(URL, params, headers=headers)
        assert response.status_code == HTTPStatus.OK
        body = response.content.decode()
        if message is None:
            assert len(_rows(body)) == 2
        else:
            assert message in body.replace("&#x27;", "'")
            assert _rows(body) == []


def test_cursor_from_another_filter_is_refused(owner_client, workspace) -> None:
    record(workspace, 60, action="key.revoked")
    body = owner_client.get(URL).content.decode()
    older = re.search(r'<a href="([^"]+)"[^>]*rel="next"', body).group(1).replace("&amp;", "&")
    cursor = older.split("cursor=")[1]
    body = owner_client.get(URL, {"action": "key.revoked", "cursor": cursor}).content.decode()
    assert "That page link does not belong to this filter." in body
    assert _rows(body) == []


@pytest.mark.parametrize(
    ("params", "expected"),
    [
        # session, user, membership (+workspace, plan), the switcher's workspaces, one page
        ({}, 5),
        ({"action": "key.created", "actor": "owner@acme.test"}, 5),
        # + one indexed lookup per date bound, turning it into an id bound
        ({"since": "2000-01-01", "until": "2999-12-31"}, 7),
    ],
)
def test_list_page_query_count_is_constant(owner_client, workspace, params, expected) -> None:
    def count() -> int:
        with CaptureQueriesContext(connection) as queries:
            response = owner_client.get(URL, params)
        assert response.status_code == HTTPStatus.OK
        assert _rows(response.content.decode())
        return len(queries)

    record(workspace, 2)
    owner_client.get(URL)  # the first page of the minute also stamps Membership.last_used_at
    few = count()
    record(workspace, 80)
    many = count()
    assert few == many
    assert many <= expected
