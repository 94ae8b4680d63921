"""`Store`: one LMDB environment, one writer task with group commit, inline short reads."""

from __future__ import annotations

import errno
import fcntl
import logging
import os
import time
from collections.abc import AsyncIterator, Callable, Iterable
from contextlib import asynccontextmanager
from math import inf
from pathlib import Path
from typing import Any, Literal

import attrs
import lmdb
import trio

from afactors.store._codec import (
    HEAD_BYTES,
    RecordDecodeError,
    decode_value,
    encode_key,
    encode_value,
    is_hashed,
    stored_key,
)
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
from afactors.store._readers import check_readable
from afactors.store._records import KINDS, Quarantined

log = logging.getLogger("afactors.store")

Durability = Literal["durable", "fast", "unsafe"]
DURABILITIES: tuple[str, ...] = ("durable", "fast", "unsafe")

LOCK_FILE = "afactors.lock"
"""The file in the state directory that one process holds an exclusive lock on (it holds that process's pid)."""
DATA_DIR = "data"
"""The LMDB environment's folder inside the state directory (`data.mdb`, `lock.mdb`)."""

_QUEUE_SIZE = 10_000
_QUARANTINE = "quarantine"


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


@attrs.frozen
class Expect:
    """A condition of a commit: `key` of `kind` holds a record equal to `value` (None: holds nothing)."""

    kind: str
    key: str
    value: Any = None


Op = Put | Delete
_OPS = (Put, Delete)


@attrs.frozen
class StoreStats:
    """A snapshot of a store's counters, for operators and tests (`Store.statistics()`).

    `commits`: requests acknowledged as written; `transactions`: LMDB write transactions committed;
    `failed_commits`: requests that got an error; `split_batches`: group transactions that failed and were
    retried one request per transaction to find the failing ones; `refused_full`: requests refused because the
    disk was full.
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


_Write = tuple[Any, bytes, bytes | None]  # (LMDB sub-database, stored key, value or None to delete)
_Expect = tuple[Any, bytes, type, Any]  # (LMDB sub-database, stored key, record class, record or None)


@attrs.define(eq=False)
class _Request:
    """One caller's commit: its encoded writes, and its outcome once the writer is done with it."""

    writes: list[_Write]
    guard: _Write | None = None  # apply only if this key still holds exactly this value (quarantine moves)
    moving: tuple[str, bytes] | None = None  # the (kind, key) a quarantine move sets aside
    expects: list[_Expect] = attrs.Factory(list)  # `Expect` conditions: all must hold, else nothing is written
    applied: bool = True  # False: an expectation did not hold
    written: bool = False
    error: BaseException | None = None
    finished: bool = False
    waiter: trio.lowlevel.Task | None = None

    def finish(self) -> None:
        """The writer is done with this request (written or `error` set): wake its caller."""
        self.finished = True
        if self.waiter is not None:
            trio.lowlevel.reschedule(self.waiter)

    async def outcome(self) -> None:
        """Wait until finished, uncancellably (once queued, the writer decides); raise the error if any.

        A bare park instead of an Event under a shielded cancel scope: this is the hot path of every commit.
        """
        if self.finished:
            await trio.lowlevel.cancel_shielded_checkpoint()
        else:
            self.waiter = trio.lowlevel.current_task()
            await trio.lowlevel.wait_task_rescheduled(lambda _: trio.lowlevel.Abort.FAILED)
        if self.error is not None:
            raise self.error


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


def _prefix_end(prefix: bytes) -> bytes | None:
    """The smallest key above every key that starts with `prefix` (None: no such key)."""
    stripped = prefix.rstrip(b"\xff")
    if not stripped:
        return None
    return stripped[:-1] + bytes([stripped[-1] + 1])


