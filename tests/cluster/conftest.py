"""Two real hosts on loopback (each its own LMDB) that forward to each other through a small test `Locator`; and
`pg_node`, a real cluster node on a PostgreSQL store."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Callable, Iterable
from contextlib import AbstractAsyncContextManager, asynccontextmanager, suppress
from pathlib import Path
from typing import Any

import attrs
import httpx
import pytest
import trio

import afactors
from afactors.channel import Channel
from afactors.cluster import ForwardPolicy, Peer
from afactors.host import Host
from afactors.model import ConversationKey
from afactors.store.pg_server import free_port
from afactors_invocations import InvocationsChannel
from afactors_responses import ResponsesChannel

SECRET = "cluster-secret-for-tests"
FAST = ForwardPolicy(wait=3.0, attempts=4, retry_after=7.0, connect_timeout=1.0, silence=3.0)
"""Bounded waits short enough for tests."""


def pg_node(url: str, name: str, target: object = None, **kwargs: Any) -> AbstractAsyncContextManager[Host]:
    """Cluster node `name` on the PostgreSQL store `url` (on a free loopback port, with the Responses channel and
    `SECRET`); `kwargs` are more `open_host` settings."""
    port = free_port()
    settings = {"channels": [ResponsesChannel()], "durability": "unsafe", "lease_seconds": 5.0, "drain_timeout": 1.0,
                "cluster_secret": SECRET, **kwargs}  # fmt: skip
    return afactors.open_host(target, store=url, node_id=name, port=port, advertise=f"http://127.0.0.1:{port}",
                              **settings)  # fmt: skip


def owned_by_b(key: ConversationKey) -> str:
    """The default rule: a conversation whose id's last part (after a channel's `conv:` or `invocations/<user>/`
    prefix) starts with "b" is B's; every other is A's."""
    return "b" if re.split("[:/]", key.conversation)[-1].startswith("b") else "a"


class Cluster:
    """The nodes' shared view: which node owns which conversation (`rule`, changeable mid-test), their URLs, and how
    often each node was asked (`located`)."""

    def __init__(self) -> None:
        self.rule: Callable[[ConversationKey], str] = owned_by_b
        self.urls: dict[str, str] = {}
        self.located: list[tuple[str, ConversationKey]] = []

    def locator(self, node_id: str) -> TestLocator:
        return TestLocator(node_id, self)


@attrs.frozen
class TestLocator:
    """A `Locator` over a `Cluster` (implements the Protocol; no leases)."""

    node_id: str
    cluster: Cluster

    async def locate(self, key: ConversationKey) -> Peer | None:
        await trio.lowlevel.checkpoint()
        self.cluster.located.append((self.node_id, key))
        owner = self.cluster.rule(key)
        return None if owner == self.node_id else Peer(owner, self.cluster.urls[owner])


@attrs.frozen
class Nodes:
    a: Host
    b: Host
    cluster: Cluster
    http: httpx.AsyncClient  # talks to A

    @property
    def a_url(self) -> str:
        return self.a.urls[0]

    @property
    def b_url(self) -> str:
        return self.b.urls[0]


OpenNodes = Callable[..., AbstractAsyncContextManager[Nodes]]


def default_channels() -> list[Channel]:
    return [ResponsesChannel(), InvocationsChannel()]


@pytest.fixture
def nodes(tmp_path: Path) -> OpenNodes:
    """`async with nodes(target, channels=lambda: [...], **open_host_kwargs) as n:` hosts A and B forwarding."""

    @asynccontextmanager
    async def opening(
        target: object = None,
        *,
        channels: Callable[[], Iterable[Channel]] = default_channels,
        b_target: object = None,
        a_port: int = 0,
        **kwargs: Any,
    ) -> AsyncIterator[Nodes]:
        cluster = Cluster()
        kwargs = {"durability": "unsafe", "port": 0, "cluster_secret": SECRET, "forward": FAST, **kwargs}
        async with (
            afactors.open_host(b_target if b_target is not None else target, channels=list(channels()),
                               state_dir=tmp_path / "b", locator=cluster.locator("b"), **kwargs) as b,
            afactors.open_host(target, channels=list(channels()), state_dir=tmp_path / "a",
                               locator=cluster.locator("a"), **{**kwargs, "port": a_port}) as a,
            httpx.AsyncClient(base_url=a.urls[0], timeout=20) as http,
        ):  # fmt: skip
            cluster.urls.update(a=a.urls[0], b=b.urls[0])
            yield Nodes(a, b, cluster, http)

    return opening


class Relay:
    """A TCP relay on loopback to `port` whose open connections a test can cut (a network failure mid-answer)."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.connections = 0
        self._scopes: set[trio.CancelScope] = set()

    async def serve(self, *, task_status: trio.TaskStatus[str] = trio.TASK_STATUS_IGNORED) -> None:
        listeners = await trio.open_tcp_listeners(0, host="127.0.0.1")
        task_status.started(f"http://127.0.0.1:{listeners[0].socket.getsockname()[1]}")
        await trio.serve_listeners(self._relay, listeners)

    def cut(self) -> None:
        for scope in self._scopes:
            scope.cancel()

    async def _relay(self, client: trio.SocketStream) -> None:
        self.connections += 1
        with trio.CancelScope() as scope:
            self._scopes.add(scope)
            async with client, await trio.open_tcp_stream("127.0.0.1", self.port) as server:
                async with trio.open_nursery() as nursery:
                    nursery.start_soon(_pump, client, server)
                    nursery.start_soon(_pump, server, client)
        self._scopes.discard(scope)


async def _pump(source: trio.SocketStream, sink: trio.SocketStream) -> None:
    with suppress(trio.BrokenResourceError, trio.ClosedResourceError):
        async for chunk in source:
            await sink.send_all(chunk)
    with suppress(trio.BrokenResourceError, trio.ClosedResourceError):
        await sink.send_eof()
