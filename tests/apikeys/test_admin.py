import re
from http import HTTPStatus

import pytest
from django.urls import reverse

from apikeys.models import ApiKey, KeyStatus
from apikeys.selectors import apikey_check_digest
from apikeys.services import apikey_create, apikey_revoke
from apikeys.tokens import token_digest
from audit.models import AuditEvent
from passports.models import Collection
from tests.factories import UserFactory, by

pytestmark = pytest.mark.django_db

CHANGELIST = reverse("admin:apikeys_apikey_changelist")
ADD = reverse("admin:apikeys_apikey_add")


@pytest.fixture
def staff_client(client):
    staff = UserFactory(email="ops@gatehouse.test", is_staff=True, is_superuser=True)
    client.force_login(staff)
    client.staff = staff
    return client


@pytest.fixture
def keys(workspace, other_workspace):
    made = {}
    for ws, name, env in [
        (workspace, "Billing sync", "development"),
        (workspace, "CI deploys", "production"),
        (other_workspace, "Zapier", "staging"),
    ]:
        made[name] = apikey_create(workspace=ws, name=name, scopes=["passports:read"],
                                   environment=env, **by())
    return made


def rows(response) -> list[str]:
    pattern = r'<th class="field-name"><a href="[^"]+">([^<]+)</a>'
    return re.findall(pattern, response.content.decode())


def test_changelist_shows_workspace_hint_status_and_last_used(staff_client, keys) -> None:
    response = staff_client.get(CHANGELIST)
    assert response.status_code == HTTPStatus.OK
    html = response.content.decode()
    key, _ = keys["Billing sync"]
    for text in ("Billing sync", "Acme", "Globex", key.display_hint, "active", "Last used at"):
        assert text in html, text
    assert sorted(rows(response)) == ["Billing sync", "CI deploys", "Zapier"]


def test_search_by_name_hint_and_display_hint(staff_client, keys) -> None:
    key, token = keys["CI deploys"]
    assert rows(staff_client.get(CHANGELIST, {"q": "deploys"})) == ["CI deploys"]
    assert "CI deploys" in rows(staff_client.get(CHANGELIST, {"q": key.hint}))
    assert "CI deploys" in rows(staff_client.get(CHANGELIST, {"q": key.display_hint}))
    assert rows(staff_client.get(CHANGELIST, {"q": token})) == ["CI deploys"]


def test_filters_by_status_and_environment(staff_client, keys) -> None:
    apikey_revoke(key=keys["Zapier"][0], **by())
    assert rows(staff_client.get(CHANGELIST, {"status__exact": "revoked"})) == ["Zapier"]
    assert rows(staff_client.get(CHANGELIST, {"environment__exact": "production"})) == [
        "CI deploys"
    ]


def test_change_page_is_read_only_and_never_shows_the_digest(staff_client, keys) -> None:
    key, _ = keys["Billing sync"]
    url = reverse("admin:apikeys_apikey_change", args=[key.pk])
    html = staff_client.get(url).content.decode()
    assert key.digest not in html and "Digest" not in html
    assert 'name="_save"' not in html and 'name="name"' not in html and "<textarea" not in html
    response = staff_client.post(url, {"name": "renamed", "digest": "0" * 64})
    assert response.status_code == HTTPStatus.FORBIDDEN
    key.refresh_from_db()
    assert key.name == "Billing sync"
    assert staff_client.post(
        reverse("admin:apikeys_apikey_delete", args=[key.pk]), {"post": "yes"}
    ).status_code == HTTPStatus.FORBIDDEN
    assert ApiKey.objects.filter(pk=key.pk).exists()


