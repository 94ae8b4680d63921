"""The delivery outbox: pushes committed replies through their channel's `deliver`, surviving crashes.

A turn whose envelope carries a `reply_to` commits an outbox row in the same transaction as the turn. This
worker delivers rows in key order per conversation (concurrently across conversations), deletes a row once its
channel's `deliver` returns, retries failures with jittered exponential backoff (or the channel's
`retry_after`), and moves a row to the dead letters after `max_attempts` or a permanent failure.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping

import attrs
import trio

from afactors._backoff import Backoff
from afactors.actors import ledger
from afactors.channel import Deliver, Delivery, DeliveryFailed
from afactors.model import Reply, converter
from afactors.store import OutboxRecord, Store

log = logging.getLogger("afactors.delivery")


@attrs.frozen
class DeliveryStats:
    """A snapshot of an outbox's counts since it started."""

    delivered: int = 0
    retried: int = 0
    dead_lettered: int = 0


class Outbox:
    """Runs deliveries for the channels in `delivers` (channel name -> deliver function)."""

    def __init__(
        self,
        store: Store,
        delivers: Mapping[str, Deliver],
        *,
        max_attempts: int = 8,
        backoff: tuple[float, float] = (0.5, 60.0),
        concurrency: int = 10_000,
    ) -> None:
        self._counts = {"delivered": 0, "retried": 0, "dead_lettered": 0}
        self._store = store
        self._delivers = dict(delivers)
        self._max_attempts = max_attempts
        self._backoff = Backoff(*backoff)
        self._limiter = trio.CapacityLimiter(concurrency)
        self._active: set[str] = set()
        self._nursery: trio.Nursery | None = None

    def statistics(self) -> DeliveryStats:
        """A frozen snapshot of the counts so far."""
        return DeliveryStats(**self._counts)

    @property
    def stats(self) -> DeliveryStats:
        """`statistics()`."""
        return self.statistics()

    def notify(self, outbox_key: str) -> None:
        """A row was committed under `outbox_key`: make sure its group is being delivered."""
        group = ledger.outbox_group(outbox_key)
        if self._nursery is not None and group not in self._active:
            self._active.add(group)
            self._nursery.start_soon(self._drain, group)

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Deliver what earlier runs left in the outbox, then whatever `notify` announces, until cancelled."""
        async with trio.open_nursery() as nursery:
            self._nursery = nursery
            for key, _ in self._store.scan("outbox"):
                self.notify(key)
            task_status.started()
            await trio.sleep_forever()

    async def _drain(self, group: str) -> None:
        try:
            while rows := self._store.scan("outbox", group + "/", limit=1):
                key, row = rows[0]
                if (wait := row.due_at - time.time()) > 0:
                    await trio.sleep(wait)
                await self._deliver_one(key, row)
        finally:
            self._active.discard(group)

    async def _deliver_one(self, key: str, row: OutboxRecord) -> None:
        attempt = row.attempts + 1
        deliver = self._delivers.get(row.channel)
        try:
            if deliver is None:
                raise DeliveryFailed(f"no channel named {row.channel!r} delivers replies", permanent=True)
            delivery = Delivery(
                turn_id=row.payload["turn_id"],
                address=row.address,
                reply=converter.structure(row.payload["reply"], Reply),
                attempt=attempt,
            )
            async with self._limiter:
                await deliver(delivery)
        except DeliveryFailed as exc:
            await self._failed(key, row, attempt, str(exc), exc.retry_after, exc.permanent)
        except Exception as exc:  # a channel bug must not stop deliveries of other rows
            log.exception("delivery of %s through %s failed", key, row.channel)
            await self._failed(key, row, attempt, f"{type(exc).__name__}: {exc}", None, False)
        else:
            with trio.CancelScope(shield=True):  # delivered: a shutdown now must not make it send again
                await self._store.commit(ledger.delivered(key))
            self._counts["delivered"] += 1

    async def _failed(
        self, key: str, row: OutboxRecord, attempt: int, error: str, retry_after: float | None, permanent: bool
    ) -> None:
        with trio.CancelScope(shield=True):  # the attempt happened: record it even while shutting down
            await self._record_failure(key, row, attempt, error, retry_after, permanent)

    async def _record_failure(
        self, key: str, row: OutboxRecord, attempt: int, error: str, retry_after: float | None, permanent: bool
    ) -> None:
        if permanent or attempt >= self._max_attempts:
            log.warning("dead-lettering delivery %s after %d attempt(s): %s", key, attempt, error)
            await self._store.commit(ledger.undeliverable(key, row, attempt, error, time.time()))
            self._counts["dead_lettered"] += 1
            return
        delay = retry_after if retry_after is not None else self._backoff.delay(attempt)
        await self._store.commit(ledger.redeliver(key, row, attempt, time.time() + delay))
        self._counts["retried"] += 1
