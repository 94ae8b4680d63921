"""Timers through real channels: a reminder set in a Responses turn (official openai SDK) arrives in a Telegram
chat (the fake Bot API on loopback) at its time, pushed by the durable outbox."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from pathlib import Path

import openai
import trio

import afactors
from afactors.model import ReplyTarget, TurnContext, Update
from afactors_responses import ResponsesChannel
from afactors_telegram import SendLimits, TelegramChannel
from afactors_telegram.testing import RateLimits, open_fake_bot_api


class Assistant:
    """ "remind <chat id> <seconds> <text>" schedules a reminder pushed to that Telegram chat; "remind me
    <seconds> <text>" one for wherever this conversation was last answered; a timer turn says the reminder."""

    async def run(self, ctx: TurnContext) -> AsyncIterator[Update]:
        if ctx.kind == "timer":
            assert ctx.timer is not None
            yield Update(delta=f"Reminder: {ctx.timer.payload['text']}")
            return
        _, who, seconds, *text = ctx.messages[-1].text.split()
        chat = None if who == "me" else ReplyTarget("telegram", {"chat_id": int(who), "chat_type": "private"})
        timer = ctx.timers.after(float(seconds), payload={"text": " ".join(text)}, reply_to=chat)
        yield Update(delta=f"Reminder {timer.id} set.")


async def test_a_reminder_set_from_a_responses_turn_arrives_in_a_telegram_chat(tmp_path: Path) -> None:
    limits = RateLimits(per_chat_per_second=50.0, per_chat_burst=10, global_per_second=2000.0, global_burst=200)
    async with open_fake_bot_api(rate_limits=limits) as fake:
        alice = fake.user("Alice")
        telegram = TelegramChannel(
            token=fake.token, api_base=fake.api_base, limits=SendLimits(per_chat_per_second=40.0, per_chat_burst=5)
        )
        channels = [ResponsesChannel(), telegram]
        async with afactors.open_host(Assistant(), channels=channels, state_dir=tmp_path / "s", port=0) as host:
            fake.send_text(alice, "/start")  # a bot may only write to users who have started it
            with trio.fail_after(10):
                await fake.wait_for_messages(alice, 1)
            sdk = openai.AsyncOpenAI(base_url=host.urls[0] + "/v1", api_key="sk-test", max_retries=0, timeout=20)
            async with sdk:
                set_at = time.time()
                response = await sdk.responses.create(model="m", input=f"remind {alice.id} 1.0 water the plants")
            assert response.output_text.startswith("Reminder tmr_")
            with trio.fail_after(10):
                [_, message] = await fake.wait_for_messages(alice, 2)
            arrived = time.time()
            assert message["text"] == "Reminder: water the plants"
            assert arrived >= set_at + 1.0  # not before its time (how soon after is the benchmark's business)
            assert host.timers.count() == 0

            fake.send_text(alice, "remind me 0.3 call mum")  # from Telegram: back to the same chat
            with trio.fail_after(10):
                messages = await fake.wait_for_messages(alice, 4)
            assert messages[2]["text"].startswith("Reminder tmr_")
            assert messages[3]["text"] == "Reminder: call mum"
