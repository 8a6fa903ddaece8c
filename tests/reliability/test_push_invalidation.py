"""Push invalidation with leases (core/leases.py, docs/architecture.md), with real processes:
gunicorn with two workers on a PostgreSQL and a redis-server of our own, revocations made by
another process (`manage.py`), clients hammering the API meanwhile.

What must hold: a request sent after a revocation returned is refused, whatever happens to the
workers' subscriptions — cut (`CLIENT KILL TYPE pubsub`), a subscriber thread that stops reading
(the pause file), messages that are malformed, duplicated or of another epoch, Redis stopped and
started; a revocation that cannot be confirmed says so; and a key that counts nothing makes no
Redis command at all while the leases are fresh (Redis MONITOR)."""

from __future__ import annotations

import json
import random
import re
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http import HTTPStatus
from pathlib import Path

import httpx
import pytest
import redis

from tests.servers import ROOT, AppServer, manage, wait_until

from .conftest import Stack

pytestmark = pytest.mark.servers

CREATE_KEYS = """
import os
from apikeys.services import apikey_create
from core.context import Actor, RequestContext
from workspaces.models import Workspace
slug, n = os.environ["PUSH_ARGS"].split("|")
workspace = Workspace.objects.get(slug=slug)
for i in range(int(n)):
    key, token = apikey_create(
        workspace=workspace, name=f"racer {i}", scopes=["passports:read"],
        environment="development", actor=Actor.system("test"), context=RequestContext(),
    )
    print(key.public_id, token)
"""

REVOKE_KEYS = """
import os, random, time
from apikeys.keycache import keycache_pending
from apikeys.models import ApiKey
from apikeys.services import apikey_revoke
from core.context import Actor, RequestContext
for public_id in os.environ["PUSH_ARGS"].split(","):
    time.sleep(random.uniform(0.05, 0.3))
    key = ApiKey.objects.get(public_id=public_id)
    apikey_revoke(key=key, actor=Actor.system("test"), context=RequestContext())
    print(public_id, repr(time.time()), keycache_pending(key), flush=True)
"""


def shell(stack: Stack, code: str, *args: str) -> subprocess.Popen:
    """`manage.py shell -c code` against the stack, `args` in $PUSH_ARGS (joined by |)."""
    return subprocess.Popen(
        [sys.executable, "manage.py", "shell", "-c", code],
        cwd=ROOT, env={**stack.env, "PUSH_ARGS": "|".join(args)}, stdout=subprocess.PIPE,
        stderr=subprocess.PIPE, text=True,
    )


def create_keys(stack: Stack, n: int, workspace: str = "acme") -> dict[str, str]:
    process = shell(stack, CREATE_KEYS, workspace, str(n))
    out, err = process.communicate(timeout=120)
    assert process.returncode == 0, err[-3000:]
    return dict(line.split() for line in out.splitlines() if line.startswith("key_"))


