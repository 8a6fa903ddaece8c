"""Per-credential budgets (SPEC §3 "Per-key caps", issue 16): an API key's or an OAuth grant's own
daily request cap and credits, through the real API door, on both counting backends."""

import threading
import urllib.error
import urllib.request
from collections import Counter
from http import HTTPStatus

import pytest
import time_machine
from django.db import connection
from django.test import Client

from apikeys.services import apikey_set_budget
from core.counters import counter_values
from oauth.models import Connection
from oauth.services import connection_set_budget
from passports.services import passport_create
from tests.clock import day_ahead
from tests.factories import by
from tests.servers import gunicorn

BACKENDS = ["database", "redis"]


@pytest.fixture(params=BACKENDS)
def backend(request) -> str:
    if request.param == "redis":
        request.getfixturevalue("own_redis")
    return request.param


@pytest.fixture
def passport(workspace):
    return passport_create(
        workspace=workspace, gtin="4006381333931", serial_number="SN-1", product_name="Widget",
        status="draft", **by(),
    )


def _capped(make_key, members, **budget):
    key, token = make_key()
    key = apikey_set_budget(key=key, **{"daily_cap": None, "credits": None, **budget},
                            **by(members["admin"]))
    return key, Client(headers={"Authorization": f"Bearer {token}"})


@pytest.mark.django_db
def test_daily_cap_refuses_with_quota_exceeded_naming_the_keys_cap(
    backend, make_key, members
) -> None:
    _key, api = _capped(make_key, members, daily_cap=3)
    with time_machine.travel(day_ahead(0, 18, 0), tick=False):
        for left in (2, 1, 0):
            response = api.get("/api/v1/me")
            assert response.status_code == HTTPStatus.OK
            assert response["X-RateLimit-Limit"] == "3"  # /me has no workspace budget
            assert response["X-RateLimit-Remaining"] == str(left)
            assert response["X-RateLimit-Reset"] == str(int(day_ahead(1, 0).timestamp()))
        refused = api.get("/api/v1/me")
    assert refused.status_code == HTTPStatus.TOO_MANY_REQUESTS
    assert refused["Retry-After"] == str(6 * 3600)
    assert refused.json() == {
        "error": "quota_exceeded",
        "message": "This API key's daily cap: 3 requests/day. Currently 3 today; requested 1. "
                   "Retry tomorrow (UTC) or ask a workspace admin to raise the cap.",
    }
    with time_machine.travel(day_ahead(1, 0, 0, 1), tick=False):
        assert api.get("/api/v1/me").status_code == HTTPStatus.OK  # a new UTC day


@pytest.mark.django_db
def test_credits_without_refill_run_out_and_have_no_retry_after(
    backend, make_key, members
) -> None:
    _key, api = _capped(make_key, members, credits=2)
    first = api.get("/api/v1/me")
    assert first["X-RateLimit-Limit"] == "2"
    assert first["X-RateLimit-Remaining"] == "1"
    assert "X-RateLimit-Reset" not in first  # never refills
    assert api.get("/api/v1/me")["X-RateLimit-Remaining"] == "0"
    refused = api.get("/api/v1/me")
    assert refused.status_code == HTTPStatus.TOO_MANY_REQUESTS
    assert "Retry-After" not in refused  # waiting does not help
    assert refused.json() == {
        "error": "quota_exceeded",
        "message": "This API key has used all 2 of its credits. They do not refill: a "
                   "workspace admin can add credits.",
    }
    with time_machine.travel(day_ahead(40, 0), tick=False):
        assert api.get("/api/v1/me").status_code == HTTPStatus.TOO_MANY_REQUESTS


@pytest.mark.django_db
def test_monthly_refill_comes_back_on_the_first_at_midnight_utc(
    backend, make_key, members
) -> None:
    _key, api = _capped(make_key, members, credits=1, credits_refill="monthly")
    with time_machine.travel("2031-01-31T22:00:00Z", tick=False):
        assert api.get("/api/v1/me").status_code == HTTPStatus.OK
        refused = api.get("/api/v1/me")
        assert refused.status_code == HTTPStatus.TOO_MANY_REQUESTS
        assert refused["Retry-After"] == str(2 * 3600)
        assert "refill on the 1st of next month" in refused.json()["message"]
    with time_machine.travel("2031-02-01T00:00:00Z", tick=False):
        assert api.get("/api/v1/me").status_code == HTTPStatus.OK


