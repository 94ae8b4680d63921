"""Fixtures: a real host on loopback serving the Chat channel, the openai SDK in strict mode, a tool-calling target."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest

import afactors
from afactors.model import FunctionCallPart, FunctionResultPart, TurnContext, Update, UsagePart
from afactors_chat import ChatChannel


class ToolTarget:
    """Calls the first offered tool once (arguments `{"city": <last user text>}`), then answers with its result.

    Without tools it echoes the conversation ("role:text | ..."), so a test can see what the target was given.
    """

    def __init__(self) -> None:
        self.seen: list[TurnContext] = []

    async def run(self, ctx: TurnContext) -> AsyncIterator[Update]:
        self.seen.append(ctx)
        last = ctx.messages[-1]
        results = [p for p in last.contents if isinstance(p, FunctionResultPart)]
        tools = ctx.options.get("tools") or []
        if results:
            yield Update(delta=f"The tool said {results[0].result}.")
        elif tools:
            yield Update(part=FunctionCallPart("call_1", tools[0]["name"], f'{{"city": "{last.text}"}}'))
        else:
            yield Update(delta="echo: ")
            yield Update(delta=" | ".join(f"{m.role}:{m.text}" for m in ctx.messages))
        yield Update(part=UsagePart(3, 5))


@pytest.fixture
def target() -> ToolTarget:
    return ToolTarget()


@pytest.fixture
def serve(tmp_path: Path, target: ToolTarget) -> Any:
    """`async with serve(channel=..., **open_host_kwargs) as (host, url):`"""

    @asynccontextmanager
    async def serving(channel: Any = None, *more: Any, **kwargs: Any) -> AsyncIterator[tuple[Any, str]]:
        kwargs.setdefault("durability", "unsafe")
        channels = [channel or ChatChannel(models=("afactors", "gpt-local")), *more]
        async with afactors.open_host(target, channels=channels, state_dir=tmp_path / "s", port=0, **kwargs) as host:
            yield host, host.urls[0]

    return serving


@pytest.fixture
def sdk() -> Any:
    """`sdk(url)`: the official client in strict mode, without retries; use it with `async with`."""

    def client(url: str, path: str = "/v1") -> openai.AsyncOpenAI:
        return openai.AsyncOpenAI(
            base_url=url + path, api_key="sk-test", max_retries=0, _strict_response_validation=True, timeout=20
        )

    return client


@pytest.fixture
def raw() -> Any:
    """`await raw(url, method, path, **httpx_kwargs)`: one plain HTTP request."""

    async def send(url: str, method: str, path: str, **kwargs: Any) -> httpx.Response:
        async with httpx.AsyncClient(base_url=url, timeout=20) as client:
            return await client.request(method, path, **kwargs)

    return send