def test_revoke_selected_calls_the_service_audited_with_the_staff_user(staff_client, keys):
    billing, token = keys["Billing sync"]
    ci, _ = keys["CI deploys"]
    apikey_revoke(key=ci, **by())
    asked = staff_client.post(
        CHANGELIST, {"action": "revoke_selected", "_selected_action": [billing.pk, ci.pk]},
    )
    assert asked.status_code == HTTPStatus.OK and "Yes, revoke these keys" in asked.content.decode()
    billing.refresh_from_db()
    assert billing.status == KeyStatus.ACTIVE  # asking revoked nothing
    response = staff_client.post(
        CHANGELIST,
        {"action": "revoke_selected", "_selected_action": [billing.pk, ci.pk], "apply": "1"},
        follow=True, headers={"User-Agent": "ops-browser"},
    )
    html = response.content.decode()
    assert "Revoked 1 key(s)." in html
    assert "This key is already revoked." in html
    billing.refresh_from_db()
    assert billing.status == KeyStatus.REVOKED and billing.revoked_by == staff_client.staff
    assert apikey_check_digest(token_digest(token), ip=None).error == "key_revoked"
    event = AuditEvent.objects.filter(action="key.revoked").order_by("-id").first()
    assert event.target_id == billing.public_id
    assert event.actor_id == str(staff_client.staff.pk) and event.user_agent == "ops-browser"
    assert AuditEvent.objects.filter(action="key.revoked").count() == 2  # not 3


def test_pause_and_resume_selected(staff_client, keys) -> None:
    key, token = keys["Billing sync"]
    staff_client.post(CHANGELIST, {"action": "pause_selected", "_selected_action": [key.pk]})
    assert apikey_check_digest(token_digest(token), ip=None).error == "key_paused"
    staff_client.post(CHANGELIST, {"action": "resume_selected", "_selected_action": [key.pk]})
    assert apikey_check_digest(token_digest(token), ip=None).ok
    assert list(
        AuditEvent.objects.filter(target_id=key.public_id).order_by("id")
        .values_list("action", "actor_id")
    ) == [("key.created", ""), ("key.paused", str(staff_client.staff.pk)),
          ("key.resumed", str(staff_client.staff.pk))]


def test_rotate_selected_asks_for_the_overlap_then_shows_new_tokens_once(staff_client, keys):
    key, old_token = keys["Billing sync"]
    form = staff_client.post(
        CHANGELIST, {"action": "rotate_selected", "_selected_action": [key.pk]}
    )
    assert form.status_code == HTTPStatus.OK
    assert 'value="1h"' in form.content.decode() and ApiKey.objects.count() == 3
    response = staff_client.post(CHANGELIST, {
        "action": "rotate_selected", "_selected_action": [key.pk], "overlap": "1h", "apply": "1",
    })
    html = response.content.decode()
    assert "no-store" in response["Cache-Control"]
    token = re.search(r'value="(gk_dev_[0-9A-Za-z]+)"', html).group(1)
    new = ApiKey.objects.get(rotated_from=key)
    assert apikey_check_digest(token_digest(token), ip=None).key == new
    assert apikey_check_digest(token_digest(old_token), ip=None).ok
    assert "will not be shown again" in html and "stops" in html
    assert AuditEvent.objects.get(action="key.rotated").actor_id == str(staff_client.staff.pk)


def test_add_goes_through_the_service_and_shows_the_token_once(staff_client, workspace):
    assert staff_client.get(ADD).status_code == HTTPStatus.OK
    response = staff_client.post(ADD, {
        "workspace": workspace.pk, "name": "From admin", "scopes": ["passports:read"],
        "environment": "development",
    })
    assert response.status_code == HTTPStatus.OK
    token = re.search(r'value="(gk_dev_[0-9A-Za-z]+)"', response.content.decode()).group(1)
    key = apikey_check_digest(token_digest(token), ip=None).key
    assert key.name == "From admin" and key.created_by == staff_client.staff
    assert AuditEvent.objects.get(action="key.created").actor_id == str(staff_client.staff.pk)


def test_add_refuses_bad_input_and_the_plan_limit(staff_client, workspace) -> None:
    response = staff_client.post(ADD, {
        "workspace": workspace.pk, "name": "x", "scopes": ["passports:read"],
        "environment": "development", "allowed_ips": "10.0.0.0/99",
    })
    assert "Not an IP address or CIDR range" in response.content.decode()
    for i in range(5):
        apikey_create(workspace=workspace, name=f"k{i}", scopes=["passports:read"],
                      environment="development", **by())
    response = staff_client.post(ADD, {
        "workspace": workspace.pk, "name": "sixth", "scopes": ["passports:read"],
        "environment": "development",
    })
    assert "The Free plan allows 5 active keys" in response.content.decode()
    assert ApiKey.objects.count() == 5


