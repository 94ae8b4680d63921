"""`ConversationActor`: one conversation's bounded mailbox and its turns, run one at a time to completion."""

from __future__ import annotations

import logging
import time
from collections import deque
from typing import TYPE_CHECKING, Any, Literal

import attrs
import orjson
import trio

from afactors.actors.errors import ConversationBusy
from afactors.actors.handle import TurnHandle
from afactors.actors.history import load_chain, load_history
from afactors.actors.keys import dead_letter_key, dedup_key, outbox_key, turn_key
from afactors.actors.replies import ReplyBuilder, cancelled, error_text, failed
from afactors.actors.supervision import RestartTracker
from afactors.model import (
    BusyPolicy,
    ConversationKey,
    Envelope,
    ErrorInfo,
    Message,
    Reply,
    TurnContext,
    UsagePart,
    converter,
)
from afactors.store import (
    DeadLetter,
    DedupRecord,
    Delete,
    InboxRecord,
    Op,
    OutboxRecord,
    Put,
    ResponseRecord,
    Snapshot,
    StoreError,
    TurnRecord,
)

if TYPE_CHECKING:
    from afactors.actors.system import ActorSystem

log = logging.getLogger("afactors.actors")

ActorStatus = Literal["idle", "busy", "interrupted", "error", "passivated"]
Phase = Literal["queued", "starting", "running", "committing"]


@attrs.frozen
class ActorInfo:
    """What an operator sees of one live actor. `last_activity` is wall-clock time (seconds since the epoch)."""

    key: ConversationKey
    status: ActorStatus
    mailbox_depth: int
    turns: int
    restarts: int
    last_activity: float


class Entry:
    """One accepted envelope, the handles waiting for it, and its durable bookkeeping."""

    __slots__ = (
        "envelope", "turn_id", "handles", "accepted_at", "stamp", "inbox_key", "written", "withdrawn", "batch",
        "unrecorded",
    )

    def __init__(self, envelope: Envelope, handle: TurnHandle, accepted_at: float, stamp: int = 0) -> None:
        self.envelope = envelope  # its turn_id may be None: `turn_id` is the one in force
        self.turn_id = handle.turn_id
        self.handles = [handle]
        self.accepted_at = accepted_at
        self.stamp = stamp
        self.inbox_key: str | None = None
        self.written: trio.Event | None = None  # set once the submit-time commit (inbox row, extra ops) settled
        self.withdrawn = False  # that commit failed: the envelope was never accepted
        self.batch: Batch | None = None
        self.unrecorded = False  # the id was minted here and nothing was written: no response record exists yet

    def stored_envelope(self) -> Envelope:
        """The envelope as kept in the store (inbox, dead letters): always with its turn id."""
        if self.envelope.turn_id == self.turn_id:
            return self.envelope
        return attrs.evolve(self.envelope, turn_id=self.turn_id)


class Batch:
    """What one turn runs: one entry, or several user turns folded together by the `steer` policy."""

    __slots__ = ("entries", "steer", "phase", "scope", "cancel_reason", "failures", "streamed")

    def __init__(self, entry: Entry, steer: bool) -> None:
        self.entries = [entry]
        self.steer = steer
        self.phase: Phase = "queued"
        self.scope: trio.CancelScope | None = None
        self.cancel_reason: str | None = None
        self.failures = 0
        self.streamed = False
        entry.batch = self

    def cancel(self, reason: str) -> None:
        """Cut the turn: nothing of it is committed; its handles end with status "cancelled" and code `reason`.

        Before the target runs this only marks the batch; while it runs, the driving worker's scope is cancelled.
        """
        self.cancel_reason = reason
        if self.scope is not None:
            self.scope.cancel()


_NO_RECORDS: dict[str, ResponseRecord] = {}  # shared, never written to
_NO_OPS: list[Op] = []  # shared, never written to


def _copy_state(state: dict[str, Any]) -> dict[str, Any]:
    return orjson.loads(orjson.dumps(state)) if state else {}


