import json
import re
from datetime import timedelta
from http import HTTPStatus

import pytest
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from apikeys.models import ApiKey, KeyStatus
from apikeys.reveal import COOKIE_NAME, SESSION_KEY
from apikeys.selectors import apikey_check_digest
from apikeys.services import apikey_pause, apikey_revoke, apikey_rotate
from apikeys.tokens import token_digest
from audit.models import AuditEvent
from core.context import Actor
from tests.factories import MembershipFactory, UserFactory, WorkspaceFactory, by

pytestmark = pytest.mark.django_db

LIST = "/w/acme/settings/api-keys/"
NEW = LIST + "new/"


def url(name: str, key: ApiKey | None = None, slug: str = "acme") -> str:
    kwargs = {"slug": slug} | ({"key_id": key.public_id} if key else {})
    return reverse(f"apikeys:{name}", kwargs=kwargs)


def create_data(**overrides) -> dict:
    return {"name": "Billing sync", "scopes": ["passports:read"], "environment": "development",
            **overrides}


def hx_trigger(response) -> dict:
    return json.loads(response["HX-Trigger"])


# --- The list ----------------------------------------------------------------------------------

def test_list_url_is_the_settings_page() -> None:
    assert reverse("apikeys:list", kwargs={"slug": "acme"}) == LIST


@pytest.mark.parametrize("role", ["owner", "admin", "editor", "viewer"])
def test_list_shows_keys_to_every_member_and_buttons_only_to_managers(
    client_for, make_key, members, role
) -> None:
    key, _ = make_key(name="Billing sync", scopes=["passports:read", "passports:write"])
    revoked, _ = make_key(name="Old cron")
    apikey_revoke(key=revoked, **by(members["owner"]))
    response = client_for(role).get(LIST)
    assert response.status_code == HTTPStatus.OK
    html = response.content.decode()
    assert "Billing sync" in html and key.display_hint in html
    assert "passports:write" in html
    assert "admin@acme.test" in html  # created by
    assert 'id="revoked-keys"' in html and "Old cron" in html
    assert "owner@acme.test" in html  # revoked by
    manages = role in ("owner", "admin")
    controls = ("New key", ">Pause<", ">Rotate<", ">Revoke<", f'<form method="post" action="{LIST}')
    for control in controls:
        assert (control in html) is manages, control
    assert ("Only admins and owners can create or change keys" in html) is not manages


def test_list_of_another_workspace_is_404_for_non_members(client_for) -> None:
    WorkspaceFactory(slug="globex")
    assert client_for("owner").get("/w/globex/settings/api-keys/").status_code == 404


def test_list_requires_login(client) -> None:
    response = client.get(LIST)
    assert response.status_code == HTTPStatus.FOUND
    assert response["Location"].startswith("/accounts/login/")


def test_list_shows_expiry_badge_only_within_seven_days_and_stops_at_after_rotation(
    owner_client, make_key
) -> None:
    now = timezone.now()
    make_key(name="soon", expires_at=now + timedelta(days=3, hours=2))
    make_key(name="hours", expires_at=now + timedelta(hours=5, minutes=5))
    make_key(name="later", expires_at=now + timedelta(days=10))
    rotated, _ = make_key(name="rotating")
    apikey_rotate(key=rotated, overlap="24h", **by())
    rotated.refresh_from_db()
    html = re.sub(r"<[^>]+>", "", owner_client.get(LIST).content.decode())
    assert "expires in 3 days" in html
    assert "expires in 5 hours" in html
    assert "expires in 10 days" not in html and "expires in 9 days" not in html
    assert f"stops at {rotated.expires_at:%Y-%m-%d %H:%M} UTC" in html