class Store:
    """The afactors state: named record kinds in one LMDB environment.

    Open with `async with Store.open(path) as store:`. Writes go through `await store.commit([...])`, which
    returns once the batch is written (durable per the durability setting); every batch queued while the
    writer was busy is committed in the same LMDB transaction, in one thread hop. Reads (`get`, `scan`,
    `count`) are short read transactions run inline: call them from trio tasks, never from other threads.
    """

    def __init__(
        self, path: Path, env: lmdb.Environment, durability: Durability, max_batch: int, min_free: int = MIN_FREE_BYTES
    ) -> None:
        self.path = path
        self.durability = durability
        self._counts: dict[str, int] = dict.fromkeys(attrs.fields_dict(StoreStats), 0)  # `statistics()` copies
        self._counts["map_size"] = env.info()["map_size"]
        self.min_free = min_free
        self._env = env
        self._max_batch = max_batch
        self._full = False
        self._space_checked = -inf  # monotonic time of the last free-space check
        self._marker_at = time.monotonic()
        self._closed = False
        self._quarantining: set[tuple[str, bytes]] = set()  # moves queued and not yet done
        self._dbs = self._open_dbs()
        self._send, self._receive = trio.open_memory_channel[_Request](_QUEUE_SIZE)
        # The writer's own thread token: threads busy elsewhere (sync targets) never hold up a commit.
        self._thread = trio.CapacityLimiter(1)
        self.on_transaction: Callable[[int, float], None] | None = None
        """Called after every committed write transaction with its number of commits and its seconds (must not
        block): the host's metrics observe batch sizes and commit latency through it."""

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
    ) -> AsyncIterator[Store]:
        """Open (creating) the state directory `path` and run the writer task until the block exits.

        Raises `StateDirLocked` at once if another process has the directory open, `StoreDamaged` if the data
        file is missing, emptied, truncated or older than the store's marker (see `afactors.store._integrity`),
        `StoreError` for anything else that stops it opening. On exit, every commit already queued is written
        before the environment closes. Writes are refused with `StoreFull` while the filesystem has less than
        `min_free` bytes free, and resume by themselves once it has twice that. With `verify_after_crash`, a
        store the last process did not close (it crashed, or was killed) is first read whole in child processes
        (LMDB aborts a process that meets some damaged pages), up to `VERIFY_LIMIT` bytes of data file.
        """
        if durability not in DURABILITIES:
            raise ValueError(f"durability must be one of {', '.join(DURABILITIES)}, not {durability!r}")
        if max_batch < 1:
            raise ValueError(f"max_batch must be at least 1, not {max_batch}")
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
            store: Store | None = None
            try:
                check_after_open(data_dir, env, marker)
                env.reader_check()
                try:
                    store = cls(state, env, durability, max_batch, min_free)
                except lmdb.Error as exc:
                    raise StoreDamaged(f"cannot read the record kinds of {data_dir}: {exc}") from None
                store._write_marker()
                async with trio.open_nursery() as nursery:
                    nursery.start_soon(store._writer)
                    try:
                        yield store
                    finally:
                        store._send.close()  # the writer drains what is queued, then exits
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

    def statistics(self) -> StoreStats:
        """A frozen snapshot of the counters so far."""
        return StoreStats(**self._counts)

    @property
    def stats(self) -> StoreStats:
        """`statistics()`."""
        return self.statistics()

    @property
    def queued(self) -> int:
        """How many commits wait for the writer (not yet in a transaction)."""
        return self._send.statistics().current_buffer_used

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

    # -- writes -------------------------------------------------------------------------------------------

    async def commit(self, ops: Iterable[Op], *, expect: Iterable[Expect] = ()) -> bool:
        """Commit `ops` atomically, all or nothing; return once written.

        `expect`: conditions checked inside the write transaction; if one does not hold (another commit changed
        the row since it was read), nothing of this batch is written and `commit` returns False (else True).

        Raises `StoreError` if this batch could not be written (other callers' batches are not affected),
        `StoreClosed` once the store is closing. Bad ops (unknown kind, wrong record class, empty key, a
        record that cannot be encoded) raise `KeyError`/`TypeError`/`ValueError` here, before anything is
        queued. An empty list is a barrier: it returns once every commit queued before it is written.
        Cancelled before it is queued, nothing is written; once queued, it waits for its outcome regardless.
        """
        request = _Request(self._encode(ops), expects=[self._expectation(e) for e in expect])
        if self._full and self.full:
            self._counts["refused_full"] += 1
            raise StoreFull(self._full_message())
        await trio.lowlevel.checkpoint_if_cancelled()
        try:
            try:
                self._send.send_nowait(request)
            except trio.WouldBlock:
                await self._send.send(request)  # the queue is full: wait for room
        except (trio.ClosedResourceError, trio.BrokenResourceError):
            raise StoreClosed(f"the store at {self.path} is closed") from None
        await request.outcome()
        return request.applied

    def _expectation(self, expect: Expect) -> _Expect:
        return (self._db(expect.kind), encode_key(expect.key), KINDS[expect.kind], expect.value)

    def _encode(self, ops: Iterable[Op]) -> list[_Write]:
        writes: list[_Write] = []
        for op in ops:
            if not isinstance(op, _OPS):
                raise TypeError(f"a commit takes Put and Delete operations, not {type(op).__name__}")
            db = self._db(op.kind)
            key = encode_key(op.key)
            if isinstance(op, Delete):
                writes.append((db, key, None))
                continue
            cls = KINDS[op.kind]
            if not isinstance(op.value, cls):
                raise TypeError(f"kind {op.kind!r} holds {cls.__name__} records, not {type(op.value).__name__}")
            try:
                value = encode_value(op.value, op.key, is_hashed(key))
            except (TypeError, ValueError) as exc:
                raise TypeError(f"cannot encode the {op.kind} record {op.key!r}: {exc}") from exc
            writes.append((db, key, value))
        return writes

    async def _writer(self) -> None:
        # Shielded: the writer stops when the send side closes (always, when the `open` block exits), and
        # every queued caller waits shielded for its outcome, so the writer must not stop before that.
        with trio.CancelScope(shield=True):
            try:
                async for first in self._receive:
                    batch = [first]
                    while len(batch) < self._max_batch:
                        try:
                            batch.append(self._receive.receive_nowait())
                        except (trio.WouldBlock, trio.EndOfChannel):
                            break
                    await self._write(batch)
            finally:
                self._fail_queued()

    def _fail_queued(self) -> None:
        """Fail whatever is still queued (only if the writer itself crashed) so no caller waits forever."""
        while True:
            try:
                request = self._receive.receive_nowait()
            except (trio.WouldBlock, trio.EndOfChannel):
                break
            request.error = StoreClosed("the store writer stopped before this commit was written")
            request.finish()
        self._receive.close()

    async def _write(self, batch: list[_Request]) -> None:
        try:
            await self._commit_or_isolate(batch)
        finally:
            for request in batch:
                if request.moving is not None:
                    self._quarantining.discard(request.moving)
                if not request.written and request.error is None:
                    request.error = StoreClosed("the store writer stopped before this commit was written")
                if request.error is not None:
                    self._counts["failed_commits"] += 1
                else:
                    self._counts["commits"] += 1
                request.finish()
            self._counts["largest_batch"] = max(self._counts["largest_batch"], len(batch))

    async def _commit_or_isolate(self, batch: list[_Request]) -> None:
        """One transaction for the batch; if it fails, one per request, so only the failing ones fail.

        Out of disk space, the whole batch fails with `StoreFull` (and so does every write until space returns).
        """
        try:
            self._check_space()
            await self._transact(batch)
        except StoreFull as exc:
            self._fail_full(batch, exc)
        except Exception as exc:  # whatever failed, only its own callers may see it
            if is_disk_full(exc, self.path, self.min_free):
                self._set_full()
                self._fail_full(batch, StoreFull(self._full_message()))
                return
            if len(batch) == 1:
                log.error("store commit failed: %s", exc)
                damaged = isinstance(exc, CORRUPTION_ERRORS)
                batch[0].error = (StoreDamaged if damaged else StoreError)(f"commit failed: {exc}")
                batch[0].error.__cause__ = exc
                return
            log.warning("group commit of %d requests failed (%s); retrying one per transaction", len(batch), exc)
            self._counts["split_batches"] += 1
            for request in batch:
                await self._commit_or_isolate([request])

    def _fail_full(self, batch: list[_Request], error: StoreFull) -> None:
        self._counts["refused_full"] += len(batch)
        for request in batch:
            request.error = error

    async def _transact(self, batch: list[_Request]) -> None:
        started = time.perf_counter()
        while True:
            try:
                if self.durability == "unsafe":
                    self._apply(batch)  # no fsync: cheaper inline than a thread hop
                else:
                    await trio.to_thread.run_sync(self._apply, batch, limiter=self._thread)
            except lmdb.MapFullError:
                self._grow()
                continue
            for request in batch:
                request.written = True
            self._counts["transactions"] += 1
            if self.on_transaction is not None:
                self.on_transaction(len(batch), time.perf_counter() - started)
            if time.monotonic() - self._marker_at >= MARKER_INTERVAL:
                await trio.to_thread.run_sync(self._write_marker, limiter=self._thread)
            return

    @staticmethod
    def _apply_writes(txn: lmdb.Transaction, writes: list[_Write]) -> None:
        for db, key, value in writes:
            if value is None:
                txn.delete(key, db=db)
            else:
                txn.put(key, value, db=db)

    def _apply(self, batch: list[_Request]) -> None:
        """The whole batch in one write transaction (runs in a worker thread unless durability is unsafe)."""
        with self._env.begin(write=True) as txn:
            for request in batch:
                if request.guard is not None:
                    db, key, expected = request.guard
                    if txn.get(key, db=db) != expected:
                        continue
                request.applied = all(self._holds(txn, expect) for expect in request.expects)
                if request.applied:
                    self._apply_writes(txn, request.writes)

    @staticmethod
    def _holds(txn: lmdb.Transaction, expect: _Expect) -> bool:
        db, key, cls, value = expect
        raw = txn.get(key, db=db)
        if raw is None or value is None:
            return raw is None and value is None
        try:
            return bool(decode_value(bytes(raw), cls, key)[1] == value)
        except RecordDecodeError:
            return False

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

    def _db(self, kind: str) -> Any:
        if self._closed:
            raise StoreClosed(f"the store at {self.path} is closed")
        db = self._dbs.get(kind)
        if db is None:
            raise KeyError(f"unknown record kind {kind!r}; known kinds: {', '.join(KINDS)}")
        return db

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
                upper = _prefix_end(head)
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

    # -- quarantine ---------------------------------------------------------------------------------------

    def _decode(self, kind: str, stored: bytes, raw: bytes) -> tuple[str, Any] | None:
        try:
            return decode_value(raw, KINDS[kind], stored)
        except RecordDecodeError as exc:
            self._quarantine(kind, stored, raw, str(exc))
            return None

    def _quarantine(self, kind: str, stored: bytes, raw: bytes, reason: str) -> None:
        """Move an undecodable record to the quarantine kind (if it still holds these bytes), and log it."""
        label = stored.decode("utf-8", errors="backslashreplace")
        if (kind, stored) in self._quarantining:
            return  # its move is queued already
        if kind == _QUARANTINE:
            log.error("undecodable quarantine record %r: %s", label, reason)
            return
        log.error("quarantining undecodable %s record %r: %s", kind, label, reason)
        qkey = f"{kind}/{label}/{time.time_ns()}"
        qstored = encode_key(qkey)
        record = Quarantined(kind=kind, key=label, raw=raw, reason=reason)
        value = encode_value(record, qkey, is_hashed(qstored))
        db = self._dbs[kind]
        moves = [(self._dbs[_QUARANTINE], qstored, value), (db, stored, None)]
        request = _Request(moves, guard=(db, stored, raw), moving=(kind, stored))
        try:
            self._send.send_nowait(request)
        except (trio.WouldBlock, trio.ClosedResourceError, trio.BrokenResourceError):
            return  # set aside on a later read
        self._quarantining.add((kind, stored))
        self._counts["quarantined"] += 1
