"""Webhooks with real processes (issue 18 point 5): django-tasks-db's worker (`manage.py
db_worker`) in separate processes on the test database, delivering to a receiver on loopback
that checks every signature, fails on purpose and recovers; a worker killed mid-delivery; two
workers sharing one queue."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
from collections import Counter
from pathlib import Path

import pytest
from django.conf import settings
from django_tasks_db.models import DBTaskResult

from notifications.models import DeliveryState, WebhookDelivery
from notifications.services import webhook_endpoint_create
from notifications.sweep import notify_due
from tests.factories import by, key_with_token
from tests.notifications.receiver import Receiver
from tests.servers import ROOT, wait_until
from tests.servers import test_database_url as database_url

pytestmark = pytest.mark.django_db(transaction=True)

TIMEOUT = 1.0  # the workers' delivery timeout; their lease is 2 × 1 + 5 = 7 s


def worker_env() -> dict[str, str]:
    return {
        **{k: v for k, v in os.environ.items() if k != "DJANGO_SETTINGS_MODULE"},
        "DATABASE_URL": database_url(),
        "GATEHOUSE_ENVIRONMENT": "development",
        "GATEHOUSE_KEY_PEPPER": settings.GATEHOUSE_KEY_PEPPER,
        "GATEHOUSE_SEALING_KEY": settings.GATEHOUSE_SEALING_KEY,
        "SECRET_KEY": settings.SECRET_KEY,
        "DEBUG": "1",
        "LOG_LEVEL": "WARNING",
        "GATEHOUSE_WEBHOOK_TIMEOUT_SECONDS": str(TIMEOUT),
        "GATEHOUSE_WEBHOOK_RETRY_BASE_SECONDS": "0.3",
        "GATEHOUSE_WEBHOOK_RETRY_MAX_DELAY_SECONDS": "1",
    }


class Worker:
    def __init__(self, name: str) -> None:
        self.name = name
        self.log = Path(tempfile.mkstemp(prefix=f"gatehouse-{name}-", suffix=".log")[1])
        with self.log.open("w") as out:
            self.process = subprocess.Popen(
                [sys.executable, "manage.py", "db_worker", "--no-reload", "--interval", "0.1",
                 "--no-startup-delay", "--worker-id", name, "--verbosity", "0"],
                cwd=ROOT, env=worker_env(), stdout=out, stderr=subprocess.STDOUT,
            )

    def stop(self, sig: int = signal.SIGTERM) -> None:
        if self.process.poll() is None:
            self.process.send_signal(sig)
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)
        self.log.unlink(missing_ok=True)


@pytest.fixture
def workers():
    started: list[Worker] = []

    def start(name: str) -> Worker:
        worker = Worker(name)
        started.append(worker)
        return worker

    yield start
    for worker in started:
        worker.stop()


@pytest.fixture
def receiver():
    with Receiver(secret="") as r:
        yield r


def subscribe(workspace, members, receiver) -> None:
    _, secret = webhook_endpoint_create(
        workspace=workspace, url=receiver.url, event_types=["key.created"],
        **by(members["admin"]),
    )
    receiver.secret = secret


def sent(count: int) -> bool:
    return WebhookDelivery.objects.filter(state=DeliveryState.SENT).count() == count


def test_a_worker_process_retries_until_the_receiver_recovers(
    workspace, members, receiver, workers
) -> None:
    subscribe(workspace, members, receiver)
    receiver.plan = [500, "hang", 502] + [200] * 10 + [503]
    receiver.hang_seconds = 3
    for n in range(5):
        key_with_token(workspace, name=f"key {n}")
    workers("worker-1")

    wait_until(lambda: sent(5), timeout=60, what="five deliveries")

    events = Counter(r.event["id"] for r in receiver.requests)
    assert len(events) == 5
    assert all(r.verified for r in receiver.requests)
    # Three failures (500, a timeout, 502) were retried: 8 requests for 5 events, each event
    # delivered (2xx) exactly once.
    assert len(receiver.requests) == 8
    delivered = Counter(r.event["id"] for r in receiver.requests if r.answered == 200)
    assert set(delivered.values()) == {1} and len(delivered) == 5
    assert sum(d.attempts for d in WebhookDelivery.objects.all()) == 8


def test_a_worker_killed_mid_delivery_leaves_it_to_be_retried_not_lost(
    workspace, members, receiver, workers, settings
) -> None:
    settings.GATEHOUSE_WEBHOOK_TIMEOUT_SECONDS = TIMEOUT  # the sweep's lease, as the workers'
    subscribe(workspace, members, receiver)
    receiver.plan = ["hang"]
    receiver.hang_seconds = 0.8  # answers within the timeout, but the worker is dead by then
    key_with_token(workspace)
    first = workers("doomed")
    wait_until(lambda: len(receiver.requests) == 1, timeout=30, what="the first request")
    first.process.send_signal(signal.SIGKILL)  # mid-request: no outcome is written
    first.process.wait(timeout=10)

    delivery = WebhookDelivery.objects.get()
    assert delivery.state == DeliveryState.PENDING and delivery.leased_until is not None
    # The task row stays "running" for the dead worker forever: the delivery row is the truth.
    assert DBTaskResult.objects.filter(status="RUNNING").count() == 1

    workers("survivor")
    assert notify_due().requeued == 0  # still leased: the dead worker might be alive
    wait_until(lambda: notify_due().requeued == 1, timeout=20, what="the lease to run out")
    wait_until(lambda: sent(1), timeout=30, what="the retried delivery")

    ids = [r.event["id"] for r in receiver.requests]
    assert len(ids) == 2 and ids[0] == ids[1]  # at least once, same event id to deduplicate
    assert receiver.requests[0].headers["Gatehouse-Delivery"] == (
        receiver.requests[1].headers["Gatehouse-Delivery"])
    assert all(r.verified for r in receiver.requests)
    delivery.refresh_from_db()
    assert delivery.attempts == 2


def test_two_workers_share_one_queue_without_sending_anything_twice(
    workspace, members, receiver, workers, plan
) -> None:
    workspace.plan = plan("scale")
    workspace.save()
    subscribe(workspace, members, receiver)
    count = 40  # the Scale plan's 50 active keys at most
    for n in range(count):
        key_with_token(workspace, name=f"k{n}")
    workers("worker-a")
    workers("worker-b")

    wait_until(lambda: sent(count), timeout=120, what=f"{count} deliveries")

    assert len(receiver.requests) == count
    assert len({r.event["id"] for r in receiver.requests}) == count
    assert all(r.verified for r in receiver.requests)
    by_worker = Counter(
        w for ids in DBTaskResult.objects.values_list("worker_ids", flat=True) for w in ids
    )
    assert set(by_worker) == {"worker-a", "worker-b"}, by_worker
