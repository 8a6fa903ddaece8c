import os
import shutil
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from django.test import Client

from apikeys.models import ApiKey
from audit import signin
from core.context import Actor
from tests.factories import (
    PASSWORD,
    MembershipFactory,
    UserFactory,
    WorkspaceFactory,
    key_with_token,
    plan_named,
)
from tests.servers import RedisServer
from workspaces.models import Plan, Workspace
from workspaces.roles import Role

ROLES = [Role.OWNER, Role.ADMIN, Role.EDITOR, Role.VIEWER]


FLUSH_TIMEOUT_SECONDS = 120


@pytest.fixture(autouse=True, scope="session")
def _patient_flush_between_transactional_tests() -> Iterator[None]:
    """After each transactional test Django TRUNCATEs every table. That is the harness's own
    housekeeping, not the application's, so it is not held to the application's 1.5 s statement
    timeout and 2 s answer bound (config/settings.py): on a loaded machine a TRUNCATE of ~60
    tables can take longer, and a flush that fails leaves rows that break every later test
    (duplicate slugs). Within the flush's own transaction both are raised to 120 s; every
    statement of the tests themselves keeps the application's bounds."""
    from django.db.backends.postgresql.operations import DatabaseOperations

    original = DatabaseOperations.execute_sql_flush

    def execute_sql_flush(self, sql_list):
        self.connection.ensure_connection()
        raw = self.connection.connection
        bounded = getattr(raw, "answer_timeout", None)
        if bounded:
            raw.answer_timeout = FLUSH_TIMEOUT_SECONDS
        try:
            return original(
                self, [f"SET LOCAL statement_timeout = '{FLUSH_TIMEOUT_SECONDS}s'", *sql_list]
            )
        finally:
            if bounded and not raw.closed:
                raw.answer_timeout = bounded

    DatabaseOperations.execute_sql_flush = execute_sql_flush
    try:
        yield
    finally:
        DatabaseOperations.execute_sql_flush = original


@pytest.fixture(autouse=True)
def _force_login_is_a_recent_sign_in(monkeypatch) -> None:
    """`client.force_login(user)` stands for signing in just now: the session is stamped as the
    sign-in door stamps it, so sudo mode (workspaces/sudo.py) does not ask. Sudo tests move the
    clock past the window or drop the stamp (tests/workspaces/test_sudo.py)."""
    original = Client.force_login

    def force_login(self, user, backend=None) -> None:
        original(self, user, backend)
        session = self.session
        session[signin.RECENT_KEY] = time.time()
        session.save()

    monkeypatch.setattr(Client, "force_login", force_login)


def _sqlite_test_files() -> list[Path]:
    from django.conf import settings

    db = settings.DATABASES["default"]
    name = db.get("TEST", {}).get("NAME")
    if not name or not db["ENGINE"].endswith("sqlite3"):
        return []
    return [Path(f"{name}{suffix}") for suffix in ("", "-wal", "-shm", "-journal")]


def pytest_sessionstart(session) -> None:
    # SQLite's WAL side files outlive an interrupted run; replayed onto a new test database they
    # would corrupt it, so a run starts from none.
    for path in _sqlite_test_files():
        path.parent.mkdir(exist_ok=True)
        path.unlink(missing_ok=True)


def pytest_sessionfinish(session) -> None:
    for path in _sqlite_test_files():
        path.unlink(missing_ok=True)


@pytest.fixture(autouse=True)
def _fast_hashing_and_clean_cache(request, settings, django_db_blocker) -> Iterator[None]:
    # Argon2 is the product's hasher (tested in test_settings); MD5 keeps the suite fast.
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
    uses_db = request.node.get_closest_marker("django_db") is not None or bool(
        {"db", "transactional_db", "live_server"} & set(request.fixturenames)
    )
    from apikeys.keycache import key_cache
    from gateway.usage import usage_buffer
    from oauth.codesweep import code_sweeper

    # Usage is flushed explicitly in tests (usage_flush); a background thread writing to the
    # test database on its own schedule would race the tests and outlive them.
    usage_buffer.autoflush = False
    usage_buffer.discard()
    # Likewise the sweeper of expired authorization codes (its own test turns it on).
    code_sweeper.enabled = False
    key_cache.clear()  # this process's verified keys: rows of earlier tests are gone
    from oauth.tokencache import token_cache

    token_cache.clear()  # and verified OAuth access tokens
    if uses_db:  # the cache lives in the test database unless REDIS_URL is set
        from django.core.cache import cache

        with django_db_blocker.unblock():
            cache.clear()  # rate-limit counters and the like must not leak between tests
    # This process's credential filter and failed-auth counts: earlier tests' rows are gone, and
    # credentials created through the services during the test are added as they are created.
    from core.credfilter import credential_filter
    from gateway.failed_auth import failed_auth_clear

    credential_filter.clear(empty=True)
    failed_auth_clear()
    yield


