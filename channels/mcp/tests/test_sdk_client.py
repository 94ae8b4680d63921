"""The official `mcp` SDK client against the channel: list, call with progress, errors, cancel, session end,
the `auto` mode's discover probe, and re-initializing after a server restart.

The SDK is asyncio/anyio; it runs here under asyncio in a worker thread (as an IDE or desktop client would
run it), while the server stays on trio in the test's own event loop.
"""

from __future__ import annotations

import asyncio
import signal
import socket
import subprocess
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any, TypeVar

import httpx2
import pytest
import trio
from mcp import Client
from mcp.client.streamable_http import streamable_http_client
from mcp.shared.exceptions import MCPError
from wire import Serve

from afactors.testing import serve_cli
from afactors_mcp import McpConfig

T = TypeVar("T")
TESTS = Path(__file__).parent


async def in_asyncio(scenario: Callable[[], Awaitable[T]], seconds: float = 30) -> T:
    """Run an asyncio scenario to its end (or `seconds`) in a worker thread."""
    return await trio.to_thread.run_sync(lambda: asyncio.run(asyncio.wait_for(scenario(), seconds)))  # type: ignore[arg-type]


def text_of(result: Any) -> str:
    return result.content[0].text


async def test_legacy_client_lists_calls_with_progress_and_continues_a_conversation(serve: Serve) -> None:
    async with serve() as url:

        async def scenario() -> dict[str, Any]:
            seen: list[tuple[float, str | None]] = []

            async def progress(value: float, total: float | None, message: str | None) -> None:
                seen.append((value, message))

            async with Client(url, mode="legacy") as client:
                tools = (await client.list_tools()).tools
                first = await client.call_tool("ask_agent", {"prompt": "hello there"}, progress_callback=progress)
                second = await client.call_tool("ask_agent", {"prompt": "and again"})
                failed = await client.call_tool("ask_agent", {"prompt": "please fail"})
                return {"version": client.session.initialize_result.protocol_version, "tools": tools,
                        "first": first, "second": second, "failed": failed, "seen": seen}  # fmt: skip

        got = await in_asyncio(scenario)
    assert got["version"] == "2025-11-25"
    [tool] = got["tools"]
    assert tool.name == "ask_agent" and tool.output_schema["required"] == ["result", "session_id"]
    first = got["first"]
    assert (text_of(first), first.is_error) == ("turn 1: hello there", False)
    assert got["seen"] == [(7.0, "turn 1:"), (13.0, " hello"), (19.0, " there")]
    assert got["second"].structured_content == {
        "result": "turn 2: and again", "session_id": first.structured_content["session_id"]
    }  # fmt: skip
    assert got["failed"].is_error and "asked to fail" in text_of(got["failed"])


async def test_auto_mode_probes_discover_and_falls_back_to_initialize(serve: Serve) -> None:
    async with serve() as url:

        async def scenario() -> tuple[str, str]:
            async with Client(url) as client:  # mode="auto" is the default
                result = await client.call_tool("ask_agent", {"prompt": "hi"})
                return client.session.initialize_result.protocol_version, text_of(result)

        assert await in_asyncio(scenario) == ("2025-11-25", "turn 1: hi")


@pytest.mark.parametrize("mode", ["legacy", "2026-07-28"])
async def test_cancelling_a_call_cancels_the_turn(serve: Serve, mode: str) -> None:
    """Legacy clients send notifications/cancelled; 2026-07-28 clients close the call's stream."""
    async with serve(McpConfig(stateless=True)) as url:

        async def scenario() -> str:
            async with Client(url, mode=mode) as client:
                holding = asyncio.Event()

                async def progress(value: float, total: float | None, message: str | None) -> None:
                    holding.set()

                arguments = {"prompt": "hold it", "session_id": "k1"}
                call = asyncio.create_task(client.call_tool("ask_agent", arguments, progress_callback=progress))
                await holding.wait()
                call.cancel()
                with suppress(asyncio.CancelledError):
                    await call
                # with the held turn still running this would wait forever behind it (the conversation is serial)
                after = await client.call_tool("ask_agent", {"prompt": "after", "session_id": "k1"})
                return text_of(after)

        assert await in_asyncio(scenario) == "turn 1: after"  # and nothing of the cancelled turn was kept


