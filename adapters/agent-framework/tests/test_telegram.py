"""An Agent Framework agent behind Telegram (the fake Bot API): streamed drafts, and `interrupt` reaching the agent."""

from __future__ import annotations

from itertools import pairwise
from typing import Any

from agent_framework import Agent

from afactors_agent_framework.testing import ScriptedChatClient, Step
from afactors_telegram.testing import FakeBotApi

from .conftest import ServeTelegram, eventually

WORDS = "one two three four five six seven eight"


def slow_or_echo(messages: Any) -> Step:
    text = messages[-1].text
    if text == "wait":
        return Step(block=True)
    if text == "count":
        return Step(text=WORDS)
    return Step(text=f"echo: {text}")


async def test_streamed_updates_become_telegram_drafts(fake: FakeBotApi, serve_telegram: ServeTelegram) -> None:
    alice = fake.user("Alice")
    agent = Agent(client=ScriptedChatClient(slow_or_echo, word_delay=0.06))
    async with serve_telegram(agent, stream_interval=0.1):
        fake.send_text(alice, "count")
        [answer] = await fake.wait_for_messages(alice, 1)
    assert answer["text"] == WORDS
    drafts = [d.text for d in fake.drafts(alice)]
    assert len(drafts) >= 2  # the answer was shown while the agent was still producing it
    assert all(WORDS.startswith(d) for d in drafts) and all(len(a) < len(b) for a, b in pairwise(drafts))


async def test_interrupt_cancels_the_running_agent_and_answers_the_new_message(
    fake: FakeBotApi, serve_telegram: ServeTelegram
) -> None:
    alice = fake.user("Alice")
    client = ScriptedChatClient(slow_or_echo)
    async with serve_telegram(Agent(client=client), busy_policy="interrupt"):
        fake.send_text(alice, "wait")
        await eventually(lambda: client.started)
        fake.send_text(alice, "hello")
        await eventually(lambda: client.cancelled)  # the interrupted turn's agent run was cancelled on asyncio
        answers = await fake.wait_for_messages(alice, 1)
    assert answers[-1]["text"] == "echo: hello"
