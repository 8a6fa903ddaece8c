"""Django admin for OAuth (no editable secrets, audited deletes and revocations) and pruning."""

from __future__ import annotations

from datetime import timedelta
from http import HTTPStatus

import pytest
from django.contrib.auth.models import Permission
from django.test import Client
from django.utils import timezone
from oauth2_provider.models import AccessToken, Application, Grant

from audit.models import AuditEvent
from core.context import RequestContext
from oauth.models import ISSUED_TOKEN_RETENTION, Connection, IssuedAccessToken
from oauth.selectors import token_checksum
from oauth.services import oauth_app_register_dynamic, oauth_prune
from oauth.verifier import verify_access_token
from tests.factories import UserFactory

from .conftest import API_RESOURCE


@pytest.fixture
def staff(db) -> Client:
    client = Client()
    client.force_login(UserFactory(is_staff=True, is_superuser=True))
    return client


def test_app_change_page_has_no_secret_field(staff, oauth_app) -> None:
    response = staff.get(f"/admin/oauth2_provider/application/{oauth_app.application.pk}/change/")

    assert response.status_code == HTTPStatus.OK
    html = response.content.decode()
    assert 'name="client_secret"' not in html
    assert 'name="skip_authorization"' not in html
    assert oauth_app.application.client_secret not in html
    assert staff.get("/admin/oauth2_provider/application/add/").status_code == 403


def test_admin_refuses_an_http_redirect_to_a_remote_host(staff, oauth_app) -> None:
    url = f"/admin/oauth2_provider/application/{oauth_app.application.pk}/change/"

    response = staff.post(url, {"name": "Acme CRM", "redirect_uris": "http://evil.example/cb",
                                "allowed_origins": ""})

    assert response.status_code == HTTPStatus.OK  # the form again, with the error
    assert "loopback" in response.content.decode()
    assert Application.objects.get().redirect_uris == oauth_app.redirect_uri


def test_token_pages_are_read_only(staff, oauth_app, tokens_for) -> None:
    tokens_for(oauth_app)
    access = AccessToken.objects.get()

    response = staff.get(f"/admin/oauth2_provider/accesstoken/{access.pk}/change/")

    assert response.status_code == HTTPStatus.OK
    html = response.content.decode()
    assert 'name="token_checksum"' not in html and access.token_checksum not in html
    assert 'name="scope"' not in html  # nothing is editable


def test_delete_action_goes_through_the_service(staff, oauth_app, tokens_for) -> None:
    token = tokens_for(oauth_app)["access_token"]

    response = staff.post(
        "/admin/oauth2_provider/application/",
        {"action": "delete_apps", "_selected_action": [oauth_app.application.pk]},
    )

    assert response.status_code == HTTPStatus.FOUND
    assert Application.objects.count() == 0
    assert verify_access_token(token, ip=None, resource=API_RESOURCE).error == "invalid_token"
    assert AuditEvent.objects.get(action="oauth_app.deleted").actor_type == "user"
    assert AuditEvent.objects.filter(action="oauth.token_revoked").count() == 1


def test_revoke_action_on_tokens_revokes_their_grant(staff, oauth_app, tokens_for) -> None:
    token = tokens_for(oauth_app)["access_token"]

    staff.post(
        "/admin/oauth2_provider/accesstoken/",
        {"action": "revoke_grants", "_selected_action": [AccessToken.objects.get().pk]},
    )

    assert verify_access_token(token, ip=None, resource=API_RESOURCE).error == "invalid_token"
    event = AuditEvent.objects.get(action="oauth.token_revoked")
    assert event.metadata["reason"] == "revoked_by_staff"


def test_connection_admin_revokes(staff, oauth_app, tokens_for) -> None:
    tokens_for(oauth_app)
    connection = Connection.objects.get()

    staff.post(
        "/admin/oauth/connection/", {"action": "revoke", "_selected_action": [connection.pk]}
    )

    assert Connection.objects.get().revoked_at is not None


@pytest.mark.parametrize("changelist, action, model", [
    ("/admin/oauth/connection/", "revoke", Connection),
    ("/admin/oauth2_provider/accesstoken/", "revoke_grants", AccessToken),
])
def test_staff_who_may_only_view_cannot_revoke_grants(
    oauth_app, tokens_for, changelist, action, model
) -> None:
    token = tokens_for(oauth_app)["access_token"]
    viewer = UserFactory(is_staff=True)
    viewer.user_permissions.set(Permission.objects.filter(
        codename__in=["view_connection", "view_accesstoken"]))
    client = Client()
    client.force_login(viewer)

    page = client.get(changelist)
    assert page.status_code == HTTPStatus.OK
    assert f'value="{action}"' not in page.content.decode()
    client.post(changelist, {"action": action, "_selected_action": [model.objects.get().pk]})

    assert Connection.objects.get().revoked_at is None
    assert verify_access_token(token, ip=None, resource=API_RESOURCE).kind == "oauth"  # still valid
    assert not AuditEvent.objects.filter(action="oauth.token_revoked").exists()


# --- Pruning --------------------------------------------------------------------------------


def _dynamic_app(name: str, *, age: timedelta):
    application, _ = oauth_app_register_dynamic(
        name=name, redirect_uris=["http://127.0.0.1/cb"], confidential=False,
        context=RequestContext(),
    )
    Application.objects.filter(pk=application.pk).update(created=timezone.now() - age)
    return application


