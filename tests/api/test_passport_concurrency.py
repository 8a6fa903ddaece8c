"""Racing creates, with real threads and connections: the cap and the uniqueness hold exactly."""

import json
import threading
from http import HTTPStatus

import pytest
from django.db import connection
from django.test import Client

from passports.models import Passport
from passports.services import passport_create
from tests.factories import by

THREADS = 8


def race(token: str, bodies: list[dict]) -> list[int]:
    """POST each body from its own thread, all released at once; the statuses."""
    barrier = threading.Barrier(len(bodies))
    statuses: list[int] = []
    lock = threading.Lock()

    def run(body: dict) -> None:
        client = Client(headers={"Authorization": f"Bearer {token}"})
        try:
            barrier.wait()
            response = client.post("/api/v1/passports", json.dumps(body),
                                   content_type="application/json")
            with lock:
                statuses.append(response.status_code)
        finally:
            connection.close()

    threads = [threading.Thread(target=run, args=(body,)) for body in bodies]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    return sorted(statuses)


@pytest.mark.django_db(transaction=True)
def test_racing_creates_take_the_last_slot_of_the_cap_once(workspace, make_key) -> None:
    _key, token = make_key()
    limit = workspace.plan.passports_limit
    for n in range(limit - 1):
        passport_create(workspace=workspace, gtin="4006381333931", serial_number=f"OLD-{n}",
                        product_name="Drill", **by())
    bodies = [{"gtin": "4006381333931", "serial_number": f"NEW-{n}", "product_name": "Drill"}
              for n in range(THREADS)]
    statuses = race(token, bodies)
    assert statuses == [HTTPStatus.CREATED] + [HTTPStatus.FORBIDDEN] * (THREADS - 1)
    assert Passport.objects.filter(workspace=workspace).count() == limit


@pytest.mark.django_db(transaction=True)
def test_racing_duplicates_give_one_201_and_409s(workspace, make_key, plan) -> None:
    workspace.plan = plan("pro")  # no cap: only the unique constraint decides
    workspace.save()
    _key, token = make_key()
    body = {"gtin": "4006381333931", "serial_number": "SAME", "product_name": "Drill"}
    statuses = race(token, [body] * THREADS)
    assert statuses == [HTTPStatus.CREATED] + [HTTPStatus.CONFLICT] * (THREADS - 1)
    assert Passport.objects.count() == 1


@pytest.mark.django_db(transaction=True)
def test_racing_creates_past_the_cap_with_overage_count_every_unit(workspace, make_key, plan):
    from core.context import Actor, RequestContext
    from passports.models import PassportOverageDay
    from workspaces.services import workspace_set_overage

    workspace.plan = plan("basic")
    workspace.save()
    workspace_set_overage(workspace=workspace, enabled=True, actor=Actor.system("test"),
                          context=RequestContext())
    _key, token = make_key()
    limit = workspace.plan.passports_limit
    for n in range(limit - 2):
        passport_create(workspace=workspace, gtin="4006381333931", serial_number=f"OLD-{n}",
                        product_name="Drill", **by())
    bodies = [{"gtin": "4006381333931", "serial_number": f"NEW-{n}", "product_name": "Drill"}
              for n in range(THREADS)]
    assert race(token, bodies) == [HTTPStatus.CREATED] * THREADS
    assert Passport.objects.filter(workspace=workspace).count() == limit - 2 + THREADS
    assert PassportOverageDay.objects.get(workspace=workspace).units == THREADS - 2
