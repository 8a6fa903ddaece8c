"""Seed a benchmark database and print the credentials the run needs as JSON on stdout.

Run by `bench/run.py` with the bench settings and a dedicated database. The tokens it prints exist
only in the harness's memory for the run; the database stores digests, as in production.

    python -m bench.seed            # the main scenario database
    python -m bench.seed --history  # plus 10,000 keys and 1,000,000 usage and audit rows
"""

from __future__ import annotations

import argparse
import json
import os
import sys

import django


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--history", action="store_true")
    args = parser.parse_args()
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "bench.settings")
    django.setup()

    from django.contrib.auth import get_user_model
    from django.contrib.sessions.backends.db import SessionStore
    from django.db import connection
    from rest_framework_api_key.models import APIKey

    from apikeys.services import apikey_create
    from passports.services import passport_create
    from workspaces.models import Plan
    from workspaces.services import workspace_create

    # A plan with budgets (so the counters run on every request) too large to be reached.
    plan, _ = Plan.objects.update_or_create(
        code="bench",
        defaults={
            "name": "Bench", "writes_per_day": 10**9, "passport_reads_per_day": 10**9,
            "active_keys_limit": 10**6, "passports_limit": None, "audit_retention_days": 365,
        },
    )
    User = get_user_model()
    owner = User.objects.create_user(username="bench@bench.test", email="bench@bench.test")
    workspace = workspace_create(slug="bench", name="Bench", owner=owner, plan=plan)
    key, token = apikey_create(
        workspace=workspace, name="bench", scopes=["passports:read", "passports:write"],
        environment=os.environ.get("GATEHOUSE_ENVIRONMENT", "production"),
        acting_user=owner, rate_limit_per_minute=10**9,
    )
    passport = passport_create(
        workspace=workspace, gtin="4006381333931", serial_number="SN-1",
        product_name="Bench passport", status="published", actor=None,
    )
    _peer_key, peer_token = APIKey.objects.create_key(name="bench-peer")

    if args.history:
        _seed_history(connection, workspace, owner, key)

    session = SessionStore()
    session["_auth_user_id"] = str(owner.pk)
    session["_auth_user_backend"] = "django.contrib.auth.backends.ModelBackend"
    session["_auth_user_hash"] = owner.get_session_auth_hash()
    session.create()

    json.dump(
        {
            "token": token,
            "peer_token": peer_token,
            "passport_id": passport.public_id,
            "workspace": workspace.slug,
            "session": session.session_key,
        },
        sys.stdout,
    )


def _seed_history(connection, workspace, owner, key) -> None:  # noqa: ANN001
    """10,000 keys (revoked, as a busy workspace accumulates), 1,000,000 recent-request rows and
    1,000,000 audit events, inserted server-side with generate_series (PostgreSQL)."""
    from apikeys.models import ApiKey, KeyRequest
    from audit.models import AuditEvent

    keys, requests, events = (
        ApiKey._meta.db_table, KeyRequest._meta.db_table, AuditEvent._meta.db_table,
    )
    with connection.cursor() as c:
        c.execute(
            f"""
            INSERT INTO {keys} (public_id, workspace_id, name, note, scopes, environment, digest,
                hint, created_at, status, revoked_at, revoked_reason, request_count,
                allowed_ips)
            SELECT 'key_hist' || g, %s, 'history ' || g, '', '["passports:read"]', 'production',
                md5('d' || g) || md5('e' || g), 'abcd', now() - (g || ' minutes')::interval,
                'revoked', now(), '', 0, '[]'
            FROM generate_series(1, 10000) AS g
            """,
            [workspace.pk],
        )
        c.execute(
            f"""
            INSERT INTO {requests} (api_key_id, at, method, path, status, ip, latency_ms)
            SELECT %s, now() - (g || ' seconds')::interval, 'GET', '/api/v1/passports', 200,
                '10.0.0.1', 3
            FROM generate_series(1, 1000000) AS g
            """,
            [key.pk],
        )
        c.execute(
            f"""
            INSERT INTO {events} (public_id, workspace_id, actor_type, actor_id, actor_label,
                action, target_type, target_id, target_label, ip, user_agent, metadata,
                created_at, prev_hash, hash)
            SELECT 'evt_hist' || g, %s, 'user', %s, 'bench@bench.test', 'key.created',
                'api_key', 'key_hist' || (g %% 10000), 'history', '10.0.0.1', 'bench', '{{}}',
                now() - (g || ' seconds')::interval, md5('p' || g) || md5('q' || g),
                md5('h' || g) || md5('i' || g)
            FROM generate_series(1, 1000000) AS g
            """,
            [workspace.pk, str(owner.pk)],
        )
        c.execute("ANALYZE")


if __name__ == "__main__":
    main()
