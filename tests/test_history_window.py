"""History windowing: the target sees the last `history_turns` turns; the store keeps every turn."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from afactors.actors import ActorConfig, ActorSystem
from afactors.model import ConversationKey, Envelope, Message, TurnContext, Update
from afactors.store import Store

KEY = ConversationKey("t", "c")


class Seen:
    """Answers "re:<input>" and remembers the texts of the context of every turn."""

    def __init__(self) -> None:
        self.contexts: list[list[str]] = []

    async def run(self, ctx: TurnContext) -> AsyncIterator[Update]:
        self.contexts.append([m.text for m in ctx.messages])
        yield Update(delta="re:" + ctx.messages[-1].text)


async def talk(system: ActorSystem, text: str, key: ConversationKey = KEY, parent: str | None = None) -> str:
    handle = await system.submit(Envelope(key, (Message("user", text),), parent=parent))
    await handle.reply()
    return handle.turn_id


async def test_the_target_sees_only_the_last_turns_and_the_store_keeps_all(tmp_path: Path) -> None:
    agent = Seen()
    async with Store.open(tmp_path, durability="unsafe") as store:
        async with ActorSystem.open(store, agent, history_turns=2) as system:
            for text in ("1", "2", "3", "4"):
                await talk(system, text)
            assert system.get(KEY).history() == (
                Message("user", "3"), Message("assistant", "re:3"), Message("user", "4"), Message("assistant", "re:4"),
            )  # fmt: skip
        assert store.count("turns") == 4
        async with ActorSystem.open(store, agent, history_turns=2) as system:
            await talk(system, "5")  # a fresh actor loads only the window from the store
    assert agent.contexts[1] == ["1", "re:1", "2"]
    assert agent.contexts[3] == ["2", "re:2", "3", "re:3", "4"]
    assert agent.contexts[4] == ["3", "re:3", "4", "re:4", "5"]


async def test_a_response_chain_is_windowed_too(tmp_path: Path) -> None:
    agent = Seen()
    async with Store.open(tmp_path, durability="unsafe") as store:
        async with ActorSystem.open(store, agent, history_turns=1) as system:
            first = await talk(system, "a", ConversationKey("t", "r1"))
            second = await talk(system, "b", ConversationKey("t", "r2"), parent=first)
            await talk(system, "c", ConversationKey("t", "r3"), parent=second)
    assert agent.contexts[-1] == ["b", "re:b", "c"]


async def test_without_a_window_every_turn_is_seen(tmp_path: Path) -> None:
    agent = Seen()
    async with Store.open(tmp_path, durability="unsafe") as store:
        async with ActorSystem.open(store, agent) as system:
            for text in ("1", "2", "3"):
                await talk(system, text)
    assert agent.contexts[-1] == ["1", "re:1", "2", "re:2", "3"]


def test_a_window_must_hold_a_turn() -> None:
    with pytest.raises(ValueError, match="history_turns must be at least 1"):
        ActorConfig(history_turns=0)
