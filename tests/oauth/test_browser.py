"""In a real browser: register an app in the dashboard, copy its secret, authorize it through the
consent page, and revoke it from Connected apps."""

from __future__ import annotations

from http import HTTPStatus
from urllib.parse import urlencode

import pytest
import requests
from playwright.sync_api import expect

from .conftest import pkce_pair, query_of

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_register_copy_secret_authorize_and_revoke(page, login, members, live_server) -> None:
    callback = f"{live_server.url}/oauth-callback"
    login("owner@acme.test")

    # Register a confidential app; its secret is shown once, with Copy.
    page.goto("/w/acme/settings/oauth-apps/")
    page.get_by_test_id("new-app").click()
    dialog = page.get_by_role("dialog")
    dialog.get_by_label("Name").fill("Browser CRM")
    dialog.get_by_label("Redirect URIs").fill(callback)
    dialog.get_by_role("button", name="Register app").click()
    secret_field = page.get_by_test_id("client-secret")
    expect(secret_field).to_be_visible()
    client_id = page.get_by_test_id("client-id").inner_text()
    page.get_by_role("button", name="Copy").click()
    expect(page.get_by_role("status").filter(has_text="Copied")).to_be_visible()
    secret = page.evaluate("navigator.clipboard.readText()")
    assert secret == secret_field.input_value() and len(secret) >= 64
    page.get_by_role("link", name="Done").click()
    expect(page.get_by_test_id("app-row").filter(has_text="Browser CRM")).to_be_visible()
    assert secret not in page.content()

    # The app sends the user to the consent page; the user picks the workspace and allows.
    verifier, challenge = pkce_pair()
    page.goto("/api/oauth/authorize?" + urlencode({
        "response_type": "code", "client_id": client_id, "redirect_uri": callback,
        "scope": "passports:read offline_access", "state": "browser-state",
        "code_challenge": challenge, "code_challenge_method": "S256",
    }))
    expect(page.get_by_test_id("app-name")).to_have_text("Browser CRM")
    expect(page.get_by_test_id("scope-list")).to_contain_text("Read product passports.")
    page.get_by_label("Acme").check()
    page.get_by_role("button", name="Allow access").click()
    page.wait_for_url(f"{callback}?**")
    params = query_of(page.url)
    assert params["state"] == "browser-state" and params["iss"] == live_server.url

    # The app exchanges the code with the copied secret and calls the API.
    token = requests.post(
        f"{live_server.url}/api/oauth/token",
        data={"grant_type": "authorization_code", "code": params["code"],
              "redirect_uri": callback, "code_verifier": verifier},
        auth=(client_id, secret), timeout=10,
    )
    assert token.status_code == HTTPStatus.OK, token.text
    bearer = {"Authorization": f"Bearer {token.json()['access_token']}"}
    assert requests.get(f"{live_server.url}/api/v1/me", headers=bearer, timeout=10).ok

    # The user revokes it from Connected apps: its token stops working at once.
    page.goto("/")
    page.get_by_role("banner").get_by_role("link", name="Connected apps").click()  # the user's own
    row = page.get_by_test_id("connection-row")
    expect(row).to_contain_text("Browser CRM")
    expect(row).to_contain_text("Acme")
    page.get_by_role("link", name="Revoke Browser CRM").click()
    page.get_by_role("dialog").get_by_role("button", name="Revoke access").click()
    expect(page.get_by_test_id("connection-row")).to_have_count(0)
    me = requests.get(f"{live_server.url}/api/v1/me", headers=bearer, timeout=10)
    assert me.status_code == HTTPStatus.UNAUTHORIZED
    assert me.json()["error"] == "invalid_token"
