"""`LmdbStore`: the embedded store: one LMDB environment, one writer task with group commit, inline short reads.

Durability (`durability=`): `durable` flushes every transaction (LMDB `sync` + `metasync`) before its commits are
acknowledged, in a thread while the trio thread runs other tasks (a long queue is then written as two transactions,
see `batch_limit`). `fast` acknowledges a commit once its transaction is in the OS page cache (LMDB `MDB_NOSYNC`), as
PostgreSQL's `synchronous_commit = off` does, and a flusher task starts its flush `flush_interval` seconds later: a
process crash loses nothing acknowledged, an OS crash the commits of the last `flush_interval` (and of the flush
then running; never more than `FLUSH_LAG` x `flush_interval` of them). `unsafe` never flushes until it closes.
"""

from __future__ import annotations

import errno
import fcntl
import logging
import os
import threading
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
    Marker,
    StoreDamaged,
    StoreError,
    StoreFull,
    boot_id,
    check_after_open,
    check_before_open,
    current_marker,
    free_bytes,
    is_disk_full,
    os_went_down,
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


def _verify(data_dir: Path, why: str, limit: float) -> None:
    """Read the data file whole (if at most `limit` bytes); `StoreDamaged` if a record does not read."""
    data = data_dir / DATA_FILE
    if not data.is_file():
        return
    if data.stat().st_size > limit:
        log.warning("store %s %s; too large to verify at start", data_dir, why)
        return
    problem = check_readable(str(data_dir))
    if problem is not None:
        raise StoreDamaged(
            f"the store in {data_dir} {why} and is damaged: {problem}; run `python -m afactors store"
            f" salvage --state-dir {data_dir.parent} --to NEW_DIR` to copy every readable record"
        )


FLUSH_INTERVAL = 0.2
"""`fast`: seconds from a commit's acknowledgement to the start of the flush that makes it durable (default)."""
FLUSH_LAG = 2.0
"""`fast`: the writer acknowledges no commit while an older one has waited more than `FLUSH_LAG` x `flush_interval`
for its flush to finish (a disk slower than the commits): it waits for that flush (or flushes) first, so the
unflushed commits never span more than that."""


