"""`manage.py notify_due` and `make run`'s script (scripts/run-dev) as an operator runs them."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from datetime import timedelta
from io import StringIO

import httpx
import pytest
from django.core.management import CommandError, call_command
from django.utils import timezone

from notifications.outbound import UrlRefused, parse_url
from tests.factories import key_with_token
from tests.servers import ROOT, free_port, wait_until

pytestmark = pytest.mark.django_db


def test_notify_due_reports_what_it_emitted(workspace, members) -> None:
    key_with_token(workspace, expires_at=timezone.now() + timedelta(days=3))
    out = StringIO()
    call_command("notify_due", stdout=out)
    assert out.getvalue().strip() == "notify_due: emitted key.expiring=1; requeued 0"
    out = StringIO()
    call_command("notify_due", stdout=out)
    assert out.getvalue().strip() == "notify_due: emitted none; requeued 0"


@pytest.mark.parametrize("interval", ["0", "-1", "1e9"])
def test_notify_due_refuses_a_bad_interval(interval) -> None:
    with pytest.raises(CommandError, match="--interval"):
        call_command("notify_due", "--schedule", "--interval", interval)


@pytest.mark.parametrize("url", ["https://exa\ud800mple.com/", "https://example.com/\udfff",
                                 "https://ex ample.com/", "\x00", "https://example.com\t/"])
def test_lone_surrogates_and_control_characters_are_refused(url) -> None:
    with pytest.raises(UrlRefused):
        parse_url(url)


def test_make_run_starts_the_worker_and_ctrl_c_stops_everything(tmp_path) -> None:
    """scripts/run-dev on a fresh SQLite file: runserver, db_worker and notify_due --schedule
    come up; SIGINT to the group (Ctrl-C) stops all three."""
    db = tmp_path / "run.sqlite3"
    env = {**{k: v for k, v in os.environ.items() if k != "DJANGO_SETTINGS_MODULE"},
           "DATABASE_URL": f"sqlite:///{db}", "REDIS_URL": "", "DEBUG": "1"}
    subprocess.run([sys.executable, "manage.py", "migrate", "--noinput", "-v", "0"], cwd=ROOT,
                   env=env, check=True, timeout=300)
    port = free_port()
    process = subprocess.Popen(
        ["scripts/run-dev"], cwd=ROOT, env={**env, "PY": sys.executable,
                                           "ADDR": f"127.0.0.1:{port}"},
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True, text=True,
    )
    try:
        wait_until(lambda: httpx.get(f"http://127.0.0.1:{port}/accounts/login/",
                                     timeout=2).status_code == 200,
                   timeout=90, what="runserver")
        children = subprocess.run(["pgrep", "-g", str(process.pid), "-af", "manage.py"],
                                  capture_output=True, text=True).stdout
        assert "db_worker" in children and "notify_due --schedule" in children
        assert "runserver" in children
        os.killpg(process.pid, signal.SIGINT)
        process.wait(timeout=30)
        time.sleep(0.5)
        left = subprocess.run(["pgrep", "-g", str(process.pid)], capture_output=True, text=True)
        assert left.stdout.strip() == ""
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=10)
