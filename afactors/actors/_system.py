"""`ActorSystem`: the registry of conversation actors, intake, cancellation, passivation, recovery, shutdown.

It implements `ActorOwner` for its actors (the only way they reach it) and writes through `ledger` only.
"""

from __future__ import annotations

import contextlib
import gc
import logging
import random
import time
from collections import Counter, OrderedDict, deque
from collections.abc import AsyncIterator, Callable, Iterable, Sequence
from contextlib import asynccontextmanager
from typing import Any

import attrs
import trio

from afactors._tracing import Tracing
from afactors.actors import ledger
from afactors.actors._actor import ActorInfo, ConversationActor
from afactors.actors._errors import ActorUnavailable, NotOwner, SystemClosed
from afactors.actors._handle import TurnHandle
from afactors.actors._history import (
    ChainCache,
    History,
    Link,
    Summarizer,
    TokenCounter,
    estimate_tokens,
    load_chain,
    load_history,
)
from afactors.actors._keys import (
    dedup_key,
    due_of,
    new_turn_id,
    record_key,
    records_prefix,
    stamp_of,
    timer_key,
    turn_key,
)
from afactors.actors._owner import Counters
from afactors.actors._ownership import Ownership
from afactors.actors._phases import Entry, Phase
from afactors.actors._replies import cancelled, failed
from afactors.actors._supervision import RestartPolicy
from afactors.model import (
    BUSY_POLICIES,
    TIMER_OPTION,
    Agent,
    BusyPolicy,
    ConversationKey,
    Envelope,
    Message,
    Reply,
    Timer,
    TurnContext,
    Update,
    converter,
)
from afactors.store import (
    DedupRecord,
    Expect,
    Generic,
    InboxRecord,
    Lease,
    Op,
    Put,
    ResponseRecord,
    Snapshot,
    Store,
    StoreDamaged,
    StoreFull,
    TimerRecord,
    TurnRecord,
)

log = logging.getLogger("afactors.actors")

_EVICTION_SCAN = 64
"""How many least-recently-used actors `max_active` eviction looks at for an idle one."""
_SCAN_PAGE = 500
"""How many inbox rows recovery reads at a time after a start (the host serves in between)."""

GC_GEN0_THRESHOLD = 50_000
"""Young-generation threshold while a system runs (`tune_gc`): every turn allocates a few dozen short-lived
objects, and at the default (700) the cyclic collector takes a fifth of the CPU of a busy host."""

MAX_IDLE_WORKERS = 256
"""Worker tasks kept parked for the next busy actor (each costs a few KB); more than that end when idle."""

TRIM_TO = 7 / 8
"""Past a history budget, cached histories are dropped until this share of it is left, so that a trim (a walk over
the live actors, least recently active first) comes once per eighth of the budget rather than on every turn."""

_CANCEL_MESSAGES = {
    "cancelled": "the turn was cancelled",
    "interrupted": "the turn was interrupted by a newer message",
    "shutdown": "the host shut down before the turn started",
}


def _at_least_one(_: object, attribute: attrs.Attribute[int], value: int) -> None:
    if value < 1:
        raise ValueError(f"{attribute.name} must be at least 1")


def _busy_policy(_: object, __: object, value: str) -> None:
    if value not in BUSY_POLICIES:
        raise ValueError(f"busy_policy must be one of {', '.join(sorted(BUSY_POLICIES))}, not {value!r}")


@attrs.frozen
class ActorConfig:
    """How an `ActorSystem` runs its actors.

    `mailbox_size`: envelopes queued per conversation before `submit` waits (backpressure). `idle_timeout`:
    seconds an idle actor stays in memory. `max_active`: live actors before the least recently used idle one is
    passivated. `recovery_limit`: conversations recovered from the inbox at a time after a restart.
    `busy_policy`: what an envelope for a busy conversation does when it names no policy. Supervision: a failed
    turn is retried once after a jittered backoff in `restart_backoff`; more than `max_restarts` restarts within
    `restart_window` seconds stop the conversation for `cooldown` seconds. `drain_timeout`: seconds running turns
    get at shutdown. `stream_buffer`: updates a streaming handle may fall behind before its stream is dropped.
    `history_turns`: the target sees at most this many earlier turns of its conversation (or of a response
    chain), the most recent ones; None: all of them. `history_tokens`: and at most this many tokens of them (the
    newest turn always), counted by `count_tokens` (None: the agent's `count_tokens(messages)` method if it has
    one, else `estimate_tokens`). `summarize`: a sync or async `Summarizer` called when turns leave that window;
    its message stands in for them, is committed with the turn (the snapshot's `summary`) and is redone only
    after the window has filled again (it summarises down to half the window). The store keeps every turn either
    way (until retention).
    `tune_gc`: raise the cyclic collector's young-generation threshold to `GC_GEN0_THRESHOLD` while the system
    runs (a process-wide setting, restored on exit). Memory: live actors' cached histories are kept within
    `history_budget` bytes in all and `tenant_budget` bytes per tenant (estimated); past either, the least
    recently active actors' histories are dropped (read from the store on their next turn) until `TRIM_TO` of it is
    left. The chain-link cache gets a quarter of `history_budget`.
    """

    mailbox_size: int = attrs.field(default=32, validator=_at_least_one)
    idle_timeout: float = 600.0
    max_active: int = attrs.field(default=10_000, validator=_at_least_one)
    recovery_limit: int = attrs.field(default=50, validator=_at_least_one)
    busy_policy: BusyPolicy = attrs.field(default="enqueue", validator=_busy_policy)
    restart_backoff: tuple[float, float] = (0.5, 30.0)
    max_restarts: int = 5
    restart_window: float = 30.0
    cooldown: float = 60.0
    drain_timeout: float = 10.0
    stream_buffer: int = attrs.field(default=1024, validator=_at_least_one)
    rng: random.Random | None = attrs.field(default=None, eq=False, repr=False)
    tune_gc: bool = True
    history_turns: int | None = attrs.field(default=None, validator=attrs.validators.optional(_at_least_one))
    history_tokens: int | None = attrs.field(default=None, validator=attrs.validators.optional(_at_least_one))
    summarize: Summarizer | None = attrs.field(default=None, eq=False, repr=False)
    count_tokens: TokenCounter | None = attrs.field(default=None, eq=False, repr=False)
    history_budget: int = attrs.field(default=256 << 20, validator=_at_least_one)
    tenant_budget: int = attrs.field(default=64 << 20, validator=_at_least_one)

    def restart_policy(self) -> RestartPolicy:
        low, high = self.restart_backoff
        return RestartPolicy(
            backoff_min=low, backoff_max=high, max_restarts=self.max_restarts, window=self.restart_window,
            cooldown=self.cooldown, rng=self.rng or random.Random(),
        )  # fmt: skip


