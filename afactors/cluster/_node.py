"""`ClusterNode`: one node of a cluster on a PostgreSQL store: its registry, its leases, the `Locator` the host
forwards by, and the sweeper that takes over the pending work of dead nodes.

Run it with `open_node(store, node_id, url, lease_seconds)` around the actor system (which gets `node.leases` as its
`Ownership`); on a clean exit every lease is given back and the node deregisters, so the others take over at once.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any
from urllib.parse import urlsplit

import trio

from afactors._backoff import Backoff
from afactors.actors import ActorSystem, NotOwner, ledger
from afactors.cluster._forward import ForwardPolicy
from afactors.cluster._leases import FREE, Leases
from afactors.cluster._locator import Peer
from afactors.cluster._registry import Registry
from afactors.cluster._rendezvous import preferred
from afactors.model import ConversationKey
from afactors.store import Lease, Store, StoreError

log = logging.getLogger("afactors.cluster")

DEFAULT_LEASE = 10.0
"""Seconds a node's leases last (`--lease-seconds`): the others hold a node dead once its heartbeat stood still for
half of it (`DETECTION`), and serve its conversations again within it."""
RESWEEPS = 3
"""Sweeps per lease while a dead node is still registered (besides the one each change of the nodes starts)."""


def lease_forward_policy(lease_seconds: float) -> ForwardPolicy:
    """The forward policy of a cluster node whose lease is `lease_seconds`: an owner silent for a fifth of a lease
    (a stopped process: its kernel still accepts the connection) or not answering a connection within it is given
    up, and the turn located again every tenth of a lease at most, for two leases: past the point where a dead or
    stopped owner is held dead everywhere (`DETECTION` of a lease after its last beat, plus a read interval), so
    the turn then runs on a live node."""
    step = lease_seconds / 10
    return ForwardPolicy(
        wait=2 * lease_seconds, attempts=32, connect_timeout=min(2.0, lease_seconds / 5),
        silence=lease_seconds / 5, backoff=Backoff(min(0.05, step), step),
    )  # fmt: skip


def check_advertise(url: str) -> str:
    """The URL a node advertises to its peers, checked: `http(s)://host:port` with no path beyond "/" (ValueError)."""
    parts = urlsplit(url)
    try:
        port = parts.port
    except ValueError:
        port = None
    if parts.scheme not in ("http", "https") or not parts.hostname or port is None or parts.path not in ("", "/"):
        raise ValueError(f"the advertised URL must look like http://host:port, not {url!r}")
    if parts.query or parts.fragment or parts.username:
        raise ValueError(f"the advertised URL must be a bare http://host:port, not {url!r}")
    return f"{parts.scheme}://{parts.netloc}"


class ClusterNode:
    """A running cluster node (made by `open_node`): `registry` (who is live), `leases` (what this node holds)."""

    def __init__(self, registry: Registry, leases: Leases) -> None:
        self.registry = registry
        self.leases = leases
        self.node_id = registry.node_id
        self.taken_over = 0  # conversations and outbox groups the sweeper took from dead nodes

    def summary(self) -> dict[str, Any]:
        """This node's view of the cluster, for `/status.json`: its id and URL, the live and the dead nodes, how
        many leases it holds, how many conversations and outbox groups its sweeper took over."""
        registry = self.registry
        return {
            "node_id": self.node_id, "url": registry.url, "lease_seconds": registry.lease_seconds,
            "live": registry.live_nodes(), "dead": registry.dead(), "leases_held": len(self.leases.held),
            "taken_over": self.taken_over,
        }  # fmt: skip

    def locator(self, system: ActorSystem) -> LeaseLocator:
        """The `Locator` of this node over `system` (whose `Ownership` is `self.leases`)."""
        return LeaseLocator(self, system)

    def orphaned(self, path: str) -> bool:
        """Whether `path`'s lease is for this node to take now: it is free (or there is none), its owner is not
        live, or it is this node's own from an earlier run; and no live node is preferred to this one."""
        if self.leases.lease(path) is not None:
            return False
        current: Lease | None = self.leases.store.get("leases", path)
        if current is not None and current.owner == self.node_id:
            return True  # left by a crashed run of this node id
        if current is not None and current.owner != FREE and self.registry.live(current.owner):
            return False
        return preferred(path, self.registry.live_nodes()) == self.node_id

    async def sweep_once(self, system: ActorSystem, deliver: Callable[[str], None]) -> int:
        """One pass: take the conversations with pending inbox rows (and the outbox groups with undelivered rows)
        whose lease is orphaned (`orphaned`), replaying them as a restart does. How many it took."""
        store = self.leases.store
        conversations: dict[str, ConversationKey] = {}
        for _, row in store.scan("inbox"):
            conversations.setdefault(row.envelope.key.path, row.envelope.key)
        groups: dict[str, str] = {}
        for key, _ in store.scan("outbox"):
            groups.setdefault(ledger.outbox_group(key), key)
        taken = 0
        for path, conversation in conversations.items():
            if not self.orphaned(path):
                continue
            try:
                if await system.take_over(conversation):
                    taken += 1
            except NotOwner:
                continue  # another node was quicker
        for group, first in groups.items():
            if self.leases.lease(group) is None:
                if not self.orphaned(group):
                    continue
                try:
                    await self.leases.claim_path(group)
                except NotOwner:
                    continue
                taken += group not in conversations
            deliver(first)  # (a no-op for a group being delivered already)
        self.taken_over += taken
        return taken

    async def sweep(
        self, system: ActorSystem, deliver: Callable[[str], None], *,
        task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
    ) -> None:  # fmt: skip
        """Run `sweep_once` now (this node's own conversations from an earlier run), then again as soon as a read
        of the registry finds the nodes changed (one held dead, gone or joined), and `RESWEEPS` times a lease while
        a dead one is still registered, until cancelled. `deliver(outbox_key)` hands an outbox group to delivery.
        (The background turns a conversation taken replays are tracked as a restart's are:
        `ActorSystem.on_recovered`.)"""
        task_status.started()
        registry = self.registry
        last: tuple[list[str], list[str]] | None = None
        while True:
            view = (registry.live_nodes(), registry.known())
            if view != last or registry.dead():
                self._end_sessions(registry.dead())
                try:
                    taken = await self.sweep_once(system, deliver)
                    if taken:
                        log.info("node %s took over %d conversations with pending work", self.node_id, taken)
                    await registry.forget_silent()
                    last = view
                except StoreError as exc:
                    log.error("node %s: the takeover sweep failed: %s", self.node_id, exc)
            await registry.changed(registry.lease_seconds / RESWEEPS)

    def _end_sessions(self, dead: list[str]) -> None:
        """End the store sessions of nodes held dead: a node stopped mid-commit keeps the row locks the takeover's
        commits wait for until it resumes (its commits are fenced once it does)."""
        for node in dead:
            try:
                ended = self.leases.store.end_sessions(node)
            except StoreError as exc:
                log.error(
                    "node %s: could not end the store sessions of node %s, held dead: %s", self.node_id, node, exc
                )
                continue
            if ended:
                log.warning("node %s: ended %d store sessions of node %s, held dead", self.node_id, ended, node)


