"""Faults: PostgreSQL or Redis stopped mid-run under load (SPEC §4 `service_unavailable`).

gunicorn (2 workers) serves Gatehouse against a PostgreSQL and a redis-server of the test's own;
a writer thread keeps creating passports while a server is stopped and started again. Checked:
- during the outage the API answers 503 `service_unavailable` (JSON) within 2 s, the dashboard
  its 503 page, and nothing answers 500;
- nothing is half-written: every passport the API confirmed (201) exists, nothing else does, each
  has exactly its `passport.created` audit event, and every audit log still verifies;
- once the server is back, the same processes serve again, without a restart.
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from http import HTTPStatus

import httpx
import pytest

from tests.servers import manage, wait_until

from .conftest import Stack, dashboard_login

pytestmark = pytest.mark.servers


@pytest.fixture(autouse=True)
def _quiet_httpx(caplog) -> None:
    caplog.set_level("WARNING", logger="httpx")

GTIN = "4006381333931"
ANSWER_WITHIN = 2.0


class Writer(threading.Thread):
    """Creates passports back to back, recording every answer (or transport error)."""

    def __init__(self, base_url: str, token: str, prefix: str) -> None:
        super().__init__(daemon=True)
        self.client = httpx.Client(
            base_url=base_url, timeout=10, headers={"Authorization": f"Bearer {token}"}
        )
        self.prefix = prefix
        self.halt = threading.Event()
        self.statuses: Counter[int] = Counter()
        self.created: set[str] = set()
        self.slowest = 0.0

    def run(self) -> None:
        n = 0
        while not self.halt.is_set() and n < 5000:
            n += 1
            started = time.monotonic()
            response = self.client.post("/api/v1/passports", json={
                "gtin": GTIN, "serial_number": f"{self.prefix}-{n}", "product_name": "Drill",
            })
            self.slowest = max(self.slowest, time.monotonic() - started)
            self.statuses[response.status_code] += 1
            if response.status_code == HTTPStatus.CREATED:
                self.created.add(response.json()["id"])
            elif response.status_code == HTTPStatus.SERVICE_UNAVAILABLE:
                self.halt.wait(0.05)  # a client backing off, as a real one would

    def served(self, status: int) -> int:
        return self.statuses[status]

    def wait_for_more(self, status: int, *, what: str, more: int = 3) -> None:
        """Until this writer has seen `more` further answers with `status` (instead of sleeping
        for a time that may be too short on a busy machine, or longer than needed)."""
        target = self.served(status) + more
        wait_until(lambda: self.served(status) >= target, timeout=30, what=what)

    def stop(self) -> None:
        self.halt.set()
        self.join(timeout=30)
        self.client.close()


def assert_unavailable(response: httpx.Response, elapsed: float) -> None:
    assert response.status_code == HTTPStatus.SERVICE_UNAVAILABLE, response.text[:300]
    assert response.headers["Content-Type"] == "application/json"
    body = response.json()
    assert body["error"] == "service_unavailable"
    assert "nothing was changed" in body["message"]
    assert elapsed < ANSWER_WITHIN, f"answered after {elapsed:.2f} s"


def timed(call):
    started = time.monotonic()
    response = call()
    return response, time.monotonic() - started


def assert_consistent(stack: Stack, created: set[str], prefix: str) -> None:
    """Every confirmed passport exists with its one audit event; nothing unconfirmed exists."""
    stored = {row[0] for row in stack.pg.query(
        "SELECT public_id FROM passports_passport WHERE serial_number LIKE %s", (f"{prefix}-%",)
    )}
    assert stored == created
    audited = Counter(row[0] for row in stack.pg.query(
        "SELECT target_id FROM audit_auditevent WHERE action = 'passport.created' "
        "AND target_id = ANY(%s)", (list(stored),)
    ))
    assert set(audited) == stored
    assert set(audited.values()) <= {1}
    manage(stack.env, "verify_audit_log")  # exits non-zero on any broken link


def test_postgresql_stopped_mid_run(up_stack: Stack) -> None:
    stack = up_stack
    app = stack.app()
    app.start()
    api = httpx.Client(base_url=app.url, timeout=10,
                       headers={"Authorization": f"Bearer {stack.unlimited_token}"})
    dashboard = dashboard_login(app.url)
    writer = Writer(app.url, stack.unlimited_token, prefix="pg")
    try:
        assert api.get("/api/v1/me").status_code == HTTPStatus.OK
        assert dashboard.get("/w/acme/settings/api-keys/").status_code == HTTPStatus.OK
        writer.start()
        writer.wait_for_more(HTTPStatus.CREATED, what="writes before the outage")

        stack.pg.stop()  # fast shutdown: open transactions are rolled back
        for _ in range(3):  # both workers, and requests on their dead pooled connections
            # The key itself may be confirmed from the worker's cache (apikeys.keycache, Redis
            # is up); whatever reads the database answers 503.
            assert_unavailable(*timed(lambda: api.get("/api/v1/passports")))
            assert_unavailable(*timed(lambda: api.post(
                "/api/v1/passports",
                json={"gtin": GTIN, "serial_number": "never", "product_name": "Never"},
            )))
            page, elapsed = timed(lambda: dashboard.get("/w/acme/settings/api-keys/"))
            assert page.status_code == HTTPStatus.SERVICE_UNAVAILABLE
            assert "Gatehouse is temporarily unavailable" in page.text
            assert "Nothing was changed" in page.text
            assert elapsed < ANSWER_WITHIN
            form = dashboard.post(
                "/w/acme/settings/api-keys/new/", data={"name": "never"},
                headers={"X-CSRFToken": dashboard.cookies["csrftoken"],
                         "Referer": f"{app.url}/w/acme/settings/api-keys/"},
            )
            assert form.status_code == HTTPStatus.SERVICE_UNAVAILABLE
        writer.wait_for_more(HTTPStatus.SERVICE_UNAVAILABLE, what="refusals in the outage")

        stack.pg.start()
        wait_until(lambda: api.get("/api/v1/passports").status_code == HTTPStatus.OK,
                   timeout=10, what="the API after PostgreSQL came back")
        writer.wait_for_more(HTTPStatus.CREATED, what="writes after PostgreSQL came back")
        writer.stop()

        for _ in range(4):  # every worker serves again: no restart needed
            assert api.get("/api/v1/passports").status_code == HTTPStatus.OK
        assert dashboard.get("/w/acme/settings/api-keys/").status_code == HTTPStatus.OK
        assert set(writer.statuses) <= {HTTPStatus.CREATED, HTTPStatus.SERVICE_UNAVAILABLE}, (
            writer.statuses, app.output()[-3000:])
        assert writer.statuses[HTTPStatus.SERVICE_UNAVAILABLE] > 0
        assert writer.statuses[HTTPStatus.CREATED] > 0
        assert writer.slowest < ANSWER_WITHIN + 1.0
        assert_consistent(stack, writer.created, prefix="pg")
        assert stack.pg.query(
            "SELECT count(*) FROM passports_passport WHERE serial_number = 'never'"
        ) == [(0,)]
        assert stack.pg.query("SELECT count(*) FROM apikeys_apikey WHERE name = 'never'") == [(0,)]
    finally:
        writer.halt.set()
        api.close()
        dashboard.close()
        app.stop()


def test_redis_stopped_mid_run(up_stack: Stack) -> None:
    stack = up_stack
    app = stack.app()
    app.start()
    metered = httpx.Client(base_url=app.url, timeout=10,
                           headers={"Authorization": f"Bearer {stack.metered_token}"})
    unlimited = httpx.Client(base_url=app.url, timeout=10,
                             headers={"Authorization": f"Bearer {stack.unlimited_token}"})
    dashboard = dashboard_login(app.url)
    writer = Writer(app.url, stack.unlimited_token, prefix="redis")
    try:
        assert metered.get("/api/v1/passports").status_code == HTTPStatus.OK
        writer.start()
        writer.wait_for_more(HTTPStatus.CREATED, what="writes before the outage")

        stack.redis.stop()
        for _ in range(3):
            # Counted requests cannot be counted: refused before anything is done.
            assert_unavailable(*timed(lambda: metered.get("/api/v1/passports")))
            assert_unavailable(*timed(lambda: metered.post(
                "/api/v1/passports",
                json={"gtin": GTIN, "serial_number": "never", "product_name": "Never"},
            )))
            # Uncounted requests (an unlimited plan) need no Redis and are served.
            me, elapsed = timed(lambda: unlimited.get("/api/v1/me"))
            assert me.status_code == HTTPStatus.OK
            assert elapsed < ANSWER_WITHIN
            page, elapsed = timed(lambda: dashboard.get("/w/acme/settings/api-keys/"))
            assert page.status_code == HTTPStatus.OK
            assert elapsed < ANSWER_WITHIN
        writer.wait_for_more(HTTPStatus.CREATED, what="unmetered writes during the outage")

        stack.redis.start()  # a new, empty Redis: today's counters start again
        wait_until(lambda: metered.get("/api/v1/passports").status_code == HTTPStatus.OK,
                   timeout=10, what="the API after Redis came back")
        writer.stop()
        assert set(writer.statuses) == {HTTPStatus.CREATED}, writer.statuses
        assert_consistent(stack, writer.created, prefix="redis")
        assert stack.pg.query(
            "SELECT count(*) FROM passports_passport WHERE serial_number = 'never'"
        ) == [(0,)]
    finally:
        writer.halt.set()
        for client in (metered, unlimited, dashboard):
            client.close()
        app.stop()
