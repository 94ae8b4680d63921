"""Purging lease rows no node holds, on a real PostgreSQL schema: free rows and rows of nodes no longer registered go,
held rows stay, and a conversation's epoch keeps growing across a purge (an acquisition starts above the floor the
purge raised); the retention leader runs it in a cluster of real hosts."""

from __future__ import annotations

import httpx
import trio

from afactors.cluster import FLOOR, FREE, purge_leases
from afactors.host import RetentionConfig
from afactors.model import ConversationKey
from afactors.store import Lease, Put, delete_unchanged
from afactors.store.pg_server import PgServer
from tests.cluster.conftest import pg_node
from tests.cluster.test_leases import dies, running


async def test_free_rows_and_rows_of_forgotten_nodes_are_purged_held_ones_kept(pg_server: PgServer) -> None:
    url = pg_server.new_store_url()
    async with running(url, "a") as a, running(url, "b") as b:
        held_a, held_b = ConversationKey("t", "held-a"), ConversationKey("t", "held-b")
        assert await a.cluster.leases.claim(held_a) and await b.cluster.leases.claim(held_b)
        await a.store.commit([
            Put("leases", "t/passivated", Lease(FREE, 7)),
            Put("leases", "t/of-a-forgotten-node", Lease("gone", 9)),
        ])  # fmt: skip
        assert await purge_leases(a.store, a.cluster.registry, batch=2) == 2  # pages of 2: every page is looked at
        assert dict(a.store.scan("leases")) == {
            FLOOR: Lease(FREE, 9), "t/held-a": Lease("a", 1), "t/held-b": Lease("b", 1)
        }  # fmt: skip
        assert await purge_leases(a.store, a.cluster.registry) == 0

        # the epochs go on above every purged one
        assert await a.cluster.leases.claim(ConversationKey("t", "passivated"))
        assert await b.cluster.leases.claim(ConversationKey("t", "brand-new"))
        assert a.store.get("leases", "t/passivated") == Lease("a", 10)
        assert a.store.get("leases", "t/brand-new") == Lease("b", 10)


async def test_a_node_held_dead_but_still_registered_keeps_its_rows(pg_server: PgServer) -> None:
    """Its conversations are for the takeover sweeper (which replays their pending work), not for the purge."""
    url = pg_server.new_store_url()
    async with running(url, "a") as a, running(url, "b") as b:
        assert await b.cluster.leases.claim(ConversationKey("t", "of-b"))
        dies(a)
        assert not a.cluster.registry.live("b") and "b" in a.cluster.registry.known()
        assert await purge_leases(a.store, a.cluster.registry) == 0
        assert a.store.get("leases", "t/of-b") == Lease("b", 1)


async def test_a_row_taken_between_the_read_and_the_delete_stays(pg_server: PgServer) -> None:
    url = pg_server.new_store_url()
    async with running(url, "a") as a:
        await a.store.commit([Put("leases", "t/x", Lease(FREE, 3)), Put("leases", "t/y", Lease(FREE, 4))])
        assert await a.cluster.leases.claim(ConversationKey("t", "y"))  # y changed since it was read as free
        assert await delete_unchanged(a.store, "leases", [("t/x", Lease(FREE, 3)), ("t/y", Lease(FREE, 4))]) == 1
        assert a.store.get("leases", "t/x") is None and a.store.get("leases", "t/y") == Lease("a", 5)


async def test_the_retention_leader_purges_the_leases_a_node_gave_back(pg_server: PgServer) -> None:
    url = pg_server.new_store_url()
    often = RetentionConfig(interval=0.05)
    async with pg_node(url, "b", retention=often) as b:
        async with pg_node(url, "a", retention=often) as a, httpx.AsyncClient(base_url=a.urls[0], timeout=20) as http:
            for _ in range(2):
                answer = await http.post("/v1/responses", json={"model": "m", "input": "hi", "conversation": "c-1"})
                assert answer.status_code == 200, answer.text
            assert a.store.get("leases", "default/conv:c-1") == Lease("a", 1)
        # a left: it gave its leases back, and b (leading retention now) purges them
        with trio.fail_after(10):
            while b.store.get("leases", "default/conv:c-1") is not None:
                await trio.sleep(0.02)
        async with httpx.AsyncClient(base_url=b.urls[0], timeout=20) as http:
            again = await http.post("/v1/responses", json={"model": "m", "input": "hi", "conversation": "c-1"})
        assert again.json()["output"][0]["content"][0]["text"].startswith("Turn 3.")  # the history is intact
        assert b.store.get("leases", "default/conv:c-1") == Lease("b", 2)
        assert b.sweeper.removed["leases"] >= 1
