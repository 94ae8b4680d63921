"""`GroupCommitStore`: the writer every backend shares: one task, one transaction for everything queued.

Callers' ops are encoded (and bad ops refused) in the caller, queued, and written by one writer task that takes
everything queued (up to `max_batch`; half of a long queue where the flush runs beside the trio thread, see
`batch_limit`) into one transaction. Where the backend writes on the trio thread, a commit
that comes alone (nothing queued or being written, no other task ready to run, the last transaction held one
commit) skips the queue: its caller writes it, as the writer would (one task hop less; see `_writes_inline`);
commits arriving meanwhile queue behind it, and the writer takes its lock first, so commits are written in the
order they were made. A failed group is retried one request per
transaction, so only the failing requests fail. Undecodable records met by reads are moved to the quarantine
kind through the same writer, guarded so a record a commit replaced is never moved. A backend supplies the
kinds' handles, `_apply_batch` (one transaction), its reads, and what its errors mean.
"""

from __future__ import annotations

import abc
import logging
import time
from collections.abc import AsyncIterator, Iterable
from contextlib import asynccontextmanager
from typing import Any

import attrs
import trio

from afactors.model import sharing
from afactors.store._codec import RecordDecodeError, decode_value, encode_key, encode_value, is_hashed
from afactors.store._integrity import StoreDamaged, StoreError, StoreFull
from afactors.store._interface import DURABILITIES, Delete, Durability, Expect, Op, Put, Store, StoreClosed, StoreStats
from afactors.store._records import KINDS, Quarantined

log = logging.getLogger("afactors.store")

QUEUE_SIZE = 10_000
SPLIT_AT = 128
"""With `_flushes_beside`, a queue this long or longer may be written as two transactions (see `batch_limit`)."""
SPLIT_COMMIT_S = 30e-6
"""A modest guess at the trio thread's time per commit its callers make (an echo turn of the actor runtime takes
about 60 µs): a queue is split only if the last flush took less than this times half the queue."""
QUARANTINE = "quarantine"
_OPS = (Put, Delete)

Write = tuple[Any, bytes, bytes | None]  # (the kind's handle, stored key, value or None to delete)
Expectation = tuple[Any, bytes, type, Any]  # (the kind's handle, stored key, record class, record or None)


@attrs.define(eq=False)
class Request:
    """One caller's commit: its encoded writes, and its outcome once the writer is done with it."""

    writes: list[Write]
    guard: Write | None = None  # apply only if this key still holds exactly this value (quarantine moves)
    moving: tuple[str, bytes] | None = None  # the (kind, key) a quarantine move sets aside
    expects: list[Expectation] = attrs.Factory(list)  # `Expect` conditions: all must hold, else nothing is written
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


