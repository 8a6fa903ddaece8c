import re
import xml.etree.ElementTree as ET
from datetime import UTC, date, datetime, timedelta
from http import HTTPStatus

import pytest
import time_machine
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from apikeys.charts import PLOT_HEIGHT, daily_bar_chart
from apikeys.models import ApiKey, KeyUsageDay
from apikeys.services import apikey_revoke, apikey_rotate
from gateway.usage import RECENT_PER_KEY
from tests.factories import WorkspaceFactory, by

pytestmark = pytest.mark.django_db

NOW = datetime(2031, 3, 14, 18, 48, tzinfo=UTC)
TODAY = NOW.date()


def detail_url(key: ApiKey, slug: str = "acme") -> str:
    return reverse("apikeys:detail", kwargs={"slug": slug, "key_id": key.public_id})


def text(html: str) -> str:
    return " ".join(re.sub(r"<[^>]+>", " ", html).split())


def chart(html: str) -> ET.Element:
    """The inline SVG, parsed as XML (so it is well-formed)."""
    return ET.fromstring(re.search(r"<svg .*?</svg>", html, re.DOTALL).group(0))


def bars(svg: ET.Element) -> list[ET.Element]:
    return [el for el in svg.iter("rect") if el.get("class") == "chart-bar"]


def test_detail_url_sits_under_the_keys_page(make_key) -> None:
    key, _ = make_key()
    assert detail_url(key) == f"/w/acme/settings/api-keys/{key.public_id}/"


@pytest.mark.parametrize("role", ["owner", "admin", "editor", "viewer"])
def test_every_member_sees_a_keys_metadata(client_for, make_key, role) -> None:
    key, _ = make_key(
        name="Billing sync", note="Owned by finance", scopes=["passports:read", "keys:read"],
        allowed_ips=["10.0.0.0/8"], rate_limit_per_minute=90,
        expires_at=datetime.now(UTC) + timedelta(days=3, hours=1),
    )
    ApiKey.objects.filter(pk=key.pk).update(
        last_used_at=datetime(2026, 5, 1, 9, 30, 5, tzinfo=UTC), last_used_ip="198.51.100.7",
        request_count=1234,
    )
    response = client_for(role).get(detail_url(key))
    assert response.status_code == HTTPStatus.OK
    html = response.content.decode()
    page = text(html)
    assert "<h1>Billing sync" in html and key.display_hint in html
    assert "Owned by finance" in page
    assert f"ID {key.public_id}" in page
    assert "Scopes keys:read passports:read" in page
    assert "Environment Development" in page
    assert f"Created {key.created_at:%Y-%m-%d %H:%M} UTC by admin@acme.test" in page
    assert f"Expires {key.expires_at:%Y-%m-%d %H:%M} UTC expires in 3 days" in page
    assert "Allowed IPs 10.0.0.0/8" in page
    assert 'data-testid="key-status">Active<' in html
    assert "Last used 2026-05-01 09:30:05 UTC from 198.51.100.7" in page
    assert "Requests 1234" in page
    # The API Keys entry of the settings navigation stays current on a key's page.
    assert 'href="/w/acme/settings/api-keys/" aria-current="page"' in html


def test_a_revoked_key_says_when_and_by_whom(client_for, make_key, members) -> None:
    key, _ = make_key()
    apikey_revoke(key=key, **by(members["owner"]))
    key.refresh_from_db()
    page = text(client_for("viewer").get(detail_url(key)).content.decode())
    assert f"Revoked {key.revoked_at:%Y-%m-%d %H:%M} UTC by owner@acme.test" in page
    assert "Expires Never" in page and "Last used Never" in page


def test_the_rotation_chain_links_both_ways(client_for, make_key) -> None:
    first, _ = make_key(name="Deploys")
    second, _ = apikey_rotate(key=first, overlap="1h", **by())
    third, _ = apikey_rotate(key=second, overlap="now", **by())
    client = client_for("viewer")

    middle = client.get(detail_url(second)).content.decode()
    assert f'<a href="{detail_url(first)}" data-testid="predecessor">' in middle
    assert f'<a href="{detail_url(third)}" data-testid="successor">' in middle
    assert "Rotated from Deploys " + first.display_hint in text(middle)
    assert "Replaced by Deploys " + third.display_hint in text(middle)

    oldest = client.get(detail_url(first)).content.decode()
    assert 'data-testid="predecessor"' not in oldest
    assert f'<a href="{detail_url(second)}" data-testid="successor">' in oldest
    first.refresh_from_db()
    assert f"This key stops at {first.expires_at:%Y-%m-%d %H:%M} UTC." in text(oldest)

    newest = client.get(detail_url(third)).content.decode()
    assert 'data-testid="successor"' not in newest
    assert f'<a href="{detail_url(second)}" data-testid="predecessor">' in newest


