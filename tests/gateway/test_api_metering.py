"""Daily budgets, per-key rate limits and usage through the real API door (SPEC §5)."""

import json
import threading
import urllib.error
import urllib.request
from collections import Counter
from http import HTTPStatus

import pytest
import time_machine
from django.db import connection
from django.test import Client

from apikeys.models import KeyRequest, KeyUsageDay
from apikeys.services import apikey_create
from gateway.usage import usage_flush
from passports.models import Passport
from passports.services import passport_create
from tests.clock import day_ahead
from tests.factories import by, plan_named
from tests.servers import gunicorn

ALL = ["passports:read", "passports:write", "keys:read", "audit:read"]



@pytest.fixture
def key_and_token(workspace, members):
    return apikey_create(
        workspace=workspace, name="Metered", scopes=ALL, environment="development",
        **by(members["admin"]),
    )


@pytest.fixture
def api(key_and_token) -> Client:
    return Client(headers={"Authorization": f"Bearer {key_and_token[1]}"})


@pytest.fixture
def passport(workspace):
    return passport_create(
        workspace=workspace, gtin="4006381333931", serial_number="SN-1", product_name="Widget",
        status="draft", **by(),
    )


def _patch(api: Client, passport, name: str = "Renamed", **headers):
    return api.patch(
        f"/api/v1/passports/{passport.public_id}", {"product_name": name},
        content_type="application/json", headers=headers,
    )


@pytest.mark.django_db
def test_write_budget_is_spent_then_quota_exceeded(api, passport, workspace) -> None:
    assert workspace.plan.code == "free"  # 100 writes/day
    with time_machine.travel(day_ahead(0, 18, 0), tick=False):
        for n in range(100):
            response = _patch(api, passport, f"Name {n}")
            assert response.status_code == HTTPStatus.OK, response.json()
        assert response["X-RateLimit-Limit"] == "100"
        assert response["X-RateLimit-Remaining"] == "0"
        assert response["X-RateLimit-Reset"] == str(int(day_ahead(1, 0)
                                                        .timestamp()))
        refused = _patch(api, passport, "One too many")
    assert refused.status_code == HTTPStatus.TOO_MANY_REQUESTS
    assert refused["Retry-After"] == str(6 * 3600)
    assert refused.json() == {
        "error": "quota_exceeded",
        "message": "API rate limit: 100 writes/day via /api/v1. Currently 100 today; requested "
                   "1. Retry tomorrow (UTC) or upgrade your plan.",
    }
    passport.refresh_from_db()
    assert passport.product_name == "Name 99"  # the refused write changed nothing


@pytest.mark.django_db
def test_budget_resets_at_utc_midnight(api, passport) -> None:
    with time_machine.travel(day_ahead(0, 23, 59, 50), tick=False):
        for _ in range(100):
            _patch(api, passport)
        assert _patch(api, passport).status_code == HTTPStatus.TOO_MANY_REQUESTS
    with time_machine.travel(day_ahead(1, 0, 0, 0), tick=False):
        response = _patch(api, passport)
    assert response.status_code == HTTPStatus.OK
    assert response["X-RateLimit-Remaining"] == "99"


@pytest.mark.django_db
def test_requests_that_are_not_served_do_not_count(api, passport) -> None:
    bad = api.patch(f"/api/v1/passports/{passport.public_id}", {"gtin": "123"},
                    content_type="application/json")
    assert bad.status_code == HTTPStatus.BAD_REQUEST
    missing = api.patch("/api/v1/passports/psp_doesnotexist", {"product_name": "x"},
                        content_type="application/json")
    assert missing.status_code == HTTPStatus.NOT_FOUND
    ok = _patch(api, passport)
    assert ok["X-RateLimit-Remaining"] == "99"  # only the served write was counted


@pytest.mark.django_db
def test_passport_reads_have_their_own_budget_and_other_reads_none(api, passport) -> None:
    response = api.get(f"/api/v1/passports/{passport.public_id}")
    assert response.status_code == HTTPStatus.OK
    assert response["X-RateLimit-Limit"] == "100"
    assert response["X-RateLimit-Remaining"] == "99"
    assert api.get("/api/v1/passports")["X-RateLimit-Remaining"] == "98"
    me = api.get("/api/v1/me")
    assert me.status_code == HTTPStatus.OK
    assert "X-RateLimit-Limit" not in me  # no budget applies, and the key has no rate limit
    assert _patch(api, passport)["X-RateLimit-Remaining"] == "99"  # writes: a separate budget


@pytest.mark.django_db
def test_unlimited_plan_counts_nothing(api, passport, workspace) -> None:
    workspace.plan = plan_named("pro")
    workspace.save()
    for _ in range(3):
        response = _patch(api, passport)
        assert response.status_code == HTTPStatus.OK
    assert "X-RateLimit-Limit" not in response


@pytest.mark.django_db
def test_per_key_rate_limit(workspace, members, passport) -> None:
    _key, token = apikey_create(
        workspace=workspace, name="Slow", scopes=ALL, environment="development",
        **by(members["admin"]), rate_limit_per_minute=3,
    )
    api = Client(headers={"Authorization": f"Bearer {token}"})
    with time_machine.travel(day_ahead(0, 12, 0, 15), tick=False):
        statuses = [api.get("/api/v1/me").status_code for _ in range(4)]
        assert statuses == [200, 200, 200, 429]
        refused = api.get("/api/v1/me")
        assert refused.json()["error"] == "rate_limited"
        assert refused["Retry-After"] == "45"
        assert api.get("/api/v1/me").status_code == HTTPStatus.TOO_MANY_REQUESTS
    with time_machine.travel(day_ahead(0, 12, 1, 0), tick=False):
        ok = api.get("/api/v1/me")
    assert ok.status_code == HTTPStatus.OK
    assert ok["X-RateLimit-Limit"] == "3"
    assert ok["X-RateLimit-Remaining"] == "2"


