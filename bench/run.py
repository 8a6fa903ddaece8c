"""`make bench`: Gatehouse against the no-auth baseline and the DRF peer, interleaved, in one run.

What it does (docs/PERFORMANCE.md explains the figures):
1. checks wrk (installs Debian's package when missing and root), PostgreSQL and Redis, and exits
   1 with a message when one is unavailable;
2. creates two dedicated databases on the PostgreSQL server of `DATABASE_URL`
   (`gatehouse_bench_<pid>` and `…_history`), refusing to touch one that already exists: the
   database named in `DATABASE_URL` itself is never used. Migrates and seeds them
   (`bench/seed.py`, both at once) and drops them at the end, whatever happens;
3. uses two Redis databases (`REDIS_URL`'s, default 9, and the next one), refusing ones that
   are not empty, and deletes its keys at the end;
4. serves each database with gunicorn (2 sync workers, fixed settings below) on loopback, plus a
   third server on the main database with metering off (`BENCH_UNMETERED=1`: the gateway
   middleware without its metering steps, bench/middleware.py) and a fourth
   with the API key cache off (`GATEHOUSE_KEY_CACHE=0`: the key row read on every request);
5. checks every scenario answers as expected, warms every worker, then runs every scenario for
   `--seconds` per round, `--rounds` times, interleaved (A B C … A B C …) so that drift on a
   shared machine hits every scenario alike;
6. times the dashboard's key list and audit log and the API's lists at 10k keys / 1M events;
7. writes `bench/results/<date>.json` (no credentials) and prints requests/s, p50, p99, the
   rounds' spread and the target ratios.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import secrets
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlencode, urlsplit, urlunsplit

ROOT = Path(__file__).resolve().parent.parent
PYTHON = sys.executable
WORKERS = 2  # gunicorn sync workers: one per core on the reference machine (2 vCPU)
WORKERS_8 = 8  # the `write_8w` server: where writes of one workspace would queue on one row
CONNECTIONS = 16  # wrk connections, over THREADS threads
THREADS = 2
WARMUP_SECONDS = 2
DEFAULT_DATABASE_URL = "postgres://postgres@127.0.0.1:5432/postgres"
DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/9"
# Refused from its shape alone: the gateway must answer it without any I/O.
GARBAGE_TOKEN = "gk_prod_not-a-real-key"
FIRST_BYTE_TARGET_MS = 150.0

TARGETS = [
    # (label, numerator, denominator, minimum)
    ("apikey / baseline", "apikey", "baseline", 0.80),
    ("apikey / peer", "apikey", "peer", 1.3),
    ("garbage / apikey", "garbage", "apikey", 1.5),
    ("history / apikey", "history", "apikey", 0.90),
    ("metering cost: apikey / apikey_unmetered", "apikey", "apikey_unmetered", 0.90),
    # Not targets (None: reported, not judged): what the per-process key cache buys, and
    # the best any gateway making one Redis round trip per request could do against baseline.
    ("key cache: apikey / apikey_uncached", "apikey", "apikey_uncached", None),
    ("one Redis round trip: floor / baseline", "floor", "baseline", None),
    ("the gateway beyond it: apikey / floor", "apikey", "floor", None),
    # Issue 20.
    ("apikey_unlimited / baseline", "apikey_unlimited", "baseline", 0.90),
    ("apikey_unlimited / peer", "apikey_unlimited", "peer", 1.5),
    ("oauth_unlimited / apikey_unlimited", "oauth_unlimited", "apikey_unlimited", 0.90),
    ("oauth / apikey", "oauth", "apikey", 0.90),
    ("write / write_baseline", "write", "write_baseline", 0.60),
    ("write_rows / write", "write_rows", "write", None),
    ("write_8w / write_rows", "write_8w", "write_rows", None),
    # Issue 19: a `tools/call` of get_passport at /mcp against the same read at /api/v1.
    ("mcp_read / apikey", "mcp_read", "apikey", 0.60),
    # Issue 16: a key with its own daily cap and credits, against the same key without.
    ("capped / apikey", "capped", "apikey", None),
]


class BenchError(Exception):
    """A condition the harness cannot run under; its message is printed and the exit code is 1."""


def fail(message: str) -> None:
    raise BenchError(message)


# --- Prerequisites ---------------------------------------------------------------------------


def ensure_wrk(explicit: str | None) -> str:
    """The wrk binary: `--wrk`/`$WRK` when given (never installed then), else from PATH,
    else Debian's package installed with apt-get when running as root."""
    if explicit:
        if shutil.which(explicit) is None:
            fail(f"wrk not found at {explicit!r} (from --wrk or $WRK).")
        return shutil.which(explicit) or explicit
    path = shutil.which("wrk")
    if path:
        return path
    if os.geteuid() == 0 and shutil.which("apt-get"):
        print("wrk is missing: installing Debian's package...", flush=True)
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        subprocess.run(["apt-get", "update", "-qq"], check=False, capture_output=True, env=env)
        subprocess.run(
            ["apt-get", "install", "-y", "-qq", "wrk"], check=False, capture_output=True, env=env
        )
        path = shutil.which("wrk")
    if not path:
        fail("wrk is not installed and could not be installed; install it (apt-get install wrk) "
             "or point --wrk at it.")
    return path


