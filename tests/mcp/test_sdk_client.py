"""The unmodified MCP Python SDK client against a live server (`streamable_http_client`, with
`OAuthClientProvider` for OAuth): discovery from the 401, dynamic registration, PKCE consent,
`initialize`, `tools/list`, `tools/call` for reads and writes; a read-only grant refused for a
write tool (the MCP error and the HTTP step-up challenge); a revoked grant refused on the next
call; a token for `/api/v1` refused at `/mcp`; budgets exact under 16 concurrent calls on two
gunicorn workers."""

from __future__ import annotations

import re
import threading
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from http import HTTPStatus
from typing import Any

import anyio
import httpx
import httpx2
import pytest
from mcp.client.auth import OAuthClientProvider
from mcp.client.session import ClientSession
from mcp.client.streamable_http import streamable_http_client
from mcp.shared.auth import AuthorizationCodeResult, OAuthClientMetadata
from mcp.shared.exceptions import MCPError
from oauth2_provider.models import AccessToken
from pydantic import AnyUrl

from audit.models import AuditEvent
from core.context import Actor, RequestContext
from oauth.models import Connection
from oauth.services import connection_revoke
from passports.models import Passport
from passports.services import passport_create
from tests.oauth.conftest import query_of
from tests.oauth.test_client_metadata_documents import (  # noqa: F401
    LOOPBACK_CALLBACK,
    certificates,
    documents,
)
from tests.oauth.test_live_clients import MemoryTokenStorage, UserAgent, _mcp_call_me
from tests.servers import gunicorn

pytestmark = pytest.mark.django_db(transaction=True)

GTIN = "4006381333931"


def run_async(fn: Callable[[], Awaitable[Any]]) -> Any:
    """In a thread of its own: a session-wide Playwright browser may own this thread's loop."""
    with ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(anyio.run, fn).result(timeout=120)


def oauth_provider(server_url: str, agent: UserAgent, storage: MemoryTokenStorage,
                   redirects: list[str], *, client_metadata_url: str | None = None,
                   ) -> OAuthClientProvider:
    async def redirect_handler(authorization_url: str) -> None:
        redirects.append(await anyio.to_thread.run_sync(agent.consent, authorization_url))

    async def callback_handler() -> AuthorizationCodeResult:
        params = query_of(redirects[-1])
        return AuthorizationCodeResult(
            code=params["code"], state=params.get("state"), iss=params.get("iss")
        )

    return OAuthClientProvider(
        server_url=server_url,
        client_metadata=OAuthClientMetadata(
            client_name="Test Assistant",
            redirect_uris=[AnyUrl(LOOPBACK_CALLBACK)],
        ),
        storage=storage, redirect_handler=redirect_handler, callback_handler=callback_handler,
        client_metadata_url=client_metadata_url,
    )


async def refusal(call: Awaitable[Any]) -> MCPError:
    """The MCP error `call` raises (caught inside the session, so it is not wrapped in the
    transport's task-group exception)."""
    try:
        result = await call
    except MCPError as exc:
        return exc
    raise AssertionError(f"not refused: {result}")


async def in_session(url: str, work: Callable[[ClientSession], Awaitable[Any]], *,
                     auth: httpx2.Auth | None = None, token: str | None = None,
                     initialize: bool = True) -> Any:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    async with (
        httpx2.AsyncClient(auth=auth, headers=headers, timeout=30) as http,
        streamable_http_client(url, http_client=http) as streams,
        ClientSession(streams[0], streams[1]) as session,
    ):
        if initialize:
            await session.initialize()
        return await work(session)