def test_admin_requires_staff(client_for, keys) -> None:
    response = client_for("owner").get(CHANGELIST)
    assert response.status_code == HTTPStatus.FOUND
    assert "/admin/login/" in response["Location"]


def test_set_rate_limit_selected_asks_then_sets_it_through_the_service(staff_client, keys):
    billing, _ = keys["Billing sync"]
    deploys, _ = keys["CI deploys"]
    selected = {"action": "set_rate_limit_selected", "_selected_action": [billing.pk, deploys.pk]}
    form = staff_client.post(CHANGELIST, selected)
    assert form.status_code == HTTPStatus.OK
    assert 'name="rate_limit_per_minute"' in form.content.decode()

    refused = staff_client.post(CHANGELIST, {**selected, "rate_limit_per_minute": "0",
                                             "apply": "1"})
    assert refused.status_code == HTTPStatus.OK
    assert "greater than or equal to 1" in refused.content.decode()
    assert not AuditEvent.objects.filter(action="key.rate_limit_changed").exists()

    done = staff_client.post(CHANGELIST, {**selected, "rate_limit_per_minute": "30",
                                          "apply": "1"}, follow=True)
    assert "Set the rate limit of 2 key(s)." in done.content.decode()
    assert set(ApiKey.objects.values_list("name", "rate_limit_per_minute")) == {
        ("Billing sync", 30), ("CI deploys", 30), ("Zapier", None)}
    events = AuditEvent.objects.filter(action="key.rate_limit_changed")
    assert {(e.actor_id, e.metadata["to"]) for e in events} == {(str(staff_client.staff.pk), 30)}
    assert events.count() == 2

    staff_client.post(CHANGELIST, {**selected, "rate_limit_per_minute": "", "apply": "1"})
    assert list(ApiKey.objects.filter(pk__in=[billing.pk, deploys.pk])
                .values_list("rate_limit_per_minute", flat=True)) == [None, None]


def test_collections_are_created_renamed_and_deleted_in_admin_through_the_services(
    staff_client, workspace, make_key
) -> None:
    add = staff_client.post(reverse("admin:passports_collection_add"),
                            {"workspace": workspace.pk, "name": "Tools"})
    assert add.status_code == HTTPStatus.FOUND, add.content
    tools = Collection.objects.get()
    change = reverse("admin:passports_collection_change", args=[tools.pk])
    assert staff_client.post(change, {"name": "Hand tools"}).status_code == HTTPStatus.FOUND
    key, _token = make_key(collections=[tools.public_id])
    page = staff_client.get(reverse("admin:apikeys_apikey_change", args=[key.pk]))
    assert f"Only collections: {tools.public_id}" in page.content.decode()
    delete = reverse("admin:passports_collection_delete", args=[tools.pk])
    assert staff_client.post(delete, {"post": "yes"}).status_code == HTTPStatus.FOUND
    assert not Collection.objects.exists()
    events = AuditEvent.objects.filter(target_type="collection").order_by("id")
    assert [(e.action, e.metadata["door"]) for e in events] == [
        ("collection.created", "admin"), ("collection.updated", "admin"),
        ("collection.deleted", "admin"),
    ]


def test_status_filter_offers_expired(staff_client, keys) -> None:
    from datetime import timedelta

    from django.utils import timezone

    billing, _ = keys["Billing sync"]
    ApiKey.objects.filter(pk=billing.pk).update(expires_at=timezone.now() - timedelta(days=1))
    expired = staff_client.get(CHANGELIST, {"status": "expired"}).content.decode()
    active = staff_client.get(CHANGELIST, {"status": "active"}).content.decode()
    assert "Billing sync" in expired and "CI deploys" not in expired
    assert "Billing sync" not in active and "CI deploys" in active
    assert "?status=expired" in active
