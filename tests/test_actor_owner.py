"""The conversation actor driven through a fake of its narrow `ActorOwner` interface: no ActorSystem, no LMDB.

This shows the interface is real: the actor runs turns, commits through `commit`, answers through `answered`,
and asks for scheduling, supervision and cancellation through the owner and nothing else.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import AsyncIterator, Sequence
from typing import Any

import pytest
import trio

from afactors._tracing import Tracing
from afactors.actors import ConversationActor, ConversationBusy, RestartPolicy, TurnHandle
from afactors.actors._history import History, Link
from afactors.actors._owner import ActorOwner, Counters
from afactors.actors._phases import Entry
from afactors.model import ConversationKey, Envelope, Message, Reply, Timer, TurnContext, Update
from afactors.store import Delete, Op, ResponseRecord, Snapshot, StoreDamaged, StoreFull, TurnRecord

KEY = ConversationKey("t", "c")


class FakeOwner:
    """Keeps everything in lists and dicts; the test drives the actor itself instead of a worker."""

    def __init__(self, script: dict[str, Any]) -> None:
        self.mailbox_size = 2
        self.restart_policy = RestartPolicy(backoff_min=0.01, backoff_max=0.01, jitter=0.0, max_restarts=5)
        self.counters: Counters = Counter()
        self.tracing = Tracing()
        self.script = script
        self.commits: list[list[Op]] = []
        self.answers: list[tuple[str, Reply]] = []
        self.cancelled: list[tuple[list[str], str]] = []
        self.scheduled = 0
        self.releases = 0
        self.records: dict[str, ResponseRecord] = {}
        self.chains: dict[str, Link] = {}
        self.commit_error: Exception | None = None
        self.quarantined: list[str] = []
        self.stops: list[list[str]] = []
        self.history_deltas: list[int] = []
        self.turns: dict[int, TurnRecord] = {}
        self.summarize = None

    @property
    def cut(self) -> bool:
        return False

    async def _run(self, ctx: TurnContext) -> AsyncIterator[Update]:
        text = ctx.messages[-1].text
        action = self.script.get(text)
        if isinstance(action, Exception):
            raise action
        yield Update(delta=f"{ctx.seq}:{text}")

    def run_target(self, ctx: TurnContext) -> AsyncIterator[Update]:
        return self._run(ctx)

    def snapshot(self, path: str) -> Snapshot:
        return Snapshot()

    def history(self, path: str, seq: int, after: int = 0) -> History:
        return History(first=seq + 1)

    def chain(self, key: ConversationKey, parent: str) -> list[Message] | None:
        return None

    def chained(self, turn_id: str, link: Link, size: int) -> None:
        self.chains[turn_id] = link

    def record(self, turn_id: str) -> ResponseRecord | None:
        return self.records.get(turn_id)

    def timers(self, key: ConversationKey) -> list[Timer]:
        return []

    def target_record(self, path: str, name: str) -> dict[str, Any] | None:
        return None

    def target_records(self, path: str) -> list[tuple[str, dict[str, Any]]]:
        return []

    def turn(self, path: str, seq: int) -> TurnRecord | None:
        return self.turns.get(seq)

    async def commit(self, ops: Sequence[Op], key: ConversationKey | None = None) -> None:
        await trio.lowlevel.checkpoint()
        if self.commit_error is not None:
            raise self.commit_error
        self.commits.append(list(ops))

    def schedule(self, actor: ConversationActor) -> None:
        self.scheduled += 1
        actor.driving = True

    def released(self, actor: ConversationActor) -> None:
        self.releases += 1
        actor.driving = False

    def admit(self, actor: ConversationActor) -> None:
        pass

    def answered(self, entry: Entry, reply: Reply) -> None:
        self.answers.append((entry.turn_id, reply))
        for handle in entry.handles:
            handle._resolve(reply)

    async def cancel_entries(self, entries: list[Entry], code: str) -> None:
        self.cancelled.append(([entry.turn_id for entry in entries], code))

    def cancel_soon(self, entries: list[Entry], code: str) -> None:
        self.cancelled.append(([entry.turn_id for entry in entries], code))

    def stopped(self, actor: ConversationActor, queued: list[Entry]) -> None:
        self.stops.append([entry.turn_id for entry in queued])

    def quarantine(self, path: str, reason: str) -> None:
        self.quarantined.append(path)

    def history_changed(self, actor: ConversationActor, delta: int) -> None:
        self.history_deltas.append(delta)


def _entry(text: str, turn_id: str, **fields: Any) -> Entry:
    envelope = Envelope(KEY, (Message("user", text),), turn_id=turn_id, **fields)
    return Entry(envelope, TurnHandle(turn_id), accepted_at=1.0, stamp=7)


async def _drive(actor: ConversationActor) -> None:
    with trio.CancelScope() as scope:
        assert await actor.drive(scope)


def _kinds(ops: list[Op]) -> list[tuple[str, str]]:
    return [(op.kind, op.key) for op in ops]


async def test_a_turn_runs_commits_through_the_owner_and_is_answered() -> None:
    owner = FakeOwner({})
    checked: ActorOwner[ConversationActor] = owner  # the fake satisfies the protocol (checked by mypy)
    actor = ConversationActor(KEY, checked, Snapshot())
    await actor.accept(_entry("hi", "turn_1", idempotency_key="m1"), "enqueue")
    assert owner.scheduled == 1 and actor.mailbox_depth == 1 and actor.status == "busy"
    await _drive(actor)
    [ops] = owner.commits
    assert _kinds(ops) == [
        ("snapshots", "t/c"),
        ("turns", "t/c/000000000001"),
        ("responses", "turn_1"),
        ("dedup", "t/c/m1"),
    ]
    assert owner.answers == [("turn_1", Reply(messages=(Message("assistant", "1:hi"),)))]
    assert owner.releases == 1 and owner.counters["turns"] == 1 and "turn_1" in owner.chains
    assert actor.snapshot.seq == 1 and actor.status == "idle" and actor.turns_done == 1
    assert owner.history_deltas and sum(owner.history_deltas) == actor.history_bytes > 0 and owner.stops == []


async def test_reject_refuses_while_busy_and_a_full_mailbox_makes_the_sender_wait() -> None:
    owner = FakeOwner({})
    actor = ConversationActor(KEY, owner, Snapshot())
    await actor.accept(_entry("a", "turn_a"), "enqueue")
    with pytest.raises(ConversationBusy):
        await actor.accept(_entry("b", "turn_b"), "reject")
    await actor.accept(_entry("c", "turn_c"), "enqueue")
    with trio.move_on_after(0.05) as waited:  # mailbox_size 2: the third waits for room
        await actor.accept(_entry("d", "turn_d"), "enqueue")
    assert waited.cancelled_caught and actor.mailbox_depth == 2


async def test_a_failing_target_is_retried_once_then_dead_lettered() -> None:
    owner = FakeOwner({"boom": RuntimeError("boom")})
    actor = ConversationActor(KEY, owner, Snapshot())
    await actor.accept(_entry("boom", "turn_x", reply_to=None), "enqueue")
    await _drive(actor)
    [ops] = owner.commits
    assert _kinds(ops) == [("responses", "turn_x"), ("dead_letters", "t/c/turn_x")]
    [(turn_id, reply)] = owner.answers
    assert turn_id == "turn_x" and reply.status == "failed" and reply.error is not None
    assert reply.error.code == "agent_error" and owner.counters["failures"] == 2 and owner.counters["restarts"] == 2


async def test_interrupt_drops_the_queue_through_the_owner() -> None:
    owner = FakeOwner({})
    actor = ConversationActor(KEY, owner, Snapshot())
    await actor.accept(_entry("a", "turn_a"), "enqueue")
    await actor.accept(_entry("b", "turn_b"), "interrupt")
    assert owner.cancelled == [(["turn_a"], "interrupted")] and actor.mailbox_depth == 1
    await _drive(actor)
    assert [turn_id for turn_id, _ in owner.answers] == ["turn_b"]


async def test_a_full_store_fails_only_that_turn_and_the_actor_goes_on() -> None:
    owner = FakeOwner({})
    actor = ConversationActor(KEY, owner, Snapshot())
    owner.commit_error = StoreFull("disk full")
    await actor.accept(_entry("a", "turn_a"), "enqueue")
    await _drive(actor)
    [(turn_id, reply)] = owner.answers
    assert turn_id == "turn_a" and reply.status == "failed" and reply.error is not None
    assert reply.error.code == "store_full" and owner.quarantined == [] and not actor.stopped
    assert actor.history_bytes == 0 and sum(owner.history_deltas) == 0  # the cached history was dropped
    owner.commit_error = None
    await actor.accept(_entry("b", "turn_b"), "enqueue")
    await _drive(actor)
    assert [turn_id for turn_id, _ in owner.answers] == ["turn_a", "turn_b"] and owner.answers[1][
        1
    ].status == "completed"


async def test_damaged_records_quarantine_the_conversation_through_the_owner() -> None:
    owner = FakeOwner({})
    actor = ConversationActor(KEY, owner, Snapshot())
    owner.commit_error = StoreDamaged("page 12 unreadable")
    await actor.accept(_entry("a", "turn_a"), "enqueue")
    await _drive(actor)
    [(_, reply)] = owner.answers
    assert reply.error is not None and reply.error.code == "store_damaged"
    assert owner.quarantined == ["t/c"] and owner.stops == [[]] and actor.stopped


async def test_a_transient_turn_is_answered_and_writes_nothing_even_when_it_fails() -> None:
    owner = FakeOwner({"boom": RuntimeError("boom")})
    actor = ConversationActor(KEY, owner, Snapshot())
    await actor.accept(_entry("hi", "turn_t", kind="transient"), "enqueue")
    await actor.accept(_entry("boom", "turn_f", kind="transient"), "enqueue")
    await _drive(actor)
    assert owner.commits == []
    (ok_id, ok), (failed_id, failed) = owner.answers
    assert ok_id == "turn_t" and ok.text == "1:hi"
    assert failed_id == "turn_f" and failed.status == "failed"
    assert actor.snapshot.seq == 0 and owner.counters["turns"] == 1


async def test_history_edits_commit_in_mailbox_order_and_a_stale_revise_conflicts() -> None:
    owner = FakeOwner({})
    actor = ConversationActor(KEY, owner, Snapshot())
    await actor.accept(_entry("note", "turn_a", kind="append"), "enqueue")
    await _drive(actor)
    [appended] = owner.commits
    assert _kinds(appended) == [("turns", "t/c/000000000001"), ("snapshots", "t/c")]
    assert actor.snapshot.seq == 1 and owner.answers[-1] == ("turn_a", Reply())
    owner.turns[1] = TurnRecord(seq=1, turn_id="turn_a", input=(Message("user", "note"),))
    stale = {"input": [], "output": []}
    await actor.accept(_entry("edited", "turn_r", kind="revise", options={"seq": 1, "base": stale}), "enqueue")
    await actor.accept(_entry("", "turn_c", kind="clear"), "enqueue")
    await _drive(actor)
    [_, cleared] = owner.commits  # the stale revise wrote nothing
    assert _kinds(cleared) == [("turns", "t/c/000000000001"), ("snapshots", "t/c")]
    assert all(isinstance(op, Delete) for op in cleared)
    (_, conflict), (_, done) = owner.answers[1:]
    assert conflict.error is not None and conflict.error.code == "conflict" and done.status == "completed"
    assert actor.snapshot.seq == 0
