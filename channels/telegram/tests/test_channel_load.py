"""Many chats at once: every reply arrives, in order per chat, with no rate-limit violation (T-16)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
import trio

from afactors_telegram import SendLimits
from afactors_telegram.testing import FakeBotApi, RateLimits, open_fake_bot_api

Serve = Callable[..., Any]  # the `serve` fixture of conftest.py
CHATS = 1000
MESSAGES = 3

# Telegram's per-chat limit, a global limit raised so the test is quick; the channel stays inside both.
FAKE_LIMITS = RateLimits(per_chat_per_second=1.0, per_chat_burst=3, global_per_second=1500.0, global_burst=100)
CHANNEL_LIMITS = SendLimits(per_chat_per_second=1.0, per_chat_burst=1, global_per_second=1000.0, global_burst=1)


@pytest.fixture
async def fake() -> Any:
    async with open_fake_bot_api(rate_limits=FAKE_LIMITS) as api:
        yield api


@pytest.mark.slow
async def test_a_thousand_chats_times_three_messages(fake: FakeBotApi, serve: Serve) -> None:
    users = [fake.user(f"User{i}") for i in range(CHATS)]
    async with serve(limits=CHANNEL_LIMITS):
        for round_ in range(MESSAGES):
            for user in users:
                fake.send_text(user, f"message {round_}")
        with trio.fail_after(60):
            await fake.wait_until(lambda: fake.call_count("sendMessage") >= CHATS * MESSAGES, timeout=60)
    for user in users:
        texts = [m["text"] for m in fake.messages(user)]
        assert texts == [f"Turn {n + 1}. You said: message {n}" for n in range(MESSAGES)], user
    assert fake.rate_limit_violations == 0
    assert all(c.status == 200 for c in fake.calls("sendMessage"))