def test_another_workspaces_key_and_unknown_ids_are_404(client_for, make_key) -> None:
    other = WorkspaceFactory(slug="globex")
    from apikeys.services import apikey_create

    theirs, _ = apikey_create(
        workspace=other, name="theirs", scopes=["passports:read"], environment="development",
        **by(),
    )
    client = client_for("owner")
    assert client.get(detail_url(theirs)).status_code == HTTPStatus.NOT_FOUND
    assert client.get(detail_url(theirs, slug="globex")).status_code == HTTPStatus.NOT_FOUND
    base = "/w/acme/settings/api-keys/"
    for key_id in ("key_" + "A" * 22, "key_doesnotexist", "key_%00", "%00", "k%C3%A9y_x"):
        assert client.get(f"{base}{key_id}/").status_code == HTTPStatus.NOT_FOUND, key_id


def test_the_keys_list_links_each_key_to_its_page(client_for, make_key, members) -> None:
    live, _ = make_key(name="Live one")
    ended, _ = make_key(name="Ended one")
    apikey_revoke(key=ended, **by(members["owner"]))
    html = client_for("viewer").get("/w/acme/settings/api-keys/").content.decode()
    assert f'<a href="{detail_url(live)}">Live one</a>' in html
    assert f'<a href="{detail_url(ended)}">Ended one</a>' in html


# --- The 30-day chart --------------------------------------------------------------------------

def seed_days(key: ApiKey, counts: dict[int, int]) -> None:
    """KeyUsageDay rows, by days before TODAY."""
    KeyUsageDay.objects.bulk_create(
        KeyUsageDay(api_key=key, day=TODAY - timedelta(days=ago), count=n)
        for ago, n in counts.items()
    )


def test_chart_has_one_bar_per_day_scaled_to_the_busiest(client_for, make_key) -> None:
    key, _ = make_key()
    # 48 is the peak: today's bar is full height, the others in proportion; the day 30 days ago
    # and the future are outside the chart.
    seed_days(key, {0: 48, 1: 12, 10: 1, 29: 36, 30: 500, -1: 500})
    with time_machine.travel(NOW, tick=False):
        html = client_for("viewer").get(detail_url(key)).content.decode()
    svg = chart(html)
    drawn = bars(svg)
    assert len(drawn) == 30
    days = [date.fromisoformat(bar.get("data-day")) for bar in drawn]
    assert days == [TODAY - timedelta(days=29 - i) for i in range(30)]
    heights = {date.fromisoformat(b.get("data-day")): float(b.get("height")) for b in drawn}
    unit = PLOT_HEIGHT / 48
    assert heights[TODAY] == PLOT_HEIGHT
    assert heights[TODAY - timedelta(days=1)] == pytest.approx(12 * unit)
    assert heights[TODAY - timedelta(days=10)] == pytest.approx(unit)
    assert heights[TODAY - timedelta(days=29)] == pytest.approx(36 * unit)
    assert sum(1 for h in heights.values() if h == 0) == 26
    # Bars stand on one baseline, left to right, equally wide.
    baseline = {round(float(b.get("y")) + float(b.get("height")), 2) for b in drawn}
    assert len(baseline) == 1
    xs = [float(b.get("x")) for b in drawn]
    assert xs == sorted(xs) and len({b.get("width") for b in drawn}) == 1
    # Each bar says its numbers on hover; the scale shows the peak.
    assert drawn[-1].find("title").text == "Mar 14: 48 requests"
    assert drawn[-11].find("title").text == "Mar 4: 1 request"
    labels = [t.text for t in svg.iter("text")]
    assert "48" in labels and "0" in labels
    assert {"Feb 13", "Mar 14"} <= set(labels)


def test_chart_is_accessible_without_seeing_it(client_for, make_key) -> None:
    key, _ = make_key()
    seed_days(key, {0: 5, 2: 9})
    with time_machine.travel(NOW, tick=False):
        html = client_for("viewer").get(detail_url(key)).content.decode()
    svg = chart(html)
    assert svg.get("role") == "img"
    assert svg.get("aria-labelledby") == "chart-title chart-summary"
    assert svg.find("title").get("id") == "chart-title"
    assert svg.find("title").text == "Requests per day, last 30 days (UTC)"
    assert 'id="chart-summary">Last 30 days (UTC): 14 requests, at most 9 on Mar 12.</p>' in html
    table = html.split('data-testid="chart-table"')[1].split("</table>")[0]
    assert 'class="visually-hidden"' in html.split('data-testid="chart-table"')[0][-40:]
    rows = re.findall(r'<th scope="row">([\d-]+)</th><td>(\d+)</td>', table)
    assert len(rows) == 30
    assert rows[-1] == (TODAY.isoformat(), "5")
    assert rows[-3] == ((TODAY - timedelta(days=2)).isoformat(), "9")
    assert rows[0] == ((TODAY - timedelta(days=29)).isoformat(), "0")