@pytest.fixture(scope="module")
def pause_file(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("push") / "pause"


@pytest.fixture(scope="module")
def server(stack: Stack, pause_file: Path) -> Iterator[AppServer]:
    stack.ensure_up()
    app = stack.app(workers=2, GATEHOUSE_CACHE_PUSH_PAUSE_FILE=str(pause_file))
    app.start()
    try:
        yield app
    finally:
        pause_file.unlink(missing_ok=True)
        app.stop()


@pytest.fixture
def live(server: AppServer, stack: Stack, pause_file: Path) -> AppServer:
    pause_file.unlink(missing_ok=True)
    stack.ensure_up()
    if server.process is None or server.process.poll() is not None:
        server.start()
    return server


def redis_of(stack: Stack) -> redis.Redis:
    return redis.Redis.from_url(stack.redis.url)


# --- Redis MONITOR -------------------------------------------------------------------------------

# What the subscriber threads send on their own (heartbeats, registrations, acknowledgements).
_LEASE_TRAFFIC = re.compile(r'"(MULTI|EXEC)"|gatehouse:leases:|gatehouse:\d+:heartbeat:')


class Monitor:
    """Redis MONITOR on a socket of its own: every command any client sends, as text lines."""

    def __init__(self, port: int) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=5)
        self.sock.sendall(b"MONITOR\r\n")
        self.lines: list[str] = []
        self.buffer = b""
        self.thread = threading.Thread(target=self._read, daemon=True)
        self.stopped = False
        self.thread.start()
        wait_until(lambda: any("+OK" in line for line in self.lines), timeout=5, what="MONITOR")
        self.marker = redis.Redis(port=port)  # one connection, opened before anything counts
        self.mark()

    def _read(self) -> None:
        while not self.stopped:
            try:
                chunk = self.sock.recv(65536)
            except OSError:
                return
            if not chunk:
                return
            self.buffer += chunk
            *complete, self.buffer = self.buffer.split(b"\r\n")
            self.lines.extend(line.decode("utf-8", "replace") for line in complete)

    def mark(self) -> int:
        """Everything up to now is seen: a PING through another connection, waited for."""
        token = f"monitor-mark-{random.getrandbits(32)}"
        self.marker.echo(token)
        wait_until(lambda: any(token in line for line in self.lines), timeout=5, what="mark")
        return len(self.lines)

    def requests_commands(self, since: int, until: int) -> list[str]:
        return [
            line for line in self.lines[since:until]
            if line.startswith("+") and "monitor-mark-" not in line and line != "+OK"
            and not _LEASE_TRAFFIC.search(line)
        ]

    def close(self) -> None:
        self.stopped = True
        self.sock.close()


def me(client: httpx.Client) -> httpx.Response:
    return client.get("/api/v1/me")


def test_an_unlimited_keys_requests_make_no_redis_command(live: AppServer, stack: Stack) -> None:
    """acme is on the pro plan (no daily budget on /me) and the key has no rate limit: with the
    leases fresh, neither worker asks Redis anything. A metered key still makes one EVALSHA."""
    monitor = Monitor(stack.redis.port)
    try:
        unlimited = httpx.Client(base_url=live.url, timeout=10,
                                 headers={"Authorization": f"Bearer {stack.unlimited_token}"})

        def quiet_batch() -> bool:  # both workers have the key cached under a fresh lease
            start = monitor.mark()
            for _ in range(20):
                assert me(unlimited).status_code == HTTPStatus.OK
            return not monitor.requests_commands(start, monitor.mark())

        wait_until(quiet_batch, timeout=30, what="both workers leased")
        start = monitor.mark()
        for _ in range(100):
            assert me(unlimited).status_code == HTTPStatus.OK
        assert monitor.requests_commands(start, monitor.mark()) == []

        # Sanity: MONITOR sees request traffic — a passport read is counted against the plan's
        # daily budget of a free workspace, one EVALSHA each.
        metered = httpx.Client(base_url=live.url, timeout=10,
                               headers={"Authorization": f"Bearer {stack.metered_token}"})
        for _ in range(3):
            metered.get("/api/v1/passports")
        start = monitor.mark()
        for _ in range(10):
            assert metered.get("/api/v1/passports").status_code == HTTPStatus.OK
        seen = monitor.requests_commands(start, monitor.mark())
        assert [line.split('"')[1] for line in seen].count("EVALSHA") == 10
    finally:
        monitor.close()


# --- revocations racing clients ------------------------------------------------------------------


@dataclass
class Race:
    answers: dict[str, list[tuple[float, int, str]]] = field(default_factory=dict)
    returned: dict[str, float] = field(default_factory=dict)
    unconfirmed: list[str] = field(default_factory=list)


