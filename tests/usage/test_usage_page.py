import re
from datetime import UTC, datetime, timedelta
from http import HTTPStatus

import pytest
import time_machine
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from apikeys.models import ApiKey
from apikeys.services import apikey_create, apikey_revoke
from core.context import Actor
from core.redis import using_redis
from gateway.usage import usage_flush
from passports.services import passport_create
from tests.factories import MembershipFactory, UserFactory, WorkspaceFactory, by
from tests.metering import quota_consume
from workspaces.quotas import Budget

pytestmark = pytest.mark.django_db

USAGE = "/w/acme/settings/usage/"
# In the future: Redis expires a counter at its day's end by the real clock.
EVENING = datetime(2031, 3, 14, 18, 48, 0, tzinfo=UTC)


def text(response) -> str:
    """The page's text, tags removed and whitespace collapsed."""
    return " ".join(re.sub(r"<[^>]+>", " ", response.content.decode()).split())


def meter(html: str, budget: str) -> str:
    return html.split(f'data-testid="budget-{budget}"')[1].split("</section>")[0]


def test_usage_url_and_navigation(client_for) -> None:
    assert reverse("apikeys:usage", kwargs={"slug": "acme"}) == USAGE
    html = client_for("viewer").get("/w/acme/").content.decode()
    assert f'<a href="{USAGE}">Usage</a>' in html


@pytest.mark.parametrize("role", ["owner", "admin", "editor", "viewer"])
def test_every_member_sees_the_usage_page(client_for, role) -> None:
    response = client_for(role).get(USAGE)
    assert response.status_code == HTTPStatus.OK
    assert f'<a href="{USAGE}" aria-current="page">Usage</a>' in response.content.decode()


def test_non_members_get_404_and_anonymous_users_the_login(client_for, client) -> None:
    WorkspaceFactory(slug="globex")
    assert client_for("owner").get("/w/globex/settings/usage/").status_code == 404
    response = client.get(USAGE)
    assert response.status_code == HTTPStatus.FOUND
    assert response["Location"].startswith("/accounts/login/")


def test_meters_show_todays_counters(client_for, workspace, consume, other_workspace) -> None:
    consume(workspace, Budget.WRITES, 37)
    consume(workspace, Budget.PASSPORT_READS, 5)
    consume(other_workspace, Budget.WRITES, 9)  # another tenant's counter is not ours
    html = client_for("viewer").get(USAGE).content.decode()
    writes, reads = meter(html, "writes"), meter(html, "passport_reads")
    assert "<h3" in writes and ">Writes</h3>" in writes
    assert "<strong>37</strong> / 100" in writes and "37%" in writes
    assert '<meter min="0" max="100" value="37" low="80" high="95" optimum="0"' in writes
    assert ">Passport reads</h3>" in reads
    assert "<strong>5</strong> / 100" in reads and "5%" in reads
    assert 'max="100" value="5"' in reads
    assert 'data-testid="budget-exhausted"' not in html


def test_a_used_up_budget_says_so(client_for, workspace, consume) -> None:
    consume(workspace, Budget.PASSPORT_READS, 100)
    allowance = quota_consume(
        workspace_id=workspace.pk, plan=workspace.plan, budget=Budget.PASSPORT_READS,
        now=datetime.now(UTC),
    )
    assert not allowance.admitted  # refused: not counted
    html = client_for("viewer").get(USAGE).content.decode()
    reads = meter(html, "passport_reads")
    assert "<strong>100</strong> / 100" in reads and "100%" in reads
    assert "refused with <code>quota_exceeded</code> until the reset" in reads
    assert 'data-testid="budget-exhausted"' not in meter(html, "writes")


def test_meters_follow_the_plan(client_for, workspace, consume, plan) -> None:
    workspace.plan = plan("basic")
    workspace.save()
    consume(workspace, Budget.WRITES, 50)
    writes = meter(client_for("viewer").get(USAGE).content.decode(), "writes")
    assert "<strong>50</strong> / 200" in writes and "25%" in writes