class ConversationActor:
    """The only owner of one conversation's state. Created and passivated by `ActorSystem`.

    It keeps no task while idle: a worker task of the system drives it only while its mailbox has work.
    """

    __slots__ = (
        "key", "path", "_system", "_mailbox", "_space", "_snapshot", "_history", "_current", "_driving",
        "_outcome", "_stopped", "_passivated", "turns_done", "_tracker", "_not_before", "last_active", "__weakref__",
    )

    def __init__(self, key: ConversationKey, system: ActorSystem, snapshot: Snapshot) -> None:
        self.key = key
        self.path = key.path
        self._system = system
        self._mailbox: deque[Batch] = deque()
        self._space: trio.lowlevel.ParkingLot | None = None  # senders waiting for room (created on first wait)
        self._snapshot = snapshot
        self._history: list[Message] | None = None  # loaded on the first turn that needs it
        self._current: Batch | None = None
        self._driving = False
        self._outcome: ActorStatus = "idle"
        self._stopped = False
        self._passivated = False
        self.turns_done = 0
        self._tracker: RestartTracker | None = None
        self._not_before = 0.0
        self.last_active = trio.current_time()

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
        return sum(len(batch.entries) for batch in self._mailbox)

    @property
    def restarts(self) -> int:
        """Restarts within the current restart window."""
        return 0 if self._tracker is None else self._tracker.count

    @property
    def snapshot(self) -> Snapshot:
        """The last committed snapshot (turn count, head turn id, target state)."""
        return self._snapshot

    def history(self) -> tuple[Message, ...]:
        """The conversation's committed messages in order: each turn's input, then its output."""
        return tuple(self._load_history())

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
            not self._driving
            and not self._mailbox
            and (self._space is None or not self._space.statistics().tasks_waiting)
        )

    # -- intake ----------------------------------------------------------------------------------------------

    async def accept(self, entry: Entry, policy: BusyPolicy) -> None:
        """Queue `entry` by `policy`; waits for room when the mailbox is full (backpressure)."""
        system = self._system
        if policy == "reject" and self.busy:
            raise ConversationBusy(self.key)
        if policy == "interrupt":
            self._interrupt()
        elif policy == "steer" and self._fold(entry):
            return
        while len(self._mailbox) >= system.mailbox_size:
            if self._space is None:
                self._space = trio.lowlevel.ParkingLot()
            await self._space.park()
            system.check_accepting(self)
        self._mailbox.append(Batch(entry, steer=policy == "steer" and entry.envelope.kind == "turn"))
        system.wake(self)

    def enqueue_recovered(self, entry: Entry) -> None:
        """Queue an envelope replayed from the inbox (no bound: it was accepted before the restart)."""
        self._mailbox.append(Batch(entry, steer=False))
        self._system.wake(self)

    def _fold(self, entry: Entry) -> bool:
        """`steer`: add a user turn to the queued steer batch that runs next, if there is one."""
        if not self._mailbox or entry.envelope.kind != "turn":
            return False
        tail = self._mailbox[-1]
        if (
            not tail.steer
            or tail.failures
            or tail.entries[0].envelope.parent != entry.envelope.parent
            or len(tail.entries) >= self._system.mailbox_size
        ):
            return False
        tail.entries.append(entry)
        entry.batch = tail
        return True

    def _interrupt(self) -> None:
        """`interrupt`: cut the running turn and drop everything queued; the new envelope runs next."""
        if self._current is not None and self._current.phase in ("starting", "running"):
            self._current.cancel("interrupted")
        dropped = [entry for batch in self._mailbox for entry in batch.entries]
        self._mailbox.clear()
        self._room(len(dropped))
        if dropped:
            self._system.cancel_entries_soon(dropped, "interrupted")

    def remove_queued(self, entry: Entry) -> None:
        """Take a queued entry out of its batch (and the batch out of the mailbox when it empties)."""
        batch = entry.batch
        assert batch is not None and batch.phase == "queued"
        batch.entries.remove(entry)
        entry.batch = None
        if not batch.entries:
            self._mailbox.remove(batch)
            self._room(1)

    def _room(self, n: int = 1) -> None:
        if self._space is not None and n:
            self._space.unpark(count=n)

    def wake_all_senders(self) -> None:
        if self._space is not None:
            self._space.unpark_all()

    # -- the runner --------------------------------------------------------------------------------------

    async def drive(self, scope: trio.CancelScope) -> bool:
        """Run queued batches one at a time until the mailbox is empty (called by a worker of `ActorSystem`).

        `scope` is the worker's cancel scope: cancelling it cuts the running target. After a cut the worker needs
        a fresh scope, so this returns False early, still holding the actor, and the worker drives it again.
        """
        released = True
        try:
            while self._mailbox and not self._stopped and not self._system.cut:
                if scope.cancel_called:
                    released = False
                    return False
                if self._not_before and self._not_before > trio.current_time():
                    await trio.sleep_until(self._not_before)  # backoff after a restart
                    continue
                batch = self._mailbox.popleft()
                self._room()
                await self._run(batch, scope)
            return True
        finally:
            if released:
                self._driving = False
                self._system.driver_done(self)

    async def _run(self, batch: Batch, scope: trio.CancelScope) -> None:
        self._current = batch
        batch.phase = "starting"
        try:
            await self._turn(batch, scope)
        except BaseException as exc:
            if isinstance(exc, StoreError):
                reply = failed("store_error", "the turn could not be stored")
            elif self._system.cut:
                reply = cancelled("shutdown", "the host shut down before the turn finished; it was not committed")
            else:
                log.exception("turn of %s failed inside the actor runtime", self.path)
                reply = failed("internal_error", "the actor runtime failed")
            for entry in batch.entries:
                self._system.finish(entry, reply)
            raise
        finally:
            self._current = None

    async def _turn(self, batch: Batch, scope: trio.CancelScope) -> None:
        entries = batch.entries
        if len(entries) == 1 and entries[0].written is None and entries[0].unrecorded:
            existing = _NO_RECORDS  # the common case: nothing was written for it, no record can exist
        else:
            entries = await self._accepted(batch)
            if not entries:
                return
            existing = await self._mark_in_progress(entries)
        first = entries[0].envelope
        inputs = first.input if len(entries) == 1 else tuple(m for entry in entries for m in entry.envelope.input)
        if first.parent is not None:
            context = load_chain(self._system.store, self.key, first.parent, self._system.chains)
            if context is None:
                reply = failed("parent_not_found", f"there is no turn {first.parent!r} to continue")
                await self._finish_failed(batch, existing, inputs, reply, dead_letter=None)
                return
        else:
            context = self._load_history()
        snapshot = self._snapshot
        ctx = TurnContext(
            key=self.key,
            messages=(*context, *inputs),
            state=_copy_state(snapshot.state),
            turn_id=entries[0].turn_id,
            seq=snapshot.seq + 1,
            options=first.options,
            identity=first.identity,
        )
        builder = ReplyBuilder()
        error: Exception | None = None
        if batch.cancel_reason is None:
            batch.phase, batch.scope = "running", scope
            try:
                await self._call_agent(ctx, builder, batch)
            except Exception as exc:  # the agent's failure, not ours
                error = exc
            except (trio.Cancelled, BaseExceptionGroup):
                if batch.cancel_reason is None:
                    raise  # not this turn's cut: the system is shutting down
                # cut by `cancel`/`interrupt`: the worker's scope stays cancelled, the bookkeeping is shielded
            batch.scope = None
        batch.phase = "committing"
        if batch.cancel_reason is not None:
            await self._system.cancel_entries(entries, batch.cancel_reason)
            self._outcome = "interrupted"
            return
        if error is None:
            reply = builder.reply()
            try:
                await self._commit(batch, existing, ctx, inputs, reply)
                return
            except (TypeError, ValueError) as exc:  # the agent's state or output cannot be stored
                error = exc
        await self._failed(batch, existing, inputs, error)

    @staticmethod
    async def _accepted(batch: Batch) -> list[Entry]:
        """The batch's entries whose submit-time write (inbox row, extra ops) landed; waits for it."""
        withdrawn = False
        for entry in batch.entries:
            if entry.written is not None:
                await entry.written.wait()
                withdrawn = withdrawn or entry.withdrawn
        if withdrawn:
            batch.entries = [entry for entry in batch.entries if not entry.withdrawn]
        return batch.entries

    def _reread(self, existing: dict[str, ResponseRecord]) -> dict[str, ResponseRecord]:
        """The records as they stand now: a channel may have changed one (e.g. hidden it) while the turn ran."""
        if not existing:
            return existing
        store = self._system.store
        return {turn_id: store.get("responses", turn_id) or record for turn_id, record in existing.items()}

    async def _mark_in_progress(self, entries: list[Entry]) -> dict[str, ResponseRecord]:
        """The existing response records of the entries; "queued" ones are committed as "in_progress" first."""
        existing: dict[str, ResponseRecord] = {}
        started: list[Op] = []
        store = self._system.store
        for entry in entries:
            if entry.unrecorded:
                continue
            record: ResponseRecord | None = store.get("responses", entry.turn_id)
            if record is not None:
                if record.status == "queued":
                    record = attrs.evolve(record, status="in_progress")
                    started.append(Put("responses", entry.turn_id, record))
                existing[entry.turn_id] = record
        if started:
            await store.commit(started)
        return existing

    async def _call_agent(self, ctx: TurnContext, builder: ReplyBuilder, batch: Batch) -> None:
        updates = self._system.agent.run(ctx)
        try:
            async for update in updates:
                builder.add(update)
                for entry in batch.entries:
                    for handle in entry.handles:
                        if handle.streaming and handle._push(update):
                            batch.streamed = True
        finally:
            aclose = getattr(updates, "aclose", None)
            if aclose is not None:  # an async generator: run its cleanup now, not at garbage collection
                await aclose()

    # -- outcomes ----------------------------------------------------------------------------------------

    async def _commit(
        self,
        batch: Batch,
        existing: dict[str, ResponseRecord],
        ctx: TurnContext,
        inputs: tuple[Message, ...],
        reply: Reply,
    ) -> None:
        """Commit the turn in one store transaction, then answer every handle."""
        system = self._system
        now = time.time()
        existing = self._reread(existing)
        first = batch.entries[0]
        seq, output, parent = ctx.seq, reply.messages, first.envelope.parent
        snapshot = Snapshot(seq=seq, head=ctx.turn_id, state=ctx.state, updated_at=now)
        ops: list[Op] = [
            Put("snapshots", self.path, snapshot),
            Put("turns", turn_key(self.path, seq), TurnRecord(
                seq=seq, turn_id=ctx.turn_id, input=inputs, output=output, parent=parent, usage=reply.usage,
                created_at=first.accepted_at, completed_at=now,
            )),
        ]
        for entry in batch.entries:
            record = response_record(
                self.key, entry, existing.get(entry.turn_id), "completed", inputs, now, output, seq, reply.usage
            )
            ops.append(Put("responses", entry.turn_id, record))
            ops.extend(self._settle(entry, seq, reply, now))
        await system.store.commit(ops)
        system.announce_outbox(ops)
        for entry in batch.entries:
            system.chains.remember(entry.turn_id, (self.key.tenant, parent, (*inputs, *output)))
        self._snapshot = snapshot
        if self._history is not None:
            self._history.extend(inputs)
            self._history.extend(output)
        self.turns_done += 1
        self._outcome = "idle"
        system.counters.turns += 1
        for entry in batch.entries:
            system.finish(entry, reply)

    async def _failed(
        self, batch: Batch, existing: dict[str, ResponseRecord], inputs: tuple[Message, ...], exc: Exception
    ) -> None:
        """Supervision: restart from the last committed snapshot, retry once, dead-letter on the second failure."""
        system = self._system
        message = error_text(exc)
        log.warning("agent failed on turn %s of %s: %s", batch.entries[0].turn_id, self.path, message)
        system.counters.failures += 1
        now = trio.current_time()
        if self._tracker is None:
            self._tracker = RestartTracker(system.restart_policy)
        delay = self._tracker.record(now)
        system.counters.restarts += 1
        self._restart()
        batch.failures += 1
        if batch.failures >= 2:
            await self._finish_failed(batch, existing, inputs, failed("agent_error", message), dead_letter=message)
        else:
            for entry in batch.entries:  # the retry must not append to what a stream already showed
                for handle in entry.handles:
                    if batch.streamed:
                        handle._drop_stream()
            batch.phase, batch.streamed = "queued", False
            self._mailbox.appendleft(batch)
        if delay is None:
            self._stop()
        else:
            self._not_before = now + delay

    async def _finish_failed(
        self,
        batch: Batch,
        existing: dict[str, ResponseRecord],
        inputs: tuple[Message, ...],
        reply: Reply,
        *,
        dead_letter: str | None,
    ) -> None:
        """Answer a turn that will not run again: failed response records, inbox ack, dedup key, dead letters."""
        system = self._system
        now = time.time()
        existing = self._reread(existing)
        ops: list[Op] = []
        for entry in batch.entries:
            ops.append(Put("responses", entry.turn_id, response_record(
                self.key, entry, existing.get(entry.turn_id), "failed", inputs, now, error=reply.error,
            )))
            ops.extend(self._settle(entry, 0, reply, now))
            if dead_letter is not None:
                ops.append(Put("dead_letters", dead_letter_key(self.path, entry.turn_id),
                               DeadLetter(envelope=entry.stored_envelope(), error=dead_letter, failed_at=now)))
        await system.store.commit(ops)
        system.announce_outbox(ops)
        if dead_letter is not None:
            system.counters.dead_letters += len(batch.entries)
        self._outcome = "error"
        for entry in batch.entries:
            system.finish(entry, reply)

    def _settle(self, entry: Entry, seq: int, reply: Reply, now: float) -> list[Op]:
        """Inbox ack, dedup key and reply push of an entry whose turn ended for good."""
        target = entry.envelope.reply_to
        if entry.inbox_key is None and entry.envelope.idempotency_key is None and target is None:
            return _NO_OPS
        ops = settle_ops(self.path, entry, seq)
        if target is not None:
            payload = {"turn_id": entry.turn_id, "reply": converter.unstructure(reply)}
            ops.append(Put("outbox", outbox_key(self.path, entry.stamp), OutboxRecord(
                channel=target.channel, address=dict(target.address), payload=payload, due_at=now,
            )))
        return ops

    # -- lifecycle -----------------------------------------------------------------------------------------

    def _load_history(self) -> list[Message]:
        if self._history is None:
            self._history = load_history(self._system.store, self.path, self._snapshot.seq)
        return self._history

    def _restart(self) -> None:
        """Forget everything in memory and start again from the last committed snapshot."""
        snapshot = self._system.store.get("snapshots", self.path)
        self._snapshot = snapshot if snapshot is not None else Snapshot()
        self._history = None

    def _stop(self) -> None:
        """Too many restarts: stop taking envelopes until the cool-down ends; queued ones get an error."""
        self._stopped = True
        self._outcome = "error"
        queued = [entry for batch in self._mailbox for entry in batch.entries]
        self._mailbox.clear()
        self._system.actor_stopped(self, queued)
        self.wake_all_senders()

    def release(self) -> None:
        """Passivation: drop the conversation's state from memory (the store has all of it)."""
        self._passivated = True
        self._history = None
        self._tracker = None

    @property
    def stopped(self) -> bool:
        return self._stopped


