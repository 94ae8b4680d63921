"""The conversation actor runtime against a real LMDB store: ordering, isolation, busy policies, cancellation,
branching, idempotency, supervision, passivation, shutdown and recovery."""

from __future__ import annotations

import gc
import itertools
import weakref
from collections import defaultdict
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
import trio
import trio.testing

from afactors.actors import ActorSystem, ActorUnavailable, ConversationBusy, SystemClosed, TurnHandle
from afactors.actors._keys import turn_key
from afactors.model import ConversationKey, Envelope, Message, ReplyTarget, TurnContext, Update, UsagePart
from afactors.store import Store, StoreError, TurnRecord

KEY = ConversationKey("acme", "chat-1")


class Script:
    """A target driven by the text of the last message.

    "block:NAME" streams "partial " then waits for `gates[NAME]`; "boom" always raises; "flaky..." raises the
    first time; "sleep:S" sleeps S seconds; "badstate" stores a non-JSON value. Every turn counts `n` in the
    state and answers "re:TEXT". Records what each turn saw and how many turns of a conversation overlap.
    """

    def __init__(self) -> None:
        self.seen: dict[str, list[str]] = {}
        self.calls: list[str] = []
        self.started: defaultdict[str, trio.Event] = defaultdict(trio.Event)
        self.gates: defaultdict[str, trio.Event] = defaultdict(trio.Event)
        self.flaked: set[str] = set()
        self.running: defaultdict[str, int] = defaultdict(int)
        self.overlap = 0
        self.store: Store | None = None
        self.record_status: dict[str, str | None] = {}

    async def run(self, ctx: TurnContext) -> AsyncIterator[Update]:
        text = ctx.messages[-1].text
        self.calls.append(text)
        self.seen[ctx.turn_id] = [m.text for m in ctx.messages]
        if self.store is not None:
            record = self.store.get("responses", ctx.turn_id)
            self.record_status[ctx.turn_id] = None if record is None else record.status
        path = ctx.key.path
        self.running[path] += 1
        self.overlap = max(self.overlap, self.running[path])
        try:
            ctx.state["n"] = ctx.state.get("n", 0) + 1
            await trio.lowlevel.checkpoint()  # let other tasks in: turns of one conversation must still not overlap
            if text.startswith("block:"):
                yield Update(delta="partial ")
                self.started[text].set()
                await self.gates[text].wait()
            elif text == "boom":
                raise RuntimeError("boom\nTraceback (most recent call last): secret")
            elif text.startswith("flaky") and text not in self.flaked:
                self.flaked.add(text)
                raise ValueError("flaky")
            elif text.startswith("sleep:"):
                await trio.sleep(float(text.removeprefix("sleep:")))
            elif text == "badstate":
                ctx.state["bad"] = object()
            yield Update(delta=f"re:{text}")
            yield Update(part=UsagePart(1, 1))
        finally:
            self.running[path] -= 1


def env(text: str, key: ConversationKey = KEY, **fields: Any) -> Envelope:
    return Envelope(key, (Message("user", text),), **fields)


@asynccontextmanager
async def running(
    where: Path | str, agent: Any, *, durability: str = "unsafe", **options: Any
) -> AsyncIterator[tuple[Store, ActorSystem]]:
    """A store (in `where`'s `state` folder, or at `where`'s PostgreSQL URL) and an actor system on it."""
    location = where / "state" if isinstance(where, Path) else where
    async with Store.open(location, durability=durability) as store:
        async with ActorSystem.open(store, agent, **options) as system:
            yield store, system


async def settled(system: ActorSystem) -> None:
    """Wait until no conversation has work left (every task is blocked and no actor is busy)."""
    with trio.fail_after(10):
        while system.stats.busy or system.stats.recovering:
            await trio.testing.wait_all_tasks_blocked()


def turns(store: Store, key: ConversationKey = KEY) -> list[TurnRecord]:
    snapshot = store.get("snapshots", key.path)
    return [store.get("turns", turn_key(key.path, n)) for n in range(1, (snapshot.seq if snapshot else 0) + 1)]


# -- ordering and isolation -------------------------------------------------------------------------------------


