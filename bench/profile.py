"""Where one scenario's requests spend their time: pyinstrument over N requests, in-process.

    python -m bench.profile apikey                # 2,000 requests, pyinstrument's call tree
    python -m bench.profile oauth --requests 5000
    python -m bench.profile apikey --cprofile     # cProfile's top functions instead

Same preparation as `bench.run` (a dedicated PostgreSQL database it creates, seeds and drops; an
empty Redis database, emptied afterwards; the same settings with DEBUG off), then the requests go
through Django's full handler and middleware stack with the test client — everything gunicorn
runs except the HTTP parsing. The first 200 requests warm up and are not profiled. Prints the
mean time per request and the profile. For the whole server under load, attach py-spy to a
gunicorn worker of `bench.run` instead: `py-spy record -p <pid> -d 20 -o profile.svg`.
"""

from __future__ import annotations

import argparse
import cProfile
import io
import os
import pstats
import secrets
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench import run as harness

SCENARIOS = ["baseline", "floor", "apikey", "apikey_unmetered", "apikey_uncached", "oauth",
             "garbage", "write", "peer"]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.profile", description=__doc__)
    parser.add_argument("scenario", choices=SCENARIOS)
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--cprofile", action="store_true", help="cProfile instead of pyinstrument")
    parser.add_argument("--sort", default="cumulative", help="cProfile's order (e.g. tottime)")
    parser.add_argument("--lines", type=int, default=45,
                        help="rows to print (cProfile's, or py-spy's functions)")
    parser.add_argument("--no-profile", action="store_true",
                        help="only time the requests (wall and CPU), without a profiler")
    parser.add_argument("--server", action="store_true",
                        help="profile gunicorn's workers under wrk with py-spy instead")
    parser.add_argument("--seconds", type=int, default=20, help="--server: how long")
    args = parser.parse_args(argv)
    try:
        return profile(args)
    except harness.BenchError as exc:
        print(f"bench.profile: {exc}", file=sys.stderr)
        return 1


def profile(args: argparse.Namespace) -> int:
    base_db = os.environ.get("DATABASE_URL") or harness.DEFAULT_DATABASE_URL
    harness.check_database_url(base_db)
    redis_url = os.environ.get("REDIS_URL") or harness.DEFAULT_REDIS_URL
    harness.check_redis(redis_url)
    name = f"gatehouse_bench_profile_{os.getpid()}"
    url = harness.create_database(base_db, name)
    work = Path(tempfile.mkdtemp(prefix="gatehouse-bench-profile-"))
    try:
        env = harness.bench_env(url, redis_url, secrets.token_urlsafe(50), str(work / "static"))
        if args.scenario == "apikey_unmetered":
            env["BENCH_UNMETERED"] = "1"
        if args.scenario == "apikey_uncached":
            env["GATEHOUSE_KEY_CACHE"] = "0"
        seed = harness.prepare({"main": (env, False)})["main"]
        if args.server:
            return _profile_server(args, env, seed, work)
        os.environ.update(env)  # the servers' environment, in this process, before Django starts
        return _profile_requests(args, seed)
    finally:
        from django.conf import settings

        if settings.configured:
            from django.db import connections

            from gateway.usage import usage_flush

            try:
                usage_flush()  # now, not at exit: the database is about to go
                connections.close_all()
            except Exception as exc:  # the database is dropped whatever happened
                print(f"bench.profile: {exc}", file=sys.stderr)
        harness.drop_database(base_db, name)
        harness.clear_redis(redis_url)
        shutil.rmtree(work, ignore_errors=True)


def _profile_requests(args: argparse.Namespace, seed: dict) -> int:
    import django

    django.setup()
    from django.db import close_old_connections
    from django.test import Client

    passport = f"/api/v1/passports/{seed['passport_id']}"
    auth = {
        "apikey": f"Bearer {seed['token']}", "apikey_unmetered": f"Bearer {seed['token']}",
        "apikey_uncached": f"Bearer {seed['token']}",
        "oauth": f"Bearer {seed['oauth_token']}", "garbage": f"Bearer {harness.GARBAGE_TOKEN}",
        "write": f"Bearer {seed['token']}", "peer": f"Api-Key {seed['peer_token']}",
    }.get(args.scenario)
    path = {
        "write": f"/api/v1/passports/{seed['write_passport_id']}",
        "baseline": f"/bench/baseline/{seed['workspace_id']}/passports/{seed['passport_id']}",
        "floor": f"/bench/floor/{seed['workspace_id']}/passports/{seed['passport_id']}",
        "peer": f"/bench/peer/passports/{seed['passport_id']}",
    }.get(args.scenario, passport)
    client = Client(headers={"Authorization": auth} if auth else {}, SERVER_NAME="127.0.0.1")
    expect = 401 if args.scenario == "garbage" else 200
    counter = iter(range(10**9))

    def one() -> None:
        # The test client disconnects close_old_connections from request_started/finished;
        # gunicorn does not, and with CONN_HEALTH_CHECKS its first query of a request is preceded
        # by the health check's SELECT 1. Run it as a server would.
        close_old_connections()
        if args.scenario == "write":
            n = next(counter)
            response = client.patch(
                path, f'{{"product_name": "Profile {n}"}}', content_type="application/json",
                headers={"Idempotency-Key": f"profile-{n}"},
            )
        else:
            response = client.get(path)
        if response.status_code != expect:
            raise harness.BenchError(
                f"{args.scenario}: answered {response.status_code}, expected {expect}: "
                f"{response.content[:300]!r}"
            )
        close_old_connections()

    for _ in range(200):
        one()
    wall, cpu = time.perf_counter(), time.process_time()
    for _ in range(args.requests):
        one()
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    print(f"{args.scenario}: {args.requests} requests without a profiler: "
          f"{1000 * wall / args.requests:.3f} ms wall, {1000 * cpu / args.requests:.3f} ms CPU "
          "each")
    if args.no_profile:
        return 0
    if args.cprofile:
        profiler = cProfile.Profile()
        start = time.perf_counter()
        profiler.enable()
        for _ in range(args.requests):
            one()
        profiler.disable()
        elapsed = time.perf_counter() - start
        out = io.StringIO()
        stats = pstats.Stats(profiler, stream=out)
        out.write(own_time_by_package(stats, args.requests))
        stats.sort_stats(args.sort).print_stats(args.lines)
        report = out.getvalue()
    else:
        from pyinstrument import Profiler

        profiler = Profiler(interval=0.0005)
        start = time.perf_counter()
        profiler.start()
        for _ in range(args.requests):
            one()
        profiler.stop()
        elapsed = time.perf_counter() - start
        report = profiler.output_text(unicode=True, color=False, show_all=False)
    print(f"with the profiler: {1000 * elapsed / args.requests:.3f} ms each\n")
    print(report)
    return 0


