"""`Timers`: the host's timers from outside a turn (schedule, list, cancel, purge) and the one scheduler task.

Pending timers are rows: kind "timers" (one per timer, by conversation) and the due-time index "timer_due". The
scheduler reads the front of the index, fires what is due through `ActorSystem.fire` (one conditional commit
per timer turns it into an inbox row), and sleeps until the next due time or until a sooner timer is scheduled.
"""

from __future__ import annotations

import builtins
import logging
import math
import time
from collections.abc import Callable, Iterable
from typing import Unpack

import trio

from afactors import admin
from afactors.actors import ActorSystem, NotOwner, ledger
from afactors.model import ConversationKey, Timer, TimerSpec, new_timer
from afactors.store import Delete, Expect, Store, StoreError, TimerDue, TimerRecord

log = logging.getLogger("afactors.timers")

FIRE_BATCH = 512
"""Due timers read from the index at a time (fired concurrently, so their commits group)."""

MAX_SLEEP = 30.0
"""The longest the scheduler sleeps without looking at the index again (the wall clock may have jumped)."""

CLUSTER_SLEEP = 1.0
"""The same on a cluster node: a timer another node scheduled for a conversation this node owns (the timer API
serves any node) fires here within about this long of falling due, though nothing woke this node's scheduler."""

_FIRE_CONCURRENCY = 256
_RETRY = 1.0


class Timers:
    """The host's timers (`host.timers`): the Python API for apps and operators, and the scheduler task.

    Catch-up: a timer due while the host was down fires once, as soon as the host is back; a cron schedule then
    moves to its next occurrence after now (the occurrences it missed are skipped, not fired one by one).
    `max_sleep`: the longest the scheduler goes without reading the due index (`CLUSTER_SLEEP` on a cluster node).
    """

    def __init__(
        self, store: Store, system: ActorSystem, clock: Callable[[], float] = time.time, max_sleep: float = MAX_SLEEP
    ) -> None:
        self._store = store
        self._max_sleep = max_sleep
        self._system = system
        self._clock = clock
        self._wakeup = trio.Event()
        self._waiting_until = 0.0  # the due time the scheduler sleeps towards (inf: none pending)
        self._elsewhere: dict[str, float] = {}  # a cluster node: due rows another node owns -> when to look again

    # -- the API ---------------------------------------------------------------------------------------------

    async def schedule(self, key: ConversationKey, **spec: Unpack[TimerSpec]) -> Timer:
        """Schedule a turn of kind "timer" on `key`'s conversation (an id that exists is replaced): exactly one of
        `at`, `after`, `cron` and the rest as for `afactors.model.new_timer`; raises `TimerError` for bad input."""
        timer = new_timer(now=self._clock(), **spec)
        await self.schedule_many([(key, timer)])
        return timer

    async def schedule_many(self, timers: Iterable[tuple[ConversationKey, Timer]]) -> None:
        """Schedule many timers (made with `new_timer`) in one commit, e.g. a daily digest per subscriber."""
        ops = []
        earliest = math.inf
        for key, timer in timers:
            existing = self._find(key, timer.id)
            ops.extend(ledger.timers_changed(key, {timer.id: timer}, {} if existing is None else {timer.id: existing}))
            earliest = min(earliest, timer.due_at)
        if ops:
            await self._store.commit(ops)
            self.wake(earliest)

    def list(self, key: ConversationKey) -> list[Timer]:
        """The conversation's pending timers, by due time."""
        return sorted(self._system.timers(key), key=lambda timer: (timer.due_at, timer.id))

    async def cancel(self, key: ConversationKey, timer_id: str) -> bool:
        """Cancel a pending timer; False if the conversation has none with that id."""
        return await admin.cancel_timer(self._store, key.path, timer_id)

    def pending(self, *, limit: int = 100, after: str | None = None) -> builtins.list[tuple[str, TimerRecord]]:
        """For operators: pending timers of every conversation in due order, `(index key, record)` pairs; pass
        the last index key as `after` for the next page."""
        rows: builtins.list[tuple[str, TimerRecord]] = []
        for due_key, due in self._store.scan("timer_due", after=after, limit=limit):
            record = self._store.get("timers", due.timer_key)
            if record is not None:
                rows.append((due_key, record))
        return rows

    def count(self) -> int:
        """How many timers are pending (index rows: fired one-shot records are not counted)."""
        return self._store.count("timer_due")

    async def purge(self, *, tenant: str | None = None, key: ConversationKey | None = None) -> int:
        """For operators: remove every timer (of one tenant, or of one conversation): pending ones are cancelled,
        fired one-shot records forgotten; returns how many."""
        return await admin.purge_timers(self._store, tenant=tenant, path=None if key is None else key.path)

    def _find(self, key: ConversationKey, timer_id: str) -> Timer | None:
        return next((timer for timer in self._system.timers(key) if timer.id == timer_id), None)

    # -- the scheduler ---------------------------------------------------------------------------------------

    def wake(self, due_at: float) -> None:
        """A timer due at `due_at` was scheduled: wake the scheduler if it sleeps towards a later time."""
        if due_at < self._waiting_until:
            self._wakeup.set()

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """The scheduler: fire due timers, then sleep until the next due time (or a wake-up). Runs until cancelled."""
        task_status.started()
        while True:
            self._wakeup = trio.Event()
            try:
                rows = self._store.scan("timer_due", limit=FIRE_BATCH)
                now = self._clock()
                self._elsewhere = {key: until for key, until in self._elsewhere.items() if until > now}
                due = [
                    (due_key, row)
                    for due_key, row in rows
                    if ledger.due_of(due_key) <= now and due_key not in self._elsewhere
                ]
                if due:
                    await self._fire(due, now)
                    continue
            except StoreError as exc:
                log.error("timer scheduler: store failure, retrying in %.0f s: %s", _RETRY, exc)
                await trio.sleep(_RETRY)
                continue
            self._waiting_until = min(
                (max(ledger.due_of(due_key), self._elsewhere.get(due_key, 0.0)) for due_key, _ in rows),
                default=math.inf,
            )
            with trio.move_on_after(min(self._waiting_until - now, self._max_sleep)):
                await self._wakeup.wait()
            self._waiting_until = 0.0

    async def _fire(self, due: builtins.list[tuple[str, TimerDue]], now: float) -> None:
        limiter = trio.CapacityLimiter(_FIRE_CONCURRENCY)
        async with trio.open_nursery() as nursery:
            for due_key, row in due:
                await limiter.acquire_on_behalf_of(due_key)
                nursery.start_soon(self._fire_one, due_key, row, now, limiter)

    async def _fire_one(self, due_key: str, row: TimerDue, now: float, limiter: trio.CapacityLimiter) -> None:
        try:
            record: TimerRecord | None = self._store.get("timers", row.timer_key)
            if (
                record is None
                or not record.pending
                or due_key != ledger.timer_due_key(record.timer.due_at, row.timer_key)
            ):
                # a left-over index row (its timer was cancelled, replaced or purged): drop it unless it came back
                await self._store.commit(
                    [Delete("timer_due", due_key)], expect=[Expect("timers", row.timer_key, record)]
                )
                return
            await self._system.fire(row.timer_key, record, now)
        except NotOwner as exc:  # a cluster node: the owner's scheduler fires it; look again in a while
            log.debug("timer %s not fired here: %s", row.timer_key, exc)
            self._elsewhere[due_key] = self._clock() + _RETRY
        except StoreError as exc:
            log.error("timer %s could not fire (it stays due and is tried again): %s", row.timer_key, exc)
            await trio.sleep(_RETRY)
        finally:
            limiter.release_on_behalf_of(due_key)
