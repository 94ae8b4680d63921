"""`LmdbStore`: the embedded store: one LMDB environment, one writer task with group commit, inline short reads."""

from __future__ import annotations

import errno
import fcntl
import logging
import os
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from math import inf
from pathlib import Path
from typing import Any

import lmdb
import trio

from afactors.store._codec import HEAD_BYTES, encode_key, stored_key
from afactors.store._group_commit import GroupCommitStore, Request, check_options, holds, prefix_end
from afactors.store._integrity import (
    CORRUPTION_ERRORS,
    DATA_FILE,
    MARKER_INTERVAL,
    MIN_FREE_BYTES,
    StoreDamaged,
    StoreError,
    StoreFull,
    check_after_open,
    check_before_open,
    current_marker,
    free_bytes,
    is_disk_full,
    write_marker,
)
from afactors.store._interface import Durability, StoreClosed, StoreInUse
from afactors.store._readers import check_readable
from afactors.store._records import KINDS

log = logging.getLogger("afactors.store")

LOCK_FILE = "afactors.lock"
"""The file in the state directory that one process holds an exclusive lock on (it holds that process's pid)."""
DATA_DIR = "data"
"""The LMDB environment's folder inside the state directory (`data.mdb`, `lock.mdb`)."""


class StateDirLocked(StoreInUse):
    """Another process (or another `Store` in this one) holds the state directory."""