def test_sdk_client_discovers_registers_consents_and_calls_tools(live_server, members):
    base = live_server.url
    agent, storage, redirects = UserAgent(base, members["editor"]), MemoryTokenStorage(), []

    async def work(session: ClientSession) -> tuple:
        listed = await session.list_tools()
        created = await session.call_tool("create_passport", {
            "gtin": GTIN, "serial_number": "SN-1", "product_name": "Drill",
        })
        got = await session.call_tool(
            "get_passport", {"passport_id": created.structured_content["id"]}
        )
        missing = await session.call_tool("get_passport", {"passport_id": "psp_missing"})
        return listed, created, got, missing

    listed, created, got, missing = run_async(lambda: in_session(
        f"{base}/mcp", work, auth=oauth_provider(f"{base}/mcp", agent, storage, redirects)
    ))

    assert len(redirects) == 1  # one consent, through discovery and registration
    assert "registered itself" in agent.pages[0]
    assert {t.name for t in listed.tools} >= {"create_passport", "list_audit_events"}
    assert created.is_error is not True
    assert got.structured_content["product_name"] == "Drill"
    assert missing.is_error is True
    assert missing.structured_content["error"] == "not_found"
    token = AccessToken.objects.get()
    assert token.resource == [f"{base}/mcp"]  # bound to the MCP server (RFC 8707)
    assert Connection.objects.get().application.registration_source == "dcr"
    event = AuditEvent.objects.get(action="passport.created")
    assert (event.actor_type, event.metadata["tool"]) == ("oauth_app", "create_passport")
    assert event.metadata["on_behalf_of"]["label"] == "editor@acme.test"


def test_sdk_client_connects_with_a_client_id_metadata_document(
    documents, live_server, members  # noqa: F811
):
    url = documents.url("/clients/assistant.json")
    documents.publish("/clients/assistant.json", {
        "client_id": url, "client_name": "Hosted Assistant", "redirect_uris": [LOOPBACK_CALLBACK],
        "grant_types": ["authorization_code", "refresh_token"],
        "token_endpoint_auth_method": "none",
    })
    base = live_server.url
    agent, storage, redirects = UserAgent(base, members["editor"]), MemoryTokenStorage(), []

    async def work(session: ClientSession) -> Any:
        return await session.call_tool("list_passports", {})

    page = run_async(lambda: in_session(f"{base}/mcp", work, auth=oauth_provider(
        f"{base}/mcp", agent, storage, redirects, client_metadata_url=url,
    )))

    assert page.structured_content == {"data": [], "next_cursor": None}
    assert len(redirects) == 1
    assert f"127.0.0.1:{documents.port}" in agent.pages[0]  # the document's host, on consent
    connection = Connection.objects.get()
    assert connection.application.registration_source == "cimd"
    assert connection.application.client_id == url
    assert AccessToken.objects.get().resource == [f"{base}/mcp"]


def test_read_only_grant_is_refused_write_tools_and_revocation_holds(live_server, members):
    base = live_server.url
    agent, storage, redirects = UserAgent(base, members["editor"]), MemoryTokenStorage(), []

    async def read(session: ClientSession) -> tuple:
        return await session.list_tools(), await session.call_tool("list_passports", {})

    listed, page = run_async(lambda: in_session(
        f"{base}/mcp/readonly", read,
        auth=oauth_provider(f"{base}/mcp/readonly", agent, storage, redirects),
    ))
    assert {t.name for t in listed.tools} == {
        "list_passports", "get_passport", "get_usage", "list_audit_events"}
    assert page.structured_content == {"data": [], "next_cursor": None}
    # The 401 at /mcp/readonly named only read scopes, and the user granted just those.
    granted = set(storage.tokens.scope.split())
    assert "passports:write" not in granted and "passports:read" in granted
    token = storage.tokens.access_token

    def revoke() -> None:
        connection_revoke(connection=Connection.objects.get(),
                          actor=Actor.for_user(members["editor"]), context=RequestContext())

    async def write_then_revoke(session: ClientSession) -> tuple:
        write = await refusal(session.call_tool(
            "create_passport", {"gtin": GTIN, "serial_number": "S", "product_name": "P"}
        ))
        before = await session.call_tool("list_passports", {})
        await anyio.to_thread.run_sync(revoke)
        after = await refusal(session.call_tool("list_passports", {}))
        return write, before, after

    refused, before, revoked = run_async(
        lambda: in_session(f"{base}/mcp", write_then_revoke, token=token)
    )
    assert refused.error.data["error"] == "insufficient_scope"
    assert refused.error.data["required_scope"] == "passports:write"
    assert before.is_error is not True
    # The same session's next call after the revocation is refused.
    assert revoked.error.data["error"] == "invalid_token"
    assert not Passport.objects.exists()


