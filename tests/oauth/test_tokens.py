"""Refresh rotation, reuse detection, revocation (RFC 7009) and introspection (RFC 7662)."""

from __future__ import annotations

from datetime import timedelta
from http import HTTPStatus

import time_machine
from django.test import Client
from django.utils import timezone
from oauth2_provider.models import AccessToken, RefreshToken

from audit.models import AuditEvent
from oauth.models import Connection
from oauth.verifier import verify_access_token

from .conftest import API_RESOURCE, INTROSPECT, REVOKE, TOKEN, basic_auth


def refresh(app, refresh_token: str, **extra: str):
    data = {"grant_type": "refresh_token", "refresh_token": refresh_token, **extra}
    if app.secret is None:
        data["client_id"] = app.client_id
    return Client().post(TOKEN, data, **app.token_auth())


def is_valid(access_token: str) -> bool:
    result = verify_access_token(access_token, ip=None, resource=API_RESOURCE)
    return result.__class__.__name__ == "Principal"


def test_refresh_rotates_both_tokens(oauth_app, tokens_for) -> None:
    first = tokens_for(oauth_app)

    response = refresh(oauth_app, first["refresh_token"])

    assert response.status_code == HTTPStatus.OK
    second = response.json()
    assert second["refresh_token"].startswith("grt_")
    assert second["refresh_token"] != first["refresh_token"]
    assert second["access_token"] != first["access_token"]
    assert not is_valid(first["access_token"])
    assert is_valid(second["access_token"])
    assert Connection.objects.get().revoked_at is None


def test_every_refresh_rotates(oauth_app, tokens_for) -> None:
    current = tokens_for(oauth_app)["refresh_token"]
    seen = {current}
    for _ in range(3):
        body = refresh(oauth_app, current).json()
        current = body["refresh_token"]
        seen.add(current)
    assert len(seen) == 4
    assert RefreshToken.objects.filter(revoked__isnull=True).count() == 1


def test_reusing_a_rotated_refresh_token_revokes_the_whole_grant(oauth_app, tokens_for):
    first = tokens_for(oauth_app)
    second = refresh(oauth_app, first["refresh_token"]).json()

    # Later than a client's own near-simultaneous refresh could be (REFRESH_RACE_SECONDS).
    with time_machine.travel(timezone.now() + timedelta(seconds=3), tick=False):
        replay = refresh(oauth_app, first["refresh_token"])

    assert replay.status_code == HTTPStatus.BAD_REQUEST
    assert replay.json()["error"] == "invalid_grant"
    assert not is_valid(second["access_token"])  # the legitimate holder is cut off too
    assert refresh(oauth_app, second["refresh_token"]).status_code == HTTPStatus.BAD_REQUEST
    connection = Connection.objects.get()
    assert connection.revoked_at is not None
    event = AuditEvent.objects.get(action="oauth.refresh_token_reused")
    assert event.workspace == connection.workspace
    assert event.actor_type == "oauth_app" and event.actor_id == oauth_app.client_id
    assert event.metadata["connection"] == connection.public_id
    assert event.metadata["door"] == "api"  # the token endpoint's events name their door
    assert "grt_" not in str(event.metadata) and "gat_" not in str(event.metadata)


def test_a_rotated_token_presented_at_once_is_refused_without_ending_the_grant(
    oauth_app, tokens_for
) -> None:
    """A client's own near-simultaneous second refresh (tabs, threads, a retry) lost a race with
    the first: invalid_grant, but not reuse (oauth.validators.REFRESH_RACE_SECONDS)."""
    first = tokens_for(oauth_app)
    second = refresh(oauth_app, first["refresh_token"]).json()

    with time_machine.travel(timezone.now() + timedelta(seconds=1), tick=False):
        again = refresh(oauth_app, first["refresh_token"])

    assert again.status_code == HTTPStatus.BAD_REQUEST
    assert again.json()["error"] == "invalid_grant"
    assert is_valid(second["access_token"])
    assert Connection.objects.get().revoked_at is None
    assert not AuditEvent.objects.filter(action="oauth.refresh_token_reused").exists()
    assert refresh(oauth_app, second["refresh_token"]).status_code == HTTPStatus.OK


def test_refresh_keeps_scopes_and_cannot_widen_them(oauth_app, tokens_for) -> None:
    first = tokens_for(oauth_app, scope="passports:read offline_access")

    widened = refresh(oauth_app, first["refresh_token"], scope="passports:read passports:write")

    assert widened.status_code == HTTPStatus.BAD_REQUEST
    assert widened.json()["error"] == "invalid_scope"


def test_refresh_token_of_another_client_is_refused(make_app, tokens_for) -> None:
    first = make_app()
    other = make_app(name="Other")
    body = tokens_for(first)

    response = refresh(other, body["refresh_token"])

    assert response.status_code == HTTPStatus.BAD_REQUEST
    assert response.json()["error"] == "invalid_grant"


