"""Helpers for the MCP server's tests: JSON-RPC over the Django test client, and the OAuth
flow's fixtures (tests/oauth/conftest.py)."""

from __future__ import annotations

import json
from collections.abc import Callable
from itertools import count

import pytest
from django.test import Client

from tests.oauth.conftest import (  # noqa: F401
    authorize,
    exchange,
    make_app,
    oauth_app,
    tokens_for,
)

_ids = count(1)


def rpc_body(method: str, params: dict | None = None, *, id_: int | None = None) -> str:
    message: dict = {"jsonrpc": "2.0", "id": next(_ids) if id_ is None else id_,
                     "method": method}
    if params is not None:
        message["params"] = params
    return json.dumps(message)


class Mcp:
    """A bearer-authenticated JSON-RPC caller of `/mcp` (or `path`) through the test client."""

    def __init__(self, token: str | None, path: str = "/mcp") -> None:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        self.client = Client(headers=headers)
        self.path = path

    def post(self, body: str | bytes, content_type: str = "application/json", **extra):
        return self.client.post(self.path, body, content_type=content_type, **extra)

    def call(self, method: str, params: dict | None = None):
        return self.post(rpc_body(method, params))

    def tool(self, name: str, **arguments):
        return self.call("tools/call", {"name": name, "arguments": arguments})


@pytest.fixture
def mcp(token) -> Mcp:
    """An all-scopes API key of acme at /mcp."""
    return Mcp(token)


@pytest.fixture
def mcp_for() -> Callable[..., Mcp]:
    return Mcp
