"""Who may connect what (SPEC §12, issue 17 points 1–2): the workspace's app access policy on the
consent screen, pending grants refused with 403 `app_not_approved` until an admin approves them
on Settings → Connected apps, denial and admin revocation, trusted domains; and grants limited
to selected collections chosen on the consent screen (SPEC §11)."""

from __future__ import annotations

from http import HTTPStatus

import pytest
from django.test import Client

from audit.models import AuditEvent
from core.context import RequestContext
from oauth.models import Connection
from oauth.services import oauth_app_register_dynamic
from passports.services import collection_create, passport_create
from tests.factories import UserFactory, by

from .conftest import (
    AUTHORIZE,
    INTROSPECT,
    RegisteredApp,
    authorize_params,
    consent_post_data,
    pkce_pair,
    query_of,
)

pytestmark = pytest.mark.django_db

TOOL_REDIRECT = "https://tool.example.org/callback"
CONNECTED = "/w/acme/settings/connected-apps/"


def _dynamic_app(redirect_uri: str = TOOL_REDIRECT, name: str = "Unvetted tool") -> RegisteredApp:
    application, secret = oauth_app_register_dynamic(
        name=name, redirect_uris=[redirect_uri], confidential=False, context=RequestContext()
    )
    return RegisteredApp(application, secret, redirect_uri)


def _policy(workspace, policy: str, domains: list[str] | None = None) -> None:
    workspace.app_access_policy = policy
    workspace.trusted_app_domains = domains or []
    workspace.save()


def _consent(client: Client, app: RegisteredApp, *, extra: dict | None = None, **overrides):
    """GET the consent page, then POST it allowing acme (plus `extra` form fields)."""
    verifier, challenge = pkce_pair()
    page = client.get(AUTHORIZE, authorize_params(app, challenge, **overrides))
    assert page.status_code == HTTPStatus.OK, page.content[:400]
    data = {**consent_post_data(page, workspace="acme"), **(extra or {})}
    return page, client.post(AUTHORIZE, data), verifier


def _token(app: RegisteredApp, code: str, verifier: str) -> str:
    data = {"grant_type": "authorization_code", "code": code, "redirect_uri": app.redirect_uri,
            "code_verifier": verifier}
    if app.secret is None:
        data["client_id"] = app.client_id
    response = Client().post("/api/oauth/token", data, **app.token_auth())
    assert response.status_code == HTTPStatus.OK, response.content
    return response.json()["access_token"]


def _me(token: str):
    return Client().get("/api/v1/me", HTTP_AUTHORIZATION=f"Bearer {token}")


def _pending_token(client_for, workspace) -> tuple[RegisteredApp, Connection, str]:
    """An editor connects a self-registered app where apps need approval: pending, with a token."""
    _policy(workspace, "approval")
    app = _dynamic_app()
    page, posted, verifier = _consent(client_for("editor"), app)
    assert b'data-testid="needs-approval"' in page.content
    assert posted.status_code == HTTPStatus.OK
    assert b'data-testid="awaiting-approval"' in posted.content
    link = posted.context["destination"]
    assert link.startswith(TOOL_REDIRECT + "?")
    connection = Connection.objects.get(application=app.application)
    assert connection.is_pending
    return app, connection, _token(app, query_of(link)["code"], verifier)


def test_any_app_policy_grants_at_once(client_for, workspace) -> None:
    app = _dynamic_app()
    _page, posted, verifier = _consent(client_for("editor"), app)
    assert posted.status_code == HTTPStatus.SEE_OTHER
    connection = Connection.objects.get(application=app.application)
    assert connection.approval == "approved" and connection.collections is None
    token = _token(app, query_of(posted["Location"])["code"], verifier)
    assert _me(token).status_code == HTTPStatus.OK