def test_chart_of_an_unused_key_is_flat(client_for, make_key) -> None:
    key, _ = make_key()
    html = client_for("viewer").get(detail_url(key)).content.decode()
    drawn = bars(chart(html))
    assert len(drawn) == 30 and {b.get("height") for b in drawn} == {"0"}
    assert "Last 30 days (UTC): 0 requests." in html
    assert 'data-testid="no-requests">No requests yet.' in html


def test_a_quiet_day_next_to_a_busy_one_stays_visible() -> None:
    first = date(2031, 1, 1)
    drawn = daily_bar_chart([(first, 10_000), (first + timedelta(days=1), 1),
                             (first + timedelta(days=2), 0)]).bars
    assert [b.height for b in drawn] == [str(PLOT_HEIGHT), "1", "0"]


def test_pages_carry_no_inline_style_or_script(client_for, make_key) -> None:
    """The CSP forbids inline styles and scripts: the chart and meters use attributes and
    classes."""
    key, _ = make_key()
    seed_days(key, {0: 3})
    client = client_for("admin")
    for path in (detail_url(key), "/w/acme/settings/usage/"):
        response = client.get(path)
        html = response.content.decode()
        assert "style=" not in html and "<style" not in html, path
        assert not re.search(r"<script(?![^>]*\bsrc=)", html), path
        assert "script-src 'self'" in response["Content-Security-Policy"]


# --- Recent requests ---------------------------------------------------------------------------

def test_recent_requests_newest_first_with_every_column(
    client_for, make_key, record_requests
) -> None:
    key, _ = make_key()
    at = datetime(2031, 3, 14, 9, 0, 1, tzinfo=UTC)
    record_requests(key, 1, at=at, method="GET", path="/api/v1/passports", status=200,
                    ip="203.0.113.7", latency_ms=12)
    record_requests(key, 1, at=at + timedelta(seconds=5), method="POST", path="/api/v1/passports",
                    status=429, ip="2001:db8::1", latency_ms=3)
    record_requests(key, 1, at=at + timedelta(seconds=9), method="DELETE",
                    path="/api/v1/passports/psp_x", status=503, ip=None, latency_ms=1500)
    html = client_for("viewer").get(detail_url(key)).content.decode()
    table = html.split('id="recent-requests"')[1].split("</table>")[0]
    rows = [text(row) for row in re.findall(r'data-testid="request-row">(.*?)</tr>', table, re.S)]
    assert rows == [
        "2031-03-14 09:00:10 DELETE /api/v1/passports/psp_x 503 — 1500 ms",
        "2031-03-14 09:00:06 POST /api/v1/passports 429 2001:db8::1 3 ms",
        "2031-03-14 09:00:01 GET /api/v1/passports 200 203.0.113.7 12 ms",
    ]
    assert 'class="badge danger">503<' in table and 'class="badge warn">429<' in table
    assert 'class="badge ok">200<' in table
    assert "The last 3 requests of this key, newest first." in text(html)


def test_recent_requests_are_those_the_flush_keeps(client_for, make_key, record_requests) -> None:
    key, _ = make_key()
    record_requests(key, RECENT_PER_KEY + 20)
    html = client_for("viewer").get(detail_url(key)).content.decode()
    assert html.count('data-testid="request-row"') == RECENT_PER_KEY
    assert f"Requests {RECENT_PER_KEY + 20}" in text(html)


def test_detail_query_count_does_not_grow_with_usage(
    client_for, make_key, record_requests
) -> None:
    key, _ = make_key()
    rotated, _ = apikey_rotate(key=make_key(name="Old")[0], overlap="1h", **by())
    client = client_for("admin")
    record_requests(rotated, 2)
    client.get(detail_url(rotated))  # warm the session
    with CaptureQueriesContext(connection) as few:
        assert client.get(detail_url(rotated)).status_code == HTTPStatus.OK
    for ago in range(40):
        record_requests(rotated, 3, at=datetime.now(UTC) - timedelta(days=ago))
    with CaptureQueriesContext(connection) as many:
        html = client.get(detail_url(rotated)).content.decode()
    assert html.count('data-testid="request-row"') == RECENT_PER_KEY
    assert len(many.captured_queries) == len(few.captured_queries)
    # session, user, membership, switcher, key (creator, revoker, predecessor), successors,
    # days, recent requests, the key's collections (the Passports section), its networks
    assert len(few.captured_queries) == 9
    assert key.pk != rotated.pk
