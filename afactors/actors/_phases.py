"""The life of an accepted envelope and of the turn that runs it: one state machine, as tables.

Rule: everything that changes a phase lives in this file. The actor and the system fire events (`Turn.fire`,
`Entry.begin_write` ...); an event the table does not allow in the current phase is a bug and raises
`PhaseError` at once, instead of leaving a flag half set.

Two machines:

- A `Turn` (what the runner runs: one entry, or several user turns folded together by the `steer` policy)
  goes QUEUED -> STARTING -> RUNNING -> COMMITTING -> ENDED. A target failing for the first time sends it from
  COMMITTING back to QUEUED (the retry); a turn that cannot run (its parent is unknown, it was cancelled before
  it started) goes from STARTING to COMMITTING without RUNNING; one the runtime gives up on (store failure,
  shutdown cut) ends from wherever it is. Cancellation is a request, not a phase: `Turn.cancel` records the
  reason and, while the target runs, cancels the driving worker's scope; the runner settles it.
- An `Entry` (one accepted envelope and the handles waiting for it) has the phase of its turn, and besides a
  write phase for the commit that makes it durable at submit time (inbox row, queued record):
  NONE (nothing to write) or PENDING -> WRITTEN | WITHDRAWN (that commit failed: it was never accepted).

Must not import: the actor or the system (they import this).
"""

from __future__ import annotations

import enum

import attrs
import trio

from afactors.actors._handle import TurnHandle
from afactors.model import Envelope


class PhaseError(RuntimeError):
    """An event the transition table does not allow in the current phase (a bug in the runtime)."""


class _Fast(enum.Enum):
    """Members hash by identity (they are singletons): `Enum.__hash__` is a Python call, and the transition
    tables look phases and events up a few times on every turn."""

    __hash__ = object.__hash__


class Phase(_Fast):
    QUEUED = "queued"  # in the mailbox: may gain entries (steer) or lose them (cancel)
    STARTING = "starting"  # taken by the runner: waits for its accept write, marks records, loads context
    RUNNING = "running"  # the target runs under the worker's cancel scope
    COMMITTING = "committing"  # the target is done or was cut: the outcome is being committed
    ENDED = "ended"  # every handle is answered


class Event(_Fast):
    START = "start"  # the runner takes the turn from the mailbox
    RUN = "run"  # the target is called
    SETTLE = "settle"  # the target returned, failed or was cut; or the turn cannot run at all
    RETRY = "retry"  # the target failed for the first time: back to the head of the mailbox
    END = "end"  # answered for good: committed, failed, cancelled, refused or abandoned


TRANSITIONS: dict[Phase, dict[Event, Phase]] = {
    Phase.QUEUED: {Event.START: Phase.STARTING, Event.END: Phase.ENDED},
    Phase.STARTING: {Event.RUN: Phase.RUNNING, Event.SETTLE: Phase.COMMITTING, Event.END: Phase.ENDED},
    Phase.RUNNING: {Event.SETTLE: Phase.COMMITTING, Event.END: Phase.ENDED},
    Phase.COMMITTING: {Event.RETRY: Phase.QUEUED, Event.END: Phase.ENDED},
    Phase.ENDED: {},
}
"""phase -> event -> next phase. Missing pairs are errors."""

CANCELLABLE = frozenset({Phase.QUEUED, Phase.STARTING, Phase.RUNNING})
"""Phases in which a cancel still changes the outcome (from COMMITTING on, the outcome is decided)."""


class Write(_Fast):
    NONE = "none"  # nothing was written at submit time (nor needed)
    PENDING = "pending"  # the submit-time commit is in flight
    WRITTEN = "written"  # it landed: the envelope is durable
    WITHDRAWN = "withdrawn"  # it failed: the envelope was never accepted


WRITE_TRANSITIONS: dict[Write, frozenset[Write]] = {
    Write.NONE: frozenset({Write.PENDING}),
    Write.PENDING: frozenset({Write.WRITTEN, Write.WITHDRAWN}),
    Write.WRITTEN: frozenset(),
    Write.WITHDRAWN: frozenset(),
}


