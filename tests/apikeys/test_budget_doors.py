"""A key's own budget (SPEC §3 per-key caps) from the dashboard, Django admin and `create_api_key`:
each through `apikey_set_budget`, audited as `key.updated`."""

from http import HTTPStatus
from io import StringIO

import pytest
from django.core.management import CommandError, call_command
from django.test import Client
from django.urls import reverse

from apikeys.models import ApiKey
from audit.models import AuditEvent
from tests.factories import by

pytestmark = pytest.mark.django_db


def _budget_url(key) -> str:
    return reverse("apikeys:budget", kwargs={"slug": "acme", "key_id": key.public_id})


def _detail_url(key) -> str:
    return reverse("apikeys:detail", kwargs={"slug": "acme", "key_id": key.public_id})


def test_budget_is_set_without_javascript_post_redirect_get(client_for, make_key) -> None:
    key, token = make_key()
    admin = client_for("admin")
    response = admin.post(_budget_url(key), {
        "daily_cap": "500", "credits": "1000", "credits_refill": "monthly",
    })
    assert response.status_code == HTTPStatus.SEE_OTHER
    assert response["Location"] == _detail_url(key)
    key.refresh_from_db()
    assert (key.daily_cap, key.credits, key.credits_refill) == (500, 1000, "monthly")
    event = AuditEvent.objects.filter(action="key.updated").latest("id")
    assert event.metadata["changed"] == ["daily_cap", "credits", "credits_refill"]
    assert event.metadata["credits"] == [None, 1000]
    assert event.metadata["door"] == "dashboard"
    Client(headers={"Authorization": f"Bearer {token}"}).get("/api/v1/me")
    page = admin.get(_detail_url(key))
    assert page.status_code == HTTPStatus.OK
    html = page.content.decode()
    assert "1 of 500 requests used today (UTC)" in html
    assert "999 of 1000 left; refills monthly at 00:00 UTC" in html
    assert "Budget of “Integration” saved." in html


def test_budget_form_swaps_itself_with_htmx(client_for, make_key, htmx) -> None:
    key, _token = make_key()
    response = client_for("admin").post(
        _budget_url(key), {"daily_cap": "20", "credits": "", "credits_refill": ""}, headers=htmx
    )
    assert response.status_code == HTTPStatus.OK
    html = response.content.decode()
    assert html.lstrip().startswith('<section id="key-budget"')
    assert 'data-testid="budget-saved"' in html
    assert "0 of 20 requests used today" in html
    key.refresh_from_db()
    assert key.daily_cap == 20


@pytest.mark.parametrize(("data", "field", "message"), [
    ({"daily_cap": "0"}, "daily_cap", "greater than or equal to 1"),
    ({"daily_cap": "-5"}, "daily_cap", "greater than or equal to 1"),
    ({"daily_cap": "9" * 40}, "daily_cap", "less than or equal to 1000000000"),
    ({"daily_cap": "9" * 5000}, "daily_cap", "Enter a whole number of requests"),
    ({"credits": "12\x0034"}, "credits", "Enter a whole number of credits"),
    ({"credits": "1e6"}, "credits", "Enter a whole number of credits"),
    ({"credits": "", "credits_refill": "daily"}, "credits_refill", "needs a credit balance"),
    ({"credits": "5", "credits_refill": "hourly"}, "credits_refill", "Select a valid choice"),
])
def test_bad_budgets_are_form_errors_and_nothing_is_saved(
    client_for, make_key, htmx, data, field, message
) -> None:
    key, _token = make_key()
    before = AuditEvent.objects.count()
    admin = client_for("admin")
    for headers in (htmx, {}):
        response = admin.post(_budget_url(key), data, headers=headers)
        assert response.status_code == HTTPStatus.UNPROCESSABLE_ENTITY
        assert message in response.content.decode()
    key.refresh_from_db()
    assert (key.daily_cap, key.credits, key.credits_refill) == (None, None, "")
    assert AuditEvent.objects.count() == before


def test_members_without_the_role_get_403_and_see_no_form(client_for, make_key) -> None:
    key, _token = make_key()
    for role in ("viewer", "editor"):
        client = client_for(role)
        assert client.post(_budget_url(key), {"daily_cap": "5"}).status_code == (
            HTTPStatus.FORBIDDEN
        )
        page = client.get(_detail_url(key)).content.decode()
        assert 'data-testid="budget"' in page
        assert "Save budget" not in page
    key.refresh_from_db()
    assert key.daily_cap is None


def test_another_workspaces_key_is_404(client_for, make_key, other_workspace) -> None:
    key, _token = make_key(workspace=other_workspace)
    response = client_for("owner").post(_budget_url(key), {"daily_cap": "5"})
    assert response.status_code == HTTPStatus.NOT_FOUND
    key.refresh_from_db()
    assert key.daily_cap is None


