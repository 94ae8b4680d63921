"""`Liveness`: which nodes are live, judged from this process's reads of their heartbeat counters (pure: no store,
no clock; the `Registry` feeds it), and the lease fractions every cluster timing derives from.

A node is live while its `beat` keeps changing. Each read of the registry is noted with this process's monotonic
time; a node is dead once a read finds its `beat` unchanged for `DETECTION` of its lease since this process first
saw that value. Only readings of one clock are ever subtracted, so clock skew between machines cannot make a live node
look dead or a dead one live. Deadness is judged at a read, never by the clock alone: a process that was itself
paused reads again before it judges, and finds the others' beats moved meanwhile. A node first seen by a fresh
process gets a whole window from that read.

Why the owner stops first: a node's beat is visible no earlier than it started committing it, and the others hold
it dead only `DETECTION` of a lease after they first saw it, so a node that has not confirmed a beat started within
that window (its own clock) may have lost its leases already (`Registry.fresh`).
"""

from __future__ import annotations

from collections.abc import Mapping

import attrs

from afactors.store import NodeRecord

BEATS = 6
"""Heartbeats per lease: a node renews its record every lease/6."""
READS = 20
"""Reads of the registry per lease: a node reads every node's record every lease/20."""
DETECTION = 0.5
"""The fraction of its lease a node's beat may stand still, as another node reads it, before it is held dead. Room
for a beat that is late (one beat interval, a read interval, a slow commit) without being dead: 1/2 - 1/6 - 1/20 of
the lease (1.4 s for a 5 s lease)."""
FORGET_AFTER = 3
"""Lease lengths of silence after which a node's record is deleted (a node killed never deletes its own)."""


def detection_window(lease_seconds: float) -> float:
    """Seconds a node with this lease may stand still before it is held dead (`DETECTION` of it)."""
    return lease_seconds * DETECTION


@attrs.define
class _Watch:
    record: NodeRecord
    changed: float  # when a read first found `record.beat`
    read: float  # when a read last found it


class Liveness:
    """Every registered node as this process last read it, and which of them are live (see the module docstring)."""

    def __init__(self) -> None:
        self._watched: dict[str, _Watch] = {}

    def observe(self, records: Mapping[str, NodeRecord], now: float) -> None:
        """A read of every node's record at `now`: a beat that changed restarts that node's window; a record gone
        (a clean shutdown deleted it) forgets the node."""
        for node_id in self._watched.keys() - records.keys():
            del self._watched[node_id]
        for node_id, record in records.items():
            watch = self._watched.get(node_id)
            if watch is None or watch.record.beat != record.beat:
                self._watched[node_id] = _Watch(record, now, now)
            else:
                watch.record, watch.read = record, now

    def live(self, node_id: str) -> bool:
        """Whether the node is registered and its beat moved within its detection window, as last read."""
        watch = self._watched.get(node_id)
        return watch is not None and watch.read - watch.changed < detection_window(watch.record.lease_seconds)

    def forgettable(self) -> dict[str, NodeRecord]:
        """The nodes silent for `FORGET_AFTER` lease lengths, with their records as last read."""
        return {
            node_id: watch.record
            for node_id, watch in self._watched.items()
            if watch.read - watch.changed >= FORGET_AFTER * watch.record.lease_seconds
        }

    def forget(self, node_id: str) -> None:
        """Stop watching a node (its record was deleted)."""
        self._watched.pop(node_id, None)

    def record(self, node_id: str) -> NodeRecord | None:
        """The node's record as last read (None: not registered)."""
        watch = self._watched.get(node_id)
        return None if watch is None else watch.record

    def known(self) -> list[str]:
        """Every registered node id, sorted."""
        return sorted(self._watched)
