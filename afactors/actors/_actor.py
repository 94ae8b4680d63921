"""`ConversationActor`: one conversation's bounded mailbox and its turns, run one at a time to completion.

Why it works this way. An actor keeps no task of its own while idle (100 000 idle conversations cost memory,
not tasks): when its mailbox gets work, its owner hands it to a worker task, which calls `drive` until the
mailbox is empty. A worker drives many actors one after the other under ONE cancel scope, because opening a
scope per turn cost more than the rest of the scheduling; to cut a running target (`cancel`, `interrupt`) the
turn cancels that scope, and `drive` returns False so the worker opens a fresh scope and drives the actor on.
The rejected alternatives: a task per actor (memory and a checkpoint per wake-up), a scope per turn (cost).

The actor sees its owner only through `ActorOwner`; every phase change goes through `_phases`, and every row
it writes comes from `ledger`.

Must not import: the system (`_system`).
"""

from __future__ import annotations

import inspect
import logging
import time
from collections import deque
from collections.abc import Sequence
from typing import Any, Literal

import attrs
import orjson
import trio

from afactors._tracing import NO_SPAN
from afactors.actors import ledger
from afactors.actors._errors import ConversationBusy, NotOwner
from afactors.actors._history import History, message_bytes
from afactors.actors._owner import ActorOwner
from afactors.actors._phases import Entry, Event, Phase, Turn, Write
from afactors.actors._records import Staged, StagedRecords
from afactors.actors._replies import ReplyBuilder, cancelled, error_text, failed
from afactors.actors._supervision import RestartTracker
from afactors.model import (
    HISTORY_EDITS,
    BusyPolicy,
    ConversationKey,
    Message,
    Reply,
    Timer,
    TurnContext,
    TurnTimers,
    converter,
)
from afactors.store import Op, Put, ResponseRecord, Snapshot, StoreDamaged, StoreError, StoreFull, Summary

log = logging.getLogger("afactors.actors")

ActorStatus = Literal["idle", "busy", "interrupted", "error", "passivated"]


@attrs.frozen
class ActorInfo:
    """What an operator sees of one live actor. `last_activity` is wall-clock time (seconds since the epoch)."""

    key: ConversationKey
    status: ActorStatus
    mailbox_depth: int
    turns: int
    restarts: int
    last_activity: float


_NO_RECORDS: dict[str, ResponseRecord] = {}  # shared, never written to


def _copy_state(state: dict[str, Any]) -> dict[str, Any]:
    return orjson.loads(orjson.dumps(state)) if state else {}