@pytest.fixture
def own_redis(request, settings) -> Iterator[RedisServer]:
    """A redis-server of the test's own, used as the cache and the counters' backend (so the
    Redis code paths run in the SQLite pass too); the test may stop and start it. Parametrize it
    indirectly for a server that keeps its data across a restart or shorter client timeouts:
    `@pytest.mark.parametrize("own_redis", [{"persist": True, "timeout": 0.5}], indirect=True)`."""
    options = getattr(request, "param", {})
    server = RedisServer(persist=options.get("persist", False))
    server.start()
    timeout = options.get("timeout", 1)
    settings.REDIS_URL = server.url
    settings.CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": settings.REDIS_URL,
            "KEY_PREFIX": "gatehouse",
            "OPTIONS": {"socket_connect_timeout": timeout, "socket_timeout": timeout},
        }
    }
    try:
        yield server
    finally:
        server.destroy()


@pytest.fixture
def plan(db) -> Callable[[str], Plan]:
    return plan_named


@pytest.fixture
def workspace(db) -> Workspace:
    return WorkspaceFactory(slug="acme", name="Acme")


@pytest.fixture
def other_workspace(db) -> Workspace:
    return WorkspaceFactory(slug="globex", name="Globex")


@pytest.fixture
def members(workspace) -> dict[str, object]:
    """One user per role in `workspace`, keyed by role value."""
    return {
        role.value: MembershipFactory(
            workspace=workspace, role=role, user=UserFactory(email=f"{role.value}@acme.test")
        ).user
        for role in ROLES
    }


@pytest.fixture
def client_for(members) -> Callable[[str], Client]:
    """A logged-in test client for the member with `role`."""

    def make(role: str) -> Client:
        client = Client()
        client.force_login(members[role])
        return client

    return make


@pytest.fixture
def owner_client(client_for) -> Client:
    return client_for("owner")


@pytest.fixture
def password() -> str:
    return PASSWORD


# --- API keys and clients that send them ---------------------------------------------------------

@pytest.fixture
def make_key(workspace, members) -> Callable[..., tuple[ApiKey, str]]:
    """`make_key(scopes=[...], workspace=..., **apikey_create kwargs)` → (key, token), through
    `tests.factories.key_with_token`: in `workspace` (acme) by its admin unless told otherwise;
    in another workspace by the system unless `actor=` says who."""

    def make(
        scopes: list[str] | None = None, *, workspace: Workspace | None = None, **kwargs
    ) -> tuple[ApiKey, str]:
        if workspace is None:
            kwargs.setdefault("actor", Actor.for_user(members["admin"]))
        return key_with_token(workspace or default, scopes, **kwargs)

    default = workspace
    return make


@pytest.fixture
def api(make_key) -> Callable[..., Client]:
    """`api(token)`: a test client sending `Authorization: Bearer <token>` on every request."""

    def make(token: str | None = None, **headers) -> Client:
        if token is None:
            _key, token = make_key()
        return Client(headers={"Authorization": f"Bearer {token}", **headers})

    return make


@pytest.fixture
def token(make_key) -> str:
    return make_key()[1]


@pytest.fixture
def client_api(api, token) -> Client:
    """A client with an all-scopes key of `workspace` (acme)."""
    return api(token)


# --- Browser -----------------------------------------------------------------------------------

def chromium_path() -> str:
    path = os.environ.get("GATEHOUSE_CHROMIUM") or shutil.which("chromium")
    if not path:
        pytest.fail(
            "No Chromium for the browser tests: install Debian's 'chromium' "
            "(apt-get install chromium) or set GATEHOUSE_CHROMIUM; 'make test' tries both."
        )
    return path


@pytest.fixture(scope="session")
def browser() -> Iterator[object]:
    # Playwright's sync API runs an event loop; Django refuses ORM calls from async contexts,
    # which the live_server tests legitimately make between page actions.
    os.environ.setdefault("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(
            executable_path=chromium_path(),
            headless=True,
            args=["--no-sandbox", "--disable-background-networking", "--disable-gpu",
                  "--disable-component-update", "--disable-sync", "--no-first-run"],
        )
        yield browser
        browser.close()


@pytest.fixture
def page(browser, live_server) -> Iterator[object]:
    context = browser.new_context(base_url=live_server.url)
    context.grant_permissions(["clipboard-read", "clipboard-write"], origin=live_server.url)
    page = context.new_page()
    page.set_default_timeout(10_000)
    yield page
    context.close()


@pytest.fixture
def login(page) -> Callable[[str, str], None]:
    def do_login(email: str, password: str = PASSWORD) -> None:
        page.goto("/accounts/login/")
        page.get_by_label("Email").fill(email)
        page.get_by_label("Password").fill(password)
        page.get_by_role("button", name="Log in").click()
        page.wait_for_load_state()

    return do_login
