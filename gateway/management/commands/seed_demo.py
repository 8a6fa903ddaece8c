"""`manage.py seed_demo`: the demo workspace a newcomer explores after `make run` (issue 15
point 8). It lives in the gateway because it fills every app (keys, OAuth, passports, usage).

Everything that is audited goes through the real services, now — never a back-dated or forged
audit event (the chain is tamper-evident; `verify_audit_log` passes after seeding). Only metering
data (requests per day for the last 30 days, a key's recent requests) is written directly, as
the usage flush writes it. Safe to run again: the data is seeded once; each run rotates the
"Quickstart (make run)" key with no overlap so that a working token can be printed.
"""

from __future__ import annotations

import random
from datetime import UTC, timedelta
from typing import Any

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand
from django.db import transaction
from django.utils import timezone

from apikeys.models import ApiKey, KeyRequest, KeyStatus, KeyUsageDay
from apikeys.services import apikey_create, apikey_revoke, apikey_rotate
from core.context import Actor, RequestContext
from oauth.services import connection_grant, oauth_app_create
from passports.gs1 import gtin_check_digit
from passports.services import collection_create, passport_create
from workspaces.models import Membership, Plan, Workspace
from workspaces.roles import Role
from workspaces.services import membership_add, workspace_create

DEMO_SLUG = "demo"
DEMO_OWNER = "owner@demo.gatehouse.test"
DEMO_PASSWORD = "gatehouse-demo"  # a development login, printed on purpose
QUICKSTART_KEY = "Quickstart (make run)"
BASE_URL = "http://127.0.0.1:8000"
PRODUCTS = [
    ("Cordless drill 18 V", "400638133393"), ("Impact driver", "400638133394"),
    ("Angle grinder 125 mm", "400638133395"), ("Work light LED", "400638133396"),
    ("Battery pack 5 Ah", "400638133397"), ("Fast charger", "400638133398"),
]


def _gtin(body: str) -> str:
    return f"{body}{gtin_check_digit(body)}"


