"""One PostgreSQL cluster and one redis-server of our own for the whole reliability run (they are
stopped and started by the tests, so they cannot be the suite's shared servers), migrated and
seeded once through the management commands, as an operator would."""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass

import httpx
import pytest

from tests.servers import AppServer, PostgresServer, RedisServer, app_env, manage

OWNER = "owner@acme.test"
OWNER_PASSWORD = "reliability-Owner-password-42"
ALL_SCOPES = "passports:read,passports:write,keys:read,audit:read"


@dataclass
class Stack:
    pg: PostgresServer
    redis: RedisServer
    env: dict[str, str]
    unlimited_token: str  # workspace `acme`, plan pro: no daily budgets
    metered_token: str  # workspace `metered`, plan free: budgets counted in Redis

    def app(self, workers: int = 2, **extra_env: str) -> AppServer:
        return AppServer(env={**self.env, **extra_env}, workers=workers)

    def ensure_up(self) -> None:
        """A test that failed half-way may have left a server stopped (or frozen)."""
        self.pg.thaw()
        if not self.pg.running():
            self.pg.start()
        if self.redis.process is None:
            self.redis.start()


@pytest.fixture(scope="session")
def stack() -> Iterator[Stack]:
    pg, redis = PostgresServer(), RedisServer()
    try:
        pg.init()
        pg.start()
        pg.create_database()
        redis.start()
        env = app_env(pg.url, redis.url)
        manage(env, "migrate", "--noinput")
        manage(env, "create_workspace", "acme", "--owner", OWNER, "--password", OWNER_PASSWORD,
               "--plan", "pro")
        manage(env, "create_workspace", "metered", "--owner", OWNER, "--plan", "free")
        unlimited = manage(env, "create_api_key", "acme", "--name", "load", "--scopes",
                           ALL_SCOPES, "--env", "development").strip()
        metered = manage(env, "create_api_key", "metered", "--name", "metered", "--scopes",
                         ALL_SCOPES, "--env", "development").strip()
        yield Stack(pg, redis, env, unlimited, metered)
    finally:
        redis.destroy()
        pg.destroy()


@pytest.fixture
def up_stack(stack: Stack) -> Stack:
    stack.ensure_up()
    return stack


def dashboard_login(base_url: str, email: str = OWNER, password: str = OWNER_PASSWORD
                    ) -> httpx.Client:
    """A client holding a dashboard session, signed in through the login form."""
    client = httpx.Client(base_url=base_url, timeout=10)
    page = client.get("/accounts/login/")
    csrf = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page.text).group(1)
    response = client.post(
        "/accounts/login/",
        data={"username": email, "password": password, "csrfmiddlewaretoken": csrf},
        headers={"Referer": f"{base_url}/accounts/login/"},
    )
    assert response.status_code == 302, response.text[:500]
    return client