def test_pending_grant_is_refused_until_approved_then_works(client_for, workspace,
                                                            members) -> None:
    app, connection, token = _pending_token(client_for, workspace)
    refused = _me(token)
    assert refused.status_code == HTTPStatus.FORBIDDEN
    body = refused.json()
    assert body["error"] == "app_not_approved"
    assert "admin or owner" in body["message"] and "Acme" in body["message"]
    assert "WWW-Authenticate" not in refused
    introspected = Client().post(INTROSPECT, {"token": token, "client_id": app.client_id})
    assert introspected.json() == {"active": False}
    consent = AuditEvent.objects.get(action="oauth.consent_granted", target_id=app.client_id)
    assert consent.metadata["approval"] == "pending"

    # Pending requests show to admins; an admin approves (no JS: 303 back to the list).
    admin = client_for("admin")
    listing = admin.get(CONNECTED)
    assert listing.status_code == HTTPStatus.OK
    assert b'data-testid="pending-count"' in listing.content
    assert b"Awaiting approval" in listing.content
    approved = admin.post(f"{CONNECTED}{connection.public_id}/approve")
    assert approved.status_code == HTTPStatus.SEE_OTHER and approved["Location"] == CONNECTED
    connection.refresh_from_db()
    assert connection.approval == "approved" and connection.decided_by == members["admin"]
    assert _me(token).status_code == HTTPStatus.OK  # the very next request
    event = AuditEvent.objects.get(action="oauth.connection_approved")
    assert event.actor_id == str(members["admin"].pk) or event.actor_label
    assert event.metadata["member"] == members["editor"].email
    assert event.metadata["connection"] == connection.public_id


def test_denial_revokes_the_grant(client_for, workspace, members) -> None:
    app, connection, token = _pending_token(client_for, workspace)
    owner = client_for("owner")
    confirm = owner.get(f"{CONNECTED}{connection.public_id}/deny")
    assert confirm.status_code == HTTPStatus.OK and b"Deny access" in confirm.content
    denied = owner.post(f"{CONNECTED}{connection.public_id}/deny")
    assert denied.status_code == HTTPStatus.SEE_OTHER
    connection.refresh_from_db()
    assert connection.revoked_at is not None and connection.decided_by == members["owner"]
    me = _me(token)
    assert me.status_code == HTTPStatus.UNAUTHORIZED and me.json()["error"] == "invalid_token"
    event = AuditEvent.objects.get(action="oauth.connection_denied")
    assert event.metadata["reason"] == "denied"
    assert event.metadata["member"] == members["editor"].email
    # Approving it now: a clear message, nothing changes.
    late = owner.post(f"{CONNECTED}{connection.public_id}/approve", follow=True)
    assert "revoked or withdrawn meanwhile" in late.content.decode()
    connection.refresh_from_db()
    assert connection.approval == "pending" and connection.revoked_at is not None
    assert not AuditEvent.objects.filter(action="oauth.connection_approved").exists()


def test_approving_twice_says_so_and_changes_nothing(client_for, workspace) -> None:
    _app, connection, _token_ = _pending_token(client_for, workspace)
    admin = client_for("admin")
    admin.post(f"{CONNECTED}{connection.public_id}/approve")
    again = admin.post(f"{CONNECTED}{connection.public_id}/approve", HTTP_HX_REQUEST="true")
    assert again.status_code == HTTPStatus.OK
    assert "approved meanwhile" in again.content.decode()
    assert AuditEvent.objects.filter(action="oauth.connection_approved").count() == 1


@pytest.mark.parametrize("role", ["editor", "viewer"])
def test_members_without_the_role_cannot_decide_or_revoke(role, client_for, workspace) -> None:
    _app, connection, token = _pending_token(client_for, workspace)
    client = client_for(role)
    assert client.get(CONNECTED).status_code == HTTPStatus.FORBIDDEN
    for action in ("approve", "deny", "revoke"):
        response = client.post(f"{CONNECTED}{connection.public_id}/{action}")
        assert response.status_code == HTTPStatus.FORBIDDEN, action
    connection.refresh_from_db()
    assert connection.is_pending and connection.revoked_at is None
    assert _me(token).status_code == HTTPStatus.FORBIDDEN


def test_workspace_registered_apps_need_no_approval(client_for, workspace, oauth_app) -> None:
    _policy(workspace, "approval")
    page, posted, _verifier = _consent(client_for("editor"), oauth_app)
    assert b'data-testid="needs-approval"' not in page.content
    assert posted.status_code == HTTPStatus.SEE_OTHER
    assert Connection.objects.get(application=oauth_app.application).approval == "approved"