class Command(BaseCommand):
    help = ("Create the demo workspace with realistic data (idempotent), rotate its quickstart "
            "key and print where to go: the dashboard, the logins, /admin/ and a curl line.")

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("--base-url", default=BASE_URL,
                            help=f"Where the server listens (default {BASE_URL}).")

    def handle(self, *args: Any, **options: Any) -> None:
        context = RequestContext.for_command("seed_demo")
        with transaction.atomic():
            workspace = Workspace.objects.filter(slug=DEMO_SLUG).first()
            if workspace is None:
                workspace = self._seed(context)
            token = self._quickstart_token(workspace, context)
        self._print_directions(options["base_url"].rstrip("/"), token)

    # --- The data, once ----------------------------------------------------------------------

    def _seed(self, context: RequestContext) -> Workspace:
        User = get_user_model()
        # The demo owner is also ops staff, so Django admin can be tried with one login.
        owner = User.objects.create_superuser(
            username=DEMO_OWNER, email=DEMO_OWNER, password=DEMO_PASSWORD
        )
        workspace = workspace_create(
            slug=DEMO_SLUG, name="Demo Workspace", owner=owner,
            plan=Plan.objects.get(code="basic"), actor=Actor.for_command("seed_demo"),
            context=context,
        )
        users = {}
        for role in (Role.ADMIN, Role.EDITOR, Role.VIEWER):
            email = f"{role.value}@demo.gatehouse.test"
            users[role] = User.objects.create_user(username=email, email=email,
                                                   password=DEMO_PASSWORD)
            membership_add(workspace=workspace, user=users[role], role=role,
                           actor=Actor.for_user(owner), context=context)
        second = workspace_create(
            slug="acme", name="Acme Labs", owner=owner, plan=Plan.objects.get(code="free"),
            actor=Actor.for_command("seed_demo"), context=context,
        )
        # Sign-in lands in the workspace used last: the demo one for the demo owner.
        Membership.objects.filter(user=owner, workspace=workspace).update(
            last_used_at=timezone.now())
        Membership.objects.filter(user=owner, workspace=second).update(
            last_used_at=timezone.now() - timedelta(days=1))

        admin = Actor.for_user(users[Role.ADMIN])
        by_admin = {"actor": admin, "context": context}
        now = timezone.now()
        read = ["passports:read", "collections:read"]
        write = [*read, "passports:write", "collections:write"]
        keys = {
            "ci": apikey_create(workspace=workspace, name="CI deploys", scopes=write,
                                environment="development", note="GitHub Actions, main branch",
                                **by_admin)[0],
            "billing": apikey_create(workspace=workspace, name="Billing sync", scopes=read,
                                     environment="development", note="Nightly export to "
                                     "finance", rate_limit_per_minute=60, **by_admin)[0],
            "partner": apikey_create(workspace=workspace, name="Partner portal (trial)",
                                     scopes=read, environment="development",
                                     expires_at=now + timedelta(days=3),
                                     note="Expires with the trial", **by_admin)[0],
            "old": apikey_create(workspace=workspace, name="Old warehouse scanner",
                                 scopes=read, environment="development", **by_admin)[0],
            "staging": apikey_create(workspace=workspace, name="Staging smoke tests",
                                     scopes=read, environment="staging", **by_admin)[0],
            "unused": apikey_create(workspace=workspace, name="Reporting (never used)",
                                    scopes=["audit:read"], environment="development",
                                    **by_admin)[0],
        }
        rotated, _token = apikey_rotate(key=keys["billing"], overlap="24h", **by_admin)
        keys["billing_new"] = rotated
        apikey_revoke(key=keys["old"], **by_admin)
        # Created weeks ago as far as the warnings go ("never used" after 7 days): metadata of
        # the key row, not of the audit log, whose events stay as recorded.
        ApiKey.objects.filter(pk=keys["unused"].pk).update(created_at=now - timedelta(days=12))

        editor = Actor.for_user(users[Role.EDITOR])
        tools = collection_create(workspace=workspace, name="Power tools", actor=editor,
                                  context=context)
        for n, (name, body) in enumerate(PRODUCTS):
            for serial in range(2):
                passport_create(
                    workspace=workspace, gtin=_gtin(body), serial_number=f"SN-{n:02}{serial:03}",
                    product_name=name, status="published" if serial == 0 else "draft",
                    collection=tools if n < 4 else None, actor=editor, context=context,
                )

        app, _secret = oauth_app_create(
            workspace=workspace, name="Inventory Assistant",
            redirect_uris=["http://127.0.0.1:8765/callback"], confidential=True, **by_admin,
        )
        connection_grant(user=users[Role.EDITOR], application=app, workspace=workspace,
                         scopes=["passports:read", "passports:write"], context=context)

        self._usage(keys, now)
        return workspace

    def _usage(self, keys: dict[str, ApiKey], now: Any) -> None:
        """30 days of requests per day, and recent requests, as the usage flush records them."""
        rng = random.Random(15)  # noqa: S311 — demo figures, the same every time
        today = now.astimezone(UTC).date()
        profile = {"ci": 140, "billing": 60, "billing_new": 20, "partner": 35, "old": 25}
        for name, mean in profile.items():
            key = keys[name]
            days = range(30) if name != "billing_new" else range(1)
            if name == "old":
                days = range(5, 30)  # revoked: nothing in the last days
            rows = [KeyUsageDay(api_key=key, day=today - timedelta(days=d),
                                count=max(0, int(rng.gauss(mean, mean / 4)))) for d in days]
            KeyUsageDay.objects.bulk_create(rows)
            total = sum(row.count for row in rows)
            last = now - timedelta(minutes=rng.randint(2, 90)) if name != "old" else (
                now - timedelta(days=5))
            ApiKey.objects.filter(pk=key.pk).update(request_count=total, last_used_at=last,
                                                    last_used_ip="203.0.113.10")
            recent = [
                KeyRequest(api_key=key, at=last - timedelta(minutes=7 * i),
                           method="GET" if i % 3 else "POST", path="/api/v1/passports",
                           status=200 if i % 3 else 201, ip="203.0.113.10",
                           latency_ms=rng.randint(8, 60))
                for i in range(8)
            ]
            if name == "old":
                recent.insert(0, KeyRequest(api_key=key, at=now - timedelta(hours=2),
                                            method="GET", path="/api/v1/passports", status=401,
                                            ip="198.51.100.7", error="key_revoked"))
            KeyRequest.objects.bulk_create(recent)

    # --- Every run ---------------------------------------------------------------------------

    def _quickstart_token(self, workspace: Workspace, context: RequestContext) -> str:
        """A token that works now: the quickstart key rotated with no overlap (its previous
        token stops), or created on the first run. Both audited (`key.rotated`/`key.created`)."""
        actor = Actor.for_command("seed_demo")
        current = (
            ApiKey.objects.for_workspace(workspace).filter(name=QUICKSTART_KEY)
            .exclude(status=KeyStatus.REVOKED).order_by("-created_at").first()
        )
        if current is not None and not current.is_expired():
            _key, token = apikey_rotate(key=current, overlap="now", actor=actor, context=context)
            return token
        _key, token = apikey_create(
            workspace=workspace, name=QUICKSTART_KEY,
            scopes=["passports:read", "passports:write", "collections:read"],
            environment="development", note="Printed by `make run`; rotated on every run.",
            actor=actor, context=context,
        )
        return token

    def _print_directions(self, base: str, token: str) -> None:
        style = self.style
        lines = [
            "",
            style.SUCCESS("Gatehouse is seeded. Where to go:"),
            f"  Dashboard      {base}/accounts/login/",
            f"                 email {DEMO_OWNER}  password {DEMO_PASSWORD}",
            "                 (admin@, editor@ and viewer@demo.gatehouse.test: same password)",
            f"  Django admin   {base}/admin/  (the demo owner is staff)",
            f"  API reference  {base}/w/{DEMO_SLUG}/settings/api-reference/",
            "  Try the API (a development key, rotated on every run):",
            f'    curl -H "Authorization: Bearer {token}" {base}/api/v1/passports',
            "",
        ]
        self.stdout.write("\n".join(lines))
