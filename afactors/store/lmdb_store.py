"""`Store`: one LMDB environment, one writer task with group commit, inline short reads."""

from __future__ import annotations

import fcntl
import logging
import os
import time
from collections.abc import AsyncIterator, Iterable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, Literal

import attrs
import lmdb
import trio

from afactors.store.codec import RecordDecodeError, decode_value, encode_key, encode_value, is_hashed
from afactors.store.records import KINDS, Quarantined

log = logging.getLogger("afactors.store")

Durability = Literal["durable", "fast", "unsafe"]
DURABILITIES: tuple[str, ...] = ("durable", "fast", "unsafe")

_LOCK_FILE = "afactors.lock"


class StoreError(Exception):
    """Base class of store failures."""


class StateDirLocked(StoreError):
    """Another process (or another `Store` in this one) holds the state directory."""


class StoreClosed(StoreError):
    """The store is shutting down and takes no more commits."""


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


Op = Put | Delete


@attrs.define
class StoreStats:
    """Counters for operators and tests."""

    commits: int = 0
    transactions: int = 0
    largest_batch: int = 0
    map_grows: int = 0
    quarantined: int = 0
    map_size: int = 0


@attrs.define(eq=False)
class _Request:
    writes: list[tuple[str, bytes, bytes | None]]
    done: trio.Event = attrs.Factory(trio.Event)
    error: BaseException | None = None