def _lock_state_dir(path: Path) -> tuple[int, bool]:
    """Take the state directory's lock; (its fd, whether the last holder exited without closing the store)."""
    try:
        fd = os.open(path / LOCK_FILE, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
    except OSError as exc:
        raise StoreError(f"cannot open the lock file of state directory {path}: {exc.strerror or exc}") from None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as exc:
        owner = _lock_owner(fd)
        os.close(fd)
        if exc.errno not in (errno.EWOULDBLOCK, errno.EAGAIN):
            raise StoreError(f"cannot lock state directory {path}: {exc}") from exc
        raise StateDirLocked(
            f"state directory {path} is already in use by process {owner}; stop that process or use another"
            " state directory"
        ) from None
    unclean = bool(os.pread(fd, 32, 0).strip())
    os.ftruncate(fd, 0)
    os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
    return fd, unclean


def _lock_owner(fd: int) -> str:
    # The owner writes its pid right after taking the lock: give it a moment if we came in between.
    for _ in range(50):
        owner = os.pread(fd, 32, 0).decode(errors="replace").strip()
        if owner:
            return owner
        time.sleep(0.002)
    return "(unknown pid)"


VERIFY_LIMIT = 1 << 30
"""Data files larger than this are not read whole after a crash (it would delay the start too long)."""


def _verify_after_crash(data_dir: Path) -> None:
    data = data_dir / DATA_FILE
    if not data.is_file():
        return
    if data.stat().st_size > VERIFY_LIMIT:
        log.warning("store %s was not closed cleanly; too large to verify at start", data_dir)
        return
    problem = check_readable(str(data_dir))
    if problem is not None:
        raise StoreDamaged(
            f"the store in {data_dir} was not closed cleanly and is damaged: {problem}; run `python -m afactors store"
            f" salvage --state-dir {data_dir.parent} --to NEW_DIR` to copy every readable record"
        )


INLINE_BYTES = 64 << 10
"""With `fast`, a lone commit of at most this many bytes is written on the trio thread, its one flush included, when
no other task is ready to run: the loop would only wait for the flush, and the hop to a thread and back costs more
CPU than the commit. `durable` (two flushes, several ms on a busy disk) always flushes in the writer's thread: a
loop blocked that long delays the turns that arrive meanwhile (measured: 20 % fewer req/s at 50 clients)."""


def _lone(batch: list[Request]) -> bool:
    """Whether `batch` is one small commit and no other task is waiting to run (see `INLINE_BYTES`)."""
    if len(batch) != 1 or trio.lowlevel.current_statistics().tasks_runnable:
        return False
    return sum(len(key) + (0 if value is None else len(value)) for _, key, value in batch[0].writes) <= INLINE_BYTES


class LmdbStore(GroupCommitStore):
    """The afactors state in one LMDB environment: a named sub-database per record kind.

    Open with `async with LmdbStore.open(path) as store:` (or `Store.open(path)`). Every batch queued while the
    writer was busy is committed in the same LMDB transaction, in one thread hop (or inline: see `INLINE_BYTES`).
    Reads (`get`, `scan`, `count`) are short read transactions run inline: call them from trio tasks, never from
    other threads.
    """

    _damage_errors = CORRUPTION_ERRORS

    def __init__(
        self, path: Path, env: lmdb.Environment, durability: Durability, max_batch: int, min_free: int = MIN_FREE_BYTES
    ) -> None:
        super().__init__(durability, max_batch)
        self.path = path
        self._counts["map_size"] = env.info()["map_size"]
        self.min_free = min_free
        self._env = env
        self._space_checked = -inf  # monotonic time of the last free-space check
        self._marker_at = time.monotonic()
        self._dbs = self._open_dbs()

    @property
    def location(self) -> str:
        return str(self.path)

    @property
    def _handles(self) -> dict[str, Any]:
        return self._dbs

    @classmethod
    @asynccontextmanager
    async def open(
        cls,
        path: str | os.PathLike[str],
        *,
        durability: Durability = "durable",
        map_size: int = 256 << 20,
        max_batch: int = 4096,
        min_free: int = MIN_FREE_BYTES,
        verify_after_crash: bool = True,
    ) -> AsyncIterator[LmdbStore]:
        """Open (creating) the state directory `path` and run the writer task until the block exits.

        Raises `StateDirLocked` at once if another process has the directory open, `StoreDamaged` if the data
        file is missing, emptied, truncated or older than the store's marker (see `afactors.store._integrity`),
        `StoreError` for anything else that stops it opening. On exit, every commit already queued is written
        before the environment closes. Writes are refused with `StoreFull` while the filesystem has less than
        `min_free` bytes free, and resume by themselves once it has twice that. With `verify_after_crash`, a
        store the last process did not close (it crashed, or was killed) is first read whole in child processes
        (LMDB aborts a process that meets some damaged pages), up to `VERIFY_LIMIT` bytes of data file.
        """
        check_options(durability, max_batch)
        if map_size < 1:
            raise ValueError(f"map_size must be positive, not {map_size}")
        state = Path(path)
        try:
            state.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise StoreError(f"cannot create state directory {state}: {exc}") from exc
        if not state.is_dir():
            raise StoreError(f"the state directory {state} is not a directory")
        lock_fd, unclean = _lock_state_dir(state)
        try:
            data_dir = state / DATA_DIR
            marker = check_before_open(data_dir)
            if unclean and verify_after_crash:
                await trio.to_thread.run_sync(_verify_after_crash, data_dir)
            try:
                env = lmdb.open(
                    str(state / DATA_DIR),
                    map_size=map_size,
                    max_dbs=len(KINDS) + 2,
                    max_readers=1024,
                    sync=durability != "unsafe",
                    metasync=durability == "durable",
                    writemap=False,
                )
            except lmdb.Error as exc:
                raise StoreError(f"cannot open the LMDB environment in {data_dir}: {exc}") from None
            store: LmdbStore | None = None
            try:
                check_after_open(data_dir, env, marker)
                env.reader_check()
                try:
                    store = cls(state, env, durability, max_batch, min_free)
                except lmdb.Error as exc:
                    raise StoreDamaged(f"cannot read the record kinds of {data_dir}: {exc}") from None
                store._write_marker()
                async with store._serving():
                    yield store
            finally:
                try:
                    if store is not None:
                        store._closed = True
                        store._write_marker()  # flushes what `fast`/`unsafe` have not flushed yet
                finally:
                    env.close()
        finally:
            os.ftruncate(lock_fd, 0)  # no owner pid left behind after a clean close
            os.close(lock_fd)

    @property
    def full(self) -> bool:
        """Whether writes are refused for want of disk space: below `min_free` free bytes it turns on, and it
        turns off by itself once twice that is free again (free space is looked at most every 0.1 s)."""
        now = time.monotonic()
        if now - self._space_checked >= 0.1:
            self._space_checked = now
            try:
                free = free_bytes(self.path)
            except OSError:
                return self._full
            if self._full and free >= 2 * self.min_free:
                self._full = False
                log.warning("store %s: disk space is back; writes resume", self.path)
            elif not self._full and free < self.min_free:
                self._set_full()
        return self._full

    def _check_space(self) -> None:
        """Refuse a write while the disk is (nearly) full."""
        if self.full:
            raise StoreFull(self._full_message())

    def _set_full(self) -> None:
        if not self._full:
            log.error("store %s: %s", self.path, self._full_message())
        self._full = True
        self._space_checked = time.monotonic()

    def _full_message(self) -> str:
        return (
            f"the disk holding {self.path} is full (less than {self.min_free >> 20} MiB free): writes are refused"
            " until space is freed; reads still work"
        )

    def _write_marker(self) -> None:
        """Flush the environment and record its last transaction in the marker (see `integrity`)."""
        try:
            self._env.sync(True)
            write_marker(self.path / DATA_DIR, current_marker(self._env))
        except (OSError, lmdb.Error) as exc:
            log.warning("store %s: could not update the commit marker: %s", self.path, exc)
        self._marker_at = time.monotonic()

    def _full_error(self, exc: Exception) -> StoreFull | None:
        if not is_disk_full(exc, self.path, self.min_free):
            return None
        self._set_full()
        return StoreFull(self._full_message())

    async def _apply_batch(self, batch: list[Request]) -> None:
        while True:
            try:
                if self.durability == "unsafe" or (self.durability == "fast" and _lone(batch)):
                    self._apply(batch)  # no flush, or nothing else to run meanwhile: cheaper than a thread hop
                else:
                    await trio.to_thread.run_sync(self._apply, batch, limiter=self._thread)
                return
            except lmdb.MapFullError:
                self._grow()

    async def _after_transaction(self) -> None:
        if time.monotonic() - self._marker_at >= MARKER_INTERVAL:
            await trio.to_thread.run_sync(self._write_marker, limiter=self._thread)

    def _apply(self, batch: list[Request]) -> None:
        """The whole batch in one write transaction (runs in a worker thread unless durability is unsafe)."""
        with self._env.begin(write=True) as txn:
            for request in batch:
                if request.guard is not None:
                    db, key, expected = request.guard
                    if txn.get(key, db=db) != expected:
                        continue
                request.applied = all(holds(txn.get(e[1], db=e[0]), e) for e in request.expects)
                if request.applied:
                    for db, key, value in request.writes:
                        if value is None:
                            txn.delete(key, db=db)
                        else:
                            txn.put(key, value, db=db)

    def _grow(self) -> None:
        # Runs in the trio thread with no transaction open: the writer's ended in its thread, and reads
        # never span an await.
        new_size = self._counts["map_size"] * 2
        self._env.set_mapsize(new_size)
        self._counts["map_size"] = self._env.info()["map_size"]
        self._counts["map_grows"] += 1
        log.warning("store map full: grew the map of %s to %d KiB", self.path, self._counts["map_size"] >> 10)

    def _open_dbs(self) -> dict[str, Any]:
        while True:
            try:
                return {name: self._env.open_db(name.encode()) for name in KINDS}
            except lmdb.MapFullError:
                self._grow()

    # -- reads --------------------------------------------------------------------------------------------

    def get(self, kind: str, key: str) -> Any | None:
        """The record under `key`, or None. A record that no longer decodes is quarantined and reads as None."""
        db = self._db(kind)
        stored = encode_key(key)
        try:
            with self._env.begin(db=db) as txn:
                raw = txn.get(stored)
        except CORRUPTION_ERRORS as exc:
            raise StoreDamaged(f"cannot read the {kind} record {key!r}: {exc}") from None
        if raw is None:
            return None
        item = self._decode(kind, stored, raw)
        return None if item is None else item[1]

    def scan(
        self, kind: str, prefix: str = "", *, after: str | None = None, limit: int | None = None, reverse: bool = False
    ) -> list[tuple[str, Any]]:
        """`(key, record)` pairs whose key starts with `prefix`, in key order (or reversed), up to `limit`.

        `after` continues a previous page: only keys after it (before it when `reverse`) are returned.
        Records that no longer decode are quarantined and skipped. Keys longer than `MAX_KEY_BYTES` come back
        whole; they sort by their first `HEAD_BYTES` bytes, then in an arbitrary but stable order.
        """
        db = self._db(kind)
        found: list[tuple[str, Any]] = []
        if limit is not None and limit <= 0:
            return found
        try:
            return self._scan(kind, db, prefix, after, limit, reverse, found)
        except CORRUPTION_ERRORS as exc:
            raise StoreDamaged(f"cannot read the {kind} records under {prefix!r}: {exc}") from None

    def _scan(
        self,
        kind: str,
        db: Any,
        prefix: str,
        after: str | None,
        limit: int | None,
        reverse: bool,
        found: list[tuple[str, Any]],
    ) -> list[tuple[str, Any]]:
        head = prefix.encode()[:HEAD_BYTES]  # every matching key, long or not, is stored under this prefix
        with self._env.begin(db=db) as txn:
            cursor = txn.cursor()
            if reverse:
                upper = prefix_end(head)
                if after is not None:
                    mark = stored_key(after.encode())
                    upper = mark if upper is None else min(upper, mark)
                positioned = cursor.prev() if upper is not None and cursor.set_range(upper) else cursor.last()
                step = cursor.prev
            else:
                lower = head if after is None else max(head, stored_key(after.encode()) + b"\x00")
                positioned = cursor.set_range(lower)
                step = cursor.next
            while positioned:
                stored = cursor.key()
                if not stored.startswith(head):
                    break
                item = self._decode(kind, stored, cursor.value())
                if item is not None and item[0].startswith(prefix):
                    found.append(item)
                    if limit is not None and len(found) >= limit:
                        break
                positioned = step()
        return found

    def copy_compacted(self, dest: str | os.PathLike[str]) -> Path:
        """Copy the environment, without its free pages, into the new state directory `dest` (which must not
        exist); returns the copy's data file. Runs inline: meant for a store no host is using."""
        if self._closed:
            raise StoreClosed(f"the store at {self.path} is closed")
        target = Path(dest) / DATA_DIR
        target.mkdir(parents=True)
        self._env.copy(str(target), compact=True)
        return target / "data.mdb"

    def count(self, kind: str) -> int:
        """How many records `kind` holds."""
        db = self._db(kind)
        with self._env.begin(db=db) as txn:
            return int(txn.stat(db)["entries"])

    def map_usage(self) -> float:
        """Fraction of the current map in use (the map grows when full)."""
        if self._closed:
            raise StoreClosed(f"the store at {self.path} is closed")
        info, stat = self._env.info(), self._env.stat()
        return (info["last_pgno"] + 1) * stat["psize"] / info["map_size"]

    def disk_bytes(self) -> int:
        """Bytes of the LMDB data file (0 when it cannot be read)."""
        try:
            return os.path.getsize(self.path / DATA_DIR / DATA_FILE)
        except OSError:
            return 0
