"""A burst of webhook events, drained by N real `manage.py db_worker` processes (issue 18,
docs/PERFORMANCE.md "Notifications").

    DATABASE_URL=postgres://…/gatehouse_bench python -m bench.notifications_burst \
        --events 10000 --workers 2 [--emails]

On a migrated database of its own: creates a workspace with one webhook endpoint (a receiver
on loopback in this process that answers 204 and checks every signature), emits `--events`
events through `notifications.services.event_emit` in transactions of 500 (as a burst of
audited changes would), starts the workers and times until every delivery is sent. With
`--emails` each event is also emailed to the owner and an admin (Django's dummy mail backend
in the workers). Prints one JSON line: enqueue rate, drain time, events and deliveries per
second. Deletes the events, deliveries and tasks it made.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import django

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--events", type=int, default=10_000)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--emails", action="store_true")
    args = parser.parse_args()
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    django.setup()

    from django.conf import settings
    from django.contrib.auth import get_user_model
    from django.db import transaction
    from django_tasks_db.models import DBTaskResult

    from core.context import Actor, RequestContext
    from notifications.models import DeliveryState, EmailDelivery, Event, WebhookDelivery
    from notifications.services import event_emit, webhook_endpoint_create
    from tests.notifications.receiver import Receiver
    from workspaces.models import Membership, Plan, Workspace

    slug = f"burst-{int(time.time())}"
    workspace = Workspace.objects.create(slug=slug, name="Burst", plan=Plan.objects.first())
    users = []
    if args.emails:
        for role in ("owner", "admin"):
            user = get_user_model().objects.create(username=f"{role}@{slug}.test",
                                                   email=f"{role}@{slug}.test")
            Membership.objects.create(user=user, workspace=workspace, role=role)
            users.append(user)
    kind = "budget.threshold" if args.emails else "key.created"
    receiver = Receiver(secret="", default=204)
    receiver.__enter__()
    endpoint, secret = webhook_endpoint_create(
        workspace=workspace, url=receiver.url, event_types=[kind],
        actor=Actor.system("bench"), context=RequestContext(),
    )
    receiver.secret = secret
    workers: list[subprocess.Popen] = []
    try:
        started = time.perf_counter()
        for batch in range(0, args.events, 500):
            with transaction.atomic():
                for n in range(batch, min(batch + 500, args.events)):
                    event_emit(workspace=workspace, type=kind, dedup_key=f"burst:{n}",
                               subject=f"Burst event {n}", data={"n": n})
        enqueue_seconds = time.perf_counter() - started
        env = {**os.environ, "EMAIL_BACKEND": "django.core.mail.backends.dummy.EmailBackend",
               "GATEHOUSE_SEALING_KEY": settings.GATEHOUSE_SEALING_KEY,
               "LOG_LEVEL": "WARNING"}
        started = time.perf_counter()
        workers = [
            subprocess.Popen([sys.executable, "manage.py", "db_worker", "--no-reload",
                              "--interval", "0.1", "--no-startup-delay", "--verbosity", "0",
                              "--worker-id", f"bench-{n}"], cwd=ROOT, env=env)
            for n in range(args.workers)
        ]
        deliveries = args.events * (1 + len(users))
        while True:
            done = WebhookDelivery.objects.filter(endpoint=endpoint,
                                                  state=DeliveryState.SENT).count()
            if users:
                done += EmailDelivery.objects.filter(event__workspace=workspace,
                                                     state=DeliveryState.SENT).count()
            if done >= deliveries:
                break
            time.sleep(0.5)
        drain_seconds = time.perf_counter() - started
        verified = sum(r.verified for r in receiver.requests)
        print(json.dumps({
            "database": settings.DATABASES["default"]["ENGINE"].rsplit(".", 1)[-1],
            "events": args.events, "workers": args.workers, "emails_per_event": len(users),
            "enqueue_events_per_second": round(args.events / enqueue_seconds),
            "drain_seconds": round(drain_seconds, 1),
            "events_per_second": round(args.events / drain_seconds, 1),
            "deliveries_per_second": round(deliveries / drain_seconds, 1),
            "webhook_requests": len(receiver.requests), "verified": verified,
        }))
    finally:
        for worker in workers:
            worker.terminate()
        for worker in workers:
            worker.wait(timeout=30)
        receiver.__exit__()
        DBTaskResult.objects.filter(task_path__startswith="notifications.").delete()
        # The workspace stays (its audit events are append-only); its burst goes.
        Event.objects.filter(workspace=workspace).delete()
        endpoint.delete()


if __name__ == "__main__":
    main()
