"""An OAuth grant's own budget (SPEC §3: grants carry the same caps as keys) from Connected apps
and Django admin, through `connection_set_budget` (audited `oauth.grant_updated`), and in force
on the app's next request."""

from http import HTTPStatus

import pytest
from django.test import Client
from django.urls import reverse

from audit.models import AuditEvent
from oauth.models import Connection
from tests.factories import UserFactory

pytestmark = pytest.mark.django_db


def _url(connection) -> str:
    return reverse("oauth:connection_budget", args=[connection.public_id])


def test_the_granting_user_sets_a_budget_without_javascript(
    oauth_app, tokens_for, client_for
) -> None:
    access = tokens_for(oauth_app, "editor")["access_token"]
    grant = Connection.objects.get()
    editor = client_for("editor")
    listing = editor.get(reverse("oauth:connected_apps")).content.decode()
    assert _url(grant) in listing
    page = editor.get(_url(grant))
    assert page.status_code == HTTPStatus.OK
    assert "Save budget" in page.content.decode()
    response = editor.post(_url(grant), {"daily_cap": "1", "credits": "", "credits_refill": ""})
    assert response.status_code == HTTPStatus.SEE_OTHER
    assert response["Location"] == _url(grant)
    grant.refresh_from_db()
    assert grant.daily_cap == 1
    event = AuditEvent.objects.get(action="oauth.grant_updated")
    assert event.metadata["daily_cap"] == [None, 1]
    assert event.metadata["connection"] == grant.public_id
    assert event.metadata["door"] == "dashboard"
    api = Client(headers={"Authorization": f"Bearer {access}"})
    assert [api.get("/api/v1/me").status_code for _ in range(2)] == [200, 429]
    assert "1/1 today" in editor.get(reverse("oauth:connected_apps")).content.decode()


def test_htmx_swaps_the_section_and_bad_input_saves_nothing(
    oauth_app, tokens_for, client_for
) -> None:
    tokens_for(oauth_app, "editor")
    grant = Connection.objects.get()
    editor = client_for("editor")
    htmx = {"HX-Request": "true"}
    ok = editor.post(_url(grant), {"credits": "100", "credits_refill": "daily"}, headers=htmx)
    assert ok.status_code == HTTPStatus.OK
    assert ok.content.decode().lstrip().startswith('<section id="grant-budget"')
    assert "100 of 100 left; refills daily" in ok.content.decode()
    for bad in ({"daily_cap": "-1"}, {"credits": "1" * 30}, {"daily_cap": "1\x00"}):
        refused = editor.post(_url(grant), bad, headers=htmx)
        assert refused.status_code == HTTPStatus.UNPROCESSABLE_ENTITY
    grant.refresh_from_db()
    assert (grant.daily_cap, grant.credits, grant.credits_refill) == (None, 100, "daily")
    assert AuditEvent.objects.filter(action="oauth.grant_updated").count() == 1


def test_another_users_grant_is_404(oauth_app, tokens_for, client_for) -> None:
    tokens_for(oauth_app, "editor")
    grant = Connection.objects.get()
    for role in ("viewer", "owner"):
        client = client_for(role)
        assert client.get(_url(grant)).status_code == HTTPStatus.NOT_FOUND
        assert client.post(_url(grant), {"daily_cap": "5"}).status_code == HTTPStatus.NOT_FOUND
    grant.refresh_from_db()
    assert grant.daily_cap is None


def test_admin_action_sets_a_grants_budget(oauth_app, tokens_for) -> None:
    tokens_for(oauth_app, "editor")
    grant = Connection.objects.get()
    staff = Client()
    staff.force_login(UserFactory(email="ops@gatehouse.test", is_staff=True, is_superuser=True))
    changelist = reverse("admin:oauth_connection_changelist")
    selected = {"action": "set_budget", "_selected_action": [grant.pk]}
    form = staff.post(changelist, selected)
    assert 'name="daily_cap"' in form.content.decode()
    refused = staff.post(changelist, {**selected, "daily_cap": "0", "apply": "1"})
    assert "greater than or equal to 1" in refused.content.decode()
    done = staff.post(changelist, {**selected, "daily_cap": "9", "credits": "90",
                                   "credits_refill": "monthly", "apply": "1"}, follow=True)
    assert "Set the budget of 1 grant(s)." in done.content.decode()
    grant.refresh_from_db()
    assert (grant.daily_cap, grant.credits, grant.credits_refill) == (9, 90, "monthly")
    event = AuditEvent.objects.get(action="oauth.grant_updated")
    assert event.metadata["door"] == "admin"