class LeaseLocator:
    """The `Locator` of a cluster node: this node when it holds the lease or can take it, else the live owner."""

    def __init__(self, node: ClusterNode, system: ActorSystem) -> None:
        self._node = node
        self._system = system

    @property
    def node_id(self) -> str:
        return self._node.node_id

    async def locate(self, key: ConversationKey) -> Peer | None:
        try:
            await self._system.own(key)
        except NotOwner as exc:
            peer = None if exc.owner is None else self._node.registry.peer(exc.owner)
            if peer is None:
                raise
            return peer
        return None


@asynccontextmanager
async def open_node(
    store: Store, node_id: str, url: str, lease_seconds: float = DEFAULT_LEASE, *,
    clock: Callable[[], float] = trio.current_time,
) -> AsyncIterator[ClusterNode]:  # fmt: skip
    """Register `node_id` (advertising `url`) on `store` and heartbeat until the block exits; then give back every
    lease it holds and deregister. `clock`: the monotonic clock liveness is judged by (a test's own)."""
    if lease_seconds <= 0:
        raise ValueError(f"lease_seconds must be positive, not {lease_seconds}")
    registry = Registry(store, node_id, check_advertise(url), lease_seconds, clock)
    async with trio.open_nursery() as nursery:
        await nursery.start(registry.run)
        node = ClusterNode(registry, Leases(store, registry, nursery))
        try:
            yield node
        finally:
            with trio.CancelScope(shield=True):
                await node.leases.release_all()
            nursery.cancel_scope.cancel()
