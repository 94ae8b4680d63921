"""`Store`: the interface every store backend implements (LMDB, PostgreSQL), and what its callers pass it.

The rest of afactors depends on this surface only: `commit` (ops, conditional on `Expect`s, group-committed by one
writer), short synchronous reads (`get`, `scan`, `count`), statistics and a few gauges. `Store.open(location)`
picks the backend from the location: a `postgresql://` (or `postgres://`) URL opens the PostgreSQL store, anything
else is an LMDB state directory. Backend-only operations (LMDB's compaction, salvage, page reader) stay on the
backend's class.
"""

from __future__ import annotations

import abc
import importlib
import os
from collections.abc import Callable, Iterable
from contextlib import AbstractAsyncContextManager
from typing import Any, ClassVar, Literal

import attrs

from afactors.store._integrity import StoreError
from afactors.store._leadership import Leadership, sole_leadership

Durability = Literal["durable", "fast", "unsafe"]
DURABILITIES: tuple[str, ...] = ("durable", "fast", "unsafe")

URL_SCHEMES = ("postgresql://", "postgres://")
"""Store locations starting with one of these open the PostgreSQL store."""

_BACKENDS = {"lmdb": "afactors.store._lmdb_store:LmdbStore", "postgresql": "afactors.store._pg_store:PgStore"}


class StoreClosed(StoreError):
    """The store is shutting down and takes no more commits."""


class StoreInUse(StoreError):
    """Another host holds the store (its state directory, or its PostgreSQL schema)."""


@attrs.frozen
class Put:
    """Write `value` (a record of the kind's class) under `key`."""

    kind: str
    key: str
    value: Any


@attrs.frozen
class Delete:
    """Remove `key` from `kind` (no error if absent)."""

    kind: str
    key: str


@attrs.frozen
class Expect:
    """A condition of a commit: `key` of `kind` holds a record equal to `value` (None: holds nothing).

    Conditions are checked inside the commit's transaction, by the store's one writer. They are also how a
    cluster will fence a conversation: a commit that expects the conversation's lease record to hold its own
    epoch is refused once another node has taken the lease.
    """

    kind: str
    key: str
    value: Any = None


Op = Put | Delete


@attrs.frozen
class StoreStats:
    """A snapshot of a store's counters, for operators and tests (`Store.statistics()`).

    `commits`: requests acknowledged as written; `transactions`: write transactions committed;
    `failed_commits`: requests that got an error; `split_batches`: group transactions that failed and were
    retried one request per transaction to find the failing ones; `refused_full`: requests refused because the
    disk was full. `map_grows` and `map_size` are LMDB's (0 elsewhere), and so is `flushes`: with `fast`, the
    flushes that made the commits acknowledged before them durable (by the flusher, or by the writer when one was
    overdue).
    """

    commits: int = 0
    transactions: int = 0
    largest_batch: int = 0
    map_grows: int = 0
    quarantined: int = 0
    map_size: int = 0
    failed_commits: int = 0
    split_batches: int = 0
    refused_full: int = 0
    flushes: int = 0


def backend_name(location: str | os.PathLike[str]) -> str:
    """`postgresql` for a PostgreSQL URL, else `lmdb` (a state directory)."""
    return "postgresql" if isinstance(location, str) and location.startswith(URL_SCHEMES) else "lmdb"


def open_store(location: str | os.PathLike[str], **options: Any) -> AbstractAsyncContextManager[Store]:
    """Open the store at `location` (a state directory, or a `postgresql://` URL) until the block exits.

    `options` are the backend's (`LmdbStore.open`, `PgStore.open`); every backend takes `durability`
    (`durable` by default) and `max_batch` (commits per transaction at most).
    """
    kind = backend_name(location)
    module, _, name = _BACKENDS[kind].partition(":")
    try:
        backend: type[Store] = getattr(importlib.import_module(module), name)
    except ModuleNotFoundError as exc:  # the backend's driver is an extra
        raise StoreError(f"the {kind} store needs {exc.name}: install afactors[{kind}]") from None
    return backend.open(location, **options)


class Store(abc.ABC):
    """The afactors state: named record kinds (`KINDS`), written by one writer with group commit.

    Open with `async with Store.open(location) as store:`. Writes go through `await store.commit([...])`, which
    returns once the batch is written (durable per `durability`); every batch queued while the writer was busy
    is committed in the same transaction. Reads are short and synchronous: call them from trio tasks.
    """

    durability: Durability
    on_transaction: Callable[[int, float], None] | None
    """Called after every committed write transaction with its number of commits and its seconds (must not
    block): the host's metrics observe batch sizes and commit latency through it."""

    open: ClassVar[Callable[..., AbstractAsyncContextManager[Store]]] = staticmethod(open_store)
    """`Store.open(location, **options)`: `open_store`; a backend's own `open` takes its options by name."""

    @property
    @abc.abstractmethod
    def location(self) -> str:
        """Where the state is, for messages and reports (a URL carries no password)."""

    @abc.abstractmethod
    async def commit(self, ops: Iterable[Op], *, expect: Iterable[Expect] = ()) -> bool:
        """Commit `ops` atomically, all or nothing, if every `expect` holds (else write nothing, return False)."""

    @abc.abstractmethod
    def get(self, kind: str, key: str) -> Any | None:
        """The record under `key`, or None."""

    @abc.abstractmethod
    def scan(
        self, kind: str, prefix: str = "", *, after: str | None = None, limit: int | None = None, reverse: bool = False
    ) -> list[tuple[str, Any]]:
        """`(key, record)` pairs whose key starts with `prefix`, in key order (or reversed), after `after`."""

    @abc.abstractmethod
    def count(self, kind: str) -> int:
        """How many records `kind` holds."""

    @abc.abstractmethod
    def statistics(self) -> StoreStats:
        """A frozen snapshot of the counters so far."""

    @property
    def stats(self) -> StoreStats:
        """`statistics()`."""
        return self.statistics()

    @property
    @abc.abstractmethod
    def queued(self) -> int:
        """How many commits wait for the writer."""

    @property
    def full(self) -> bool:
        """Whether writes are refused for want of disk space."""
        return False

    def map_usage(self) -> float:
        """LMDB: the fraction of the memory map in use (it grows when full); 0.0 for backends without one."""
        return 0.0

    def leadership(self, name: str) -> AbstractAsyncContextManager[Leadership]:
        """A claim on role `name`, which one host at a time holds among the hosts sharing this store
        (`Leadership`). A store only one host opens (LMDB) always gives it at once."""
        return sole_leadership()

    def end_sessions(self, node: str) -> int:
        """A cluster node's store: end the database sessions of node `node`, which this node holds dead, so the
        locks of its unfinished transactions go now (the transactions roll back) instead of when it resumes. How
        many ended; 0 for a store no other process shares (LMDB)."""
        return 0

    @abc.abstractmethod
    def disk_bytes(self) -> int:
        """Bytes the state takes on disk (LMDB: the data file; PostgreSQL: the records table with its indexes)."""
