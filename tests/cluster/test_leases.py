"""Cluster nodes on one PostgreSQL schema, in-process: leases, epochs, fencing, passivation, takeover, the locator.

Each node is a real `PgStore` opened as that node, a real `ClusterNode` (registry, heartbeat, leases) and a real
`ActorSystem`; liveness is judged by a clock the test moves (`Clock`), so "node a died" is one step, not a wait.
"""

from __future__ import annotations

import socket
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager

import attrs
import httpx
import pytest
import trio
import trio.testing

from afactors.actors import ActorSystem, NotOwner, ledger
from afactors.actors._keys import inbox_key, outbox_key, turn_key
from afactors.cluster import ClusterNode, LeaseLocator, Peer, open_node
from afactors.host import open_host
from afactors.host._timers import Timers
from afactors.model import ConversationKey, Envelope, Message, TurnContext, Update
from afactors.store import InboxRecord, Lease, NodeRecord, OutboxRecord, Put, Store
from afactors.store._pg_store import DatabaseLocked
from afactors.store.pg_server import PgServer
from afactors_responses import ResponsesChannel

KEY = ConversationKey("acme", "chat")
LEASE = 60.0  # long: the nodes' own heartbeats (every LEASE / 3 of real time) never move during a test


@attrs.define
class Clock:
    """A monotonic clock a test moves by hand (what a node judges the others' heartbeats by)."""

    now: float = 1000.0

    def __call__(self) -> float:
        return self.now


class Echo:
    """Answers "<node>: <input>" and counts its turns in the conversation state."""

    def __init__(self, name: str) -> None:
        self.name = name

    async def run(self, ctx: TurnContext):  # type: ignore[no-untyped-def]
        ctx.state["turns"] = ctx.state.get("turns", 0) + 1
        yield Update(delta=f"{self.name}: {ctx.messages[-1].text}")


@attrs.define
class Node:
    store: Store
    cluster: ClusterNode
    system: ActorSystem
    clock: Clock


@pytest.fixture
def url(pg_server: PgServer) -> str:
    return pg_server.new_store_url()


@asynccontextmanager
async def running(url: str, node_id: str, agent: object | None = None) -> AsyncIterator[Node]:
    clock = Clock()
    async with Store.open(url, node=node_id) as store:
        async with open_node(store, node_id, f"http://127.0.0.1:80{len(node_id)}", LEASE, clock=clock) as cluster:
            agent = agent or Echo(node_id)
            async with ActorSystem.open(store, agent, ownership=cluster.leases, tune_gc=False) as system:
                yield Node(store, cluster, system, clock)


def envelope(text: str, **fields: object) -> Envelope:
    return Envelope(KEY, (Message("user", text),), **fields)  # type: ignore[arg-type]


def later(node: Node, seconds: float) -> None:
    """`seconds` pass on the node's clock, then it reads the registry (where liveness is judged)."""
    node.clock.now += seconds
    node.cluster.registry.refresh()


def dies(survivor: Node) -> None:
    """The other nodes' heartbeats stand still, as the survivor reads them, for longer than a lease."""
    survivor.cluster.registry.refresh()
    later(survivor, LEASE + 1)


async def test_nodes_share_a_schema_a_node_id_runs_once_and_a_single_host_is_kept_out(url: str) -> None:
    async with running(url, "a"), running(url, "b"):
        with pytest.raises(DatabaseLocked, match=r"cluster node 'a' is already running.*another --node-id"):
            async with Store.open(url, node="a"):
                pass
        with pytest.raises(DatabaseLocked, match="already in use"):
            async with Store.open(url):  # a single host would write without leases
                pass
    async with Store.open(url) as single:
        with pytest.raises(DatabaseLocked, match="in use by a single host"):
            async with Store.open(url, node="a"):
                pass
        assert single.get("nodes", "a") is None  # both nodes deregistered on their way out


