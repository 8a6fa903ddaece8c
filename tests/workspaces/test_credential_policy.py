"""The workspace credential policy (SPEC §12, issue 16 point 3), as GitHub's token policies: set by
owners on the Security page (`policy.changed`), checked when keys are created, rotated and edited,
listed when existing keys break it, and enforced by the gateway with 403 `policy_violation`."""

from datetime import timedelta
from http import HTTPStatus
from io import StringIO

import pytest
from django.core.exceptions import ValidationError
from django.core.management import CommandError, call_command
from django.test import Client
from django.utils import timezone

from apikeys.models import ApiKey, Environment
from apikeys.services import apikey_rotate, apikey_update
from audit.models import AuditEvent
from core.context import Actor, RequestContext
from tests.factories import by
from workspaces.credential_policy import ENVIRONMENTS
from workspaces.services import workspace_policies_update

pytestmark = pytest.mark.django_db
SECURITY = "/w/acme/settings/security/"
NEW_KEY = "/w/acme/settings/api-keys/new/"


def _policy(workspace, owner, **changes):
    return workspace_policies_update(
        workspace=workspace, changes=changes, actor=Actor.for_user(owner),
        context=RequestContext(),
    )


def test_the_policy_knows_every_key_environment() -> None:
    assert list(ENVIRONMENTS) == Environment.values


def test_owner_sets_the_policy_on_the_security_page(client_for, workspace) -> None:
    owner = client_for("owner")
    page = owner.get(SECURITY)
    assert page.status_code == HTTPStatus.OK
    assert 'data-testid="credential-policy"' in page.content.decode()
    response = owner.post(SECURITY, {
        "key_max_lifetime_days": "90", "key_environments": ["production", "staging"],
        "production_keys_need_ip_allowlist": "on", "credential_policy_mode": "enforce",
    })
    assert response.status_code == HTTPStatus.FOUND
    workspace.refresh_from_db()
    assert workspace.key_max_lifetime_days == 90
    assert workspace.key_environments == ["production", "staging"]
    assert workspace.production_keys_need_ip_allowlist
    assert workspace.credential_policy_mode == "enforce"
    event = AuditEvent.objects.get(action="policy.changed")
    assert event.metadata["changed"]["key_max_lifetime_days"] == {"from": None, "to": 90}
    assert event.metadata["changed"]["credential_policy_mode"] == {
        "from": "warn", "to": "enforce"
    }
    assert event.metadata["door"] == "dashboard"


@pytest.mark.parametrize("role", ["admin", "editor", "viewer"])
def test_only_owners_change_the_policy(client_for, workspace, role) -> None:
    client = client_for(role)
    assert client.post(SECURITY, {"key_max_lifetime_days": "7"}).status_code == (
        HTTPStatus.FORBIDDEN
    )
    workspace.refresh_from_db()
    assert workspace.key_max_lifetime_days is None


@pytest.mark.parametrize("data", [
    {"key_max_lifetime_days": "45"},
    {"key_max_lifetime_days": "9" * 50},
    {"key_max_lifetime_days": "7\x00"},
    {"key_environments": ["moon"]},
    {"credential_policy_mode": "delete-them"},
])
def test_bad_policies_are_form_errors_and_nothing_is_saved(client_for, workspace, data) -> None:
    response = client_for("owner").post(SECURITY, data)
    assert response.status_code == HTTPStatus.UNPROCESSABLE_ENTITY
    assert "Select a valid choice" in response.content.decode()
    workspace.refresh_from_db()
    assert (workspace.key_max_lifetime_days, workspace.key_environments,
            workspace.credential_policy_mode) == (None, [], "warn")
    assert not AuditEvent.objects.filter(action="policy.changed").exists()


def test_the_service_refuses_values_outside_the_rules(workspace, members) -> None:
    for changes in ({"key_max_lifetime_days": 8}, {"key_environments": "production"},
                    {"credential_policy_mode": "off"},
                    {"production_keys_need_ip_allowlist": "yes"}):
        with pytest.raises(ValidationError):
            _policy(workspace, members["owner"], **changes)
    assert not AuditEvent.objects.filter(action="policy.changed").exists()


# --- New keys ------------------------------------------------------------------------------------


def test_a_never_expiring_key_under_a_maximum_lifetime_is_a_form_error_naming_the_rule(
    client_for, workspace, members
) -> None:
    _policy(workspace, members["owner"], key_max_lifetime_days=7)
    admin = client_for("admin")
    data = {"name": "Forever", "scopes": ["passports:read"], "environment": "development"}
    response = admin.post(NEW_KEY, data)
    assert response.status_code == HTTPStatus.UNPROCESSABLE_ENTITY
    assert "(maximum key lifetime) requires keys to expire within 7 days" in (
        response.content.decode()
    )
    too_late = (timezone.now() + timedelta(days=8)).strftime("%Y-%m-%dT%H:%M")
    assert admin.post(NEW_KEY, {**data, "expires_at": too_late}).status_code == (
        HTTPStatus.UNPROCESSABLE_ENTITY
    )
    assert not ApiKey.objects.exists()
    in_time = (timezone.now() + timedelta(days=6)).strftime("%Y-%m-%dT%H:%M")
    assert admin.post(NEW_KEY, {**data, "expires_at": in_time}).status_code == HTTPStatus.SEE_OTHER
    assert ApiKey.objects.count() == 1


