"""What a flood of unknown, well-formed tokens from one address makes the database do (SPEC §5),
counted by PostgreSQL itself: our own cluster logs every statement (`log_statement = all`) while
gunicorn with two workers answers 10,000 unknown tokens, with Redis and without it (embedded)."""

from __future__ import annotations

import math
import re
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from http import HTTPStatus

import httpx
import psycopg
import pytest

from apikeys.tokens import generate_token
from gateway.failed_auth import FAILED_AUTH_LIMIT, UNKNOWN_LIMIT
from oauth.tokens import generate_access_token

from .conftest import Stack

pytestmark = pytest.mark.servers

TOKENS = 10_000
KEY_LOOKUP = re.compile(r'WHERE k\."digest" = ')
TOKEN_LOOKUP = re.compile(r'WHERE t\."token_checksum" = ')
# The second statement of a `gat_` lookup that finds no stored token: did it exist?
ISSUED_LOOKUP = re.compile(r'"oauth_issuedaccesstoken"\."token_checksum" = ')
NEW_ROWS = re.compile(r'SELECT .*"id" > ')
FILTER_READ = re.compile(r'SELECT "apikeys_apikey"\."id", "apikeys_apikey"\."digest" FROM')


def _log_statements(stack: Stack, value: str | None) -> None:
    with psycopg.connect(stack.pg.admin_dsn(), autocommit=True) as conn:
        if value is None:
            conn.execute("ALTER SYSTEM RESET log_statement")
        else:
            conn.execute(f"ALTER SYSTEM SET log_statement = '{value}'")
        conn.execute("SELECT pg_reload_conf()")


def _statements(stack: Stack, start: int) -> list[str]:
    text = (stack.pg.root / "log").read_text(errors="replace")[start:]
    return [line for line in text.splitlines() if "statement:" in line]


def _flood(base: str) -> Counter:
    tokens = [generate_token("development") if n % 2 else generate_access_token()
              for n in range(TOKENS)]
    local = threading.local()

    def send(token: str) -> tuple[int, str]:
        client = getattr(local, "client", None)
        if client is None:
            client = local.client = httpx.Client(base_url=base, timeout=20)
        response = client.get("/api/v1/me", headers={"Authorization": f"Bearer {token}"})
        return response.status_code, response.json()["error"]

    with ThreadPoolExecutor(max_workers=8) as pool:
        return Counter(pool.map(send, tokens))


@pytest.mark.parametrize("redis", [True, False], ids=["redis", "embedded"])
def test_ten_thousand_unknown_tokens_cause_a_bounded_number_of_lookups(
    up_stack: Stack, redis: bool
) -> None:
    env = {} if redis else {"REDIS_URL": ""}
    server = up_stack.app(workers=2, **env)
    server.start()
    try:
        # Both workers read their filters (one request each is enough; send a few).
        for _ in range(6):
            me = httpx.get(f"{server.url}/api/v1/me", timeout=20,
                           headers={"Authorization": f"Bearer {up_stack.unlimited_token}"})
            assert me.status_code == HTTPStatus.OK
        _log_statements(up_stack, "all")
        start = len((up_stack.pg.root / "log").read_text(errors="replace"))
        try:
            started, started_at = time.monotonic(), time.time()
            answers = _flood(server.url)
            seconds = time.monotonic() - started
            statements = _statements(up_stack, start)
            # The tenant's own key still works from the flooding address.
            me = httpx.get(f"{server.url}/api/v1/me", timeout=20,
                           headers={"Authorization": f"Bearer {up_stack.unlimited_token}"})
            assert me.status_code == HTTPStatus.OK
        finally:
            _log_statements(up_stack, None)
    finally:
        server.stop()

    lookups = sum(bool(KEY_LOOKUP.search(s) or TOKEN_LOOKUP.search(s)) for s in statements)
    issued = sum(bool(ISSUED_LOOKUP.search(s)) for s in statements)
    new_rows = sum(bool(NEW_ROWS.search(s)) for s in statements)
    rebuilds = sum(bool(FILTER_READ.search(s)) for s in statements)
    minutes = int(started_at + seconds) // 60 - int(started_at) // 60 + 1  # windows touched
    print(f"\n{'redis' if redis else 'embedded'}: {TOKENS} unknown tokens -> {dict(answers)}; "
          f"{lookups} lookups (+{issued} issued-token reads), {new_rows} new-row reads, "
          f"{rebuilds} filter rebuilds, in {seconds:.1f} s")
    assert sum(answers.values()) == TOKENS
    assert set(answers) <= {
        (HTTPStatus.UNAUTHORIZED, "invalid_credentials"),
        (HTTPStatus.UNAUTHORIZED, "invalid_token"),
        (HTTPStatus.TOO_MANY_REQUESTS, "rate_limited"),
    }
    refused = TOKENS - answers[(HTTPStatus.TOO_MANY_REQUESTS, "rate_limited")]
    # Per worker (2) and minute: one read of new rows per family (2) per second of flood.
    assert new_rows <= 2 * 2 * (math.ceil(seconds) + 1)
    assert issued <= lookups  # only a `gat_` lookup that found nothing reads it
    if redis:
        # Each miss is settled by one Redis MGET and at most a read of new rows a second: no
        # lookup. Past UNKNOWN_LIMIT a minute per worker, 429 (counted in memory).
        assert lookups == 0
        assert refused <= 2 * UNKNOWN_LIMIT * minutes
    else:
        # Per worker and minute: FAILED_AUTH_LIMIT uncertain lookups, and UNKNOWN_LIMIT unknown
        # tokens (certain after a read of new rows) answered 401.
        assert lookups <= 2 * FAILED_AUTH_LIMIT * minutes
        assert refused <= 2 * (FAILED_AUTH_LIMIT + UNKNOWN_LIMIT) * minutes
    assert rebuilds == 0  # a rebuild is on a timer (REBUILD_SECONDS), never caused by a token