def test_trusted_domains_approve_apps_whose_every_redirect_is_on_them(client_for,
                                                                     workspace) -> None:
    _policy(workspace, "approval", ["example.org"])
    trusted = _dynamic_app("https://tool.example.org/cb", name="Trusted")
    _page, posted, _v = _consent(client_for("editor"), trusted)
    assert posted.status_code == HTTPStatus.SEE_OTHER
    assert Connection.objects.get(application=trusted.application).approval == "approved"

    lookalike = _dynamic_app("https://example.org.evil.test/cb", name="Lookalike")
    _page, posted, _v = _consent(client_for("editor"), lookalike)
    assert posted.status_code == HTTPStatus.OK
    assert Connection.objects.get(application=lookalike.application).is_pending


def test_registered_only_policy_refuses_other_apps(client_for, workspace) -> None:
    _policy(workspace, "registered")
    app = _dynamic_app()
    client = client_for("editor")
    page, posted, _v = _consent(client, app)
    assert b'data-testid="app-not-allowed"' in page.content
    assert posted.status_code == HTTPStatus.UNPROCESSABLE_ENTITY
    assert "only allows apps registered by the workspace" in posted.content.decode()
    assert not Connection.objects.filter(application=app.application).exists()
    assert not AuditEvent.objects.filter(action="oauth.consent_granted").exists()


def test_admins_see_every_members_grant_and_filter(client_for, members, workspace, oauth_app,
                                                   tokens_for) -> None:
    tokens_for(oauth_app, role="editor")
    tokens_for(oauth_app, role="viewer", scope="passports:read")
    other = _dynamic_app(name="Other tool")
    _consent(client_for("editor"), other)
    admin = client_for("admin")
    page = admin.get(CONNECTED)
    rows = page.context["connections"]
    assert {(c.user.email, c.application.name) for c in rows} == {
        (members["editor"].email, "Acme CRM"), (members["viewer"].email, "Acme CRM"),
        (members["editor"].email, "Other tool"),
    }
    html = page.content.decode()
    assert "self-registered (dynamic)" in html
    assert "workspace-registered" in html and "All passports" in html
    by_member = admin.get(CONNECTED, {"member": members["viewer"].email.upper()})
    assert [c.user for c in by_member.context["connections"]] == [members["viewer"]]
    by_app = admin.get(CONNECTED, {"app": other.client_id}, HTTP_HX_REQUEST="true")
    assert [c.application for c in by_app.context["connections"]] == [other.application]
    assert b"<html" not in by_app.content  # the table only
    hostile = admin.get(f"{CONNECTED}?member=a%00b&status=%ED%A0%80&app={'x' * 5000}")
    assert hostile.status_code == HTTPStatus.OK
    # Another workspace's admin sees none of it.
    assert b"Acme CRM" not in admin.get("/settings/connected-apps/").content


def test_admin_revokes_a_members_grant_without_and_with_js(client_for, members, oauth_app,
                                                          tokens_for) -> None:
    token = tokens_for(oauth_app, role="editor")["access_token"]
    connection = Connection.objects.get(user=members["editor"])
    admin = client_for("admin")
    confirm = admin.get(f"{CONNECTED}{connection.public_id}/revoke")
    assert confirm.status_code == HTTPStatus.OK
    assert b"Revoke access" in confirm.content and b"<dialog" in confirm.content
    dialog = admin.get(f"{CONNECTED}{connection.public_id}/revoke", HTTP_HX_REQUEST="true")
    assert b"<html" not in dialog.content and b"data-open" in dialog.content
    revoked = admin.post(f"{CONNECTED}{connection.public_id}/revoke", HTTP_HX_REQUEST="true")
    assert revoked.status_code == HTTPStatus.OK
    assert revoked["HX-Retarget"] == "#workspace-connections"
    assert "Revoked “Acme CRM” for editor@acme.test" in revoked.content.decode()
    assert _me(token).status_code == HTTPStatus.UNAUTHORIZED
    event = AuditEvent.objects.get(action="oauth.connection_revoked")
    assert event.actor_label and event.metadata["member"] == members["editor"].email
    assert event.metadata["reason"] == "revoked_by_admin"
    again = admin.post(f"{CONNECTED}{connection.public_id}/revoke", follow=True)
    assert "already revoked" in again.content.decode()
    assert AuditEvent.objects.filter(action="oauth.connection_revoked").count() == 1


