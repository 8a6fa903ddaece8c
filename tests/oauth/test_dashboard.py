"""Settings → OAuth Apps (admins and owners) and Connected apps (every user), with and without
HTMX; every change audited."""

from __future__ import annotations

from http import HTTPStatus

import pytest
from django.test import Client
from oauth2_provider.models import AccessToken, Application

from audit.models import AuditEvent
from oauth.models import Connection, WorkspaceApp
from oauth.verifier import verify_access_token
from tests.factories import by

from .conftest import API_RESOURCE, TOKEN

APPS = "/w/acme/settings/oauth-apps/"
HTMX = {"HTTP_HX_REQUEST": "true"}
NEW_APP = {
    "name": "Zapier bridge",
    "redirect_uris": "https://bridge.example.com/oauth/callback\nhttp://127.0.0.1:8765/cb",
    "client_type": "confidential",
}


@pytest.mark.parametrize("role", ["owner", "admin"])
def test_admins_and_owners_see_the_page(client_for, role) -> None:
    response = client_for(role).get(APPS)

    assert response.status_code == HTTPStatus.OK
    assert "Register app" in response.content.decode()


@pytest.mark.parametrize("role", ["editor", "viewer"])
def test_other_roles_get_403_everywhere(client_for, oauth_app, role) -> None:
    client = client_for(role)
    client_id = oauth_app.client_id
    assert client.get(APPS).status_code == HTTPStatus.FORBIDDEN
    assert client.post(APPS + "new", NEW_APP).status_code == HTTPStatus.FORBIDDEN
    assert client.post(f"{APPS}{client_id}/rotate-secret").status_code == HTTPStatus.FORBIDDEN
    assert client.post(f"{APPS}{client_id}/delete").status_code == HTTPStatus.FORBIDDEN
    assert Application.objects.count() == 1
    assert not AuditEvent.objects.filter(action__startswith="oauth_app.", actor_id__gt="").exclude(
        action="oauth_app.created"
    ).exists()


def test_non_members_get_404(oauth_app, other_workspace) -> None:
    from tests.factories import UserFactory

    outsider = Client()
    outsider.force_login(UserFactory())
    assert outsider.get(APPS).status_code == HTTPStatus.NOT_FOUND


def test_register_app_shows_secret_once_and_stores_it_hashed(client_for, members) -> None:
    response = client_for("admin").post(APPS + "new", NEW_APP, **HTMX)

    assert response.status_code == HTTPStatus.OK
    assert "no-store" in response["Cache-Control"]
    assert "oauth-apps-changed" in response["HX-Trigger"]
    secret = response.context["secret"]
    assert secret and secret in response.content.decode()
    app = Application.objects.get()
    assert app.name == "Zapier bridge"
    assert app.client_type == "confidential"
    assert app.authorization_grant_type == "authorization-code"
    assert app.redirect_uris.split() == [
        "https://bridge.example.com/oauth/callback", "http://127.0.0.1:8765/cb",
    ]
    assert secret not in app.client_secret
    assert WorkspaceApp.objects.get().workspace.slug == "acme"
    listing = client_for("admin").get(APPS).content.decode()
    assert app.client_id in listing and secret not in listing
    event = AuditEvent.objects.get(action="oauth_app.created")
    assert event.actor_id == str(members["admin"].pk) and event.workspace.slug == "acme"
    assert secret not in str(event.metadata)


def _secret_in(html: str) -> str | None:
    import re

    found = re.search(r'id="client-secret" value="([^"]+)"', html)
    return found and found.group(1)


def test_register_without_javascript_redirects_and_shows_the_secret_once(client_for) -> None:
    """Post/redirect/get: a reload after registering neither registers a second app nor shows
    the secret again."""
    from django.contrib.auth.hashers import check_password

    client = client_for("owner")
    response = client.post(APPS + "new", NEW_APP)

    assert response.status_code == HTTPStatus.SEE_OTHER and response["Location"] == APPS
    assert "no-store" in response["Cache-Control"]
    app = Application.objects.get()
    for cookie in response.cookies.values():  # neither half is the secret
        assert cookie.value and "Copy" not in cookie.value
    page = client.get(APPS)
    html = page.content.decode()
    secret = _secret_in(html)
    assert secret and check_password(secret, app.client_secret)
    assert "App registered" in html and "<dialog" in html and " open" in html
    assert "no-store" in page["Cache-Control"]
    assert secret not in str(dict(client.session))

    again = client.get(APPS).content.decode()
    assert _secret_in(again) is None and secret not in again
    assert Application.objects.count() == 1


