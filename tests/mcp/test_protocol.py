"""The MCP server's JSON-RPC over HTTP with an API key (Django test client): initialize, tool
listing, tool calls through the gateway, and refusals."""

from __future__ import annotations

from http import HTTPStatus

import pytest

from audit.models import AuditEvent
from passports.models import Passport

pytestmark = pytest.mark.django_db

GTIN = "4006381333931"


def test_initialize_answers_with_the_clients_version(mcp):
    response = mcp.call("initialize", {
        "protocolVersion": "2025-06-18", "capabilities": {},
        "clientInfo": {"name": "test", "version": "1"},
    })
    assert response.status_code == HTTPStatus.OK, response.content
    result = response.json()["result"]
    assert result["protocolVersion"] == "2025-06-18"
    assert result["capabilities"]["tools"] == {"listChanged": False}
    assert result["serverInfo"]["name"] == "gatehouse"
    assert "mcp-session-id" not in response


def test_tools_list_declares_scope_and_cost(mcp):
    tools = {t["name"]: t for t in mcp.call("tools/list").json()["result"]["tools"]}
    assert set(tools) == {
        "list_passports", "get_passport", "create_passport", "update_passport",
        "publish_passport", "delete_passport", "get_usage", "list_audit_events",
    }
    create = tools["create_passport"]
    assert create["_meta"]["gatehouse/scope"] == "passports:write"
    assert create["_meta"]["gatehouse/budget"] == "writes"
    assert set(create["inputSchema"]["required"]) == {"gtin", "serial_number", "product_name"}
    assert "idempotency_key" in create["inputSchema"]["properties"]
    assert create["annotations"]["readOnlyHint"] is False
    assert tools["get_passport"]["inputSchema"]["required"] == ["passport_id"]
    assert tools["list_audit_events"]["_meta"]["gatehouse/scope"] == "audit:read"


def test_create_then_get_through_the_api_view(mcp, workspace):
    created = mcp.tool("create_passport", gtin=GTIN, serial_number="SN-1", product_name="Drill")
    result = created.json()["result"]
    assert result.get("isError") is not True, result
    passport = Passport.objects.get()
    assert result["structuredContent"]["id"] == passport.public_id
    event = AuditEvent.objects.get(action="passport.created")
    assert event.metadata["door"] == "mcp"
    assert event.metadata["tool"] == "create_passport"

    got = mcp.tool("get_passport", passport_id=passport.public_id).json()["result"]
    assert got["structuredContent"]["product_name"] == "Drill"


def test_api_errors_are_tool_errors_with_the_api_code(mcp):
    result = mcp.tool(
        "create_passport", gtin="4006381333932", serial_number="SN-1", product_name="Drill"
    ).json()["result"]
    assert result["isError"] is True
    assert result["structuredContent"]["error"] == "invalid_request"
    assert "gtin" in result["structuredContent"]["fields"]
    missing = mcp.tool("get_passport", passport_id="psp_nope").json()["result"]
    assert missing["isError"] is True
    assert missing["structuredContent"]["error"] == "not_found"
    assert Passport.objects.count() == 0
