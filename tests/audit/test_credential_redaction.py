"""A credential-shaped substring in what a user types (a key's name, a redirect URI) is redacted in
the audit event, never refused with a 500 — through every door that writes one (point 8)."""

from __future__ import annotations

import io
import json
import logging
from http import HTTPStatus

import pytest
from django.core.management import call_command
from django.test import Client
from django.urls import reverse

from apikeys.models import ApiKey
from audit.models import AuditEvent
from audit.verification import verify_chain
from core.credentials import CREDENTIAL_PATTERN, redact_credentials
from tests.factories import UserFactory

pytestmark = pytest.mark.django_db

# One of each family, in the real shapes of apikeys/tokens.py and oauth/tokens.py, and shorter
# pastes of the same prefixes (what a truncated copy looks like).
SHAPED = [
    "gk_dev_" + "A1b2C3d4E5" * 3 + "Zz9Yy8",
    "gk_prod_Q9w8E7r6T5",
    "gat_" + "x" * 40 + "CHECK1",
    "grt_Abc123Def456",
    "gac_" + "7" * 46,
    "gcs_" + "S3cr3t" * 10 + "000000",
]


def _event(action: str) -> AuditEvent:
    return AuditEvent.objects.filter(action=action).latest("id")


def _assert_redacted(event: AuditEvent, shaped: str) -> None:
    stored = json.dumps([event.metadata, event.target_label, event.actor_label])
    assert shaped not in stored
    assert CREDENTIAL_PATTERN.search(stored) is None
    assert "[REDACTED]" in json.dumps(event.metadata)
    assert verify_chain(event.workspace_id).ok  # redacted before it was hashed


@pytest.mark.parametrize("shaped", SHAPED)
def test_dashboard_key_named_like_a_credential_is_redacted(client_for, shaped) -> None:
    name = f"deploy {shaped} copy"
    response = client_for("owner").post("/w/acme/settings/api-keys/new/", {
        "name": name, "scopes": ["passports:read"], "environment": "development",
    })
    assert response.status_code < HTTPStatus.INTERNAL_SERVER_ERROR
    assert ApiKey.objects.get().name == name  # the key is made as asked
    event = _event("key.created")
    _assert_redacted(event, shaped)
    prefix = shaped.split("_")[0]
    assert f"deploy {prefix}_" in event.metadata["name"]


def test_admin_key_named_like_a_credential_is_redacted(client, workspace) -> None:
    client.force_login(UserFactory(email="ops@gatehouse.test", is_staff=True, is_superuser=True))
    response = client.post(reverse("admin:apikeys_apikey_add"), {
        "workspace": workspace.pk, "name": f"paste {SHAPED[2]}", "scopes": ["passports:read"],
        "environment": "development",
    })
    assert response.status_code == HTTPStatus.OK
    _assert_redacted(_event("key.created"), SHAPED[2])


def test_command_key_named_like_a_credential_is_redacted(workspace) -> None:
    out = io.StringIO()
    call_command("create_api_key", "acme", "--name", f"ci {SHAPED[0]}", stdout=out,
                 stderr=io.StringIO())
    assert out.getvalue().startswith("gk_dev_")
    _assert_redacted(_event("key.created"), SHAPED[0])


@pytest.mark.parametrize("shaped", [SHAPED[2], SHAPED[3], SHAPED[0]])
def test_dashboard_oauth_app_with_a_credential_in_its_redirect_uri(client_for, shaped) -> None:
    uri = f"https://bridge.example.com/cb?hint={shaped}"
    response = client_for("admin").post("/w/acme/settings/oauth-apps/new", {
        "name": "Bridge", "redirect_uris": uri, "client_type": "confidential",
    })
    assert response.status_code == HTTPStatus.SEE_OTHER  # post/redirect/get
    event = _event("oauth_app.created")
    _assert_redacted(event, shaped)
    assert event.metadata["redirect_uris"][0].startswith("https://bridge.example.com/cb?hint=")


@pytest.mark.parametrize("shaped", [SHAPED[2], SHAPED[3], SHAPED[0]])
def test_dynamic_registration_with_a_credential_in_its_redirect_uri(db, shaped) -> None:
    response = Client().post("/api/oauth/register", json.dumps({
        "client_name": "Claude", "redirect_uris": [f"http://localhost:33418/{shaped}/callback"],
        "token_endpoint_auth_method": "none",
    }), content_type="application/json")
    assert response.status_code == HTTPStatus.CREATED, response.content
    assert response.json()["redirect_uris"] == [f"http://localhost:33418/{shaped}/callback"]
    _assert_redacted(_event("oauth_app.created"), shaped)


def test_one_pattern_redacts_every_family_in_logs(caplog) -> None:
    with caplog.at_level(logging.INFO):
        logging.getLogger("gatehouse.test.redaction").info(
            "pasted: %s", " ".join(f"x_{s}" for s in SHAPED)  # even glued after a word
        )
    assert all(s not in caplog.text for s in SHAPED)
    assert caplog.text.count("[REDACTED]") == len(SHAPED)


def test_redaction_keeps_the_prefix_and_the_rest() -> None:
    assert redact_credentials(f"a {SHAPED[3]}/b") == "a grt_[REDACTED]/b"
    assert redact_credentials("gatehouse grt_ short gat_abc") == "gatehouse grt_ short gat_abc"
