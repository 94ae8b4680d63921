"""`Registry`: this node's record in the "nodes" kind, its heartbeat, and which other nodes are live.

Each node renews its record (`NodeRecord.beat` + 1) every `beat_interval` (a sixth of its lease) and reads every
node's record every `read_interval` (a twentieth); `Liveness` judges from those reads, on this process's monotonic
clock, which nodes are live: a node whose beat a read finds unchanged for half its lease is dead, a record gone (a
clean shutdown deletes it) at once. A change of the live or registered nodes wakes `changed` (the takeover sweeper)
at the read that sees it. The record of a node silent for `FORGET_AFTER` lease lengths is deleted (its leases stay
as they are: they are not live, so any node may take them).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

import trio

from afactors.cluster._liveness import BEATS, READS, Liveness, detection_window
from afactors.cluster._locator import Peer
from afactors.store import Delete, Expect, NodeRecord, Put, Store, StoreError

log = logging.getLogger("afactors.cluster")


class Registry:
    """This node's registration and heartbeat, and its view of the others (see the module docstring).

    `clock`: the monotonic clock liveness is judged by (a test's own); the loops are paced by trio's.
    """

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
        self._confirmed: float | None = None  # when the last beat that committed began (this process's clock)
        self._liveness = Liveness()
        self._view: tuple[list[str], list[str]] = ([], [])
        self._change = trio.Event()

    @property
    def beat_interval(self) -> float:
        """Seconds between heartbeats: a sixth of the lease."""
        return self.lease_seconds / BEATS

    @property
    def read_interval(self) -> float:
        """Seconds between reads of the others' records: a twentieth of the lease."""
        return self.lease_seconds / READS

    @property
    def fresh(self) -> bool:
        """Whether this node's last committed heartbeat began within its detection window (half its lease) on its
        own clock. If not (its store is unreachable or slow, or the process was paused), the others may hold it
        dead and have taken its leases: `Leases` checks a lease in the store before using it."""
        confirmed = self._confirmed
        return confirmed is not None and self._clock() - confirmed < detection_window(self.lease_seconds)

    async def beat(self) -> None:
        """Renew this node's record."""
        began = self._clock()
        self._beat += 1
        record = NodeRecord(self.node_id, self.url, self._beat, self.lease_seconds, self._started, time.time())
        await self.store.commit([Put("nodes", self.node_id, record)])
        self._confirmed = began

    def refresh(self) -> None:
        """Read every node's record and note whose heartbeat moved; wake `changed` if the live or the registered
        nodes are not the ones the last read found."""
        records = {node_id: record for node_id, record in self.store.scan("nodes") if node_id != self.node_id}
        self._liveness.observe(records, self._clock())
        view = (self.live_nodes(), self.known())
        if view != self._view:
            if self._view != ([], []):
                log.info("node %s: live nodes %s of %s", self.node_id, *view)
            self._view = view
            self._change.set()
            self._change = trio.Event()

    async def changed(self, timeout: float) -> None:
        """Return when a read finds the live or registered nodes changed, or after `timeout` seconds."""
        change = self._change
        with trio.move_on_after(timeout):
            await change.wait()

    def live(self, node_id: str) -> bool:
        """Whether `node_id` is live: this node, or a node whose heartbeat moved within its detection window as
        last read. A node not seen yet (it may have started since the last read) is looked up first."""
        if node_id == self.node_id:
            return True
        if self._liveness.record(node_id) is None:
            self.refresh()
        return self._liveness.live(node_id)

    def dead(self) -> list[str]:
        """The registered nodes that are not live."""
        return [node_id for node_id in self.known() if not self.live(node_id)]

    async def forget_silent(self) -> list[str]:
        """Delete the records of nodes silent for `FORGET_AFTER` lease lengths (unless one beat meanwhile)."""
        silent = self._liveness.forgettable()
        for node_id, record in silent.items():
            await self.store.commit([Delete("nodes", node_id)], expect=[Expect("nodes", node_id, record)])
            self._liveness.forget(node_id)
            log.info("node %s: forgot node %s (silent since beat %d)", self.node_id, node_id, record.beat)
        return list(silent)

    def known(self) -> list[str]:
        """Every registered node id (live or not), this one included."""
        return sorted({self.node_id, *self._liveness.known()})

    def live_nodes(self) -> list[str]:
        """The ids of the live nodes, this one included."""
        return [node_id for node_id in self.known() if self.live(node_id)]

    def peer(self, node_id: str) -> Peer | None:
        """The peer `node_id` as it advertised itself (None: not registered)."""
        if node_id == self.node_id:
            return Peer(self.node_id, self.url)
        record = self._liveness.record(node_id)
        return None if record is None else Peer(node_id, record.url)

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Register, then heartbeat every `beat_interval` and read the others every `read_interval` until
        cancelled; on the way out, deregister (the other nodes see this node gone at once). The beat continues from
        an earlier run's, so a node restarted under the same id never repeats a beat the others saw."""
        earlier: NodeRecord | None = self.store.get("nodes", self.node_id)
        self._beat = 0 if earlier is None else earlier.beat
        await self.beat()
        self.refresh()
        task_status.started()
        try:
            async with trio.open_nursery() as nursery:
                nursery.start_soon(self._heartbeat)
                nursery.start_soon(self._watch)
        finally:
            with trio.CancelScope(shield=True):
                try:
                    await self.store.commit([Delete("nodes", self.node_id)])
                except StoreError as exc:
                    log.warning("node %s: could not deregister: %s", self.node_id, exc)

    async def _heartbeat(self) -> None:
        while True:
            due = trio.current_time() + self.beat_interval  # a slow commit does not push the next beat back
            try:
                await self.beat()
            except StoreError as exc:  # the store is away: the others will see this node's heartbeat stop
                log.error("node %s: heartbeat failed: %s", self.node_id, exc)
            await trio.sleep_until(due)

    async def _watch(self) -> None:
        while True:
            await trio.sleep(self.read_interval)
            try:
                self.refresh()
            except StoreError as exc:  # judged as last read meanwhile: nobody is held dead for want of a read
                log.error("node %s: could not read the nodes: %s", self.node_id, exc)