def test_a_revoked_key_has_no_budget_form_and_refuses_changes(client_for, make_key) -> None:
    from apikeys.services import apikey_revoke

    key, _token = make_key()
    apikey_revoke(key=key, **by())
    admin = client_for("admin")
    assert "Save budget" not in admin.get(_detail_url(key)).content.decode()
    response = admin.post(_budget_url(key), {"daily_cap": "5"})
    assert response.status_code == HTTPStatus.UNPROCESSABLE_ENTITY
    assert "only a live key can be edited" in response.content.decode()


# --- Django admin -------------------------------------------------------------------------------


CHANGELIST = reverse("admin:apikeys_apikey_changelist")


@pytest.fixture
def staff_client(client):
    from tests.factories import UserFactory

    staff = UserFactory(email="ops@gatehouse.test", is_staff=True, is_superuser=True)
    client.force_login(staff)
    return client


def test_admin_action_sets_the_budget_through_the_service(staff_client, make_key) -> None:
    first, _ = make_key(name="First")
    second, _ = make_key(name="Second")
    selected = {"action": "set_budget_selected", "_selected_action": [first.pk, second.pk]}
    form = staff_client.post(CHANGELIST, selected)
    assert form.status_code == HTTPStatus.OK
    assert 'name="daily_cap"' in form.content.decode()
    refused = staff_client.post(CHANGELIST, {**selected, "daily_cap": "0", "apply": "1"})
    assert "greater than or equal to 1" in refused.content.decode()
    refused = staff_client.post(
        CHANGELIST, {**selected, "credits_refill": "monthly", "apply": "1"}
    )
    assert "needs a credit balance" in refused.content.decode()
    assert not AuditEvent.objects.filter(action="key.updated").exists()
    done = staff_client.post(CHANGELIST, {
        **selected, "daily_cap": "50", "credits": "200", "credits_refill": "daily", "apply": "1",
    }, follow=True)
    assert "Set the budget of 2 key(s)." in done.content.decode()
    for key in (first, second):
        key.refresh_from_db()
        assert (key.daily_cap, key.credits, key.credits_refill) == (50, 200, "daily")
    events = AuditEvent.objects.filter(action="key.updated")
    assert events.count() == 2
    assert {e.metadata["door"] for e in events} == {"admin"}
    page = staff_client.get(reverse("admin:apikeys_apikey_change", args=[first.pk]))
    assert "50 requests/day; 200 credits, refilled daily" in page.content.decode()


# --- create_api_key ------------------------------------------------------------------------------


def test_create_api_key_with_a_budget(workspace, members) -> None:
    out = StringIO()
    call_command(
        "create_api_key", "acme", "--name", "Metered", "--env", "development",
        "--daily-cap", "1000", "--credits", "50000", "--refill", "monthly", stdout=out,
    )
    token = out.getvalue().strip()
    assert token.startswith("gk_dev_")
    key = ApiKey.objects.get(name="Metered")
    assert (key.daily_cap, key.credits, key.credits_refill) == (1000, 50000, "monthly")
    created = AuditEvent.objects.get(target_id=key.public_id)
    assert created.action == "key.created"
    assert created.metadata["daily_cap"] == 1000
    assert created.metadata["credits_refill"] == "monthly"


@pytest.mark.parametrize(("args", "message"), [
    (["--daily-cap", "0"], "--daily-cap: Enter a number above 0"),
    (["--daily-cap", "-1"], "--daily-cap: Enter a number above 0"),
    (["--credits", "0"], "--credits"),
    (["--credits", "99999999999999999"], "--credits: At most"),
    (["--refill", "daily"], "--refill: A refill needs a credit balance"),
])
def test_create_api_key_refuses_a_bad_budget_and_creates_nothing(
    workspace, members, args, message
) -> None:
    with pytest.raises(CommandError, match=f"(?i){message}"):
        call_command("create_api_key", "acme", "--name", "Bad", *args, stdout=StringIO())
    assert not ApiKey.objects.filter(name="Bad").exists()


def test_update_api_key_sets_and_clears_the_budget(make_key) -> None:
    key, _token = make_key()
    out = StringIO()
    call_command("update_api_key", key.public_id, "--daily-cap", "100", "--credits", "500",
                 "--refill", "daily", stdout=out)
    key.refresh_from_db()
    assert (key.daily_cap, key.credits, key.credits_refill) == (100, 500, "daily")
    event = AuditEvent.objects.filter(action="key.updated").latest("id")
    assert event.metadata["door"] == "command"
    call_command("update_api_key", key.public_id, "--refill", "none", "--credits", "none",
                 stdout=out)
    key.refresh_from_db()
    assert (key.daily_cap, key.credits, key.credits_refill) == (100, None, "")
    for args, message in ((["--daily-cap", "0"], "--daily-cap: Enter a number above 0"),
                          (["--credits", "x\x00"], "--credits must be a whole number"),
                          (["--name", "New", "--refill", "monthly"], "--refill: A refill")):
        with pytest.raises(CommandError, match=message):
            call_command("update_api_key", key.public_id, *args, stdout=StringIO())
    key.refresh_from_db()
    assert (key.name, key.daily_cap, key.credits_refill) == ("Integration", 100, "")