def test_rotate_without_javascript_redirects_and_shows_the_new_secret_once(
    client_for, oauth_app
) -> None:
    from django.contrib.auth.hashers import check_password

    client = client_for("admin")
    response = client.post(f"{APPS}{oauth_app.client_id}/rotate-secret")

    assert response.status_code == HTTPStatus.SEE_OTHER and response["Location"] == APPS
    html = client.get(APPS).content.decode()
    secret = _secret_in(html)
    assert "Client secret rotated" in html
    assert secret and check_password(secret, Application.objects.get().client_secret)
    assert _secret_in(client.get(APPS).content.decode()) is None  # the reload shows nothing
    assert AuditEvent.objects.filter(action="oauth_app.secret_rotated").count() == 1


def test_a_tampered_or_lone_reveal_half_shows_nothing(client_for, oauth_app) -> None:
    client = client_for("admin")
    response = client.post(f"{APPS}{oauth_app.client_id}/rotate-secret")
    cookie = response.cookies["gatehouse_reveal_oauth"].value
    client.cookies.pop("gatehouse_reveal_oauth")
    assert _secret_in(client.get(APPS).content.decode()) is None  # the session half alone
    client.cookies["gatehouse_reveal_oauth"] = cookie
    assert _secret_in(client.get(APPS).content.decode()) is None  # the cookie half alone
    client.post(f"{APPS}{oauth_app.client_id}/rotate-secret")
    client.cookies["gatehouse_reveal_oauth"] = "A" + cookie[1:]
    assert _secret_in(client.get(APPS).content.decode()) is None  # tampered


def test_public_app_without_javascript_redirects_with_its_client_id(client_for) -> None:
    client = client_for("admin")
    response = client.post(APPS + "new", {**NEW_APP, "client_type": "public"}, follow=True)

    app = Application.objects.get()
    assert response.redirect_chain == [(APPS, HTTPStatus.SEE_OTHER)]
    assert app.client_id in response.content.decode()
    assert _secret_in(response.content.decode()) is None


def test_public_app_has_no_secret_to_show(client_for) -> None:
    response = client_for("admin").post(APPS + "new", {**NEW_APP, "client_type": "public"}, **HTMX)

    assert response.context["secret"] is None
    assert Application.objects.get().client_type == "public"


@pytest.mark.parametrize(
    "redirect_uris",
    [
        "",
        "http://bridge.example.com/cb",
        "javascript:alert(1)",
        "https://bridge.example.com/cb#x",
        "ftp://bridge.example.com/cb",
    ],
)
def test_register_refuses_bad_redirect_uris(client_for, redirect_uris) -> None:
    response = client_for("admin").post(
        APPS + "new", {**NEW_APP, "redirect_uris": redirect_uris}, **HTMX
    )

    assert response.status_code == HTTPStatus.UNPROCESSABLE_ENTITY
    assert "errorlist" in response.content.decode() or "form-error" in response.content.decode()
    assert Application.objects.count() == 0
    assert not AuditEvent.objects.filter(action="oauth_app.created").exists()


def test_rotate_secret_replaces_it(client_for, oauth_app, members) -> None:
    old = oauth_app.secret

    response = client_for("admin").post(f"{APPS}{oauth_app.client_id}/rotate-secret", **HTMX)

    assert response.status_code == HTTPStatus.OK
    new = response.context["secret"]
    assert new and new != old
    app = Application.objects.get()
    from django.contrib.auth.hashers import check_password

    assert check_password(new, app.client_secret)
    assert not check_password(old, app.client_secret)
    event = AuditEvent.objects.get(action="oauth_app.secret_rotated")
    assert event.target_id == oauth_app.client_id and event.actor_id == str(members["admin"].pk)
    # The old secret no longer authenticates at the token endpoint.
    refused = Client().post(TOKEN, {"grant_type": "refresh_token", "refresh_token": "x"},
                            **oauth_app.token_auth())
    assert refused.status_code == HTTPStatus.UNAUTHORIZED


def test_delete_app_revokes_its_tokens(client_for, oauth_app, tokens_for) -> None:
    token = tokens_for(oauth_app, "editor")["access_token"]

    response = client_for("owner").post(f"{APPS}{oauth_app.client_id}/delete", **HTMX)

    assert response.status_code == HTTPStatus.OK
    assert response["HX-Retarget"] == "#app-table"
    assert Application.objects.count() == 0
    assert AccessToken.objects.count() == 0
    assert verify_access_token(token, ip=None, resource=API_RESOURCE).error == "invalid_token"
    deleted = AuditEvent.objects.get(action="oauth_app.deleted")
    assert deleted.metadata == {"connections_revoked": 1, "door": "dashboard"}
    revoked = AuditEvent.objects.get(action="oauth.token_revoked")
    assert revoked.metadata["reason"] == "app_deleted"


def test_delete_without_javascript_redirects(client_for, oauth_app) -> None:
    response = client_for("owner").post(f"{APPS}{oauth_app.client_id}/delete")

    assert response.status_code == HTTPStatus.SEE_OTHER
    assert response["Location"] == APPS