async def test_100_concurrent_senders_on_one_conversation_keep_arrival_order(tmp_path: Path) -> None:
    agent = Script()
    accepted: list[str] = []
    async with running(tmp_path, agent) as (store, system):

        async def send(i: int) -> None:
            handle = await system.submit(env(f"m{i}"))
            accepted.append(f"m{i}")
            assert (await handle.reply()).text == f"re:m{i}"

        async with trio.open_nursery() as nursery:
            for i in range(100):
                nursery.start_soon(send, i)

        records = turns(store)
        assert [r.input[0].text for r in records] == accepted  # history is exactly the arrival order
        expected: list[str] = []
        for record in records:  # every turn saw all earlier turns, and only them
            expected.append(record.input[0].text)
            assert agent.seen[record.turn_id] == expected
            expected.append(record.output[0].text)
        assert agent.overlap == 1
        assert store.get("snapshots", KEY.path).state == {"n": 100}  # no lost update
        assert system.stats.turns == 100


async def test_a_handle_carries_the_response_record_its_commit_wrote(tmp_path: Path) -> None:
    async with running(tmp_path, Script()) as (store, system):
        first = await system.submit(env("one"))
        await first.reply()
        second = await system.submit(env("two"))
        assert second.record is None  # not ended yet
        await second.reply()
        for handle in (first, second):
            assert handle.record is not None and handle.record == store.get("responses", handle.turn_id)
        assert second.record is not None and second.record.status == "completed" and second.record.seq == 2


@pytest.mark.slow
async def test_1000_conversations_of_10_turns_in_parallel(tmp_path: Path) -> None:
    agent = Script()
    keys = [ConversationKey("t", f"c{i}") for i in range(1000)]
    async with running(tmp_path, agent) as (store, system):

        async def talk(key: ConversationKey) -> None:
            for n in range(10):
                assert (await (await system.submit(env(f"{key.conversation}-{n}", key))).reply()).text.startswith("re:")

        async with trio.open_nursery() as nursery:
            for key in keys:
                nursery.start_soon(talk, key)
        for key in keys:
            records = turns(store, key)
            assert [r.input[0].text for r in records] == [f"{key.conversation}-{n}" for n in range(10)]
            assert store.get("snapshots", key.path).state == {"n": 10}
        assert agent.overlap == 1 and system.stats.turns == 10_000


async def test_a_slow_conversation_does_not_delay_others(tmp_path: Path, autojump_clock: trio.abc.Clock) -> None:
    agent = Script()
    async with running(tmp_path, agent) as (_, system):
        start = trio.current_time()
        slow = await system.submit(env("sleep:5", ConversationKey("t", "slow")))
        handles = [await system.submit(env("fast", ConversationKey("t", f"fast{i}"))) for i in range(20)]
        for handle in handles:
            assert (await handle.reply()).text == "re:fast"
        assert trio.current_time() - start < 1.0 and not slow.done
        assert (await slow.reply()).text == "re:sleep:5"
        assert trio.current_time() - start >= 5.0


# -- busy policies ----------------------------------------------------------------------------------------------


async def test_reject_refuses_while_running_or_queued(tmp_path: Path) -> None:
    agent = Script()
    async with running(tmp_path, agent) as (_, system):
        first = await system.submit(env("block:a"))
        await agent.started["block:a"].wait()
        with pytest.raises(ConversationBusy) as busy:
            await system.submit(env("x", busy_policy="reject"))
        assert busy.value.key == KEY
        queued = await system.submit(env("queued"))
        agent.gates["block:a"].set()
        with pytest.raises(ConversationBusy):
            await system.submit(env("y", busy_policy="reject"))
        await first.reply()
        await queued.reply()
        assert (await (await system.submit(env("z", busy_policy="reject"))).reply()).text == "re:z"
        assert "x" not in agent.calls and "y" not in agent.calls


async def test_reject_as_the_system_default(tmp_path: Path) -> None:
    agent = Script()
    async with running(tmp_path, agent, busy_policy="reject") as (_, system):
        await system.submit(env("block:a"))
        with pytest.raises(ConversationBusy):
            await system.submit(env("x"))
        assert (await (await system.submit(env("other", ConversationKey("t", "2")))).reply()).status == "completed"
        agent.gates["block:a"].set()


async def test_interrupt_cancels_the_running_turn_and_commits_nothing_of_it(tmp_path: Path) -> None:
    agent = Script()
    async with running(tmp_path, agent) as (store, system):
        await (await system.submit(env("before"))).reply()
        cut = await system.submit(env("block:a"), stream=True)
        updates = cut.updates()
        assert (await updates.receive()).delta == "partial "
        queued = await system.submit(env("queued"))
        new = await system.submit(env("now", busy_policy="interrupt"))
        reply = await cut.reply()
        assert reply.status == "cancelled" and reply.error is not None and reply.error.code == "interrupted"
        assert [u async for u in updates] == []  # the stream of the cut turn just ends
        assert (await queued.reply()).error.code == "interrupted"  # type: ignore[union-attr]
        assert (await new.reply()).text == "re:now"
        records = turns(store)
        assert [r.input[0].text for r in records] == ["before", "now"]
        assert store.get("snapshots", KEY.path).state == {"n": 2}  # the cut turn's state change is gone
        assert agent.seen[new.turn_id] == ["before", "re:before", "now"]
        assert store.get("responses", cut.turn_id).status == "cancelled"
        assert "queued" not in agent.calls
        assert system.get(KEY).status == "idle"


