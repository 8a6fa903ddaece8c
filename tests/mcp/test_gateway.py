"""Each tool call gets the API's guarantees through the gateway's own `pass_gate` (SPEC §14):
scopes ∩ role, the step-up challenge, collections, budgets, rate limits, idempotency, usage;
and the MCP server is a resource of its own (RFC 8707 audience, RFC 9728 metadata)."""

from __future__ import annotations

import re
from http import HTTPStatus

import pytest
from django.test import Client

from apikeys.models import KeyRequest
from apikeys.services import apikey_revoke
from audit.models import AuditEvent
from core.context import Actor, RequestContext
from gateway.usage import usage_flush
from passports.models import Passport
from passports.services import collection_create, passport_create

from .conftest import Mcp

pytestmark = pytest.mark.django_db

GTIN = "4006381333931"
MCP_RESOURCE = "http://testserver/mcp"
ACTOR = {"actor": Actor.system("test"), "context": RequestContext()}


def challenge(response) -> dict[str, str]:
    return dict(re.findall(r'(\w+)="([^"]*)"', response["WWW-Authenticate"]))


def passport(workspace, serial: str = "SN-1", **kwargs) -> Passport:
    return passport_create(workspace=workspace, gtin=GTIN, serial_number=serial,
                           product_name="Drill", **kwargs, **ACTOR)


def test_no_credential_gets_the_challenge_mcp_clients_follow(client):
    response = client.post("/mcp", "{}", content_type="application/json")
    assert response.status_code == HTTPStatus.UNAUTHORIZED
    params = challenge(response)
    assert params["resource_metadata"] == (
        "http://testserver/.well-known/oauth-protected-resource/mcp"
    )
    assert "error" not in params
    body = response.json()
    assert body["jsonrpc"] == "2.0" and body["id"] is None
    assert body["error"]["data"]["error"] == "missing_credentials"

    readonly = client.post("/mcp/readonly", "{}", content_type="application/json")
    assert challenge(readonly)["scope"] == "passports:read audit:read"


def test_the_mcp_server_has_its_own_protected_resource_metadata(client):
    document = client.get("/.well-known/oauth-protected-resource/mcp").json()
    assert document["resource"] == MCP_RESOURCE
    assert document["authorization_servers"] == ["http://testserver"]
    assert document["scopes_supported"] == ["passports:read", "passports:write", "audit:read"]
    api = client.get("/.well-known/oauth-protected-resource/api/v1").json()
    assert document["resource_name"] == "Gatehouse MCP server"
    assert api["resource"] == "http://testserver/api/v1"


def test_tokens_are_bound_to_one_resource(client_for, oauth_app, authorize, exchange):
    for_api = exchange(oauth_app, authorize(client_for("editor"), oauth_app)).json()
    refused = Mcp(for_api["access_token"]).call("tools/list")
    assert refused.status_code == HTTPStatus.UNAUTHORIZED
    assert refused.json()["error"]["data"]["error"] == "invalid_token"
    assert challenge(refused)["error"] == "invalid_token"

    authorized = authorize(client_for("editor"), oauth_app, resource=MCP_RESOURCE)
    for_mcp = exchange(oauth_app, authorized, resource=MCP_RESOURCE).json()
    mcp = Mcp(for_mcp["access_token"])
    assert mcp.call("tools/list").status_code == HTTPStatus.OK
    created = mcp.tool("create_passport", gtin=GTIN, serial_number="S", product_name="P")
    assert created.json()["result"]["structuredContent"]["gtin"] == GTIN
    at_api = Client(headers={"Authorization": f"Bearer {for_mcp['access_token']}"})
    assert at_api.get("/api/v1/me").status_code == HTTPStatus.UNAUTHORIZED


def test_missing_scope_is_a_step_up_challenge(make_key, mcp_for, workspace):
    _key, token = make_key(["passports:read"])
    response = mcp_for(token).tool(
        "create_passport", gtin=GTIN, serial_number="S", product_name="P"
    )
    assert response.status_code == HTTPStatus.FORBIDDEN
    params = challenge(response)
    assert params["error"] == "insufficient_scope"
    assert params["scope"] == "passports:write"
    assert params["resource_metadata"].endswith("/.well-known/oauth-protected-resource/mcp")
    error = response.json()["error"]
    assert error["data"] == {
        "error": "insufficient_scope", "required_scope": "passports:write",
        "message": error["message"],
    }
    assert Passport.objects.count() == 0