async def test_a_lease_race_has_one_winner_and_the_epoch_grows_with_every_owner(url: str) -> None:
    async with running(url, "a") as a, running(url, "b") as b:
        outcomes: dict[str, object] = {}

        async def claim(node: Node) -> None:
            try:
                outcomes[node.cluster.node_id] = await node.cluster.leases.claim(KEY)
            except NotOwner as exc:
                outcomes[node.cluster.node_id] = exc

        async with trio.open_nursery() as nursery:
            nursery.start_soon(claim, a)
            nursery.start_soon(claim, b)
        winners = [node for node, outcome in outcomes.items() if outcome is True]
        assert len(winners) == 1
        (winner,) = winners
        loser = "b" if winner == "a" else "a"
        lost = outcomes[loser]
        assert isinstance(lost, NotOwner) and lost.owner == winner
        assert a.store.get("leases", KEY.path) == Lease(winner, 1)

        # the winner dies (as the loser sees it): the loser takes it at the next epoch
        survivor = a if loser == "a" else b
        dies(survivor)
        assert await survivor.cluster.leases.claim(KEY) is True
        assert a.store.get("leases", KEY.path) == Lease(loser, 2)
        assert await survivor.cluster.leases.claim(KEY) is False  # held already: no change
        assert a.store.get("leases", KEY.path) == Lease(loser, 2)


async def test_a_fenced_node_writes_nothing_raises_and_drops_the_conversation(url: str) -> None:
    async with running(url, "a") as a, running(url, "b") as b:
        first = await (await a.system.submit(envelope("one"))).reply()
        assert first.text == "a: one"
        assert a.store.get("leases", KEY.path) == Lease("a", 1)

        dies(b)  # a stops (a GC pause, a partition): b takes the conversation
        assert await b.cluster.locator(b.system).locate(KEY) is None
        assert b.store.get("leases", KEY.path) == Lease("b", 2)
        taken = await (await b.system.submit(envelope("two"))).reply()
        assert taken.text == "b: two"

        # a resumes, still believing it owns the conversation: its turn commits nothing
        fenced = await (await a.system.submit(envelope("three"))).reply()
        assert fenced.status == "failed" and fenced.error is not None and fenced.error.code == "not_owner"
        snapshot = a.store.get("snapshots", KEY.path)
        assert snapshot.seq == 2 and snapshot.state == {"turns": 2}
        assert [a.store.get("turns", turn_key(KEY.path, n)).output[0].text for n in (1, 2)] == ["a: one", "b: two"]
        assert a.store.get("turns", turn_key(KEY.path, 3)) is None
        assert a.system.stats.fenced_commits == 1
        assert KEY not in [info.key for info in a.system.actors()]

        # an envelope a accepts meanwhile is refused before anything is stored (its inbox row is b's to run)
        with pytest.raises(NotOwner):
            await a.system.submit(envelope("keyed", idempotency_key="k-a"))
        assert a.store.count("inbox") == 0 and a.system.stats.fenced_commits == 1

        # and it no longer takes the conversation while b is live: it points to b
        with pytest.raises(NotOwner) as refused:
            await a.system.submit(envelope("four"))
        assert refused.value.owner == "b" and refused.value.retry_after > 0
        assert await a.cluster.locator(a.system).locate(KEY) == Peer("b", "http://127.0.0.1:801")


async def test_a_node_whose_heartbeat_stood_still_reads_its_leases_back_and_sends_a_lost_conversation_on(
    url: str,
) -> None:
    async with running(url, "a") as a, running(url, "b") as b:
        await (await a.system.submit(envelope("one"))).reply()
        dies(b)  # a stops past its detection window: b takes the conversation
        assert (await (await b.system.submit(envelope("two"))).reply()).text == "b: two"

        a.clock.now += LEASE  # a resumes: none of its beats was committed meanwhile, as its own clock tells
        await b.cluster.registry.beat()
        a.cluster.registry.refresh()  # (b's heartbeat moved meanwhile: b is live)
        assert not a.cluster.registry.fresh
        # a request reaching a goes to b: a checked the lease in the store instead of running a turn it would lose
        assert await a.cluster.locator(a.system).locate(KEY) == Peer("b", "http://127.0.0.1:801")
        assert a.system.stats.fenced_commits == 0 and a.system.stats.turns == 1
        assert a.cluster.leases.held == {}

        await a.cluster.registry.beat()
        assert a.cluster.registry.fresh


async def test_passivation_releases_the_lease_and_the_next_turn_takes_it_at_a_new_epoch(url: str) -> None:
    async with running(url, "a") as a, running(url, "b") as b:
        await (await a.system.submit(envelope("one"))).reply()
        assert a.system.passivate(KEY)
        await trio.testing.wait_all_tasks_blocked()
        await a.store.commit([])  # the release's commit is in
        assert a.store.get("leases", KEY.path) == Lease("", 1)
        assert a.cluster.leases.lease(KEY.path) is None

        # free: any node takes it, no waiting for a lease to run out
        assert await b.cluster.locator(b.system).locate(KEY) is None
        reply = await (await b.system.submit(envelope("two"))).reply()
        assert reply.text == "b: two" and b.store.get("snapshots", KEY.path).seq == 2
        assert b.store.get("leases", KEY.path) == Lease("b", 2)


