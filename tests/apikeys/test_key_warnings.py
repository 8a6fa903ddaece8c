"""Warnings that help (issue 15 point 7): unused keys flagged, rounded expiry countdowns, "just
now", keys of another environment labelled, and refused attempts of a known key shown in its
recent requests with their error code (buffered like usage: no write on the request path)."""

from __future__ import annotations

from datetime import timedelta
from http import HTTPStatus

import pytest
import time_machine
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from apikeys.models import ApiKey, KeyRequest
from apikeys.services import apikey_pause, apikey_revoke
from gateway.usage import usage_flush
from tests.factories import by

pytestmark = pytest.mark.django_db

LIST = reverse("apikeys:list", kwargs={"slug": "acme"})


def detail(key: ApiKey) -> str:
    return reverse("apikeys:detail", kwargs={"slug": "acme", "key_id": key.public_id})


def row_of(html: str, key: ApiKey) -> str:
    return html.split(f'id="key-{key.public_id}"', 1)[1].split("</tr>", 1)[0]


def test_never_used_after_a_week_and_unused_for_a_month(client_for, make_key) -> None:
    now = timezone.now()
    fresh, _ = make_key(name="Fresh")
    idle, _ = make_key(name="Idle")
    stale, _ = make_key(name="Stale")
    busy, _ = make_key(name="Busy")
    ApiKey.objects.filter(pk__in=[idle.pk, stale.pk, busy.pk]).update(
        created_at=now - timedelta(days=40)
    )
    ApiKey.objects.filter(pk=stale.pk).update(last_used_at=now - timedelta(days=31))
    ApiKey.objects.filter(pk=busy.pk).update(last_used_at=now - timedelta(days=2))
    html = client_for("viewer").get(LIST).content.decode()
    assert 'data-warning="never_used"' in row_of(html, idle)
    assert 'data-warning="unused"' in row_of(html, stale)
    for quiet in (fresh, busy):
        assert "data-warning" not in row_of(html, quiet)
    page = client_for("viewer").get(detail(idle)).content.decode()
    assert "Never used in the 40 days since it was created." in page
    assert "Not used for 31 days." in client_for("viewer").get(detail(stale)).content.decode()


def test_a_key_of_another_environment_is_labelled(client_for, make_key, settings) -> None:
    assert settings.GATEHOUSE_ENVIRONMENT == "development"
    staging, _ = make_key(name="Staging", environment="staging")
    here, _ = make_key(name="Here")
    html = client_for("viewer").get(LIST).content.decode()
    assert "Not this deployment&#x27;s environment" in row_of(html, staging) or (
        "Not this deployment's environment" in row_of(html, staging))
    assert "data-warning" not in row_of(html, here)
    page = client_for("viewer").get(detail(staging)).content.decode()
    assert "this deployment is development, so it is refused here (environment_mismatch)" in page


def test_the_create_form_says_which_deployment_each_environment_works_against(
    client_for
) -> None:
    html = client_for("admin").get(reverse("apikeys:create", kwargs={"slug": "acme"})).content
    html = html.decode()
    assert "Development — works against this deployment" in html
    assert "Production — works only against a production deployment, not this one" in html
    assert "This deployment is development" in html


@pytest.mark.parametrize(
    ("left", "shown"),
    [
        (timedelta(days=2, hours=20), "expires in 3 days"),
        (timedelta(days=3, hours=2), "expires in 3 days"),
        (timedelta(hours=23, minutes=40), "expires in 1 day"),
        (timedelta(hours=4, minutes=40), "expires in 5 hours"),
        (timedelta(minutes=59, seconds=50), "expires in 1 hour"),
        (timedelta(minutes=12, seconds=20), "expires in 12 minutes"),
        (timedelta(seconds=10), "expires in under a minute"),
    ],
)
def test_expiry_countdown_rounds_to_the_nearest_unit(client_for, make_key, left, shown) -> None:
    now = timezone.now()
    with time_machine.travel(now, tick=False):
        key, _ = make_key(expires_at=now + left)
        html = client_for("viewer").get(LIST).content.decode()
    assert shown in row_of(html, key)


def test_just_now_instead_of_zero_minutes_ago(client_for, make_key) -> None:
    key, _ = make_key()
    ApiKey.objects.filter(pk=key.pk).update(last_used_at=timezone.now())
    html = client_for("viewer").get(LIST).content.decode()
    assert ">just now</time>" in row_of(html, key)
    assert "0 minutes ago" not in html
    ApiKey.objects.filter(pk=key.pk).update(last_used_at=timezone.now() - timedelta(minutes=5))
    html = client_for("viewer").get(LIST).content.decode()
    assert ">5\xa0minutes ago</time>" in row_of(html, key)


def writes(queries: CaptureQueriesContext) -> list[str]:
    return [q["sql"] for q in queries.captured_queries
            if q["sql"].lstrip().upper().startswith(("INSERT", "UPDATE", "DELETE"))]


@pytest.mark.parametrize("refusal", ["key_revoked", "key_paused", "key_expired",
                                     "ip_not_allowed", "environment_mismatch"])
def test_refused_attempts_show_in_the_keys_recent_requests(
    client_for, make_key, api, refusal
) -> None:
    kwargs = {}
    if refusal == "ip_not_allowed":
        kwargs["allowed_ips"] = ["10.0.0.0/8"]
    if refusal == "environment_mismatch":
        kwargs["environment"] = "staging"
    key, token = make_key(**kwargs)
    if refusal == "key_revoked":
        apikey_revoke(key=key, **by())
    elif refusal == "key_paused":
        apikey_pause(key=key, **by())
    elif refusal == "key_expired":
        ApiKey.objects.filter(pk=key.pk).update(expires_at=timezone.now() - timedelta(seconds=1))
    client = api(token)
    with CaptureQueriesContext(connection) as queries:
        response = client.get("/api/v1/me")
    assert response.json()["error"] == refusal
    assert writes(queries) == []  # buffered, not written on the request path
    assert not KeyRequest.objects.exists()
    usage_flush()
    [row] = KeyRequest.objects.filter(api_key=key)
    assert (row.error, row.status, row.path) == (refusal, response.status_code, "/api/v1/me")
    key.refresh_from_db()
    assert key.request_count == 0 and key.last_used_at is None  # a refusal is not a use
    page = client_for("admin").get(detail(key)).content.decode()
    assert f'data-testid="request-error">{refusal}</code>' in page


def test_served_requests_carry_no_error_and_guesses_record_nothing(make_key, api) -> None:
    key, token = make_key()
    assert api(token).get("/api/v1/me").status_code == HTTPStatus.OK
    stranger = token[:-10] + "A" * 10  # a bad checksum: refused without I/O
    assert api(stranger).get("/api/v1/me").status_code == HTTPStatus.UNAUTHORIZED
    usage_flush()
    [row] = KeyRequest.objects.all()
    assert (row.api_key_id, row.error, row.status) == (key.pk, "", 200)
    key.refresh_from_db()
    assert key.request_count == 1