def test_consent_limited_to_selected_collections(client_for, workspace, members,
                                                 oauth_app) -> None:
    actor = by(members["admin"])
    shoes = collection_create(workspace=workspace, name="Shoes", **actor)
    hats = collection_create(workspace=workspace, name="Hats", **actor)
    in_shoes = passport_create(
        workspace=workspace, gtin="4006381333931", serial_number="S1", product_name="Boot",
        collection=shoes, **actor)
    in_hats = passport_create(
        workspace=workspace, gtin="4006381333931", serial_number="H1", product_name="Cap",
        collection=hats, **actor)
    page, posted, verifier = _consent(
        client_for("editor"), oauth_app,
        extra={"reach": "selected", "collections": [shoes.public_id]},
    )
    assert b'data-testid="reach-choice"' in page.content and b"Shoes" in page.content
    assert posted.status_code == HTTPStatus.SEE_OTHER, posted.content[:300]
    connection = Connection.objects.get(application=oauth_app.application)
    assert connection.collections == [shoes.pk]
    consent = AuditEvent.objects.get(action="oauth.consent_granted")
    assert consent.metadata["collections"] == [shoes.public_id]
    token = _token(oauth_app, query_of(posted["Location"])["code"], verifier)
    bearer = {"HTTP_AUTHORIZATION": f"Bearer {token}"}
    listed = Client().get("/api/v1/passports", **bearer).json()["data"]
    assert [p["id"] for p in listed] == [in_shoes.public_id]
    hidden = Client().get(f"/api/v1/passports/{in_hats.public_id}", **bearer)
    assert hidden.status_code == HTTPStatus.NOT_FOUND
    admin_page = client_for("admin").get(CONNECTED).content.decode()
    assert "Shoes" in admin_page


def test_consent_refuses_unknown_or_foreign_collections(client_for, workspace, other_workspace,
                                                        members, oauth_app) -> None:
    actor = by(members["admin"])
    collection_create(workspace=workspace, name="Shoes", **actor)
    foreign = collection_create(workspace=other_workspace, name="Theirs", **actor)
    for wanted in (foreign.public_id, "col_doesnotexist", "col_\x00"):
        _page, posted, _v = _consent(
            client_for("editor"), oauth_app, extra={"reach": "selected", "collections": [wanted]}
        )
        assert posted.status_code in (HTTPStatus.UNPROCESSABLE_ENTITY, HTTPStatus.BAD_REQUEST)
        if posted.status_code == HTTPStatus.UNPROCESSABLE_ENTITY:
            assert "is not a collection of Acme" in posted.content.decode()
    many = [f"col_{n:022d}" for n in range(101)]
    _page, posted, _v = _consent(client_for("editor"), oauth_app,
                                 extra={"reach": "selected", "collections": many})
    assert "at most 100 collections" in posted.content.decode()
    _page, posted, _v = _consent(client_for("editor"), oauth_app, extra={"reach": "some"})
    assert posted.status_code == HTTPStatus.UNPROCESSABLE_ENTITY
    assert not Connection.objects.exists()


def test_selected_with_none_ticked_reaches_no_passport(client_for, workspace, members,
                                                       oauth_app) -> None:
    actor = by(members["admin"])
    shoes = collection_create(workspace=workspace, name="Shoes", **actor)
    passport_create(
        workspace=workspace, gtin="4006381333931", serial_number="S1", product_name="Boot",
        collection=shoes, **actor)
    _page, posted, verifier = _consent(client_for("editor"), oauth_app,
                                       extra={"reach": "selected"})
    token = _token(oauth_app, query_of(posted["Location"])["code"], verifier)
    listed = Client().get("/api/v1/passports", HTTP_AUTHORIZATION=f"Bearer {token}")
    assert listed.status_code == HTTPStatus.OK and listed.json()["data"] == []


