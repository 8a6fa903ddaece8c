"""The benchmark harness (`bench/run.py`): its refusals, its cleanup and its parsing.

Nothing here starts a benchmark: each test stops the harness at the door it checks. `bench.run`
imports only the standard library at the top, so these run without the bench extras (DRF)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import pytest

from bench import run as harness

ROOT = Path(__file__).resolve().parents[2]
PG = os.environ.get("DATABASE_URL", "")
needs_postgres = pytest.mark.skipif(
    not PG.startswith(("postgres://", "postgresql://")), reason="needs DATABASE_URL=postgres://..."
)
needs_redis = pytest.mark.skipif(not os.environ.get("REDIS_URL"), reason="needs REDIS_URL")


def bench_run(*args: str, **env: str) -> subprocess.CompletedProcess:
    """`python -m bench.run` as `make bench` runs it, with `env` over this environment."""
    return subprocess.run(
        [sys.executable, "-m", "bench.run", *args], cwd=ROOT, capture_output=True, text=True,
        env={**os.environ, **env}, timeout=60, check=False,
    )


def test_unreachable_postgres_redis_and_missing_wrk_are_each_named() -> None:
    result = bench_run(
        "--wrk", "/nonexistent/wrk",
        DATABASE_URL="postgres://postgres@127.0.0.1:1/postgres",
        REDIS_URL="redis://127.0.0.1:1/9",
    )
    assert result.returncode == 1
    assert "bench: cannot run:" in result.stderr
    assert "wrk not found at '/nonexistent/wrk'" in result.stderr
    assert "cannot reach PostgreSQL at 127.0.0.1:1" in result.stderr
    assert "cannot reach Redis at redis://127.0.0.1:1/9" in result.stderr
    assert "cannot reach Redis at redis://127.0.0.1:1/10" in result.stderr
    assert "Traceback" not in result.stderr
    assert not list((ROOT / "bench" / "results").glob("*.tmp"))


def test_sqlite_is_refused_with_the_reason() -> None:
    result = bench_run(
        "--wrk", sys.executable, DATABASE_URL="sqlite:///bench.sqlite3",
        REDIS_URL="redis://127.0.0.1:1/9",
    )
    assert result.returncode == 1
    assert "the benchmark runs on PostgreSQL" in result.stderr
    assert not (ROOT / "bench.sqlite3").exists()


def test_a_password_in_database_url_is_not_printed() -> None:
    result = bench_run(
        "--wrk", sys.executable, DATABASE_URL="sqlite://user:hunter2secret@host/x",
        REDIS_URL="redis://:redispass99@127.0.0.1:1/9",
    )
    assert result.returncode == 1
    assert "hunter2secret" not in result.stderr + result.stdout
    assert "redispass99" not in result.stderr + result.stdout


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--rounds", "0"], "--rounds and --seconds must be at least 1"),
        (["--only", "apikey,nonsense"], "unknown scenario(s) nonsense"),
    ],
)
def test_bad_options_are_refused(args, message) -> None:
    result = bench_run(*args, "--wrk", "/nonexistent/wrk")
    assert result.returncode != 0
    assert message in result.stderr


@needs_postgres
def test_an_existing_database_is_never_touched() -> None:
    """The harness creates its databases; one that already exists (someone's, or a leftover) is
    refused, and left exactly as it was."""
    name = f"gatehouse_bench_existing_{os.getpid()}"
    with harness.admin_connect(PG) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    own = urlunsplit(urlsplit(PG)._replace(path=f"/{name}"))
    try:
        import psycopg

        with psycopg.connect(own, autocommit=True) as conn:
            conn.execute("CREATE TABLE precious (n int)")
            conn.execute("INSERT INTO precious VALUES (42)")
        with pytest.raises(harness.BenchError, match=f"database {name} already exists"):
            harness.create_database(PG, name)
        with psycopg.connect(own, autocommit=True) as conn:
            assert conn.execute("SELECT n FROM precious").fetchall() == [(42,)]
    finally:
        harness.drop_database(PG, name)


@needs_postgres
def test_databases_are_dropped_when_a_run_fails(monkeypatch, capsys) -> None:
    """Whatever stops a run after its databases exist, they are dropped and its Redis
    databases emptied."""
    cleared = []
    monkeypatch.setenv("DATABASE_URL", PG)
    monkeypatch.setenv("REDIS_URL", "redis://127.0.0.1:6379/9")
    monkeypatch.setattr(harness, "check_prerequisites", lambda *a: sys.executable)
    monkeypatch.setattr(harness, "clear_redis", cleared.append)

    def prepare_fails(envs):
        names = [urlsplit(env["DATABASE_URL"]).path.strip("/") for env, _h in envs.values()]
        assert set(names) == set(existing())  # created, with the names the harness chose
        harness.fail("seeding failed (simulated)")

    def existing() -> list[str]:
        with harness.admin_connect(PG) as conn:
            rows = conn.execute(
                "SELECT datname FROM pg_database WHERE datname LIKE %s",
                [f"gatehouse_bench_{os.getpid()}%"],
            ).fetchall()
        return [row[0] for row in rows]

    monkeypatch.setattr(harness, "prepare", prepare_fails)
    assert harness.main(["--rounds", "1", "--seconds", "1"]) == 1
    assert "bench: seeding failed (simulated)" in capsys.readouterr().err
    assert existing() == []
    assert cleared == ["redis://127.0.0.1:6379/9", "redis://127.0.0.1:6379/10"]


@needs_redis
def test_a_redis_database_with_keys_is_refused() -> None:
    import redis

    url = os.environ["REDIS_URL"]
    client = redis.Redis.from_url(url)
    client.set("gatehouse-bench-test:occupied", "1", ex=60)
    try:
        with pytest.raises(harness.BenchError, match="is not empty"):
            harness.check_redis(url)
    finally:
        client.delete("gatehouse-bench-test:occupied")


WRK_OUTPUT = """\
Running 10s test @ http://127.0.0.1:40000/api/v1/passports/psp_x
  2 threads and 16 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency    10.28ms    5.12ms  96.24ms   92.45%
    Req/Sec   780.21    120.86     1.08k    66.50%
  Latency Distribution
     50%    9.62ms
     75%   12.52ms
     90%   16.10ms
     99%    1.20s\x20
  15603 requests in 10.01s, 3.07MB read
  Socket errors: connect 0, read 2, write 0, timeout 1
  Non-2xx or 3xx responses: 7
Requests/sec:   1558.77
Transfer/sec:    313.80KB
"""


def test_wrk_output_is_read_from_the_latency_distribution() -> None:
    # "66.50%" ends the Req/Sec line just before "Latency Distribution": a loose pattern for
    # "50%" read the next word ("Latency") as the median. wrk pads seconds with a space.
    assert harness.parse_wrk(WRK_OUTPUT) == {
        "requests": 15603, "rps": 1558.77, "p50_ms": 9.62, "p99_ms": 1200.0, "non_2xx": 7,
        "socket_errors": 3,
    }
    with pytest.raises(harness.BenchError, match="could not read wrk's output"):
        harness.parse_wrk("unable to connect to 127.0.0.1:1 Connection refused")


def test_results_describe_scenarios_without_their_credentials() -> None:
    seed = {"passport_id": "psp_1", "write_passport_id": "psp_w", "workspace_id": 1,
            "token": "gk_prod_SECRETAPIKEY", "capped_token": "gk_prod_SECRETCAPPED",
            "oauth_token": "gat_SECRETACCESSTOKEN", "peer_token": "PEER.SECRET",
            "write_rows_ids": [f"psp_r{n}" for n in range(8)],
            "unlimited_token": "gk_prod_SECRETUNLIMITED",
            "unlimited_oauth_token": "gat_SECRETUNLIMITED", "unlimited_passport_id": "psp_u"}
    hist = {"passport_id": "psp_2", "token": "gk_prod_SECRETHISTORY"}
    ports = {"main": 1, "history": 2, "unmetered": 3, "uncached": 4, "main8": 5}
    scenarios = harness.build_scenarios(ports, seed, hist)
    assert [s.name for s in scenarios] == harness.SCENARIO_NAMES
    written = json.dumps({s.name: s.describe() for s in scenarios})
    assert "SECRET" not in written
    assert json.loads(written)["garbage"] == {
        "method": "GET", "path": "/api/v1/passports/psp_1", "scheme": "Bearer", "expect": 401,
        "paths": 1,
    }
    assert json.loads(written)["write"] == {
        "method": "PATCH", "path": "/api/v1/passports/psp_w", "scheme": "Bearer", "expect": 200,
        "paths": 1,
    }
    assert json.loads(written)["write_8w"] == {
        "method": "PATCH", "path": "/api/v1/passports/psp_r0", "scheme": "Bearer", "expect": 200,
        "paths": 8,
    }
    assert json.loads(written)["write_baseline"]["scheme"] is None
    assert {s.name: s.url.split("/")[2] for s in scenarios}["write_8w"] == "127.0.0.1:5"
    assert all("SECRET" not in s.url for s in scenarios)


def test_results_name_the_commit_they_measured() -> None:
    head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=harness.ROOT,
                          capture_output=True, text=True, check=True).stdout.strip()
    version = harness.code_version()
    assert version["commit"] == head
    assert isinstance(version["modified"], bool)