@attrs.frozen
class ActorStats:
    """A snapshot of an actor system: current gauges (`active`, `busy`, `recovering`; `history_bytes` and
    `chain_bytes`, the estimated memory of live actors' cached histories and of the chain-link cache) and counts
    since it opened."""

    active: int = 0
    busy: int = 0
    activations: int = 0
    passivations: int = 0
    turns: int = 0
    failures: int = 0
    restarts: int = 0
    dead_letters: int = 0
    cancelled: int = 0
    stopped: int = 0
    recovered: int = 0
    recovering: int = 0
    quarantined: int = 0
    history_bytes: int = 0
    chain_bytes: int = 0
    timers_fired: int = 0
    fenced_commits: int = 0
    taken_over: int = 0


@attrs.frozen
class TurnInfo:
    """A turn the system holds (queued, running or committing). `accepted_at` is wall-clock time."""

    turn_id: str
    key: ConversationKey
    phase: str
    accepted_at: float
    background: bool


@attrs.frozen
class EndedTurn:
    """A turn that just ended, as `ActorSystem.on_turn_ended` sees it; times are wall-clock seconds."""

    turn_id: str
    envelope: Envelope
    status: str
    accepted_at: float
    ended_at: float

    @property
    def duration(self) -> float:
        """Seconds from acceptance (queueing included) to the end."""
        return max(0.0, self.ended_at - self.accepted_at)


