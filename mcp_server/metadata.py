"""RFC 9728 metadata of the MCP server, a protected resource of its own (SPEC §7, §14)."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.http import HttpRequest, HttpResponse

from oauth.endpoints import ProtectedResourceMetadataView
from oauth.resources import MCP_RESOURCE_PATH, request_origin, resource_at

from .tools import mcp_scopes
from .views import disabled_response


class McpProtectedResourceMetadataView(ProtectedResourceMetadataView):
    """`/.well-known/oauth-protected-resource/mcp`: the API's document (same authorization
    server, bearer methods) with the MCP server's own `resource` identifier — what tokens for
    it are bound to (RFC 8707) — and the scopes its tools need."""

    def get(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        if not settings.GATEHOUSE_MCP_ENABLED:
            return disabled_response()
        return super().get(request, *args, **kwargs)

    def get_resource(self, request: HttpRequest) -> str:
        return resource_at(request_origin(request), MCP_RESOURCE_PATH)

    def get_scopes_supported(self) -> list[str]:
        return mcp_scopes()

    def get_resource_name(self) -> str:
        return "Gatehouse MCP server"
