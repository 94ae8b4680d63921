"""`PgStore`: the store in PostgreSQL (the `postgresql` extra, psycopg 3), with the LMDB store's guarantees.

One table holds every record kind, keyed by `(kind, key)` with the same stored keys (long keys hashed) and the
same schema-versioned values, as `bytea`: a group of commits is then one `DELETE` and one `INSERT ... ON CONFLICT`
over arrays, whatever kinds it touches. The writer is one connection used only by the writer task's worker
thread; each group is one transaction. Reads run inline on a second connection (autocommit): a loopback round
trip on the trio thread. One host per schema: the writer connection holds a session advisory lock on the schema;
cluster nodes (`node=`) share the schema (a shared lock on it, which a single host's exclusive one excludes) and
each holds an exclusive lock on its node id. With several writers, a transaction first takes a transaction-scoped
advisory lock on every row its `Expect`s name, in one global order, so conditional commits on a row (a lease)
serialise across nodes, a row that does not exist yet included. Those waits are bounded: a node's writer session
ends a transaction left idle for `idle_in_transaction_timeout` seconds (a node stopped mid-commit: its locks go with
its session, nothing of that transaction is written) and gives up a lock wait after `lock_timeout` seconds (the
commit fails with `StoreError`, nothing written; the others of its group commit go on). A transaction whose
connection broke before its `COMMIT` was sent is run again once on a new connection: it cannot have committed.

Durability: `durable` commits with `synchronous_commit = on` (the commit waits for the WAL flush), `fast` and
`unsafe` with `synchronous_commit = off` (PostgreSQL may lose the last commits on a server crash, never a half
transaction; a client crash loses nothing acknowledged). `afactors_meta` records the layout version, the host
that has the store open, and whether it closed.
"""

from __future__ import annotations

import hashlib
import logging
import os
import socket
from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Any

import psycopg
import psycopg.errors
import trio

from afactors.store._codec import HEAD_BYTES, encode_key, stored_key
from afactors.store._group_commit import GroupCommitStore, Request, check_options, holds, prefix_end
from afactors.store._integrity import StoreDamaged, StoreError, StoreFull
from afactors.store._interface import Durability, StoreInUse
from afactors.store._leadership import Leadership
from afactors.store._pg_leader import pg_leadership
from afactors.store._records import KINDS

log = logging.getLogger("afactors.store")

LAYOUT = 1
"""The version of the tables' layout this code writes (`afactors_meta`); a newer one is refused."""

_LOCK_CLASS = 0x41666163  # "Afac": the advisory lock's first key; the second is the schema name's hash

SETUP = (
    "CREATE TABLE IF NOT EXISTS afactors_records"
    " (kind text NOT NULL, key bytea NOT NULL, value bytea NOT NULL, PRIMARY KEY (kind, key))",
    "CREATE TABLE IF NOT EXISTS afactors_meta (name text PRIMARY KEY, value text NOT NULL)",
)
_SET_META = (
    "INSERT INTO afactors_meta (name, value) VALUES (%s, %s) ON CONFLICT (name) DO UPDATE SET value = EXCLUDED.value"
)
_SELECT = (
    "SELECT r.kind, r.key, r.value FROM afactors_records r"
    " JOIN unnest(%s::text[], %s::bytea[]) AS w(kind, key) ON r.kind = w.kind AND r.key = w.key"
)
_DELETE = (
    "DELETE FROM afactors_records r USING unnest(%s::text[], %s::bytea[]) AS d(kind, key)"
    " WHERE r.kind = d.kind AND r.key = d.key"
)
UPSERT = (
    "INSERT INTO afactors_records (kind, key, value) SELECT * FROM unnest(%s::text[], %s::bytea[], %s::bytea[])"
    " ON CONFLICT (kind, key) DO UPDATE SET value = EXCLUDED.value"
)
_LOCK_ROWS = "SELECT pg_advisory_xact_lock(k) FROM unnest(%s::bigint[]) WITH ORDINALITY AS t(k, n) ORDER BY n"
_PAGE = 256  # rows a scan fetches at a time when it has no limit (or drops undecodable rows)


class DatabaseLocked(StoreInUse):
    """Another host has the PostgreSQL store (its schema) open."""


class _NotCommitted(StoreError):
    """The writer's connection broke before the transaction's `COMMIT` was sent: nothing of it was written."""


