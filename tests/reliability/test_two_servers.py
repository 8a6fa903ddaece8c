"""Horizontal scaling (SPEC §1 scale-out, docs/deploy.md): two gunicorn instances on different
ports, sharing one PostgreSQL and one Redis, behave as one service — a revocation made anywhere
is refused everywhere at once, a daily budget of N admits exactly N requests across both, and an
Idempotency-Key sent to both executes once."""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from http import HTTPStatus

import httpx
import pytest

from tests.servers import AppServer, manage

from .conftest import ALL_SCOPES, OWNER, Stack

pytestmark = pytest.mark.servers

GTIN = "4006381333931"
BUDGET = 40


@pytest.fixture(scope="module")
def two_servers(stack: Stack) -> Iterator[tuple[AppServer, AppServer]]:
    stack.ensure_up()
    servers = (stack.app(workers=2), stack.app(workers=2))
    try:
        for server in servers:
            server.start()
        yield servers
    finally:
        for server in servers:
            server.stop()


def client(server: AppServer, token: str) -> httpx.Client:
    return httpx.Client(base_url=server.url, timeout=20,
                        headers={"Authorization": f"Bearer {token}"})


def test_a_revocation_on_one_server_is_refused_by_the_next_request_on_both(
    stack: Stack, two_servers
) -> None:
    token = manage(stack.env, "create_api_key", "acme", "--name", "to revoke", "--scopes",
                   ALL_SCOPES, "--env", "development").strip()
    clients = [client(server, token) for server in two_servers]
    key_id = clients[0].get("/api/v1/me").json()["principal"]["id"]
    for c in clients * 3:  # every worker of both has served the key
        assert c.get("/api/v1/me").status_code == HTTPStatus.OK

    manage(stack.env, "revoke_api_key", key_id)

    for c in clients * 3:
        response = c.get("/api/v1/me")
        assert (response.status_code, response.json()["error"]) == (
            HTTPStatus.UNAUTHORIZED, "key_revoked")


def test_a_leak_report_to_one_server_revokes_on_both(stack: Stack, two_servers) -> None:
    token = manage(stack.env, "create_api_key", "acme", "--name", "to leak", "--scopes",
                   ALL_SCOPES, "--env", "development").strip()
    clients = [client(server, token) for server in two_servers]
    assert all(c.get("/api/v1/me").status_code == HTTPStatus.OK for c in clients)
    reported = httpx.post(f"{two_servers[1].url}/api/v1/leaked-credentials", json=[token])
    assert reported.status_code == HTTPStatus.ACCEPTED
    for c in clients * 2:
        assert c.get("/api/v1/me").json()["error"] == "key_revoked"


@pytest.fixture(scope="module")
def tiny_token(stack: Stack) -> str:
    """A workspace whose plan allows BUDGET writes a day and has no passport cap."""
    stack.pg.query(
        "INSERT INTO workspaces_plan (code, name, writes_per_day, passport_reads_per_day, "
        "active_keys_limit, passports_limit, overage_allowed, audit_retention_days) "
        "VALUES ('tiny', 'Tiny', %s, %s, 5, NULL, false, 30) RETURNING id",
        (BUDGET, BUDGET),
    )
    manage(stack.env, "create_workspace", "tiny", "--owner", OWNER, "--plan", "tiny")
    return manage(stack.env, "create_api_key", "tiny", "--name", "racer", "--scopes",
                  ALL_SCOPES, "--env", "development").strip()


def test_a_daily_budget_admits_exactly_n_across_two_servers(
    stack: Stack, two_servers, tiny_token: str
) -> None:
    attempts = BUDGET + 24
    clients = [client(server, tiny_token) for server in two_servers]
    start = threading.Barrier(16)

    def create(n: int) -> int:
        if n < 16:
            start.wait(timeout=30)  # the first 16 leave together
        response = clients[n % 2].post("/api/v1/passports", json={
            "gtin": GTIN, "serial_number": f"race-{n}", "product_name": "Racer",
        })
        return response.status_code

    with ThreadPoolExecutor(max_workers=16) as pool:
        statuses = Counter(pool.map(create, range(attempts)))

    assert statuses == {HTTPStatus.CREATED: BUDGET,
                        HTTPStatus.TOO_MANY_REQUESTS: attempts - BUDGET}, statuses
    stored = stack.pg.query(
        "SELECT count(*) FROM passports_passport p JOIN workspaces_workspace w "
        "ON p.workspace_id = w.id WHERE w.slug = 'tiny'"
    )
    assert stored == [(BUDGET,)]
    refused = clients[1].post("/api/v1/passports", json={
        "gtin": GTIN, "serial_number": "one-more", "product_name": "Racer"})
    assert refused.json()["error"] == "quota_exceeded"
    assert refused.headers["X-RateLimit-Remaining"] == "0"


def test_an_idempotency_key_sent_to_both_servers_executes_once(
    stack: Stack, two_servers
) -> None:
    clients = [client(server, stack.unlimited_token) for server in two_servers]
    outcomes: Counter[str] = Counter()
    for attempt in range(8):
        key = f"two-servers-{attempt}"
        body = {"gtin": GTIN, "serial_number": f"idem-{attempt}", "product_name": "Once"}
        start = threading.Barrier(2)

        def send(c: httpx.Client, key: str = key, body: dict = body,
                 start: threading.Barrier = start) -> httpx.Response:
            start.wait(timeout=30)
            return c.post("/api/v1/passports", json=body, headers={"Idempotency-Key": key})

        with ThreadPoolExecutor(max_workers=2) as pool:
            responses = list(pool.map(send, clients))

        created = [r for r in responses if r.status_code == HTTPStatus.CREATED]
        assert created, [r.text for r in responses]
        ids = {r.json()["id"] for r in created}
        assert len(ids) == 1  # a replay carries the first response's passport
        for response in responses:
            if response.status_code == HTTPStatus.CREATED:
                replayed = response.headers.get("Idempotent-Replayed") == "true"
                outcomes["replayed" if replayed else "executed"] += 1
            else:
                assert response.status_code == HTTPStatus.CONFLICT, response.text
                assert response.json()["error"] == "idempotency_key_in_use"
                outcomes["in flight (409)"] += 1
        assert stack.pg.query(
            "SELECT count(*) FROM passports_passport WHERE serial_number = %s",
            (f"idem-{attempt}",),
        ) == [(1,)]
    assert outcomes["executed"] == 8, outcomes
