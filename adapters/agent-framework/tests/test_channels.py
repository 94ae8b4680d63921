"""An Agent Framework agent behind Invocations (SSE), and host shutdown reaching a running agent."""

from __future__ import annotations

from pathlib import Path

import httpx
import orjson
import trio
from agent_framework import Agent

import afactors
from afactors.model import ConversationKey, Envelope, Message
from afactors_agent_framework.testing import ScriptedChatClient, Step
from afactors_invocations import InvocationsChannel

from .conftest import eventually


async def test_updates_stream_as_invocations_sse(tmp_path: Path) -> None:
    agent = Agent(client=ScriptedChatClient(lambda messages: Step(text="one two three")))
    channels = [InvocationsChannel()]
    async with (
        afactors.open_host(agent, channels=channels, state_dir=tmp_path, port=0, durability="unsafe") as host,
        httpx.AsyncClient(base_url=host.urls[0], timeout=20) as http,
        http.stream("POST", "/invocations", json={"message": "count", "session_id": "s1", "stream": True}) as response,
    ):  # fmt: skip
        frames = [line.removeprefix("data: ") async for line in response.aiter_lines() if line.startswith("data: ")]
    assert frames[-1] == "[DONE]"
    assert [orjson.loads(frame)["delta"] for frame in frames[:-1]] == ["one", " two", " three"]


async def test_shutdown_cancels_a_running_agent_and_does_not_hang(tmp_path: Path) -> None:
    client = ScriptedChatClient(lambda messages: Step(block=True))
    with trio.fail_after(20):
        async with afactors.open_host(Agent(client=client), state_dir=tmp_path, port=0, drain_timeout=0.2) as host:
            handle = await host.system.submit(Envelope(ConversationKey("t", "c"), (Message("user", "wait"),)))
            await eventually(lambda: client.started)
        reply = await handle.reply()
    assert client.cancelled  # the agent's asyncio task saw the cancellation before the host returned
    assert reply.status == "cancelled" and reply.error is not None and reply.error.code == "shutdown"