def _owner() -> str:
    return f"{os.getpid()} on {socket.gethostname()}"


def row_locks(schema: str, rows: set[tuple[str, bytes]]) -> list[int]:
    """The transaction advisory lock keys of `rows` (signed 64-bit hashes of schema, kind and key), sorted: every
    writer takes them in this one order, so two transactions never wait for each other's locks in a cycle."""
    keys = set()
    for kind, key in rows:
        digest = hashlib.blake2b(f"{schema}\0{kind}\0".encode() + key, digest_size=8).digest()
        keys.add(int.from_bytes(digest, "big", signed=True))
    return sorted(keys)


class PgStore(GroupCommitStore):
    """The afactors state in a PostgreSQL schema (see the module docstring).

    Open with `async with PgStore.open("postgresql://...") as store:` (or `Store.open(url)`). The tables live in
    the first schema of the connection's search path: put `?options=-csearch_path%3DNAME` in the URL to keep
    several stores in one database.
    """

    _damage_errors = (psycopg.errors.DataCorrupted, psycopg.errors.IndexCorrupted)

    def __init__(
        self, url: str, writer: psycopg.Connection[Any], reader: psycopg.Connection[Any], durability: Durability,
        max_batch: int, connect_timeout: float, node: str | None = None, lock_timeout: float = 5.0,
        idle_in_transaction_timeout: float = 2.0,
    ) -> None:  # fmt: skip
        super().__init__(durability, max_batch)
        self.url = url
        self.node = node
        self.lock_timeout = lock_timeout
        self.idle_in_transaction_timeout = idle_in_transaction_timeout
        self._writer_conn = writer
        self._reader = reader
        self._connect_timeout = connect_timeout
        info = reader.info
        row = reader.execute("SELECT current_schema()").fetchone()
        schema = self._schema = row[0] if row else "?"
        self._location = f"postgresql://{info.user}@{info.host}:{info.port}/{info.dbname} (schema {schema})"
        self._kinds = {kind: kind for kind in KINDS}

    @classmethod
    @asynccontextmanager
    async def open(
        cls,
        url: str,
        *,
        durability: Durability = "durable",
        max_batch: int = 4096,
        connect_timeout: float = 10.0,
        node: str | None = None,
        lock_timeout: float = 5.0,
        idle_in_transaction_timeout: float = 2.0,
    ) -> AsyncIterator[PgStore]:
        """Connect to the PostgreSQL store at `url` (creating its tables) and run the writer until the block exits.

        `node`: open it as this cluster node (other nodes share the schema; see the module docstring). A node's
        writer waits at most `lock_timeout` seconds for a row another node's transaction holds, and its session
        ends a transaction it leaves idle for `idle_in_transaction_timeout` seconds (keep it well under the
        cluster's lease, so a stopped node's locks are gone before another node takes its conversations).
        Raises `DatabaseLocked` at once if another host (or a process of the same node) has the store open,
        `StoreError` if the server cannot be reached or the tables were made by a newer afactors. On exit, every
        commit already queued is written before the connections close.
        """
        if node is not None and not node:
            raise ValueError("a node id must not be empty")
        if lock_timeout <= 0 or idle_in_transaction_timeout <= 0:
            raise ValueError("lock_timeout and idle_in_transaction_timeout must be positive")
        check_options(durability, max_batch)
        writer = await trio.to_thread.run_sync(_connect, url, connect_timeout, False)
        try:
            reader = await trio.to_thread.run_sync(_connect, url, connect_timeout, True)
        except BaseException:
            writer.close()
            raise
        store: PgStore | None = None
        try:
            store = cls(url, writer, reader, durability, max_batch, connect_timeout, node, lock_timeout,
                        idle_in_transaction_timeout)  # fmt: skip
            await trio.to_thread.run_sync(store._claim)
            try:
                async with store._serving():
                    yield store
            finally:
                store._closed = True
                with trio.CancelScope(shield=True):
                    await trio.to_thread.run_sync(store._release)
        finally:
            for conn in (writer, reader) if store is None else (store._writer_conn, store._reader):
                conn.close()  # the ones in use now (a lost connection was closed when it was replaced)

    @property
    def location(self) -> str:
        return self._location

    @property
    def _handles(self) -> dict[str, Any]:
        return self._kinds

    def leadership(self, name: str) -> AbstractAsyncContextManager[Leadership]:
        """A claim on role `name` among the hosts on this schema: a session advisory lock on a connection of its
        own (`pg_leadership`)."""
        application = None if self.node is None else session_name(self._schema, self.node)
        return pg_leadership(self.url, name, connect_timeout=self._connect_timeout, application_name=application)

    def end_sessions(self, node: str) -> int:
        """End the writer and leadership sessions of cluster node `node` (by their `application_name`): a node
        stopped in the middle of a pipelined commit holds its row locks in a session that is not idle, which neither
        `idle_in_transaction_timeout` nor anything else ends until it resumes. Needs the same database role on every
        node (or `pg_signal_backend`)."""
        if self.node is None or node == self.node:
            return 0
        query = (
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = %s"
            " AND pid <> pg_backend_pid()"
        )
        return sum(1 for (ended,) in self._read(query, (session_name(self._schema, node),)) if ended)

    # -- the writer connection (its worker thread only) ------------------------------------------------------

    def _claim(self) -> None:
        """Take the schema's lock, make the tables, check their layout and mark the store open by this host."""
        conn = self._writer_conn
        self._lock(conn)
        for statement in SETUP:
            conn.execute(statement)
        meta = dict(conn.execute("SELECT name, value FROM afactors_meta").fetchall())
        layout = int(meta.get("layout", LAYOUT))
        if layout > LAYOUT:
            raise StoreError(
                f"the PostgreSQL store {self.location} has table layout {layout}, newer than this afactors ({LAYOUT})"
            )
        owner, opened = self._meta_names()
        if meta.get(opened) == "true":
            log.warning("store %s was not closed cleanly by %s", self.location, meta.get(owner, "?"))
        for name, value in (("layout", str(LAYOUT)), (owner, _owner()), (opened, "true")):
            conn.execute(_SET_META, (name, value))
        conn.commit()

    def _meta_names(self) -> tuple[str, str]:
        """The `afactors_meta` names of who has the store open and whether it is open (a cluster node's own)."""
        suffix = "" if self.node is None else f"/{self.node}"
        return f"owner{suffix}", f"open{suffix}"

    def _lock(self, conn: psycopg.Connection[Any]) -> None:
        setting = "on" if self.durability == "durable" else "off"
        conn.execute(f"SET synchronous_commit = {setting}")
        if self.node is None:
            taken = self._try_lock(conn, "pg_try_advisory_lock(%s, hashtext(current_schema()))", ())
            if not taken:
                raise DatabaseLocked(
                    f"the PostgreSQL store {self.location} is already in use by process {self._holder(conn)};"
                    " stop that host or use another schema"
                )
            return
        timeouts = {
            "lock_timeout": self.lock_timeout,
            "idle_in_transaction_session_timeout": self.idle_in_transaction_timeout,
        }
        for setting, seconds in timeouts.items():
            conn.execute(f"SET {setting} = {max(1, round(seconds * 1000))}")  # in milliseconds
        conn.execute("SELECT set_config('application_name', %s, false)", (session_name(self._schema, self.node),))
        if not self._try_lock(conn, "pg_try_advisory_lock_shared(%s, hashtext(current_schema()))", ()):
            raise DatabaseLocked(
                f"the PostgreSQL store {self.location} is in use by a single host (process {self._holder(conn)}),"
                " not by cluster nodes; stop it or use another schema"
            )
        if not self._try_lock(conn, "pg_try_advisory_lock(%s, hashtext(current_schema() || '/' || %s))", (self.node,)):
            raise DatabaseLocked(
                f"cluster node {self.node!r} is already running on the PostgreSQL store {self.location} (process"
                f" {self._holder(conn, f'owner/{self.node}')}); give this node another --node-id"
            )

    @staticmethod
    def _try_lock(conn: psycopg.Connection[Any], call: str, params: tuple[Any, ...]) -> bool:
        row = conn.execute(f"SELECT {call}", (_LOCK_CLASS, *params)).fetchone()
        conn.commit()
        return bool(row and row[0])

    @staticmethod
    def _holder(conn: psycopg.Connection[Any], name: str = "owner") -> str:
        try:
            found = conn.execute("SELECT value FROM afactors_meta WHERE name = %s", (name,)).fetchone()
            owner = found[0] if found else "(unknown)"
        except psycopg.Error:  # the holder has not made its tables yet
            owner = "(unknown)"
        conn.rollback()
        return str(owner)

    def _release(self) -> None:
        conn = self._writer_conn
        if conn.broken or conn.closed:
            return
        try:
            conn.execute(_SET_META, (self._meta_names()[1], "false"))
            conn.commit()
            # Released here rather than when the server notices the connection closed, which it does a moment
            # later: a host started again right away would find the schema still locked.
            conn.execute("SELECT pg_advisory_unlock_all()")
            conn.commit()
        except psycopg.Error as exc:
            log.warning("store %s: could not mark the store closed: %s", self.location, exc)

    def _connection(self) -> psycopg.Connection[Any]:
        """The writer connection; a lost one is replaced (and the schema's lock taken again)."""
        if self._writer_conn.broken or self._writer_conn.closed:
            log.warning("store %s: the writer's connection was lost; reconnecting", self.location)
            self._writer_conn.close()
            conn = _connect(self.url, self._connect_timeout, False)
            try:
                self._lock(conn)
            except BaseException:
                conn.close()
                raise
            self._writer_conn = conn
        return self._writer_conn

    def _apply(self, batch: list[Request]) -> None:
        """The whole batch in one transaction (in the writer's worker thread); once more on a new connection when
        the connection broke before the `COMMIT` was sent (a server that ended an idle transaction's session)."""
        try:
            self._attempt(batch)
        except _NotCommitted:
            self._attempt(batch)

    def _attempt(self, batch: list[Request]) -> None:
        conn = self._connection()
        committing = False
        try:
            with conn.cursor() as cur:
                wanted = {(e[0], e[1]) for r in batch for e in r.expects}
                wanted |= {(r.guard[0], r.guard[1]) for r in batch if r.guard is not None}
                current: dict[tuple[str, bytes], bytes | None] = {}
                if wanted:
                    kinds, keys = zip(*wanted, strict=True)
                    if self.node is None:
                        cur.execute(_SELECT, (list(kinds), list(keys)))
                    else:  # other nodes write this schema: serialise on the rows checked (one round trip for both)
                        with conn.pipeline():
                            conn.execute(_LOCK_ROWS, (row_locks(self._schema, wanted),))
                            cur.execute(_SELECT, (list(kinds), list(keys)))
                    current = {(kind, bytes(key)): bytes(value) for kind, key, value in cur.fetchall()}
                pending: dict[tuple[str, bytes], bytes | None] = {}  # each key's last write in this batch

                def now(kind: str, key: bytes) -> bytes | None:
                    return pending[kind, key] if (kind, key) in pending else current.get((kind, key))

                for request in batch:
                    if request.guard is not None:
                        kind, key, expected = request.guard
                        if now(kind, key) != expected:
                            continue
                    request.applied = all(holds(now(e[0], e[1]), e) for e in request.expects)
                    if request.applied:
                        for kind, key, value in request.writes:
                            pending[kind, key] = value
                deletes = [k for k, v in pending.items() if v is None]
                puts = [(kind, key, v) for (kind, key), v in pending.items() if v is not None]
                with conn.pipeline():
                    if deletes:
                        cur.execute(_DELETE, ([k for k, _ in deletes], [key for _, key in deletes]))
                    if puts:
                        cur.execute(UPSERT, ([p[0] for p in puts], [p[1] for p in puts], [p[2] for p in puts]))
            committing = True
            conn.commit()
        except BaseException as exc:
            if conn.broken:
                if isinstance(exc, psycopg.Error) and not committing:
                    raise _NotCommitted(str(exc)) from exc
                raise
            conn.rollback()
            if isinstance(exc, psycopg.errors.LockNotAvailable):
                raise StoreError(
                    f"rows this commit expects stayed locked by another node's transaction for {self.lock_timeout:g}"
                    " s (lock_timeout); nothing was written"
                ) from None
            raise

    async def _apply_batch(self, batch: list[Request]) -> None:
        await trio.to_thread.run_sync(self._apply, batch, limiter=self._thread)

    def _full_error(self, exc: Exception) -> StoreFull | None:
        return StoreFull(self._full_message()) if isinstance(exc, psycopg.errors.DiskFull) else None

    # -- reads (inline, on the reader connection) ------------------------------------------------------------

    def _read(self, query: str, params: tuple[Any, ...]) -> list[tuple[Any, ...]]:
        for attempt in (1, 2):
            try:
                return self._reader.execute(query, params).fetchall()
            except (psycopg.errors.DataCorrupted, psycopg.errors.IndexCorrupted) as exc:
                raise StoreDamaged(f"cannot read the store at {self.location}: {exc}") from None
            except psycopg.OperationalError as exc:
                if attempt == 1 and (self._reader.broken or self._reader.closed):
                    log.warning("store %s: the reader's connection was lost; reconnecting", self.location)
                    self._reader.close()
                    try:
                        self._reader = _connect(self.url, self._connect_timeout, True)
                    except StoreError:
                        pass  # the server is still away: this read fails, the next one tries again
                    else:
                        continue
                raise StoreError(f"cannot read the store at {self.location}: {exc}") from None
        raise AssertionError("unreachable")

    def get(self, kind: str, key: str) -> Any | None:
        """The record under `key`, or None. A record that no longer decodes is quarantined and reads as None."""
        self._db(kind)
        stored = encode_key(key)
        rows = self._read("SELECT value FROM afactors_records WHERE kind = %s AND key = %s", (kind, stored))
        if not rows:
            return None
        item = self._decode(kind, stored, bytes(rows[0][0]))
        return None if item is None else item[1]

    def scan(
        self, kind: str, prefix: str = "", *, after: str | None = None, limit: int | None = None, reverse: bool = False
    ) -> list[tuple[str, Any]]:
        """`(key, record)` pairs whose key starts with `prefix`, in key order (or reversed), up to `limit`.

        As `LmdbStore.scan`: `after` continues a previous page; undecodable records are quarantined and skipped;
        keys longer than `MAX_KEY_BYTES` sort by their first `HEAD_BYTES` bytes, then in a stable order.
        """
        self._db(kind)
        found: list[tuple[str, Any]] = []
        if limit is not None and limit <= 0:
            return found
        head = prefix.encode()[:HEAD_BYTES]  # every matching key, long or not, is stored under this prefix
        lower: bytes = head
        upper = prefix_end(head)
        if after is not None:
            mark = stored_key(after.encode())
            if reverse:
                upper = mark if upper is None else min(upper, mark)
            else:
                lower = max(head, mark + b"\x00")
        order = "DESC" if reverse else "ASC"
        while True:
            page = _PAGE if limit is None else max(limit - len(found), 1)
            bound = "" if upper is None else " AND key < %s"
            params: tuple[Any, ...] = (kind, lower) if upper is None else (kind, lower, upper)
            rows = self._read(
                f"SELECT key, value FROM afactors_records WHERE kind = %s AND key >= %s{bound}"
                f" ORDER BY key {order} LIMIT {page}",
                params,
            )
            for key, value in rows:
                item = self._decode(kind, bytes(key), bytes(value))
                if item is not None and item[0].startswith(prefix):
                    found.append(item)
                    if limit is not None and len(found) >= limit:
                        return found
            if len(rows) < page:
                return found
            last = bytes(rows[-1][0])
            if reverse:
                upper = last
            else:
                lower = last + b"\x00"

    def count(self, kind: str) -> int:
        """How many records `kind` holds (a `count(*)`: it reads the kind's index)."""
        self._db(kind)
        return int(self._read("SELECT count(*) FROM afactors_records WHERE kind = %s", (kind,))[0][0])

    def disk_bytes(self) -> int:
        """Bytes of the records table with its index and TOAST data."""
        if self._closed:
            return 0
        return int(self._read("SELECT pg_total_relation_size('afactors_records')", ())[0][0])


def session_name(schema: str, node: str) -> str:
    """The `application_name` of cluster node `node`'s sessions that hold locks on `schema` (at most 63 bytes)."""
    return f"afactors node {node} on {schema}"[:63]


def _connect(url: str, timeout: float, autocommit: bool) -> psycopg.Connection[Any]:
    try:
        return psycopg.connect(url, autocommit=autocommit, connect_timeout=max(1, round(timeout)))
    except psycopg.Error as exc:
        raise StoreError(f"cannot connect to the PostgreSQL store: {exc}".strip()) from None
