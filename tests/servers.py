"""Real servers for tests that must cross process boundaries: gunicorn on the test database."""

from __future__ import annotations

import os
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO
from urllib.parse import quote

from django.conf import settings
from django.db import connection

from tests.reliability.servers import free_port

ROOT = Path(__file__).resolve().parents[1]


def test_database_url() -> str:
    """DATABASE_URL of the database this test run uses (SQLite file or PostgreSQL)."""
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
    `output`: a file for the server's stdout and stderr (its log), instead of the test's."""
    port = free_port()
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
    proc = subprocess.Popen(
        [sys.executable, "-m", "gunicorn", "config.wsgi:application", "--workers", str(workers),
         "--bind", f"127.0.0.1:{port}", "--log-level", "warning"],
        cwd=ROOT, env=full_env, stdout=output, stderr=output,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                urllib.request.urlopen(f"{base}/api/v1/openapi.json", timeout=2).read()
                break
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError("gunicorn did not start") from None
                time.sleep(0.2)
        yield base
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