def batch_limit(queued: int, max_batch: int, last_write: float, split: bool) -> int:
    """How many of `queued` commits (with the one the writer holds) the next transaction takes at most: all of them
    (up to `max_batch`), or half of a long queue (`SPLIT_AT`) when `split` (the flush runs beside the trio thread)
    and the `last_write` took less than the trio thread needs for the other half (`SPLIT_COMMIT_S` per commit): a
    slow disk gains more from fewer flushes."""
    if split and queued >= SPLIT_AT and last_write < queued / 2 * SPLIT_COMMIT_S:
        return min(max_batch, queued // 2)
    return max_batch


def _abort_failed(_: object) -> trio.lowlevel.Abort:
    return trio.lowlevel.Abort.FAILED


def _others_ready() -> bool:
    """Whether other tasks are ready to run (one may be about to commit too)."""
    return bool(trio.lowlevel.current_statistics().tasks_runnable)


def holds(raw: bytes | None, expect: Expectation) -> bool:
    """Whether the stored bytes `raw` (None: no record) satisfy `expect`."""
    _, key, cls, value = expect
    if raw is None or value is None:
        return raw is None and value is None
    try:
        return bool(decode_value(raw, cls, key)[1] == value)
    except RecordDecodeError:
        return False


def check_options(durability: str, max_batch: int) -> None:
    """Refuse the options every backend takes when they are out of range (`ValueError`)."""
    if durability not in DURABILITIES:
        raise ValueError(f"durability must be one of {', '.join(DURABILITIES)}, not {durability!r}")
    if max_batch < 1:
        raise ValueError(f"max_batch must be at least 1, not {max_batch}")


class GroupCommitStore(Store):
    """A store whose writes go through one writer task with group commit (see the module docstring)."""

    _damage_errors: tuple[type[BaseException], ...] = ()
    """A backend's errors that mean its data is damaged (a failed commit then raises `StoreDamaged`)."""

    def __init__(self, durability: Durability, max_batch: int) -> None:
        self.durability = durability
        self._counts: dict[str, int] = dict.fromkeys(attrs.fields_dict(StoreStats), 0)  # `statistics()` copies
        self._max_batch = max_batch
        self._full = False
        self._closed = False
        self._quarantining: set[tuple[str, bytes]] = set()  # moves queued and not yet done
        self._send, self._receive = trio.open_memory_channel[Request](QUEUE_SIZE)
        self._accepting = True  # False once the writer was told to stop
        self._pending = 0  # requests queued or being written (by the writer or a caller)
        self._writing = trio.Lock()  # held by whoever writes a transaction: the writer, or a caller writing its own
        self._alone = True  # the last transaction held one commit: commits come one at a time (`_writes_inline`)
        self._last_write = 0.0  # seconds the last transaction took to write (and flush)
        # The writer's own thread token: threads busy elsewhere (sync targets) never hold up a commit.
        self._thread = trio.CapacityLimiter(1)
        self.on_transaction = None

    @property
    @abc.abstractmethod
    def _handles(self) -> dict[str, Any]:
        """Each kind's handle, as the backend's `_apply_batch` and reads use it."""

    @abc.abstractmethod
    async def _apply_batch(self, batch: list[Request]) -> None:
        """Write the batch in one transaction: per request, skip it if its guard does not hold, set `applied`
        from its expectations, apply its writes if they hold. Raise if the transaction failed."""

    @property
    def _writes_inline(self) -> bool:
        """Whether a transaction is written on the trio thread, without waiting on a thread or a server. Then a lone
        commit (nothing queued or being written, no other task ready to run, and the last transaction held one
        commit too) is written by its caller: the hop to the writer task would cost more than the grouping it
        allows. Else the writer's one scheduling round lets every commit made meanwhile join one transaction, where
        callers writing alone would each cost a transaction (with `durable` a flush, on PostgreSQL a round trip) of
        their own; once commits overlap, they keep going through the writer until one comes alone again."""
        return False

    @property
    def _flushes_beside(self) -> bool:
        """Whether a transaction is flushed beside the trio thread, which meanwhile runs other tasks. Then a long
        queue is written as two transactions (`batch_limit`): while the first half flushes, its callers' tasks
        wait, and the other half's, written next, run on and make their next commits. One transaction for all
        would leave the trio thread idle for each flush, with every caller waiting on it."""
        return False

    def _full_error(self, exc: Exception) -> StoreFull | None:
        """The `StoreFull` to fail a batch with if `exc` means the disk is full, else None."""
        return None

    async def _after_transaction(self) -> None:
        """Called by the writer after each committed transaction (LMDB's commit marker)."""

    def statistics(self) -> StoreStats:
        return StoreStats(**self._counts)

    @property
    def queued(self) -> int:
        return self._send.statistics().current_buffer_used

    def _full_message(self) -> str:
        return f"the disk holding {self.location} is full: writes are refused until space is freed; reads still work"

    # -- writes -------------------------------------------------------------------------------------------

    async def commit(self, ops: Iterable[Op], *, expect: Iterable[Expect] = ()) -> bool:
        """Commit `ops` atomically, all or nothing; return once written.

        `expect`: conditions checked inside the write transaction; if one does not hold (another commit changed
        the row since it was read), nothing of this batch is written and `commit` returns False (else True).

        Raises `StoreError` if this batch could not be written (other callers' batches are not affected),
        `StoreClosed` once the store is closing. Bad ops (unknown kind, wrong record class, empty key, a
        record that cannot be encoded) raise `KeyError`/`TypeError`/`ValueError` here, before anything is
        queued. An empty list is a barrier: it returns once every commit queued before it is written.
        Cancelled before it is queued, nothing is written; once queued, it waits for its outcome regardless. (With
        nothing queued or being written, commits coming one at a time and a backend that writes inline, the
        caller's own task writes it: the same outcome, one task hop less; see `_writes_inline`.)
        """
        request = Request(self._encode(ops), expects=[self._expectation(e) for e in expect])
        if self._full and self.full:
            self._counts["refused_full"] += 1
            raise StoreFull(self._full_message())
        await trio.lowlevel.checkpoint_if_cancelled()
        if not self._accepting:
            raise StoreClosed(f"the store at {self.location} is closed")
        if self._pending == 0 and self._alone and self._writes_inline and not _others_ready():
            return await self._commit_here(request)
        self._pending += 1
        try:
            try:
                self._send.send_nowait(request)
            except trio.WouldBlock:
                await self._send.send(request)  # the queue is full: wait for room
        except BaseException as exc:
            self._pending -= 1
            if isinstance(exc, (trio.ClosedResourceError, trio.BrokenResourceError)):
                raise StoreClosed(f"the store at {self.location} is closed") from None
            raise
        # Wait until finished, uncancellably (once queued, the writer decides). A bare park instead of an Event
        # under a shielded cancel scope, inline rather than a method: this is the hot path of every commit.
        if request.finished:
            await trio.lowlevel.cancel_shielded_checkpoint()
        else:
            request.waiter = trio.lowlevel.current_task()
            await trio.lowlevel.wait_task_rescheduled(_abort_failed)
        if request.error is not None:
            raise request.error
        return request.applied

    async def _commit_here(self, request: Request) -> bool:
        """Write `request` in the calling task (nothing is queued or being written), as the writer would."""
        self._pending += 1
        self._writing.acquire_nowait()
        try:
            with trio.CancelScope(shield=True):  # begun, it is written whatever happens to the caller
                await self._write([request])
        finally:
            self._writing.release()
            self._pending -= 1
        await trio.lowlevel.cancel_shielded_checkpoint()  # a schedule point, as a queued commit's wait is
        if request.error is not None:
            raise request.error
        return request.applied

    def _expectation(self, expect: Expect) -> Expectation:
        return (self._db(expect.kind), encode_key(expect.key), KINDS[expect.kind], expect.value)

    def _encode(self, ops: Iterable[Op]) -> list[Write]:
        return sharing(self._encode_each, ops)  # a turn's messages, in its turn and response records: encoded once

    def _encode_each(self, ops: Iterable[Op]) -> list[Write]:
        writes: list[Write] = []
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

    @asynccontextmanager
    async def _serving(self) -> AsyncIterator[None]:
        """Run the writer task while the block runs; on exit it writes every commit already queued, then stops."""
        async with trio.open_nursery() as nursery:
            nursery.start_soon(self._writer)
            try:
                yield
            finally:
                self._accepting = False
                self._send.close()  # the writer drains what is queued, then exits

    async def _writer(self) -> None:
        # Shielded: the writer stops when the send side closes (always, when the `open` block exits), and
        # every queued caller waits shielded for its outcome, so the writer must not stop before that.
        with trio.CancelScope(shield=True):
            try:
                async for first in self._receive:
                    try:
                        self._writing.acquire_nowait()
                    except trio.WouldBlock:  # a caller is writing its own commit: this batch comes after it
                        await self._writing.acquire()
                    batch = [first]
                    limit = batch_limit(1 + self.queued, self._max_batch, self._last_write, self._flushes_beside)
                    while len(batch) < limit:
                        try:
                            batch.append(self._receive.receive_nowait())
                        except (trio.WouldBlock, trio.EndOfChannel):
                            break
                    try:
                        await self._write(batch)
                    finally:
                        self._pending -= len(batch)
                        self._writing.release()
                async with self._writing:  # a commit its caller is still writing ends before the store closes
                    pass
            finally:
                self._fail_queued()

    def _fail_queued(self) -> None:
        """Fail whatever is still queued (only if the writer itself crashed) so no caller waits forever."""
        while True:
            try:
                request = self._receive.receive_nowait()
            except (trio.WouldBlock, trio.EndOfChannel):
                break
            self._pending -= 1
            request.error = StoreClosed("the store writer stopped before this commit was written")
            request.finish()
        self._receive.close()

    async def _write(self, batch: list[Request]) -> None:
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
            self._alone = len(batch) == 1

    async def _commit_or_isolate(self, batch: list[Request]) -> None:
        """One transaction for the batch; if it fails, one per request, so only the failing ones fail.

        Out of disk space, the whole batch fails with `StoreFull` (and so does every write until space returns).
        """
        try:
            self._check_space()
            await self._transact(batch)
        except StoreFull as exc:
            self._fail_full(batch, exc)
        except Exception as exc:  # whatever failed, only its own callers may see it
            full = self._full_error(exc)
            if full is not None:
                self._fail_full(batch, full)
                return
            if len(batch) == 1:
                log.error("store commit failed: %s", exc)
                damaged = isinstance(exc, self._damage_errors)
                batch[0].error = (StoreDamaged if damaged else StoreError)(f"commit failed: {exc}")
                batch[0].error.__cause__ = exc
                return
            log.warning("group commit of %d requests failed (%s); retrying one per transaction", len(batch), exc)
            self._counts["split_batches"] += 1
            for request in batch:
                await self._commit_or_isolate([request])

    def _check_space(self) -> None:
        """Raise `StoreFull` before a transaction if the backend knows the disk is full."""

    def _fail_full(self, batch: list[Request], error: StoreFull) -> None:
        self._counts["refused_full"] += len(batch)
        for request in batch:
            request.error = error

    async def _transact(self, batch: list[Request]) -> None:
        started = time.perf_counter()
        await self._apply_batch(batch)
        for request in batch:
            request.written = True
        self._counts["transactions"] += 1
        self._last_write = time.perf_counter() - started
        if self.on_transaction is not None:
            self.on_transaction(len(batch), self._last_write)
        await self._after_transaction()

    # -- reads --------------------------------------------------------------------------------------------

    def _db(self, kind: str) -> Any:
        if self._closed:
            raise StoreClosed(f"the store at {self.location} is closed")
        db = self._handles.get(kind)
        if db is None:
            raise KeyError(f"unknown record kind {kind!r}; known kinds: {', '.join(KINDS)}")
        return db

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
        if kind == QUARANTINE:
            log.error("undecodable quarantine record %r: %s", label, reason)
            return
        log.error("quarantining undecodable %s record %r: %s", kind, label, reason)
        qkey = f"{kind}/{label}/{time.time_ns()}"
        qstored = encode_key(qkey)
        record = Quarantined(kind=kind, key=label, raw=raw, reason=reason)
        value = encode_value(record, qkey, is_hashed(qstored))
        db = self._handles[kind]
        moves = [(self._handles[QUARANTINE], qstored, value), (db, stored, None)]
        request = Request(moves, guard=(db, stored, raw), moving=(kind, stored))
        try:
            self._send.send_nowait(request)
        except (trio.WouldBlock, trio.ClosedResourceError, trio.BrokenResourceError):
            return  # set aside on a later read
        self._pending += 1
        self._quarantining.add((kind, stored))
        self._counts["quarantined"] += 1


def prefix_end(prefix: bytes) -> bytes | None:
    """The smallest key above every key that starts with `prefix` (None: no such key)."""
    stripped = prefix.rstrip(b"\xff")
    if not stripped:
        return None
    return stripped[:-1] + bytes([stripped[-1] + 1])
