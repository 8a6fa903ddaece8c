"""Real servers for tests that must cross process boundaries, each on a spare loopback port:

- `AppServer`: gunicorn serving Gatehouse with a given environment, stoppable and restartable;
  `gunicorn()` is the context manager that serves it on pytest-django's test database (and the
  same cache), for tests of the project through a real server;
- `PostgresServer` (initdb into a temporary folder) and `RedisServer`: servers of our own for
  fault tests, stoppable, freezable and restartable mid-test. The reliability tests talk to the
  app over HTTP and read the state straight from their own PostgreSQL."""

from __future__ import annotations

import contextlib
import glob
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO
from urllib.parse import quote

import httpx
import psycopg

ROOT = Path(__file__).resolve().parents[1]
PEPPER = "reliability-tests-pepper-not-a-secret"
SECRET_KEY = "reliability-tests-secret-key-not-a-secret-0123456789abcdef"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_until(check, *, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            if check():
                return
        except Exception:  # not up yet
            pass
        if time.monotonic() > deadline:
            raise RuntimeError(f"{what} did not come up within {timeout} s")
        time.sleep(0.1)


def _pg_bin(name: str) -> str:
    found = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"))
    if found:
        return found[-1]
    path = shutil.which(name)
    if path is None:
        raise RuntimeError(f"PostgreSQL's {name} is not installed (apt-get install postgresql)")
    return path


@dataclass
class PostgresServer:
    """A throwaway PostgreSQL cluster owned by the `postgres` user when run as root (initdb
    refuses root), trust-authenticated on 127.0.0.1:<port>."""

    port: int = field(default_factory=free_port)
    root: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="gatehouse-pg-")))
    database: str = "gatehouse"

    @property
    def data(self) -> Path:
        return self.root / "data"

    @property
    def url(self) -> str:
        return f"postgres://postgres@127.0.0.1:{self.port}/{self.database}"

    def _run(self, *args: str) -> subprocess.CompletedProcess:
        command = list(args)
        if os.geteuid() == 0:
            command = ["runuser", "-u", "postgres", "--", *command]
        return subprocess.run(command, check=True, capture_output=True, text=True, timeout=120)

    def init(self) -> None:
        if os.geteuid() == 0:
            shutil.chown(self.root, "postgres")
        self._run(_pg_bin("initdb"), "-D", str(self.data), "-U", "postgres", "--auth=trust",
                  "--no-sync", "-E", "UTF8")

    def start(self) -> None:
        options = (f"-p {self.port} -k {self.root} -c listen_addresses=127.0.0.1 "
                   "-c fsync=off -c full_page_writes=off")
        self._run(_pg_bin("pg_ctl"), "-D", str(self.data), "-o", options,
                  "-l", str(self.root / "log"), "-w", "-t", "60", "start")

    def stop(self) -> None:
        """`fast`: the server ends every session (rolling back open transactions) and stops."""
        self._run(_pg_bin("pg_ctl"), "-D", str(self.data), "-m", "fast", "-w", "stop")

    def running(self) -> bool:
        return (self.data / "postmaster.pid").exists()

    def _family(self) -> list[int]:
        """This cluster's postmaster and its children (backends, background workers): the
        postmaster's pid from its own pid file, never anything found by name."""
        postmaster = int((self.data / "postmaster.pid").read_text().split()[0])
        children = subprocess.run(["pgrep", "-P", str(postmaster)], capture_output=True,
                                  text=True, check=False).stdout.split()
        return [postmaster, *map(int, children)]

    def freeze(self) -> list[int]:
        """SIGSTOP the cluster: connections stay open and the kernel still accepts and
        acknowledges bytes, but nothing answers (a hung host, not a stopped one)."""
        frozen = self._family()
        for pid in frozen:
            os.kill(pid, signal.SIGSTOP)
        self.frozen = frozen
        return frozen

    def thaw(self) -> None:
        for pid in getattr(self, "frozen", []):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGCONT)
        self.frozen = []

    def create_database(self) -> None:
        with psycopg.connect(self.admin_dsn("postgres"), autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{self.database}"')

    def admin_dsn(self, database: str | None = None) -> str:
        return (f"host=127.0.0.1 port={self.port} user=postgres "
                f"dbname={database or self.database} connect_timeout=5")

    def query(self, sql: str, params: tuple = ()) -> list[tuple]:
        with psycopg.connect(self.admin_dsn()) as conn:
            return conn.execute(sql, params).fetchall()

    def destroy(self) -> None:
        self.thaw()
        if self.running():
            with contextlib.suppress(subprocess.CalledProcessError):
                self._run(_pg_bin("pg_ctl"), "-D", str(self.data), "-m", "immediate", "-w",
                          "stop")
        shutil.rmtree(self.root, ignore_errors=True)


@dataclass
class RedisServer:
    """redis-server on a spare port. `persist`: an append-only file in a folder of its own, so a
    stop and start keeps the data (as a production Redis does); otherwise a restart is empty."""

    port: int = field(default_factory=free_port)
    process: subprocess.Popen | None = None
    persist: bool = False
    root: Path | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        binary = shutil.which("redis-server")
        if binary is None:
            raise RuntimeError("redis-server is not installed (apt-get install redis-server)")
        storage = ["--save", "", "--appendonly", "no"]
        if self.persist:
            if self.root is None:
                self.root = Path(tempfile.mkdtemp(prefix="gatehouse-redis-"))
            storage = ["--save", "", "--appendonly", "yes", "--appendfsync", "always",
                       "--dir", str(self.root)]
        self.process = subprocess.Popen(
            [binary, "--port", str(self.port), "--bind", "127.0.0.1", *storage,
             "--daemonize", "no", "--loglevel", "warning"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )

        def pong() -> bool:
            with socket.create_connection(("127.0.0.1", self.port), timeout=1) as s:
                s.sendall(b"PING\r\n")
                return s.recv(16).startswith(b"+PONG")

        wait_until(pong, timeout=15, what="redis-server")

    def stop(self) -> None:
        if self.process is not None:
            self.process.terminate()
            self.process.wait(timeout=15)
            self.process = None

    def destroy(self) -> None:
        if self.process is not None:
            self.process.kill()
            self.process.wait(timeout=15)
            self.process = None
        if self.root is not None:
            shutil.rmtree(self.root, ignore_errors=True)


def app_env(database_url: str, redis_url: str = "", **extra: str) -> dict[str, str]:
    env = {
        k: v for k, v in os.environ.items()
        if k not in {"DJANGO_SETTINGS_MODULE", "DATABASE_URL", "REDIS_URL"}
    }
    env.update({
        "DATABASE_URL": database_url,
        "REDIS_URL": redis_url,
        "GATEHOUSE_ENVIRONMENT": "development",
        "GATEHOUSE_KEY_PEPPER": PEPPER,
        "SECRET_KEY": SECRET_KEY,
        "DEBUG": "1",
        "LOG_LEVEL": "WARNING",
        **extra,
    })
    return env


def manage(env: dict[str, str], *args: str) -> str:
    """Run a management command against the servers `env` points at; its stdout."""
    result = subprocess.run(
        [sys.executable, "manage.py", *args], cwd=ROOT, env=env, capture_output=True, text=True,
        timeout=300,
    )
    if result.returncode != 0:
        raise RuntimeError(f"manage.py {' '.join(args)} failed:\n{result.stderr[-3000:]}")
    return result.stdout


@dataclass
class AppServer:
    """gunicorn serving Gatehouse with `env` (DATABASE_URL, REDIS_URL …) on a spare port.
    `output`: a file for the server's stdout and stderr (its log); otherwise a temporary file,
    read with `output()` and removed on `stop()`."""

    env: dict[str, str]
    workers: int = 2
    port: int = field(default_factory=free_port)
    process: subprocess.Popen | None = None
    log: Path | None = None
    sink: IO[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        command = [sys.executable, "-m", "gunicorn", "config.wsgi:application",
                   "--workers", str(self.workers), "--bind", f"127.0.0.1:{self.port}",
                   "--timeout", "30", "--graceful-timeout", "5", "--log-level", "warning"]
        if self.sink is not None:
            self.process = subprocess.Popen(command, cwd=ROOT, env=self.env, stdout=self.sink,
                                            stderr=self.sink)
        else:
            self.log = Path(tempfile.mkstemp(prefix="gatehouse-gunicorn-", suffix=".log")[1])
            with self.log.open("w") as out:
                self.process = subprocess.Popen(command, cwd=ROOT, env=self.env, stdout=out,
                                                stderr=subprocess.STDOUT)

        def up() -> bool:
            if self.process.poll() is not None:
                raise RuntimeError(f"gunicorn exited:\n{self.output()}")
            return httpx.get(f"{self.url}/api/v1/openapi.json", timeout=2).status_code == 200

        try:
            wait_until(up, timeout=60, what="gunicorn")
        except BaseException:
            self.stop()
            raise

    def output(self) -> str:
        return self.log.read_text(errors="replace") if self.log else ""

    def stop(self) -> None:
        """SIGTERM: a graceful stop."""
        if self.process is not None:
            self.process.terminate()
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=15)
            self.process = None
        if self.log:
            self.log.unlink(missing_ok=True)


# --- On the test database ----------------------------------------------------------------------

def test_database_url() -> str:
    """DATABASE_URL of the database this test run uses (SQLite file or PostgreSQL)."""
    from django.db import connection

    db = connection.settings_dict
    if db["ENGINE"].endswith("sqlite3"):
        return f"sqlite:///{Path(db['NAME']).resolve()}"
    auth = quote(db["USER"]) + (f":{quote(db['PASSWORD'])}" if db["PASSWORD"] else "")
    return f"postgres://{auth}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/{db['NAME']}"


@contextmanager
def gunicorn(*, workers: int = 2, env: dict[str, str] | None = None,
             output: IO[bytes] | None = None) -> Iterator[str]:
    """gunicorn serving the project on the test database and the same cache (REDIS_URL is
    inherited); yields its base URL and stops it (SIGTERM: a graceful stop) afterwards.
    `output`: a file for the server's stdout and stderr (its log), instead of a temporary one."""
    from django.conf import settings

    full_env = {
        **{k: v for k, v in os.environ.items() if k != "DJANGO_SETTINGS_MODULE"},
        "DATABASE_URL": test_database_url(),
        "GATEHOUSE_ENVIRONMENT": settings.GATEHOUSE_ENVIRONMENT,
        "GATEHOUSE_KEY_PEPPER": settings.GATEHOUSE_KEY_PEPPER,
        "SECRET_KEY": settings.SECRET_KEY,
        "DEBUG": "1",
        "LOG_LEVEL": "WARNING",
        **(env or {}),
    }
    server = AppServer(env=full_env, workers=workers, sink=output)
    server.start()
    try:
        yield server.url
    finally:
        server.stop()