class Entry:
    """One accepted envelope, the handles waiting for it, and its durable bookkeeping."""

    __slots__ = (
        "_written",
        "accepted_at",
        "background",
        "envelope",
        "handles",
        "inbox_key",
        "recorded",
        "stamp",
        "turn",
        "turn_id",
        "write",
    )

    def __init__(self, envelope: Envelope, handle: TurnHandle, accepted_at: float, stamp: int = 0) -> None:
        self.envelope = envelope  # its turn_id may be None: `turn_id` is the one in force
        self.turn_id = handle.turn_id
        self.handles = [handle]
        self.accepted_at = accepted_at
        self.stamp = stamp
        self.inbox_key: str | None = None
        self.write = Write.NONE
        self._written: trio.Event | None = None
        self.turn: Turn | None = None
        self.recorded = True  # False: the id was minted here and nothing was written, so no record exists yet
        self.background = False  # accepted with a queued record the turn moves to in_progress, then to its end

    def stored_envelope(self) -> Envelope:
        """The envelope as kept in the store (inbox, dead letters): always with its turn id."""
        if self.envelope.turn_id == self.turn_id:
            return self.envelope
        return attrs.evolve(self.envelope, turn_id=self.turn_id)

    @property
    def withdrawn(self) -> bool:
        return self.write is Write.WITHDRAWN

    def _move_write(self, to: Write) -> None:
        if to not in WRITE_TRANSITIONS[self.write]:
            raise PhaseError(f"entry {self.turn_id}: cannot go from write {self.write.value} to {to.value}")
        self.write = to

    def begin_write(self) -> None:
        """The submit-time commit starts; the runner waits for it before the turn starts."""
        self._move_write(Write.PENDING)
        self._written = trio.Event()

    def end_write(self, *, landed: bool) -> None:
        """The submit-time commit settled: the envelope is durable (`landed`) or was never accepted."""
        self._move_write(Write.WRITTEN if landed else Write.WITHDRAWN)
        assert self._written is not None
        self._written.set()

    async def settled(self) -> None:
        """Wait until the submit-time commit (if any) has settled. Not a checkpoint when there is none."""
        if self._written is not None:
            await self._written.wait()


class Turn:
    """What one turn runs: one entry, or several user turns folded together by the `steer` policy."""

    __slots__ = ("cancel_reason", "entries", "failures", "phase", "scope", "steer", "streamed")

    def __init__(self, entry: Entry, steer: bool) -> None:
        self.entries = [entry]
        self.steer = steer
        self.phase = Phase.QUEUED
        self.scope: trio.CancelScope | None = None  # the driving worker's scope while the target runs
        self.cancel_reason: str | None = None
        self.failures = 0
        self.streamed = False  # some handle was sent an update (a retry must not append to it)
        entry.turn = self

    def fire(self, event: Event) -> Phase:
        """Move to the phase the table gives for `event`; raises `PhaseError` for a move it does not allow."""
        try:
            self.phase = TRANSITIONS[self.phase][event]
        except KeyError:
            raise PhaseError(f"turn {self.entries[0].turn_id}: no {event.value} in phase {self.phase.value}") from None
        if event is Event.RETRY:
            self.failures += 1
            self.streamed = False
        return self.phase

    def running(self, scope: trio.CancelScope) -> None:
        """RUN: the target is about to be called under `scope`."""
        self.fire(Event.RUN)
        self.scope = scope

    def settle(self) -> None:
        """SETTLE: the target is done (or never ran); forget its scope."""
        self.fire(Event.SETTLE)
        self.scope = None

    def end(self) -> None:
        """END: the outcome is answered; the entries are forgotten."""
        if self.phase is not Phase.ENDED:
            self.fire(Event.END)
        for entry in self.entries:
            entry.turn = None

    def can_fold(self, entry: Entry, limit: int) -> bool:
        """`steer`: whether `entry` may join this queued turn (same parent, no retry pending, under `limit`)."""
        return (
            self.steer
            and self.phase is Phase.QUEUED
            and not self.failures
            and self.entries[0].envelope.parent == entry.envelope.parent
            and len(self.entries) < limit
        )

    def fold(self, entry: Entry) -> None:
        self.entries.append(entry)
        entry.turn = self

    def remove(self, entry: Entry) -> bool:
        """Take a queued entry out (it is being cancelled); True when the turn has no entries left."""
        if self.phase is not Phase.QUEUED:
            raise PhaseError(f"turn {entry.turn_id}: entries leave only while queued, not {self.phase.value}")
        self.entries.remove(entry)
        entry.turn = None
        return not self.entries

    def drop_withdrawn(self) -> list[Entry]:
        """The entries whose submit-time write landed (the others were never accepted)."""
        if any(entry.withdrawn for entry in self.entries):
            self.entries = [entry for entry in self.entries if not entry.withdrawn]
        return self.entries

    def cancel(self, reason: str) -> bool:
        """Cut the turn: nothing of it is committed; its handles end "cancelled" with code `reason`.

        Before the target runs this only marks the turn; while it runs, the driving worker's scope is cancelled.
        False when it is too late (the outcome is being committed).
        """
        if self.phase not in CANCELLABLE:
            return False
        self.cancel_reason = reason
        if self.scope is not None:
            self.scope.cancel()
        return True