def test_unlimited_plans_show_unlimited_and_count_nothing(client_for, workspace, plan) -> None:
    workspace.plan = plan("scale")
    workspace.save()
    assert quota_consume(
        workspace_id=workspace.pk, plan=workspace.plan, budget=Budget.WRITES,
        now=datetime.now(UTC),
    ) is None
    response = client_for("viewer").get(USAGE)
    html = response.content.decode()
    for budget in ("writes", "passport_reads"):
        assert "Unlimited" in meter(html, budget)
        assert "<meter" not in meter(html, budget)
    assert "Resets in" not in html
    assert "The Scale plan has no daily limit on writes." in text(response)


@pytest.mark.parametrize(
    ("now", "wording"),
    [
        (EVENING, "Resets in 5 h 12 min, at 00:00 UTC."),
        (EVENING.replace(hour=0, minute=0), "Resets in 24 h 0 min, at 00:00 UTC."),
        (EVENING.replace(hour=23, minute=15, second=30), "Resets in 44 min, at 00:00 UTC."),
        (EVENING.replace(hour=23, minute=59, second=31), "Resets in under a minute, at 00:00 UTC."),
    ],
)
def test_budgets_reset_at_utc_midnight(client_for, workspace, consume, now, wording) -> None:
    with time_machine.travel(now, tick=False):
        consume(workspace, Budget.WRITES, 3)
        client = client_for("viewer")
        page = text(client.get(USAGE))
    assert page.count(wording) == 2  # both budgets
    assert "3 / 100" in page


def test_yesterdays_count_is_gone_after_midnight(client_for, workspace, consume) -> None:
    with time_machine.travel(EVENING.replace(hour=23, minute=59, second=59), tick=False):
        consume(workspace, Budget.WRITES, 40)
        client = client_for("viewer")
        assert "<strong>40</strong> / 100" in client.get(USAGE).content.decode()
    with time_machine.travel(EVENING + timedelta(days=1, hours=-18, minutes=-48), tick=False):
        html = client.get(USAGE).content.decode()
        assert "<strong>0</strong> / 100" in meter(html, "writes")
        assert "Resets in 24 h 0 min" in text(client.get(USAGE))


def test_the_counter_service_down_is_the_503_page(members, own_redis) -> None:
    own_redis.stop()  # the counters' Redis refuses connections
    client = Client(raise_request_exception=False)  # as a real server answers
    client.force_login(members["viewer"])
    response = client.get(USAGE)
    assert response.status_code == HTTPStatus.SERVICE_UNAVAILABLE
    assert "Gatehouse is temporarily unavailable" in response.content.decode()


def test_plan_numbers(client_for, workspace, make_key, members) -> None:
    make_key(name="one")
    make_key(name="two")
    revoked, _ = make_key(name="gone")
    apikey_revoke(key=revoked, **by(members["owner"]))
    for serial in ("1", "2", "3"):
        passport_create(workspace=workspace, gtin="09506000134352", serial_number=serial,
                        product_name="Kettle", **by())
    page = text(client_for("viewer").get(USAGE))
    assert "Plan Free" in page
    assert "Writes per day 100" in page and "Passport reads per day 100" in page
    assert "Active keys 2 of 5" in page
    assert "Passports 3 of 25" in page


def test_plan_numbers_on_an_unlimited_plan_with_overage(client_for, workspace, plan) -> None:
    workspace.plan = plan("basic")
    workspace.save()
    page = text(client_for("viewer").get(USAGE))
    assert "Passports 0 of 100 · overage is off" in page  # until an owner turns it on
    workspace.plan = plan("scale")
    workspace.save()
    page = text(client_for("viewer").get(USAGE))
    assert "Writes per day Unlimited" in page
    assert "Passports 0 (unlimited)" in page
    assert "Active keys 0 of 50" in page