async def test_a_clean_shutdown_gives_every_lease_back(url: str) -> None:
    async with running(url, "a") as a:
        await (await a.system.submit(envelope("one"))).reply()
        await (await a.system.submit(Envelope(ConversationKey("acme", "other"), (Message("user", "x"),)))).reply()
    async with Store.open(url) as store:
        assert dict(store.scan("leases")) == {"acme/chat": Lease("", 1), "acme/other": Lease("", 1)}
        assert store.count("nodes") == 0


async def left_by_a_ghost(store: Store, pending: Envelope) -> None:
    """What a node ("ghost", epoch 3) killed mid-turn leaves: its record, its lease, an accepted inbox row."""
    path = pending.key.path
    await store.commit([
        Put("nodes", "ghost", NodeRecord("ghost", "http://127.0.0.1:9", 7, LEASE, 0.0, 0.0)),
        Put("leases", path, Lease("ghost", 3)),
        Put("inbox", inbox_key(path, 1), InboxRecord(pending, received_at=1.0)),
    ])  # fmt: skip


async def test_the_sweeper_replays_a_dead_nodes_pending_inbox_row_once(url: str) -> None:
    ghost = ConversationKey("acme", "left-behind")
    pending = Envelope(ghost, (Message("user", "pay the invoice"),), idempotency_key="k1", turn_id="turn_ghost1")
    async with running(url, "a") as a:
        await left_by_a_ghost(a.store, pending)
        a.cluster.registry.refresh()
        assert await a.cluster.sweep_once(a.system, lambda key: None) == 0  # ghost is live so far

        later(a, LEASE + 1)
        assert await a.cluster.sweep_once(a.system, lambda key: None) == 1
        with trio.fail_after(10):
            while a.store.count("inbox"):
                await trio.sleep(0.01)
        snapshot = a.store.get("snapshots", ghost.path)
        assert snapshot.seq == 1
        assert a.store.get("turns", turn_key(ghost.path, 1)).turn_id == "turn_ghost1"
        assert a.store.get("leases", ghost.path) == Lease("a", 4)
        assert a.system.stats.taken_over == 1
        assert await a.cluster.sweep_once(a.system, lambda key: None) == 0  # nothing left to take


async def test_the_sweeper_and_a_follower_taking_a_dead_nodes_conversation_at_once_replay_its_row_once(
    url: str,
) -> None:
    """A client following a turn of a dead node's conversation makes its node take the conversation over (see
    `HostChannelContext._taken`) at the very moment the sweeper does: both are told its pending work replays (so
    neither gives the lease back), the follower gets the turn's reply, and the row replays once."""
    ghost = ConversationKey("acme", "followed")
    pending = Envelope(ghost, (Message("user", "pay the invoice"),), idempotency_key="k1", turn_id="turn_ghost1")
    async with running(url, "a") as a:
        await left_by_a_ghost(a.store, pending)
        dies(a)
        swept: list[int] = []
        followed: list[bool] = []

        async def sweep() -> None:
            swept.append(await a.cluster.sweep_once(a.system, lambda key: None))

        async def follow() -> None:
            followed.append(await a.system.take_over(ghost))

        with trio.fail_after(10):
            async with trio.open_nursery() as nursery:
                nursery.start_soon(sweep)
                nursery.start_soon(follow)
            assert swept == [1] and followed == [True]
            handle = a.system.join("turn_ghost1")
            assert handle is not None
            reply = await handle.reply()
            while a.store.count("inbox"):
                await trio.sleep(0.01)
        assert reply.status == "completed" and reply.text == "a: pay the invoice"
        assert a.store.get("snapshots", ghost.path).seq == 1  # one turn: the row replayed once
        assert a.store.get("leases", ghost.path) == Lease("a", 4)


