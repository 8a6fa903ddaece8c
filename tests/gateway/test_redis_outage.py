"""A Redis outage in the middle of a run: 503 `service_unavailable` at once, nothing counted or
written twice, and service resumes when Redis returns — without a restart (SPEC §4, §5)."""

from http import HTTPStatus

import pytest
from django.test import Client

from apikeys.services import apikey_create
from gateway.models import IdempotencyRecord
from passports.models import Passport
from tests.factories import by

BODY = {"gtin": "4006381333931", "serial_number": "SN-1", "product_name": "Widget"}


@pytest.mark.django_db
def test_redis_outage_is_503_then_recovers(own_redis, workspace, members) -> None:
    _key, token = apikey_create(
        workspace=workspace, name="Outage", scopes=["passports:read", "passports:write"],
        environment="development", **by(members["admin"]),
    )
    api = Client(headers={"Authorization": f"Bearer {token}"})

    def create(key: str):
        return api.post("/api/v1/passports", {**BODY, "serial_number": key},
                        content_type="application/json", headers={"Idempotency-Key": key})

    assert create("a").status_code == HTTPStatus.CREATED

    own_redis.stop()
    down = create("b")
    assert down.status_code == HTTPStatus.SERVICE_UNAVAILABLE
    assert down.json()["error"] == "service_unavailable"
    assert down["Retry-After"]
    assert Passport.objects.count() == 1  # nothing was done
    assert not IdempotencyRecord.objects.filter(key="b").exists()  # the claim was released

    own_redis.start()  # same port: the app reconnects by itself
    again = create("b")
    assert again.status_code == HTTPStatus.CREATED
    assert "Idempotent-Replayed" not in again
    assert again["X-RateLimit-Remaining"] == "99"  # the new Redis starts empty: counted once
    assert Passport.objects.count() == 2