async def test_interrupt_cuts_a_target_blocked_in_its_own_nursery(tmp_path: Path) -> None:
    started = trio.Event()

    class Nested:
        async def run(self, ctx: TurnContext) -> AsyncIterator[Update]:
            if ctx.messages[-1].text == "block":
                started.set()
                async with trio.open_nursery() as nursery:  # its Cancelled comes back wrapped in a group
                    nursery.start_soon(trio.sleep_forever)
                    nursery.start_soon(trio.sleep_forever)
            yield Update(delta=f"re:{ctx.messages[-1].text}")

    async with running(tmp_path, Nested()) as (store, system):
        cut = await system.submit(env("block"))
        await started.wait()
        new = await system.submit(env("now", busy_policy="interrupt"))
        assert (await cut.reply()).error.code == "interrupted"  # type: ignore[union-attr]
        assert (await new.reply()).text == "re:now"
        assert (await (await system.submit(env("after"))).reply()).text == "re:after"
        assert [r.input[0].text for r in turns(store)] == ["now", "after"]


async def test_steer_folds_queued_user_messages_into_one_next_turn(tmp_path: Path) -> None:
    agent = Script()
    async with running(tmp_path, agent) as (store, system):
        first = await system.submit(env("block:a"))
        await agent.started["block:a"].wait()
        folded = [await system.submit(env(text, busy_policy="steer")) for text in ("b", "c", "d")]
        assert system.get(KEY).mailbox_depth == 3
        agent.gates["block:a"].set()
        await first.reply()
        replies = [await handle.reply() for handle in folded]
        assert all(r == replies[0] for r in replies) and replies[0].text == "re:d"
        records = turns(store)
        assert len(records) == 2 and [m.text for m in records[1].input] == ["b", "c", "d"]
        for handle in folded:
            record = store.get("responses", handle.turn_id)
            assert record.status == "completed" and record.seq == 2


# -- cancellation, callers, streams ----------------------------------------------------------------------------


async def test_cancel_a_queued_turn_and_a_running_turn(tmp_path: Path) -> None:
    agent = Script()
    async with running(tmp_path, agent) as (store, system):
        running_turn = await system.submit(env("block:a"))
        await agent.started["block:a"].wait()
        queued = await system.submit(env("never"))
        assert await system.cancel(queued.turn_id)
        assert (await queued.reply()).error.code == "cancelled"  # type: ignore[union-attr]
        assert await system.cancel(running_turn.turn_id)
        assert (await running_turn.reply()).status == "cancelled"
        assert "never" not in agent.calls
        assert turns(store) == []
        for handle in (queued, running_turn):
            assert store.get("responses", handle.turn_id).status == "cancelled"
        assert not await system.cancel(queued.turn_id)
        assert not await system.cancel("turn_unknown")
        done = await system.submit(env("ok"))
        await done.reply()
        assert not await system.cancel(done.turn_id)


async def test_a_caller_that_goes_away_does_not_cancel_the_turn(tmp_path: Path) -> None:
    agent = Script()
    async with running(tmp_path, agent) as (store, system):
        handle = await system.submit(env("block:a"), stream=True)
        with trio.move_on_after(0.01):
            await handle.reply()
        await handle.updates().aclose()  # type: ignore[attr-defined]
        agent.gates["block:a"].set()
        assert (await handle.reply()).text == "partial re:block:a"
        assert len(turns(store)) == 1


async def test_a_stream_nobody_reads_is_dropped_not_the_turn(tmp_path: Path) -> None:
    class Chatty:
        async def run(self, ctx: TurnContext) -> AsyncIterator[Update]:
            for n in range(50):
                yield Update(delta=f"{n},")

    async with running(tmp_path, Chatty(), stream_buffer=4) as (_, system):
        handle = await system.submit(env("talk"), stream=True)
        reply = await handle.reply()
        assert reply.text == "".join(f"{n}," for n in range(50))
        assert handle.stream_dropped
        assert len([u async for u in handle.updates()]) == 4


