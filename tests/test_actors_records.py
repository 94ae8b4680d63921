"""A target's durable per-conversation records (`TurnContext.records`): committed with the turn, or not at all."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import trio

from afactors.actors import ActorSystem, TurnHandle, ledger
from afactors.actors._phases import Entry
from afactors.actors._records import StagedRecords
from afactors.model import ConversationKey, Envelope, Message, Reply, TurnContext, Update
from afactors.store import Delete, Generic, Put, Store


class Counter:
    """Keeps a count in its records; "fail" fails the turn after writing, "wait" writes and waits to be cut."""

    def __init__(self) -> None:
        self.seen: list[dict | None] = []
        self.turns: list[str] = []
        self.waiting = trio.Event()

    async def run(self, ctx: TurnContext) -> AsyncIterator[Update]:
        current = ctx.records.get("count")
        self.seen.append(current)
        self.turns.append(ctx.turn_id)
        n = (current or {"n": 0})["n"] + 1
        ctx.records.put("count", {"n": n})
        ctx.records.put(f"step-{n}", {"turn": ctx.turn_id})
        ctx.records.delete(f"step-{n - 1}")
        text = ctx.messages[-1].text
        if text == "fail":
            raise RuntimeError("failed after writing")
        if text == "wait":
            self.waiting.set()
            await trio.sleep_forever()
        yield Update(delta=str(n))


def key(name: str) -> ConversationKey:
    return ConversationKey("t", name)


async def test_records_commit_with_the_turn_and_each_conversation_sees_only_its_own(tmp_path: Path) -> None:
    agent = Counter()
    async with Store.open(tmp_path / "s", durability="unsafe") as store, ActorSystem.open(store, agent) as system:
        for name in ("a", "a", "a/b", "a"):  # "a/b" must not see "a"'s records, nor "a" those of "a/b"
            await (await system.submit(Envelope(key(name), (Message("user", "go"),)))).reply()
        assert agent.seen == [None, {"n": 1}, None, {"n": 2}]
        assert system.target_records("t/a") == [("count", {"n": 3}), ("step-3", {"turn": agent.turns[3]})]
        assert system.target_records("t/a/b") == [("count", {"n": 1}), ("step-1", {"turn": agent.turns[2]})]
        assert system.target_record("t/a", "step-2") is None
        assert system.target_record("t/a", "count") == {"n": 3}


async def test_records_of_a_failed_or_cut_turn_are_dropped(tmp_path: Path) -> None:
    agent = Counter()
    async with Store.open(tmp_path / "s", durability="unsafe") as store, ActorSystem.open(store, agent) as system:
        await (await system.submit(Envelope(key("c"), (Message("user", "go"),)))).reply()
        failed = await (await system.submit(Envelope(key("c"), (Message("user", "fail"),)))).reply()
        assert failed.status == "failed"
        handle = await system.submit(Envelope(key("c"), (Message("user", "wait"),)))
        await agent.waiting.wait()
        assert await system.cancel(handle.turn_id)
        assert (await handle.reply()).status == "cancelled"
        await (await system.submit(Envelope(key("c"), (Message("user", "go"),)))).reply()
    assert agent.seen[0] is None and all(seen == {"n": 1} for seen in agent.seen[1:])  # nothing but turn 1 stuck


class Committed:
    """A `RecordReader` over a dict of committed records (what the owner reads from the store)."""

    def __init__(self, records: dict[str, dict]) -> None:
        self.records = records

    def target_record(self, path: str, name: str) -> dict | None:
        return self.records.get(name) if path == "t/c" else None

    def target_records(self, path: str) -> list[tuple[str, dict]]:
        return sorted(self.records.items()) if path == "t/c" else []


@pytest.mark.parametrize("staged", [True, False])
def test_staged_reads_see_the_turns_own_writes_over_the_committed_ones(staged: bool) -> None:
    turn = StagedRecords(Committed({"x": {"v": 1}, "y": {"v": 1}}), "t/c")
    if staged:
        turn.put("x", {"v": 2})
        turn.delete("y")
        turn.put("z", {"v": 3})
    assert turn.get("x") == {"v": 2 if staged else 1}
    assert turn.get("y") == (None if staged else {"v": 1})
    assert [k for k, _ in turn.items()] == (["x", "z"] if staged else ["x", "y"])
    assert turn.staged() == ({"x": {"v": 2}, "y": None, "z": {"v": 3}} if staged else {})


def test_the_ledger_puts_the_staged_records_in_the_turns_commit_under_the_conversations_prefix() -> None:
    envelope = Envelope(key("c"), (Message("user", "go"),))
    entry = Entry(envelope, TurnHandle("turn_1"), accepted_at=1.0)
    _, ops = ledger.completed(
        key("c"), [entry], {}, seq=1, state={}, inputs=envelope.input, reply=Reply(), now=2.0,
        staged={"x": {"v": 1}, "y": None},
    )  # fmt: skip
    assert [op for op in ops if op.kind == "checkpoints"] == [
        Put("checkpoints", "3:t/c/x", Generic({"v": 1})),
        Delete("checkpoints", "3:t/c/y"),
    ]
    _, plain = ledger.completed(key("c"), [entry], {}, seq=1, state={}, inputs=envelope.input, reply=Reply(), now=2.0)
    assert plain == [op for op in ops if op.kind != "checkpoints"]


async def test_purging_a_conversation_forgets_its_records_and_no_other(tmp_path: Path) -> None:
    from afactors.admin._state import purge_conversation

    agent = Counter()
    async with Store.open(tmp_path / "s", durability="unsafe") as store:
        async with ActorSystem.open(store, agent) as system:
            for name in ("a", "a/b"):
                await (await system.submit(Envelope(key(name), (Message("user", "go"),)))).reply()
        assert (await purge_conversation(store, "t/a"))["checkpoints"] == 2
        async with ActorSystem.open(store, agent) as system:
            assert system.target_records("t/a") == []
            assert [name for name, _ in system.target_records("t/a/b")] == ["count", "step-1"]