class ActorSystem:
    """Every live conversation actor of one store and one agent. Open with `ActorSystem.open(store, agent)`.

    Channels hand envelopes to `submit`; the system activates the conversation's actor (from its snapshot in
    the store), queues the envelope by its busy policy, and returns a `TurnHandle`.
    """

    def __init__(
        self, store: Store, agent: Agent, nursery: trio.Nursery, config: ActorConfig,
        ownership: Ownership | None = None,
    ) -> None:  # fmt: skip
        self.store = store
        self.ownership = ownership
        self.agent = agent
        self.config = config
        self.summarize = config.summarize
        self._count: TokenCounter = config.count_tokens or getattr(agent, "count_tokens", None) or estimate_tokens
        self.mailbox_size = config.mailbox_size
        self.restart_policy = config.restart_policy()
        self.counters: Counters = Counter()
        self.on_outbox: Callable[[str], None] | None = None
        self.on_turn_ended: Callable[[EndedTurn], None] | None = None
        self.on_timer: Callable[[float], None] | None = None
        self.route_timer: Callable[[Envelope], Envelope] | None = None
        """The host's resolution of a firing timer's response target into the envelope's routing (must not block)."""
        self.tracing = Tracing()  # turn spans: off unless the host sets an `OtelTracing`
        self.on_recovered: Callable[[str], None] | None = None
        self._cut = False  # shutdown deadline passed: running turns are being cancelled
        self._chains = ChainCache(max_bytes=config.history_budget // 4)
        self._history_bytes = 0  # estimated bytes of every live actor's cached history
        self._tenant_bytes: dict[str, int] = {}
        self._nursery = nursery
        self._recovery_limiter = trio.CapacityLimiter(config.recovery_limit)
        self._live: OrderedDict[str, ConversationActor] = OrderedDict()  # least recently active first
        self._stopped: dict[str, float] = {}  # path -> trio time the cool-down ends
        self._recovering: dict[str, list[tuple[str, InboxRecord]]] = {}  # inbox rows of actors not active yet
        self._replaying: set[str] = set()  # cluster: paths `take_over` is replaying (until `_recover_one` ends)
        self._pushing: dict[str, int] = {}  # cluster: pushes in flight per conversation (`push`)
        # (a cluster node reads no inbox at startup: it recovers each conversation as it takes it, `take_over`)
        self._scanning = ownership is None  # the inbox left by an earlier run is still being read (`_recover`)
        self._unread = store.count("inbox") if self._scanning else 0  # while scanning: about how many rows are unread
        self._loaded: set[str] = set()  # while scanning: paths whose rows are all read already (the scan skips them)
        self._joiners: dict[str, list[TurnHandle]] = {}  # turn id of a recovering row -> handles waiting for it
        self._turns: dict[str, Entry] = {}  # turn id -> queued or running entry
        self._keyed: dict[str, Entry] = {}  # dedup key -> queued or running entry
        self._stamp = 0
        self._busy = 0  # actors being driven or waiting for a worker
        self._ready: deque[ConversationActor] = deque()  # actors with work and no worker yet
        self._idle_workers = 0
        self._worker_lot = trio.lowlevel.ParkingLot()
        self._closing = False
        self._drained: trio.Event | None = None
        self._worker_scopes: set[trio.CancelScope] = set()  # one per worker, cancelled by `stop_now`

    @classmethod
    @asynccontextmanager
    async def open(
        cls,
        store: Store,
        agent: Agent,
        config: ActorConfig | None = None,
        *,
        on_outbox: Callable[[str], None] | None = None,
        ownership: Ownership | None = None,
        **settings: Any,
    ) -> AsyncIterator[ActorSystem]:
        """Run an actor system until the block exits. `settings` are `ActorConfig` fields overriding `config`.

        On entry, conversations with inbox rows (accepted before a crash or shutdown) are recovered in the
        background, at most `recovery_limit` at a time. On exit: intake stops (`submit` raises `SystemClosed`),
        queued and running turns get `drain_timeout` seconds to finish, the rest are cancelled uncommitted
        (inbox rows stay and replay on the next start). `on_outbox(key)` (also settable later as
        `system.on_outbox`) is called with the key of every outbox row a turn commits (envelopes with a
        `reply_to`), right after the commit; it must not block. `system.on_timer(due_at)` likewise hears of every
        timer a turn schedules (the host's timer scheduler wakes up if it is due sooner than what it waits for).
        `system.on_recovered(turn_id)` hears of every inbox row replayed, when its conversation activates (before
        the turn starts: a `join` then sees all its updates). The inbox is read after entry, page by page, not
        before: a conversation activated meanwhile reads its own rows first, so its order holds.
        Memory: live actors' cached histories are kept within `history_budget` bytes in all and `tenant_budget`
        bytes per tenant (see `ActorConfig`). `ownership`: a cluster node's leases (`Ownership`): every commit for a
        conversation is fenced by its lease, and recovery is per conversation as the node takes it (`take_over`)
        instead of everything at startup.
        """
        config = attrs.evolve(config or ActorConfig(), **settings)
        system: ActorSystem | None = None
        thresholds = gc.get_threshold()
        if config.tune_gc:
            gc.set_threshold(max(thresholds[0], GC_GEN0_THRESHOLD), *thresholds[1:])
        try:
            async with trio.open_nursery() as nursery:
                system = cls(store, agent, nursery, config, ownership)
                system.on_outbox = on_outbox
                nursery.start_soon(system._reaper)
                if ownership is None:  # a cluster node recovers per conversation, as it takes each (`take_over`)
                    nursery.start_soon(system._recover)
                try:
                    yield system
                finally:
                    with trio.CancelScope(shield=True):
                        await system.drain(config.drain_timeout)
                    nursery.cancel_scope.cancel()
        finally:
            if config.tune_gc:
                gc.set_threshold(*thresholds)
            if system is not None:
                system._abandon_queued()

    # -- public API ------------------------------------------------------------------------------------------

    async def submit(self, envelope: Envelope, *, stream: bool = False, background: bool = False) -> TurnHandle:
        """Accept `envelope` by its busy policy (or the system's) and return its turn's handle.

        With an `idempotency_key` already answered, the handle is already finished with the stored reply; one
        queued or running gets a handle on that same turn. Otherwise a keyed envelope is written to the inbox
        before this returns; `background` also writes its "queued" response record in that commit.
        Raises `ConversationBusy`, `ActorUnavailable`, `SystemClosed`, or `StoreFull` while the disk is full
        (nothing is accepted that could not be stored).

        Not a checkpoint when the conversation has room and nothing must be written first (the fast path): the
        envelope is queued when this returns. Cancelled while it waits for room, nothing is left behind; cancelled
        while its accept commit is in flight, the commit still settles (shielded) and the turn runs.
        """
        self._check_open()
        if self.store.full:
            raise StoreFull("the disk holding the state is full: no new turns are accepted until space is freed")
        policy = envelope.busy_policy or self.config.busy_policy
        if policy not in BUSY_POLICIES:
            raise ValueError(f"busy policy must be one of {', '.join(sorted(BUSY_POLICIES))}, not {policy!r}")
        turn_id = envelope.turn_id or new_turn_id()
        path = envelope.key.path
        keyed = None if envelope.idempotency_key is None else dedup_key(path, envelope.idempotency_key)
        if keyed is not None:
            done: DedupRecord | None = self.store.get("dedup", keyed)
            if done is not None:
                return TurnHandle.finished(done.turn_id, self._stored_reply(path, done), stream=stream)
        if self.ownership is not None:  # (a no-op on a single host: not even a coroutine on every submit)
            await self.own(envelope.key)
        actor = self.get(envelope.key)  # activation replays inbox rows first, so duplicates show up below
        if keyed is not None and (running := self._keyed.get(keyed)) is not None:
            handle = TurnHandle(running.turn_id, stream=stream, buffer=self.config.stream_buffer)
            running.handles.append(handle)
            return handle
        handle = TurnHandle(turn_id, stream=stream, buffer=self.config.stream_buffer)
        entry = Entry(envelope, handle, time.time())
        entry.background = background
        entry.recorded = envelope.turn_id is not None or background
        if keyed is not None:
            self._keyed[keyed] = entry
        try:
            await actor.accept(entry, policy)
        except BaseException:
            if keyed is not None:
                self._keyed.pop(keyed, None)
            raise
        entry.stamp = self._next_stamp()
        self._turns[turn_id] = entry  # (no LRU touch here: an actor with work is never passivated)
        if keyed is not None or background:
            await self._write_accepted(entry, keyed is not None)
        return handle

    def join(self, turn_id: str, *, stream: bool = False) -> TurnHandle | None:
        """A new handle on a queued, running or not yet recovered turn; None when the system does not hold it.

        The handle resolves with the turn's reply; with `stream`, it gets the updates from now on.
        """
        return self.join_many([turn_id], stream=stream).get(turn_id)

    def join_many(self, turn_ids: Iterable[str], *, stream: bool = False) -> dict[str, TurnHandle]:
        """`join` for many turns at once, by turn id (only those the system holds), with one pass over the rows not
        yet recovered however many turns are asked for (a restart joins every recovered background turn)."""
        handles: dict[str, TurnHandle] = {}
        recovering: set[str] | None = None
        for turn_id in turn_ids:
            handle = TurnHandle(turn_id, stream=stream, buffer=self.config.stream_buffer)
            entry = self._turns.get(turn_id)
            if entry is not None:
                entry.handles.append(handle)
            elif self._closing:
                continue  # rows not recovered by now wait for the next start
            else:
                if self._scanning and self._load_turn(turn_id):
                    recovering = None  # read more rows
                if recovering is None:
                    recovering = set(self.recovering_turns())
                if turn_id not in recovering:
                    continue
                self._joiners.setdefault(turn_id, []).append(handle)
            handles[turn_id] = handle
        return handles

    def pending(self, turn_id: str) -> ConversationKey | None:
        """The conversation of a queued, running or not yet recovered turn; None when the system holds no such
        turn (it ended, or never was)."""
        entry = self._turns.get(turn_id)
        if entry is not None:
            return entry.envelope.key
        rows = (row for rows in self._recovering.values() for _, row in rows)
        return next((row.envelope.key for row in rows if row.envelope.turn_id == turn_id), None)

    def recovering_turns(self) -> list[str]:
        """The turn ids of inbox rows accepted before a restart (or a stop) whose conversation is not active yet
        (while the inbox is still being read after a start: of the rows read so far)."""
        return [row.envelope.turn_id for rows in self._recovering.values() for _, row in rows if row.envelope.turn_id]

    async def cancel(self, turn_id: str) -> bool:
        """Cancel a queued (it never runs) or running (cut, nothing committed) turn; False if unknown or ending.

        Its response record is marked "cancelled" and its inbox row deleted; returns once that is committed.
        """
        entry = self._turns.get(turn_id)
        if entry is None and self._scanning:
            self._load_turn(turn_id)
            entry = self._turns.get(turn_id)
        if entry is None:
            return await self._cancel_recovering(turn_id)
        turn = entry.turn
        if turn is None:
            return False
        if turn.phase is Phase.QUEUED:
            self._live[entry.envelope.key.path].remove_queued(entry)
            await self.cancel_entries([entry], "cancelled")
            return True
        if turn.phase in (Phase.STARTING, Phase.RUNNING) and turn.cancel("cancelled"):
            await entry.handles[0].reply()
            return True
        return False

    async def fire(self, row_key: str, record: TimerRecord, now: float) -> bool:
        """Fire a due timer: one commit turns it into an inbox row (a schedule also moves to its next occurrence),
        then its turn of kind "timer" is queued like a replayed inbox row (activating a passive conversation).

        The commit holds only if the timer row is still `record` (not cancelled or replaced meanwhile); returns
        whether it fired. The turn's reply goes to the timer's `reply_to`, else the conversation's last known
        reply address, and wherever its `response_target` resolves to now (`route_timer`; the routing is kept in
        the inbox row, so a replay goes to the same places). While the system is closing the row stays in the
        inbox and runs on the next start.
        """
        key = ConversationKey(record.tenant, record.conversation)
        await self.own(key)
        timer = record.timer
        actor = None
        if not self._closing:
            with contextlib.suppress(ActorUnavailable):  # cooling down: the turn waits for the reactivation
                actor = self.get(key)
        snapshot = actor.snapshot if actor is not None else self.snapshot(key.path)
        envelope = Envelope(
            key=key, kind="timer", turn_id=new_turn_id("timer_"), options={TIMER_OPTION: converter.unstructure(timer)},
            reply_to=timer.reply_to or snapshot.reply_to, identity=timer.sender, response_target=timer.response_target,
        )  # fmt: skip
        if self.route_timer is not None:
            envelope = self.route_timer(envelope)
        entry = Entry(envelope, TurnHandle(envelope.turn_id or ""), now, stamp=self._next_stamp())
        unchanged = Expect("timers", row_key, record)
        if not await self._commit_owned(key, ledger.fired(entry, row_key, record, now), [unchanged]):
            return False
        self.counters["timers_fired"] += 1
        if actor is not None and self._live.get(key.path) is actor and not self._closing:
            self._turns[entry.turn_id] = entry
            actor.enqueue_recovered(entry)
            return True
        # passivated meanwhile, cooling down or closing: the row replays when the conversation is next activated
        if self._scanning:
            self._load(key.path)  # reads the row just committed with the others
        else:
            self._recovering.setdefault(key.path, []).append((entry.inbox_key or "", ledger.inbox_row(entry)))
        if not self._closing:
            with contextlib.suppress(ActorUnavailable):
                self.get(key)
        return True

    async def push(self, key: ConversationKey, ops: Sequence[Op], expect: Sequence[Expect] = ()) -> bool:
        """Commit a push into `key`'s conversation from outside a turn (its outbox rows, delivered in order with its
        replies; or a dead letter of it given another go); False when one of `expect` did not hold (nothing was
        written). On a cluster node only as the conversation's owner: the lease is taken if it is free (`NotOwner`
        when a live node holds it) and fences the commit; taken for the push alone, it is given back once its
        deliveries end (`release_idle`)."""
        path = key.path
        self._pushing[path] = self._pushing.get(path, 0) + 1
        try:
            await self.own(key)
            return await self.commit(ops, key, expect)
        finally:
            if (left := self._pushing.pop(path) - 1) > 0:
                self._pushing[path] = left
            self.release_idle(path)

    def release_idle(self, path: str) -> None:
        """Cluster: give back the lease of a conversation with no live actor and no push in flight here (its
        deliveries ended; the lease's `keep` holds it while they run)."""
        if self.ownership is not None and path not in self._live and path not in self._pushing:
            self.ownership.release(path)

    async def hide(self, record: ResponseRecord) -> None:
        """Withdraw a stored turn's record from retrieval; its conversation history is kept.

        On condition that the record is as read: if its turn rewrote it meanwhile (on any node of a cluster), the
        record as it now stands is hidden, so a hide is never undone by a write it raced with."""
        current: ResponseRecord | None = record
        while current is not None and current.stored:
            if await self.store.commit(ledger.hidden(current), expect=[Expect("responses", current.id, current)]):
                return
            current = self.record(record.id)

    def get(self, key: ConversationKey) -> ConversationActor:
        """The live actor of `key`, activating it from the store if needed. Raises `ActorUnavailable`."""
        self._check_open()
        actor = self._live.get(key.path)
        if actor is not None:
            return actor
        until = self._stopped.get(key.path)
        if until is not None:
            left = until - trio.current_time()
            if left > 0:
                raise ActorUnavailable(key, left)
            del self._stopped[key.path]
        try:
            return self._activate(key)
        except StoreDamaged as exc:
            self.quarantine(key.path, str(exc))
            reason = "because its stored records are damaged"
            raise ActorUnavailable(key, self.restart_policy.cooldown, reason) from None

    def quarantine(self, path: str, reason: str) -> None:
        """A conversation whose records no longer read: refuse it for the cool-down; other conversations go on."""
        log.error("conversation %s quarantined: %s", path, reason)
        self._stopped[path] = trio.current_time() + self.restart_policy.cooldown
        self.counters["quarantined"] += 1

    def passivate(self, key: ConversationKey) -> bool:
        """Passivate the actor of `key` now if it is live and idle."""
        actor = self._live.get(key.path)
        if actor is None or not actor.idle:
            return False
        self._passivate(actor)
        return True

    def actors(self) -> list[ActorInfo]:
        """What every live actor is doing, least recently active first."""
        return [actor.info() for actor in self._live.values()]

    def turns_in_flight(self) -> list[TurnInfo]:
        """Every turn accepted and not ended yet, in acceptance order (`phase` "queued" until it starts)."""
        return [
            TurnInfo(
                entry.turn_id,
                entry.envelope.key,
                "queued" if entry.turn is None else entry.turn.phase.value,
                entry.accepted_at,
                entry.background,
            )
            for entry in self._turns.values()
        ]

    def statistics(self) -> ActorStats:
        """A frozen snapshot: counts since the system opened, and the current gauges."""
        recovering = sum(len(rows) for rows in self._recovering.values()) + self._unread
        return ActorStats(
            active=len(self._live), busy=self._busy, recovering=recovering, history_bytes=self._history_bytes,
            chain_bytes=self._chains.bytes, **self.counters,
        )  # fmt: skip

    @property
    def stats(self) -> ActorStats:
        """`statistics()`."""
        return self.statistics()

    # -- ActorOwner: what actors use -------------------------------------------------------------------------

    @property
    def cut(self) -> bool:
        return self._cut

    def run_target(self, ctx: TurnContext) -> AsyncIterator[Update]:
        return self.agent.run(ctx)

    def snapshot(self, path: str) -> Snapshot:
        snapshot: Snapshot | None = self.store.get("snapshots", path)
        return snapshot if snapshot is not None else Snapshot()

    def history(self, path: str, seq: int, after: int = 0) -> History:
        config = self.config
        return load_history(
            self.store, path, seq, max_turns=config.history_turns, max_tokens=config.history_tokens,
            count=self._count, after=after,
        )  # fmt: skip

    def chain(self, key: ConversationKey, parent: str) -> list[Message] | None:
        config = self.config
        return load_chain(
            self.store, key, parent, self._chains, config.history_turns, config.history_tokens, self._count
        )

    def chained(self, turn_id: str, link: Link, size: int) -> None:
        self._chains.remember(turn_id, link, size)

    def turn(self, path: str, seq: int) -> TurnRecord | None:
        record: TurnRecord | None = self.store.get("turns", turn_key(path, seq))
        return record

    def record(self, turn_id: str) -> ResponseRecord | None:
        record: ResponseRecord | None = self.store.get("responses", turn_id)
        return record

    def timers(self, key: ConversationKey) -> list[Timer]:
        rows: list[tuple[str, TimerRecord]] = self.store.scan("timers", timer_key(key.path, ""))
        return [
            row.timer
            for _, row in rows
            if row.pending and row.tenant == key.tenant and row.conversation == key.conversation
        ]

    def target_record(self, path: str, name: str) -> dict[str, Any] | None:
        record: Generic | None = self.store.get("checkpoints", record_key(path, name))
        return None if record is None else record.data

    def target_records(self, path: str) -> list[tuple[str, dict[str, Any]]]:
        prefix = records_prefix(path)
        return [(key[len(prefix) :], record.data) for key, record in self.store.scan("checkpoints", prefix)]

    async def commit(
        self, ops: Sequence[Op], key: ConversationKey | None = None, expect: Sequence[Expect] = ()
    ) -> bool:
        if self.ownership is None and not expect:
            await self.store.commit(ops)  # (one coroutine level less on every turn of a single host)
        elif not await self._commit_owned(key, ops, expect):
            return False
        for op in ops:
            if op.kind == "outbox" and self.on_outbox is not None:
                self.on_outbox(op.key)
            elif op.kind == "timer_due" and isinstance(op, Put) and self.on_timer is not None:
                self.on_timer(due_of(op.key))
        return True

    def admit(self, actor: ConversationActor) -> None:
        self._check_open()
        if actor.stopped:
            raise ActorUnavailable(actor.key, self.restart_policy.cooldown)

    def schedule(self, actor: ConversationActor) -> None:
        """Hand an actor with new work to a worker task (a parked one, or a new one) unless one drives it."""
        if actor.driving or self._cut:
            return
        actor.driving = True
        self._busy += 1
        self._ready.append(actor)
        if self._idle_workers:
            self._idle_workers -= 1
            self._worker_lot.unpark()
        else:
            self._nursery.start_soon(self._worker)

    def history_changed(self, actor: ConversationActor, delta: int) -> None:
        """An actor's cached history grew or shrank by `delta` bytes: keep the budgets."""
        tenant = actor.key.tenant
        self._history_bytes += delta
        self._tenant_bytes[tenant] = self._tenant_bytes.get(tenant, 0) + delta
        config = self.config
        if delta > 0 and (
            self._history_bytes > config.history_budget or self._tenant_bytes[tenant] > config.tenant_budget
        ):
            self._trim_histories(tenant)

    def _trim_histories(self, tenant: str) -> None:
        """Drop cached histories, least recently active first: the tenant's own while it is over its budget,
        then anyone's while the total is over, each down to `TRIM_TO` of the budget it was past."""
        config = self.config
        tenant_left = config.tenant_budget * (TRIM_TO if self._tenant_bytes[tenant] > config.tenant_budget else 1)
        total_left = config.history_budget * (TRIM_TO if self._history_bytes > config.history_budget else 1)
        for actor in self._live.values():  # (dropping a history leaves `_live` as it is)
            over_tenant = self._tenant_bytes[tenant] > tenant_left
            if not over_tenant and self._history_bytes <= total_left:
                return
            if actor.history_bytes and (actor.key.tenant == tenant or not over_tenant):
                actor.drop_history()

    def released(self, actor: ConversationActor) -> None:
        actor.driving = False
        self._busy -= 1
        self._touch(actor)
        if actor.snapshot.seq == 0 and actor.status == "idle" and actor.idle and self._live.get(actor.path) is actor:
            self._passivate(actor)  # only transient turns ran (or all was cleared): nothing worth keeping
        if self._busy == 0 and self._drained is not None:
            self._drained.set()

    def answered(self, entry: Entry, reply: Reply) -> None:
        """Answer every handle of an entry whose turn ended, forget the entry, and tell `on_turn_ended`."""
        if self._turns.get(entry.turn_id) is entry:
            del self._turns[entry.turn_id]
            if self.on_turn_ended is not None:
                ended = EndedTurn(entry.turn_id, entry.envelope, reply.status, entry.accepted_at, time.time())
                self.on_turn_ended(ended)
        if entry.envelope.idempotency_key is not None:
            keyed = dedup_key(entry.envelope.key.path, entry.envelope.idempotency_key)
            if self._keyed.get(keyed) is entry:
                del self._keyed[keyed]
        for handle in entry.handles:
            handle._resolve(reply)

    async def cancel_entries(self, entries: list[Entry], code: str) -> None:
        """Answer entries that will never run: "cancelled" response records, inbox acks and dedup keys."""
        with trio.CancelScope(shield=True):  # once decided, the bookkeeping must land
            for entry in entries:
                await entry.settled()
            reply = cancelled(code, _CANCEL_MESSAGES.get(code, "the turn was cancelled"))
            accepted = [entry for entry in entries if not entry.withdrawn]
            records = {entry.turn_id: record for entry in accepted if (record := self.record(entry.turn_id))}
            ops = ledger.cancelled(accepted, records, reply, time.time())
            keys = {entry.envelope.key for entry in accepted}
            if ops:
                try:
                    await self._commit_owned(keys.pop() if len(keys) == 1 else None, ops)
                except (StoreFull, StoreDamaged, NotOwner) as exc:  # their inbox rows stay: they run again later
                    log.error("could not record %d cancelled turns: %s", len(ops), exc)
            self.counters["cancelled"] += len(entries)
            for entry in entries:
                self.answered(entry, reply)

    def cancel_soon(self, entries: list[Entry], code: str) -> None:
        self._nursery.start_soon(self.cancel_entries, entries, code)

    def stopped(self, actor: ConversationActor, queued: list[Entry]) -> None:
        """Restart intensity exceeded: refuse the conversation for the cool-down; queued inbox rows wait for it."""
        self._stopped[actor.path] = trio.current_time() + self.restart_policy.cooldown
        self.counters["stopped"] += 1
        if self._live.get(actor.path) is actor:
            del self._live[actor.path]
        reply = failed("actor_unavailable", "the conversation failed repeatedly and was stopped; retry later")
        rows = [(entry.inbox_key, ledger.inbox_row(entry)) for entry in queued if entry.inbox_key is not None]
        if rows:
            self._recovering.setdefault(actor.path, []).extend(rows)  # replayed when it is reactivated
        for entry in queued:
            self.answered(entry, reply)
        log.error("conversation %s stopped after too many restarts", actor.path)

    # -- internals -------------------------------------------------------------------------------------------

    async def _worker(self) -> None:
        """Drive ready actors one after the other; park when there are none (up to `MAX_IDLE_WORKERS` do).

        One cancel scope serves every turn the worker runs (see `_actor` for why); `cancel`/`interrupt` cancel it
        while a target runs, and then the worker opens a new one.
        """
        while not self._cut:
            with trio.CancelScope() as scope:
                self._worker_scopes.add(scope)  # so that `stop_now` can cut what it runs
                try:
                    while not self._cut:
                        if self._ready:
                            if not await self._drive_next(scope):
                                break  # a turn was cut: a fresh scope for the rest
                            continue
                        if self._idle_workers >= MAX_IDLE_WORKERS:
                            return
                        self._idle_workers += 1  # `schedule` takes it back when it unparks this worker
                        await self._worker_lot.park()
                finally:
                    self._worker_scopes.discard(scope)

    async def _drive_next(self, scope: trio.CancelScope) -> bool:
        """Drive the next ready actor; False when a turn was cut (`scope` is cancelled: the worker needs a new one).

        A method of its own so that a parked worker's frame keeps no reference to the actor it drove."""
        actor = self._ready.popleft()
        if await actor.drive(scope):
            return True
        self._ready.appendleft(actor)  # drive the rest under a fresh scope
        return False

    def _check_open(self) -> None:
        if self._closing:
            raise SystemClosed("the actor system is shutting down")

    def _next_stamp(self) -> int:
        self._stamp = max(self._stamp + 1, time.time_ns())
        return self._stamp

    def _touch(self, actor: ConversationActor) -> None:
        actor.last_active = trio.current_time()
        if self._live.get(actor.path) is actor:
            self._live.move_to_end(actor.path)

    async def _write_accepted(self, entry: Entry, keyed: bool) -> None:
        """Commit what must be durable before `submit` returns: the inbox row, a background turn's record."""
        ops = ledger.accepted(entry, inbox=keyed)
        entry.begin_write()
        landed = False
        try:
            with trio.CancelScope(shield=True):  # the entry is queued: its write must settle either way
                await self._commit_owned(entry.envelope.key, ops)
            landed = True
        except BaseException:
            self.answered(entry, failed("store_error", "the envelope could not be stored"))
            raise
        finally:
            entry.end_write(landed=landed)

    def _stored_reply(self, path: str, done: DedupRecord) -> Reply:
        record = self.record(done.turn_id)
        if record is not None:
            return record.as_reply()
        turn = self.store.get("turns", turn_key(path, done.seq)) if done.seq else None
        if turn is not None:
            return Reply(messages=turn.output, usage=turn.usage)
        return Reply()

    def _activate(self, key: ConversationKey, recovered: list[TurnHandle] | None = None) -> ConversationActor:
        if self._scanning:
            self._load(key.path)
        actor = ConversationActor(key, self, self.snapshot(key.path))
        self._make_room()
        self._live[key.path] = actor
        self.counters["activations"] += 1
        for stored_key, row in self._recovering.pop(key.path, ()):
            entry = self._recovered_entry(stored_key, row)
            self._turns[entry.turn_id] = entry
            if row.envelope.idempotency_key is not None:
                self._keyed[dedup_key(key.path, row.envelope.idempotency_key)] = entry
            actor.enqueue_recovered(entry)
            if recovered is not None:
                recovered.append(entry.handles[0])
            if self.on_recovered is not None:
                self.on_recovered(entry.turn_id)
        return actor

    def _recovered_entry(self, stored_key: str, row: InboxRecord) -> Entry:
        """The entry of an inbox row replayed from the store, with the handles joined to it meanwhile."""
        handle = TurnHandle(row.envelope.turn_id or new_turn_id())
        stamp = stamp_of(stored_key)
        entry = Entry(row.envelope, handle, row.received_at, stamp=self._next_stamp() if stamp is None else stamp)
        entry.inbox_key = stored_key
        entry.handles.extend(self._joiners.pop(entry.turn_id, ()))
        return entry

    def _make_room(self) -> None:
        """`max_active`: passivate the least recently active idle actor when the registry is full."""
        if len(self._live) < self.config.max_active:
            return
        for n, actor in enumerate(self._live.values()):
            if actor.idle:
                self._passivate(actor)
                return
            if n >= _EVICTION_SCAN:
                return

    def _passivate(self, actor: ConversationActor) -> None:
        del self._live[actor.path]
        actor.release()
        self.counters["passivations"] += 1
        if self.ownership is not None:
            self.ownership.release(actor.path)

    # -- cluster: leases and fencing (only with an `ownership`) ----------------------------------------------

    async def own(self, key: ConversationKey) -> None:
        """Cluster: hold `key`'s lease before its actor is activated (raises `NotOwner`); a lease taken from another
        node (or a crashed run of this one) brings the inbox rows it left, which replay first, as after a restart.
        A no-op on a single host, or when this node holds the lease."""
        if self.ownership is None or self.ownership.lease(key.path) is not None:
            return
        self._drop(key.path)  # (a live actor without a lease: it lost it)
        if await self.ownership.claim(key):
            self._adopt(key.path)

    def _adopt(self, path: str) -> None:
        """The conversation's inbox rows in the store (those this system does not run already) replay on its next
        activation, in arrival order."""
        found = [
            (row.received_at, stored_key, row)
            for stored_key, row in self.store.scan("inbox", f"{path}/")
            if row.envelope.key.path == path and row.envelope.turn_id not in self._turns
        ]
        found.sort(key=lambda item: (item[0], item[1]))
        # this node's stamps continue after the rows another node's clock stamped, so arrival order holds
        left = [stored_key for _, stored_key, _ in found] + [key for key, _ in self.store.scan("outbox", f"{path}/")]
        self._stamp = max([self._stamp, *(stamp for key in left if (stamp := stamp_of(key)) is not None)])
        if found:
            self._recovering[path] = [(stored_key, row) for _, stored_key, row in found]
            self.counters["taken_over"] += 1
        else:
            self._recovering.pop(path, None)

    async def take_over(self, key: ConversationKey) -> bool:
        """Cluster: take `key`'s conversation (its owner died) and replay what it left pending, in the background,
        as a restart does. False when there was nothing to replay. Raises `NotOwner` if a live node holds it.
        Callers at once (the sweeper, a client following one of its turns) are all told True; it replays once."""
        await self.own(key)
        path = key.path
        if not self._recovering.get(path) or path in self._live:
            return False
        if path not in self._replaying:
            self._replaying.add(path)
            try:
                await self._recovery_limiter.acquire_on_behalf_of(path)
            except BaseException:
                self._replaying.discard(path)
                raise
            self._nursery.start_soon(self._recover_one, path)
        return True

    async def _commit_owned(
        self, key: ConversationKey | None, ops: Sequence[Op], expect: Sequence[Expect] = ()
    ) -> bool:
        """Commit `ops` for `key`'s conversation, fenced by its lease when this system is a cluster node's.

        False when one of `expect` did not hold; raises `NotOwner` (and drops the conversation from this node)
        when the lease is not this node's any more: nothing was written."""
        if self.ownership is None or key is None:
            return await (self.store.commit(ops, expect=expect) if expect else self.store.commit(ops))
        lease = self.ownership.lease(key.path)
        if lease is not None:
            if await self.store.commit(ops, expect=[lease, *expect]):
                return True
            if self.store.get("leases", key.path) == lease.value:
                return False  # still ours: another condition failed
        self.counters["fenced_commits"] += 1
        self.ownership.lost(key.path)
        self._drop(key.path)
        held: Lease | None = self.store.get("leases", key.path)
        log.warning("conversation %s: commit fenced, another node holds its lease now", key.path)
        raise NotOwner(key, held.owner if held is not None and held.owner else None)

    def _drop(self, path: str) -> None:
        """Forget a conversation this node no longer owns (its rows replay on the new owner)."""
        actor = self._live.pop(path, None)
        if actor is not None:
            actor.release()
        self._recovering.pop(path, None)

    async def _reaper(self) -> None:
        """Passivate actors idle for longer than `idle_timeout`; sleeps until the next one can expire."""
        while True:  # noqa: ASYNC110 (a timer: it sleeps until the next actor can expire, nothing to wait on)
            await trio.sleep_until(self._passivate_expired(trio.current_time()))

    def _passivate_expired(self, now: float) -> float:
        """Passivate the idle actors whose idle time ran out; returns when the next one can run out."""
        idle_timeout = self.config.idle_timeout
        due = now + idle_timeout
        expired = []
        for actor in self._live.values():
            if actor.last_active + idle_timeout > now:
                due = actor.last_active + idle_timeout
                break
            if actor.idle:
                expired.append(actor)
        for actor in expired:
            self._passivate(actor)
        return due

    def _load(self, path: str) -> bool:
        """While the inbox is being read: read all of `path`'s rows now (the scan then skips them); False if done."""
        if path in self._loaded:
            return False
        self._loaded.add(path)
        self._unread += len(self._recovering.pop(path, ()))  # a part read by the scan: read again whole below
        self._group((k, row) for k, row in self.store.scan("inbox", f"{path}/") if row.envelope.key.path == path)
        return True

    def _load_turn(self, turn_id: str) -> bool:
        """While the inbox is being read: read the rows of `turn_id`'s conversation (from its response record)."""
        record = self.record(turn_id)
        return record is not None and self._load(ConversationKey(record.tenant, record.conversation).path)

    def _group(self, rows: Iterable[tuple[str, InboxRecord]]) -> list[str]:
        """Add inbox rows to the conversations waiting for recovery, each in arrival order; the paths added."""
        found: dict[str, list[tuple[str, InboxRecord]]] = {}
        for stored_key, row in rows:
            found.setdefault(row.envelope.key.path, []).append((stored_key, row))
        self._unread = max(0, self._unread - sum(map(len, found.values())))
        for path, more in found.items():
            known = self._recovering.setdefault(path, [])
            known.extend(more)
            known.sort(key=lambda item: (item[1].received_at, item[0]))
        return list(found)

    async def _recover(self) -> None:
        """Read the inbox left by an earlier run page by page (the host serves meanwhile) and recover its
        conversations as they are read, at most `recovery_limit` at a time."""
        try:
            async with trio.open_nursery() as nursery:
                after: str | None = None
                held: set[str] = set()  # paths of the last page: their rows may go on in the next one
                rows_read = 0
                while not self._closing:
                    page = self.store.scan("inbox", after=after, limit=_SCAN_PAGE)
                    if not page:
                        break
                    after = page[-1][0]
                    rows_read += len(page)
                    last = page[-1][1].envelope.key.path
                    ready = held | set(self._group((k, r) for k, r in page if r.envelope.key.path not in self._loaded))
                    held = {last} if last in ready else set()
                    self._loaded.update(ready - held)  # all their rows are read: activating them reads none again
                    await self._start_recovering(nursery, ready - held)
                self._scanning = False
                self._unread = 0
                self._loaded.clear()
                if rows_read:
                    log.info("read %d inbox rows to recover", rows_read)
                await self._start_recovering(nursery, held)
        finally:
            self._scanning = False
            self._unread = 0

    async def _start_recovering(self, nursery: trio.Nursery, paths: Iterable[str]) -> None:
        for path in paths:
            if path in self._recovering:
                await self._recovery_limiter.acquire_on_behalf_of(path)
                nursery.start_soon(self._recover_one, path)
        await trio.lowlevel.checkpoint()

    async def _recover_one(self, path: str) -> None:
        try:
            rows = self._recovering.get(path)
            if not rows or self._closing or path in self._live or path in self._stopped:
                return  # activated by a submit meanwhile (which replayed the rows), cooling down, or shutting down
            handles: list[TurnHandle] = []
            self._activate(rows[0][1].envelope.key, handles)
            for handle in handles:
                await handle.reply()
            self.counters["recovered"] += len(handles)
        finally:
            self._recovery_limiter.release_on_behalf_of(path)
            self._replaying.discard(path)

    async def _cancel_recovering(self, turn_id: str) -> bool:
        for path, rows in self._recovering.items():
            for n, (stored_key, row) in enumerate(rows):
                if row.envelope.turn_id == turn_id:
                    del rows[n]
                    if not rows:
                        del self._recovering[path]
                    await self.cancel_entries([self._recovered_entry(stored_key, row)], "cancelled")
                    return True
        return False

    def stop_now(self) -> None:
        """Stop at once instead of draining: intake stops, every running turn is cut uncommitted (as when the drain
        deadline passes: its handles end "cancelled" with code "shutdown"; inbox rows replay later) and queued
        turns are answered the same way now, so open streams can still end while the HTTP server runs."""
        self._closing = True
        self._cut = True
        for scope in self._worker_scopes:
            scope.cancel()
        reply = cancelled("shutdown", _CANCEL_MESSAGES["shutdown"])
        for actor in list(self._live.values()):
            for entry in actor.take_queued():
                self.answered(entry, reply)

    async def drain(self, grace: float) -> bool:
        """Stop intake (`submit` raises `SystemClosed`), then give queued and running turns `grace` seconds;
        after that they are cut. True if everything finished in time. Called again, it returns at once."""
        if self.cut:
            return not self._busy
        self._closing = True
        for actor in self._live.values():
            actor.wake_all_senders()
        if self._busy:
            self._drained = trio.Event()
            with trio.move_on_after(grace):
                await self._drained.wait()
            if self._busy:
                log.warning("shutdown: cancelling %d conversations still running after %.1f s", self._busy, grace)
        self._cut = True
        return not self._busy

    def _abandon_queued(self) -> None:
        """After shutdown: answer what never started (inboxed ones replay on the next start)."""
        reply = cancelled("shutdown", _CANCEL_MESSAGES["shutdown"])
        for entry in list(self._turns.values()):
            self.answered(entry, reply)
        for handles in self._joiners.values():
            for handle in handles:
                handle._resolve(reply)
        self._joiners.clear()
