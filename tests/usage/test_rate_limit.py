"""Editing a key's rate limit on its detail page: admins and owners, audited, with and without
JavaScript."""

import re
from http import HTTPStatus

import pytest
from django.test import Client
from django.urls import reverse

from apikeys.models import ApiKey
from audit.models import AuditEvent
from tests.factories import WorkspaceFactory, by

pytestmark = pytest.mark.django_db


def rate_url(key: ApiKey, slug: str = "acme") -> str:
    return reverse("apikeys:rate_limit", kwargs={"slug": slug, "key_id": key.public_id})


def detail_url(key: ApiKey) -> str:
    return reverse("apikeys:detail", kwargs={"slug": "acme", "key_id": key.public_id})


def changes() -> list[dict]:
    """The events' from/to, after checking that each says it came from the dashboard."""
    metadata = list(
        AuditEvent.objects.filter(action="key.rate_limit_changed").order_by("id")
        .values_list("metadata", flat=True)
    )
    assert all(m.pop("door") == "dashboard" for m in metadata)
    return metadata


@pytest.mark.parametrize("role", ["owner", "admin"])
def test_managers_see_the_form_with_the_current_limit(client_for, make_key, role) -> None:
    key, _ = make_key(rate_limit_per_minute=90)
    html = client_for(role).get(detail_url(key)).content.decode()
    form = html.split('<section id="rate-limit"')[1].split("</section>")[0]
    assert f'<form method="post" action="{rate_url(key)}" hx-post="{rate_url(key)}"' in form
    assert 'hx-target="#rate-limit" hx-swap="outerHTML"' in form
    assert 'name="csrfmiddlewaretoken"' in form
    assert re.search(r'<input type="number" name="rate_limit_per_minute" value="90"', form)
    assert "Empty means no per-key limit" in form


@pytest.mark.parametrize("role", ["editor", "viewer"])
def test_editors_and_viewers_see_the_limit_without_a_form(client_for, make_key, role) -> None:
    limited, unlimited = make_key(rate_limit_per_minute=90)[0], make_key(name="Free-running")[0]
    client = client_for(role)
    html = client.get(detail_url(limited)).content.decode()
    assert 'data-testid="rate-limit-value">90 requests per minute.<' in html
    assert "Only admins and owners can change it." in html
    assert rate_url(limited) not in html and 'name="rate_limit_per_minute"' not in html
    html = client.get(detail_url(unlimited)).content.decode()
    assert "No per-key limit: only the plan's daily budgets apply." in html


@pytest.mark.parametrize("role", ["editor", "viewer"])
@pytest.mark.parametrize("hx", [False, True])
def test_editors_and_viewers_may_not_change_it(client_for, make_key, role, hx, htmx) -> None:
    key, _ = make_key(rate_limit_per_minute=90)
    response = client_for(role).post(
        rate_url(key), {"rate_limit_per_minute": "5"}, headers=htmx if hx else {}
    )
    assert response.status_code == HTTPStatus.FORBIDDEN
    key.refresh_from_db()
    assert key.rate_limit_per_minute == 90
    assert changes() == []


def test_without_javascript_the_form_posts_and_redirects_back(client_for, make_key, members):
    key, _ = make_key(name="Billing sync")
    client = client_for("admin")
    response = client.post(rate_url(key), {"rate_limit_per_minute": "60"},
                           headers={"User-Agent": "browser/2"}, REMOTE_ADDR="198.51.100.4")
    assert response.status_code == HTTPStatus.SEE_OTHER
    assert response["Location"] == detail_url(key)
    key.refresh_from_db()
    assert key.rate_limit_per_minute == 60
    event = AuditEvent.objects.get(action="key.rate_limit_changed")
    assert event.metadata == {"from": None, "to": 60, "door": "dashboard"}
    assert (event.actor_id, event.target_id, event.ip, event.user_agent) == (
        str(members["admin"].pk), key.public_id, "198.51.100.4", "browser/2"
    )
    page = client.get(response["Location"]).content.decode()
    assert "Rate limit of “Billing sync”: 60 requests per minute." in page
    assert 'name="rate_limit_per_minute" value="60"' in page


