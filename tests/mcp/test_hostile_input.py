"""Hostile JSON-RPC at `/mcp`: every malformed message gets a JSON-RPC error with the right code
and a 4xx (or a tool error from the API's own validation), never a 500, nothing written."""

from __future__ import annotations

import json
from http import HTTPStatus

import pytest

from passports.models import Passport

from .conftest import rpc_body

pytestmark = pytest.mark.django_db

GTIN = "4006381333931"


def error_of(response, status: int, code: int) -> dict:
    assert response.status_code == status, response.content[:300]
    body = response.json()
    assert body["jsonrpc"] == "2.0"
    assert body["error"]["code"] == code, body
    return body


@pytest.mark.parametrize("raw", [
    b"{", b"not json", b"\xff\xfe", b"", b'{"jsonrpc": "2.0", "id": 1, "method": "ping"',
    b"[" * 100_000 + b"]" * 100_000,
])
def test_malformed_json_is_a_parse_error(mcp, raw):
    body = error_of(mcp.post(raw), HTTPStatus.BAD_REQUEST, -32700)
    assert body["id"] is None


def test_batches_are_refused(mcp):
    batch = json.dumps([json.loads(rpc_body("ping")), json.loads(rpc_body("tools/list"))])
    error_of(mcp.post(batch), HTTPStatus.BAD_REQUEST, -32600)


@pytest.mark.parametrize("message", [
    {"id": 1, "method": "ping"},  # no jsonrpc
    {"jsonrpc": "1.0", "id": 1, "method": "ping"},
    {"jsonrpc": "2.0", "id": {"a": 1}, "method": "ping"},
    {"jsonrpc": "2.0", "id": 1, "method": 7},
    {"jsonrpc": "2.0", "id": 1, "method": "ping", "params": [1, 2]},
    {"jsonrpc": "2.0"},
    "just a string", 42, None,
])
def test_invalid_messages_are_invalid_requests(mcp, message):
    error_of(mcp.post(json.dumps(message)), HTTPStatus.BAD_REQUEST, -32600)


def test_notifications_and_responses_are_accepted_without_a_body(mcp):
    note = mcp.post(json.dumps({"jsonrpc": "2.0", "method": "notifications/initialized"}))
    assert note.status_code == HTTPStatus.ACCEPTED and note.content == b""
    reply = mcp.post(json.dumps({"jsonrpc": "2.0", "id": 5, "result": {}}))
    assert reply.status_code == HTTPStatus.ACCEPTED


@pytest.mark.parametrize("method", ["resources/list", "tools/delete", "\ud800", "x" * 10_000])
def test_unknown_methods(mcp, method):
    body = error_of(mcp.call(method), HTTPStatus.OK, -32601)
    assert len(body["error"]["message"]) < 200


@pytest.mark.parametrize("params", [
    {"name": "drop_tables", "arguments": {}},
    {"name": "get_passport\u0000", "arguments": {"passport_id": "x"}},
    {"arguments": {}},
    {"name": ["get_passport"]},
    {"name": "get_passport", "arguments": "passport_id=x"},
])
def test_unknown_tools_and_bad_call_params(mcp, params):
    error_of(mcp.call("tools/call", params), HTTPStatus.OK, -32602)


@pytest.mark.parametrize("arguments", [
    {"passport_id": 123},
    {"passport_id": None},
    {"passport_id": ["psp_x"]},
    {},
    {"passport_id": "psp_x", "extra": 1},
    {"passport_id": "\ud800"},
])
def test_wrong_argument_types_are_invalid_params(mcp, arguments):
    body = error_of(mcp.call("tools/call", {"name": "get_passport", "arguments": arguments}),
                    HTTPStatus.OK, -32602)
    assert body["error"]["data"]["error"] == "invalid_request"
    assert body["error"]["data"]["fields"]


def test_wrong_types_in_a_write_write_nothing(mcp):
    for arguments in (
        {"gtin": 4006381333931, "serial_number": "S", "product_name": "P"},
        {"gtin": GTIN, "serial_number": "S", "product_name": True},
        {"gtin": GTIN, "serial_number": "S", "product_name": "P", "idempotency_key": 5},
    ):
        response = mcp.call("tools/call", {"name": "create_passport", "arguments": arguments})
        error_of(response, HTTPStatus.OK, -32602)
    assert Passport.objects.count() == 0


@pytest.mark.parametrize("arguments", [
    {"gtin": GTIN, "serial_number": "S\u0000", "product_name": "P"},
    {"gtin": GTIN, "serial_number": "S", "product_name": "x" * 100_000},
    {"gtin": "9" * 5000, "serial_number": "S", "product_name": "P"},
    {"gtin": GTIN, "serial_number": "S", "product_name": "P", "collection": "col_" + "z" * 500},
])
def test_bad_values_are_the_apis_tool_errors(mcp, arguments):
    response = mcp.call("tools/call", {"name": "create_passport", "arguments": arguments})
    assert response.status_code == HTTPStatus.OK
    result = response.json()["result"]
    assert result["isError"] is True
    assert result["structuredContent"]["error"] == "invalid_request"
    assert Passport.objects.count() == 0


@pytest.mark.parametrize("passport_id", ["../keys", "psp_x/../../me", "a?b=c", "%2e%2e", " "])
def test_ids_cannot_reach_another_route(mcp, passport_id):
    result = mcp.tool("get_passport", passport_id=passport_id).json()["result"]
    assert result["isError"] is True
    assert result["structuredContent"]["error"] == "not_found"


def test_huge_and_odd_query_values(mcp):
    for arguments in ({"limit": 10**100}, {"limit": -1}, {"cursor": "\u0000"},
                      {"status": "x" * 5000}):
        result = mcp.tool("list_passports", **arguments).json()["result"]
        assert result["isError"] is True, arguments
        assert result["structuredContent"]["error"] == "invalid_request"


def test_oversized_bodies_are_refused_before_parsing(mcp):
    big = rpc_body("tools/call", {"name": "list_passports",
                                  "arguments": {"cursor": "x" * (1024 * 1024)}})
    body = error_of(mcp.post(big), HTTPStatus.REQUEST_ENTITY_TOO_LARGE, -32012)
    assert body["error"]["data"]["error"] == "request_too_large"


def test_wrong_content_type_and_method(mcp):
    error_of(mcp.post(rpc_body("ping"), content_type="text/plain"),
             HTTPStatus.UNSUPPORTED_MEDIA_TYPE, -32012)
    get = mcp.client.get("/mcp")
    assert get.status_code == HTTPStatus.METHOD_NOT_ALLOWED and get["Allow"] == "POST"
    assert mcp.client.delete("/mcp").status_code == HTTPStatus.METHOD_NOT_ALLOWED


def test_unknown_protocol_version_header(mcp):
    response = mcp.post(rpc_body("ping"), HTTP_MCP_PROTOCOL_VERSION="1999-01-01")
    error_of(response, HTTPStatus.BAD_REQUEST, -32600)


def test_deeply_nested_arguments_do_not_crash(mcp):
    deep: object = "x"
    for _ in range(500):
        deep = {"a": deep}
    response = mcp.call("tools/call", {"name": "create_passport", "arguments": {
        "gtin": GTIN, "serial_number": "S", "product_name": deep}})
    error_of(response, HTTPStatus.OK, -32602)
