"""Finding keys (issue 15 point 5): search by name, note or hint, filter by status, environment
and scope (GET parameters, so it works without JavaScript; htmx gets the table alone), and keyset
pages of the revoked/expired section."""

from __future__ import annotations

import re
from datetime import timedelta
from http import HTTPStatus
from urllib.parse import urlencode

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from apikeys.models import ApiKey
from apikeys.selectors import INACTIVE_PAGE_SIZE
from apikeys.services import apikey_pause, apikey_revoke
from tests.factories import by

pytestmark = pytest.mark.django_db

LIST = reverse("apikeys:list", kwargs={"slug": "acme"})


def names(html: str, section: str = "active-keys") -> list[str]:
    """The key names listed in one table of the page."""
    if f'id="{section}"' not in html:
        return []
    table = html.split(f'id="{section}"', 1)[1].split("</table>", 1)[0]
    return re.findall(r'/settings/api-keys/key_\w+/">([^<]+)</a>', table)


@pytest.fixture
def keys(make_key):
    billing, _ = make_key(name="Billing sync", note="finance team", scopes=["passports:read"])
    deploys, _ = make_key(name="CI deploys", scopes=["passports:read", "passports:write"],
                          environment="production")
    cron, _ = make_key(name="Nightly cron", note="reads billing exports",
                       scopes=["keys:read"], environment="staging")
    apikey_pause(key=cron, **by())
    old, _ = make_key(name="Old billing")
    apikey_revoke(key=old, **by())
    return {"billing": billing, "deploys": deploys, "cron": cron, "old": old}


def get(client, **params):
    return client.get(f"{LIST}?{urlencode(params, doseq=True)}")


def test_search_by_name_or_note_both_sections(client_for, keys) -> None:
    html = get(client_for("viewer"), q="billing").content.decode()
    assert sorted(names(html)) == ["Billing sync", "Nightly cron"]  # name, note
    assert names(html, "revoked-keys") == ["Old billing"]
    assert 'value="billing"' in html  # the search box keeps what was typed
    assert "Clear filters" in html


def test_search_by_hint(client_for, keys) -> None:
    key = keys["deploys"]
    for query in (key.hint, key.display_hint, f"…{key.hint}", f"gk_prod_...{key.hint}"):
        html = get(client_for("viewer"), q=query).content.decode()
        assert "CI deploys" in names(html), query


@pytest.mark.parametrize(
    ("params", "live", "inactive"),
    [
        ({"status": "paused"}, ["Nightly cron"], []),
        ({"status": "active"}, ["CI deploys", "Billing sync"], []),
        ({"status": "revoked"}, [], ["Old billing"]),
        ({"status": "expired"}, [], []),
        ({"environment": "production"}, ["CI deploys"], []),
        ({"environment": "staging"}, ["Nightly cron"], []),
        ({"scope": "passports:write"}, ["CI deploys"], ["Old billing"]),
        ({"scope": "keys:read"}, ["Nightly cron"], ["Old billing"]),
        ({"scope": "passports:read", "q": "sync"}, ["Billing sync"], []),
    ],
)
def test_filters(client_for, keys, params, live, inactive) -> None:
    html = get(client_for("admin"), **params).content.decode()
    assert names(html) == live
    assert names(html, "revoked-keys") == inactive


def test_filter_counts_the_plan_whatever_it_shows(client_for, keys) -> None:
    html = get(client_for("admin"), q="zzz-no-match").content.decode()
    assert "3 of 5 keys in use" in html
    assert "No live key matches." in html and "None matches." in html


def test_htmx_gets_the_table_alone(client_for, keys, htmx) -> None:
    response = client_for("admin").get(f"{LIST}?q=cron", headers=htmx)
    html = response.content.decode()
    assert response.status_code == HTTPStatus.OK
    assert "<html" not in html and html.lstrip().startswith("<section id=\"key-table\"")
    assert names(html) == ["Nightly cron"]
    assert 'hx-get="/w/acme/settings/api-keys/?q=cron"' in html  # reloads with the filter
    assert "HX-Request" in response["Vary"]


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"q": "x" * 101}, "Search with at most 100 characters."),
        ({"q": "a\x00b"}, "Null characters are not allowed."),
        ({"status": "deleted"}, "Select a valid choice"),
        ({"environment": "moon"}, "Select a valid choice"),
        ({"scope": "admin:all"}, "Select a valid choice"),
        ({"cursor": "forged"}, "page link is out of date"),
    ],
)
def test_hostile_or_bad_filters_are_form_errors_not_500s(
    client_for, keys, params, message
) -> None:
    response = get(client_for("admin"), **params)
    assert response.status_code == HTTPStatus.OK
    html = response.content.decode()
    assert message in html
    assert len(names(html)) == 3  # unfiltered


def test_lone_surrogates_in_the_query_string_are_harmless(client_for, keys) -> None:
    response = client_for("admin").get(f"{LIST}?q=%ED%A0%80&status=%00")
    assert response.status_code == HTTPStatus.OK


def test_revoked_and_expired_keys_come_in_keyset_pages(client_for, make_key) -> None:
    total = INACTIVE_PAGE_SIZE * 2 + 5
    for n in range(total):
        key, _ = make_key(name=f"Gone {n:02d}")
        if n % 2:
            apikey_revoke(key=key, **by())
        else:
            ApiKey.objects.filter(pk=key.pk).update(
                expires_at=timezone.now() - timedelta(minutes=1)
            )
    client = client_for("admin")
    seen: list[str] = []
    url = LIST
    pages = 0
    while url:
        with CaptureQueriesContext(connection) as queries:
            html = client.get(url).content.decode()
        pages += 1
        page_names = names(html, "revoked-keys")
        assert len(page_names) <= INACTIVE_PAGE_SIZE
        seen += page_names
        older = re.search(r'href="([^"]+)"[^>]*rel="next"', html)
        url = older.group(1).replace("&amp;", "&") if older else None
        if pages > 1:
            assert 'data-testid="first-page"' in html
    assert pages == 3
    assert seen == [f"Gone {n:02d}" for n in reversed(range(total))]  # newest first, no repeat
    assert len(queries.captured_queries) < 20


def test_pages_keep_the_filter(client_for, make_key) -> None:
    for n in range(INACTIVE_PAGE_SIZE + 3):
        key, _ = make_key(name=f"{'Alpha' if n % 2 else 'Beta'} {n:02d}")
        apikey_revoke(key=key, **by())
    client = client_for("admin")
    first = get(client, q="alpha").content.decode()
    assert 'rel="next"' not in first  # 11 alphas fit one page
    first = get(client, q="beta").content.decode()
    assert 'rel="next"' not in first
    everything = client.get(LIST).content.decode()
    older = re.search(r'href="([^"]+)"[^>]*rel="next"', everything).group(1)
    # A cursor issued for one filter is refused under another.
    other = client.get(older.replace("&amp;", "&") + "&q=alpha").content.decode()
    assert "page link is out of date" in other