def test_blank_removes_the_limit(client_for, make_key) -> None:
    key, _ = make_key(name="Billing sync", rate_limit_per_minute=60)
    client = client_for("owner")
    response = client.post(rate_url(key), {"rate_limit_per_minute": ""}, follow=True)
    assert response.status_code == HTTPStatus.OK
    key.refresh_from_db()
    assert key.rate_limit_per_minute is None
    assert changes() == [{"from": 60, "to": None}]
    assert "“Billing sync” has no rate limit now." in response.content.decode()
    # Saving the same value again changes nothing and records nothing.
    client.post(rate_url(key), {"rate_limit_per_minute": ""})
    assert changes() == [{"from": 60, "to": None}]


def test_with_htmx_the_section_swaps_in_place(client_for, make_key, htmx) -> None:
    key, _ = make_key(rate_limit_per_minute=60)
    response = client_for("admin").post(
        rate_url(key), {"rate_limit_per_minute": "120"}, headers=htmx
    )
    assert response.status_code == HTTPStatus.OK
    html = response.content.decode()
    assert html.lstrip().startswith('<section id="rate-limit"')
    assert "<html" not in html and 'id="recent-requests"' not in html
    assert 'name="rate_limit_per_minute" value="120"' in html
    assert 'role="status" data-testid="rate-limit-saved">Saved.<' in html
    assert "HX-Request" in response["Vary"]
    key.refresh_from_db()
    assert key.rate_limit_per_minute == 120
    assert changes() == [{"from": 60, "to": 120}]


BAD_LIMITS = [
    ("abc", "Enter a whole number of requests per minute, or leave it empty."),
    ("1.5", "Enter a whole number of requests per minute, or leave it empty."),
    ("0", "The rate limit must be a positive number of requests."),
    ("-5", "The rate limit must be a positive number of requests."),
    ("99999999999", "The rate limit can be at most 1,000,000 requests per minute."),
]


@pytest.mark.parametrize(("value", "message"), BAD_LIMITS)
@pytest.mark.parametrize("hx", [True, False])
def test_bad_input_is_a_form_error_and_changes_nothing(
    client_for, make_key, htmx, hx, value, message
) -> None:
    key, _ = make_key(rate_limit_per_minute=60)
    response = client_for("admin").post(
        rate_url(key), {"rate_limit_per_minute": value}, headers=htmx if hx else {}
    )
    assert response.status_code == HTTPStatus.UNPROCESSABLE_ENTITY
    html = response.content.decode()
    assert message in html
    assert f'value="{value}"' in html  # what was typed stays in the field, focused
    assert re.search(r'<input type="number" name="rate_limit_per_minute"[^>]*autofocus', html)
    if hx:
        assert html.lstrip().startswith('<section id="rate-limit"') and "<html" not in html
    else:  # the whole page, with the error in place
        assert "<html" in html and 'data-testid="requests-chart"' in html
    key.refresh_from_db()
    assert key.rate_limit_per_minute == 60
    assert changes() == []


def test_another_workspaces_key_is_404_and_untouched(client_for) -> None:
    from apikeys.services import apikey_create

    theirs, _ = apikey_create(workspace=WorkspaceFactory(slug="globex"), name="theirs",
                              scopes=["passports:read"], environment="development", **by())
    client = client_for("owner")
    for slug in ("acme", "globex"):
        response = client.post(rate_url(theirs, slug), {"rate_limit_per_minute": "1"})
        assert response.status_code == HTTPStatus.NOT_FOUND
    theirs.refresh_from_db()
    assert theirs.rate_limit_per_minute is None


def test_the_change_requires_post_and_csrf(members, make_key) -> None:
    key, _ = make_key()
    client = Client(enforce_csrf_checks=True)
    client.force_login(members["admin"])
    assert client.get(rate_url(key)).status_code == HTTPStatus.METHOD_NOT_ALLOWED
    response = client.post(rate_url(key), {"rate_limit_per_minute": "5"})
    assert response.status_code == HTTPStatus.FORBIDDEN
    key.refresh_from_db()
    assert key.rate_limit_per_minute is None
