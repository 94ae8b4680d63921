"""The built-in demo agent: no LLM, no network, continuity you can see."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator

import trio

from afactors.model import TurnContext, Update

_REMEMBER = re.compile(r"^\s*remember\s+(?:that\s+)?(.+?)\s*[.!]?\s*$", re.IGNORECASE | re.DOTALL)
_RECALL = re.compile(r"what\s+do\s+you\s+remember", re.IGNORECASE)


class DemoAgent:
    """Streams its answer word by word, keeps notes per conversation and says the turn number.

    "remember <x>" stores a note; "what do you remember?" lists the notes; anything else is echoed. Notes are
    read from the conversation's own user messages, so each branch of a conversation remembers only its own.
    """

    def __init__(self, word_delay: float = 0.0) -> None:
        self.word_delay = word_delay

    def answer(self, ctx: TurnContext) -> str:
        turn = sum(1 for m in ctx.messages if m.role == "user")
        text = ctx.messages[-1].text if ctx.messages else ""
        notes = [m.group(1) for msg in ctx.messages if msg.role == "user" and (m := _REMEMBER.match(msg.text))]
        if match := _REMEMBER.match(text):
            body = f"I will remember that {match.group(1)}."
        elif _RECALL.search(text):
            body = "I remember: " + "; ".join(notes) + "." if notes else "I don't remember anything yet."
        else:
            body = f"You said: {text}" if text else "I heard nothing."
        return f"Turn {turn}. {body}"

    async def run(self, ctx: TurnContext) -> AsyncIterator[Update]:
        words = self.answer(ctx).split(" ")
        for i, word in enumerate(words):
            yield Update(delta=word if i == 0 else " " + word)
            if self.word_delay:
                await trio.sleep(self.word_delay)