def race(
    server: AppServer, stack: Stack, *, keys: int = 6, chaos: Callable[[], None] | None = None
) -> Race:
    """`keys` keys hammered by one client thread each while another process revokes them one by
    one; `chaos` runs in a loop meanwhile. Returns every answer with its send time."""
    created = create_keys(stack, keys)
    result = Race(answers={public_id: [] for public_id in created})
    done = threading.Event()

    def hammer(public_id: str, token: str) -> None:
        with httpx.Client(base_url=server.url, timeout=20,
                          headers={"Authorization": f"Bearer {token}"}) as client:
            while not done.is_set():
                sent = time.time()
                try:
                    response = me(client)
                except httpx.HTTPError:  # a worker killed mid-request (the test that does so)
                    continue
                error = "" if response.status_code == 200 else response.json().get("error", "")
                result.answers[public_id].append((sent, response.status_code, error))

    def troublemaker() -> None:
        while chaos is not None and not done.is_set():
            chaos()
            time.sleep(0.05)

    threads = [threading.Thread(target=hammer, args=item) for item in created.items()]
    threads.append(threading.Thread(target=troublemaker))
    for thread in threads:
        thread.start()
    try:
        time.sleep(0.5)  # every key served (and cached) before the first revocation
        revoker = shell(stack, REVOKE_KEYS, ",".join(created))
        out, err = revoker.communicate(timeout=240)
        assert revoker.returncode == 0, err[-3000:]
        for line in out.splitlines():
            if line.startswith("key_"):
                public_id, at, pending = line.split()
                result.returned[public_id] = float(at)
                if pending == "True":
                    result.unconfirmed.append(public_id)
        time.sleep(0.3)  # requests sent after the last return
    finally:
        done.set()
        for thread in threads:
            thread.join(timeout=30)
    assert set(result.returned) == set(created)
    return result


def assert_nothing_accepted_after_return(result: Race) -> None:
    for public_id, answers in result.answers.items():
        returned = result.returned[public_id]
        before = [status for sent, status, _ in answers if sent < returned]
        after = [(status, error) for sent, status, error in answers if sent > returned]
        assert HTTPStatus.OK in before, f"{public_id} was never served before its revocation"
        assert after, f"no request of {public_id} was sent after its revocation returned"
        assert set(after) == {(HTTPStatus.UNAUTHORIZED, "key_revoked")}, (public_id, after[:5])
        assert all(status < 500 for _, status, _ in answers)


def test_revocations_racing_clients_accept_nothing_after_they_return(
    live: AppServer, stack: Stack
) -> None:
    result = race(live, stack, keys=6)
    assert_nothing_accepted_after_return(result)
    assert result.unconfirmed == []


def test_cut_subscriptions_accept_nothing_after_a_revocation_returns(
    live: AppServer, stack: Stack
) -> None:
    """Every worker's subscription is killed by Redis over and over while keys are revoked."""
    client = redis_of(stack)
    result = race(live, stack, keys=5, chaos=lambda: client.client_kill_filter(_type="pubsub"))
    assert_nothing_accepted_after_return(result)


def test_malformed_duplicate_and_old_epoch_messages_change_nothing_unsafe(
    live: AppServer, stack: Stack
) -> None:
    client = redis_of(stack)
    db = 0
    channel = f"gatehouse:{db}:invalidations"

    def bad_messages() -> None:
        workers = [w.decode() for w in client.smembers("gatehouse:leases:workers")]
        client.publish(channel, b"\xff\xfe not json")
        client.publish(channel, json.dumps({"v": 1, "kind": "inv", "id": "x" * 10}))
        client.publish(channel, json.dumps([1, 2, 3]))
        client.publish(channel, "[" * 5000)  # deep JSON
        client.publish(channel, json.dumps(
            {"v": 1, "kind": "inv", "id": "old", "epoch": "an-older-epoch", "markers": []}))
        for worker in workers:  # an old heartbeat again, one from the future, a forged one
            beat = f"gatehouse:{db}:heartbeat:{worker}"
            client.publish(beat, json.dumps({"v": 1, "kind": "hb", "epoch": "?", "seq": 1}))
            client.publish(beat, json.dumps({"v": 1, "kind": "hb", "epoch": "?", "seq": 10**9}))
            client.publish(beat, "\x00")

    result = race(live, stack, keys=5, chaos=bad_messages)
    assert_nothing_accepted_after_return(result)
    # The workers are still fine afterwards.
    unlimited = httpx.Client(base_url=live.url, timeout=10,
                             headers={"Authorization": f"Bearer {stack.unlimited_token}"})
    assert all(me(unlimited).status_code == HTTPStatus.OK for _ in range(10))


