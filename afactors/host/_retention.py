"""Retention: a background sweeper deletes expired records in small batches through the store's writer.

Per record kind (`RetentionConfig`, ages in seconds, None = keep forever):

- `dedup`: idempotency keys, by the age of the turn that answered them (turn ids carry their creation time);
- `responses`: ended response records, by `completed_at` (a continuation from a deleted one is "not found");
- `closed_turns`: the turn records (history) of conversations whose last turn is older than this and whose actor
  is not in memory; the conversation's snapshot (turn count, state) stays;
- `dead_letters`: by `failed_at`;
- `timers`: the records of one-shot timers that fired, by `fired_at` (pending timers are never removed);
- `tokens`: `tokens` records (link codes, continuation tokens) whose `expires_at` has passed (no age setting);
- `deliveries`: delivery audits (of routed turns and pushes) by `created_at`, with their outcomes;
- `leases` (a cluster node): lease rows no node holds (`afactors.cluster.purge_leases`; no age setting);
- `limits` (a cluster node's identity rate limits): windows whose last event has left the window (`until`), each
  only if still as read (a node may count an event in it meanwhile; no age setting).

Each sweep pages through a kind `batch` keys at a time (read transactions only) and commits one `Delete` batch
per page, so no write transaction is ever long and turns' commits interleave with it.

Must not import: `afactors.host._host` (it imports this).
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Iterator
from typing import Any

import attrs
import trio

from afactors.actors import ActorSystem
from afactors.store import (
    DeadLetter,
    DedupRecord,
    Delete,
    DeliveryAudit,
    ResponseRecord,
    Snapshot,
    Store,
    TimerRecord,
    TokenRecord,
    delete_unchanged,
)

log = logging.getLogger("afactors.retention")

DAY = 86_400.0
RETENTION_ROLE = "retention"
"""The `Store.leadership` role of the sweeper: one host sweeps among those sharing a store (no channel's role:
those are `<channel>/<name>`)."""
RETAINED_KINDS = (
    "dedup", "responses", "closed_turns", "dead_letters", "timers", "tokens", "deliveries", "leases", "limits"
)  # fmt: skip


def _non_negative(_: object, attribute: attrs.Attribute[Any], value: float | None) -> None:
    if value is not None and value < 0:
        raise ValueError(f"retention {attribute.name} must be at least 0 seconds or None (keep), not {value!r}")


def _positive(_: object, attribute: attrs.Attribute[Any], value: float) -> None:
    if value <= 0:
        raise ValueError(f"retention {attribute.name} must be greater than 0, not {value!r}")


@attrs.frozen
class RetentionConfig:
    """How long each record kind is kept (seconds; None keeps it forever) and how the sweeper paces itself.

    `interval`: seconds between sweeps. `batch`: keys read and deleted per commit. `enabled`: False turns the
    sweeper off.
    """

    enabled: bool = True
    dedup: float | None = attrs.field(default=7 * DAY, validator=_non_negative)
    responses: float | None = attrs.field(default=30 * DAY, validator=_non_negative)
    closed_turns: float | None = attrs.field(default=90 * DAY, validator=_non_negative)
    dead_letters: float | None = attrs.field(default=30 * DAY, validator=_non_negative)
    timers: float | None = attrs.field(default=7 * DAY, validator=_non_negative)
    deliveries: float | None = attrs.field(default=30 * DAY, validator=_non_negative)
    interval: float = attrs.field(default=300.0, validator=_positive)
    batch: int = attrs.field(default=200, validator=_positive)


def turn_id_time(turn_id: str) -> float | None:
    """The creation time (epoch seconds) a turn id made by `new_turn_id` carries; None for other ids."""
    stamp = turn_id[-24:-8]
    if len(turn_id) < 24 or not all(c in "0123456789abcdef" for c in stamp):
        return None
    return int(stamp, 16) / 1e9


Expired = Callable[[str, Any], bool]


class Sweeper:
    """Deletes expired records; `removed` counts them by kind, `sweeps` counts finished sweeps."""

    def __init__(self, store: Store, system: ActorSystem, config: RetentionConfig) -> None:
        self._store = store
        self._system = system
        self.config = config
        self.removed: Counter[str] = Counter()
        self.sweeps = 0
        self.also: dict[str, Callable[[], Awaitable[int]]] = {}
        """More sweeps, by the kind they remove, run at the end of each sweep (a cluster node: stale lease rows)."""

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Sweep every `interval` seconds until cancelled."""
        task_status.started()
        while True:
            await self.sweep()
            await trio.sleep(self.config.interval)

    async def sweep(self, now: float | None = None) -> dict[str, int]:
        """One pass over every kind with a retention; returns what it removed, by kind."""
        now = time.time() if now is None else now
        removed: Counter[str] = Counter()
        for kind, store_kind, expired in self._rules(now):
            removed[kind] += await self._sweep_kind(store_kind, expired)
        if self.config.closed_turns is not None:
            removed["closed_turns"] += await self._sweep_closed_turns(now - self.config.closed_turns)
        if self.config.deliveries is not None:
            removed["deliveries"] += await self._sweep_deliveries(now - self.config.deliveries)
        removed["limits"] += await self._sweep_kind("limits", lambda _, window: window.until < now, unchanged=True)
        for kind, purge in self.also.items():
            removed[kind] += await purge()
        self.removed.update(removed)
        self.sweeps += 1
        if any(removed.values()):
            log.info("retention removed %s", ", ".join(f"{n} {k}" for k, n in removed.items() if n))
        return dict(removed)

    def _rules(self, now: float) -> Iterator[tuple[str, str, Expired]]:
        config = self.config
        if config.dedup is not None:
            cut = now - config.dedup

            def dedup(_: str, record: DedupRecord) -> bool:
                made = turn_id_time(record.turn_id)
                return made is not None and made < cut

            yield "dedup", "dedup", dedup
        if config.responses is not None:
            cut_r = now - config.responses

            def response(_: str, record: ResponseRecord) -> bool:
                return record.ended and (record.completed_at or record.created_at) < cut_r

            yield "responses", "responses", response
        if config.dead_letters is not None:
            cut_d = now - config.dead_letters

            def dead(_: str, record: DeadLetter) -> bool:
                return record.failed_at < cut_d

            yield "dead_letters", "dead_letters", dead
        if config.timers is not None:
            cut_t = now - config.timers

            def fired_timer(_: str, record: TimerRecord) -> bool:
                return record.fired_at is not None and record.fired_at < cut_t

            yield "timers", "timers", fired_timer

        def token(_: str, record: TokenRecord) -> bool:
            return record.expires_at < now

        yield "tokens", "tokens", token

    def _pages(self, kind: str) -> Iterator[list[tuple[str, Any]]]:
        """`kind`'s records in key order, `batch` at a time (each page read after the previous one was handled)."""
        after = None
        while page := self._store.scan(kind, after=after, limit=self.config.batch):
            yield page
            after = page[-1][0]

    async def _sweep_kind(self, kind: str, expired: Expired, *, unchanged: bool = False) -> int:
        """Delete `kind`'s expired records; `unchanged`: each only if still as read (its writers rewrite it)."""
        removed = 0
        for page in self._pages(kind):
            doomed = [(key, record) for key, record in page if expired(key, record)]
            if unchanged:
                removed += await delete_unchanged(self._store, kind, doomed)
            elif doomed:
                await self._store.commit([Delete(kind, key) for key, _ in doomed])
                removed += len(doomed)
            await trio.lowlevel.checkpoint()
        return removed

    async def _sweep_closed_turns(self, cut: float) -> int:
        live = {info.key.path for info in self._system.actors()}
        removed = 0
        for page in self._pages("snapshots"):
            for path, snapshot in page:
                assert isinstance(snapshot, Snapshot)
                if snapshot.updated_at < cut and path not in live:
                    removed += await self._delete_prefix("turns", path + "/")
            await trio.lowlevel.checkpoint()
        return removed

    async def _sweep_deliveries(self, cut: float) -> int:
        """Delivery audits made before `cut`, each after its outcomes."""
        removed = 0
        for page in self._pages("deliveries"):
            for key, audit in page:
                assert isinstance(audit, DeliveryAudit)
                if audit.created_at < cut:
                    await self._delete_prefix("outcomes", key + "/")
                    await self._store.commit([Delete("deliveries", key)])
                    removed += 1
            await trio.lowlevel.checkpoint()
        return removed

    async def _delete_prefix(self, kind: str, prefix: str) -> int:
        removed = 0
        while True:
            page = self._store.scan(kind, prefix, limit=self.config.batch)
            if not page:
                return removed
            await self._store.commit([Delete(kind, key) for key, _ in page])
            removed += len(page)