async def test_update_batches_group_what_is_queued_and_never_wait_for_more(tmp_path: Path) -> None:
    gate = trio.Event()

    class Bursty:
        async def run(self, ctx: TurnContext) -> AsyncIterator[Update]:
            for n in range(3):
                yield Update(delta=f"{n},")
            await gate.wait()
            yield Update(delta="last")

    async with running(tmp_path, Bursty(), stream_buffer=16) as (_, system):
        handle = await system.submit(env("talk"), stream=True)
        batches = handle.update_batches()
        first = await batches.__anext__()  # the three queued together, without waiting for the gated fourth
        gate.set()
        rest = [batch async for batch in batches]
        reply = await handle.reply()
    assert [u.delta for u in first] == ["0,", "1,", "2,"]
    assert [[u.delta for u in batch] for batch in rest] == [["last"]]
    assert reply.text == "0,1,2,last" and not handle.stream_dropped


async def test_join_many_joins_the_turns_the_system_holds_and_skips_the_rest(tmp_path: Path) -> None:
    agent = Script()
    async with running(tmp_path, agent) as (_, system):
        first = await system.submit(env("block:a"))
        await agent.started["block:a"].wait()
        joined = system.join_many([first.turn_id, "turn_unknown"])
        agent.gates["block:a"].set()
        assert set(joined) == {first.turn_id}
        assert (await joined[first.turn_id].reply()).text == (await first.reply()).text == "partial re:block:a"


async def test_a_watched_turn_hands_each_update_to_its_observer_and_one_that_raises_loses_only_the_stream(
    tmp_path: Path,
) -> None:
    class Chatty:
        async def run(self, ctx: TurnContext) -> AsyncIterator[Update]:
            for n in range(3):
                yield Update(delta=f"{n},")

    seen: list[str] = []

    def broken(update: Update) -> None:
        raise ValueError("observer bug")

    async with running(tmp_path, Chatty()) as (_, system):
        watched = await system.submit(env("talk"), stream=True)
        watched.watch(lambda update: seen.append(update.delta))
        with pytest.raises(RuntimeError, match="watch"):
            watched.updates()  # one or the other
        failing = await system.submit(env("talk", ConversationKey("t", "c2")), stream=True)
        failing.watch(broken)
        assert (await watched.reply()).text == "0,1,2," and seen == ["0,", "1,", "2,"]
        assert not watched.stream_dropped
        assert (await failing.reply()).text == "0,1,2," and failing.stream_dropped  # the turn itself completed
        with pytest.raises(RuntimeError, match="stream=True"):
            (await system.submit(env("talk", ConversationKey("t", "c3")))).watch(seen.append)


async def test_updates_need_stream_true(tmp_path: Path) -> None:
    async with running(tmp_path, Script()) as (_, system):
        handle = await system.submit(env("x"))
        with pytest.raises(RuntimeError, match="stream=True"):
            handle.updates()
        await handle.reply()


# -- branching, idempotency, background records, pushes -------------------------------------------------------


async def test_turns_continuing_the_same_parent_see_only_their_chain(tmp_path: Path) -> None:
    agent = Script()
    async with running(tmp_path, agent) as (_, system):
        root = await system.submit(env("a", ConversationKey("t", "r1")))
        await root.reply()
        mid = await system.submit(env("b", ConversationKey("t", "r2"), parent=root.turn_id))
        await mid.reply()
        async with trio.open_nursery() as nursery:
            branches: dict[str, TurnHandle] = {}

            async def branch(text: str) -> None:
                branches[text] = await system.submit(env(text, ConversationKey("t", f"r-{text}"), parent=mid.turn_id))
                await branches[text].reply()

            nursery.start_soon(branch, "c1")
            nursery.start_soon(branch, "c2")
        for text in ("c1", "c2"):
            assert agent.seen[branches[text].turn_id] == ["a", "re:a", "b", "re:b", text]
        orphan = await system.submit(env("x", parent="turn_missing"))
        reply = await orphan.reply()
        assert reply.status == "failed" and reply.error.code == "parent_not_found"  # type: ignore[union-attr]
        other_tenant = await system.submit(env("y", ConversationKey("other", "c"), parent=root.turn_id))
        assert (await other_tenant.reply()).error.code == "parent_not_found"  # type: ignore[union-attr]


