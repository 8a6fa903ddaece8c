"""Overage (SPEC §2, §12): an owner turns it on in the dashboard; then passports past the plan's
cap are created, not refused with 402, and counted per UTC day — on the Usage page and in
`GET /api/v1/me`. Turned off again, the cap answers 402 again."""

from datetime import timedelta
from http import HTTPStatus

import pytest
import time_machine
from django.utils import timezone

from audit.models import AuditEvent
from passports.models import Passport, PassportOverageDay
from tests.api.test_passports import DRILL, make_passport, post
from tests.factories import plan_named

pytestmark = pytest.mark.django_db


@pytest.fixture
def basic_at_cap(workspace):
    workspace.plan = plan_named("basic")
    workspace.save()
    for n in range(workspace.plan.passports_limit):
        make_passport(workspace, n)
    return workspace


def test_overage_on_creates_past_the_cap_and_counts_per_day(
    client_api, owner_client, basic_at_cap
) -> None:
    workspace = basic_at_cap
    limit = workspace.plan.passports_limit
    assert post(client_api, {**DRILL, "serial_number": "X-0"}).status_code == 402
    owner_client.post("/w/acme/settings/plan/overage", {"enabled": "1"})
    for n in range(3):
        response = post(client_api, {**DRILL, "serial_number": f"X-{n}"})
        assert response.status_code == HTTPStatus.CREATED, response.json()
    assert Passport.objects.count() == limit + 3
    today = PassportOverageDay.objects.get(workspace=workspace)
    assert today.units == 3 and today.day == timezone.now().date()
    created = AuditEvent.objects.filter(action="passport.created").order_by("-id")[0]
    assert created.metadata["overage"] is True

    me = client_api.get("/api/v1/me").json()
    assert me["overage"] == {"allowed": True, "enabled": True,
                             "price_cents": workspace.plan.overage_price_cents,
                             "units_today": 3, "units_last_30_days": 3}
    page = owner_client.get("/w/acme/settings/usage/").content.decode()
    assert 'data-testid="overage-today"><strong>3</strong>' in page

    # A new UTC day starts a new row; the old one stays.
    with time_machine.travel(timezone.now() + timedelta(days=1)):
        assert post(client_api, {**DRILL, "serial_number": "Y-1"}).status_code == 201
        assert client_api.get("/api/v1/me").json()["overage"]["units_today"] == 1
        assert client_api.get("/api/v1/me").json()["overage"]["units_last_30_days"] == 4
    assert PassportOverageDay.objects.count() == 2

    owner_client.post("/w/acme/settings/plan/overage", {"enabled": "0"})
    response = post(client_api, {**DRILL, "serial_number": "Z-1"})
    assert response.status_code == HTTPStatus.PAYMENT_REQUIRED
    assert "Settings → Plan" in response.json()["message"]


def test_a_refused_duplicate_counts_no_overage(client_api, owner_client, basic_at_cap) -> None:
    owner_client.post("/w/acme/settings/plan/overage", {"enabled": "1"})
    assert post(client_api, {**DRILL, "serial_number": "X-1"}).status_code == 201
    assert post(client_api, {**DRILL, "serial_number": "X-1"}).status_code == 409
    assert PassportOverageDay.objects.get().units == 1


def test_below_the_cap_counts_nothing_and_me_says_off(client_api, workspace) -> None:
    post(client_api, {**DRILL, "serial_number": "A-1"})
    assert not PassportOverageDay.objects.exists()
    assert client_api.get("/api/v1/me").json()["overage"] == {
        "allowed": False, "enabled": False, "price_cents": None, "units_today": 0,
        "units_last_30_days": 0,
    }