async def test_the_running_sweeper_takes_a_dead_nodes_pending_work_at_the_read_that_finds_it_dead(url: str) -> None:
    ghost = ConversationKey("acme", "orphan")
    pending = Envelope(ghost, (Message("user", "hi"),), idempotency_key="k1")
    async with running(url, "a") as a, trio.open_nursery() as nursery:
        await left_by_a_ghost(a.store, pending)
        a.cluster.registry.refresh()
        await nursery.start(a.cluster.sweep, a.system, lambda key: None)
        await trio.testing.wait_all_tasks_blocked()
        assert a.store.count("inbox") == 1  # ghost is live so far

        later(a, LEASE / 2)  # a read finds its beat still for half a lease: the sweeper wakes (its period is LEASE / 3)
        with trio.fail_after(LEASE / 6):
            while a.store.count("inbox"):
                await trio.sleep(0.01)
        assert a.store.get("leases", ghost.path) == Lease("a", 4) and a.cluster.taken_over == 1
        nursery.cancel_scope.cancel()


async def test_the_sweeper_leaves_a_dead_nodes_conversation_to_its_preferred_live_node(url: str) -> None:
    async with running(url, "a") as a, running(url, "b") as b:
        keys = [ConversationKey("acme", f"c{n}") for n in range(12)]
        ops: list[Put] = [Put("nodes", "ghost", NodeRecord("ghost", "http://127.0.0.1:9", 1, LEASE, 0.0, 0.0))]
        for n, key in enumerate(keys):
            row = InboxRecord(Envelope(key, (Message("user", "hi"),), idempotency_key=f"k{n}"), received_at=1.0)
            ops += [Put("leases", key.path, Lease("ghost", 1)), Put("inbox", inbox_key(key.path, n + 1), row)]
        await a.store.commit(ops)
        for node in (a, b):
            node.cluster.registry.refresh()
            node.clock.now += LEASE + 1  # the ghost's heartbeat stood still for a lease...
        for node in (a, b):
            await node.cluster.registry.beat()  # ... while a's and b's moved
        for node in (a, b):
            node.cluster.registry.refresh()
        taken_a = await a.cluster.sweep_once(a.system, lambda key: None)
        taken_b = await b.cluster.sweep_once(b.system, lambda key: None)
        assert taken_a + taken_b == len(keys) and taken_a and taken_b  # each took its rendezvous share
        with trio.fail_after(10):
            while a.store.count("inbox"):
                await trio.sleep(0.01)
        owners = {a.store.get("leases", key.path).owner for key in keys}
        assert owners == {"a", "b"}
        assert all(a.store.get("snapshots", key.path).seq == 1 for key in keys)


async def test_a_dead_nodes_undelivered_outbox_rows_are_handed_to_delivery_and_its_record_forgotten(url: str) -> None:
    ghost = ConversationKey("acme", "unsent")
    row_key = outbox_key(ghost.path, 5)
    async with running(url, "a") as a:
        await a.store.commit([
            Put("nodes", "ghost", NodeRecord("ghost", "http://127.0.0.1:9", 7, LEASE, 0.0, 0.0)),
            Put("leases", ghost.path, Lease("ghost", 2)),
            Put("outbox", row_key, OutboxRecord("telegram", {"chat_id": 1}, {"text": "hi"})),
        ])  # fmt: skip
        a.cluster.registry.refresh()
        handed: list[str] = []
        assert await a.cluster.sweep_once(a.system, handed.append) == 0
        assert handed == []  # ghost is live so far: its deliveries are its own

        later(a, LEASE + 1)
        assert await a.cluster.sweep_once(a.system, handed.append) == 1
        assert handed == [row_key]
        assert a.store.get("leases", ghost.path) == Lease("a", 3)
        assert a.cluster.registry.dead() == ["ghost"]

        assert await a.cluster.registry.forget_silent() == []  # silent for one lease: kept
        later(a, 2 * LEASE)
        assert await a.cluster.registry.forget_silent() == ["ghost"]
        assert a.store.get("nodes", "ghost") is None and a.cluster.registry.dead() == []


async def test_a_timer_fires_only_on_the_node_that_owns_its_conversation(url: str) -> None:
    async with running(url, "a") as a, running(url, "b") as b:
        await (await a.system.submit(envelope("one"))).reply()
        timer = await Timers(b.store, b.system).schedule(KEY, after=0, id="nudge")
        row_key = ledger.timer_key(KEY.path, timer.id)
        record = b.store.get("timers", row_key)
        with pytest.raises(NotOwner) as refused:
            await b.system.fire(row_key, record, record.timer.due_at)
        assert refused.value.owner == "a"
        assert b.store.get("timers", row_key).pending and b.store.count("inbox") == 0  # nothing written

        assert await a.system.fire(row_key, record, record.timer.due_at)
        with trio.fail_after(10):
            while a.store.get("snapshots", KEY.path).seq < 2:
                await trio.sleep(0.01)
        assert a.store.get("turns", turn_key(KEY.path, 2)).output[0].text.startswith("a: ")
        assert a.system.stats.timers_fired == 1 and b.system.stats.timers_fired == 0


