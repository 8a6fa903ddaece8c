"""Editing a key (SPEC §3 "Edit", issue 15 point 4): name, note, scopes, allowed IPs, rate limit,
expiry and collections (SPEC §11) through `apikey_update`, from the dashboard (a page that posts
and redirects without JavaScript, a form that swaps itself with htmx), Django admin and the
service; one `key.updated` event with each changed field before → after; the next request sees
the change."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from http import HTTPStatus

import pytest
from django.core.exceptions import ValidationError
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from apikeys.models import ApiKey
from apikeys.services import apikey_revoke, apikey_rotate, apikey_update
from audit.models import AuditEvent
from passports.services import collection_create
from tests.factories import UserFactory, by

pytestmark = pytest.mark.django_db


def url(key: ApiKey, name: str = "apikeys:edit") -> str:
    return reverse(name, kwargs={"slug": "acme", "key_id": key.public_id})


def form_data(key: ApiKey, **changes: object) -> dict:
    """What the Edit form posts for `key` unchanged, with `changes` on top."""
    data = {
        "name": key.name, "note": key.note, "scopes": list(key.scopes),
        "expires_at": key.expires_at.strftime("%Y-%m-%dT%H:%M") if key.expires_at else "",
        "rate_limit_per_minute": key.rate_limit_per_minute or "",
        "allowed_ips": "\n".join(key.allowed_ips),
        "reach": "all" if key.collections is None else "selected",
    }
    data.update(changes)
    return data


def updated_events() -> list[AuditEvent]:
    return list(AuditEvent.objects.filter(action="key.updated").order_by("id"))


def test_edit_without_javascript_saves_and_redirects_with_before_and_after(
    client_for, make_key, members
) -> None:
    key, _token = make_key(name="Billing", scopes=["passports:read", "keys:read"])
    client = client_for("admin")
    page = client.get(url(key))
    assert page.status_code == HTTPStatus.OK
    html = page.content.decode()
    assert "<html" in html and f'<form method="post" action="{url(key)}"' in html
    assert 'value="Billing"' in html
    expires = (timezone.now() + timedelta(days=10)).replace(second=0, microsecond=0)
    response = client.post(url(key), form_data(
        key, name="Billing sync", note="Owned by finance", scopes=["passports:read"],
        allowed_ips="10.0.0.0/8, 192.0.2.7", rate_limit_per_minute="60",
        expires_at=expires.strftime("%Y-%m-%dT%H:%M"),
    ))
    assert response.status_code == HTTPStatus.SEE_OTHER
    assert response["Location"] == url(key, "apikeys:detail")
    key.refresh_from_db()
    assert (key.name, key.note, key.scopes) == ("Billing sync", "Owned by finance",
                                                ["passports:read"])
    assert key.allowed_ips == ["10.0.0.0/8", "192.0.2.7/32"]
    assert key.rate_limit_per_minute == 60 and key.expires_at == expires
    [event] = updated_events()
    assert event.actor_id == str(members["admin"].pk)
    assert event.metadata["door"] == "dashboard"
    assert sorted(event.metadata["changed"]) == sorted(
        ["name", "note", "scopes", "allowed_ips", "rate_limit_per_minute", "expires_at"]
    )
    assert event.metadata["name"] == ["Billing", "Billing sync"]
    assert event.metadata["scopes"] == [["keys:read", "passports:read"], ["passports:read"]]
    assert event.metadata["rate_limit_per_minute"] == [None, 60]
    assert event.metadata["expires_at"] == [None, expires.isoformat()]
    followed = client.get(response["Location"]).content.decode()
    assert "Saved “Billing sync”" in followed and "Owned by finance" in followed


def test_an_unchanged_form_saves_nothing_and_keeps_the_expiry_to_the_second(
    client_for, make_key
) -> None:
    expires = timezone.now() + timedelta(days=3, seconds=17)
    key, _token = make_key(expires_at=expires)
    response = client_for("admin").post(url(key), form_data(key))
    assert response.status_code == HTTPStatus.SEE_OTHER
    key.refresh_from_db()
    assert key.expires_at == expires
    assert updated_events() == []


def test_clearing_the_expiry_and_the_rate_limit(client_for, make_key) -> None:
    key, _token = make_key(
        expires_at=timezone.now() + timedelta(days=3), rate_limit_per_minute=5
    )
    response = client_for("owner").post(
        url(key), form_data(key, expires_at="", rate_limit_per_minute="")
    )
    assert response.status_code == HTTPStatus.SEE_OTHER
    key.refresh_from_db()
    assert key.expires_at is None and key.rate_limit_per_minute is None
    [event] = updated_events()
    assert event.metadata["rate_limit_per_minute"] == [5, None]


def test_edit_with_htmx_swaps_errors_in_place_and_redirects_when_saved(
    client_for, make_key, htmx
) -> None:
    key, _token = make_key()
    client = client_for("admin")
    bad = client.post(url(key), form_data(key, name=""), headers=htmx)
    assert bad.status_code == HTTPStatus.UNPROCESSABLE_ENTITY
    html = bad.content.decode()
    assert "<html" not in html and 'id="edit-form"' in html and "Give the key a name." in html
    good = client.post(url(key), form_data(key, name="Renamed"), headers=htmx)
    assert good.status_code == HTTPStatus.OK
    assert good["HX-Redirect"] == url(key, "apikeys:detail")
    key.refresh_from_db()
    assert key.name == "Renamed"


@pytest.mark.parametrize(
    ("changes", "field", "message"),
    [
        ({"allowed_ips": "10.0.0.0/33\nnot-an-ip"}, "allowed_ips", "Not an IP address or CIDR"),
        ({"scopes": ["passports:read", "admin:all"]}, "scopes", "Select a valid choice"),
        ({"scopes": []}, "scopes", "Choose at least one scope."),
        ({"name": "x" * 101}, "name", "at most 100 characters"),
        ({"name": "bad\x00name"}, "name", "Null characters are not allowed."),
        ({"note": "\x00"}, "note", "Null characters are not allowed."),
        ({"rate_limit_per_minute": "0"}, "rate_limit_per_minute", "positive number"),
        ({"rate_limit_per_minute": "9" * 40}, "rate_limit_per_minute", "at most 1,000,000"),
        ({"rate_limit_per_minute": "ten"}, "rate_limit_per_minute", "whole number"),
        ({"expires_at": "2001-01-01T00:00"}, "expires_at", "must be in the future"),
        ({"expires_at": "not a date"}, "expires_at", "Enter a valid date"),
        ({"allowed_ips": "1.2.3.4," * 60}, "allowed_ips", "At most 50 ranges."),
        ({"reach": "selected", "collections": ["col_nope"]}, "collections", "valid choice"),
    ],
)
def test_bad_input_is_a_form_error_and_saves_nothing(
    client_for, make_key, changes, field, message
) -> None:
    key, _token = make_key(name="Steady")
    before = ApiKey.objects.values().get(pk=key.pk)
    response = client_for("admin").post(url(key), form_data(key, **{"name": "Changed", **changes}))
    assert response.status_code == HTTPStatus.UNPROCESSABLE_ENTITY
    assert message in response.content.decode()
    assert ApiKey.objects.values().get(pk=key.pk) == before
    assert updated_events() == []


def test_every_error_comes_back_at_once(client_for, make_key) -> None:
    key, _token = make_key()
    response = client_for("admin").post(url(key), form_data(
        key, allowed_ips="999.1.1.1", rate_limit_per_minute="-3",
        expires_at="2001-01-01T00:00",
    ))
    html = response.content.decode()
    assert response.status_code == HTTPStatus.UNPROCESSABLE_ENTITY
    for message in ("Not an IP address or CIDR", "positive number", "must be in the future"):
        assert message in html


def test_collections_on_the_edit_form(client_for, make_key, workspace, other_workspace) -> None:
    tools = collection_create(workspace=workspace, name="Tools", **by())
    theirs = collection_create(workspace=other_workspace, name="Theirs", **by())
    key, _token = make_key()
    client = client_for("admin")
    page = client.get(url(key)).content.decode()
    assert "All passports" in page and "Only selected collections" in page and "Tools" in page
    assert "Theirs" not in page
    refused = client.post(url(key), form_data(
        key, reach="selected", collections=[theirs.public_id]))
    assert refused.status_code == HTTPStatus.UNPROCESSABLE_ENTITY
    key.refresh_from_db()
    assert key.collections is None
    saved = client.post(url(key), form_data(key, reach="selected", collections=[tools.public_id]))
    assert saved.status_code == HTTPStatus.SEE_OTHER
    key.refresh_from_db()
    assert key.collections == [tools.pk]
    [event] = updated_events()
    assert event.metadata["collections"] == [None, [tools.public_id]]
    detail = client.get(url(key, "apikeys:detail")).content.decode()
    assert tools.public_id in detail
    # "Only selected collections" with none ticked reaches nothing; "All passports" opens it.
    client.post(url(key), form_data(key, reach="selected"))
    key.refresh_from_db()
    assert key.collections == []
    client.post(url(key), form_data(key, reach="all"))
    key.refresh_from_db()
    assert key.collections is None


def test_create_form_chooses_collections(client_for, workspace) -> None:
    tools = collection_create(workspace=workspace, name="Tools", **by())
    client = client_for("admin")
    form = client.get(reverse("apikeys:create", kwargs={"slug": "acme"})).content.decode()
    assert "Only selected collections" in form and "Tools" in form
    response = client.post(reverse("apikeys:create", kwargs={"slug": "acme"}), {
        "name": "Restricted", "scopes": ["passports:read"], "environment": "development",
        "reach": "selected", "collections": [tools.public_id],
    })
    assert response.status_code == HTTPStatus.SEE_OTHER
    assert ApiKey.objects.get(name="Restricted").collections == [tools.pk]
    event = AuditEvent.objects.get(action="key.created", target_label__startswith="Restricted")
    assert event.metadata["collections"] == [tools.public_id]


def test_editors_and_viewers_cannot_edit_and_see_no_edit_link(client_for, make_key) -> None:
    key, _token = make_key()
    for role in ("editor", "viewer"):
        client = client_for(role)
        assert client.get(url(key)).status_code == HTTPStatus.FORBIDDEN
        assert client.post(url(key), form_data(key, name="Mine")).status_code == 403
        assert url(key) not in client.get(url(key, "apikeys:detail")).content.decode()
    key.refresh_from_db()
    assert key.name == "Integration"


def test_another_workspaces_key_is_404(client_for, make_key, other_workspace) -> None:
    key, _token = make_key(workspace=other_workspace)
    client = client_for("owner")
    edit = reverse("apikeys:edit", kwargs={"slug": "acme", "key_id": key.public_id})
    assert client.get(edit).status_code == HTTPStatus.NOT_FOUND
    assert client.post(edit, form_data(key, name="Stolen")).status_code == HTTPStatus.NOT_FOUND
    bad = reverse("apikeys:edit", kwargs={"slug": "acme", "key_id": "key_\x00\ud800"[:5]})
    assert client.get(bad).status_code == HTTPStatus.NOT_FOUND


def test_a_revoked_key_cannot_be_edited(client_for, make_key) -> None:
    key, _token = make_key()
    apikey_revoke(key=key, **by())
    client = client_for("admin")
    page = client.get(url(key)).content.decode()
    assert "only a live key can be edited" in page
    assert url(key) not in client.get(url(key, "apikeys:detail")).content.decode()
    response = client.post(url(key), form_data(key, name="Back"))
    assert response.status_code == HTTPStatus.CONFLICT
    key.refresh_from_db()
    assert key.name == "Integration"
    with pytest.raises(ValidationError, match="only a live key"):
        apikey_update(key=key, changes={"name": "Back"}, **by())


def test_the_service_refuses_unknown_fields_and_validates_everything_first(make_key) -> None:
    key, _token = make_key()
    with pytest.raises(ValidationError, match="cannot be edited: digest, environment"):
        apikey_update(key=key, changes={"environment": "production", "digest": "x"}, **by())
    with pytest.raises(ValidationError) as raised:
        apikey_update(key=key, changes={
            "name": "ok", "scopes": ["nope"], "allowed_ips": ["::1/200"],
            "collections": ["col_missing"], "expires_at": datetime(2000, 1, 1, tzinfo=UTC),
        }, **by())
    assert set(raised.value.message_dict) == {"scopes", "allowed_ips", "collections",
                                              "expires_at"}
    key.refresh_from_db()
    assert key.name == "Integration"
    assert updated_events() == []


def test_a_rotated_keys_successor_is_edited_alone(make_key) -> None:
    old, _token = make_key(name="Deploys")
    new, _token = apikey_rotate(key=old, overlap="1h", **by())
    apikey_update(key=new, changes={"name": "Deploys v2"}, **by())
    old.refresh_from_db()
    assert old.name == "Deploys"


def test_scope_change_applies_to_the_next_request(
    own_redis, client_for, make_key, api
) -> None:
    """With Redis the key is served from the per-process cache; the edit moves its version
    marker (as a revocation does), so the very next request sees the new scopes."""
    key, token = make_key(scopes=["passports:read", "keys:read"])
    client = api(token)
    assert client.get("/api/v1/keys").status_code == HTTPStatus.OK
    assert client.get("/api/v1/keys").status_code == HTTPStatus.OK  # from the cache now
    saved = client_for("admin").post(url(key), form_data(key, scopes=["passports:read"]))
    assert saved.status_code == HTTPStatus.SEE_OTHER
    refused = client.get("/api/v1/keys")
    assert (refused.status_code, refused.json()["error"]) == (
        HTTPStatus.FORBIDDEN, "insufficient_scope")
    client_for("admin").post(url(key), form_data(key, allowed_ips="192.0.2.0/24"))
    refused = client.get("/api/v1/passports")
    assert (refused.status_code, refused.json()["error"]) == (
        HTTPStatus.FORBIDDEN, "ip_not_allowed")


# --- Django admin -------------------------------------------------------------------------------


@pytest.fixture
def staff_client() -> Client:
    client = Client()
    client.force_login(UserFactory(is_staff=True, is_superuser=True))
    return client


def test_admin_edits_through_the_service(staff_client, make_key, workspace) -> None:
    tools = collection_create(workspace=workspace, name="Tools", **by())
    key, _token = make_key(name="Ops key")
    change = reverse("admin:apikeys_apikey_change", args=[key.pk])
    edit = reverse("admin:apikeys_apikey_edit", args=[key.pk])
    assert edit in staff_client.get(change).content.decode()
    assert staff_client.get(edit).status_code == HTTPStatus.OK
    bad = staff_client.post(edit, form_data(key, allowed_ips="nope/1"))
    assert bad.status_code == HTTPStatus.UNPROCESSABLE_ENTITY
    assert "Not an IP address or CIDR" in bad.content.decode()
    saved = staff_client.post(edit, form_data(
        key, name="Ops key 2", reach="selected", collections=tools.public_id))
    assert saved.status_code == HTTPStatus.FOUND
    key.refresh_from_db()
    assert key.name == "Ops key 2" and key.collections == [tools.pk]
    [event] = updated_events()
    assert event.metadata["door"] == "admin"
    assert event.metadata["name"] == ["Ops key", "Ops key 2"]


def test_a_token_pasted_into_the_note_never_reaches_the_audit_log(make_key) -> None:
    key, token = make_key()
    other, other_token = make_key(name="Other")
    apikey_update(key=key, changes={"note": f"old key was {other_token}"}, **by())
    event = AuditEvent.objects.get(action="key.updated")
    assert other_token not in str(event.metadata) and token not in str(event.metadata)
    assert event.metadata["changed"] == ["note"]