def test_owner_sets_the_app_access_policy(client_for, workspace) -> None:
    owner = client_for("owner")
    page = owner.get("/w/acme/settings/security/")
    assert b'data-testid="app-access-policy"' in page.content
    saved = owner.post("/w/acme/settings/security/", {
        "app_access_policy": "approval",
        "trusted_app_domains": "*.Example.org\napps.partner.test.\nexample.org",
    })
    assert saved.status_code == HTTPStatus.FOUND
    workspace.refresh_from_db()
    assert workspace.app_access_policy == "approval"
    assert workspace.trusted_app_domains == ["example.org", "apps.partner.test"]
    event = AuditEvent.objects.get(action="policy.changed")
    assert event.metadata["changed"]["app_access_policy"] == {"from": "any", "to": "approval"}
    for bad in ("localhost", "127.0.0.1", "com", "exa%20mple.org", "a%00b.org", "%ED%A0%80.org",
                "x" * 300 + ".org", "b%C3%BCcher..de"):
        refused = owner.post(
            "/w/acme/settings/security/",
            f"app_access_policy=any&trusted_app_domains={bad}".encode(),
            content_type="application/x-www-form-urlencoded",
        )
        assert refused.status_code == HTTPStatus.UNPROCESSABLE_ENTITY, bad
        html = refused.content.decode()
        assert "is not a domain name" in html or "Null characters are not allowed" in html
    too_many = "\n".join(f"d{n}.example.org" for n in range(21))
    refused = owner.post("/w/acme/settings/security/", {"trusted_app_domains": too_many})
    assert "at most 20" in refused.content.decode()
    workspace.refresh_from_db()
    assert workspace.app_access_policy == "approval"
    bogus = owner.post("/w/acme/settings/security/", {"app_access_policy": "everything"})
    assert bogus.status_code == HTTPStatus.UNPROCESSABLE_ENTITY
    assert client_for("admin").get("/w/acme/settings/security/").status_code == 403


def test_overview_shows_pending_requests_to_admins_only(client_for, workspace) -> None:
    _pending_token(client_for, workspace)
    overview = client_for("admin").get("/w/acme/")
    assert b'data-testid="overview-notices"' in overview.content
    assert "1 app awaiting your approval" in overview.content.decode()
    assert f'href="{CONNECTED}?status=pending"'.encode() in overview.content
    assert b"overview-notices" not in client_for("editor").get("/w/acme/").content
    pending = client_for("admin").get(CONNECTED, {"status": "pending"})
    assert len(pending.context["connections"]) == 1
    assert client_for("admin").get(CONNECTED, {"status": "approved"}).context["connections"] == []


def test_django_admin_approves_and_denies_through_the_services(client_for, workspace) -> None:
    _app, approved, approved_token = _pending_token(client_for, workspace)
    other = _dynamic_app("https://other.example.org/cb", name="Other")
    _page, _posted, _v = _consent(client_for("viewer"), other, scope="passports:read")
    denied = Connection.objects.get(application=other.application)
    staff = UserFactory(email="ops@gatehouse.test", is_staff=True, is_superuser=True)
    client = Client()
    client.force_login(staff)
    changelist = "/admin/oauth/connection/"
    response = client.post(changelist, {"action": "approve", "_selected_action": [approved.pk]})
    assert response.status_code == HTTPStatus.FOUND
    client.post(changelist, {"action": "deny", "_selected_action": [denied.pk, approved.pk]})
    approved.refresh_from_db()
    denied.refresh_from_db()
    assert approved.approval == "approved" and approved.revoked_at is None
    assert denied.revoked_at is not None
    assert _me(approved_token).status_code == HTTPStatus.OK
    events = AuditEvent.objects.filter(action__in=["oauth.connection_approved",
                                                   "oauth.connection_denied"])
    assert sorted(e.action for e in events) == ["oauth.connection_approved",
                                                "oauth.connection_denied"]
    assert {e.actor_id for e in events} == {str(staff.pk)}
