"""`GET /api/v1/usage`: the workspace's daily budgets and today's use of them (SPEC §5), for any
credential (the MCP tool `get_usage` is this request)."""

from __future__ import annotations

from http import HTTPStatus

import pytest

pytestmark = pytest.mark.django_db


def test_usage_counts_todays_reads_and_writes(workspace, plan, client_api):
    workspace.plan = plan("basic")  # 200 writes, 200 passport reads a day
    workspace.save()
    client_api.get("/api/v1/passports")
    client_api.get("/api/v1/passports")
    client_api.post("/api/v1/passports", {"gtin": "4006381333931", "serial_number": "U1",
                                           "product_name": "P"}, content_type="application/json")
    response = client_api.get("/api/v1/usage")
    assert response.status_code == HTTPStatus.OK
    body = response.json()
    assert body["plan"] == {"code": "basic", "name": workspace.plan.name}
    budgets = {b["budget"]: b for b in body["budgets"]}
    assert (budgets["writes"]["used"], budgets["writes"]["remaining"]) == (1, 199)
    assert (budgets["passport_reads"]["used"], budgets["passport_reads"]["limit"]) == (2, 200)
    assert budgets["writes"]["resets_at"].endswith("T00:00:00Z")
    assert "X-RateLimit-Limit" not in response  # reading usage costs no budget


def test_unlimited_plans_have_no_limit(workspace, plan, make_key, api):
    workspace.plan = plan("pro")
    workspace.save()
    _key, token = make_key(["passports:read"])
    budgets = api(token).get("/api/v1/usage").json()["budgets"]
    assert all(b["limit"] is None and b["remaining"] is None for b in budgets)


def test_usage_takes_no_parameters_and_needs_a_credential(client, client_api):
    assert client.get("/api/v1/usage").status_code == HTTPStatus.UNAUTHORIZED
    bad = client_api.get("/api/v1/usage?day=yesterday")
    assert bad.status_code == HTTPStatus.BAD_REQUEST
    assert bad.json()["error"] == "invalid_request"
