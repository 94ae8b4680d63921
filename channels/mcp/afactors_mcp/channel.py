"""`McpChannel`: the hosted agent as one MCP tool over Streamable HTTP."""

from __future__ import annotations

from typing import ClassVar

import attrs

from afactors.channel import ChannelContext, Contribution, ResponseHook, RunHook
from afactors_mcp.config import McpConfig
from afactors_mcp.transport import McpServer


@attrs.define
class McpChannel:
    """Serves `POST|GET|DELETE <path>` (default `/mcp`): MCP 2025-11-25 Streamable HTTP with one tool that
    asks the hosted agent. See docs/channels/mcp.md for the wire behaviour."""

    name: ClassVar[str] = "mcp"

    config: McpConfig = attrs.field(factory=McpConfig)
    run_hook: RunHook | None = None
    response_hook: ResponseHook | None = None

    def contribute(self, ctx: ChannelContext) -> Contribution:
        server = McpServer(self.config, ctx)
        return Contribution(routes=server.routes(), tasks=[server.run])
