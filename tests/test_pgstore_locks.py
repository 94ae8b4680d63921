"""Cluster nodes' row locks on a real throwaway PostgreSQL: a node stopped mid-commit, or a transaction that keeps a
row locked, holds up another node's commits for a bounded time only, and nothing unwritten is acknowledged."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager, suppress
from functools import partial
from typing import Any

import psycopg
import trio

from afactors.store import Expect, Lease, Put, StoreError
from afactors.store._codec import encode_key
from afactors.store._pg_store import PgStore, row_locks
from afactors.store.pg_server import PgServer

PATH = "acme/chat"
GIVE_UP = 20.0  # seconds a test waits for a commit before it ends the lock's holder itself and fails


def lock_lease_row(conn: psycopg.Connection[Any], schema: str) -> None:
    """Take the lease row's transaction lock as a node's commit does first, and leave the transaction open."""
    conn.execute("SELECT pg_advisory_xact_lock(k) FROM unnest(%s::bigint[]) AS t(k)",
                 (row_locks(schema, {("leases", encode_key(PATH))}),))  # fmt: skip


def end_backend(url: str, pid: int) -> None:
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("SELECT pg_terminate_backend(%s)", (pid,))


@asynccontextmanager
async def ending_after(url: str, pid: int) -> AsyncIterator[list[bool]]:
    """Ends backend `pid` if the block is still running after `GIVE_UP` seconds (so a commit waiting for its lock ends
    and the test fails instead of hanging); the list it yields holds True once it had to."""
    fired: list[bool] = []

    async def guard() -> None:
        await trio.sleep(GIVE_UP)
        fired.append(True)
        await trio.to_thread.run_sync(end_backend, url, pid)

    async with trio.open_nursery() as nursery:
        nursery.start_soon(guard)
        yield fired
        nursery.cancel_scope.cancel()


async def test_a_node_stopped_mid_commit_loses_its_locks_with_its_session_and_its_commit_is_fenced(
    pg_server: PgServer,
) -> None:
    url = pg_server.new_store_url()
    async with (
        PgStore.open(url, node="a", idle_in_transaction_timeout=0.5) as a,
        PgStore.open(url, node="b", idle_in_transaction_timeout=0.5) as b,
    ):
        assert await b.commit([Put("leases", PATH, Lease("b", 1))], expect=[Expect("leases", PATH, None)])
        # b stops between its row locks and its COMMIT (SIGSTOP mid-commit): its session holds the lease row's lock
        stopped = b._writer_conn
        await trio.to_thread.run_sync(lock_lease_row, stopped, b._schema, limiter=b._thread)

        async with ending_after(url, stopped.info.backend_pid) as ended:
            take = [Put("leases", PATH, Lease("a", 2))]
            assert await a.commit(take, expect=[Expect("leases", PATH, Lease("b", 1))])
        assert not ended, "a's commit waited for the lock of a stopped node's transaction"
        assert a.get("leases", PATH) == Lease("a", 2)

        # b resumes: its session is gone (nothing of that transaction was written); its next commit runs on a new
        # connection and is refused, as the lease moved: nothing is acknowledged that was not written
        assert (
            await b.commit([Put("leases", PATH, Lease("b", 3))], expect=[Expect("leases", PATH, Lease("b", 1))])
            is False
        )
        assert b._writer_conn is not stopped and stopped.broken
        assert b.get("leases", PATH) == Lease("a", 2)
        assert b.statistics().failed_commits == 0


async def test_a_row_locked_past_the_lock_timeout_fails_only_the_commit_that_expects_it(pg_server: PgServer) -> None:
    url = pg_server.new_store_url()
    async with PgStore.open(url, node="a", lock_timeout=0.5) as a:
        holder = await trio.to_thread.run_sync(psycopg.connect, url)
        try:
            # another node's transaction holds the lease row's lock and is busy, not idle (its own statement runs)
            await trio.to_thread.run_sync(lock_lease_row, holder, a._schema)

            def busy() -> None:
                with suppress(psycopg.Error):  # ended by the test
                    holder.execute("SELECT pg_sleep(%s)", (3 * GIVE_UP,))

            outcomes: dict[str, object] = {}

            async def commit(path: str) -> None:
                try:
                    outcomes[path] = await a.commit(
                        [Put("leases", path, Lease("a", 1))], expect=[Expect("leases", path, None)]
                    )
                except StoreError as exc:
                    outcomes[path] = exc

            async with trio.open_nursery() as holding:
                holding.start_soon(trio.to_thread.run_sync, busy)
                async with ending_after(url, holder.info.backend_pid) as ended, trio.open_nursery() as nursery:
                    nursery.start_soon(commit, PATH)  # in one group commit with the next, most likely
                    nursery.start_soon(commit, "acme/other")
                await trio.to_thread.run_sync(end_backend, url, holder.info.backend_pid)
        finally:
            holder.close()
        assert not ended, "the commits waited for the lock past the lock timeout"
        assert outcomes["acme/other"] is True
        refused = outcomes[PATH]
        assert isinstance(refused, StoreError) and "lock_timeout" in str(refused)
        assert a.get("leases", PATH) is None and a.get("leases", "acme/other") == Lease("a", 1)

        # the holder is gone: the same commit goes through
        assert await a.commit([Put("leases", PATH, Lease("a", 1))], expect=[Expect("leases", PATH, None)])


async def test_a_node_held_dead_has_its_sessions_ended_so_its_row_locks_go(pg_server: PgServer) -> None:
    url = pg_server.new_store_url()
    async with PgStore.open(url, node="a") as a, PgStore.open(url, node="b") as b:
        assert await b.commit([Put("leases", PATH, Lease("b", 1))], expect=[Expect("leases", PATH, None)])
        # b stopped inside a pipelined commit: its session holds the row lock and is not idle, so no timeout ends it
        stopped = b._writer_conn
        await trio.to_thread.run_sync(lock_lease_row, stopped, b._schema, limiter=b._thread)

        def busy() -> None:
            with suppress(psycopg.Error):  # ended by a
                stopped.execute("SELECT pg_sleep(%s)", (3 * GIVE_UP,))

        async with trio.open_nursery() as nursery:
            nursery.start_soon(partial(trio.to_thread.run_sync, busy, limiter=b._thread))
            assert a.end_sessions("a") == 0  # never its own
            with trio.fail_after(GIVE_UP):
                while not a.end_sessions("b"):  # (once b's statement has started)
                    await trio.sleep(0.05)
                take = [Put("leases", PATH, Lease("a", 2))]
                assert await a.commit(take, expect=[Expect("leases", PATH, Lease("b", 1))])
        assert a.get("leases", PATH) == Lease("a", 2)
        # b resumes on a new connection, and its commit as the lease's old holder is refused
        assert not await b.commit([Put("leases", PATH, Lease("b", 3))], expect=[Expect("leases", PATH, Lease("b", 1))])
        assert b._writer_conn is not stopped
