"""History windowing: the target sees the last `history_turns` turns, within `history_tokens` tokens, after a summary
of the turns that left when a summarising hook is set; the store keeps every turn."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from pathlib import Path
from typing import Any

import pytest
import trio

from afactors.actors import ActorConfig, ActorSystem, estimate_tokens
from afactors.host import open_host
from afactors.model import ConversationKey, Envelope, Message, TurnContext, Update, converter
from afactors.store import Snapshot, Store, Summary

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


class Keeper:
    """Keeps every turn's `ctx.messages` itself, with a copy of what it held then."""

    def __init__(self) -> None:
        self.kept: list[tuple[Sequence[Message], tuple[Message, ...]]] = []

    async def run(self, ctx: TurnContext) -> AsyncIterator[Update]:
        self.kept.append((ctx.messages, tuple(ctx.messages)))
        yield Update(delta="re:" + ctx.messages[-1].text)


async def test_a_context_the_target_keeps_stays_as_it_was(tmp_path: Path) -> None:
    agent = Keeper()
    async with Store.open(tmp_path, durability="unsafe") as store:
        async with ActorSystem.open(store, agent, history_turns=2) as system:
            for text in ("1", "2", "3"):
                await send(system, text)
            await send(system, "quick", kind="transient")  # answered, not committed: not part of the history
            for text in ("4", "5", "6", "7"):
                await send(system, text)
    texts = [[m.text for m in kept] for kept, _ in agent.kept]
    assert texts[3] == ["2", "re:2", "3", "re:3", "quick"]
    assert texts[4] == ["2", "re:2", "3", "re:3", "4"]
    assert texts[-1] == ["5", "re:5", "6", "re:6", "7"]
    for kept, then in agent.kept:  # later turns (and the window moving on) changed none of them
        assert kept == then and then == kept and hash(kept) == hash(then)
        assert kept[1:] == then[1:] and kept[-1] is then[-1] and kept + then == then * 2


def test_a_window_must_hold_a_turn() -> None:
    with pytest.raises(ValueError, match="history_turns must be at least 1"):
        ActorConfig(history_turns=0)


class Counted(Seen):
    """A target that supplies its own token counter: 10 tokens per message."""

    def count_tokens(self, messages: Sequence[Message]) -> int:
        return 10 * len(messages)


class Summaries:
    """A summarising hook that records its calls; `summary(<previous>|<dropped texts>)`."""

    def __init__(self) -> None:
        self.calls: list[tuple[str | None, list[str]]] = []

    def __call__(self, previous: Message | None, dropped: Sequence[Message]) -> Message:
        self.calls.append((previous.text if previous else None, [m.text for m in dropped]))
        return Message("system", f"summary({previous.text if previous else ''}|{','.join(m.text for m in dropped)})")


async def send(system: ActorSystem, text: str | None, kind: Any = "turn", **options: Any) -> str:
    """Submit one envelope of `kind` (no input when `text` is None) and wait for its reply's status."""
    inputs = () if text is None else (Message("user", text),)
    handle = await system.submit(Envelope(KEY, inputs, kind=kind, options=options))
    return (await handle.reply()).status


def test_the_estimate_is_four_per_message_plus_one_per_four_characters() -> None:
    assert estimate_tokens([]) == 0
    assert estimate_tokens([Message("user", "")]) == 4
    assert estimate_tokens([Message("user", "abcd"), Message("assistant", "abcde")]) == 4 + 1 + 4 + 2
    assert estimate_tokens([Message("user", "x" * 400)]) == 104


async def test_the_target_sees_the_newest_turns_within_the_token_budget(tmp_path: Path) -> None:
    agent = Counted()  # every turn (user + assistant) costs 20 tokens
    async with Store.open(tmp_path, durability="unsafe") as store:
        async with ActorSystem.open(store, agent, history_tokens=50) as system:
            for text in "12345":
                await send(system, text)
        assert store.count("turns") == 5  # the store keeps every turn
        async with ActorSystem.open(store, agent, history_tokens=50) as system:
            await send(system, "6")  # a fresh actor reads only the budget's turns back
    assert agent.contexts[2] == ["1", "re:1", "2", "re:2", "3"]
    assert agent.contexts[4] == ["3", "re:3", "4", "re:4", "5"]
    assert agent.contexts[5] == ["4", "re:4", "5", "re:5", "6"]


async def test_the_newest_turn_stays_even_when_it_alone_exceeds_the_budget(tmp_path: Path) -> None:
    agent = Seen()  # the built-in estimate
    async with Store.open(tmp_path, durability="unsafe") as store:
        async with ActorSystem.open(store, agent, history_tokens=10) as system:
            await send(system, "a")
            await send(system, "x" * 200)
            await send(system, "b")
        async with ActorSystem.open(store, agent, history_tokens=10) as system:
            await send(system, "c")
    assert agent.contexts[2] == ["x" * 200, "re:" + "x" * 200, "b"]
    assert agent.contexts[3] == ["b", "re:b", "c"]


async def test_a_configured_counter_wins_and_both_bounds_apply(tmp_path: Path) -> None:
    agent = Counted()
    config = ActorConfig(history_tokens=1000, history_turns=2, count_tokens=lambda messages: 400)
    async with Store.open(tmp_path, durability="unsafe") as store:
        async with ActorSystem.open(store, agent, config) as system:
            for text in "1234":
                await send(system, text)
    assert agent.contexts[2] == ["1", "re:1", "2", "re:2", "3"]  # 800 tokens: two turns fit
    assert agent.contexts[3] == ["2", "re:2", "3", "re:3", "4"]


