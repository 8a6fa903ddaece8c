"""The API reference in the dashboard (issue 15 point 9): rendered on the server from the
OpenAPI document, every operation and object in it, examples with the member's own key hint,
no third-party assets."""

import re
from http import HTTPStatus

import pytest

from gateway.openapi import build_document

pytestmark = pytest.mark.django_db

URL = "/w/acme/settings/api-reference/"


def test_every_operation_and_object_of_the_document_is_on_the_page(client_for) -> None:
    body = client_for("viewer").get(URL).content.decode()
    document = build_document()
    for path, operations in document["paths"].items():
        for method, op in operations.items():
            assert f'id="{op["operationId"]}"' in body, (method, path)
    for name in document["components"]["schemas"]:
        if name != "Error":
            assert f'id="schema-{name.lower()}"' in body
    assert "<code>overage_required</code>" in body and "<code>passports:write</code>" in body
    # Server-rendered, no CDN: every script and stylesheet is our own.
    for src in re.findall(r'(?:src|href)="(https?://[^"]+)"', body):
        pytest.fail(f"external asset {src}")


def test_examples_name_the_members_own_key(client_for, make_key) -> None:
    key, token = make_key(["passports:read"])
    other, _ = make_key(["passports:read"], name="Second")
    body = client_for("viewer").get(URL).content.decode()
    assert f'Authorization: Bearer {other.display_hint}' in body  # newest first
    chosen = client_for("viewer").get(URL, {"key": key.display_hint}).content.decode()
    assert f'data-testid="example-credential">{key.display_hint}<' in chosen
    assert token not in body and token not in chosen
    unknown = client_for("viewer").get(URL, {"key": "<script>"}).content.decode()
    assert "<script>" not in unknown.split("<main")[1]


def test_without_keys_the_examples_say_where_to_get_one(owner_client) -> None:
    body = owner_client.get(URL).content.decode()
    assert "&lt;your API key&gt;" in body and 'href="/w/acme/settings/api-keys/"' in body


def test_reference_is_linked_from_api_keys_and_oauth_apps(owner_client) -> None:
    for page in ("/w/acme/settings/api-keys/", "/w/acme/settings/oauth-apps/"):
        assert f'href="{URL}"'.encode() in owner_client.get(page).content
    assert b"docs/oauth.md" not in owner_client.get("/w/acme/settings/oauth-apps/").content


def test_reference_needs_membership(client, client_for, other_workspace) -> None:
    assert client.get(URL).status_code == HTTPStatus.FOUND
    assert client_for("owner").get("/w/globex/settings/api-reference/").status_code == 404
