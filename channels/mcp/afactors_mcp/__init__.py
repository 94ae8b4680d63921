"""afactors channel: MCP, the hosted agent as a tool over Streamable HTTP (protocol 2025-11-25)."""

from afactors_mcp.channel import McpChannel
from afactors_mcp.config import McpConfig
from afactors_mcp.plugin import McpPlugin, plugin
from afactors_mcp.protocol import ServerInfo, ToolSpec

__all__ = ["McpChannel", "McpConfig", "McpPlugin", "ServerInfo", "ToolSpec", "plugin"]