def redacted(url: str) -> str:
    """A URL fit for a message: the password, if any, replaced."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.replace(f":{parts.password}@", ":***@")
    return urlunsplit(parts._replace(netloc=netloc))


def admin_url(base_url: str) -> str:
    return urlunsplit(urlsplit(base_url)._replace(path="/postgres"))


def database_url(base_url: str, name: str) -> str:
    return urlunsplit(urlsplit(base_url)._replace(path=f"/{name}"))


def admin_connect(base_url: str):
    import psycopg

    parts = urlsplit(base_url)
    try:
        return psycopg.connect(admin_url(base_url), autocommit=True, connect_timeout=3)
    except psycopg.Error as exc:
        first_line = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        fail(f"cannot reach PostgreSQL at {parts.hostname}:{parts.port or 5432} "
             f"({first_line}); set DATABASE_URL to a server you can create databases on.")


def check_database_url(base_url: str) -> None:
    if urlsplit(base_url).scheme not in {"postgres", "postgresql"}:
        fail(f"the benchmark runs on PostgreSQL; DATABASE_URL is {redacted(base_url)!r}. "
             "Set DATABASE_URL=postgres://user@host:5432/any (the harness creates its own "
             "databases on that server).")
    with admin_connect(base_url) as conn:
        conn.execute("SELECT 1")


def create_database(base_url: str, name: str) -> str:
    """Create `name` and return its URL; refuse (BenchError) if it already exists, so the harness
    never seeds, measures or drops a database it did not create."""
    with admin_connect(base_url) as conn:
        exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [name]).fetchone()
        if exists:
            fail(f"database {name} already exists; the harness only uses databases it creates "
                 "(and drops). Drop it yourself if it is a leftover of an interrupted run.")
        conn.execute(f'CREATE DATABASE "{name}"')
    return database_url(base_url, name)


def drop_database(base_url: str, name: str) -> None:
    with admin_connect(base_url) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def redis_db_url(url: str, offset: int) -> str:
    """The URL of the database `offset` after the one `url` names (`/9` → `/10`)."""
    parts = urlsplit(url)
    db = parts.path.strip("/") or "0"
    if not db.isdigit():
        fail(f"REDIS_URL must end with a database number (redis://host:6379/9), not "
             f"{redacted(url)!r}.")
    return urlunsplit(parts._replace(path=f"/{int(db) + offset}"))


def check_redis(url: str) -> None:
    """Reachable and empty: the harness deletes every key of its Redis databases at the end."""
    import redis

    if urlsplit(url).scheme not in {"redis", "rediss"}:
        fail(f"REDIS_URL must be redis://host:port/db, not {redacted(url)!r}.")
    try:
        size = redis.Redis.from_url(url, socket_connect_timeout=2, socket_timeout=2).dbsize()
    except Exception as exc:
        fail(f"cannot reach Redis at {redacted(url)} ({exc}); set REDIS_URL to a Redis server "
             "with two empty databases (the one named and the next).")
    if size:
        fail(f"Redis database {redacted(url)} is not empty ({size} keys); the harness only uses "
             "empty ones (it deletes their keys at the end). Point REDIS_URL at another "
             "database number.")


def clear_redis(url: str) -> None:
    import redis

    try:
        redis.Redis.from_url(url, socket_connect_timeout=2).flushdb()
    except Exception as exc:  # cleanup must not hide the run's own outcome
        print(f"bench: could not empty {redacted(url)}: {exc}", file=sys.stderr)


def check_prerequisites(wrk: str | None, base_db: str, redis_urls: list[str]) -> str:
    """wrk, PostgreSQL and Redis, each checked whatever the others' outcome, so one message
    names every problem. Returns the wrk binary."""
    problems = []
    for check, arg in ((ensure_wrk, wrk), (check_database_url, base_db),
                       *((check_redis, url) for url in redis_urls)):
        try:
            found = check(arg)
        except BenchError as exc:
            problems.append(str(exc))
        else:
            wrk = found if check is ensure_wrk else wrk
    if problems:
        fail("cannot run:\n  - " + "\n  - ".join(problems))
    return wrk


# --- Servers ---------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def bench_env(database_url: str, redis_url: str, secret_key: str, static_root: str
              ) -> dict[str, str]:
    """A production configuration (DEBUG off, the product's defaults for everything on the
    request path) on the bench settings module."""
    return {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "bench.settings",
        "DATABASE_URL": database_url,
        "REDIS_URL": redis_url,
        "DEBUG": "0",
        "SECRET_KEY": secret_key,
        "ALLOWED_HOSTS": "127.0.0.1,localhost",
        "SECURE_SSL_REDIRECT": "0",  # plain HTTP on loopback: no TLS proxy in front
        "GATEHOUSE_ENVIRONMENT": "production",
        "BENCH_UNMETERED": "0",
        "GATEHOUSE_KEY_CACHE": "1",
        "BENCH_STATIC_ROOT": static_root,
    }


def run_checked(args: list[str], env: dict[str, str], what: str) -> str:
    result = subprocess.run(args, cwd=ROOT, env=env, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        tail = "\n".join(result.stderr.strip().splitlines()[-15:])
        fail(f"{what} failed (exit {result.returncode}):\n{tail}")
    return result.stdout


def prepare(envs: dict[str, tuple[dict[str, str], bool]]) -> dict[str, dict]:
    """Collect the static files (the seed renders the consent screen; with DEBUG off pages need
    the manifest), migrate, then seed each database, all at once (the history seed dominates)."""
    first_env = next(iter(envs.values()))[0]
    run_checked([PYTHON, "manage.py", "collectstatic", "--noinput", "-v", "0"], first_env,
                "collectstatic")
    for env, _history in envs.values():
        run_checked([PYTHON, "manage.py", "migrate", "--noinput", "-v", "0"], env, "migrate")
    # Seeding writes millions of rows in long statements: no statement timeout, and so no
    # client-side answer bound either (config/postgresql), as for any bulk command.
    procs = {
        name: subprocess.Popen(
            [PYTHON, "-m", "bench.seed", *(["--history"] if history else [])],
            cwd=ROOT, env={**env, "DB_STATEMENT_TIMEOUT_MS": "0"},
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )
        for name, (env, history) in envs.items()
    }
    seeds = {}
    for name, proc in procs.items():
        out, err = proc.communicate()
        if proc.returncode != 0:
            tail = "\n".join(err.strip().splitlines()[-15:])
            fail(f"seeding the {name} database failed (exit {proc.returncode}):\n{tail}")
        seeds[name] = json.loads(out)
    return seeds


def serve(env: dict[str, str], port: int, log: Path, workers: int = WORKERS
          ) -> subprocess.Popen:
    """gunicorn as `docs/PERFORMANCE.md` documents it; its output (Django logs every 4xx as a
    warning, as in production) goes to `log`, not the terminal."""
    with log.open("ab") as out:
        return subprocess.Popen(
            [
                PYTHON, "-m", "gunicorn", "config.wsgi:application",
                "--workers", str(workers), "--worker-class", "sync",
                "--bind", f"127.0.0.1:{port}", "--log-level", "warning",
                "--graceful-timeout", "5",
            ],
            cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT,
        )


def wait_until_serving(proc: subprocess.Popen, port: int, log: Path, timeout: float = 90
                       ) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            fail(f"gunicorn on port {port} exited with {proc.returncode}:\n{tail(log)}")
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/api/v1/openapi.json", timeout=1)
            return
        except OSError:
            time.sleep(0.3)
    fail(f"gunicorn on port {port} did not answer within {timeout:.0f} s:\n{tail(log)}")


def tail(path: Path, lines: int = 15) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").strip().splitlines()[-lines:])
    except OSError:
        return ""


def stop(servers: list[subprocess.Popen]) -> None:
    for proc in servers:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
    for proc in servers:
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


# --- Scenarios -------------------------------------------------------------------------------


@dataclass
class Scenario:
    name: str
    url: str
    expect: int = 200
    authorization: str = ""  # kept in memory and in wrk's environment only
    script: str = "auth.lua"
    paths: tuple[str, ...] = ()  # patch.lua: the passports a write is spread over, in turn
    passport: str = ""  # mcp.lua: the passport get_passport reads

    @property
    def method(self) -> str:
        return {"patch.lua": "PATCH", "mcp.lua": "POST"}.get(self.script, "GET")

    def mcp_body(self) -> bytes:
        """What mcp.lua sends: one `tools/call` of get_passport."""
        return json.dumps({"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {
            "name": "get_passport", "arguments": {"passport_id": self.passport}}}).encode()

    def describe(self) -> dict[str, Any]:
        """What the results file says about the scenario: no credentials."""
        scheme = self.authorization.split(" ", 1)[0] if self.authorization else None
        return {"method": self.method, "path": urlsplit(self.url).path,
                "scheme": scheme, "expect": self.expect, "paths": len(self.paths) or 1}


def preflight(scenario: Scenario) -> None:
    """One request as wrk will send it; a scenario that does not answer as expected would
    measure something else (a 401 is much cheaper than a 200)."""
    headers = {"Authorization": scenario.authorization} if scenario.authorization else {}
    data = None
    if scenario.method == "PATCH":
        headers |= {"Content-Type": "application/json",
                    "Idempotency-Key": f"bench-preflight-{secrets.token_hex(8)}"}
        data = b'{"product_name": "Bench preflight"}'
    elif scenario.method == "POST":
        headers |= {"Content-Type": "application/json", "MCP-Protocol-Version": "2025-11-25"}
        data = scenario.mcp_body()
    request = urllib.request.Request(scenario.url, data=data, headers=headers,
                                     method=scenario.method)
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            status, body = response.status, response.read(300)
    except urllib.error.HTTPError as exc:
        status, body = exc.code, exc.read(300)
    if status != scenario.expect:
        fail(f"scenario {scenario.name}: {scenario.method} {urlsplit(scenario.url).path} "
             f"answered {status}, expected {scenario.expect}: {body.decode(errors='replace')}")
    if scenario.method == "POST" and (b'"isError": true' in body or b'"error"' in body):
        fail(f"scenario {scenario.name}: the tool call was refused: "
             f"{body.decode(errors='replace')}")


_UNITS = {"us": 1e-3, "ms": 1.0, "s": 1000.0, "m": 60_000.0}


def _ms(text: str) -> float:
    match = re.fullmatch(r"([\d.]+)(us|ms|s|m)", text)
    if not match:
        raise ValueError(f"not a wrk duration: {text!r}")
    return float(match.group(1)) * _UNITS[match.group(2)]


def parse_wrk(out: str) -> dict[str, Any]:
    requests = re.search(r"(\d+) requests in", out)
    rps = re.search(r"Requests/sec:\s+([\d.]+)", out)
    p50 = re.search(r"^\s+50%\s+(\S+)\s*$", out, re.MULTILINE)
    p99 = re.search(r"^\s+99%\s+(\S+)\s*$", out, re.MULTILINE)
    if not (requests and rps and p50 and p99):
        raise BenchError(f"could not read wrk's output:\n{out}")
    non2xx = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", out)
    errors = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    return {
        "requests": int(requests.group(1)),
        "rps": float(rps.group(1)),
        "p50_ms": round(_ms(p50.group(1)), 3),
        "p99_ms": round(_ms(p99.group(1)), 3),
        "non_2xx": int(non2xx.group(1)) if non2xx else 0,
        "socket_errors": sum(int(n) for n in errors.groups()) if errors else 0,
    }


def run_wrk(wrk: str, scenario: Scenario, seconds: int) -> dict[str, Any]:
    cmd = [wrk, f"-t{THREADS}", f"-c{CONNECTIONS}", f"-d{seconds}s", "--latency",
           "-s", str(ROOT / "bench" / "wrk" / scenario.script), scenario.url]
    env = {**os.environ, "BENCH_AUTHORIZATION": scenario.authorization,
           "BENCH_PATHS": ",".join(scenario.paths), "BENCH_PASSPORT": scenario.passport}
    result = subprocess.run(cmd, capture_output=True, text=True, check=False, env=env,
                            timeout=seconds + 30)
    if result.returncode != 0:
        fail(f"wrk failed for {scenario.name} (exit {result.returncode}): {result.stderr}")
    measured = parse_wrk(result.stdout)
    expected_non_2xx = measured["requests"] if scenario.expect >= 300 else 0
    measured["unexpected"] = abs(measured["non_2xx"] - expected_non_2xx)
    return measured


def first_byte(url: str, headers: dict[str, str], log: Path, samples: int = 15
               ) -> dict[str, Any]:
    """Time to the first byte of the body, one request at a time on an idle server (Django
    renders a page whole before sending it, so this is the full server time plus loopback)."""
    times = []
    status = None
    for i in range(samples + 2):
        request = urllib.request.Request(url, headers=headers)
        start = time.perf_counter()
        try:
            with urllib.request.urlopen(request, timeout=30) as response:
                response.read(1)
                elapsed = (time.perf_counter() - start) * 1000
                status = response.status
                response.read()
        except urllib.error.HTTPError as exc:
            fail(f"{urlsplit(url).path} answered {exc.code}; the server's log ends:\n{tail(log)}")
        if i >= 2:  # two warm-ups: the first request of a worker loads templates
            times.append(elapsed)
    times.sort()
    return {"status": status, "median_ms": round(statistics.median(times), 1),
            "min_ms": round(times[0], 1), "max_ms": round(times[-1], 1), "samples": samples}


# --- Reporting -------------------------------------------------------------------------------


@dataclass
class Results:
    rounds: dict[str, list[dict[str, Any]]] = field(default_factory=dict)

    def summary(self) -> dict[str, dict[str, Any]]:
        out = {}
        for name, runs in self.rounds.items():
            rps = [r["rps"] for r in runs]
            median = statistics.median(rps)
            out[name] = {
                "rps": round(median, 1),
                "p50_ms": statistics.median(r["p50_ms"] for r in runs),
                "p99_ms": statistics.median(r["p99_ms"] for r in runs),
                "spread_pct": round(100 * (max(rps) - min(rps)) / median, 1) if median else None,
                "unexpected_responses": sum(r["unexpected"] for r in runs),
                "rounds": runs,
            }
        return out

    def ratios(self) -> dict[str, dict[str, Any]]:
        out = {}
        for label, num, den, minimum in TARGETS:
            if num not in self.rounds or den not in self.rounds:
                continue
            value = (statistics.median(r["rps"] for r in self.rounds[num])
                     / statistics.median(r["rps"] for r in self.rounds[den]))
            per_round = [a["rps"] / b["rps"]
                         for a, b in zip(self.rounds[num], self.rounds[den], strict=True)]
            out[label] = {
                "value": round(value, 3), "target": minimum,
                "met": None if minimum is None else value >= minimum,
                "per_round_min": round(min(per_round), 3),
                "per_round_max": round(max(per_round), 3),
            }
        return out


def print_report(summary: dict, ratios: dict, pages: dict) -> None:
    print(f"\n{'scenario':17} {'req/s':>8} {'p50 ms':>7} {'p99 ms':>8} {'spread':>7} "
          f"{'unexpected':>10}")
    for name, s in summary.items():
        print(f"{name:17} {s['rps']:8.1f} {s['p50_ms']:7.2f} {s['p99_ms']:8.2f} "
              f"{s['spread_pct']:6.1f}% {s['unexpected_responses']:10}")
    print()
    for label, r in ratios.items():
        mark = {True: "ok", False: "MISSED", None: ""}[r["met"]]
        target = "no target" if r["target"] is None else f"target ≥ {r['target']}"
        print(f"{mark:6} {label:42} {r['value']:5.2f}  ({target}; rounds "
              f"{r['per_round_min']:.2f}–{r['per_round_max']:.2f})")
    if pages:
        print("\nfirst byte, history database (10k keys, 1M events), median of 15:")
    for label, p in pages.items():
        target = p.get("target_ms")
        mark = "" if target is None else ("ok     " if p["median_ms"] < target else "MISSED ")
        print(f"  {mark or '       '}{label:46} {p['median_ms']:7.1f} ms  "
              f"(min {p['min_ms']:.1f}, max {p['max_ms']:.1f})"
              + (f"  target < {target:.0f} ms" if target else ""))


# --- Main ------------------------------------------------------------------------------------


def code_version() -> dict[str, Any]:
    """The commit measured, and whether the working tree differed from it (None: not a git
    checkout, or git is missing)."""
    def git(*args: str) -> str | None:
        try:
            done = subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True,
                                  timeout=10, check=True)
        except (OSError, subprocess.SubprocessError):
            return None
        return done.stdout.strip()

    commit = git("rev-parse", "--short", "HEAD")
    status = git("status", "--porcelain", "--untracked-files=no")
    return {"commit": commit, "modified": None if status is None else bool(status)}


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bench.run", description=__doc__.splitlines()[0],
        epilog="Environment: DATABASE_URL (a PostgreSQL server; default the local one), "
               "REDIS_URL (default redis://127.0.0.1:6379/9; the next database is used too), "
               "WRK (the wrk binary).",
    )
    parser.add_argument("--rounds", type=int, default=3, help="rounds per scenario (default 3)")
    parser.add_argument("--seconds", type=int, default=10, help="seconds per round (default 10)")
    parser.add_argument("--only", help="comma-separated scenario names (default: all)")
    parser.add_argument("--wrk", default=os.environ.get("WRK"), help="path to wrk")
    parser.add_argument("--output", type=Path, default=ROOT / "bench" / "results",
                        help="folder for the results JSON (default bench/results)")
    args = parser.parse_args(argv)
    if args.rounds < 1 or args.seconds < 1:
        parser.error("--rounds and --seconds must be at least 1")
    return args


SCENARIO_NAMES = ["baseline", "floor", "apikey", "apikey_unmetered", "apikey_uncached", "oauth",
                  "garbage", "apikey_unlimited", "oauth_unlimited", "write", "write_baseline",
                  "write_rows", "write_8w", "peer", "history", "mcp_read", "capped"]


def build_scenarios(ports: dict[str, int], seed: dict, hist: dict) -> list[Scenario]:
    def url(server: str, path: str) -> str:
        return f"http://127.0.0.1:{ports[server]}{path}"

    passport = f"/api/v1/passports/{seed['passport_id']}"
    bearer = f"Bearer {seed['token']}"
    rows = [f"/api/v1/passports/{public_id}" for public_id in seed["write_rows_ids"]]
    return [
        Scenario("baseline",
                 url("main", f"/bench/baseline/{seed['workspace_id']}/passports/"
                             f"{seed['passport_id']}")),
        Scenario("floor",
                 url("main", f"/bench/floor/{seed['workspace_id']}/passports/"
                             f"{seed['passport_id']}")),
        Scenario("apikey", url("main", passport), authorization=bearer),
        Scenario("apikey_unmetered", url("unmetered", passport), authorization=bearer),
        Scenario("apikey_uncached", url("uncached", passport), authorization=bearer),
        Scenario("oauth", url("main", passport), authorization=f"Bearer {seed['oauth_token']}"),
        Scenario("garbage", url("main", passport), expect=401,
                 authorization=f"Bearer {GARBAGE_TOKEN}"),
        Scenario("apikey_unlimited",
                 url("main", f"/api/v1/passports/{seed['unlimited_passport_id']}"),
                 authorization=f"Bearer {seed['unlimited_token']}"),
        Scenario("oauth_unlimited",
                 url("main", f"/api/v1/passports/{seed['unlimited_passport_id']}"),
                 authorization=f"Bearer {seed['unlimited_oauth_token']}"),
        Scenario("write", url("main", f"/api/v1/passports/{seed['write_passport_id']}"),
                 authorization=bearer, script="patch.lua"),
        Scenario("write_baseline",
                 url("main", f"/bench/baseline/{seed['workspace_id']}/passports/"
                             f"{seed['write_passport_id']}"), script="patch.lua"),
        Scenario("write_rows", url("main", rows[0]), authorization=bearer, script="patch.lua",
                 paths=tuple(rows)),
        Scenario("write_8w", url("main8", rows[0]), authorization=bearer, script="patch.lua",
                 paths=tuple(rows)),
        Scenario("peer", url("main", f"/bench/peer/passports/{seed['passport_id']}"),
                 authorization=f"Api-Key {seed['peer_token']}"),
        Scenario("history", url("history", f"/api/v1/passports/{hist['passport_id']}"),
                 authorization=f"Bearer {hist['token']}"),
        Scenario("mcp_read", url("main", "/mcp"), authorization=bearer, script="mcp.lua",
                 passport=seed["passport_id"]),
        Scenario("capped", url("main", passport), authorization=f"Bearer {seed['capped_token']}"),
    ]


def measure_pages(port: int, hist: dict, log: Path) -> dict[str, dict[str, Any]]:
    base = f"http://127.0.0.1:{port}"
    slug = hist["workspace"]
    session = {"Cookie": f"sessionid={hist['session']}"}
    api = {"Authorization": f"Bearer {hist['token']}"}
    deep = urlencode({"cursor": hist["audit_deep_cursor"]})
    until = urlencode({"until": hist["audit_deep_until"]})
    pages = {
        "dashboard: key list": (f"/w/{slug}/settings/api-keys/", session, FIRST_BYTE_TARGET_MS),
        "dashboard: audit log, first page": (f"/w/{slug}/settings/audit-log/", session,
                                             FIRST_BYTE_TARGET_MS),
        "dashboard: audit log, 500k deep (cursor)": (f"/w/{slug}/settings/audit-log/?{deep}",
                                                     session, FIRST_BYTE_TARGET_MS),
        "dashboard: audit log, until 500k deep (date)": (
            f"/w/{slug}/settings/audit-log/?{until}", session, FIRST_BYTE_TARGET_MS),
        "API: audit-events, first page": ("/api/v1/audit-events", api, None),
        "API: audit-events, 500k deep (cursor)": (f"/api/v1/audit-events?{deep}", api, None),
        "API: audit-events, until 500k deep (date)": (f"/api/v1/audit-events?{until}", api, None),
        "API: keys, first page": ("/api/v1/keys", api, None),
    }
    results = {}
    for label, (path, headers, target) in pages.items():
        results[label] = {"path": path.split("?")[0], **first_byte(base + path, headers, log),
                          "target_ms": target}
    return results


def run(args: argparse.Namespace) -> int:
    started = time.monotonic()
    wanted = set(args.only.split(",")) if args.only else set(SCENARIO_NAMES)
    if unknown := wanted - set(SCENARIO_NAMES):
        fail(f"unknown scenario(s) {', '.join(sorted(unknown))}; "
             f"choose from {', '.join(SCENARIO_NAMES)}.")
    base_db = os.environ.get("DATABASE_URL") or DEFAULT_DATABASE_URL
    redis_main = os.environ.get("REDIS_URL") or DEFAULT_REDIS_URL
    redis_hist = redis_db_url(redis_main, 1)
    wrk = check_prerequisites(args.wrk, base_db, [redis_main, redis_hist])

    run_id = f"gatehouse_bench_{os.getpid()}"
    names = {"main": run_id, "history": f"{run_id}_history"}
    created: list[str] = []
    servers: list[subprocess.Popen] = []
    results = Results()
    pages: dict[str, dict[str, Any]] = {}
    scenario_info: dict[str, dict[str, Any]] = {}
    work = Path(tempfile.mkdtemp(prefix="gatehouse-bench-"))  # static files, server logs
    static_root = str(work / "static")
    try:
        urls = {}
        for role, name in names.items():
            urls[role] = create_database(base_db, name)
            created.append(name)
        secret = secrets.token_urlsafe(50)  # one per run: seeds and servers must agree
        env_main = bench_env(urls["main"], redis_main, secret, static_root)
        env_hist = bench_env(urls["history"], redis_hist, secret, static_root)
        env_unmetered = {**env_main, "BENCH_UNMETERED": "1"}
        env_uncached = {**env_main, "GATEHOUSE_KEY_CACHE": "0"}
        print(f"databases {', '.join(created)} created; collecting static files, migrating and "
              "seeding (the history database gets 10k keys, 1.3M usage rows, 1M events)...",
              flush=True)
        ports = {"main": free_port(), "history": free_port(), "unmetered": free_port(),
                 "uncached": free_port(), "main8": free_port()}
        # The seed's OAuth token is issued at the origin it is used at (RFC 8707 audience).
        seeds = prepare({
            "main": ({**env_main, "BENCH_ORIGIN": f"http://127.0.0.1:{ports['main']}"}, False),
            "history": (env_hist, True),
        })
        seed, hist = seeds["main"], seeds["history"]
        print(f"prepared in {time.monotonic() - started:.0f} s", flush=True)

        for role, env in (("main", env_main), ("history", env_hist),
                          ("unmetered", env_unmetered), ("uncached", env_uncached),
                          ("main8", env_main)):
            workers = WORKERS_8 if role == "main8" else WORKERS
            servers.append(serve(env, ports[role], work / f"{role}.log", workers))
        for proc, (role, port) in zip(servers, ports.items(), strict=True):
            wait_until_serving(proc, port, work / f"{role}.log")

        scenarios = [s for s in build_scenarios(ports, seed, hist) if s.name in wanted]
        for scenario in scenarios:
            preflight(scenario)
        for scenario in scenarios:  # warm every worker, connection and cache
            run_wrk(wrk, scenario, WARMUP_SECONDS)
        results.rounds = {s.name: [] for s in scenarios}
        for round_no in range(1, args.rounds + 1):
            for scenario in scenarios:
                measured = run_wrk(wrk, scenario, args.seconds)
                results.rounds[scenario.name].append(measured)
                flag = f"  {measured['unexpected']} UNEXPECTED" if measured["unexpected"] else ""
                print(f"round {round_no} {scenario.name:17} {measured['rps']:8.1f} req/s  "
                      f"p50 {measured['p50_ms']:6.2f} ms  p99 {measured['p99_ms']:7.2f} ms{flag}",
                      flush=True)
        if "history" in wanted:
            pages = measure_pages(ports["history"], hist, work / "history.log")
        scenario_info = {s.name: s.describe() for s in scenarios}
    finally:
        stop(servers)
        for name in created:
            try:
                drop_database(base_db, name)
            except Exception as exc:  # try the next one, and say which is left
                print(f"bench: could not drop {name}: {exc}", file=sys.stderr)
        if created:
            clear_redis(redis_main)
            clear_redis(redis_hist)
        shutil.rmtree(work, ignore_errors=True)

    summary, ratios = results.summary(), results.ratios()
    print_report(summary, ratios, pages)
    stamp = datetime.now(UTC).strftime("%Y-%m-%dT%H%M%SZ")
    args.output.mkdir(parents=True, exist_ok=True)
    path = args.output / f"{stamp}.json"
    path.write_text(json.dumps({
        "date": stamp,
        "code": code_version(),
        "machine": {"cpus": os.cpu_count(), "load_average_at_end": os.getloadavg()},
        "settings": {"rounds": args.rounds, "seconds": args.seconds, "workers": WORKERS,
                     "workers_write_8w": WORKERS_8,
                     "worker_class": "sync", "wrk_connections": CONNECTIONS,
                     "wrk_threads": THREADS, "warmup_seconds": WARMUP_SECONDS},
        "scenario_definitions": scenario_info,
        "scenarios": summary,
        "ratios": ratios,
        "first_byte": pages,
        "duration_seconds": round(time.monotonic() - started),
    }, indent=2) + "\n")
    shown = path.relative_to(ROOT) if path.is_relative_to(ROOT) else path
    print(f"\nwrote {shown} in {time.monotonic() - started:.0f} s")
    if any(s["unexpected_responses"] for s in summary.values()):
        print("bench: some scenarios got unexpected responses (see 'unexpected'); their figures "
              "do not measure what they claim.", file=sys.stderr)
        return 1
    return 0


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        return run(args)
    except BenchError as exc:
        print(f"bench: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("bench: interrupted; databases dropped.", file=sys.stderr)
        return 130


if __name__ == "__main__":
    # SIGTERM (a CI timeout, kill) unwinds like Ctrl-C, so the databases are still dropped.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    sys.exit(main())
