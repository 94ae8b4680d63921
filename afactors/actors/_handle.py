"""`TurnHandle`: what a sender gets back for an accepted envelope."""

from __future__ import annotations

import logging
from collections.abc import AsyncGenerator, AsyncIterator, Callable

import trio

from afactors.model import Reply, Update
from afactors.store import ResponseRecord

log = logging.getLogger("afactors.actors")


class TurnHandle:
    """The sender's view of one turn: its id, its final `Reply`, and (with `stream=True`) its live updates.

    A caller that stops waiting (stops reading, is cancelled) does not cancel the turn: it still runs and
    commits. A stream consumer that falls more than the buffer behind, or closes its stream, loses the stream
    (`stream_dropped` becomes True and `updates()` ends early), never the turn: `reply()` has everything.
    """

    __slots__ = (
        "_buffer",
        "_done",
        "_observer",
        "_receive",
        "_reply",
        "_send",
        "_stream",
        "_streaming",
        "record",
        "stream_dropped",
        "turn_id",
    )

    def __init__(self, turn_id: str, *, stream: bool = False, buffer: int = 1024) -> None:
        self.turn_id = turn_id
        self.stream_dropped = False
        self.record: ResponseRecord | None = None
        """The response record the turn's commit wrote, set before `reply()` returns (None when it wrote none, or
        the turn did not end in a commit): what a read of the record right after the turn would return."""
        self._done = trio.Event()
        self._reply: Reply | None = None
        self._stream = stream
        self._streaming = stream  # updates are still wanted: the stream has not ended nor been dropped
        self._buffer = buffer
        self._observer: Callable[[Update], object] | None = None
        # The stream's channel, opened by the first update or `updates()` (never when a `watch` observer reads it).
        self._send: trio.MemorySendChannel[Update] | None = None
        self._receive: trio.MemoryReceiveChannel[Update] | None = None

    @classmethod
    def finished(cls, turn_id: str, reply: Reply, *, stream: bool = False) -> TurnHandle:
        """A handle whose turn already ended (an idempotency key answered before)."""
        handle = cls(turn_id, stream=stream)
        handle._resolve(reply)
        return handle

    @property
    def done(self) -> bool:
        """Whether the turn has ended (committed, failed or cancelled)."""
        return self._done.is_set()

    async def reply(self) -> Reply:
        """Wait until the turn is committed (or has failed or was cancelled) and return its reply."""
        await self._done.wait()
        assert self._reply is not None
        return self._reply

    def updates(self) -> AsyncIterator[Update]:
        """The turn's live updates, ending when the turn ends. Only for handles submitted with `stream=True`."""
        self._check_stream("updates()")
        if self._receive is None:
            self._open_stream()
        assert self._receive is not None
        return self._receive

    def watch(self, observer: Callable[[Update], object]) -> None:
        """Call `observer(update)` with each later update, instead of reading `updates()`: in the actor's task, as
        the update comes (no task waits per update), so it must be quick and must not block. An observer that
        raises loses the stream (`stream_dropped`), never the turn. Only for handles submitted with `stream=True`."""
        self._check_stream("watch()")
        if self._receive is not None:
            raise RuntimeError("this turn's updates are read with updates(); watch() is instead of it")
        self._observer = observer

    async def next_batch(self, limit: int = 512) -> list[Update]:
        """The next update (waited for) plus every update already queued behind it, up to `limit`; [] once the
        stream has ended. Cancel-safe: cancelled while it waits, no update is lost (a consumer can bound each wait
        with a deadline and send a heartbeat instead). Only for handles submitted with `stream=True`."""
        self.updates()  # refuses a handle without a stream
        receive = self._receive
        assert receive is not None
        try:
            batch = [await receive.receive()]
        except trio.EndOfChannel:
            return []
        while len(batch) < limit:
            try:
                batch.append(receive.receive_nowait())
            except (trio.WouldBlock, trio.EndOfChannel):
                break
        return batch

    async def update_batches(self, limit: int = 512) -> AsyncGenerator[list[Update], None]:
        """`updates()` grouped (see `next_batch`): a consumer writing one batch at a time sends what is ready together
        in one write and never waits for more than the first."""
        while batch := await self.next_batch(limit):
            yield batch

    # -- used by the actor ---------------------------------------------------------------------------------

    @property
    def streaming(self) -> bool:
        """Whether updates are still wanted (submitted with `stream=True`, and the stream has not ended)."""
        return self._streaming

    def _check_stream(self, what: str) -> None:
        if not self._stream:
            raise RuntimeError(f"this turn was submitted without stream=True; it has no updates for {what}")
        if self._observer is not None:
            raise RuntimeError(f"this turn's updates go to a watch() observer; {what} is instead of it")

    def _open_stream(self) -> None:
        """Open the stream's channel; closed at once if the stream has ended already."""
        self._send, self._receive = trio.open_memory_channel[Update](self._buffer)
        if not self._streaming:
            self._send.close()

    def _push(self, update: Update) -> bool:
        """Offer `update` to the stream (its observer, else its channel) without ever blocking; True if taken."""
        if not self._streaming:
            return False
        if self._observer is not None:
            try:
                self._observer(update)
            except Exception:
                log.exception("the update observer of turn %s failed; its stream is dropped", self.turn_id)
                self._drop_stream()
                return False
            return True
        if self._send is None:
            self._open_stream()
            assert self._send is not None
        try:
            self._send.send_nowait(update)
            return True
        except (trio.WouldBlock, trio.BrokenResourceError, trio.ClosedResourceError):
            self._drop_stream()
            return False

    def _drop_stream(self) -> None:
        if self._streaming:
            self._end_stream()
            self.stream_dropped = True

    def _end_stream(self) -> None:
        self._streaming = False
        self._observer = None
        if self._send is not None:
            self._send.close()

    def _resolve(self, reply: Reply) -> None:
        if self._done.is_set():
            return
        self._reply = reply
        self._end_stream()
        self._done.set()