def test_another_workspaces_app_is_404(client_for, other_workspace, members) -> None:
    from oauth.services import oauth_app_create
    from tests.factories import MembershipFactory

    MembershipFactory(workspace=other_workspace, user=members["owner"], role="owner")
    theirs, _ = oauth_app_create(
        workspace=other_workspace, name="Theirs", redirect_uris=["https://t.example/cb"],
        confidential=True, **by(members["owner"]),
    )
    client = client_for("admin")  # admin of acme only

    assert client.post(f"{APPS}{theirs.client_id}/delete").status_code == HTTPStatus.NOT_FOUND
    assert client.post(f"{APPS}{theirs.client_id}/rotate-secret").status_code == 404
    assert Application.objects.filter(pk=theirs.pk).exists()


def test_app_list_query_count_does_not_grow(client_for, make_app, django_assert_max_num_queries):
    client = client_for("admin")
    for i in range(5):
        make_app(name=f"App {i}")

    with django_assert_max_num_queries(12):
        response = client.get(APPS, **HTMX)
    assert response.content.decode().count('data-testid="app-row"') == 5


# --- Connected apps ----------------------------------------------------------------------


def test_connected_apps_lists_the_users_grants(client_for, oauth_app, tokens_for) -> None:
    tokens_for(oauth_app, "editor")
    tokens_for(oauth_app, "viewer")  # someone else's grant

    html = client_for("editor").get("/settings/connected-apps/").content.decode()

    assert html.count('data-testid="connection-row"') == 1
    assert "Acme CRM" in html and "Acme" in html and "passports:write" in html


def test_revoke_from_connected_apps_ends_the_grant(client_for, oauth_app, tokens_for, members):
    body = tokens_for(oauth_app, "editor")
    connection = Connection.objects.get()
    client = client_for("editor")

    response = client.post(f"/settings/connected-apps/{connection.public_id}/revoke", **HTMX)

    assert response.status_code == HTTPStatus.OK
    assert 'data-testid="connection-row"' not in response.content.decode()
    failure = verify_access_token(body["access_token"], ip=None, resource=API_RESOURCE)
    assert failure.error == "invalid_token"
    event = AuditEvent.objects.get(action="oauth.token_revoked")
    assert event.actor_id == str(members["editor"].pk)
    assert event.metadata["reason"] == "revoked_by_user"
    assert "gat_" not in str(event.metadata)


def test_revoke_without_javascript_asks_first_then_redirects(client_for, oauth_app, tokens_for):
    tokens_for(oauth_app, "editor")
    connection = Connection.objects.get()
    client = client_for("editor")
    url = f"/settings/connected-apps/{connection.public_id}/revoke"

    listing = client.get("/settings/connected-apps/").content.decode()
    assert f'href="{url}"' in listing and "<form" not in listing.split('id="connection-table"')[1]
    confirm = client.get(url)
    html = confirm.content.decode()
    assert confirm.status_code == HTTPStatus.OK
    assert "Revoke “Acme CRM”?" in html and "<dialog" in html and " open" in html
    assert f'action="{url}"' in html
    assert Connection.objects.get().revoked_at is None  # asking changes nothing

    done = client.post(url, follow=True)
    assert done.redirect_chain == [("/settings/connected-apps/", HTTPStatus.SEE_OTHER)]
    assert "Revoked “Acme CRM”" in done.content.decode()
    assert Connection.objects.get().revoked_at is not None


def test_revoke_dialog_with_htmx_is_the_shared_dialog(client_for, oauth_app, tokens_for):
    tokens_for(oauth_app, "editor")
    connection = Connection.objects.get()
    html = client_for("editor").get(
        f"/settings/connected-apps/{connection.public_id}/revoke", **HTMX
    ).content.decode()
    assert html.lstrip().startswith('<dialog id="connection-dialog" class="dialog"')
    assert "data-open" in html and 'id="connection-dialog-body"' in html


def test_cannot_revoke_someone_elses_grant(client_for, oauth_app, tokens_for) -> None:
    tokens_for(oauth_app, "editor")
    connection = Connection.objects.get()

    response = client_for("owner").post(f"/settings/connected-apps/{connection.public_id}/revoke")

    assert response.status_code == HTTPStatus.NOT_FOUND
    assert Connection.objects.get().revoked_at is None


def test_connected_apps_requires_login(db) -> None:
    response = Client().get("/settings/connected-apps/")
    assert response.status_code == HTTPStatus.FOUND


def test_topbar_links_to_connected_apps(client_for) -> None:
    html = client_for("viewer").get("/w/acme/").content.decode()
    assert 'href="/settings/connected-apps/"' in html


def test_register_reports_every_error_of_the_form_at_once(client_for) -> None:
    response = client_for("admin").post(
        APPS + "new", {"name": "", "redirect_uris": "javascript:alert(1)", "client_type": "x"}
    )
    assert response.status_code == HTTPStatus.UNPROCESSABLE_ENTITY
    html = response.content.decode()
    assert html.count('class="errorlist') >= 3  # name, redirect URIs and client type together
    assert Application.objects.count() == 0
