"""`Leases`: the conversation leases a cluster node holds (the actor system's `Ownership`).

A lease is a `Lease(owner, epoch)` record per conversation path (kind "leases"). Its validity is the owner's
heartbeat, Orleans-style: a lease is held while its owner node is live (`Registry`), so leases cost nothing to keep
(no renewal traffic per conversation). Acquisition is one conditional commit: it expects the lease record exactly
as it was read, writes `Lease(this node, epoch + 1)`, and of two nodes racing exactly one succeeds (the PostgreSQL
writer serialises commits that expect the same row). Release (passivation, shutdown) writes `Lease("", epoch)`:
free, with its epoch kept, so epochs only ever grow. The leader purges rows no node holds (`purge_leases`) after
raising the `FLOOR` record above their epochs; an acquisition that finds no row starts above the floor (and expects it
unchanged), so epochs grow across a purge too. Every commit for a conversation expects its lease as held (fencing); a
node that cannot confirm its own heartbeat also reads a lease back before it uses it.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

import trio

from afactors.actors import NotOwner
from afactors.cluster._registry import Registry
from afactors.model import ConversationKey
from afactors.store import Expect, Lease, Put, Store, StoreError

log = logging.getLogger("afactors.cluster")

FREE = ""
"""The owner of a lease no node holds."""

FLOOR = "epochs"
"""The key (kind "leases"; no conversation path lacks a "/") of `Lease(FREE, epoch)`, the epoch at least as high as
that of every purged lease row: a lease acquired where there is no row starts above it."""

_ATTEMPTS = 5  # conditional commits a claim tries before it gives up (each loss means the lease changed meanwhile)


class Leases:
    """The leases this node holds, as the actor system's `Ownership` (see the module docstring).

    `keep(path)`: whether a lease must stay held although its actor was passivated (the host: the conversation
    still has deliveries under way here). Release commits run in `nursery`.
    """

    def __init__(self, store: Store, registry: Registry, nursery: trio.Nursery) -> None:
        self.store = store
        self.registry = registry
        self.node_id = registry.node_id
        self.keep: Callable[[str], bool] = lambda path: False
        self._held: dict[str, Lease] = {}
        self._claiming: dict[str, trio.Event] = {}
        self._nursery = nursery

    @property
    def held(self) -> dict[str, Lease]:
        """The leases this node holds, by conversation path (a copy)."""
        return dict(self._held)

    def lease(self, path: str) -> Expect | None:
        """The held lease's condition. While this node's heartbeat is not confirmed (`Registry.fresh`: its store
        was away, or the process paused) the lease is read back first, and dropped if another node took it."""
        held = self._held.get(path)
        if held is not None and not self.registry.fresh and self.store.get("leases", path) != held:
            log.info("node %s: lost %s while its heartbeat stood still", self.node_id, path)
            del self._held[path]
            return None
        return None if held is None else Expect("leases", path, held)

    def holder(self, path: str) -> str | None:
        """The live node other than this one that holds `path`'s lease, if any."""
        current: Lease | None = self.store.get("leases", path)
        if current is None or current.owner in (FREE, self.node_id) or not self.registry.live(current.owner):
            return None
        return current.owner

    async def claim(self, key: ConversationKey) -> bool:
        return await self.claim_path(key.path, key)

    async def claim_path(self, path: str, key: ConversationKey | None = None) -> bool:
        """`claim` by path (`key` names the conversation in a `NotOwner`)."""
        while (busy := self._claiming.get(path)) is not None:  # one claim per path at a time on this node
            await busy.wait()
        if path in self._held:
            return False
        done = self._claiming[path] = trio.Event()
        try:
            for _ in range(_ATTEMPTS):
                current: Lease | None = self.store.get("leases", path)
                if (
                    current is not None
                    and current.owner not in (FREE, self.node_id)
                    and self.registry.live(current.owner)
                ):
                    raise NotOwner(key or ConversationKey("", path), current.owner)
                expect, base = [Expect("leases", path, current)], current
                if current is None:  # never held, or purged: above every purged epoch, unless the floor rose meanwhile
                    base = self.store.get("leases", FLOOR)
                    expect.append(Expect("leases", FLOOR, base))
                taken = Lease(self.node_id, (base.epoch if base is not None else 0) + 1)
                if await self.store.commit([Put("leases", path, taken)], expect=expect):
                    self._held[path] = taken
                    if current is not None and current.owner not in (FREE, self.node_id):
                        log.info("node %s took %s from node %s (epoch %d)", self.node_id, path, current.owner,
                                 taken.epoch)  # fmt: skip
                    return True
            raise NotOwner(key or ConversationKey("", path))
        finally:
            del self._claiming[path]
            done.set()

    def release(self, path: str) -> None:
        if self.keep(path):
            return
        held = self._held.pop(path, None)
        if held is not None:
            self._nursery.start_soon(self._give_back, path, held)

    def lost(self, path: str) -> None:
        self._held.pop(path, None)

    async def _give_back(self, path: str, held: Lease) -> None:
        try:
            await self.store.commit(
                [Put("leases", path, Lease(FREE, held.epoch))], expect=[Expect("leases", path, held)]
            )
        except StoreError as exc:  # it stays ours until this node's heartbeat stops
            log.warning("node %s: could not release the lease of %s: %s", self.node_id, path, exc)

    async def release_all(self) -> None:
        """Give back every lease this node holds (a clean shutdown), all in one group commit."""
        held, self._held = self._held, {}
        async with trio.open_nursery() as nursery:
            for path, lease in held.items():
                nursery.start_soon(self._give_back, path, lease)