def test_list_query_count_does_not_grow_with_keys(
    client_for, make_key, members, workspace, plan, django_assert_num_queries
) -> None:
    workspace.plan = plan("scale")
    workspace.save()
    client = client_for("owner")

    def add_keys(n: int) -> None:
        for i in range(n):
            creator = UserFactory()
            MembershipFactory(workspace=workspace, user=creator, role="admin")
            key, _ = make_key(
                name=f"key {ApiKey.objects.count()}-{i}", actor=Actor.for_user(creator)
            )
            if i % 2:
                apikey_revoke(key=key, **by(creator))
            elif i % 3 == 0:
                apikey_rotate(key=key, overlap="1h", **by(creator))

    add_keys(2)
    client.get(LIST)  # warm the session
    with CaptureQueriesContext(connection) as few:
        assert client.get(LIST).status_code == 200
    add_keys(9)
    with django_assert_num_queries(len(few.captured_queries)):
        response = client.get(LIST)
    assert response.content.decode().count('data-testid="key-row"') >= 3
    assert response.content.decode().count('data-testid="revoked-row"') >= 3
    # session, user, membership, switcher, live keys, revoked keys
    assert len(few.captured_queries) <= 6


# --- Roles and tenancy -------------------------------------------------------------------------

def mutating_requests(key: ApiKey) -> list[tuple[str, str, dict]]:
    return [
        ("get", url("create"), {}),
        ("post", url("create"), create_data()),
        ("get", url("rotate", key), {}),
        ("post", url("rotate", key), {"overlap": "1h"}),
        ("post", url("pause", key), {}),
        ("post", url("resume", key), {}),
        ("get", url("revoke", key), {}),
        ("post", url("revoke", key), {}),
    ]


@pytest.mark.parametrize("role", ["editor", "viewer"])
@pytest.mark.parametrize("hx", [False, True])
def test_every_action_is_forbidden_to_editors_and_viewers(
    client_for, make_key, role, hx, htmx
) -> None:
    key, _ = make_key()
    client = client_for(role)
    before = (ApiKey.objects.count(), AuditEvent.objects.count())
    for method, path, data in mutating_requests(key):
        response = getattr(client, method)(path, data, headers=htmx if hx else {})
        assert response.status_code == HTTPStatus.FORBIDDEN, (method, path)
    key.refresh_from_db()
    assert key.status == KeyStatus.ACTIVE
    assert (ApiKey.objects.count(), AuditEvent.objects.count()) == before


@pytest.mark.parametrize("role", ["owner", "admin"])
def test_managers_may_open_every_dialog(client_for, make_key, role, htmx) -> None:
    key, _ = make_key()
    client = client_for(role)
    for name in ("rotate", "revoke"):
        assert client.get(url(name, key), headers=htmx).status_code == HTTPStatus.OK
    assert client.get(url("create"), headers=htmx).status_code == HTTPStatus.OK


def test_another_workspaces_key_is_404_and_untouched(client_for, members) -> None:
    other = WorkspaceFactory(slug="globex")
    from apikeys.services import apikey_create

    theirs, _ = apikey_create(
        workspace=other, name="theirs", scopes=["passports:read"], environment="development",
        **by(),
    )
    client = client_for("owner")
    for method, path, data in mutating_requests(theirs)[2:]:
        assert getattr(client, method)(path, data).status_code == HTTPStatus.NOT_FOUND, path
    theirs.refresh_from_db()
    assert theirs.status == KeyStatus.ACTIVE and theirs.expires_at is None
    assert ApiKey.objects.count() == 1
    assert client.post(url("revoke", theirs, "globex")).status_code == HTTPStatus.NOT_FOUND


def test_unknown_key_id_is_404(owner_client) -> None:
    assert owner_client.post(LIST + "key_doesnotexist/revoke/").status_code == 404


def test_actions_require_post_and_csrf(members, make_key) -> None:
    key, _ = make_key()
    client = Client(enforce_csrf_checks=True)
    client.force_login(members["admin"])
    assert client.get(url("pause", key)).status_code == HTTPStatus.METHOD_NOT_ALLOWED
    assert client.post(url("pause", key)).status_code == HTTPStatus.FORBIDDEN
    key.refresh_from_db()
    assert key.status == KeyStatus.ACTIVE


# --- New key -----------------------------------------------------------------------------------

def test_new_key_dialog_defaults_to_read_scopes_and_this_environment(
    client_for, htmx, settings
) -> None:
    settings.GATEHOUSE_ENVIRONMENT = "staging"
    response = client_for("admin").get(NEW, headers=htmx)
    html = response.content.decode()
    assert response.status_code == HTTPStatus.OK
    assert html.lstrip().startswith("<dialog") and "data-open" in html
    assert "HX-Request" in response["Vary"]
    assert "<html" not in html
    assert 'value="passports:read" checked' in html
    assert 'value="keys:read" checked' in html
    assert 'value="passports:write">' in html  # write scopes are opt-in
    assert "Create, change and delete product passports." in html  # one-line descriptions
    assert '<option value="staging" selected>' in html