class LmdbStore(GroupCommitStore):
    """The afactors state in one LMDB environment: a named sub-database per record kind.

    Open with `async with LmdbStore.open(path) as store:` (or `Store.open(path)`). Every batch queued while the
    writer was busy is committed in the same LMDB transaction (in one thread hop for `durable`, see `_apply_batch`).
    Reads (`get`, `scan`, `count`) are short read transactions run inline: call them from trio tasks, never from
    other threads.
    """

    _damage_errors = CORRUPTION_ERRORS

    def __init__(
        self,
        path: Path,
        env: lmdb.Environment,
        durability: Durability,
        max_batch: int,
        min_free: int = MIN_FREE_BYTES,
        flush_interval: float = FLUSH_INTERVAL,
    ) -> None:
        super().__init__(durability, max_batch)
        self.path = path
        self._counts["map_size"] = env.info()["map_size"]
        self.min_free = min_free
        self.flush_interval = flush_interval
        self._env = env
        self._space_checked = -inf  # monotonic time of the last free-space check
        self._marker_at = time.monotonic()
        self._boot = boot_id()
        # `fast`: trio time of the oldest commit no finished flush covers; of the oldest since the running flush began
        self._unflushed_since: float | None = None
        self._pending_since: float | None = None
        self._unflushed = trio.Event()  # set while `_unflushed_since` is not None
        self._flush_lock = trio.Lock()  # one flush at a time: the flusher's, or the writer's when one is overdue
        self._flushing = False
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
        flush_interval: float = FLUSH_INTERVAL,
    ) -> AsyncIterator[LmdbStore]:
        """Open (creating) the state directory `path` and run the writer task until the block exits.

        Raises `StateDirLocked` at once if another process has the directory open, `StoreDamaged` if the data
        file is missing, emptied, truncated or older than the store's marker (see `afactors.store._integrity`),
        `StoreError` for anything else that stops it opening. On exit, every commit already queued is written
        before the environment closes. Writes are refused with `StoreFull` while the filesystem has less than
        `min_free` bytes free, and resume by themselves once it has twice that. With `verify_after_crash`, a
        store the last process did not close (it crashed, or was killed) is first read whole in child processes
        (LMDB aborts a process that meets some damaged pages), up to `VERIFY_LIMIT` bytes of data file. A store
        that was open with unflushed commits (`fast`, `unsafe`) when the OS went down is always read whole first,
        whatever its size: its pages may have reached the disk out of order. `flush_interval` (`fast` only):
        seconds within which an acknowledged commit is flushed (see the module docstring).
        """
        check_options(durability, max_batch)
        if map_size < 1:
            raise ValueError(f"map_size must be positive, not {map_size}")
        if not flush_interval > 0:
            raise ValueError(f"flush_interval must be positive, not {flush_interval}")
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
            if os_went_down(marker):
                log.warning("store %s was open with unflushed commits when the OS went down: reading it whole", state)
                why = "was open with unflushed commits when the OS went down"
                await trio.to_thread.run_sync(_verify, data_dir, why, inf)
            elif unclean and verify_after_crash:
                await trio.to_thread.run_sync(_verify, data_dir, "was not closed cleanly", VERIFY_LIMIT)
            try:
                env = lmdb.open(
                    str(state / DATA_DIR),
                    map_size=map_size,
                    max_dbs=len(KINDS) + 2,
                    max_readers=1024,
                    sync=durability == "durable",
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
                    store = cls(state, env, durability, max_batch, min_free, flush_interval)
                except lmdb.Error as exc:
                    raise StoreDamaged(f"cannot read the record kinds of {data_dir}: {exc}") from None
                store._write_marker()
                async with store._serving():
                    yield store
            finally:
                try:
                    if store is not None:
                        store._closed = True
                        store._write_marker()  # flushes what `fast`/`unsafe` have not flushed yet, clears the boot
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

    def _marker(self) -> Marker:
        """The marker of the last transaction; while a store that does not flush every commit is open, it names
        this boot (`integrity.os_went_down`)."""
        unflushed = self.durability != "durable" and not self._closed
        return current_marker(self._env, self._boot if unflushed else None)

    def _flush(self, marker: Marker | None) -> None:
        """Flush the environment, then record `marker` (if any) in the marker file. Raises if the flush fails."""
        self._env.sync(True)
        if marker is not None:
            self._marker_at = time.monotonic()
            try:
                write_marker(self.path / DATA_DIR, marker)
            except OSError as exc:
                log.warning("store %s: could not update the commit marker: %s", self.path, exc)

    def _write_marker(self) -> None:
        """Flush the environment and record its last transaction in the marker (see `integrity`)."""
        try:
            self._flush(self._marker())
        except (OSError, lmdb.Error) as exc:
            log.warning("store %s: could not update the commit marker: %s", self.path, exc)
        self._marker_at = time.monotonic()

    # -- `fast`: acknowledged in the page cache, flushed within `flush_interval` ------------------------------

    @asynccontextmanager
    async def _serving(self) -> AsyncIterator[None]:
        """The writer, and with `fast` the flusher, while the block runs; the close flushes what is left."""
        async with trio.open_nursery() as nursery:
            if self.durability == "fast":
                await nursery.start(self._flusher)
            async with super()._serving():
                yield
            nursery.cancel_scope.cancel()

    async def _flusher(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Flush every commit `flush_interval` seconds after it was acknowledged (those after it with it)."""
        task_status.started()
        while True:
            await self._unflushed.wait()
            if self._unflushed_since is not None:
                await trio.sleep_until(self._unflushed_since + self.flush_interval)
            try:
                await self._flush_unflushed()
            except StoreError as exc:
                log.error("store %s: %s; the commits since the last flush are not on disk yet", self.path, exc)
                await trio.sleep(self.flush_interval)  # try again; the writer stops acknowledging meanwhile

    async def _flush_unflushed(self, *, if_overdue: bool = False) -> None:
        """Flush the commits acknowledged so far in the writer's thread, rewriting the marker when it is due
        (`if_overdue`: only if a flush is still overdue once the running one, if any, is done).

        Raises `StoreError` if the flush fails (those commits then count as unflushed still).
        """
        async with self._flush_lock:
            if self._unflushed_since is None or (if_overdue and not self._flush_overdue()):
                return
            marker = self._marker() if time.monotonic() - self._marker_at >= MARKER_INTERVAL else None
            self._flushing = True
            try:
                await trio.to_thread.run_sync(self._flush, marker, limiter=self._thread)
            except (OSError, lmdb.Error) as exc:
                raise StoreError(f"cannot flush the store at {self.path}: {exc}") from exc
            else:
                self._unflushed_since, self._pending_since = self._pending_since, None
                if self._unflushed_since is None:
                    self._unflushed = trio.Event()
                self._counts["flushes"] += 1
            finally:
                self._flushing = False
                self._pending_since = None  # (after a failure `_unflushed_since` still covers those commits)

    def _committed(self) -> None:
        """`fast`: a transaction was committed and is not flushed yet."""
        now = trio.current_time()
        if self._unflushed_since is None:
            self._unflushed_since = now
            self._unflushed.set()
        if self._flushing and self._pending_since is None:
            self._pending_since = now

    def _flush_overdue(self) -> bool:
        since = self._unflushed_since
        return since is not None and trio.current_time() - since > FLUSH_LAG * self.flush_interval

    def _full_error(self, exc: Exception) -> StoreFull | None:
        if not is_disk_full(exc, self.path, self.min_free):
            return None
        self._set_full()
        return StoreFull(self._full_message())

    @property
    def _flushes_beside(self) -> bool:
        return self.durability == "durable"

    @property
    def _writes_inline(self) -> bool:
        return self.durability != "durable"  # `durable` writes and flushes in the writer's thread

    async def _apply_batch(self, batch: list[Request]) -> None:
        """`durable`: in the writer's thread (its flushes take ms). `fast`, `unsafe`: on the trio thread (no flush:
        cheaper than the hop to a thread and back); `fast` first flushes if a flush is overdue (`FLUSH_LAG`)."""
        if self.durability == "fast" and self._flush_overdue():
            await self._flush_unflushed(if_overdue=True)
        while True:
            try:
                if self.durability == "durable":
                    async with self._thread:
                        await self._apply_beside(batch)
                else:
                    self._apply(batch)
                    if self.durability == "fast":
                        self._committed()
                return
            except lmdb.MapFullError:
                async with self._thread:  # not while the flusher's flush reads the meta pages being remapped
                    self._grow()

    async def _after_transaction(self) -> None:
        # `fast`'s flusher rewrites the marker after one of its flushes instead.
        if self.durability != "fast" and time.monotonic() - self._marker_at >= MARKER_INTERVAL:
            await trio.to_thread.run_sync(self._write_marker, limiter=self._thread)

    async def _apply_beside(self, batch: list[Request]) -> None:
        """`_apply` in a thread, the trio thread blocked only while the writes are put (as long as `fast` takes for
        them on the trio thread): the puts need the GIL, which a busy trio thread hands over only once per switch
        interval (5 ms), so each put would wait for it. The flush does not need it: other tasks run meanwhile. (The
        wait cannot hang on LMDB's write lock: only this store writes, under `_thread`, and the state directory's
        lock file keeps other processes out.)"""
        token, task = trio.lowlevel.current_trio_token(), trio.lowlevel.current_task()
        staged = threading.Event()

        def deliver(result: Any) -> None:  # (an `outcome.Outcome`)
            staged.set()  # (already set, unless putting failed)
            token.run_sync_soon(trio.lowlevel.reschedule, task, result)

        trio.lowlevel.start_thread_soon(lambda: self._apply(batch, staged), deliver)
        staged.wait()
        await trio.lowlevel.wait_task_rescheduled(lambda _: trio.lowlevel.Abort.FAILED)

    def _apply(self, batch: list[Request], staged: threading.Event | None = None) -> None:
        """The whole batch in one write transaction (in a thread for `durable`: `staged` is set once it is put)."""
        with self._env.begin(write=True) as txn:
            self._put(txn, batch)
            if staged is not None:
                staged.set()

    def _put(self, txn: Any, batch: list[Request]) -> None:
        """Per request: skip it if its guard does not hold, set `applied` from its expectations, put its writes."""
        cursors: dict[Any, Any] = {}  # a cursor per database: its `put` costs half of `txn.put(db=)`
        for request in batch:
            if request.guard is not None:
                db, key, expected = request.guard
                if txn.get(key, db=db) != expected:
                    continue
            if request.expects:
                request.applied = all(holds(txn.get(e[1], db=e[0]), e) for e in request.expects)
            if request.applied:
                for db, key, value in request.writes:
                    if value is None:
                        txn.delete(key, db=db)
                    else:
                        cursor = cursors.get(db)
                        if cursor is None:
                            cursor = cursors[db] = txn.cursor(db)
                        cursor.put(key, value)

    def _grow(self) -> None:
        # Runs in the trio thread with no transaction open (the writer's has ended, and reads never span an
        # await) and no flush running in the writer's thread.
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
