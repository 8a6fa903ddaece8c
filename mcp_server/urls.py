"""`/mcp`, `/mcp/readonly` and the MCP server's RFC 9728 metadata (SPEC §14, §7)."""

from django.urls import path

from . import views
from .metadata import McpProtectedResourceMetadataView

app_name = "mcp"

urlpatterns = [
    path("mcp", views.mcp_endpoint, name="server"),
    path("mcp/readonly", views.mcp_endpoint, {"readonly": True}, name="readonly"),
    path(
        ".well-known/oauth-protected-resource/mcp",  # RFC 9728 §3.1, path-inserted
        McpProtectedResourceMetadataView.as_view(),
        name="resource-metadata",
    ),
]