def test_form_errors_move_the_focus_to_the_first_field_in_error(client_for, htmx) -> None:
    client = client_for("admin")
    html = client.get(NEW, headers=htmx).content.decode()
    assert 'name="name"' in re.findall(r"<input[^>]*\bautofocus\b[^>]*>", html)[0]
    html = client.post(NEW, create_data(allowed_ips="10.0.0.0/33"), headers=htmx).content.decode()
    focused = re.findall(r"<(?:input|textarea)[^>]*\bautofocus\b[^>]*>", html)
    assert len(focused) == 1 and 'name="allowed_ips"' in focused[0]


def test_new_key_page_without_javascript_is_a_full_page_with_a_plain_form(client_for) -> None:
    response = client_for("admin").get(NEW)
    html = response.content.decode()
    assert response.status_code == HTTPStatus.OK
    assert "<html" in html and "<dialog" in html and " open>" in html
    assert f'<form method="post" action="{NEW}"' in html


def test_create_with_htmx_shows_the_token_once_and_refreshes_the_table(
    client_for, members, htmx
) -> None:
    response = client_for("admin").post(
        NEW,
        create_data(
            scopes=["passports:read", "passports:write"], note="ops",
            allowed_ips="10.0.0.0/8, 192.0.2.1", rate_limit_per_minute="60",
            expires_at="2099-01-31T10:30",
        ),
        headers={**htmx, "User-Agent": "browser/1"}, REMOTE_ADDR="198.51.100.4",
    )
    assert response.status_code == HTTPStatus.OK
    key = ApiKey.objects.get()
    html = response.content.decode()
    token = html.split('id="new-token" value="')[1].split('"')[0]
    assert apikey_check_digest(token_digest(token), ip="10.1.1.1").key == key
    assert html.count(token) == 1
    assert "will not be shown again" in html and "data-copy=\"#new-token\"" in html
    assert hx_trigger(response) == {"keys-changed": {}}
    assert "no-store" in response["Cache-Control"]
    assert key.scopes == ["passports:read", "passports:write"]
    assert key.allowed_ips == ["10.0.0.0/8", "192.0.2.1/32"]
    assert key.rate_limit_per_minute == 60
    assert key.expires_at.isoformat() == "2099-01-31T10:30:00+00:00"
    assert (key.note, key.created_by) == ("ops", members["admin"])
    event = AuditEvent.objects.get(action="key.created")
    assert (event.ip, event.user_agent, event.actor_id) == (
        "198.51.100.4", "browser/1", str(members["admin"].pk)
    )
    # The table the event reloads is the partial, without the token.
    table = client_for("admin").get(LIST, headers=htmx)
    assert table.content.decode().lstrip().startswith('<section id="key-table"')
    assert token not in table.content.decode()


BAD_FORMS = [
    ({"name": ""}, "Give the key a name."),
    ({"name": "x" * 101}, "at most 100 characters"),
    ({"scopes": ["passports:read", "admin:everything"]}, "admin:everything"),
    ({"scopes": []}, "Choose at least one scope."),
    ({"expires_at": "2001-01-01T00:00"}, "The expiry must be in the future."),
    ({"expires_at": "yesterday"}, "Enter a valid date/time."),
    ({"allowed_ips": "10.0.0.0/8\n300.1.1.1"}, "Not an IP address or CIDR range: 300.1.1.1."),
    ({"rate_limit_per_minute": "0"}, "The rate limit must be a positive number of requests."),
    ({"rate_limit_per_minute": "-3"}, "The rate limit must be a positive number of requests."),
    ({"rate_limit_per_minute": "99999999999"}, "at most 1,000,000 requests per minute"),
    ({"environment": "prod"}, "Select a valid choice."),
]