async def test_an_idempotency_key_runs_once(tmp_path: Path) -> None:
    agent = Script()
    async with running(tmp_path, agent) as (store, system):
        first = await system.submit(env("block:a", idempotency_key="msg-1"))
        await agent.started["block:a"].wait()
        assert store.count("inbox") == 1  # durable before submit returned
        again = await system.submit(env("block:a", idempotency_key="msg-1"))  # redelivered while running
        assert again.turn_id == first.turn_id
        agent.gates["block:a"].set()
        assert (await again.reply()) == (await first.reply())
        later = await system.submit(env("block:a", idempotency_key="msg-1"), stream=True)
        assert later.done and later.turn_id == first.turn_id
        assert (await later.reply()).text == "partial re:block:a"
        assert [u async for u in later.updates()] == []
        assert agent.calls == ["block:a"] and store.count("inbox") == 0 and len(turns(store)) == 1


async def test_a_queued_background_record_goes_in_progress_then_completed(tmp_path: Path) -> None:
    agent = Script()
    async with running(tmp_path, agent) as (store, system):
        agent.store = store
        handle = await system.submit(
            env("hello", turn_id="resp_1", idempotency_key="resp_1", options={"metadata": {"a": "b"}}),
            background=True,
        )
        queued = store.get("responses", "resp_1")
        assert queued.status == "queued" and queued.background and queued.data == {"metadata": {"a": "b"}}
        assert (await handle.reply()).text == "re:hello"
        assert agent.record_status["resp_1"] == "in_progress"
        record = store.get("responses", "resp_1")
        assert record.status == "completed" and record.created_at == queued.created_at
        assert record.background and record.data == {"metadata": {"a": "b"}}
        assert record.seq == 1 and record.output[0].text == "re:hello" and record.usage == UsagePart(1, 1)
        plain = await system.submit(env("plain", options={"store": False}))
        await plain.reply()
        assert agent.record_status[plain.turn_id] is None
        stored = store.get("responses", plain.turn_id)
        assert stored.status == "completed" and stored.stored is False and stored.conversation == KEY.path


async def test_hiding_a_record_read_before_its_turn_rewrote_it_hides_the_record_as_it_now_stands(
    tmp_path: Path,
) -> None:
    async with running(tmp_path, Script()) as (store, system):
        handle = await system.submit(env("hello", turn_id="resp_1", idempotency_key="resp_1"), background=True)
        queued = system.record("resp_1")
        await handle.reply()  # the turn rewrites the record after it was read
        await system.hide(queued)
        await system.hide(queued)  # hidden already: nothing to do
        record = store.get("responses", "resp_1")
    assert queued is not None and queued.status == "queued"
    assert record.status == "completed" and record.output[0].text == "re:hello"  # the turn's write is kept...
    assert record.stored is False and record.data["deleted"] is True  # ...and hidden


async def test_a_reply_to_target_gets_an_outbox_row_in_the_turn_commit(tmp_path: Path) -> None:
    announced: list[str] = []
    async with running(tmp_path, Script(), on_outbox=announced.append) as (store, system):
        target = ReplyTarget("telegram", {"chat_id": 42})
        handle = await system.submit(env("hi", reply_to=target, idempotency_key="u1"))
        await handle.reply()
        boom = await system.submit(env("x", reply_to=target, parent="turn_missing"))
        await boom.reply()
        rows = store.scan("outbox", KEY.path + "/")
        assert [row.payload["turn_id"] for _, row in rows] == [handle.turn_id, boom.turn_id]
        assert rows[0][1].channel == "telegram" and rows[0][1].address == {"chat_id": 42}
        assert rows[1][1].payload["reply"]["status"] == "failed"
        assert announced == [key for key, _ in rows]


# -- supervision -------------------------------------------------------------------------------------------------


async def test_a_failing_target_gets_an_error_answer_and_the_conversation_goes_on(
    tmp_path: Path, autojump_clock: trio.abc.Clock
) -> None:
    agent = Script()
    async with running(tmp_path, agent) as (store, system):
        await (await system.submit(env("good"))).reply()
        reply = await (await system.submit(env("boom"))).reply()
        assert reply.status == "failed" and reply.error is not None and reply.error.code == "agent_error"
        assert reply.error.message == "RuntimeError: boom" and "Traceback" not in reply.error.message
        assert agent.calls.count("boom") == 2  # retried once after the backoff, then poison
        [(_, letter)] = store.scan("dead_letters")
        assert letter.envelope.input[0].text == "boom" and "boom" in letter.error
        after = await system.submit(env("after"))
        assert (await after.reply()).text == "re:after"
        assert agent.seen[after.turn_id] == ["good", "re:good", "after"]  # history as of the last good turn
        assert store.get("snapshots", KEY.path).state == {"n": 2}
        assert system.stats.dead_letters == 1


