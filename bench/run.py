"""`make bench`: Gatehouse against the no-auth baseline and the DRF peer, interleaved, in one run.

What it does (docs/PERFORMANCE.md explains the figures):
1. checks wrk (installs Debian's package when missing and root), PostgreSQL and Redis;
2. creates two dedicated databases (`gatehouse_bench_<pid>` and `…_history`), refusing to touch
   one that already exists, migrates and seeds them (`bench/seed.py`), and drops them at the end;
3. serves each with gunicorn (2 sync workers, fixed settings below) on loopback;
4. runs every scenario for `--seconds` per round, `--rounds` times, interleaved (A B C … A B C …)
   so that drift on a shared machine hits every scenario alike;
5. writes `bench/results/<date>.json` and prints requests/s, p50, p99 and the target ratios.
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
import time
import urllib.request
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

ROOT = Path(__file__).resolve().parent.parent
PYTHON = sys.executable
WORKERS = 2  # gunicorn sync workers: one per core on the reference machine
CONNECTIONS = 16
THREADS = 2

TARGETS = [
    # (name, numerator, denominator, minimum)
    ("apikey / baseline", "apikey", "baseline", 0.80),
    ("apikey / peer", "apikey", "peer", 1.3),
    ("garbage / apikey", "garbage", "apikey", 1.5),
    ("history / apikey", "history", "apikey", 0.90),
    ("metering cost: apikey / apikey_unmetered", "apikey", "apikey_unmetered", 0.90),
]


def fail(message: str) -> None:
    print(f"bench: {message}", file=sys.stderr)
    sys.exit(1)


def ensure_wrk() -> str:
    path = shutil.which("wrk")
    if path:
        return path
    if os.geteuid() == 0 and shutil.which("apt-get"):
        print("Installing wrk (Debian package)...")
        subprocess.run(["apt-get", "update", "-qq"], check=False, capture_output=True)
        subprocess.run(
            ["apt-get", "install", "-y", "-qq", "wrk"], check=False, capture_output=True,
            env={**os.environ, "DEBIAN_FRONTEND": "noninteractive"},
        )
    path = shutil.which("wrk")
    if not path:
        fail("wrk is not installed and could not be installed. Install it: apt-get install wrk")
    return path


def admin_connect(base_url: str):  # noqa: ANN201
    import psycopg

    parts = urlsplit(base_url)
    admin = urlunsplit(parts._replace(path="/postgres"))
    try:
        return psycopg.connect(admin, autocommit=True, connect_timeout=3)
    except psycopg.Error as exc:
        fail(f"cannot reach PostgreSQL at {parts.hostname}:{parts.port or 5432}: {exc}")


def create_database(base_url: str, name: str) -> str:
    with admin_connect(base_url) as conn:
        exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [name]).fetchone()
        if exists:
            fail(f"database {name} already exists; the harness only uses databases it creates.")
        conn.execute(f'CREATE DATABASE "{name}"')
    return urlunsplit(urlsplit(base_url)._replace(path=f"/{name}"))


def drop_database(base_url: str, name: str) -> None:
    with admin_connect(base_url) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def check_redis(url: str) -> None:
    import redis

    try:
        redis.Redis.from_url(url, socket_connect_timeout=2).ping()
    except Exception as exc:
        fail(f"cannot reach Redis at {url}: {exc}")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def bench_env(database_url: str, redis_url: str) -> dict[str, str]:
    return {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "bench.settings",
        "DATABASE_URL": database_url,
        "REDIS_URL": redis_url,
        "DEBUG": "0",
        "SECRET_KEY": secrets.token_urlsafe(50),
        "ALLOWED_HOSTS": "127.0.0.1,localhost",
        "SECURE_SSL_REDIRECT": "0",
        "GATEHOUSE_ENVIRONMENT": "production",
        "LOG_LEVEL": "WARNING",
    }


def prepare(env: dict[str, str], *, history: bool) -> dict:
    subprocess.run(
        [PYTHON, "manage.py", "migrate", "--noinput", "-v", "0"], cwd=ROOT, env=env, check=True
    )
    args = [PYTHON, "-m", "bench.seed"] + (["--history"] if history else [])
    out = subprocess.run(args, cwd=ROOT, env=env, check=True, capture_output=True, text=True)
    return json.loads(out.stdout)


def serve(env: dict[str, str], port: int) -> subprocess.Popen:
    proc = subprocess.Popen(
        [
            PYTHON, "-m", "gunicorn", "config.wsgi:application",
            "--workers", str(WORKERS), "--worker-class", "sync",
            "--bind", f"127.0.0.1:{port}", "--log-level", "warning", "--graceful-timeout", "5",
        ],
        cwd=ROOT, env=env,
    )
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/api/v1/openapi.json", timeout=1)
            return proc
        except OSError:
            time.sleep(0.3)
    proc.terminate()
    fail("gunicorn did not start within 30 s")
    raise AssertionError  # unreachable


_UNITS = {"us": 1e-3, "ms": 1.0, "s": 1000.0}


def _ms(text: str) -> float:
    match = re.fullmatch(r"([\d.]+)(us|ms|s)", text)
    return float(match.group(1)) * _UNITS[match.group(2)] if match else float("nan")


def run_wrk(wrk: str, scenario: dict, seconds: int) -> dict:
    cmd = [wrk, f"-t{THREADS}", f"-c{CONNECTIONS}", f"-d{seconds}s", "--latency"]
    for name, value in scenario.get("headers", {}).items():
        cmd += ["-H", f"{name}: {value}"]
    if scenario.get("script"):
        cmd += ["-s", str(scenario["script"])]
    cmd.append(scenario["url"])
    out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    p50 = _ms(re.search(r"50%\s+(\S+)", out).group(1))
    p99 = _ms(re.search(r"99%\s+(\S+)", out).group(1))
    non2xx = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", out)
    errors = int(non2xx.group(1)) if non2xx else 0
    return {"rps": rps, "p50_ms": p50, "p99_ms": p99, "non_2xx": errors}


def first_byte_ms(url: str, session: str, samples: int = 15) -> float:
    times = []
    for _ in range(samples):
        request = urllib.request.Request(url, headers={"Cookie": f"sessionid={session}"})
        start = time.perf_counter()
        with urllib.request.urlopen(request, timeout=10) as response:
            response.read(1)
            times.append((time.perf_counter() - start) * 1000)
            response.read()
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--only", help="comma-separated scenario names")
    args = parser.parse_args()
    if args.rounds < 1 or args.seconds < 1:
        fail("--rounds and --seconds must be at least 1")

    wrk = ensure_wrk()
    base_db = os.environ.get("DATABASE_URL") or "postgres://postgres@127.0.0.1:5432/postgres"
    if not base_db.startswith(("postgres://", "postgresql://")):
        fail("the benchmark runs on PostgreSQL: set DATABASE_URL=postgres://…")
    redis_url = os.environ.get("REDIS_URL") or "redis://127.0.0.1:6379/9"
    check_redis(redis_url)

    run_id = f"gatehouse_bench_{os.getpid()}"
    names = [run_id, f"{run_id}_history"]
    servers: list[subprocess.Popen] = []
    created: list[str] = []
    try:
        main_url = create_database(base_db, names[0])
        created.append(names[0])
        hist_url = create_database(base_db, names[1])
        created.append(names[1])
        env_main = bench_env(main_url, redis_url)
        env_hist = bench_env(hist_url, redis_url.rsplit("/", 1)[0] + "/10")
        env_unmetered = {**env_main, "GATEHOUSE_METERING": "0"}
        print("Preparing databases (the history one gets 10k keys and 2M rows)...", flush=True)
        seed = prepare(env_main, history=False)
        hist = prepare(env_hist, history=True)

        ports = {"main": free_port(), "history": free_port(), "unmetered": free_port()}
        servers.append(serve(env_main, ports["main"]))
        servers.append(serve(env_hist, ports["history"]))
        servers.append(serve(env_unmetered, ports["unmetered"]))

        def url(server: str, path: str) -> str:
            return f"http://127.0.0.1:{ports[server]}{path}"

        pid, hpid = seed["passport_id"], hist["passport_id"]
        bearer = {"Authorization": f"Bearer {seed['token']}"}
        scenarios = {
            "baseline": {"url": url("main", f"/bench/baseline/passports/{pid}")},
            "apikey": {"url": url("main", f"/api/v1/passports/{pid}"), "headers": bearer},
            "apikey_unmetered": {
                "url": url("unmetered", f"/api/v1/passports/{pid}"), "headers": bearer,
            },
            "garbage": {
                "url": url("main", f"/api/v1/passports/{pid}"),
                "headers": {"Authorization": "Bearer gk_prod_not-a-real-key"},
            },
            "write": {
                "url": url("main", f"/api/v1/passports/{pid}"), "headers": bearer,
                "script": ROOT / "bench" / "wrk" / "patch.lua",
            },
            "peer": {
                "url": url("main", f"/bench/peer/passports/{pid}"),
                "headers": {"Authorization": f"Api-Key {seed['peer_token']}"},
            },
            "history": {
                "url": url("history", f"/api/v1/passports/{hpid}"),
                "headers": {"Authorization": f"Bearer {hist['token']}"},
            },
        }
        if args.only:
            wanted = set(args.only.split(","))
            scenarios = {k: v for k, v in scenarios.items() if k in wanted}

        for name, scenario in scenarios.items():  # warm every worker and connection
            run_wrk(wrk, scenario, 2)
            del name
        results: dict[str, list[dict]] = {name: [] for name in scenarios}
        for round_no in range(1, args.rounds + 1):
            for name, scenario in scenarios.items():
                result = run_wrk(wrk, scenario, args.seconds)
                results[name].append(result)
                print(f"round {round_no} {name:17} {result['rps']:9.1f} req/s  "
                      f"p50 {result['p50_ms']:6.2f} ms  p99 {result['p99_ms']:7.2f} ms", flush=True)

        dashboards = {}
        if "history" in scenarios:
            slug = hist["workspace"]
            for page, path in (
                ("key list (10k keys)", f"/w/{slug}/settings/api-keys/"),
                ("audit log, first page (1M events)", f"/w/{slug}/settings/audit-log/"),
            ):
                dashboards[page] = first_byte_ms(url("history", path), hist["session"])
    finally:
        for proc in servers:
            proc.send_signal(signal.SIGTERM)
        for proc in servers:
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()
        for name in created:
            drop_database(base_db, name)

    summary = {
        name: {
            "rps": statistics.median(r["rps"] for r in runs),
            "p50_ms": statistics.median(r["p50_ms"] for r in runs),
            "p99_ms": statistics.median(r["p99_ms"] for r in runs),
            "non_2xx": sum(r["non_2xx"] for r in runs),
            "rounds": runs,
        }
        for name, runs in results.items()
    }
    ratios = {}
    for label, num, den, minimum in TARGETS:
        if num in summary and den in summary:
            value = summary[num]["rps"] / summary[den]["rps"]
            ratios[label] = {"value": round(value, 3), "target": minimum, "met": value >= minimum}

    print(f"\n{'scenario':18} {'req/s':>9} {'p50 ms':>8} {'p99 ms':>8} {'non-2xx':>8}")
    for name, s in summary.items():
        print(f"{name:18} {s['rps']:9.1f} {s['p50_ms']:8.2f} {s['p99_ms']:8.2f} {s['non_2xx']:8}")
    print()
    for label, r in ratios.items():
        mark = "ok " if r["met"] else "MISSED"
        print(f"{mark:6} {label:42} {r['value']:6.2f}  (target ≥ {r['target']})")
    for page, ms in dashboards.items():
        print(f"first byte {page:36} {ms:7.1f} ms  (target < 150 ms)")

    out_dir = ROOT / "bench" / "results"
    out_dir.mkdir(exist_ok=True)
    stamp = datetime.now(UTC).strftime("%Y-%m-%dT%H%M%SZ")
    path = out_dir / f"{stamp}.json"
    path.write_text(json.dumps({
        "date": stamp, "rounds": args.rounds, "seconds": args.seconds, "workers": WORKERS,
        "connections": CONNECTIONS, "threads": THREADS, "scenarios": summary,
        "ratios": ratios, "dashboard_first_byte_ms": dashboards,
    }, indent=2))
    print(f"\nwrote {path.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
