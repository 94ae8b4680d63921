"""Fixtures: a real host on loopback serving the A2A channel with the scripted agent, the official a2a-sdk
client (1.0, or 0.3 through its compat transport) and a raw httpx client for wire-level checks."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from pathlib import Path
from typing import Any, TypeVar

import attrs
import httpx
import pytest
import trio
from a2a.client import ClientConfig, create_client
from a2a.client.client import Client
from a2a.types import AgentCard
from google.protobuf.json_format import ParseDict

import afactors
from afactors.host import Host
from afactors_a2a import A2AChannel
from afactors_a2a.testing import ScriptedAgent

T = TypeVar("T")


@attrs.frozen
class Served:
    """A running host and ways to talk to it."""

    host: Host
    url: str
    http: httpx.AsyncClient

    @asynccontextmanager
    async def client(self, *, streaming: bool = False, version: str = "1.0", **config: Any) -> AsyncIterator[Client]:
        """The a2a-sdk client resolved from our card; `version="0.3"` keeps only the card's v0.3 interface so the
        SDK switches to its v0.3 compat transport (v0.3 method names, no A2A-Version header semantics)."""
        async with httpx.AsyncClient(timeout=20) as hc:
            card_json = (await self.http.get("/.well-known/agent-card.json")).json()
            card_json["supportedInterfaces"] = [
                i for i in card_json["supportedInterfaces"] if i["protocolVersion"] == version
            ]
            card = ParseDict(card_json, AgentCard(), ignore_unknown_fields=True)
            client = await create_client(
                card, client_config=ClientConfig(streaming=streaming, httpx_client=hc, **config)
            )
            async with client:
                yield client

    async def rpc(self, method: str, params: Any = None, *, version: str | None = "1.0", **body: Any) -> httpx.Response:
        """A raw JSON-RPC call (`version=None`: no A2A-Version header)."""
        headers = {} if version is None else {"A2A-Version": version}
        payload = {
            "jsonrpc": "2.0",
            "id": 1,
            "method": method,
            **({} if params is None else {"params": params}),
            **body,
        }
        return await self.http.post("/a2a", json=payload, headers=headers)


Serve = Callable[..., AbstractAsyncContextManager[Served]]


async def raw_post(url: str, head: str, body: bytes, done: Callable[[bytes], bool]) -> bytes:
    """POST `/a2a` over a raw socket (`head`: extra header lines), read until `done(received)`, hang up.
    For what an HTTP client library cannot do cleanly: stop reading a stream early, send a body never finished."""
    host, port = url.removeprefix("http://").split(":")
    request = f"POST /a2a HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\n{head}\r\n".encode()
    received = b""
    async with await trio.open_tcp_stream(host, int(port)) as stream:
        await stream.send_all(request + body)
        while not done(received):
            chunk = await stream.receive_some()
            assert chunk, received
            received += chunk
    return received


@pytest.fixture
def raw() -> Callable[..., Awaitable[bytes]]:
    """`await raw(url, head, body, done)`: see `raw_post`."""
    return raw_post


@pytest.fixture
def serve(tmp_path: Path) -> Serve:
    """`async with serve(target=None, channel=None, **open_host_kwargs) as served:` a live host on 127.0.0.1."""
    runs = iter(range(1_000_000))

    @asynccontextmanager
    async def serving(
        target: object = None, channel: A2AChannel | None = None, **host_kwargs: Any
    ) -> AsyncIterator[Served]:
        host_kwargs.setdefault("durability", "unsafe")
        async with (
            afactors.open_host(
                target or ScriptedAgent(),
                channels=[channel or A2AChannel()],
                state_dir=tmp_path / f"state{next(runs)}",
                port=0,
                **host_kwargs,
            ) as host,
            httpx.AsyncClient(base_url=host.urls[0], timeout=20) as http,
        ):
            yield Served(host, host.urls[0], http)

    return serving


async def eventually(check: Callable[[], Awaitable[T | None]]) -> T:
    """Poll `check` (for state only a poll can see, like a stored record) until it returns something, within 10 s."""
    with trio.fail_after(10):
        while (result := await check()) is None:
            await trio.sleep(0.02)
        return result


@pytest.fixture
def poll() -> Callable[..., Awaitable[Any]]:
    return eventually
