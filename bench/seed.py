"""Seed a benchmark database and print what the run needs as JSON on stdout.

Run by `bench/run.py` with the bench settings, in a database it has just created. Everything a
scenario authenticates with is made through the product's own doors: the workspace, the API key
and the passport through their services, the OAuth access token through the real authorization-code
flow (consent screen, then the token endpoint with PKCE), so the gateway verifies it exactly as in
production. The tokens printed exist only in the harness's memory for the run; the database holds
digests, as in production.

    python -m bench.seed            # the main scenario database
    python -m bench.seed --history  # plus 10,000 keys, 1,000,000 recent-request rows,
                                    # 300,000 usage-day rows and 1,000,000 audit events
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import hashlib
import json
import os
import secrets
import sys
from urllib.parse import parse_qs, urlsplit

import django

HISTORY_KEYS = 10_000
HISTORY_REQUESTS_PER_KEY = 100  # usage keeps the newest 100 requests per key (gateway.usage)
HISTORY_USAGE_DAYS = 30
HISTORY_EVENTS = 1_000_000
LIVE_HISTORY_KEYS = 40  # the rest are revoked or expired, as a busy workspace accumulates
OAUTH_REDIRECT = "https://bench.example/callback"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--history", action="store_true")
    args = parser.parse_args()
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "bench.settings")
    django.setup()

    from django.conf import settings
    from django.contrib.auth import get_user_model
    from django.contrib.sessions.backends.db import SessionStore
    from rest_framework_api_key.models import APIKey

    from apikeys.services import apikey_create
    from core.context import Actor, RequestContext
    from passports.models import PassportStatus
    from passports.services import passport_create
    from workspaces.models import Plan
    from workspaces.services import workspace_create

    # A plan with budgets, so the daily counters run on every request, too large to be reached.
    plan, _ = Plan.objects.update_or_create(
        code="bench",
        defaults={
            "name": "Bench", "writes_per_day": 10**9, "passport_reads_per_day": 10**9,
            "active_keys_limit": 10**6, "passports_limit": None, "audit_retention_days": 365,
        },
    )
    user_model = get_user_model()
    owner = user_model.objects.create_user(
        username="owner@bench.test", email="owner@bench.test", password=None
    )
    workspace = workspace_create(
        slug="bench", name="Bench", owner=owner, plan=plan, actor=Actor.for_user(owner),
        context=RequestContext.for_command("bench seed"),
    )
    key, token = apikey_create(
        workspace=workspace, name="bench",
        scopes=["audit:read", "keys:read", "passports:read", "passports:write"],
        environment=settings.GATEHOUSE_ENVIRONMENT, actor=Actor.for_user(owner),
        # A per-key rate limit, so the limiter runs on every request, too large to be reached.
        rate_limit_per_minute=1_000_000, context=RequestContext.for_command("bench seed"),
    )
    # `capped` (issue 16): the same key with a daily cap and daily-refilled credits of its own,
    # too large to be reached, so both cap counters are taken on every request.
    _capped_key, capped_token = apikey_create(
        workspace=workspace, name="bench-capped",
        scopes=["audit:read", "keys:read", "passports:read", "passports:write"],
        environment=settings.GATEHOUSE_ENVIRONMENT, actor=Actor.for_user(owner),
        rate_limit_per_minute=1_000_000, daily_cap=10**9, credits=10**12,
        credits_refill="daily", context=RequestContext.for_command("bench seed"),
    )
    passport = passport_create(
        workspace=workspace, gtin="4006381333931", serial_number="SN-1",
        product_name="Bench passport", status=PassportStatus.PUBLISHED,
        actor=Actor.for_user(owner),
        context=RequestContext.for_command("bench seed"),
    )
    # The `write` scenario patches a passport of its own: updating the read scenarios' row
    # thousands of times would leave them walking its dead versions until autovacuum runs.
    write_passport = passport_create(
        workspace=workspace, gtin="4006381333931", serial_number="SN-WRITE",
        product_name="Bench passport (writes)", status=PassportStatus.PUBLISHED,
        actor=Actor.for_user(owner),
        context=RequestContext.for_command("bench seed"),
    )
    # `write_rows`: the same PATCH spread over 8 passports of the same workspace.
    write_rows = [
        passport_create(
            workspace=workspace, gtin="4006381333931", serial_number=f"SN-ROW-{n}",
            product_name=f"Bench passport (row {n})", status=PassportStatus.PUBLISHED,
            actor=Actor.for_user(owner),
            context=RequestContext.for_command("bench seed"),
        ).public_id
        for n in range(8)
    ]
    _peer_key, peer_token = APIKey.objects.create_key(name="bench-peer")
    oauth_token = _oauth_access_token(workspace, owner)
    # `apikey_unlimited`, `oauth_unlimited`: a workspace on a plan without daily budgets and a
    # key without a per-key rate limit: nothing to count.
    unlimited_plan, _ = Plan.objects.update_or_create(
        code="bench-unlimited",
        defaults={
            "name": "Bench unlimited", "writes_per_day": None, "passport_reads_per_day": None,
            "active_keys_limit": 10**6, "passports_limit": None, "audit_retention_days": 365,
        },
    )
    unlimited = workspace_create(
        slug="bench-unlimited", name="Bench unlimited", owner=owner, plan=unlimited_plan,
        actor=Actor.for_user(owner), context=RequestContext.for_command("bench seed"),
    )
    _unlimited_key, unlimited_token = apikey_create(
        workspace=unlimited, name="bench-unlimited",
        scopes=["passports:read", "passports:write"],
        environment=settings.GATEHOUSE_ENVIRONMENT, actor=Actor.for_user(owner),
        context=RequestContext.for_command("bench seed"),
    )
    unlimited_passport = passport_create(
        workspace=unlimited, gtin="4006381333931", serial_number="SN-1",
        product_name="Bench passport", status=PassportStatus.PUBLISHED,
        actor=Actor.for_user(owner),
        context=RequestContext.for_command("bench seed"),
    )
    unlimited_oauth_token = _oauth_access_token(unlimited, owner)

    out = {
        "token": token,
        "capped_token": capped_token,
        "peer_token": peer_token,
        "oauth_token": oauth_token,
        "passport_id": passport.public_id,
        "write_passport_id": write_passport.public_id,
        "write_rows_ids": write_rows,
        "unlimited_token": unlimited_token,
        "unlimited_oauth_token": unlimited_oauth_token,
        "unlimited_passport_id": unlimited_passport.public_id,
        "workspace": workspace.slug,
        "workspace_id": workspace.pk,
    }
    if args.history:
        out.update(_seed_history(workspace, owner, key))

    session = SessionStore()
    session["_auth_user_id"] = str(owner.pk)
    session["_auth_user_backend"] = "django.contrib.auth.backends.ModelBackend"
    session["_auth_user_hash"] = owner.get_session_auth_hash()
    session.create()
    out["session"] = session.session_key
    json.dump(out, sys.stdout)


def _oauth_access_token(workspace, owner) -> str:
    """An access token from the real flow: the app registered through `oauth.services`, the owner
    consents on `/api/oauth/authorize` (creating the connection), the code is exchanged with its
    PKCE verifier at `/api/oauth/token`. Driven in-process with Django's test client, at the
    origin the benchmark serves (`BENCH_ORIGIN`): tokens are bound to the origin they were
    issued at (RFC 8707), and one bound to `testserver` would be refused there."""
    from django.test import Client
    from django.test.utils import setup_test_environment

    from core.context import Actor, RequestContext
    from oauth.services import oauth_app_create

    with contextlib.suppress(RuntimeError):  # already set up for an earlier token
        setup_test_environment()  # lets the client read the consent form's context
    application, secret = oauth_app_create(
        workspace=workspace, name="Bench app", redirect_uris=[OAUTH_REDIRECT],
        confidential=True, actor=Actor.for_user(owner),
        context=RequestContext.for_command("bench seed"),
    )
    verifier = secrets.token_urlsafe(48)
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest())
    params = {
        "response_type": "code", "client_id": application.client_id,
        "redirect_uri": OAUTH_REDIRECT, "scope": "passports:read passports:write",
        "state": secrets.token_urlsafe(8), "code_challenge": challenge.rstrip(b"=").decode(),
        "code_challenge_method": "S256",
    }
    origin = urlsplit(os.environ.get("BENCH_ORIGIN", "https://testserver"))
    secure = origin.scheme == "https"
    browser = Client(HTTP_HOST=origin.netloc)
    browser.force_login(owner)
    consent = browser.get("/api/oauth/authorize", params, secure=secure)
    if consent.status_code != 200:
        raise SystemExit(f"bench.seed: the consent screen answered {consent.status_code}")
    form = {
        **consent.context["fields"], "scope": consent.context["scope"], "decision": "allow",
        "workspace": workspace.slug,
        "workspace_id": workspace.pk,
    }
    if consent.context["resource"]:
        form["resource"] = consent.context["resource"]
    allowed = browser.post("/api/oauth/authorize", form, secure=secure)
    code = parse_qs(urlsplit(allowed.get("Location", "")).query).get("code")
    if allowed.status_code != 303 or not code:
        raise SystemExit(f"bench.seed: consent did not redirect with a code ({allowed.status_code})"
                         )
    basic = base64.b64encode(f"{application.client_id}:{secret}".encode()).decode()
    response = Client(HTTP_HOST=origin.netloc).post(
        "/api/oauth/token",
        {"grant_type": "authorization_code", "code": code[0], "redirect_uri": OAUTH_REDIRECT,
         "code_verifier": verifier},
        secure=secure, headers={"Authorization": f"Basic {basic}"},
    )
    if response.status_code != 200:
        raise SystemExit(f"bench.seed: the token endpoint answered {response.status_code}")
    return response.json()["access_token"]


def _seed_history(workspace, owner, key) -> dict:
    """A workspace that has been busy for a long time, inserted server-side with generate_series
    (PostgreSQL): 10,000 keys (40 live, the rest revoked or expired), the newest 100 requests of
    each (1,000,000 rows: what usage keeps), 30 usage days each, and 1,000,000 audit events.

    The events' hashes are random-looking filler, not a verifiable chain (verify_audit_log would
    name the first seeded event): the benchmark measures reads. Their times increase with their
    ids by 1 µs, as the append-only log guarantees, so date filters work as in production.
    """
    from django.db import connection

    from apikeys.models import ApiKey, KeyRequest, KeyUsageDay
    from audit.models import AuditChain, AuditEvent
    from audit.selectors import _filter_scope
    from audit.services import chain_key
    from core.pagination import encode_cursor

    keys, requests, days, events = (
        ApiKey._meta.db_table, KeyRequest._meta.db_table, KeyUsageDay._meta.db_table,
        AuditEvent._meta.db_table,
    )
    actions = [
        "key.created", "key.revoked", "key.rotated", "key.paused", "key.resumed",
        "passport.created", "passport.updated", "oauth.consent_granted", "member.added",
    ]
    with connection.cursor() as c:
        # Bulk inserts of a million rows take longer than the product's 5 s statement timeout.
        c.execute("SET statement_timeout = 0")
        c.execute(
            f"""
            INSERT INTO {keys} (public_id, workspace_id, name, note, scopes, environment, digest,
                hint, created_at, created_by_id, expires_at, status, revoked_at, revoked_by_id,
                revoked_reason, last_used_at, request_count, allowed_ips, new_network,
                credits_refill, credits_epoch)
            SELECT 'key_hist' || g, %(ws)s, 'history ' || g, '', '["passports:read"]',
                %(env)s, md5('d' || g) || md5('e' || g), lpad((g %% 10000)::text, 4, '0'),
                now() - (g || ' minutes')::interval, %(owner)s,
                CASE WHEN g %% 10 = 0 THEN now() - (g || ' seconds')::interval END,
                CASE WHEN g <= %(live)s OR g %% 10 = 0 THEN 'active' ELSE 'revoked' END,
                CASE WHEN g > %(live)s AND g %% 10 <> 0 THEN now() - (g || ' seconds')::interval
                END,
                CASE WHEN g > %(live)s AND g %% 10 <> 0 THEN %(owner)s END,
                CASE WHEN g > %(live)s AND g %% 10 <> 0 THEN 'manual' ELSE '' END,
                now() - (g || ' seconds')::interval, 1000, '[]', '', '', 0
            FROM generate_series(1, %(n)s) AS g
            """,
            {"ws": workspace.pk, "env": key.environment, "owner": owner.pk,
             "live": LIVE_HISTORY_KEYS, "n": HISTORY_KEYS},
        )
        c.execute(
            f"""
            INSERT INTO {requests} (api_key_id, at, method, path, status, ip, latency_ms, error)
            SELECT k.id, now() - (r || ' seconds')::interval, 'GET',
                '/api/v1/passports/psp_history', 200, '10.0.0.1', 3, ''
            FROM {keys} k CROSS JOIN generate_series(1, %(n)s) AS r
            WHERE k.workspace_id = %(ws)s
            """,
            {"ws": workspace.pk, "n": HISTORY_REQUESTS_PER_KEY},
        )
        c.execute(
            f"""
            INSERT INTO {days} (api_key_id, day, count)
            SELECT k.id, current_date - d, 1000 + d
            FROM {keys} k CROSS JOIN generate_series(0, %(n)s - 1) AS d
            WHERE k.workspace_id = %(ws)s
            """,
            {"ws": workspace.pk, "n": HISTORY_USAGE_DAYS},
        )
        c.execute(
            f"SELECT max(created_at) FROM {events} WHERE workspace_id = %s",
            [workspace.pk],
        )
        (start,) = c.fetchone()
        c.execute(
            f"""
            INSERT INTO {events} (public_id, workspace_id, actor_type, actor_id, actor_label,
                action, target_type, target_id, target_label, ip, user_agent, metadata,
                created_at, prev_hash, hash, key_id)
            SELECT 'evt_hist' || g, %(ws)s, 'user', %(owner)s, 'owner@bench.test',
                (%(actions)s::text[])[1 + g %% %(n_actions)s], 'api_key',
                'key_hist' || (1 + g %% %(n_keys)s), 'history ' || (1 + g %% %(n_keys)s),
                '10.0.0.1', 'bench', jsonb_build_object('n', g),
                %(start)s + g * interval '1 microsecond',
                md5('p' || g) || md5('q' || g), md5('h' || g) || md5('i' || g),
                ''  -- unkeyed filler: no key id (the chain is not meant to verify)
            FROM generate_series(1, %(n)s) AS g
            ORDER BY g
            """,
            {"ws": workspace.pk, "owner": str(owner.pk), "actions": actions,
             "n_actions": len(actions), "n_keys": HISTORY_KEYS, "start": start,
             "n": HISTORY_EVENTS},
        )
        c.execute(
            f"SELECT id, hash, created_at FROM {events} WHERE workspace_id = %s "
            "ORDER BY id DESC LIMIT 1",
            [workspace.pk],
        )
        last_id, last_hash, last_at = c.fetchone()
        # Half way down the log: the deep page's cursor and the date-filtered page's bound.
        c.execute(
            f"SELECT id, created_at FROM {events} WHERE workspace_id = %s "
            "ORDER BY id DESC OFFSET %s LIMIT 1",
            [workspace.pk, HISTORY_EVENTS // 2],
        )
        deep_id, deep_at = c.fetchone()
    # The chain head follows the seeded events, so a later event is stamped after them.
    AuditChain.objects.filter(key=chain_key(workspace.pk)).update(
        head_hash=last_hash, head_created_at=last_at
    )
    with connection.cursor() as c:
        c.execute("VACUUM ANALYZE")  # what autovacuum would have done in a database this old
    scope = _filter_scope(workspace, None, None, None, None)
    return {
        "audit_deep_cursor": encode_cursor(deep_id, scope=scope),
        "audit_deep_until": deep_at.isoformat(),
        "history_last_event": last_id,
    }


if __name__ == "__main__":
    main()
