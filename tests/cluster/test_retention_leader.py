"""Retention runs on one node of a cluster, the holder of the store's "retention" leadership (a PostgreSQL advisory
lock), and moves to another node when that one leaves; a host on LMDB always sweeps."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import httpx
import trio

import afactors
from afactors.host import Host, RetentionConfig
from afactors.store.pg_server import PgServer
from tests.cluster.conftest import pg_node

OFTEN = RetentionConfig(interval=0.05)


async def until_swept(host: Host, more_than: int = 0) -> None:
    with trio.fail_after(10):
        while host.sweeper.sweeps <= more_than:
            await trio.sleep(0.02)


@asynccontextmanager
async def leading_node_a(url: str) -> AsyncIterator[tuple[Host, trio.Event]]:
    """Node "a", once it has swept (it took the "retention" role), and the event that makes it leave."""
    stop = trio.Event()
    hosts: list[Host] = []

    async def run_a(*, task_status: trio.TaskStatus[None]) -> None:
        async with pg_node(url, "a", retention=OFTEN) as a:
            hosts.append(a)
            task_status.started()
            await stop.wait()

    async with trio.open_nursery() as nursery:
        await nursery.start(run_a)
        await until_swept(hosts[0])
        yield hosts[0], stop
        stop.set()


async def test_one_node_sweeps_and_another_takes_over_when_it_leaves(pg_server: PgServer) -> None:
    url = pg_server.new_store_url()
    async with leading_node_a(url) as (a, stop_a), pg_node(url, "b", retention=OFTEN) as b:
        before = a.sweeper.sweeps
        await until_swept(a, before + 5)  # a keeps sweeping meanwhile ...
        assert b.sweeper.sweeps == 0  # ... and b never does
        stop_a.set()  # a leaves: its session ends, and with it the advisory lock
        await until_swept(b)
        assert a.sweeper.sweeps >= before + 5


async def test_a_node_whose_sessions_are_ended_while_it_waits_for_the_role_keeps_serving_and_leads_later(
    pg_server: PgServer,
) -> None:
    # What the others do to a node they hold dead (`end_sessions`): its writer and its waiting claim on "retention"
    # lose their connections. Once it is back it reconnects, waits for the role again and takes it when it is free.
    url = pg_server.new_store_url()
    async with leading_node_a(url) as (a, stop_a), pg_node(url, "b", retention=OFTEN) as b:
        assert a.store.end_sessions("b") == 2  # b's writer and its waiting claim
        async with httpx.AsyncClient(base_url=b.urls[0], timeout=20) as client:
            answer = await client.post("/v1/responses", json={"input": "still here?"})
        assert answer.status_code == 200, answer.text
        assert b.sweeper.sweeps == 0
        stop_a.set()
        await until_swept(b)


async def test_a_host_on_lmdb_always_sweeps(tmp_path: Path) -> None:
    async with afactors.open_host(state_dir=tmp_path / "state", port=0, retention=OFTEN) as host:
        await until_swept(host, 2)
