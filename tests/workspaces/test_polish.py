"""Small things a newcomer notices (issue 15 point 10)."""

from http import HTTPStatus

import pytest
from django.test import Client

from apikeys.services import apikey_create
from tests.factories import by

pytestmark = pytest.mark.django_db


def test_login_error_says_email(client: Client, members) -> None:
    response = client.post("/accounts/login/", {"username": "owner@acme.test", "password": "no"})
    assert b"Please enter a correct email and password." in response.content


def test_settings_redirects_to_api_keys(owner_client, other_workspace) -> None:
    response = owner_client.get("/w/acme/settings/")
    assert response.status_code == HTTPStatus.FOUND
    assert response["Location"] == "/w/acme/settings/api-keys/"
    assert owner_client.get("/w/globex/settings/").status_code == HTTPStatus.NOT_FOUND


@pytest.mark.parametrize("method", ["get", "post", "delete"])
def test_api_v1_without_slash_answers_json(client: Client, method) -> None:
    response = getattr(client, method)("/api/v1")
    assert response.status_code == HTTPStatus.NOT_FOUND
    assert response["Content-Type"].startswith("application/json")
    assert response.json()["error"] == "not_found" and "/api/v1/" in response.json()["message"]


def test_just_used_key_says_just_now(owner_client, workspace, members) -> None:
    from django.utils import timezone

    key, _ = apikey_create(workspace=workspace, name="Fresh", scopes=["passports:read"],
                           environment="development", **by(members["admin"]))
    key.last_used_at = timezone.now()
    key.save(update_fields=["last_used_at"])
    page = owner_client.get("/w/acme/settings/usage/").content.decode()
    assert "just now" in page and "0\xa0minutes ago" not in page and "0 minutes ago" not in page


def test_sign_in_lands_in_the_workspace_used_last(members, workspace, password) -> None:
    from tests.factories import MembershipFactory, WorkspaceFactory

    zeta = WorkspaceFactory(slug="zeta", name="Zeta")  # after Acme by name
    MembershipFactory(workspace=zeta, user=members["owner"], role="viewer")
    client = Client()
    login = {"username": "owner@acme.test", "password": password}
    assert client.post("/accounts/login/", login, follow=True).redirect_chain[-1][0] == "/w/acme/"
    client.get("/w/zeta/settings/members/")
    client.post("/accounts/logout/")
    assert client.post("/accounts/login/", login, follow=True).redirect_chain[-1][0] == "/w/zeta/"


def test_overview_needs_attention_lists_leaks_expiring_and_budget(
    owner_client, workspace, members
) -> None:
    from datetime import timedelta

    from django.utils import timezone

    from workspaces.models import SecurityAlert

    apikey_create(workspace=workspace, name="Trial partner", scopes=["passports:read"],
                  environment="development", expires_at=timezone.now() + timedelta(days=2),
                  **by(members["admin"]))
    SecurityAlert.objects.create(workspace=workspace, kind="credential_leaked",
                                 subject="API key Deploy (gk_dev_…a1b2)")
    body = owner_client.get("/w/acme/").content.decode()
    attention = body[body.index('data-testid="needs-attention"'):body.index("today-heading")]
    assert attention.index("Deploy (gk_dev_…a1b2)") < attention.index("Trial partner")
    assert "expires in 2 days" in attention
    assert 'data-testid="budget-use"' in body and "of 100 (0%)" in body


def test_overview_says_all_clear(owner_client) -> None:
    assert b'data-testid="all-clear"' in owner_client.get("/w/acme/").content