def test_per_key_table_shows_todays_requests_busiest_first(
    client_for, make_key, members, record_requests
) -> None:
    quiet, _ = make_key(name="Quiet")
    busy, _ = make_key(name="Busy")
    idle, _ = make_key(name="Idle")
    record_requests(quiet, 2)
    record_requests(busy, 7, ip="198.51.100.20")
    record_requests(busy, 5, at=datetime.now(UTC) - timedelta(days=1))  # yesterday's: not today
    revoked_today, _ = make_key(name="Revoked today")
    record_requests(revoked_today, 1)
    apikey_revoke(key=revoked_today, **by(members["owner"]))
    unused_revoked, _ = make_key(name="Never mind")
    apikey_revoke(key=unused_revoked, **by(members["owner"]))

    html = client_for("viewer").get(USAGE).content.decode()
    table = html.split('id="key-usage"')[1].split("</table>")[0]
    rows = table.split('data-testid="key-usage-row"')[1:]
    names = [re.search(r">([^<]+)</a>", row).group(1) for row in rows]
    assert names == ["Busy", "Quiet", "Revoked today", "Idle"]
    today = [re.search(r'data-testid="requests-today">(\d+)<', row).group(1) for row in rows]
    assert today == ["7", "2", "1", "0"]
    busy_row = rows[0]
    assert ">12</td>" in busy_row  # all requests, yesterday's included
    assert "198.51.100.20" in busy_row and "just now</time>" in busy_row  # not "0 minutes ago"
    assert reverse("apikeys:detail", kwargs={"slug": "acme", "key_id": busy.public_id}) in busy_row
    assert "Never" in rows[3] and idle.display_hint in rows[3]
    assert ">Revoked<" in rows[2]


def test_usage_page_query_count_does_not_grow_with_keys(
    client_for, workspace, plan, make_key, consume, record_requests, members
) -> None:
    workspace.plan = plan("basic")
    workspace.save()
    consume(workspace, Budget.WRITES, 3)
    client = client_for("viewer")

    def add_keys(n: int) -> None:
        for i in range(n):
            creator = UserFactory()
            MembershipFactory(workspace=workspace, user=creator, role="admin")
            key, _ = make_key(name=f"key {i}", actor=Actor.for_user(creator))
            record_requests(key, i + 1)
            if i % 3 == 0:
                apikey_revoke(key=key, **by(creator))

    add_keys(2)
    client.get(USAGE)  # warm the session
    with CaptureQueriesContext(connection) as few:
        assert client.get(USAGE).status_code == HTTPStatus.OK
    add_keys(8)
    with CaptureQueriesContext(connection) as many:
        response = client.get(USAGE)
    assert response.content.decode().count('data-testid="key-usage-row"') == 10
    assert len(many.captured_queries) == len(few.captured_queries)
    # session, user, membership, switcher, keys, passports, overage days, and the budget counters
    # (one query for both) unless they live in Redis
    assert len(few.captured_queries) == 7 + (not using_redis())


def test_the_dashboard_shows_what_the_api_counted(client_for, workspace, make_key) -> None:
    """Through the real door: requests with a key move the meters at once, and the usage flush
    brings the per-key numbers; the key's page shows the same."""
    token = apikey_create(
        workspace=workspace, name="Integration", environment="development",
        scopes=["passports:read", "passports:write", "keys:read"],
        **by(),
    )[1]
    api = Client(headers={"Authorization": f"Bearer {token}"})
    passport = passport_create(workspace=workspace, gtin="09506000134352", serial_number="A1",
                               product_name="Kettle", **by())
    for n in range(7):
        response = api.patch(f"/api/v1/passports/{passport.public_id}",
                             {"product_name": f"Kettle {n}"}, content_type="application/json")
        assert response.status_code == HTTPStatus.OK
    for _ in range(3):
        assert api.get(f"/api/v1/passports/{passport.public_id}").status_code == HTTPStatus.OK
    for _ in range(2):
        assert api.get("/api/v1/me").status_code == HTTPStatus.OK  # in no budget

    viewer = client_for("viewer")
    html = viewer.get(USAGE).content.decode()
    assert "<strong>7</strong> / 100" in meter(html, "writes")
    assert "<strong>3</strong> / 100" in meter(html, "passport_reads")

    assert usage_flush() == 12
    key = ApiKey.objects.get(name="Integration")
    row = viewer.get(USAGE).content.decode().split(key.display_hint)[1].split("</tr>")[0]
    assert 'data-testid="requests-today">12<' in row and ">12</td>" in row
    detail = viewer.get(
        reverse("apikeys:detail", kwargs={"slug": "acme", "key_id": key.public_id})
    ).content.decode()
    assert 'data-testid="request-count">12<' in detail
    assert detail.count('data-testid="request-row"') == 12
    assert f'data-day="{datetime.now(UTC).date():%Y-%m-%d}" data-count="12"' in detail
