"""A tests-only target for subprocess servers (`--target slow_target:slow`): answers one word at a time, slowly,
so a test can kill the server in the middle of a turn."""

from __future__ import annotations

from collections.abc import AsyncIterator

import trio

from afactors.model import Message

WORD_DELAY = 0.15


async def slow(messages: list[Message]) -> AsyncIterator[str]:
    words = f"Slowly answering: {messages[-1].text}".split(" ")
    for i, word in enumerate(words):
        await trio.sleep(WORD_DELAY)
        yield word if i == 0 else " " + word


async def stuck(messages: list[Message]) -> AsyncIterator[str]:
    """Says one word, then never finishes (until the server cuts the turn)."""
    yield "Thinking"
    await trio.sleep_forever()