def test_insufficient_scope_is_a_step_up_challenge_at_the_http_level(live_server, make_key):
    _key, token = make_key(["passports:read"])
    raw = httpx.post(
        f"{live_server.url}/mcp", headers={"Authorization": f"Bearer {token}"},
        json={"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {
            "name": "create_passport",
            "arguments": {"gtin": GTIN, "serial_number": "S", "product_name": "P"}}},
    )
    assert raw.status_code == HTTPStatus.FORBIDDEN
    challenge = dict(re.findall(r'(\w+)="([^"]*)"', raw.headers["WWW-Authenticate"]))
    assert challenge["error"] == "insufficient_scope"
    assert challenge["scope"] == "passports:write"
    assert challenge["resource_metadata"] == (
        f"{live_server.url}/.well-known/oauth-protected-resource/mcp"
    )
    assert raw.json()["error"]["data"]["error"] == "insufficient_scope"


def test_a_token_for_the_api_is_refused_at_mcp(live_server, members):
    agent, storage = UserAgent(live_server.url, members["editor"]), MemoryTokenStorage()
    with ThreadPoolExecutor(max_workers=1) as pool:
        response, _again, _redirects = pool.submit(
            anyio.run, _mcp_call_me, live_server.url, agent, storage
        ).result(timeout=60)
    assert response.status_code == HTTPStatus.OK  # the token works at /api/v1

    async def initialize(session: ClientSession) -> MCPError:
        return await refusal(session.initialize())

    refused = run_async(lambda: in_session(
        f"{live_server.url}/mcp", initialize, token=storage.tokens.access_token,
        initialize=False,
    ))
    assert refused.error.data["error"] == "invalid_token"
    assert "another resource" in refused.error.data["message"]


@pytest.mark.servers
def test_budget_is_exact_under_16_concurrent_tool_calls_on_two_workers(
    workspace, make_key, plan
):
    workspace.plan = plan("free")  # 100 passport reads a day
    workspace.save()
    item = passport_create(workspace=workspace, gtin=GTIN, serial_number="SN-1",
                           product_name="Drill", actor=Actor.system("test"),
                           context=RequestContext())
    _key, token = make_key(["passports:read"])
    threads, calls_each = 16, 8  # 128 calls for a budget of 100
    barrier = threading.Barrier(threads)

    with gunicorn(workers=2) as base:
        async def calls(session: ClientSession) -> list[str]:
            await anyio.to_thread.run_sync(barrier.wait)
            outcomes = []
            for _ in range(calls_each):
                result = await session.call_tool("get_passport", {"passport_id": item.public_id})
                outcomes.append(result.structured_content.get("error", "ok"))
            return outcomes

        def one() -> list[str]:
            return anyio.run(lambda: in_session(f"{base}/mcp", calls, token=token))

        with ThreadPoolExecutor(max_workers=threads) as pool:
            results = [o for f in [pool.submit(one) for _ in range(threads)]
                       for o in f.result(timeout=180)]

        usage = httpx.get(f"{base}/api/v1/usage", headers={"Authorization": f"Bearer {token}"})

    assert results.count("ok") == 100, results
    assert results.count("quota_exceeded") == threads * calls_each - 100
    reads = next(b for b in usage.json()["budgets"] if b["budget"] == "passport_reads")
    assert reads["used"] == 100


def test_sdk_client_follows_the_step_up_challenge(live_server, members):
    """A read-only grant meets a write tool: the SDK's provider reads the 403's
    `scope="passports:write"`, sends the user to consent again for the union of scopes, and
    retries the call with the new token."""
    base = live_server.url
    agent, storage, redirects = UserAgent(base, members["editor"]), MemoryTokenStorage(), []

    async def read(session: ClientSession) -> Any:
        return await session.call_tool("list_passports", {})

    run_async(lambda: in_session(f"{base}/mcp/readonly", read, auth=oauth_provider(
        f"{base}/mcp/readonly", agent, storage, redirects)))
    assert "passports:write" not in storage.tokens.scope.split()

    async def write(session: ClientSession) -> Any:
        return await session.call_tool(
            "create_passport", {"gtin": GTIN, "serial_number": "S-UP", "product_name": "P"}
        )

    created = run_async(lambda: in_session(f"{base}/mcp", write, auth=oauth_provider(
        f"{base}/mcp", agent, storage, redirects)))

    assert created.is_error is not True, created
    assert len(redirects) == 2  # the first consent, then the step-up
    assert "passports:write" in storage.tokens.scope.split()
    assert Passport.objects.get().serial_number == "S-UP"