@pytest.mark.django_db
def test_usage_is_recorded_without_a_write_per_request_and_flushed(
    api, key_and_token, passport, django_assert_max_num_queries
) -> None:
    key, _token = key_and_token
    for _ in range(7):
        assert api.get("/api/v1/me").status_code == HTTPStatus.OK
    api.get("/api/v1/passports/psp_nope")
    key.refresh_from_db()
    assert key.request_count == 0  # nothing written on the request path
    assert usage_flush() == 8
    key.refresh_from_db()
    assert key.request_count == 8
    assert key.last_used_ip == "127.0.0.1"
    assert KeyUsageDay.objects.get(api_key=key).count == 8
    recent = list(KeyRequest.objects.filter(api_key=key).order_by("at", "id"))
    assert [(r.method, r.path, r.status) for r in recent][-1] == (
        "GET", "/api/v1/passports/psp_nope", 404
    )


# --- Exactness under concurrency ---------------------------------------------------------------


def _hammer(url: str, token: str, total: int, threads: int) -> Counter:
    """`total` GETs from `threads` real threads at once; the statuses they got."""
    statuses: Counter = Counter()
    lock = threading.Lock()
    barrier = threading.Barrier(threads)
    shares = [total // threads + (1 if i < total % threads else 0) for i in range(threads)]

    def worker(n: int) -> None:
        barrier.wait()
        for _ in range(n):
            request = urllib.request.Request(url, headers={"Authorization": f"Bearer {token}"})
            try:
                with urllib.request.urlopen(request, timeout=30) as response:
                    status = response.status
                    response.read()
            except urllib.error.HTTPError as error:
                status = error.code
                body = json.loads(error.read())
                assert status != HTTPStatus.TOO_MANY_REQUESTS or body["error"] == "quota_exceeded"
            with lock:
                statuses[status] += 1

    pool = [threading.Thread(target=worker, args=(n,)) for n in shares]
    for t in pool:
        t.start()
    for t in pool:
        t.join()
    return statuses


@pytest.mark.django_db(transaction=True)
def test_exactly_the_budget_succeeds_with_32_threads_against_live_server(
    live_server, workspace, members
) -> None:
    _key, token = apikey_create(
        workspace=workspace, name="Race", scopes=ALL, environment="development",
        **by(members["admin"]),
    )
    passport = passport_create(workspace=workspace, gtin="4006381333931", serial_number="R",
                               product_name="Race", status="draft", **by())
    connection.close()
    statuses = _hammer(f"{live_server.url}/api/v1/passports/{passport.public_id}", token,
                       total=130, threads=32)
    assert statuses == {200: 100, 429: 30}


@pytest.mark.django_db(transaction=True)
def test_exactly_the_budget_succeeds_across_two_server_processes(workspace, members) -> None:
    _key, token = apikey_create(
        workspace=workspace, name="Two servers", scopes=ALL, environment="development",
        **by(members["admin"]),
    )
    passport = passport_create(workspace=workspace, gtin="4006381333931", serial_number="P",
                               product_name="Procs", status="draft", **by())
    connection.close()
    with gunicorn(workers=2) as first, gunicorn(workers=2) as second:
        path = f"/api/v1/passports/{passport.public_id}"
        results: list[Counter] = []

        def run(base: str) -> None:
            results.append(_hammer(f"{base}{path}", token, total=65, threads=8))

        pair = [threading.Thread(target=run, args=(b,)) for b in (first, second)]
        for t in pair:
            t.start()
        for t in pair:
            t.join()
    assert sum(results, Counter()) == {200: 100, 429: 30}
    assert Passport.objects.count() == 1


@pytest.mark.django_db
@pytest.mark.parametrize("backend", ["database", "redis"])
def test_a_request_that_is_not_served_shows_its_unit_as_not_spent(
    api, passport, workspace, request, backend
) -> None:
    """X-RateLimit-Remaining on a refused request is the truth after the unit was given back."""
    if backend == "redis":
        request.getfixturevalue("own_redis")
    assert workspace.plan.passport_reads_per_day == 100
    missing = api.get("/api/v1/passports/psp_doesnotexist")
    assert missing.status_code == HTTPStatus.NOT_FOUND
    assert missing.json()["error"] == "not_found"
    assert missing["X-RateLimit-Limit"] == "100"
    assert missing["X-RateLimit-Remaining"] == "100"  # nothing was spent
    bad = api.get("/api/v1/passports?limit=0")
    assert bad.status_code == HTTPStatus.BAD_REQUEST
    assert bad["X-RateLimit-Remaining"] == "100"
    served = api.get(f"/api/v1/passports/{passport.public_id}")
    assert served.status_code == HTTPStatus.OK
    assert served["X-RateLimit-Remaining"] == "99"
    again = api.get("/api/v1/passports/psp_doesnotexist")
    assert again["X-RateLimit-Remaining"] == "99"
