from django.apps import AppConfig


class McpServerConfig(AppConfig):
    """The hosted MCP server (SPEC §14): `/mcp` and `/mcp/readonly`, a door above the gateway
    whose every tool call goes through the gateway's pipeline (`gateway.middleware`)."""

    name = "mcp_server"
    verbose_name = "MCP server"