async def test_closing_the_client_ends_its_session(serve: Serve) -> None:
    async with serve() as url:
        sent: list[tuple[str, str | None]] = []

        async def record(request: httpx2.Request) -> None:
            sent.append((request.method, request.headers.get("mcp-session-id")))

        async def scenario() -> None:
            async with (
                httpx2.AsyncClient(event_hooks={"request": [record]}) as http,
                Client(streamable_http_client(url, http_client=http), mode="legacy") as client,
            ):
                await client.list_tools()

        await in_asyncio(scenario)
        [(_, session)] = [entry for entry in sent if entry[0] == "DELETE"]
        async with httpx2.AsyncClient() as http:
            headers = {"accept": "application/json, text/event-stream", "mcp-session-id": session or ""}
            response = await http.post(url, json={"jsonrpc": "2.0", "id": 1, "method": "ping"}, headers=headers)
        assert response.status_code == 404


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@contextmanager
def server(state_dir: Path, port: int) -> Iterator[subprocess.Popen[str]]:
    """`python -m afactors --channel mcp` with the scripted agent on `port`; killed with SIGKILL on exit."""
    args = ("--channel", "mcp", "--state-dir", str(state_dir), "--target", "mcp_agents:agent")
    with serve_cli(*args, port=port, pythonpath=[TESTS]) as (proc, _):
        yield proc


@pytest.mark.slow
async def test_after_a_restart_the_session_is_gone_and_the_conversation_goes_on(tmp_path: Path) -> None:
    port = free_port()
    url = f"http://127.0.0.1:{port}/mcp"
    state_dir = tmp_path / "state"
    with server(state_dir, port) as first_server:

        async def before() -> str:
            async with Client(url, mode="legacy") as client:
                result = await client.call_tool("ask_agent", {"prompt": "remember me"})
                assert text_of(result) == "turn 1: remember me"
                first_server.send_signal(signal.SIGKILL)  # the server dies under a live session
                first_server.wait(timeout=10)
                with server(state_dir, port):
                    with pytest.raises(MCPError) as caught:
                        await client.call_tool("ask_agent", {"prompt": "still there?"})
                    assert "Session not found" in str(caught.value)

                    async with Client(url) as again:  # a new session (the auto mode's probe included)
                        continued = await again.call_tool(
                            "ask_agent", {"prompt": "it is me", "session_id": result.structured_content["session_id"]}
                        )
                    return text_of(continued)

        assert await in_asyncio(before, seconds=60) == "turn 2: it is me"


@pytest.mark.parametrize("mode", ["2026-07-28", "auto"])
async def test_stateless_mode_serves_the_modern_client(serve: Serve, mode: str) -> None:
    async with serve(McpConfig(stateless=True)) as url:

        async def scenario() -> dict[str, Any]:
            seen: list[str | None] = []

            async def progress(value: float, total: float | None, message: str | None) -> None:
                seen.append(message)

            async with Client(url, mode=mode) as client:
                first = await client.call_tool("ask_agent", {"prompt": "hello"}, progress_callback=progress)
                session_id = first.structured_content["session_id"]
                second = await client.call_tool("ask_agent", {"prompt": "again", "session_id": session_id})
                return {"modern": client.session.discover_result is not None, "tools": await client.list_tools(),
                        "first": first, "second": second, "seen": seen}  # fmt: skip

        got = await in_asyncio(scenario)
    assert got["modern"] and [tool.name for tool in got["tools"].tools] == ["ask_agent"]
    assert (text_of(got["first"]), got["seen"]) == ("turn 1: hello", ["turn 1:", " hello"])
    assert text_of(got["second"]) == "turn 2: again"