async def test_the_summary_stands_in_for_turns_that_left_and_is_committed_not_recomputed(tmp_path: Path) -> None:
    agent, hook = Seen(), Summaries()
    config = ActorConfig(history_turns=4, summarize=hook)
    async with Store.open(tmp_path, durability="unsafe") as store:
        async with ActorSystem.open(store, agent, config) as system:
            for n in range(1, 9):
                await send(system, str(n))
            first_summary = "summary(|1,re:1,2,re:2,3,re:3)"
            assert hook.calls == [(None, ["1", "re:1", "2", "re:2", "3", "re:3"])]  # once, at turn 6
            assert agent.contexts[4] == ["1", "re:1", "2", "re:2", "3", "re:3", "4", "re:4", "5"]
            assert agent.contexts[5] == [first_summary, "4", "re:4", "5", "re:5", "6"]  # down to half the window
            assert agent.contexts[7] == [first_summary, "4", "re:4", "5", "re:5", "6", "re:6", "7", "re:7", "8"]
            snapshot: Snapshot = store.get("snapshots", KEY.path)
            assert snapshot.summary == Summary(through=3, message=Message("system", first_summary))
            await send(system, "9")  # the window overflowed again: the hook gets its previous summary
            assert hook.calls[1] == (first_summary, ["4", "re:4", "5", "re:5", "6", "re:6"])
        assert store.count("turns") == 9  # the full history stays in the store
        async with ActorSystem.open(store, agent, config) as system:
            await send(system, "10")  # a restarted host reads the committed summary: no new call
        assert len(hook.calls) == 2
        second = store.get("snapshots", KEY.path).summary
        assert second.through == 6
        assert agent.contexts[-1] == [second.message.text, "7", "re:7", "8", "re:8", "9", "re:9", "10"]


async def test_an_async_hook_works_like_a_sync_one(tmp_path: Path) -> None:
    agent = Seen()

    async def summarize(previous: Message | None, dropped: Sequence[Message]) -> Message:
        await trio.lowlevel.checkpoint()
        return Message("system", f"{len(dropped)} messages")

    async with Store.open(tmp_path, durability="unsafe") as store:
        async with ActorSystem.open(store, agent, history_turns=2, summarize=summarize) as system:
            for text in "1234":
                await send(system, text)
    assert agent.contexts[3] == ["4 messages", "3", "re:3", "4"]  # turns 1-2 left; half the window (1) stays


async def test_a_token_budget_drives_the_summary_too(tmp_path: Path) -> None:
    agent, hook = Counted(), Summaries()  # 20 tokens a turn
    async with Store.open(tmp_path, durability="unsafe") as store:
        async with ActorSystem.open(store, agent, history_tokens=60, summarize=hook) as system:
            for text in "12345":
                await send(system, text)
    assert hook.calls == [(None, ["1", "re:1", "2", "re:2", "3", "re:3"])]  # at turn 5: half the budget is kept
    assert agent.contexts[4] == ["summary(|1,re:1,2,re:2,3,re:3)", "4", "re:4", "5"]


@pytest.mark.parametrize("result", [RuntimeError("model down"), "not a message"])
async def test_a_failing_hook_fails_the_turn_and_commits_nothing(tmp_path: Path, result: object) -> None:
    agent = Seen()

    def summarize(previous: Message | None, dropped: Sequence[Message]) -> Message:
        if isinstance(result, Exception):
            raise result
        return result  # type: ignore[return-value]

    async with Store.open(tmp_path, durability="unsafe") as store:
        config = ActorConfig(history_turns=1, summarize=summarize, restart_backoff=(0.01, 0.01))
        async with ActorSystem.open(store, agent, config) as system:
            assert await send(system, "1") == "completed"
            assert await send(system, "2") == "completed"  # one turn in the window: nothing has left yet
            assert await send(system, "3") == "failed"
        assert store.count("turns") == 2
        assert store.get("snapshots", KEY.path).summary is None
    assert agent.contexts == [["1"], ["1", "re:1", "2"]]


async def test_revising_a_summarised_turn_or_clearing_drops_the_summary(tmp_path: Path) -> None:
    agent, hook = Seen(), Summaries()
    async with Store.open(tmp_path, durability="unsafe") as store:
        async with ActorSystem.open(store, agent, history_turns=2, summarize=hook) as system:
            for text in "1234":
                await send(system, text)
            assert store.get("snapshots", KEY.path).summary.through == 2
            first = system.turn(KEY.path, 1)
            assert first is not None
            base = {"input": converter.unstructure(first.input), "output": converter.unstructure(first.output)}
            assert await send(system, "one", kind="revise", seq=1, base=base) == "completed"
            assert store.get("snapshots", KEY.path).summary is None
            await send(system, "5")
            assert hook.calls[-1][1][:2] == ["one", "2"]  # summarised again, from the revised turn (no output now)
            assert store.get("snapshots", KEY.path).summary.through == 3
            assert await send(system, None, kind="clear") == "completed"
            assert store.get("snapshots", KEY.path) is None


async def test_the_host_config_carries_the_budget_and_the_hook(tmp_path: Path) -> None:
    agent, hook = Counted(), Summaries()
    async with open_host(agent, state_dir=tmp_path, port=0, history_tokens=20, summarize=hook) as host:
        for text in "123":
            await send(host.system, text)
    assert hook.calls == [(None, ["1", "re:1"])]
    assert agent.contexts[-1] == ["summary(|1,re:1)", "2", "re:2", "3"]