async def test_a_target_failing_once_is_retried_and_succeeds(tmp_path: Path, autojump_clock: trio.abc.Clock) -> None:
    agent = Script()
    async with running(tmp_path, agent) as (store, system):
        start = trio.current_time()
        handle = await system.submit(env("flaky"), stream=True)
        reply = await handle.reply()
        assert reply.status == "completed" and reply.text == "re:flaky"
        assert 0.4 <= trio.current_time() - start <= 0.6  # the first backoff (0.5 s +- 20 %)
        assert store.count("dead_letters") == 0 and len(turns(store)) == 1
        assert system.actors()[0].restarts == 1


async def test_storing_a_non_json_state_is_a_target_failure(tmp_path: Path, autojump_clock: trio.abc.Clock) -> None:
    async with running(tmp_path, Script()) as (store, system):
        reply = await (await system.submit(env("badstate"))).reply()
        assert reply.status == "failed" and reply.error.code == "agent_error"  # type: ignore[union-attr]
        assert turns(store) == [] and store.count("dead_letters") == 1


async def test_a_crash_looping_conversation_is_stopped_then_cools_down(
    tmp_path: Path, autojump_clock: trio.abc.Clock
) -> None:
    agent = Script()
    async with running(tmp_path, agent, cooldown=60.0) as (_, system):
        replies = []
        for _ in range(5):
            try:
                replies.append(await (await system.submit(env("boom"))).reply())
            except ActorUnavailable:
                break
        # 0.5 + 1 + 2 + 4 + 8 s of backoff: the 6th restart falls within 30 s and stops the actor
        assert [r.error.code for r in replies] == ["agent_error"] * 3  # type: ignore[union-attr]
        assert system.stats.stopped == 1
        with pytest.raises(ActorUnavailable):
            await system.submit(env("hello"))
        other = await system.submit(env("hello", ConversationKey("t", "other")))
        assert (await other.reply()).status == "completed"
        await trio.sleep(61)
        assert (await (await system.submit(env("hello"))).reply()).text == "re:hello"


async def test_envelopes_queued_behind_a_stopping_actor_get_an_error(
    tmp_path: Path, autojump_clock: trio.abc.Clock
) -> None:
    agent = Script()
    async with running(tmp_path, agent, max_restarts=1) as (_, system):
        handles = [await system.submit(env(text)) for text in ("boom", "one", "two")]
        replies = [await handle.reply() for handle in handles]
        assert [r.error.code for r in replies] == ["agent_error", "actor_unavailable", "actor_unavailable"]  # type: ignore[union-attr]
        assert "one" not in agent.calls


# -- passivation --------------------------------------------------------------------------------------------------


async def test_past_its_budget_a_tenant_is_trimmed_to_seven_eighths_so_the_next_turns_drop_no_other_history(
    tmp_path: Path,
) -> None:
    # Twenty conversations of ~4.6 KB each against a 40,000-byte tenant budget: each time it is passed, the least
    # recently active histories go, down to 35,000 bytes (stopping just under the budget, every later turn would
    # drop one more).
    keys = [ConversationKey("t", f"c{n}") for n in range(20)]
    sizes: list[int] = []
    async with running(tmp_path, Script(), tenant_budget=40_000) as (_, system):
        for key in keys:
            await (await system.submit(env("x" * 2000, key))).reply()
            sizes.append(system.stats.history_bytes)
        trimmed = [after for before, after in itertools.pairwise(sizes) if after < before]
        assert len(trimmed) >= 3 and all(after <= 40_000 * 7 / 8 for after in trimmed), sizes
        assert max(sizes) <= 40_000
        kept = [key for key in keys if system.get(key).history_bytes]
        assert keys[-1] in kept and keys[0] not in kept
        for n in range(3):
            await (await system.submit(env(f"more {n}", keys[-1]))).reply()
        assert [key for key in keys if system.get(key).history_bytes] == kept
        assert [m.text for m in system.get(keys[0]).history()][:1] == ["x" * 2000]  # read again from the store


async def test_an_idle_actor_is_passivated_and_reactivated_with_its_history(
    tmp_path: Path, autojump_clock: trio.abc.Clock
) -> None:
    agent = Script()
    async with running(tmp_path, agent, idle_timeout=60.0) as (_, system):
        await (await system.submit(env("one"))).reply()
        actor = weakref.ref(system.get(KEY))
        assert system.get(KEY).status == "idle"
        await trio.sleep(61)
        assert system.actors() == [] and system.stats.passivations == 1
        gc.collect()
        assert actor() is None  # its memory is released
        again = await system.submit(env("two"))
        await again.reply()
        assert agent.seen[again.turn_id] == ["one", "re:one", "two"]
        assert system.get(KEY).history()[-1].text == "re:two"