def test_prune_removes_only_unused_old_dynamic_clients(oauth_app, tokens_for, make_app) -> None:
    unused_old = _dynamic_app("Forgotten", age=timedelta(days=8))
    unused_new = _dynamic_app("Just registered", age=timedelta(hours=1))
    connected_old = _dynamic_app("In use", age=timedelta(days=30))
    from tests.oauth.conftest import RegisteredApp

    tokens_for(RegisteredApp(connected_old, None, "http://127.0.0.1/cb"))
    Application.objects.filter(pk=oauth_app.application.pk).update(
        created=timezone.now() - timedelta(days=90)
    )  # dashboard apps are never pruned

    assert oauth_prune() == 1

    remaining = set(Application.objects.values_list("name", flat=True))
    assert remaining == {"Just registered", "In use", "Acme CRM"}
    assert unused_old.name not in remaining and unused_new.name in remaining


def test_prune_clears_expired_codes(oauth_app, client_for) -> None:
    from tests.oauth.conftest import AUTHORIZE, authorize_params, consent_post_data, pkce_pair

    client = client_for("editor")
    _, challenge = pkce_pair()
    page = client.get(AUTHORIZE, authorize_params(oauth_app, challenge))
    client.post(AUTHORIZE, consent_post_data(page, workspace="acme"))
    Grant.objects.update(expires=timezone.now() - timedelta(minutes=5))

    oauth_prune()

    assert Grant.objects.count() == 0


def test_manage_py_prune_runs_the_oauth_step(db) -> None:
    from io import StringIO

    from django.core.management import call_command

    _dynamic_app("Forgotten", age=timedelta(days=8))
    out = StringIO()

    call_command("prune", "--step", "oauth", stdout=out)

    assert "deleted 1 unused dynamically registered clients" in out.getvalue()
    assert Application.objects.count() == 0


def test_editing_an_app_goes_through_the_audited_service(staff, oauth_app) -> None:
    url = f"/admin/oauth2_provider/application/{oauth_app.application.pk}/change/"

    response = staff.post(url, {"name": "Acme CRM v2",
                                "redirect_uris": "https://app.example.com/callback "
                                                 "https://app.example.com/v2/callback",
                                "allowed_origins": ""}, REMOTE_ADDR="192.0.2.77")

    assert response.status_code == HTTPStatus.FOUND
    application = Application.objects.get()
    assert application.name == "Acme CRM v2"
    assert application.redirect_uris.split() == [
        "https://app.example.com/callback", "https://app.example.com/v2/callback"
    ]
    event = AuditEvent.objects.get(action="oauth_app.updated")
    assert event.workspace.slug == "acme"  # on the workspace's own log, which its admins read
    assert (event.target_type, event.target_id) == ("oauth_app", application.client_id)
    assert event.actor_type == "user" and event.ip == "192.0.2.77"
    assert event.metadata == {
        "changed": {
            "name": {"from": "Acme CRM", "to": "Acme CRM v2"},
            "redirect_uris": {"from": ["https://app.example.com/callback"],
                              "to": ["https://app.example.com/callback",
                                     "https://app.example.com/v2/callback"]},
        },
        "door": "admin",
    }


def test_saving_an_unchanged_app_records_nothing(staff, oauth_app) -> None:
    url = f"/admin/oauth2_provider/application/{oauth_app.application.pk}/change/"
    response = staff.post(url, {"name": "Acme CRM", "redirect_uris": oauth_app.redirect_uri,
                                "allowed_origins": ""})
    assert response.status_code == HTTPStatus.FOUND
    assert not AuditEvent.objects.filter(action="oauth_app.updated").exists()


def test_admin_grant_revocation_says_it_came_from_the_admin(staff, oauth_app, tokens_for) -> None:
    tokens_for(oauth_app)
    staff.post("/admin/oauth/connection/",
               {"action": "revoke", "_selected_action": [Connection.objects.get().pk]})
    assert AuditEvent.objects.get(action="oauth.token_revoked").metadata["door"] == "admin"


def test_issued_tokens_are_remembered_until_a_week_after_expiry_then_pruned(
    oauth_app, tokens_for
) -> None:
    old, recent = tokens_for(oauth_app)["access_token"], tokens_for(oauth_app)["access_token"]
    records = {token: IssuedAccessToken.objects.get(token_checksum=token_checksum(token))
               for token in (old, recent)}
    # Written with the token, with its expiry; the token itself is never stored.
    stored = AccessToken.objects.get(token_checksum=token_checksum(old))
    assert records[old].expires_at == stored.expires
    assert not IssuedAccessToken.objects.filter(token_checksum__in=[old, recent]).exists()
    now = timezone.now()
    IssuedAccessToken.objects.filter(pk=records[old].pk).update(
        expires_at=now - ISSUED_TOKEN_RETENTION - timedelta(seconds=1))
    IssuedAccessToken.objects.filter(pk=records[recent].pk).update(
        expires_at=now - ISSUED_TOKEN_RETENTION + timedelta(hours=1))
    oauth_prune(now=now)
    assert list(IssuedAccessToken.objects.values_list("pk", flat=True)) == [records[recent].pk]
    # An access token that is gone but was issued is "revoked or expired", a known failure.
    AccessToken.objects.filter(
        token_checksum__in=[token_checksum(old), token_checksum(recent)]).delete()
    failure = verify_access_token(recent, ip=None, resource=API_RESOURCE)
    assert (failure.error, failure.message, failure.known) == (
        "invalid_token", "The access token has been revoked or has expired.", True)
    failure = verify_access_token(old, ip=None, resource=API_RESOURCE)
    assert (failure.message, failure.known) == (
        "The access token is unknown or has been revoked.", False)
