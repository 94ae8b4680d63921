"""The `afactors.channels` entry point: CLI flags and the channel they configure."""

from __future__ import annotations

import argparse

from afactors_mcp.channel import McpChannel
from afactors_mcp.config import McpConfig
from afactors_mcp.protocol import ToolSpec

_DEFAULTS = McpConfig()


class McpPlugin:
    """The MCP channel needs no credentials: it is on by default at `--mcp-path`."""

    name = "mcp"
    needs_credentials = False

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        group = parser.add_argument_group("mcp channel")
        group.add_argument("--mcp-path", default=_DEFAULTS.path, metavar="PATH",
                           help="the Streamable HTTP endpoint (default: %(default)s)")  # fmt: skip
        group.add_argument("--mcp-tool-name", default=_DEFAULTS.tool.name, metavar="NAME",
                           help="the tool's name (default: %(default)s)")  # fmt: skip
        group.add_argument("--mcp-tool-description", metavar="TEXT",
                           help="what a model reads to decide to call the tool")  # fmt: skip
        group.add_argument("--mcp-allow-origin", action="append", default=[], metavar="ORIGIN",
                           help="a browser origin allowed besides loopback ones, or * (repeatable)")  # fmt: skip
        group.add_argument("--mcp-max-sessions", type=int, default=_DEFAULTS.max_sessions, metavar="N",
                           help="sessions kept in memory (default: %(default)s)")  # fmt: skip
        group.add_argument("--mcp-session-idle-timeout", type=float, default=_DEFAULTS.session_idle_timeout,
                           metavar="SECONDS", help="drop a session idle this long (default: %(default)s)")  # fmt: skip
        group.add_argument("--mcp-stateless", action="store_true",
                           help="also serve the stateless 2026-07-28 revision (no sessions)")  # fmt: skip

    def create(self, args: argparse.Namespace) -> McpChannel:
        try:
            tool = ToolSpec(name=args.mcp_tool_name)
            if args.mcp_tool_description:
                tool = ToolSpec(name=tool.name, title=tool.title, description=args.mcp_tool_description)
            config = McpConfig(
                path=args.mcp_path,
                tool=tool,
                allowed_origins=tuple(args.mcp_allow_origin),
                max_sessions=args.mcp_max_sessions,
                session_idle_timeout=args.mcp_session_idle_timeout,
                stateless=args.mcp_stateless,
            )
        except ValueError as error:
            raise SystemExit(f"mcp: {error}") from None
        return McpChannel(config)


plugin = McpPlugin()
