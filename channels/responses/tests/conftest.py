"""Fixtures: a real host on loopback serving the Responses channel, SDK and raw HTTP clients, controllable agents."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from pathlib import Path
from typing import Any, TypeVar

import attrs
import httpx
import openai
import orjson
import pytest
import trio

import afactors
from afactors.host import Host
from afactors.model import TurnContext, Update
from afactors_responses import ResponsesChannel


@attrs.frozen
class Served:
    """A running host and ways to talk to it."""

    host: Host
    url: str
    http: httpx.AsyncClient

    def sdk(self, api_key: str = "sk-test") -> openai.AsyncOpenAI:
        """The official client in strict mode, without retries; use it with `async with`."""
        return openai.AsyncOpenAI(
            base_url=self.url + "/v1", api_key=api_key, max_retries=0, _strict_response_validation=True, timeout=20
        )


Serve = Callable[..., AbstractAsyncContextManager[Served]]
T = TypeVar("T")


@pytest.fixture
def serve(tmp_path: Path) -> Serve:
    """`async with serve(target, channel=..., **open_host_kwargs) as served:` a live host on 127.0.0.1."""
    runs = iter(range(1_000_000))

    @asynccontextmanager
    async def serving(
        target: object = None, channel: ResponsesChannel | None = None, **host_kwargs: Any
    ) -> AsyncIterator[Served]:
        host_kwargs.setdefault("durability", "unsafe")
        host_kwargs.setdefault("state_dir", tmp_path / f"state{next(runs)}")
        async with afactors.open_host(
            target,
            channels=[channel or ResponsesChannel()],
            port=0,
            **host_kwargs,
        ) as host:
            async with httpx.AsyncClient(base_url=host.urls[0], timeout=20) as http:
                yield Served(host, host.urls[0], http)

    return serving


class Gate:
    """An agent that says "Turn N." and then waits for `open()` before it says the rest; `entered` counts starts."""

    def __init__(self) -> None:
        self.entered = trio.Event()
        self.opened = trio.Event()
        self.started = 0
        self.finished = 0

    def open(self) -> None:
        self.opened.set()

    async def run(self, ctx: TurnContext) -> AsyncIterator[Update]:
        self.started += 1
        self.entered.set()
        yield Update(delta=f"Turn {sum(m.role == 'user' for m in ctx.messages)}.")
        await self.opened.wait()
        yield Update(delta=f" {ctx.messages[-1].text}")
        self.finished += 1


@pytest.fixture
def gate() -> Gate:
    return Gate()


class Recorder:
    """An agent that answers with every message it was given ("role:text | ...") and keeps each turn's context."""

    def __init__(self) -> None:
        self.seen: list[TurnContext] = []

    async def run(self, ctx: TurnContext) -> AsyncIterator[Update]:
        self.seen.append(ctx)
        yield Update(delta=" | ".join(f"{m.role}:{m.text}" for m in ctx.messages))


@pytest.fixture
def recorder() -> Recorder:
    return Recorder()


async def eventually(check: Callable[[], Awaitable[T | None]], timeout: float = 10.0) -> T:
    """Poll `check` until it returns something other than None (for state only a poll can see, like a record)."""
    with trio.fail_after(timeout):
        while (result := await check()) is None:
            await trio.sleep(0.01)
        return result


@pytest.fixture
def poll() -> Callable[..., Awaitable[Any]]:
    """`await poll(check)`: see `eventually`."""
    return eventually


async def post_and_read_first_event(url: str, body: dict[str, Any]) -> dict[str, Any]:
    """POST over a raw socket, read until the first SSE event, then drop the connection like a crashed client."""
    host, port = url.removeprefix("http://").split(":")
    payload = orjson.dumps(body)
    head = (
        f"POST /v1/responses HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(payload)}\r\n\r\n"
    ).encode()
    stream = await trio.open_tcp_stream(host, int(port))
    async with stream:
        await stream.send_all(head + payload)
        received = b""
        while b"\n\n" not in received.partition(b"data: ")[2]:
            chunk = await stream.receive_some()
            assert chunk, received
            received += chunk
    data = received.partition(b"data: ")[2].partition(b"\n")[0]
    return orjson.loads(data)


@pytest.fixture
def first_event() -> Callable[..., Awaitable[dict[str, Any]]]:
    """`await first_event(url, body)`: see `post_and_read_first_event`."""
    return post_and_read_first_event