def response_record(
    key: ConversationKey,
    entry: Entry,
    existing: ResponseRecord | None,
    status: Literal["completed", "failed", "cancelled"],
    inputs: tuple[Message, ...],
    now: float,
    output: tuple[Message, ...] = (),
    seq: int | None = None,
    usage: UsagePart | None = None,
    error: ErrorInfo | None = None,
) -> ResponseRecord:
    """The response record of an entry's ended turn; an existing record keeps its created_at and data."""
    if existing is not None:
        return attrs.evolve(
            existing, status=status, input=inputs, output=output, seq=seq, usage=usage, error=error, completed_at=now
        )
    envelope = entry.envelope
    options = envelope.options
    return ResponseRecord(
        id=entry.turn_id, tenant=key.tenant, conversation=key.path, status=status, input=inputs, output=output,
        parent=envelope.parent, seq=seq, background=bool(options.get("background", False)),
        stored=bool(options.get("store", True)), usage=usage, error=error, created_at=entry.accepted_at,
        completed_at=now, data=dict(options),
    )


def settle_ops(path: str, entry: Entry, seq: int) -> list[Op]:
    """Delete the entry's inbox row and mark its idempotency key done (both only when it has them)."""
    ops: list[Op] = []
    if entry.inbox_key is not None:
        ops.append(Delete("inbox", entry.inbox_key))
    idempotency_key = entry.envelope.idempotency_key
    if idempotency_key is not None:
        ops.append(Put("dedup", dedup_key(path, idempotency_key), DedupRecord(turn_id=entry.turn_id, seq=seq)))
    return ops


def inbox_row(entry: Entry) -> InboxRecord:
    return InboxRecord(envelope=entry.stored_envelope(), received_at=entry.accepted_at)