def test_a_viewer_grant_cannot_write_whatever_it_was_granted(
    client_for, oauth_app, authorize, exchange
):
    authorized = authorize(client_for("viewer"), oauth_app, resource=MCP_RESOURCE)
    token = exchange(oauth_app, authorized, resource=MCP_RESOURCE).json()["access_token"]
    response = Mcp(token).tool("create_passport", gtin=GTIN, serial_number="S",
                               product_name="P")
    assert response.status_code == HTTPStatus.FORBIDDEN
    assert response.json()["error"]["data"]["error"] == "insufficient_scope"


def test_readonly_lists_and_answers_only_read_tools(mcp_for, token, workspace):
    readonly = mcp_for(token, "/mcp/readonly")
    names = {t["name"] for t in readonly.call("tools/list").json()["result"]["tools"]}
    assert names == {"list_passports", "get_passport", "get_usage", "list_audit_events"}
    refused = readonly.tool("create_passport", gtin=GTIN, serial_number="S", product_name="P")
    assert refused.json()["error"]["code"] == -32602
    assert Passport.objects.count() == 0


def test_collection_restricted_key_sees_only_its_collection(make_key, mcp_for, workspace):
    inside = collection_create(workspace=workspace, name="Tools", **ACTOR)
    visible = passport(workspace, "SN-1", collection=inside)
    hidden = passport(workspace, "SN-2")
    _key, token = make_key(collections=[inside.public_id])
    mcp = mcp_for(token)
    listed = mcp.tool("list_passports").json()["result"]["structuredContent"]
    assert [p["id"] for p in listed["data"]] == [visible.public_id]
    other = mcp.tool("get_passport", passport_id=hidden.public_id).json()["result"]
    assert other["isError"] and other["structuredContent"]["error"] == "not_found"
    outside = mcp.tool("create_passport", gtin=GTIN, serial_number="SN-3", product_name="P")
    assert outside.json()["result"]["structuredContent"]["error"] == "invalid_request"


def test_budget_counts_tool_calls_and_refuses_past_it(mcp, workspace, plan):
    workspace.plan = plan("free")  # 100 passport reads a day
    workspace.save()
    item = passport(workspace)
    for _ in range(100):
        result = mcp.tool("get_passport", passport_id=item.public_id).json()["result"]
        assert not result.get("isError"), result
    assert result["_meta"]["gatehouse/rate_limit"]["remaining"] == 0
    over = mcp.tool("get_passport", passport_id=item.public_id).json()["result"]
    assert over["isError"] is True
    assert over["structuredContent"]["error"] == "quota_exceeded"
    assert "100 passport reads/day" in over["structuredContent"]["message"]
    assert over["_meta"]["gatehouse/retry_after"] > 0
    usage = mcp.tool("get_usage").json()["result"]["structuredContent"]
    reads = next(b for b in usage["budgets"] if b["budget"] == "passport_reads")
    assert reads["used"] == 100 and reads["remaining"] == 0


def test_rate_limit_of_the_key_applies(make_key, mcp_for, workspace):
    _key, token = make_key(rate_limit_per_minute=2)
    mcp = mcp_for(token)
    assert not mcp.tool("list_passports").json()["result"].get("isError")
    assert not mcp.tool("list_passports").json()["result"].get("isError")
    third = mcp.tool("list_passports").json()["result"]
    assert third["structuredContent"]["error"] == "rate_limited"


def test_idempotency_key_replays_the_first_result(mcp, workspace):
    args = {"gtin": GTIN, "serial_number": "SN-9", "product_name": "P",
            "idempotency_key": "create-sn-9"}
    first = mcp.tool("create_passport", **args).json()["result"]
    again = mcp.tool("create_passport", **args).json()["result"]
    assert again["structuredContent"] == first["structuredContent"]
    assert again["_meta"]["gatehouse/idempotent_replayed"] is True
    assert Passport.objects.count() == 1
    reused = mcp.tool("create_passport", **{**args, "product_name": "Other"}).json()["result"]
    assert reused["structuredContent"]["error"] == "idempotency_key_reused"
    bad = mcp.tool("create_passport", **{**args, "idempotency_key": "x" * 256}).json()["result"]
    assert bad["structuredContent"]["error"] == "invalid_request"


