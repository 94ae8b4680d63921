"""`purge_leases`: delete the lease rows no node holds, which would otherwise stay forever (one per conversation
ever owned), without letting any conversation's epoch go back.

A row is stale when it is free (its conversation was passivated or released) or its owner is no longer registered
(a node silent for `FORGET_AFTER` leases, whose record the others deleted). Per page of rows: first the `FLOOR`
record is raised to the highest epoch among the stale ones, then each is deleted only if it is still exactly as read
(a row taken meanwhile stays). An acquisition that then finds no row starts above the floor, and expects the floor
unchanged, so it cannot start from a floor read before a purge that raised it.
"""

from __future__ import annotations

import trio

from afactors.cluster._leases import FLOOR, FREE
from afactors.cluster._registry import Registry
from afactors.store import Expect, Lease, Put, Store, delete_unchanged


async def purge_leases(store: Store, registry: Registry, batch: int = 200) -> int:
    """Delete the stale lease rows (see the module docstring), `batch` rows read at a time; how many it deleted."""
    purged, after = 0, None
    while page := store.scan("leases", after=after, limit=batch):
        after = page[-1][0]
        owners = {lease.owner for _, lease in page}
        gone = {owner for owner in owners if owner == FREE or not _registered(registry, owner)}
        stale: list[tuple[str, Lease]] = [
            (path, lease) for path, lease in page if path != FLOOR and lease.owner in gone
        ]
        if stale:
            await _raise_floor(store, max(lease.epoch for _, lease in stale))
            purged += await delete_unchanged(store, "leases", stale)
        await trio.lowlevel.checkpoint()
    return purged


def _registered(registry: Registry, owner: str) -> bool:
    """Whether `owner` is a registered node (live or not yet forgotten), looked up afresh when not seen yet."""
    return registry.live(owner) or owner in registry.known()


async def _raise_floor(store: Store, epoch: int) -> None:
    while (floor := store.get("leases", FLOOR)) is None or floor.epoch < epoch:
        if await store.commit([Put("leases", FLOOR, Lease(FREE, epoch))], expect=[Expect("leases", FLOOR, floor)]):
            return