@pytest.mark.parametrize(("overrides", "message"), BAD_FORMS)
@pytest.mark.parametrize("hx", [True, False])
def test_create_refuses_bad_input_with_a_form_error(
    client_for, htmx, overrides, message, hx
) -> None:
    response = client_for("admin").post(NEW, create_data(**overrides), headers=htmx if hx else {})
    assert response.status_code == HTTPStatus.UNPROCESSABLE_ENTITY
    html = response.content.decode()
    assert message in html.replace("&#x27;", "'")
    assert ("<html" in html) is not hx
    if hx:
        assert html.lstrip().startswith('<div id="key-dialog-body">')
    assert ApiKey.objects.count() == 0
    assert AuditEvent.objects.filter(action__startswith="key.").count() == 0


@pytest.mark.parametrize("hx", [True, False])
def test_create_past_the_plan_limit_names_the_limit_and_plan(
    client_for, make_key, htmx, hx
) -> None:
    for i in range(5):
        make_key(name=f"k{i}")
    response = client_for("owner").post(NEW, create_data(), headers=htmx if hx else {})
    assert response.status_code == HTTPStatus.UNPROCESSABLE_ENTITY
    assert "The Free plan allows 5 active keys" in response.content.decode()
    assert ApiKey.objects.count() == 5


def test_create_without_javascript_shows_the_token_once_after_the_redirect(
    client_for, members
) -> None:
    client = client_for("admin")
    response = client.post(NEW, create_data())
    assert response.status_code == HTTPStatus.SEE_OTHER
    assert response["Location"] == LIST
    key = ApiKey.objects.get()
    # Neither the redirect nor the session carries the token; the cookie alone is not the token.
    assert b"gk_" not in response.content and "gk_" not in response["Location"]
    cookie = response.cookies[COOKIE_NAME]
    assert cookie["httponly"] and cookie["path"] == LIST and cookie["samesite"] == "Strict"
    stored_half = json.dumps(client.session[SESSION_KEY])
    assert "gk_" not in stored_half

    page = client.get(LIST)
    html = page.content.decode()
    token = html.split('id="new-token" value="')[1].split('"')[0]
    assert apikey_check_digest(token_digest(token), ip=None).key == key
    # The cookie is random-looking ciphertext (it may contain "gk_" by chance, once in a few
    # thousand runs): what matters is that neither half holds the token or its secret part.
    secret = token.split("_", 2)[2]  # gk_<env>_<secret>
    assert secret not in cookie.value and secret not in stored_half
    assert "Key created" in html and "will not be shown again" in html
    assert "no-store" in page["Cache-Control"]
    assert page.cookies[COOKIE_NAME].value == ""  # the cookie half is deleted
    assert SESSION_KEY not in client.session

    again = client.get(LIST).content.decode()
    assert token not in again and 'id="new-token"' not in again
    assert key.display_hint in again


def test_reveal_halves_alone_or_tampered_show_nothing(client_for) -> None:
    client = client_for("admin")
    response = client.post(NEW, create_data())
    cookie = response.cookies[COOKIE_NAME].value
    # Only the session half (the cookie is lost):
    client.cookies.pop(COOKIE_NAME)
    assert 'id="new-token"' not in client.get(LIST).content.decode()
    # Only the cookie half (the session half was already used):
    client.cookies[COOKIE_NAME] = cookie
    assert 'id="new-token"' not in client.get(LIST).content.decode()
    # A tampered cookie:
    client.post(NEW, create_data(name="second"))
    client.cookies[COOKIE_NAME] = cookie
    assert 'id="new-token"' not in client.get(LIST).content.decode()


# --- Rotate ------------------------------------------------------------------------------------

def test_rotate_dialog_offers_the_four_overlaps(client_for, make_key, htmx) -> None:
    key, _ = make_key(name="Billing sync")
    html = client_for("admin").get(url("rotate", key), headers=htmx).content.decode()
    assert "Rotate “Billing sync”" in html and key.display_hint in html
    for value in ("now", "1h", "24h", "7d"):
        assert f'value="{value}"' in html