@pytest.mark.django_db
def test_daily_refill(backend, make_key, members) -> None:
    _key, api = _capped(make_key, members, credits=1, credits_refill="daily")
    with time_machine.travel(day_ahead(0, 23, 0), tick=False):
        assert api.get("/api/v1/me").status_code == HTTPStatus.OK
        refused = api.get("/api/v1/me")
        assert refused["Retry-After"] == "3600"
    with time_machine.travel(day_ahead(1, 0), tick=False):
        assert api.get("/api/v1/me").status_code == HTTPStatus.OK


@pytest.mark.django_db
def test_a_cap_refusal_spends_nothing_of_the_workspace_budget(
    backend, make_key, members, passport
) -> None:
    _key, capped = _capped(make_key, members, daily_cap=2)
    url = f"/api/v1/passports/{passport.public_id}"
    with time_machine.travel(day_ahead(0, 12), tick=False):
        assert [capped.get(url).status_code for _ in range(4)] == [200, 200, 429, 429]
        _other, token = make_key()
        other = Client(headers={"Authorization": f"Bearer {token}"}).get(url)
    assert other.status_code == HTTPStatus.OK
    assert other["X-RateLimit-Limit"] == "100"  # the free plan's passport reads
    assert other["X-RateLimit-Remaining"] == "97"  # 2 of the capped key, 1 of its own


@pytest.mark.django_db
def test_the_workspace_budget_refuses_first_and_the_cap_keeps_its_units(
    backend, make_key, members, passport, workspace
) -> None:
    plan = workspace.plan
    plan.passport_reads_per_day = 1
    plan.save()
    key, capped = _capped(make_key, members, credits=5)
    url = f"/api/v1/passports/{passport.public_id}"
    assert capped.get(url).status_code == HTTPStatus.OK
    refused = capped.get(url)
    assert refused.status_code == HTTPStatus.TOO_MANY_REQUESTS
    assert refused.json()["message"].startswith("API rate limit: 1 passport reads/day")
    me = capped.get("/api/v1/me")
    assert me["X-RateLimit-Remaining"] == "3"  # the refused read took no credit


@pytest.mark.django_db
def test_the_tighter_limit_is_in_the_headers(backend, make_key, members, passport) -> None:
    _key, api = _capped(make_key, members, credits=500)
    url = f"/api/v1/passports/{passport.public_id}"
    response = api.get(url)
    assert (response["X-RateLimit-Limit"], response["X-RateLimit-Remaining"]) == ("100", "99")
    _key, api = _capped(make_key, members, credits=5)
    response = api.get(url)
    assert (response["X-RateLimit-Limit"], response["X-RateLimit-Remaining"]) == ("5", "4")


@pytest.mark.django_db
def test_unserved_requests_and_replays_spend_no_credit(
    backend, make_key, members, passport
) -> None:
    _key, api = _capped(make_key, members, credits=3)
    missing = api.get("/api/v1/passports/psp_doesnotexist")
    assert missing.status_code == HTTPStatus.NOT_FOUND
    assert missing["X-RateLimit-Remaining"] == "3"
    url = f"/api/v1/passports/{passport.public_id}"
    body = {"product_name": "Once"}
    first = api.patch(url, body, content_type="application/json",
                      headers={"Idempotency-Key": "k-1"})
    assert first.status_code == HTTPStatus.OK
    replay = api.patch(url, body, content_type="application/json",
                       headers={"Idempotency-Key": "k-1"})
    assert replay["Idempotent-Replayed"] == "true"
    assert api.get("/api/v1/me")["X-RateLimit-Remaining"] == "1"  # the PATCH and this one


@pytest.mark.django_db
def test_a_new_budget_applies_to_the_next_request_and_resets_the_balance(
    backend, make_key, members
) -> None:
    key, api = _capped(make_key, members, credits=1)
    assert api.get("/api/v1/me").status_code == HTTPStatus.OK
    assert api.get("/api/v1/me").status_code == HTTPStatus.TOO_MANY_REQUESTS
    apikey_set_budget(key=key, daily_cap=None, credits=2, **by(members["admin"]))
    assert api.get("/api/v1/me")["X-RateLimit-Remaining"] == "1"
    apikey_set_budget(key=key, daily_cap=None, credits=None, **by(members["admin"]))
    response = api.get("/api/v1/me")
    assert response.status_code == HTTPStatus.OK
    assert "X-RateLimit-Limit" not in response  # uncapped again: nothing counted


