"""Fixtures: live hosts on loopback serving an Agent Framework target over Responses or Telegram (the fake Bot API)."""

from __future__ import annotations

import subprocess
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, AbstractContextManager, asynccontextmanager
from pathlib import Path
from typing import Any

import openai
import pytest
import trio
from agent_framework import Agent, tool

import afactors
from afactors.host import Host
from afactors.testing import serve_cli
from afactors_agent_framework.testing import Call, ScriptedChatClient, Step
from afactors_responses import ResponsesChannel
from afactors_telegram import TelegramChannel
from afactors_telegram.testing import FakeBotApi, open_fake_bot_api

ServeResponses = Callable[..., AbstractAsyncContextManager[tuple[Host, openai.AsyncOpenAI]]]
ServeTelegram = Callable[..., AbstractAsyncContextManager[Host]]


@tool
def add(a: int, b: int) -> int:
    """Add two whole numbers."""
    return a + b


def adding_script(messages: Any) -> Step:
    """Asks for `add(2, 3)` (with some reasoning), then answers with the tool's result."""
    last = messages[-1]
    if last.role == "tool":
        result = next(c.result for c in last.contents if c.type == "function_result")
        return Step(text=f"the sum is {result}", input_tokens=7, output_tokens=4)
    return Step(
        reasoning="I should add", calls=(Call("add", '{"a": 2, "b": 3}', "call_1"),), input_tokens=5, output_tokens=2
    )


def adding_agent(**kwargs: Any) -> tuple[Agent, ScriptedChatClient]:
    client = ScriptedChatClient(adding_script)
    return Agent(client=client, tools=[add], name="adder", **kwargs), client


async def eventually(condition: Callable[[], bool], within: float = 10.0) -> None:
    """Wait for state set on the asyncio side or by another process (neither can wake a trio task)."""
    with trio.fail_after(within):
        while not condition():
            await trio.sleep(0.01)


@pytest.fixture
def serve_responses(tmp_path: Path) -> ServeResponses:
    """`async with serve_responses(target, **open_host_kwargs) as (host, sdk):` the Responses channel + openai SDK."""

    @asynccontextmanager
    async def serving(target: object, **host_kwargs: Any) -> AsyncIterator[tuple[Host, openai.AsyncOpenAI]]:
        host_kwargs.setdefault("durability", "unsafe")
        async with afactors.open_host(
            target, channels=[ResponsesChannel()], state_dir=tmp_path / "state", port=0, **host_kwargs
        ) as host:
            sdk = openai.AsyncOpenAI(base_url=host.urls[0] + "/v1", api_key="sk-test", max_retries=0, timeout=20)
            async with sdk:
                yield host, sdk

    return serving


@pytest.fixture
async def fake() -> AsyncIterator[FakeBotApi]:
    async with open_fake_bot_api() as api:
        yield api


@pytest.fixture
def serve_telegram(fake: FakeBotApi, tmp_path: Path) -> ServeTelegram:
    """`async with serve_telegram(target, busy_policy=..., **channel_settings) as host:` a host polling the fake."""

    @asynccontextmanager
    async def serving(target: object, *, busy_policy: str = "enqueue", **settings: Any) -> AsyncIterator[Host]:
        channel = TelegramChannel(token=fake.token, api_base=fake.api_base, **settings)
        async with afactors.open_host(
            target, channels=[channel], state_dir=tmp_path / "tg", port=0, durability="unsafe", busy_policy=busy_policy
        ) as host:
            yield host

    return serving


def cli(
    *args: str, path: Path, env: dict[str, str] | None = None
) -> AbstractContextManager[tuple[subprocess.Popen[str], str]]:
    """`python -m afactors ARGS --port 0` with `path` on PYTHONPATH; yields the process and its URL, kills it after."""
    return serve_cli(*args, pythonpath=[path], env=env)
