"""Fixtures for the Telegram channel tests: the fake Bot API, and a host serving the channel against it."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
import trio

import afactors
from afactors.host import Host
from afactors_telegram import SendLimits, TelegramChannel
from afactors_telegram.testing import FakeBotApi, RateLimits, open_fake_bot_api

FAKE_FAST = RateLimits(per_chat_per_second=50.0, per_chat_burst=10, per_group_per_minute=3000,
                       global_per_second=2000.0, global_burst=200)  # fmt: skip
"""Fake-side limits for tests that are not about rate limits: generous, but still enforced."""

CHANNEL_FAST = SendLimits(per_chat_per_second=40.0, per_chat_burst=5, per_group_per_minute=2400, per_group_burst=50,
                          global_per_second=1500.0, global_burst=50)  # fmt: skip
"""Channel-side limits just inside `FAKE_FAST`."""

Serve = Callable[..., AbstractAsyncContextManager[tuple[Host, TelegramChannel]]]


async def _eventually(condition: Callable[[], bool], timeout: float = 5.0) -> None:
    with trio.fail_after(timeout):
        while not condition():
            await trio.sleep(0.01)


@pytest.fixture
def eventually() -> Callable[..., Any]:
    """`await eventually(condition)`: for state the fake cannot signal (the channel's own bookkeeping)."""
    return _eventually


@pytest.fixture
async def fake() -> AsyncIterator[FakeBotApi]:
    async with open_fake_bot_api(rate_limits=FAKE_FAST) as api:
        yield api


@pytest.fixture
def serve(fake: FakeBotApi, tmp_path: Path) -> Serve:
    """`async with serve(target, **channel_settings) as (host, channel):` a host polling the fake.

    Every call with the same `state=` name reuses one state directory (to test restarts).
    """

    @asynccontextmanager
    async def serving(target: object = None, *, state: str = "state", host_kwargs: dict[str, Any] | None = None,
                      **settings: Any) -> AsyncIterator[tuple[Host, TelegramChannel]]:  # fmt: skip
        settings.setdefault("limits", CHANNEL_FAST)
        channel = TelegramChannel(token=fake.token, api_base=fake.api_base, **settings)
        options = {"port": 0, "durability": "unsafe", **(host_kwargs or {})}
        async with afactors.open_host(target, channels=[channel], state_dir=tmp_path / state, **options) as host:
            yield host, channel

    return serving
