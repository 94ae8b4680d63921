"""`PgLeadership`: a named role held as a PostgreSQL session advisory lock on a connection of its own.

The lock's key is a 64-bit hash of the schema and the role's name (the one-key form of `pg_try_advisory_lock`,
a space apart from the store's own two-key schema lock), so the hosts sharing a schema contend for it and other
schemas never do. PostgreSQL holds it while the session lives: a holder killed with `kill -9` (or whose
connection is cut) loses it as soon as the server sees the connection close, and another host takes it on its
next try. While held, the holder checks every `check` seconds that its connection still answers; a failure, or
no answer within `ANSWER_WITHIN` seconds, sets `lost`.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import threading
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import psycopg
import trio

from afactors.store._integrity import StoreError
from afactors.store._leadership import Leadership

log = logging.getLogger("afactors.store")

RETRY = 1.0
"""Seconds between tries to take a role another host holds."""
CHECK = 1.0
"""Seconds between checks that a held role's connection still answers."""
ANSWER_WITHIN = 5.0
"""Seconds a check waits for the server before the role counts as lost."""
_KEEPALIVE: dict[str, Any] = {"keepalives": 1, "keepalives_idle": 5, "keepalives_interval": 2, "keepalives_count": 3}


def lock_key(schema: str, name: str) -> int:
    """The advisory lock key of role `name` in `schema`: a signed 64-bit hash."""
    digest = hashlib.blake2b(f"{schema}\x00{name}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big", signed=True)


class PgLeadership(Leadership):
    """A claim on role `name` through the connection `conn` (autocommit, used by one worker thread at a time)."""

    def __init__(
        self, conn: psycopg.Connection[Any], name: str, key: int, nursery: trio.Nursery, *, retry: float, check: float
    ) -> None:
        super().__init__()
        self.name = name
        self._conn, self._key, self._nursery = conn, key, nursery
        self._retry, self._check = retry, check
        self._held = False
        self._guard = threading.Lock()  # the connection's state: a check in flight, a close asked for
        self._busy = self._closing = False

    async def try_acquire(self) -> bool:
        if self._held:
            return True
        if self.lost.is_set():
            return False
        try:
            got = await trio.to_thread.run_sync(self._run, "SELECT pg_try_advisory_lock(%s)", self._key)
        except psycopg.Error as exc:
            raise StoreError(f"cannot take the role {self.name!r}: {exc}") from None
        if got:
            self._held = True
            self._nursery.start_soon(self._watch)
        return got

    async def acquire(self) -> None:
        while not await self.try_acquire():
            if self.lost.is_set():
                raise StoreError(f"the connection for the role {self.name!r} was lost")
            await trio.sleep(self._retry)

    async def _watch(self) -> None:
        """Check the connection every `check` seconds; set `lost` when it fails or hangs."""
        while True:
            await trio.sleep(self._check)
            reason = f"no answer within {ANSWER_WITHIN:g} s"
            with trio.move_on_after(ANSWER_WITHIN):
                try:
                    await trio.to_thread.run_sync(self._run, "SELECT 1", None, abandon_on_cancel=True)
                    continue
                except psycopg.Error as exc:
                    reason = str(exc).strip() or type(exc).__name__
            log.warning("lost the role %r: its PostgreSQL connection failed (%s)", self.name, reason)
            self._held = False
            self.lost.set()
            return

    def _run(self, query: str, key: int | None) -> bool:
        """One query on the connection (in a worker thread); closes it afterwards if `close` asked meanwhile."""
        with self._guard:
            if self._closing:
                raise psycopg.OperationalError("the connection is closed")
            self._busy = True
        try:
            row = self._conn.execute(query, () if key is None else (key,)).fetchone()
            return bool(row and row[0])
        finally:
            with self._guard:
                self._busy = False
                if self._closing:
                    self._give_up()

    def close(self) -> None:
        """Close the connection (giving the role up), now or, if a check hangs on it, when that check returns."""
        with self._guard:
            self._closing = True
            if not self._busy:
                self._give_up()

    def _give_up(self) -> None:
        # Unlocked here rather than when the server notices the connection closed, a moment later: the next
        # holder (a host started right after this one stopped) takes the role at once.
        with contextlib.suppress(psycopg.Error):
            self._conn.execute("SELECT pg_advisory_unlock_all()")
        self._conn.close()


def _connect(url: str, timeout: float, application_name: str | None) -> psycopg.Connection[Any]:
    params: dict[str, Any] = {**_KEEPALIVE, "application_name": application_name}  # (None: not set)
    try:
        return psycopg.connect(url, autocommit=True, connect_timeout=max(1, round(timeout)), **params)
    except psycopg.Error as exc:
        raise StoreError(f"cannot connect to the PostgreSQL store: {exc}".strip()) from None


@asynccontextmanager
async def pg_leadership(
    url: str,
    name: str,
    *,
    connect_timeout: float = 10.0,
    retry: float = RETRY,
    check: float = CHECK,
    application_name: str | None = None,
) -> AsyncIterator[Leadership]:
    """A claim on role `name` among the hosts on `url`'s schema, on a new connection closed when the block exits.

    `application_name` names the connection (a cluster node's, so the others can end it when they hold that node
    dead: `PgStore.end_sessions`). Raises `StoreError` if the server cannot be reached.
    """
    conn = await trio.to_thread.run_sync(_connect, url, connect_timeout, application_name)
    try:
        row = await trio.to_thread.run_sync(lambda: conn.execute("SELECT current_schema()").fetchone())
    except psycopg.Error as exc:
        conn.close()
        raise StoreError(f"cannot read the schema of the PostgreSQL store: {exc}") from None
    schema = row[0] if row else ""
    async with trio.open_nursery() as nursery:
        claim = PgLeadership(conn, name, lock_key(schema, name), nursery, retry=retry, check=check)
        try:
            yield claim
        finally:
            nursery.cancel_scope.cancel()
            with trio.CancelScope(shield=True), trio.move_on_after(ANSWER_WITHIN):
                # in a thread: giving the role up is a round trip, which a cut-off server would not answer
                await trio.to_thread.run_sync(claim.close, abandon_on_cancel=True)
