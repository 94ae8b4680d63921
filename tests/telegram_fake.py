"""The fake Bot API as the core tests that use Telegram run it: generous rate limits, still enforced, and the
channel's limits just inside them (the `fake` fixture in conftest.py); and a host serving Telegram on it beside
HTTP channels, with an HTTP client."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx

import afactors
from afactors.host import Host
from afactors_responses import ResponsesChannel
from afactors_telegram import SendLimits, TelegramChannel
from afactors_telegram.testing import FakeBotApi, RateLimits

FAKE_LIMITS = RateLimits(per_chat_per_second=50.0, per_chat_burst=10, per_group_per_minute=3000,
                         global_per_second=2000.0, global_burst=200)  # fmt: skip
CHANNEL_LIMITS = SendLimits(per_chat_per_second=40.0, per_chat_burst=5, per_group_per_minute=2400,
                            per_group_burst=50, global_per_second=1500.0, global_burst=50)  # fmt: skip


@asynccontextmanager
async def telegram_host(fake: FakeBotApi, state: Path, agent: Any = None, *, telegram: dict[str, Any] | None = None,
                        http_channels: Sequence[Any] = (), headers: dict[str, str] | None = None,
                        **host: Any) -> AsyncIterator[tuple[Host, httpx.AsyncClient]]:  # fmt: skip
    """A host on loopback (`unsafe` durability) serving Telegram on `fake` (with `telegram`'s options), Responses
    and `http_channels`, and an HTTP client for it sending `headers`."""
    channel = TelegramChannel(token=fake.token, api_base=fake.api_base, limits=CHANNEL_LIMITS, **(telegram or {}))
    channels = [channel, ResponsesChannel(), *http_channels]
    async with (
        afactors.open_host(agent, channels=channels, state_dir=state, port=0, durability="unsafe", **host) as served,
        httpx.AsyncClient(base_url=served.urls[0], timeout=20, headers=headers) as http,
    ):
        yield served, http