def test_usage_and_audit_name_the_tool(make_key, mcp_for, workspace):
    key, token = make_key()
    mcp = mcp_for(token)
    item = passport(workspace)
    mcp.tool("publish_passport", passport_id=item.public_id)
    mcp.tool("delete_passport", passport_id=item.public_id)
    usage_flush()
    rows = list(KeyRequest.objects.filter(api_key=key).order_by("at", "id")
                .values_list("method", "path", "status"))
    assert rows == [
        ("PATCH", "/mcp/tools/publish_passport", 200),
        ("DELETE", "/mcp/tools/delete_passport", 204),
    ]
    events = AuditEvent.objects.filter(target_id=item.public_id).exclude(
        action="passport.created").order_by("id")
    assert [(e.metadata["door"], e.metadata["tool"]) for e in events] == [
        ("mcp", "publish_passport"), ("mcp", "delete_passport"),
    ]
    assert not Passport.objects.exists()


def test_revoked_key_is_refused_on_the_next_call(make_key, mcp_for, workspace):
    key, token = make_key()
    mcp = mcp_for(token)
    assert mcp.tool("list_passports").status_code == HTTPStatus.OK
    apikey_revoke(key=key, **ACTOR)
    refused = mcp.tool("list_passports")
    assert refused.status_code == HTTPStatus.UNAUTHORIZED
    assert refused.json()["error"]["data"]["error"] == "key_revoked"
    listing = mcp.call("tools/list")
    assert listing.status_code == HTTPStatus.UNAUTHORIZED
    assert listing.json()["error"]["data"]["error"] == "key_revoked"


def test_protocol_requests_count_against_the_keys_rate_limit(make_key, mcp_for, workspace):
    key, token = make_key(rate_limit_per_minute=2)
    mcp = mcp_for(token)
    assert mcp.call("ping").status_code == HTTPStatus.OK
    assert mcp.call("tools/list").status_code == HTTPStatus.OK
    limited = mcp.call("tools/list")
    assert limited.status_code == HTTPStatus.TOO_MANY_REQUESTS
    assert limited.json()["error"]["data"]["error"] == "rate_limited"
    assert int(limited["Retry-After"]) > 0
    usage_flush()
    assert set(KeyRequest.objects.filter(api_key=key).values_list("path", flat=True)) == {"/mcp"}


def test_the_server_can_be_turned_off(mcp, client, settings):
    settings.GATEHOUSE_MCP_ENABLED = False
    assert mcp.call("tools/list").status_code == HTTPStatus.NOT_FOUND
    metadata = client.get("/.well-known/oauth-protected-resource/mcp")
    assert metadata.status_code == HTTPStatus.NOT_FOUND


def test_browser_clients_get_credential_less_cors(client):
    preflight = client.options(
        "/mcp", HTTP_ORIGIN="https://inspector.example", HTTP_ACCESS_CONTROL_REQUEST_METHOD="POST",
        HTTP_ACCESS_CONTROL_REQUEST_HEADERS="authorization, content-type, mcp-protocol-version",
    )
    assert preflight.status_code == HTTPStatus.NO_CONTENT
    assert preflight["Access-Control-Allow-Origin"] == "*"
    assert "Access-Control-Allow-Credentials" not in preflight
    refused = client.post("/mcp", "{}", content_type="application/json",
                          HTTP_ORIGIN="https://inspector.example")
    assert refused["Access-Control-Allow-Origin"] == "*"
    assert "WWW-Authenticate" in refused["Access-Control-Expose-Headers"]
    metadata = client.get("/.well-known/oauth-protected-resource/mcp",
                          HTTP_ORIGIN="https://inspector.example")
    assert metadata["Access-Control-Allow-Origin"] == "*"