class ConversationActor:
    """The only owner of one conversation's state. Created and passivated by its owner (`ActorSystem`)."""

    __slots__ = (
        "__weakref__",
        "_current",
        "_history",
        "_mailbox",
        "_not_before",
        "_outcome",
        "_owner",
        "_passivated",
        "_snapshot",
        "_space",
        "_span",
        "_stopped",
        "_tracker",
        "driving",
        "history_bytes",
        "key",
        "last_active",
        "path",
        "turns_done",
    )

    def __init__(self, key: ConversationKey, owner: ActorOwner[ConversationActor], snapshot: Snapshot) -> None:
        self.key = key
        self.path = key.path
        self.driving = False  # a worker drives it or it waits for one (set and cleared by the owner)
        self.turns_done = 0
        self.last_active = trio.current_time()
        self._owner = owner
        self._mailbox: deque[Turn] = deque()
        self._space: trio.lowlevel.ParkingLot | None = None  # senders waiting for room (created on first wait)
        self._snapshot = snapshot
        self._history: History | None = None  # loaded on the first turn that needs it
        self.history_bytes = 0  # estimated size of `_history` (the owner keeps live histories within budgets)
        self._current: Turn | None = None
        self._span = NO_SPAN  # the running turn's trace span
        self._outcome: ActorStatus = "idle"
        self._stopped = False
        self._passivated = False
        self._tracker: RestartTracker | None = None
        self._not_before = 0.0

    # -- introspection -------------------------------------------------------------------------------------

    @property
    def status(self) -> ActorStatus:
        if self._passivated:
            return "passivated"
        if self._stopped:
            return "error"
        if self._current is not None or self._mailbox:
            return "busy"
        return self._outcome

    @property
    def mailbox_depth(self) -> int:
        """Envelopes accepted and not started yet."""
        return sum(len(turn.entries) for turn in self._mailbox)

    @property
    def restarts(self) -> int:
        """Restarts within the current restart window."""
        return 0 if self._tracker is None else self._tracker.count

    @property
    def snapshot(self) -> Snapshot:
        """The last committed snapshot (turn count, head turn id, target state)."""
        return self._snapshot

    def history(self, summary: Summary | None = None) -> tuple[Message, ...]:
        """The committed messages the next turn sees, in order (each turn's input, then its output): every turn,
        or those inside the window (`history_turns`, `history_tokens`), after `summary`'s message if given."""
        return tuple(self._context(summary))

    def _context(self, summary: Summary | None, inputs: tuple[Message, ...] = ()) -> Sequence[Message]:
        """`history(summary)` followed by a turn's `inputs`: without a summary, a view of the cached history (no
        copy of it per turn)."""
        messages = self._load_history().messages(inputs)
        return (summary.message, *messages) if summary else messages

    async def _summarized(self) -> Summary | None:
        """The summary the next turn sees: the committed one, or a new one when turns left the window since.

        A new one covers every turn before the window, which first shrinks to half its bounds, so the hook runs
        once per half a window of turns, not on every turn.
        """
        summarize = self._owner.summarize
        if summarize is None:
            return None
        summary = self._snapshot.summary
        through = summary.through if summary else 0
        history = self._load_history()
        if history.first <= through + 1:
            return summary
        left = history.shrink(_half(history.max_turns), _half(history.max_tokens))
        self._account(-message_bytes(message for turn in left for message in turn))
        dropped: list[Message] = []
        for seq in range(through + 1, history.first):
            record = self._owner.turn(self.path, seq)
            if record is not None:
                dropped += (*record.input, *record.output)
        if not dropped:
            return summary  # retention removed them: nothing to summarise
        made = summarize(summary.message if summary else None, dropped)
        message = await made if inspect.isawaitable(made) else made
        if not isinstance(message, Message):
            raise TypeError(f"the summarize hook must return a Message, not {type(message).__name__}")
        return Summary(through=history.first - 1, message=message)

    def info(self) -> ActorInfo:
        wall = time.time() - (trio.current_time() - self.last_active)
        return ActorInfo(self.key, self.status, self.mailbox_depth, self.turns_done, self.restarts, wall)

    @property
    def busy(self) -> bool:
        return self._current is not None or bool(self._mailbox)

    @property
    def idle(self) -> bool:
        """Nothing running, queued or waiting to be queued: it may be passivated."""
        return (
            not self.driving
            and not self._mailbox
            and (self._space is None or not self._space.statistics().tasks_waiting)
        )

    @property
    def stopped(self) -> bool:
        return self._stopped

    # -- intake ----------------------------------------------------------------------------------------------

    async def accept(self, entry: Entry, policy: BusyPolicy) -> None:
        """Queue `entry` by `policy`; waits for room when the mailbox is full (backpressure).

        Not a checkpoint when there is room (the common case): `ActorSystem.submit` documents what that means.
        """
        owner = self._owner
        if policy == "reject" and self.busy:
            raise ConversationBusy(self.key)
        if policy == "interrupt":
            self._interrupt()
        elif policy == "steer" and self._fold(entry):
            return
        while len(self._mailbox) >= owner.mailbox_size:
            if self._space is None:
                self._space = trio.lowlevel.ParkingLot()
            await self._space.park()
            owner.admit(self)
        self._mailbox.append(Turn(entry, steer=policy == "steer" and entry.envelope.kind == "turn"))
        owner.schedule(self)

    def enqueue_recovered(self, entry: Entry) -> None:
        """Queue an envelope replayed from the inbox (no bound: it was accepted before the restart)."""
        self._mailbox.append(Turn(entry, steer=False))
        self._owner.schedule(self)

    def _fold(self, entry: Entry) -> bool:
        """`steer`: add a user turn to the queued steer turn that runs next, if there is one."""
        if not self._mailbox or entry.envelope.kind != "turn":
            return False
        tail = self._mailbox[-1]
        if not tail.can_fold(entry, self._owner.mailbox_size):
            return False
        tail.fold(entry)
        return True

    def _interrupt(self) -> None:
        """`interrupt`: cut the running turn and drop everything queued; the new envelope runs next."""
        if self._current is not None and self._current.phase in (Phase.STARTING, Phase.RUNNING):
            self._current.cancel("interrupted")
        dropped = [entry for turn in self._mailbox for entry in turn.entries]
        for turn in self._mailbox:
            turn.end()
        self._mailbox.clear()
        self._room(len(dropped))
        if dropped:
            self._owner.cancel_soon(dropped, "interrupted")

    def remove_queued(self, entry: Entry) -> None:
        """Take a queued entry out of its turn (and the turn out of the mailbox when it empties)."""
        turn = entry.turn
        assert turn is not None
        if turn.remove(entry):
            turn.end()
            self._mailbox.remove(turn)
            self._room(1)

    def _room(self, n: int = 1) -> None:
        if self._space is not None and n:
            self._space.unpark(count=n)

    def wake_all_senders(self) -> None:
        if self._space is not None:
            self._space.unpark_all()

    # -- the runner --------------------------------------------------------------------------------------

    async def drive(self, scope: trio.CancelScope) -> bool:
        """Run queued turns one at a time until the mailbox is empty (called by a worker of the owner).

        `scope` is the worker's cancel scope: cancelling it cuts the running target. After a cut the worker needs
        a fresh scope, so this returns False early, still holding the actor, and the worker drives it again.
        """
        released = True
        owner = self._owner
        try:
            while self._mailbox and not self._stopped and not owner.cut:
                if self._not_before and self._not_before > trio.current_time():
                    await trio.sleep_until(self._not_before)  # backoff after a restart
                    continue
                turn = self._mailbox.popleft()
                self._room()
                self._current = turn
                turn.fire(Event.START)
                if owner.tracing.enabled:
                    await self._traced(turn, scope)
                else:  # (one coroutine level less on every turn)
                    await self._guarded(turn, scope)
                # Only a running turn's `cancel` cancels the scope (and `stop_now`, which sets `owner.cut`), so the
                # scope is asked (a clock read) only after a cut turn.
                if turn.cancel_reason is not None and scope.cancel_called:
                    released = False
                    return False
            return True
        finally:
            if released:
                owner.released(self)

    async def _traced(self, turn: Turn, scope: trio.CancelScope) -> None:
        """`_guarded` inside the turn's trace span."""
        entries = turn.entries
        with self._owner.tracing.turn(entries[0].turn_id, [e.envelope for e in entries], turn.failures + 1) as span:
            self._span = span
            try:
                await self._guarded(turn, scope)
            finally:
                self._span = NO_SPAN

    async def _guarded(self, turn: Turn, scope: trio.CancelScope) -> None:
        """Run the turn; a failure of the runtime or the store (not the target's) still answers it."""
        try:
            await self._turn(turn, scope)
        except (StoreFull, StoreDamaged) as exc:
            # Not the target's fault and not the whole store's: fail this turn (inbox rows stay for a restart);
            # a damaged conversation is refused for the cool-down, every other one goes on.
            damaged = isinstance(exc, StoreDamaged)
            self._answer(turn, failed("store_damaged" if damaged else "store_full", str(exc)))
            self.drop_history()
            if damaged:
                self._owner.quarantine(self.path, str(exc))
                self._stop()
        except NotOwner as exc:  # another node took the conversation: nothing was written, nothing more runs here
            self._fenced(turn, failed("not_owner", str(exc)))
        except BaseException as exc:
            if isinstance(exc, StoreError):
                reply = failed("store_error", "the turn could not be stored")
            elif self._owner.cut:
                reply = cancelled("shutdown", "the host shut down before the turn finished; it was not committed")
            else:
                log.exception("turn of %s failed inside the actor runtime", self.path)
                reply = failed("internal_error", "the actor runtime failed")
            self._answer(turn, reply)
            raise
        finally:
            self._current = None

    async def _turn(self, turn: Turn, scope: trio.CancelScope) -> None:
        entries = turn.entries
        if entries[0].envelope.kind in HISTORY_EDITS:  # never folded with others (see `_fold`)
            await self._edit(turn)
            return
        if len(entries) == 1 and not entries[0].recorded and entries[0].write is Write.NONE:
            records = _NO_RECORDS  # the common case: nothing was written for it, no record can exist
        else:
            for entry in entries:
                await entry.settled()
            entries = turn.drop_withdrawn()
            if not entries:
                turn.end()
                return
            records = await self._mark_started(entries)
        first = entries[0].envelope
        inputs = first.input if len(entries) == 1 else tuple(m for entry in entries for m in entry.envelope.input)
        summary = self._snapshot.summary
        messages: Sequence[Message]
        if first.parent is not None:
            chain = self._owner.chain(self.key, first.parent)
            if chain is None:
                turn.settle()
                reply = failed("parent_not_found", f"there is no turn {first.parent!r} to continue")
                await self._finish_failed(turn, records, inputs, reply, dead_letter=None)
                return
            messages = (*chain, *inputs)
        else:
            try:
                summary = None if self._owner.summarize is None else await self._summarized()
            except Exception as exc:  # the summarising hook's failure: the turn fails like the target's would
                turn.settle()
                await self._failed(turn, records, inputs, exc)
                return
            messages = self._context(summary, inputs)
        snapshot = self._snapshot
        target_records = StagedRecords(self._owner, self.path)
        ctx = TurnContext(
            key=self.key,
            messages=messages,
            state=_copy_state(snapshot.state),
            turn_id=entries[0].turn_id,
            seq=snapshot.seq + 1,
            options=first.options,
            identity=first.identity,
            kind=first.kind,
            timers=TurnTimers(self._committed_timers, sender=first.identity, response_target=first.response_target),
            records=target_records,
        )
        builder = ReplyBuilder()
        error: Exception | None = None
        if turn.cancel_reason is None:
            turn.running(scope)
            try:
                await self._call_target(ctx, builder, turn)
            except Exception as exc:  # the target's failure, not ours
                error = exc
            except (trio.Cancelled, BaseExceptionGroup):
                if turn.cancel_reason is None:
                    raise  # not this turn's cut: the system is shutting down
                # cut by `cancel`/`interrupt`: the worker's scope stays cancelled, the bookkeeping is shielded
        turn.settle()
        if turn.cancel_reason is not None:
            self._span.ended("cancelled", turn.cancel_reason)
            await self._owner.cancel_entries(entries, turn.cancel_reason)
            turn.end()
            self._outcome = "interrupted"
            return
        if error is None and first.kind == "transient":  # answered, nothing written
            self._outcome = "idle"
            self._owner.counters["turns"] += 1
            self._answer(turn, builder.reply())
            return
        if error is None:
            try:
                reply = builder.reply()
                await self._commit(turn, records, ctx, inputs, reply, target_records.staged(), summary)
                return
            except (TypeError, ValueError) as exc:  # the target's state or output cannot be stored
                error = exc
        await self._failed(turn, records, inputs, error)

    def _committed_timers(self) -> list[Timer]:
        return self._owner.timers(self.key)

    def _reread(self, records: dict[str, ResponseRecord]) -> dict[str, ResponseRecord]:
        """The records as they stand now: a channel may have changed one (e.g. hidden it) while the turn ran."""
        if not records:
            return records
        return {turn_id: self._owner.record(turn_id) or record for turn_id, record in records.items()}

    async def _mark_started(self, entries: list[Entry]) -> dict[str, ResponseRecord]:
        """The entries' existing response records; "queued" ones are committed as "in_progress" first."""
        found: dict[str, ResponseRecord] = {}
        for entry in entries:
            if entry.recorded and (record := self._owner.record(entry.turn_id)) is not None:
                found[entry.turn_id] = record
        records, ops = ledger.started(found)
        if ops:
            await self._owner.commit(ops, self.key)
        return records

    async def _call_target(self, ctx: TurnContext, builder: ReplyBuilder, turn: Turn) -> None:
        updates = self._owner.run_target(ctx)
        try:
            async for update in updates:
                builder.add(update)
                for entry in turn.entries:
                    for handle in entry.handles:
                        if handle.streaming and handle._push(update):
                            turn.streamed = True
        finally:
            aclose = getattr(updates, "aclose", None)
            if aclose is not None:  # an async generator: run its cleanup now, not at garbage collection
                await aclose()

    async def _edit(self, turn: Turn) -> None:
        """Apply a history edit ("append", "revise" or "clear", see `Envelope`) in one commit and answer it."""
        entry = turn.entries[0]
        envelope, owner, now = entry.envelope, self._owner, time.time()
        snapshot, reply = self._snapshot, Reply()
        ops: list[Op] = []
        if envelope.kind == "append":
            snapshot, ops = ledger.appended(self.path, snapshot, entry, now)
        elif envelope.kind == "revise":
            seq = int(envelope.options["seq"])
            record = owner.turn(self.path, seq) if 0 < seq <= snapshot.seq else None
            held = None if record is None else converter.unstructure({"input": record.input, "output": record.output})
            if record is None or held != envelope.options.get("base"):
                reply = failed("conflict", f"turn {seq} changed or is gone; read it again")
            else:
                output = converter.structure(envelope.options.get("output", []), tuple[Message, ...])
                snapshot, ops = ledger.revised(self.path, snapshot, record, envelope.input, output)
        else:  # clear
            ops = ledger.cleared(self.path, snapshot.seq)
            snapshot = Snapshot()
        if ops:
            await owner.commit(ops, self.key)
        self._snapshot, self._history = snapshot, None  # reloaded from the store by the next turn
        self._answer(turn, reply)

    def take_queued(self) -> list[Entry]:
        """Empty the mailbox (stop now): the entries of every turn that has not started, their turns ended."""
        queued = [entry for turn in self._mailbox for entry in turn.entries]
        for turn in self._mailbox:
            turn.end()
        self._mailbox.clear()
        self.wake_all_senders()
        return queued

    # -- outcomes ----------------------------------------------------------------------------------------

    async def _commit(
        self, turn: Turn, records: dict[str, ResponseRecord], ctx: TurnContext, inputs: tuple[Message, ...],
        reply: Reply, staged: Staged, summary: Summary | None,
    ) -> None:  # fmt: skip
        """Commit the turn (with the target records it `staged` and the history `summary` it saw) in one store
        transaction, then answer every handle."""
        owner = self._owner
        timers = ctx.timers
        snapshot, ops = ledger.completed(
            self.key, turn.entries, self._reread(records), seq=ctx.seq, state=ctx.state, inputs=inputs,
            reply=reply, now=time.time(), reply_to=self._snapshot.reply_to, timers=timers.changes,
            committed_timers=timers.committed() if timers.changes else None,
            staged=staged, summary=summary,
        )  # fmt: skip
        with self._span.commit():
            await owner.commit(ops, self.key)
        added = inputs + reply.messages
        size = message_bytes(added)
        link = (self.key.tenant, turn.entries[0].envelope.parent, added)
        written = {op.key: op.value for op in ops if isinstance(op, Put) and op.kind == "responses"}
        for entry in turn.entries:
            owner.chained(entry.turn_id, link, size)
            for handle in entry.handles:
                handle.record = written.get(entry.turn_id)
        self._snapshot = snapshot
        if self._history is not None:
            left = self._history.append(added)  # the window's oldest turns leave
            self._account(size - message_bytes(message for turn in left for message in turn) if left else size)
        self.turns_done += 1
        self._outcome = "idle"
        owner.counters["turns"] += 1
        self._answer(turn, reply)

    async def _failed(
        self, turn: Turn, records: dict[str, ResponseRecord], inputs: tuple[Message, ...], exc: Exception
    ) -> None:
        """Supervision: restart from the last committed snapshot, retry once, dead-letter on the second failure."""
        owner = self._owner
        message = error_text(exc)
        self._span.failed(type(exc).__name__)
        log.warning("target failed on turn %s of %s: %s", turn.entries[0].turn_id, self.path, message)
        owner.counters["failures"] += 1
        now = trio.current_time()
        if self._tracker is None:
            self._tracker = RestartTracker(owner.restart_policy)
        delay = self._tracker.record(now)
        owner.counters["restarts"] += 1
        self._restart()
        if turn.failures >= 1:
            await self._finish_failed(turn, records, inputs, failed("agent_error", message), dead_letter=message)
        else:
            if turn.streamed:  # the retry must not append to what a stream already showed
                for entry in turn.entries:
                    for handle in entry.handles:
                        handle._drop_stream()
            self._span.ended("retrying")
            turn.fire(Event.RETRY)
            self._mailbox.appendleft(turn)
        if delay is None:
            self._stop()
        else:
            self._not_before = now + delay

    async def _finish_failed(
        self, turn: Turn, records: dict[str, ResponseRecord], inputs: tuple[Message, ...], reply: Reply, *,
        dead_letter: str | None,
    ) -> None:  # fmt: skip
        """Answer a turn that will not run again: failed records, inbox acks, dedup keys, dead letters."""
        owner = self._owner
        ops = ledger.failed(
            self.key, turn.entries, self._reread(records), inputs=inputs, reply=reply, now=time.time(),
            dead_letter=dead_letter,
        )  # fmt: skip
        if ops:  # a transient turn leaves nothing behind
            await owner.commit(ops, self.key)
        if dead_letter is not None:
            owner.counters["dead_letters"] += len(turn.entries)
        self._outcome = "error"
        self._answer(turn, reply)

    def _answer(self, turn: Turn, reply: Reply) -> None:
        self._span.ended(reply.status, None if reply.error is None else reply.error.code)
        entries = list(turn.entries)
        turn.end()
        for entry in entries:
            self._owner.answered(entry, reply)

    # -- lifecycle -----------------------------------------------------------------------------------------

    def _load_history(self) -> History:
        history = self._history
        if history is None:
            summary = self._snapshot.summary
            after = summary.through if summary and self._owner.summarize else 0
            history = self._history = self._owner.history(self.path, self._snapshot.seq, after)
            # may drop it again at once (over budget): use it this once
            self._account(message_bytes(message for turn in history for message in turn))
        return history

    def _account(self, delta: int) -> None:
        self.history_bytes += delta
        self._owner.history_changed(self, delta)

    def drop_history(self) -> None:
        """Forget the cached history (memory budgets); the next turn that needs it reads it from the store."""
        self._history = None
        if self.history_bytes:
            self._account(-self.history_bytes)

    def _restart(self) -> None:
        """Forget everything in memory and start again from the last committed snapshot."""
        self._snapshot = self._owner.snapshot(self.path)
        self.drop_history()

    def _stop(self) -> None:
        """Too many restarts: stop taking envelopes until the cool-down ends; queued ones get an error."""
        self._stopped = True
        self._outcome = "error"
        queued = [entry for turn in self._mailbox for entry in turn.entries]
        for turn in self._mailbox:
            turn.end()
        self._mailbox.clear()
        self._owner.stopped(self, queued)
        self.wake_all_senders()

    def _fenced(self, turn: Turn, reply: Reply) -> None:
        """This node lost the conversation's lease: answer the turn and every queued one with `reply` and stop (the
        new owner replays their inbox rows); the system has dropped the actor already."""
        self._stopped = True
        queued = [entry for queued in self._mailbox for entry in queued.entries]
        for queued_turn in self._mailbox:
            queued_turn.end()
        self._mailbox.clear()
        self._answer(turn, reply)
        for entry in queued:
            self._owner.answered(entry, reply)
        self.drop_history()
        self.wake_all_senders()

    def release(self) -> None:
        """Passivation: drop the conversation's state from memory (the store has all of it)."""
        self._passivated = True
        self.drop_history()
        self._tracker = None


def _half(bound: int | None) -> int | None:
    return None if bound is None else max(1, bound // 2)