def test_environment_and_ip_allowlist_rules_refuse_new_keys(make_key, workspace, members) -> None:
    _policy(workspace, members["owner"], key_environments=["production", "staging"],
            production_keys_need_ip_allowlist=True)
    with pytest.raises(ValidationError) as refused:
        make_key(environment="development")
    assert refused.value.message_dict["environment"] == [
        "The workspace's credential policy (allowed environments) allows only production and "
        "staging keys."
    ]
    with pytest.raises(ValidationError) as refused:
        make_key(environment="production")
    assert "(IP allowlist for production keys)" in refused.value.message_dict["allowed_ips"][0]
    key, _token = make_key(environment="production", allowed_ips=["192.0.2.0/24"])
    assert key.environment == "production"
    assert ApiKey.objects.count() == 1


def test_create_api_key_names_the_rule(workspace, members) -> None:
    _policy(workspace, members["owner"], key_max_lifetime_days=30)
    with pytest.raises(CommandError, match="maximum key lifetime"):
        call_command("create_api_key", "acme", "--name", "CI", stdout=StringIO())
    expires = (timezone.now() + timedelta(days=29)).isoformat()
    out = StringIO()
    call_command("create_api_key", "acme", "--name", "CI", "--expires", expires, stdout=out)
    assert out.getvalue().startswith("gk_")


def test_a_rotated_keys_successor_expires_within_the_maximum_lifetime(
    make_key, workspace, members
) -> None:
    old, _token = make_key()
    _policy(workspace, members["owner"], key_max_lifetime_days=30)
    new, _token = apikey_rotate(key=old, overlap="1h", **by(members["admin"]))
    assert new.expires_at is not None
    assert timedelta(days=29) < new.expires_at - timezone.now() <= timedelta(days=30)


def test_an_edit_may_not_break_one_more_rule(make_key, workspace, members) -> None:
    key, _token = make_key(expires_at=timezone.now() + timedelta(days=3))
    _policy(workspace, members["owner"], key_max_lifetime_days=7)
    with pytest.raises(ValidationError) as refused:
        apikey_update(key=key, changes={"expires_at": None}, **by(members["admin"]))
    assert "maximum key lifetime" in refused.value.message_dict["expires_at"][0]
    apikey_update(key=key, changes={"name": "Renamed"}, **by(members["admin"]))


# --- Existing keys: listed, warned, enforced ----------------------------------------------------


@pytest.fixture(params=["database", "redis"])
def backend(request) -> str:
    if request.param == "redis":
        request.getfixturevalue("own_redis")
    return request.param


def test_tightening_lists_existing_keys_then_warn_flags_and_enforce_refuses(
    backend, make_key, workspace, members, client_for
) -> None:
    key, token = make_key(name="Forever")
    compliant, _ = make_key(name="Short", expires_at=timezone.now() + timedelta(days=5))
    api = Client(headers={"Authorization": f"Bearer {token}"})
    assert api.get("/api/v1/me").status_code == HTTPStatus.OK  # cached now, with Redis
    owner = client_for("owner")
    owner.post(SECURITY, {"key_max_lifetime_days": "7", "credential_policy_mode": "warn"})
    page = owner.get(SECURITY).content.decode()
    assert page.count('data-testid="noncompliant-key"') == 1
    assert "Forever" in page and "Short" not in page
    assert "requires keys to expire within 7 days" in page
    assert "Flagged only" in page
    assert api.get("/api/v1/me").status_code == HTTPStatus.OK  # warn: it keeps working
    detail = owner.get(f"/w/acme/settings/api-keys/{key.public_id}/").content.decode()
    assert 'data-testid="policy-violations"' in detail

    owner.post(SECURITY, {"key_max_lifetime_days": "7", "credential_policy_mode": "enforce"})
    refused = api.get("/api/v1/me")
    assert refused.status_code == HTTPStatus.FORBIDDEN
    assert refused.json() == {
        "error": "policy_violation",
        "message": "The workspace's credential policy (maximum key lifetime) requires keys to "
                   "expire within 7 days. A workspace admin can edit the key to comply.",
    }
    assert refused.json() == api.get("/api/v1/me").json()  # a known credential, every time
    key.refresh_from_db()
    assert key.status == "active"  # never revoked by a policy
    assert "403 <code>policy_violation</code>" in owner.get(SECURITY).content.decode()

    apikey_update(key=key, changes={"expires_at": timezone.now() + timedelta(days=6)},
                  **by(members["admin"]))
    assert api.get("/api/v1/me").status_code == HTTPStatus.OK  # edited to comply
    assert 'data-testid="all-compliant"' in owner.get(SECURITY).content.decode()
    assert compliant.status == "active"


def test_an_enforced_policy_refuses_other_workspaces_nothing(
    make_key, workspace, other_workspace, members
) -> None:
    _other_key, other_token = make_key(workspace=other_workspace)
    _policy(workspace, members["owner"], key_max_lifetime_days=7, credential_policy_mode="enforce")
    response = Client(headers={"Authorization": f"Bearer {other_token}"}).get("/api/v1/me")
    assert response.status_code == HTTPStatus.OK