async def test_a_node_restarted_under_its_id_continues_its_beat_and_replays_its_own_conversations_at_once(
    url: str,
) -> None:
    mine = ConversationKey("acme", "mine")
    row = InboxRecord(Envelope(mine, (Message("user", "hi"),), idempotency_key="k"), received_at=1.0)
    async with Store.open(url, node="seed") as seed:  # what a killed run of node a left behind
        await seed.commit([
            Put("nodes", "a", NodeRecord("a", "http://127.0.0.1:9", 41, LEASE, 0.0, 0.0)),
            Put("leases", mine.path, Lease("a", 4)),
            Put("inbox", inbox_key(mine.path, 1), row),
        ])  # fmt: skip
    async with running(url, "a") as a:
        assert a.store.get("nodes", "a").beat == 42
        assert a.store.count("inbox") == 1  # a cluster node replays nothing at startup by itself...
        assert await a.cluster.sweep_once(a.system, lambda key: None) == 1  # ...its sweeper does
        with trio.fail_after(10):
            while a.store.count("inbox"):
                await trio.sleep(0.01)
        assert a.store.get("snapshots", mine.path).seq == 1
        assert a.store.get("leases", mine.path) == Lease("a", 5)


async def test_each_nodes_timer_scheduler_fires_the_timers_of_its_own_conversations(url: str) -> None:
    other = ConversationKey("acme", "other")
    async with running(url, "a") as a, running(url, "b") as b:
        await (await a.system.submit(envelope("one"))).reply()
        await (await b.system.submit(Envelope(other, (Message("user", "one"),)))).reply()
        async with trio.open_nursery() as nursery:
            schedulers = [Timers(node.store, node.system) for node in (a, b)]
            for scheduler in schedulers:
                await nursery.start(scheduler.run)
            await schedulers[1].schedule(KEY, after=0, id="for-a")
            await schedulers[1].schedule(other, after=0, id="for-b")
            for scheduler in schedulers:
                scheduler.wake(0)
            with trio.fail_after(10):
                while a.store.get("snapshots", KEY.path).seq < 2 or a.store.get("snapshots", other.path).seq < 2:
                    await trio.sleep(0.01)
            nursery.cancel_scope.cancel()
        assert a.store.get("turns", turn_key(KEY.path, 2)).output[0].text.startswith("a: ")
        assert a.store.get("turns", turn_key(other.path, 2)).output[0].text.startswith("b: ")
        assert (a.system.stats.timers_fired, b.system.stats.timers_fired) == (1, 1)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def test_cluster_nodes_with_a_secret_forward_a_turn_to_the_conversations_owner(url: str) -> None:
    ports = {"a": _free_port(), "b": _free_port()}
    async with AsyncExitStack() as stack:
        hosts = {
            name: await stack.enter_async_context(
                open_host(
                    Echo(name), channels=[ResponsesChannel()], store=url, node_id=name, port=port,
                    advertise=f"http://127.0.0.1:{port}", cluster_secret="s3cret", web_ui=False,
                )
            )
            for name, port in ports.items()
        }  # fmt: skip
        assert isinstance(hosts["b"].locator, LeaseLocator)
        async with httpx.AsyncClient(timeout=30) as client:
            body = {"model": "m", "input": "hello", "conversation": "shared"}
            first = await client.post(f"http://127.0.0.1:{ports['a']}/v1/responses", json=body)
            assert first.status_code == 200, first.text
            assert first.json()["output"][0]["content"][0]["text"] == "a: hello"
            second = await client.post(f"http://127.0.0.1:{ports['b']}/v1/responses", json={**body, "input": "again"})
            assert second.status_code == 200, second.text
            assert second.json()["output"][0]["content"][0]["text"] == "a: again"  # run on its owner, a
        assert hosts["b"].system.stats.turns == 0 and hosts["a"].system.stats.turns == 2
