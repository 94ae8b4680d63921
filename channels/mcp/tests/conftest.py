"""Fixtures: a real host on loopback serving the MCP channel with the scripted agent."""

from __future__ import annotations

import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest

import afactors
from afactors_mcp import McpChannel, McpConfig

sys.path.insert(0, str(Path(__file__).parent))
from mcp_agents import ScriptedAgent
from wire import Serve


@pytest.fixture
def state_dir(tmp_path: Path) -> Path:
    return tmp_path / "state"


@pytest.fixture
def serve(state_dir: Path) -> Serve:
    """`async with serve(config=..., **open_host_kwargs) as url:` the MCP endpoint URL of a live host."""

    @asynccontextmanager
    async def serving(config: McpConfig | None = None, **host_kwargs: Any) -> AsyncIterator[str]:
        channel = McpChannel(config or McpConfig())
        async with afactors.open_host(
            ScriptedAgent(), channels=[channel], state_dir=state_dir, port=0, durability="unsafe", **host_kwargs
        ) as host:
            yield host.urls[0] + channel.config.path

    return serving