def _lock_state_dir(path: Path) -> int:
    fd = os.open(path / _LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        owner = os.pread(fd, 64, 0).decode(errors="replace").strip() or "unknown"
        os.close(fd)
        raise StateDirLocked(f"state directory {path} is already in use by process {owner}") from None
    os.ftruncate(fd, 0)
    os.pwrite(fd, str(os.getpid()).encode(), 0)
    return fd


class Store:
    """The afactors state: named record kinds in one LMDB environment.

    Open with `async with Store.open(path) as store:`. Writes go through `await store.commit([...])`, which
    returns once the batch is durable (per the durability setting); every batch queued while the writer was
    busy is committed in the same transaction. Reads (`get`, `scan`) are short inline read transactions.
    """

    def __init__(self, path: Path, env: lmdb.Environment, durability: Durability, max_batch: int) -> None:
        self.path = path
        self.durability = durability
        self.stats = StoreStats(map_size=env.info()["map_size"])
        self._env = env
        self._dbs = {name: env.open_db(name.encode()) for name in KINDS}
        self._max_batch = max_batch
        self._send, self._receive = trio.open_memory_channel[_Request](10_000)

    @classmethod
    @asynccontextmanager
    async def open(
        cls,
        path: str | os.PathLike[str],
        *,
        durability: Durability = "durable",
        map_size: int = 256 << 20,
        max_batch: int = 4096,
    ) -> AsyncIterator[Store]:
        """Open (creating) the state directory `path` and run the writer task until the block exits."""
        if durability not in DURABILITIES:
            raise ValueError(f"durability must be one of {', '.join(DURABILITIES)}, not {durability!r}")
        state = Path(path)
        state.mkdir(parents=True, exist_ok=True)
        lock_fd = _lock_state_dir(state)
        try:
            env = lmdb.open(
                str(state / "data"),
                map_size=map_size,
                max_dbs=len(KINDS) + 2,
                max_readers=1024,
                sync=durability != "unsafe",
                metasync=durability == "durable",
                writemap=False,
            )
            try:
                env.reader_check()
                store = cls(state, env, durability, max_batch)
                async with trio.open_nursery() as nursery:
                    nursery.start_soon(store._writer)
                    try:
                        yield store
                    finally:
                        store._send.close()  # the writer drains what is queued, then exits
                env.sync(True)
            finally:
                env.close()
        finally:
            os.close(lock_fd)

    # -- writes -------------------------------------------------------------------------------------------

    async def commit(self, ops: Iterable[Op]) -> None:
        """Commit `ops` atomically; return when durable. Raises the error if this batch failed."""
        request = _Request(self._encode(ops))
        try:
            await self._send.send(request)
        except trio.ClosedResourceError:
            raise StoreClosed("the store is closed") from None
        with trio.CancelScope(shield=True):  # once queued, the outcome is decided by the writer
            await request.done.wait()
        if request.error is not None:
            raise request.error

    def _encode(self, ops: Iterable[Op]) -> list[tuple[str, bytes, bytes | None]]:
        writes: list[tuple[str, bytes, bytes | None]] = []
        for op in ops:
            cls = KINDS.get(op.kind)
            if cls is None:
                raise KeyError(f"unknown record kind {op.kind!r}")
            key = encode_key(op.key)
            if isinstance(op, Put):
                if not isinstance(op.value, cls):
                    raise TypeError(f"kind {op.kind!r} holds {cls.__name__}, not {type(op.value).__name__}")
                writes.append((op.kind, key, encode_value(op.value, op.key, is_hashed(key))))
            else:
                writes.append((op.kind, key, None))
        return writes

    async def _writer(self) -> None:
        async with self._receive:
            async for first in self._receive:
                batch = [first]
                while len(batch) < self._max_batch:
                    try:
                        batch.append(self._receive.receive_nowait())
                    except (trio.WouldBlock, trio.EndOfChannel):
                        break
                await self._write(batch)

    async def _write(self, batch: list[_Request]) -> None:
        while True:
            try:
                if self.durability == "unsafe":
                    self._apply(batch)  # no fsync: cheaper inline than a thread hop
                else:
                    await trio.to_thread.run_sync(self._apply, batch)
                break
            except lmdb.MapFullError:
                self._grow()
            except Exception as exc:  # the environment itself failed: fail every caller in the batch
                log.exception("store transaction failed")
                for request in batch:
                    request.error = StoreError(f"commit failed: {exc}")
                break
        self.stats.transactions += 1
        self.stats.commits += len(batch)
        self.stats.largest_batch = max(self.stats.largest_batch, len(batch))
        for request in batch:
            request.done.set()

    def _apply(self, batch: list[_Request]) -> None:
        """One write transaction for the whole batch; each request in its own nested transaction."""
        with self._env.begin(write=True) as txn:
            for request in batch:
                request.error = None
                try:
                    with self._env.begin(write=True, parent=txn) as child:
                        for kind, key, value in request.writes:
                            if value is None:
                                child.delete(key, db=self._dbs[kind])
                            else:
                                child.put(key, value, db=self._dbs[kind])
                except lmdb.MapFullError:
                    raise
                except lmdb.Error as exc:
                    request.error = StoreError(f"commit rejected by LMDB: {exc}")

    def _grow(self) -> None:
        # Runs in the trio thread while no transaction is open: reads never span an await.
        new_size = self.stats.map_size * 2
        self._env.set_mapsize(new_size)
        self.stats.map_size = new_size
        self.stats.map_grows += 1
        log.warning("store map full: grew %s to %d KiB", self.path, new_size >> 10)

    # -- reads --------------------------------------------------------------------------------------------

    def get(self, kind: str, key: str) -> Any | None:
        """The record under `key`, or None. A record that no longer decodes is quarantined and reads as None."""
        stored = encode_key(key)
        with self._env.begin(db=self._dbs[kind]) as txn:
            raw = txn.get(stored)
        if raw is None:
            return None
        return self._decode(kind, stored, raw)

    def scan(
        self, kind: str, prefix: str = "", *, after: str | None = None, limit: int | None = None, reverse: bool = False
    ) -> list[tuple[str, Any]]:
        """Records whose key starts with `prefix`, in key order (or reversed), after key `after`, up to `limit`."""
        raw_prefix = prefix.encode()
        found: list[tuple[bytes, bytes]] = []
        with self._env.begin(db=self._dbs[kind]) as txn:
            cursor = txn.cursor()
            if reverse:
                start = (after.encode() if after is not None else raw_prefix + b"\xff" * 8)
                positioned = cursor.set_range(start)
                if not positioned:
                    positioned = cursor.last()
                elif cursor.key() >= start:
                    positioned = cursor.prev()
                step = cursor.prev
            else:
                positioned = cursor.set_range(raw_prefix if after is None else after.encode() + b"\x00")
                step = cursor.next
            while positioned and (limit is None or len(found) < limit):
                key = cursor.key()
                if not key.startswith(raw_prefix):
                    break
                found.append((key, cursor.value()))
                positioned = step()
        records = []
        for stored, raw in found:
            decoded = self._decode_item(kind, stored, raw)
            if decoded is not None:
                records.append(decoded)
        return records

    def count(self, kind: str) -> int:
        with self._env.begin(db=self._dbs[kind]) as txn:
            return txn.stat(self._dbs[kind])["entries"]

    def _decode(self, kind: str, stored: bytes, raw: bytes) -> Any | None:
        item = self._decode_item(kind, stored, raw)
        return None if item is None else item[1]

    def _decode_item(self, kind: str, stored: bytes, raw: bytes) -> tuple[str, Any] | None:
        try:
            return decode_value(raw, KINDS[kind], stored)
        except RecordDecodeError as exc:
            self._quarantine(kind, stored, raw, str(exc))
            return None

    def _quarantine(self, kind: str, stored: bytes, raw: bytes, reason: str) -> None:
        label = stored.decode("utf-8", errors="backslashreplace")
        log.error("quarantining undecodable %s record %r: %s", kind, label, reason)
        record = Quarantined(kind=kind, key=label, raw=raw, reason=reason)
        qkey = f"{kind}/{label}/{time.time_ns()}"
        writes = [("quarantine", encode_key(qkey), encode_value(record, qkey, is_hashed(encode_key(qkey)))), (kind, stored, None)]
        try:
            self._send.send_nowait(_Request(writes))
            self.stats.quarantined += 1
        except (trio.WouldBlock, trio.ClosedResourceError):
            pass  # found again on the next read

    def map_usage(self) -> float:
        """Fraction of the map in use."""
        info, stat = self._env.info(), self._env.stat()
        return (info["last_pgno"] + 1) * stat["psize"] / info["map_size"]