async def test_max_active_passivates_the_least_recently_used(tmp_path: Path) -> None:
    agent = Script()
    keys = [ConversationKey("t", f"c{i}") for i in range(3)]
    async with running(tmp_path, agent, max_active=2) as (_, system):
        for key in keys[:2]:
            await (await system.submit(env("hi", key))).reply()
        await (await system.submit(env("again", keys[0]))).reply()  # c0 is now more recent than c1
        await (await system.submit(env("hi", keys[2]))).reply()
        assert {info.key for info in system.actors()} == {keys[0], keys[2]}
        assert system.passivate(keys[2]) and not system.passivate(keys[1])
        final = await system.submit(env("back", keys[1]))
        await final.reply()
        assert agent.seen[final.turn_id] == ["hi", "re:hi", "back"]


async def test_actors_reports_status_and_mailbox_depth(tmp_path: Path) -> None:
    agent = Script()
    async with running(tmp_path, agent) as (_, system):
        await system.submit(env("block:a"))
        await agent.started["block:a"].wait()
        await system.submit(env("next"))
        [info] = system.actors()
        assert (info.key, info.status, info.mailbox_depth, info.turns) == (KEY, "busy", 1, 0)
        agent.gates["block:a"].set()
        await settled(system)
        [info] = system.actors()
        assert (info.status, info.mailbox_depth, info.turns) == ("idle", 0, 2)


async def test_a_full_mailbox_blocks_the_sender(tmp_path: Path) -> None:
    agent = Script()
    async with running(tmp_path, agent, mailbox_size=2) as (_, system):
        await system.submit(env("block:a"))
        await agent.started["block:a"].wait()
        for text in ("q1", "q2"):
            await system.submit(env(text))
        with trio.move_on_after(0.05) as blocked:
            await system.submit(env("q3"))
        assert blocked.cancelled_caught  # backpressure: the third envelope waits for room
        agent.gates["block:a"].set()
        assert (await (await system.submit(env("q4"))).reply()).text == "re:q4"
        assert "q3" not in agent.calls


# -- shutdown and recovery ---------------------------------------------------------------------------------------


async def test_shutdown_drains_turns_then_cuts_the_rest_and_replays_them(store_location: str | Path) -> None:
    agent = Script()
    async with running(store_location, agent, drain_timeout=0.2) as (store, system):
        quick = await system.submit(env("sleep:0.01", ConversationKey("t", "quick")))
        stuck = await system.submit(env("block:a", idempotency_key="m1"))
        behind = await system.submit(env("behind"))
        await agent.started["block:a"].wait()
    assert (await quick.reply()).status == "completed"
    for handle in (stuck, behind):
        reply = await handle.reply()
        assert reply.status == "cancelled" and reply.error.code == "shutdown"  # type: ignore[union-attr]
    with pytest.raises(SystemClosed):
        await system.submit(env("late"))

    agent = Script()
    agent.gates["block:a"].set()
    async with running(store_location, agent) as (store, system):
        replay = await system.submit(env("block:a", idempotency_key="m1"))  # a redelivery joins the replay
        assert replay.turn_id == stuck.turn_id
        assert (await replay.reply()).text == "partial re:block:a"
        assert [r.input[0].text for r in turns(store)] == ["block:a"]
        assert store.count("inbox") == 0 and agent.calls == ["block:a"]


async def test_recovery_runs_inboxed_envelopes_in_arrival_order_without_callers(store_location: str | Path) -> None:
    agent = Script()
    keys = [ConversationKey("t", f"c{i}") for i in range(5)]
    async with running(store_location, agent, drain_timeout=0.0) as (_, system):
        for key in keys:
            await system.submit(env("block:x", key, idempotency_key="a"))
            await system.submit(env("second", key, idempotency_key="b"))
    agent = Script()
    agent.gates["block:x"].set()
    async with running(store_location, agent, recovery_limit=2) as (store, system):
        assert system.stats.recovering == 10
        await settled(system)
        assert system.stats.recovered == 10
        for key in keys:
            assert [r.input[0].text for r in turns(store, key)] == ["block:x", "second"]
        assert store.count("inbox") == 0


