"""`Store.leadership` on a real (throwaway) PostgreSQL: one holder per role and schema, handed over when the holder
closes, is cut off, or is killed with kill -9; and `ChannelContext.lead` on top of it."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import psycopg
import pytest
import trio

import afactors
from afactors.channel import Contribution
from afactors.store import Store
from afactors.store._pg_leader import ANSWER_WITHIN, CHECK, lock_key, pg_leadership
from afactors.store.pg_server import PgServer

FAST = {"retry": 0.05, "check": 0.05}
ROOT = Path(__file__).resolve().parents[2]


def terminate_holder(url: str, schema_url: str, name: str) -> int:
    """Cut the session that holds role `name` of `schema_url`'s schema (as an operator or a network fault would);
    how many sessions were cut."""
    with psycopg.connect(schema_url, autocommit=True) as conn:
        schema = conn.execute("SELECT current_schema()").fetchone()[0]  # type: ignore[index]
    key = lock_key(schema, name) & 0xFFFF_FFFF_FFFF_FFFF
    with psycopg.connect(url, autocommit=True) as conn:
        rows = conn.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_locks WHERE locktype = 'advisory' AND granted"
            " AND objsubid = 1 AND classid = %s AND objid = %s",
            (key >> 32, key & 0xFFFF_FFFF),
        ).fetchall()
    return len(rows)


async def test_one_holder_per_role_and_schema(pg_server: PgServer) -> None:
    url, other_schema = pg_server.new_store_url(), pg_server.new_store_url()
    async with (
        pg_leadership(url, "poll", **FAST) as first,
        pg_leadership(url, "poll", **FAST) as second,
        pg_leadership(url, "other role", **FAST) as other_role,
        pg_leadership(other_schema, "poll", **FAST) as elsewhere,
    ):
        assert await first.try_acquire() and await first.try_acquire()  # held, and asking again keeps it
        assert not await second.try_acquire()
        assert await other_role.try_acquire() and await elsewhere.try_acquire()
    async with pg_leadership(url, "poll", **FAST) as after:  # leaving the blocks gave every role up
        assert await after.try_acquire()


async def test_the_next_holder_takes_over_when_the_holder_leaves(pg_server: PgServer) -> None:
    url = pg_server.new_store_url()
    took_over = trio.Event()

    async def wait_for_it() -> None:
        async with pg_leadership(url, "poll", **FAST) as waiting:
            await waiting.acquire()
            took_over.set()

    async with trio.open_nursery() as nursery:
        async with pg_leadership(url, "poll", **FAST) as holder:
            assert await holder.try_acquire()
            nursery.start_soon(wait_for_it)
            await trio.sleep(0.3)  # several of the waiter's tries
            assert not took_over.is_set()
        with trio.fail_after(5):
            await took_over.wait()


async def test_a_holder_whose_connection_is_cut_learns_it_lost_and_another_takes_over(pg_server: PgServer) -> None:
    url = pg_server.new_store_url()
    async with pg_leadership(url, "poll", **FAST) as holder, pg_leadership(url, "poll", **FAST) as rival:
        assert await holder.try_acquire() and not await rival.try_acquire()
        assert await trio.to_thread.run_sync(terminate_holder, pg_server.url(), url, "poll") == 1
        with trio.fail_after(5):
            await holder.lost.wait()
            await rival.acquire()
        assert not await holder.try_acquire()  # a lost claim stays lost: lead again with a new one
        assert not rival.lost.is_set()


HOLDER = """
import sys, trio
from afactors.store._pg_leader import pg_leadership

async def main():
    async with pg_leadership(sys.argv[1], "poll") as claim:
        await claim.acquire()
        print("leading", flush=True)
        await trio.sleep_forever()

trio.run(main)
"""


@pytest.mark.slow
async def test_a_holder_killed_with_kill_9_hands_the_role_over(pg_server: PgServer, tmp_path: Path) -> None:
    url = pg_server.new_store_url()
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    holder = await trio.lowlevel.open_process([sys.executable, "-c", HOLDER, url], stdout=subprocess.PIPE, env=env)
    try:
        assert holder.stdout is not None
        with trio.fail_after(30):
            assert (await holder.stdout.receive_some()).startswith(b"leading")
        async with pg_leadership(url, "poll", **FAST) as rival:
            assert not await rival.try_acquire()
            holder.kill()
            await holder.wait()
            with trio.fail_after(5):
                await rival.acquire()
    finally:
        holder.kill()
        await holder.wait()


async def test_a_store_one_host_opens_always_leads(tmp_path: Path) -> None:
    async with Store.open(tmp_path / "state") as store, store.leadership("poll") as claim:
        assert await claim.try_acquire()
        await claim.acquire()
        assert not claim.lost.is_set()


class Poller:
    """A channel whose service counts how often it started and stopped and notes whether it is running."""

    name = "poller"
    run_hook = response_hook = None

    def __init__(self) -> None:
        self.starts = self.stops = 0
        self.running = False

    def contribute(self, ctx) -> Contribution:
        async def service(*, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
            self.starts += 1
            self.running = True
            task_status.started()
            try:
                await trio.sleep_forever()
            finally:
                self.running = False
                self.stops += 1

        async def lead(*, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
            await ctx.lead("poll", service, task_status=task_status)

        return Contribution(tasks=[lead])


async def until(condition, timeout: float = 10.0) -> None:
    with trio.fail_after(timeout):
        while not condition():
            await trio.sleep(0.01)


async def test_a_channel_service_runs_only_while_its_host_leads(pg_server: PgServer) -> None:
    url, channel = pg_server.new_store_url(), Poller()
    async with pg_leadership(url, "poller/poll", **FAST) as rival:
        assert await rival.try_acquire()
        async with afactors.open_host(channels=[channel], store=url, port=0, web_ui=False) as host:
            assert host.ready.is_set() and channel.starts == 0  # started without leading
            await trio.sleep(0.3)
            assert channel.starts == 0
            rival_cut = await trio.to_thread.run_sync(terminate_holder, pg_server.url(), url, "poller/poll")
            assert rival_cut == 1
            await until(lambda: channel.running)
            assert await trio.to_thread.run_sync(terminate_holder, pg_server.url(), url, "poller/poll") == 1
            # its connection was cut: the service stops (it may be running again by the time this looks, once the
            # host has a new connection and the role)
            await until(lambda: channel.stops == 1, timeout=CHECK + ANSWER_WITHIN)
            await until(lambda: channel.running)
            assert channel.starts == 2
        assert not channel.running