def test_rotate_with_htmx_shows_the_new_token_and_the_old_keys_stop(
    client_for, make_key, htmx
) -> None:
    key, old_token = make_key(name="Billing sync")
    client = client_for("admin")
    before = timezone.now()
    response = client.post(url("rotate", key), {"overlap": "1h"}, headers=htmx)
    assert response.status_code == HTTPStatus.OK
    html = response.content.decode()
    token = html.split('id="new-token" value="')[1].split('"')[0]
    new = ApiKey.objects.get(rotated_from=key)
    assert apikey_check_digest(token_digest(token), ip=None).key == new
    assert apikey_check_digest(token_digest(old_token), ip=None).ok  # still inside the overlap
    key.refresh_from_db()
    assert before + timedelta(hours=1) <= key.expires_at <= timezone.now() + timedelta(hours=1)
    assert "Key rotated" in html and f"keeps working until {key.expires_at:%Y-%m-%d %H:%M}" in html
    assert hx_trigger(response) == {"keys-changed": {}}
    listing = client.get(LIST).content.decode()
    assert f"stops at {key.expires_at:%Y-%m-%d %H:%M} UTC" in re.sub(r"<[^>]+>", "", listing)
    # A rotated key offers no second rotation.
    assert url("rotate", key) not in listing and url("rotate", new) in listing


def test_rotate_now_without_javascript(client_for, make_key) -> None:
    key, old_token = make_key()
    client = client_for("owner")
    response = client.post(url("rotate", key), {"overlap": "now"})
    assert response.status_code == HTTPStatus.SEE_OTHER
    html = client.get(LIST).content.decode()
    token = html.split('id="new-token" value="')[1].split('"')[0]
    assert apikey_check_digest(token_digest(token), ip=None).ok
    assert apikey_check_digest(token_digest(old_token), ip=None).error == "key_expired"
    assert "has stopped working" in html


@pytest.mark.parametrize("hx", [True, False])
def test_rotate_refuses_a_bad_overlap_and_a_revoked_key(client_for, make_key, htmx, hx) -> None:
    key, _ = make_key()
    client = client_for("admin")
    headers = htmx if hx else {}
    response = client.post(url("rotate", key), {"overlap": "2h"}, headers=headers)
    assert response.status_code == HTTPStatus.UNPROCESSABLE_ENTITY
    assert "Select a valid choice" in response.content.decode()
    apikey_revoke(key=key, **by())
    response = client.post(url("rotate", key), {"overlap": "1h"}, headers=headers)
    assert response.status_code == HTTPStatus.UNPROCESSABLE_ENTITY
    assert "only a live key can be rotated" in response.content.decode()
    assert ApiKey.objects.count() == 1


# --- Pause and resume --------------------------------------------------------------------------

def test_pause_and_resume_swap_the_row_in_place(client_for, make_key, htmx) -> None:
    key, token = make_key(name="Billing sync")
    client = client_for("admin")
    response = client.post(url("pause", key), headers=htmx)
    html = response.content.decode()
    assert response.status_code == HTTPStatus.OK
    assert html.lstrip().startswith(f'<tr id="key-{key.public_id}"')
    assert ">Paused<" in html and ">Resume<" in html and ">Pause<" not in html
    assert apikey_check_digest(token_digest(token), ip=None).error == "key_paused"
    response = client.post(url("resume", key), headers=htmx)
    assert ">Active<" in response.content.decode()
    assert apikey_check_digest(token_digest(token), ip=None).ok
    assert [e.action for e in AuditEvent.objects.order_by("id")][-2:] == [
        "key.paused", "key.resumed"
    ]


def test_pause_twice_shows_the_error_in_the_row(client_for, make_key, htmx) -> None:
    key, _ = make_key()
    apikey_pause(key=key, **by())
    response = client_for("admin").post(url("pause", key), headers=htmx)
    assert response.status_code == HTTPStatus.UNPROCESSABLE_ENTITY
    assert "This key is already paused." in response.content.decode()
    assert AuditEvent.objects.filter(action="key.paused").count() == 1


def test_pause_and_resume_without_javascript_redirect_with_a_message(client_for, make_key) -> None:
    key, _ = make_key(name="Billing sync")
    client = client_for("admin")
    response = client.post(url("pause", key), follow=True)
    assert response.redirect_chain == [(LIST, HTTPStatus.SEE_OTHER)]
    assert "Paused “Billing sync”" in response.content.decode()
    response = client.post(url("pause", key), follow=True)
    assert "This key is already paused." in response.content.decode()
    response = client.post(url("resume", key), follow=True)
    assert "Resumed “Billing sync”" in response.content.decode()
    key.refresh_from_db()
    assert key.status == KeyStatus.ACTIVE