def _profile_server(args: argparse.Namespace, env: dict[str, str], seed: dict, work: Path
                    ) -> int:
    """py-spy on both gunicorn workers (wall time: waits on PostgreSQL and Redis included) while
    wrk runs the scenario as `bench.run` does; prints where the request handling's samples
    are, inclusive and own."""
    wrk = harness.ensure_wrk(os.environ.get("WRK"))
    port = harness.free_port()
    log = work / "server.log"
    server = harness.serve(env, port, log)
    try:
        harness.wait_until_serving(server, port, log)
        ports = {"main": port, "unmetered": port, "uncached": port, "history": port}
        (scenario,) = [s for s in harness.build_scenarios(ports, seed, seed)
                       if s.name == args.scenario]
        harness.preflight(scenario)
        harness.run_wrk(wrk, scenario, harness.WARMUP_SECONDS)
        raw = work / "py-spy.txt"
        spy = subprocess.Popen(
            [str(Path(sys.executable).parent / "py-spy"), "record", "--pid", str(server.pid),
             "--subprocesses", "--idle", "--nolineno", "--nonblocking", "--rate", "200",
             "--duration", str(args.seconds), "--format", "raw", "--output", str(raw)],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
        )
        measured = harness.run_wrk(wrk, scenario, args.seconds)
        _out, err = spy.communicate(timeout=args.seconds + 60)
        if spy.returncode != 0 or not raw.exists():
            raise harness.BenchError(f"py-spy failed: {err.strip()}")
    finally:
        harness.stop([server])
    print(f"{args.scenario}: {measured['rps']:.1f} req/s under py-spy (p50 "
          f"{measured['p50_ms']:.2f} ms), {measured['unexpected']} unexpected responses\n")
    print(summarise_py_spy(raw.read_text(), top=args.lines))
    return 0


def own_time_by_package(stats: pstats.Stats, requests: int) -> str:
    """cProfile's own time summed per top-level package (django, psycopg, redis, apikeys...),
    per request: which layer the CPU goes to, profiler overhead spread over all of them."""
    totals: dict[str, float] = {}
    for (filename, _line, name), (_cc, _nc, tottime, _ct, _callers) in stats.stats.items():
        if "site-packages/" in filename:
            package = filename.split("site-packages/", 1)[1].split("/", 1)[0]
        elif filename.startswith(str(harness.ROOT)):
            package = Path(filename).relative_to(harness.ROOT).parts[0]
        elif filename == "~":
            package = f"builtin: {name.split(' of ')[-1].strip('<>')[:40]}"
        else:
            package = "python stdlib"
        totals[package] = totals.get(package, 0.0) + tottime
    whole = sum(totals.values())
    lines = ["own time per request by package (cProfile):"]
    for package, seconds in sorted(totals.items(), key=lambda kv: -kv[1])[:20]:
        lines.append(f"  {1000 * seconds / requests:7.3f} ms {100 * seconds / whole:5.1f}%  "
                     f"{package}")
    return "\n".join(lines) + "\n\n"


def summarise_py_spy(raw: str, top: int = 40) -> str:
    """py-spy's raw (collapsed) stacks → share of request-handling samples per function,
    inclusive and own. Samples outside `handle_request` (the accept loop, the usage flush
    thread) are counted apart."""
    inclusive: dict[str, int] = {}
    own: dict[str, int] = {}
    total = outside = 0
    for line in raw.splitlines():
        stack, _, count = line.rpartition(" ")
        if not count.isdigit():
            continue
        frames = stack.split(";")
        n = int(count)
        start = next((i for i, f in enumerate(frames) if ".handle_request (gunicorn/" in f), None)
        if start is None:
            outside += n
            continue
        total += n
        for frame in set(frames[start:]):
            inclusive[frame] = inclusive.get(frame, 0) + n
        own[frames[-1]] = own.get(frames[-1], 0) + n
    if not total:
        return "no samples inside handle_request"
    lines = [f"{total} samples handling requests ({outside} elsewhere: accept loop, threads)",
             "", "inclusive  function"]
    for frame, n in sorted(inclusive.items(), key=lambda kv: -kv[1])[:top]:
        lines.append(f"{100 * n / total:8.1f}%  {frame}")
    lines += ["", "own        function"]
    for frame, n in sorted(own.items(), key=lambda kv: -kv[1])[:top // 2]:
        lines.append(f"{100 * n / total:8.1f}%  {frame}")
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
