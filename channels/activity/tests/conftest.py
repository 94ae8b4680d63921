"""Fixtures for the Activity channel tests: the fake identity and Connector, and a host serving the channel."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from pathlib import Path
from typing import Any

import attrs
import httpx
import pytest
import trio
from microsoft_agents.activity import Activity

import afactors
from afactors.host import Host
from afactors_activity import ActivityChannel
from afactors_activity.testing import BotClient, FakeConnector, FakeIdentity

APP_ID = "00000000-aaaa-bbbb-cccc-000000000001"
APP_PASSWORD = "client-secret-1"


@attrs.define
class Bot:
    """A running host with the channel, a wire client and the fakes it talks to."""

    host: Host
    channel: ActivityChannel
    client: BotClient
    identity: FakeIdentity
    connector: FakeConnector

    async def send(self, activity: Activity | dict[str, Any], token: str | None = "valid") -> httpx.Response:
        """POST `activity` with a token of kind `token` (None: no Authorization header)."""
        service_url = activity.get("serviceUrl", "") if isinstance(activity, dict) else activity.service_url
        minted = None if token is None else self.identity.token(service_url or "", token)
        return await self.client.post(activity, minted)

    async def say(self, text: str, **fields: Any) -> httpx.Response:
        return await self.send(self.client.message(text, **fields))

    async def outbox_drained(self) -> None:
        """Wait (a bounded time) until every reply was delivered or dead-lettered."""
        with trio.move_on_after(10):
            while True:
                if not self.host.store.count("outbox"):
                    return
                await trio.sleep(0.01)

    async def dead_lettered(self) -> list[Any]:
        """The dead letters of the outbox, once there is one (the store cannot signal: polled, bounded)."""
        with trio.fail_after(10):
            while True:
                if found := self.host.store.scan("dead_letters", "outbox/"):
                    return [dead for _, dead in found]
                await trio.sleep(0.01)


Serve = Callable[..., AbstractAsyncContextManager[Bot]]


@pytest.fixture
async def identity() -> AsyncIterator[FakeIdentity]:
    async with FakeIdentity(APP_ID, APP_PASSWORD).running() as fake:
        yield fake


@pytest.fixture
async def connector(identity: FakeIdentity) -> AsyncIterator[FakeConnector]:
    async with FakeConnector(identity).running() as fake:
        yield fake
    assert not fake.invalid, fake.invalid  # every outbound body was a valid Activity


def channel_settings(identity: FakeIdentity, connector: FakeConnector) -> dict[str, Any]:
    """Settings pointing the channel at the fakes."""
    return {
        "app_id": APP_ID,
        "app_password": APP_PASSWORD,
        "openid_metadata_url": identity.metadata_url,
        "token_endpoint": identity.token_endpoint,
        "service_url_allowlist": (connector.base_url,),
    }


@pytest.fixture
def serve(identity: FakeIdentity, connector: FakeConnector, tmp_path: Path) -> Serve:
    """`async with serve(target, **channel_settings) as bot:` a host serving the channel against the fakes."""

    @asynccontextmanager
    async def serving(target: object = None, *, state: str = "state", channel_id: str = "msteams",
                      **settings: Any) -> AsyncIterator[Bot]:  # fmt: skip
        channel = ActivityChannel(**{**channel_settings(identity, connector), **settings})
        options: dict[str, Any] = {"port": 0, "durability": "unsafe"}
        async with (
            afactors.open_host(target, channels=[channel], state_dir=tmp_path / state, **options) as host,
            httpx.AsyncClient(timeout=30) as http,
        ):
            endpoint = host.urls[0] + channel.config.path
            client = BotClient(http, endpoint, connector.service_url, channel_id=channel_id)
            bot = Bot(host, channel, client, identity, connector)
            yield bot
            await bot.outbox_drained()  # no delivery cut off mid-request by the shutdown

    return serving