def test_a_paused_subscriber_thread_accepts_nothing_after_a_revocation_returns(
    live: AppServer, stack: Stack, pause_file: Path
) -> None:
    """Both workers' subscriber threads stop reading (as a partitioned worker hears nothing):
    nobody acknowledges, so each revocation waits the leases out, and after it returns the
    workers confirm every request with Redis."""
    pause_file.touch()
    try:
        result = race(live, stack, keys=3)
    finally:
        pause_file.unlink()
    assert_nothing_accepted_after_return(result)


def test_a_worker_that_starts_while_revocations_run_serves_nothing_stale(
    live: AppServer, stack: Stack
) -> None:
    """The server's workers are killed and replaced by gunicorn while keys are revoked: a new
    worker subscribes before it leases anything, and its cache starts empty."""
    def kill_a_worker() -> None:
        children = subprocess.run(
            ["pgrep", "-P", str(live.process.pid)], capture_output=True, text=True
        ).stdout.split()
        if children and random.random() < 0.1:
            subprocess.run(["kill", "-9", random.choice(children)], check=False)

    result = race(live, stack, keys=4, chaos=kill_a_worker)
    for public_id, answers in result.answers.items():
        returned = result.returned[public_id]
        after = {(status, error) for sent, status, error in answers if sent > returned}
        # A killed worker's connection fails (no answer is recorded for it); none accepts.
        assert (HTTPStatus.OK, "") not in after, public_id


def test_redis_stopped_and_started(live: AppServer, stack: Stack) -> None:
    """Redis goes away: a revocation cannot be confirmed and says so (exit status 3 and the
    warning), the workers read the key from the database and refuse it; Redis comes back
    empty, and the workers subscribe again and keep refusing it."""
    (public_id, token), = create_keys(stack, 1).items()
    client = httpx.Client(base_url=live.url, timeout=20,
                          headers={"Authorization": f"Bearer {token}"})
    assert all(me(client).status_code == HTTPStatus.OK for _ in range(10))
    stack.redis.stop()
    try:
        revoked = subprocess.run(
            [sys.executable, "manage.py", "revoke_api_key", public_id], cwd=ROOT,
            env=stack.env, capture_output=True, text=True, timeout=120,
        )
        assert revoked.returncode == 3, revoked.stderr
        assert "Redis could not be reached" in revoked.stderr
        for _ in range(6):
            response = me(client)
            assert (response.status_code, response.json()["error"]) == (
                HTTPStatus.UNAUTHORIZED, "key_revoked")
    finally:
        stack.redis.start()
    for _ in range(6):
        assert me(client).json()["error"] == "key_revoked"
    unlimited = httpx.Client(base_url=live.url, timeout=10,
                             headers={"Authorization": f"Bearer {stack.unlimited_token}"})
    wait_until(lambda: me(unlimited).status_code == HTTPStatus.OK, timeout=20, what="served")
    # and the workers hold leases again: a revocation is acknowledged, not waited out
    (other_id, other_token), = create_keys(stack, 1).items()
    other = httpx.Client(base_url=live.url, timeout=10,
                         headers={"Authorization": f"Bearer {other_token}"})
    assert all(me(other).status_code == HTTPStatus.OK for _ in range(6))
    manage(stack.env, "revoke_api_key", other_id)
    assert all(me(other).json()["error"] == "key_revoked" for _ in range(6))