@pytest.mark.django_db
def test_an_uncapped_key_asks_for_no_cap_counter(backend, make_key, members, passport) -> None:
    key, token = make_key()
    api = Client(headers={"Authorization": f"Bearer {token}"})
    assert api.get("/api/v1/me").status_code == HTTPStatus.OK
    assert counter_values([f"dc:key:{key.pk}:{day_ahead(0, 0).date().isoformat()}"]) == {
        f"dc:key:{key.pk}:{day_ahead(0, 0).date().isoformat()}": 0
    }


@pytest.mark.django_db
def test_an_oauth_grant_carries_its_own_cap(
    backend, oauth_app, tokens_for, members
) -> None:
    access = tokens_for(oauth_app, "editor")["access_token"]
    grant = Connection.objects.get()
    connection_set_budget(connection=grant, daily_cap=2, credits=None, **by(members["admin"]))
    api = Client(headers={"Authorization": f"Bearer {access}"})
    assert [api.get("/api/v1/me").status_code for _ in range(3)] == [200, 200, 429]
    refused = api.get("/api/v1/me")
    assert refused.json()["message"].startswith("This OAuth grant's daily cap: 2 requests/day.")
    assert int(refused["Retry-After"]) > 0


# --- Exact under concurrency -------------------------------------------------------------------


def _hammer(url: str, token: str, total: int, threads: int) -> Counter:
    statuses: Counter = Counter()
    lock = threading.Lock()
    barrier = threading.Barrier(threads)
    shares = [total // threads + (1 if i < total % threads else 0) for i in range(threads)]

    def worker(n: int) -> None:
        barrier.wait()
        for _ in range(n):
            request = urllib.request.Request(url, headers={"Authorization": f"Bearer {token}"})
            try:
                with urllib.request.urlopen(request, timeout=60) as response:
                    status = response.status
                    response.read()
            except urllib.error.HTTPError as error:
                status = error.code
                error.read()
            with lock:
                statuses[status] += 1

    pool = [threading.Thread(target=worker, args=(n,)) for n in shares]
    for t in pool:
        t.start()
    for t in pool:
        t.join()
    return statuses


@pytest.mark.django_db(transaction=True)
def test_exactly_the_daily_cap_succeeds_with_32_clients_on_two_workers(
    make_key, members
) -> None:
    key, token = make_key()
    apikey_set_budget(key=key, daily_cap=40, credits=None, **by(members["admin"]))
    connection.close()
    with gunicorn(workers=2) as base:
        statuses = _hammer(f"{base}/api/v1/me", token, total=96, threads=32)
    assert statuses == {200: 40, 429: 56}


@pytest.mark.django_db(transaction=True)
def test_exactly_the_credits_succeed_with_32_threads_together_with_the_budget(
    live_server, make_key, members, workspace
) -> None:
    key, token = make_key()
    apikey_set_budget(key=key, daily_cap=None, credits=30, **by(members["admin"]))
    passport = passport_create(workspace=workspace, gtin="4006381333931", serial_number="R",
                               product_name="Race", status="draft", **by())
    connection.close()
    statuses = _hammer(f"{live_server.url}/api/v1/passports/{passport.public_id}", token,
                       total=64, threads=32)
    assert statuses == {200: 30, 429: 34}
    _other, other_token = make_key()
    other = Client(headers={"Authorization": f"Bearer {other_token}"}).get(
        f"/api/v1/passports/{passport.public_id}"
    )
    assert other["X-RateLimit-Remaining"] == "69"  # the budget counted exactly the 30 served


@pytest.mark.django_db
def test_get_keys_shows_what_is_left_of_each_keys_budget(backend, make_key, members) -> None:
    key, api = _capped(make_key, members, daily_cap=10, credits=5, credits_refill="daily")
    with time_machine.travel(day_ahead(0, 9), tick=False):
        for _ in range(2):
            assert api.get("/api/v1/me").status_code == HTTPStatus.OK
        listed = api.get("/api/v1/keys")
    assert listed.status_code == HTTPStatus.OK
    budget = next(k for k in listed.json()["data"] if k["id"] == key.public_id)["budget"]
    assert budget == {
        "daily_cap": 10, "used_today": 3, "credits": 5, "credits_remaining": 2,
        "credits_refill": "daily",
        "credits_refill_at": day_ahead(1, 0).isoformat().replace("+00:00", "Z"),
    }
