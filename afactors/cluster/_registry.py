"""`Registry`: this node's record in the "nodes" kind, its heartbeat, and which other nodes are live.

A node is live while its heartbeat moves: each node renews its record (`NodeRecord.beat` + 1) every lease/3, and
every node reads the others' records as often, noting on its own monotonic clock when each one's beat last
changed. A node whose beat has not changed for its lease length (as it registered it) is not live; a record gone
(a clean shutdown deletes it) is not live at once. No two clocks are ever compared, so clock skew between
machines cannot make a live node look dead or a dead one live; a node first seen by a fresh process gets a whole
lease length from that moment. The record of a node silent for `FORGET_AFTER` lease lengths is deleted (its leases
stay as they are: they are not live, so any node may take them).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

import attrs
import trio

from afactors.cluster._locator import Peer
from afactors.store import Delete, Expect, NodeRecord, Put, Store, StoreError

log = logging.getLogger("afactors.cluster")

FORGET_AFTER = 3
"""Lease lengths of silence after which a node's record is deleted (a node killed never deletes its own)."""


@attrs.define
class _Seen:
    record: NodeRecord
    changed: float  # this process's monotonic time when its beat last changed


class Registry:
    """This node's registration and heartbeat, and its view of the others (see the module docstring)."""

    def __init__(
        self, store: Store, node_id: str, url: str, lease_seconds: float,
        clock: Callable[[], float] = trio.current_time,
    ) -> None:  # fmt: skip
        self.store = store
        self.node_id = node_id
        self.url = url
        self.lease_seconds = lease_seconds
        self._clock = clock
        self._beat = 0
        self._started = time.time()
        self._seen: dict[str, _Seen] = {}

    @property
    def interval(self) -> float:
        """Seconds between heartbeats (and between reads of the others' records): a third of the lease."""
        return self.lease_seconds / 3

    async def beat(self) -> None:
        """Renew this node's record."""
        self._beat += 1
        record = NodeRecord(self.node_id, self.url, self._beat, self.lease_seconds, self._started, time.time())
        await self.store.commit([Put("nodes", self.node_id, record)])

    def refresh(self) -> None:
        """Read every node's record and note whose heartbeat moved."""
        now = self._clock()
        found: dict[str, NodeRecord] = dict(self.store.scan("nodes"))
        for node_id in list(self._seen):
            if node_id not in found:
                del self._seen[node_id]
        for node_id, record in found.items():
            seen = self._seen.get(node_id)
            if seen is None or seen.record.beat != record.beat:
                self._seen[node_id] = _Seen(record, now)

    def live(self, node_id: str) -> bool:
        """Whether `node_id` is live: this node, or a node whose heartbeat moved within its lease length. A node not
        seen yet (it may have started since the last read) is looked up first."""
        if node_id == self.node_id:
            return True
        if node_id not in self._seen:
            self.refresh()
        seen = self._seen.get(node_id)
        return seen is not None and self._clock() - seen.changed < seen.record.lease_seconds

    def dead(self) -> list[str]:
        """The registered nodes that are not live."""
        return [node_id for node_id in self.known() if not self.live(node_id)]

    async def forget_silent(self) -> list[str]:
        """Delete the records of nodes silent for `FORGET_AFTER` lease lengths (unless one beat meanwhile)."""
        now = self._clock()
        silent = [
            (node_id, seen.record)
            for node_id, seen in self._seen.items()
            if node_id != self.node_id and now - seen.changed >= FORGET_AFTER * seen.record.lease_seconds
        ]
        for node_id, record in silent:
            await self.store.commit([Delete("nodes", node_id)], expect=[Expect("nodes", node_id, record)])
            self._seen.pop(node_id, None)
            log.info("node %s: forgot node %s (silent since beat %d)", self.node_id, node_id, record.beat)
        return [node_id for node_id, _ in silent]

    def known(self) -> list[str]:
        """Every registered node id (live or not), this one included."""
        return sorted({self.node_id, *self._seen})

    def live_nodes(self) -> list[str]:
        """The ids of the live nodes, this one included."""
        return [node_id for node_id in self.known() if self.live(node_id)]

    def peer(self, node_id: str) -> Peer | None:
        """The peer `node_id` as it advertised itself (None: not registered)."""
        if node_id == self.node_id:
            return Peer(self.node_id, self.url)
        seen = self._seen.get(node_id)
        return None if seen is None else Peer(node_id, seen.record.url)

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Register, then heartbeat and refresh every `interval` until cancelled; on the way out, deregister (the
        other nodes see this node gone at once). The beat continues from an earlier run's, so a node restarted
        under the same id never repeats a beat the others saw."""
        earlier: NodeRecord | None = self.store.get("nodes", self.node_id)
        self._beat = 0 if earlier is None else earlier.beat
        await self.beat()
        self.refresh()
        task_status.started()
        try:
            while True:
                await trio.sleep(self.interval)
                try:
                    await self.beat()
                    self.refresh()
                except StoreError as exc:  # the store is away: the others will see this node's heartbeat stop
                    log.error("node %s: heartbeat failed: %s", self.node_id, exc)
        finally:
            with trio.CancelScope(shield=True):
                try:
                    await self.store.commit([Delete("nodes", self.node_id)])
                except StoreError as exc:
                    log.warning("node %s: could not deregister: %s", self.node_id, exc)
