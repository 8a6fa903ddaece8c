"""`seed_demo` (issue 15 point 8): realistic demo data through the real services, a verified
audit chain, and directions with a curl line whose key works."""

import re
from http import HTTPStatus

import pytest
from django.core.management import call_command
from django.test import Client

from apikeys.models import ApiKey, KeyUsageDay
from audit.models import AuditEvent
from oauth.models import Connection
from passports.models import Passport
from workspaces.models import Workspace

pytestmark = pytest.mark.django_db

CURL = re.compile(r'curl -H "Authorization: Bearer (gk_dev_[0-9A-Za-z]+)" (\S+)')


def seed(capsys) -> str:
    call_command("seed_demo")
    return capsys.readouterr().out


def test_seed_demo_fills_every_page_and_prints_a_working_curl(capsys) -> None:
    out = seed(capsys)
    for where in ("http://127.0.0.1:8000/accounts/login/", "owner@demo.gatehouse.test",
                  "gatehouse-demo", "http://127.0.0.1:8000/admin/"):
        assert where in out
    token, url = CURL.search(out).groups()
    assert url == "http://127.0.0.1:8000/api/v1/passports"
    response = Client().get("/api/v1/passports", headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == HTTPStatus.OK and len(response.json()["data"]) == 12

    demo = Workspace.objects.get(slug="demo")
    keys = ApiKey.objects.for_workspace(demo)
    assert keys.filter(rotated_from__isnull=False).exists()
    assert keys.filter(status="revoked").exists()
    assert keys.filter(expires_at__isnull=False, status="active").exists()
    assert Connection.objects.filter(workspace=demo).exists()
    assert Passport.objects.for_workspace(demo).count() == 12
    days = set(KeyUsageDay.objects.filter(api_key__workspace=demo).values_list("day", flat=True))
    assert len(days) == 30
    actions = set(AuditEvent.objects.filter(workspace=demo).values_list("action", flat=True))
    assert {"key.created", "key.rotated", "key.revoked", "oauth_app.created",
            "oauth.consent_granted", "passport.created", "member.added"} <= actions
    call_command("verify_audit_log")  # a chain made by the services: nothing forged


def test_seed_demo_again_rotates_the_quickstart_key_only(capsys) -> None:
    first = CURL.search(seed(capsys)).group(1)
    count = ApiKey.objects.count()
    second = CURL.search(seed(capsys)).group(1)
    assert first != second and ApiKey.objects.count() == count + 1
    assert Workspace.objects.filter(slug="demo").count() == 1
    old = Client().get("/api/v1/me", headers={"Authorization": f"Bearer {first}"})
    new = Client().get("/api/v1/me", headers={"Authorization": f"Bearer {second}"})
    assert old.status_code == HTTPStatus.UNAUTHORIZED and new.status_code == HTTPStatus.OK


def test_demo_owner_lands_in_the_demo_workspace(capsys) -> None:
    seed(capsys)
    client = Client()
    response = client.post("/accounts/login/", {"username": "owner@demo.gatehouse.test",
                                                "password": "gatehouse-demo"}, follow=True)
    assert response.redirect_chain[-1][0] == "/w/demo/"
    body = response.content.decode()
    assert "Needs attention" in body and "Partner portal (trial)" in body
    assert "Reporting (never used)" in body