def test_app_revokes_its_refresh_token_and_the_grant_ends(oauth_app, tokens_for) -> None:
    body = tokens_for(oauth_app)

    response = Client().post(
        REVOKE,
        {"token": body["refresh_token"], "token_type_hint": "refresh_token"},
        **oauth_app.token_auth(),
    )

    assert response.status_code == HTTPStatus.OK
    assert not is_valid(body["access_token"])
    assert refresh(oauth_app, body["refresh_token"]).status_code == HTTPStatus.BAD_REQUEST
    assert AccessToken.objects.count() == 0
    event = AuditEvent.objects.get(action="oauth.token_revoked")
    assert event.actor_type == "oauth_app" and event.metadata["reason"] == "revoked_by_app"
    # A revoked token presented again is not "reuse": nothing more is recorded.
    assert not AuditEvent.objects.filter(action="oauth.refresh_token_reused").exists()


def test_app_revokes_its_access_token(make_app, tokens_for) -> None:
    app = make_app(confidential=False, redirect_uri="http://127.0.0.1/cb")
    body = tokens_for(app)

    response = Client().post(REVOKE, {"token": body["access_token"], "client_id": app.client_id})

    assert response.status_code == HTTPStatus.OK
    assert not is_valid(body["access_token"])
    assert refresh(app, body["refresh_token"]).status_code == HTTPStatus.BAD_REQUEST


def test_revoking_another_clients_token_does_nothing(make_app, tokens_for) -> None:
    first = make_app()
    other = make_app(name="Other")
    body = tokens_for(first)

    response = Client().post(REVOKE, {"token": body["access_token"]}, **other.token_auth())

    assert response.status_code == HTTPStatus.OK  # RFC 7009 §2.2
    assert is_valid(body["access_token"])


def test_revocation_requires_client_authentication(oauth_app, tokens_for) -> None:
    body = tokens_for(oauth_app)

    response = Client().post(
        REVOKE,
        {"token": body["access_token"]},
        HTTP_AUTHORIZATION=basic_auth(oauth_app.client_id, "wrong"),
    )

    assert response.status_code == HTTPStatus.UNAUTHORIZED
    assert is_valid(body["access_token"])


def test_introspection_reports_effective_scope_for_the_clients_own_token(
    oauth_app, tokens_for, members
) -> None:
    body = tokens_for(oauth_app, "editor")

    data = Client().post(INTROSPECT, {"token": body["access_token"]}, **oauth_app.token_auth())

    assert data.status_code == HTTPStatus.OK
    claims = data.json()
    assert claims["active"] is True
    assert claims["client_id"] == oauth_app.client_id
    assert claims["workspace"] == "acme"
    assert claims["sub"] == str(members["editor"].pk)
    assert set(claims["scope"].split()) == {"passports:read", "passports:write", "offline_access"}
    assert claims["exp"] > claims["iat"]
    assert claims["aud"] == API_RESOURCE


def test_introspection_of_refresh_token(oauth_app, tokens_for) -> None:
    body = tokens_for(oauth_app)

    claims = Client().post(
        INTROSPECT, {"token": body["refresh_token"]}, **oauth_app.token_auth()
    ).json()

    assert claims["active"] is True and claims["token_type"] == "refresh_token"
    assert claims["aud"] == API_RESOURCE


def test_introspection_is_inactive_for_other_clients_and_garbage(make_app, tokens_for) -> None:
    first = make_app()
    other = make_app(name="Other")
    body = tokens_for(first)

    for token in (body["access_token"], "gat_" + "x" * 46, "garbage"):
        claims = Client().post(INTROSPECT, {"token": token}, **other.token_auth()).json()
        assert claims == {"active": False}


def test_introspection_requires_client_authentication(oauth_app, tokens_for) -> None:
    body = tokens_for(oauth_app)

    anonymous = Client().post(INTROSPECT, {"token": body["access_token"]})
    missing = Client().post(INTROSPECT, {}, **oauth_app.token_auth())

    assert anonymous.status_code == HTTPStatus.UNAUTHORIZED
    assert missing.status_code == HTTPStatus.BAD_REQUEST
    assert missing.json()["error"] == "invalid_request"


def test_refresh_token_expires_after_30_idle_days(oauth_app, tokens_for) -> None:
    import time_machine
    from django.utils import timezone

    body = tokens_for(oauth_app)
    later = timezone.now() + timedelta(days=30, minutes=16)

    with time_machine.travel(later, tick=False):
        response = refresh(oauth_app, body["refresh_token"])

    assert response.status_code == HTTPStatus.BAD_REQUEST
    assert response.json()["error"] == "invalid_grant"