async def test_recovery_reading_the_inbox_in_pages_keeps_every_row_and_each_conversation_in_order(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("afactors.actors._system._SCAN_PAGE", 3)  # conversations' rows span pages
    agent = Script()
    keys = [ConversationKey("t", f"c{i}") for i in range(4)]
    async with running(tmp_path, agent, drain_timeout=0.0) as (_, system):
        for key in keys:
            await system.submit(env("block:x", key, idempotency_key="a"))
            for n in range(3):
                await system.submit(env(f"m{n}", key, idempotency_key=f"m{n}"))
    agent = Script()
    agent.gates["block:x"].set()
    async with running(tmp_path, agent, recovery_limit=1) as (store, system):
        # a new envelope for the last conversation, before recovery has read its rows: it runs after them
        late = await system.submit(env("late", keys[-1]))
        assert (await late.reply()).text == "re:late"
        await settled(system)
        assert system.stats.recovered == 4 * 4 - 4  # the last conversation's rows ran for the new envelope
        for key in keys:
            expected = ["block:x", "m0", "m1", "m2"] + (["late"] if key == keys[-1] else [])
            assert [r.input[0].text for r in turns(store, key)] == expected
        assert store.count("inbox") == 0


async def test_inboxed_envelopes_behind_a_stopped_actor_run_after_the_cool_down(
    tmp_path: Path, autojump_clock: trio.abc.Clock
) -> None:
    agent = Script()
    async with running(tmp_path, agent, max_restarts=1, cooldown=30.0) as (store, system):
        boom = await system.submit(env("boom"))
        later = await system.submit(env("later", idempotency_key="k-later"))
        assert (await later.reply()).error.code == "actor_unavailable"  # type: ignore[union-attr]
        assert (await boom.reply()).error.code == "agent_error"  # type: ignore[union-attr]
        assert store.count("inbox") == 1 and "later" not in agent.calls
        await trio.sleep(31)
        last = await system.submit(env("next"))
        await last.reply()
        assert [r.input[0].text for r in turns(store)] == ["later", "next"]  # the kept row ran first, once
        assert store.count("inbox") == 0


async def test_cancel_a_turn_still_waiting_for_recovery(store_location: str | Path) -> None:
    first, second = ConversationKey("t", "first"), ConversationKey("t", "second")
    async with running(store_location, Script(), drain_timeout=0.0) as (_, system):
        await system.submit(env("block:r", first, idempotency_key="a"))
        waiting = await system.submit(env("never", second, idempotency_key="b"))
    agent = Script()
    async with running(store_location, agent, recovery_limit=1) as (store, system):
        if not agent.started["block:r"].is_set():  # recovery order is the inbox's: "first" holds the limiter
            await agent.started["block:r"].wait()
        assert await system.cancel(waiting.turn_id)
        assert store.get("responses", waiting.turn_id).status == "cancelled"
        agent.gates["block:r"].set()
        await settled(system)
        assert "never" not in agent.calls and store.count("inbox") == 0
        assert (await (await system.submit(env("never", second, idempotency_key="b"))).reply()).status == "cancelled"


@pytest.mark.parametrize(
    "options",
    [{"mailbox_size": 0}, {"max_active": 0}, {"recovery_limit": 0}, {"stream_buffer": 0}, {"busy_policy": "later"}],
)
async def test_bad_settings_are_refused(tmp_path: Path, options: dict[str, Any]) -> None:
    async with Store.open(tmp_path / "state", durability="unsafe") as store:
        with pytest.raises(ValueError):
            async with ActorSystem.open(store, Script(), **options):
                pass  # pragma: no cover


async def test_a_bad_busy_policy_on_an_envelope_is_refused(tmp_path: Path) -> None:
    async with running(tmp_path, Script()) as (_, system):
        with pytest.raises(ValueError, match="busy policy"):
            await system.submit(env("x", busy_policy="whenever"))  # type: ignore[arg-type]
        assert system.actors() == [] or system.actors()[0].mailbox_depth == 0


async def test_a_store_failure_is_not_a_target_failure_it_escalates(tmp_path: Path) -> None:
    agent = Script()
    handles: list[TurnHandle] = []
    with pytest.raises(BaseExceptionGroup) as crashed:
        async with running(tmp_path, agent) as (store, system):
            real_commit = store.commit

            async def failing_commit(ops: Any) -> None:
                if any(op.kind == "turns" for op in ops):
                    raise StoreError("disk on fire")
                await real_commit(ops)

            store.commit = failing_commit  # type: ignore[method-assign]
            handles.append(await system.submit(env("hello")))
            await trio.sleep_forever()  # the system's crash cancels this
    assert crashed.value.subgroup(StoreError) is not None
    reply = await handles[0].reply()
    assert reply.status == "failed" and reply.error.code == "store_error"  # type: ignore[union-attr]
    assert agent.calls == ["hello"]  # ran once: no retry, no dead letter