# --- Revoke ------------------------------------------------------------------------------------

def test_revoke_dialog_names_the_key_and_warns_about_recent_use(client_for, make_key, htmx):
    key, _ = make_key(name="Billing sync")
    client = client_for("admin")
    html = client.get(url("revoke", key), headers=htmx).content.decode()
    assert "Revoke “Billing sync”?" in html and key.display_hint in html
    assert "recently-used" not in html
    ApiKey.objects.filter(pk=key.pk).update(last_used_at=timezone.now() - timedelta(days=6))
    html = client.get(url("revoke", key), headers=htmx).content.decode()
    assert 'data-testid="recently-used"' in html and "6\xa0days ago" in html
    ApiKey.objects.filter(pk=key.pk).update(last_used_at=timezone.now() - timedelta(days=8))
    assert "recently-used" not in client.get(url("revoke", key), headers=htmx).content.decode()


def test_revoke_with_htmx_moves_the_row_to_the_revoked_section(
    client_for, make_key, members, htmx
) -> None:
    key, token = make_key(name="Billing sync")
    other, _ = make_key(name="Other")
    response = client_for("owner").post(url("revoke", key), headers=htmx)
    assert response.status_code == HTTPStatus.OK
    assert response["HX-Retarget"] == "#key-table"
    assert response["HX-Reswap"] == "outerHTML"
    assert json.loads(response["HX-Trigger-After-Swap"]) == {"dialog-close": {}}
    html = response.content.decode()
    active, revoked = html.split('id="revoked-keys"')
    assert f'id="key-{other.public_id}"' in active and f'id="key-{key.public_id}"' not in active
    assert f'id="key-{key.public_id}"' in revoked and "owner@acme.test" in revoked
    assert apikey_check_digest(token_digest(token), ip=None).error == "key_revoked"
    key.refresh_from_db()
    assert key.revoked_by == members["owner"]


def test_double_revoke_gives_a_clear_message_and_one_audit_event(client_for, make_key, htmx):
    key, _ = make_key()
    client = client_for("admin")
    assert client.post(url("revoke", key), headers=htmx).status_code == HTTPStatus.OK
    response = client.post(url("revoke", key), headers=htmx)
    assert response.status_code == HTTPStatus.UNPROCESSABLE_ENTITY
    assert "This key is already revoked." in response.content.decode()
    response = client.post(url("revoke", key), follow=True)
    assert "This key is already revoked." in response.content.decode()
    assert AuditEvent.objects.filter(action="key.revoked").count() == 1


def test_revoke_without_javascript_confirms_on_a_page_then_redirects(client_for, make_key):
    key, _ = make_key(name="Billing sync")
    client = client_for("admin")
    page = client.get(url("revoke", key)).content.decode()
    assert "<html" in page and "Revoke “Billing sync”?" in page
    assert f'<form method="post" action="{url("revoke", key)}"' in page
    response = client.post(url("revoke", key), follow=True)
    assert response.redirect_chain == [(LIST, HTTPStatus.SEE_OTHER)]
    html = response.content.decode()
    assert "Revoked “Billing sync”" in html
    assert f'id="key-{key.public_id}" data-testid="revoked-row"' in html


@pytest.mark.parametrize("htmx_on", [True, False], ids=["htmx", "plain"])
def test_create_reports_every_error_of_the_form_at_once(client_for, htmx_on) -> None:
    """Not one error per round trip: name, scopes, expiry, rate limit and allowed IPs together."""
    headers = {"HX-Request": "true"} if htmx_on else {}
    response = client_for("admin").post(NEW, create_data(
        name="", scopes=[], expires_at="2001-01-01T00:00", rate_limit_per_minute="-5",
        allowed_ips="10.0.0.0/33\nnot-an-ip",
    ), headers=headers)

    assert response.status_code == HTTPStatus.UNPROCESSABLE_ENTITY
    html = response.content.decode()
    for message in ("Give the key a name.", "Choose at least one scope.",
                    "The expiry must be in the future.",
                    "The rate limit must be a positive number of requests.",
                    "Not an IP address or CIDR range: 10.0.0.0/33, not-an-ip."):
        assert message in html, message
    assert html.count('aria-invalid="true"') >= 4
    assert ApiKey.objects.count() == 0
