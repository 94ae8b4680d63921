"""What a user sees while a turn runs (transport): typing indicators and, where supported, a streamed answer.

The final message is not sent here: it comes from the durable outbox (`ActivityChannel.deliver`), which
`claim`s the live turn first so that it ends the stream (same `streamId`) after the last chunk, paced.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import AsyncIterator, Callable
from typing import Any

import attrs
import trio

from afactors.model import Update
from afactors_activity.activity import ConversationRef
from afactors_activity.connector import Connector, OutboundError
from afactors_activity.outbound import StreamType, stream_chunk, typing_activity

log = logging.getLogger("afactors.activity")


@attrs.frozen
class Pace:
    """When typing indicators go out: first after `delay` seconds, then every `interval`."""

    delay: float
    interval: float


@attrs.define(eq=False)
class LiveTurn:
    """A running turn's live rendering: `interval` seconds between stream chunks (None: typing only), opened by
    an `informative` chunk when one is configured."""

    turn_id: str
    ref: ConversationRef
    interval: float | None
    informative: str | None = None
    stream_id: str | None = None
    sequence: int = 0
    last_sent: float = -1e9
    finished: trio.Event = attrs.Factory(trio.Event)

    async def settled(self) -> None:
        """Wait until the rendering has stopped and the stream's pace allows the final message."""
        await self.finished.wait()
        if self.streamed and self.interval is not None:
            await trio.sleep_until(self.last_sent + self.interval)

    @property
    def streamed(self) -> bool:
        """Whether a stream was opened (the final message must close it)."""
        return self.sequence > 0 and self.stream_id is not None


class LiveTurns:
    """The live turns of this process, by turn id."""

    def __init__(self) -> None:
        self._turns: dict[str, LiveTurn] = {}

    def open(self, turn_id: str, ref: ConversationRef, interval: float | None, informative: str | None) -> LiveTurn:
        """Register a turn about to run: `interval` between stream chunks (None: no streaming), the first chunk
        `informative` ("Thinking...") when given."""
        live = LiveTurn(turn_id, ref, interval, informative)
        if interval is not None and ref.channel_id != "msteams":
            live.stream_id = str(uuid.uuid4())  # Web Chat / Direct Line: the bot names the stream (Teams does)
        self._turns[turn_id] = live
        return live

    def discard(self, live: LiveTurn) -> None:
        if self._turns.get(live.turn_id) is live:
            del self._turns[live.turn_id]
        live.finished.set()

    def claim(self, turn_id: str) -> LiveTurn | None:
        """Take the live turn of `turn_id` for its final message; None when it is not live here (e.g. after a
        restart). Await its `settled` before sending."""
        return self._turns.pop(turn_id, None)


async def render_live(live: LiveTurn, updates: AsyncIterator[Update], connector: Connector, typing: Pace) -> None:
    """Show typing (after `typing.delay`, then every `typing.interval`, until the stream starts) and stream the
    text as it grows."""
    text = ""
    grew = trio.Event()
    try:
        async with trio.open_nursery() as nursery:
            typing_scope = trio.CancelScope()
            nursery.start_soon(_typing, live, connector, typing, typing_scope)
            if live.interval is not None:
                nursery.start_soon(_stream, live, connector, lambda: text, lambda: grew, typing_scope)
            async for update in updates:
                if update.delta:
                    text += update.delta
                    grew.set()
                    grew = trio.Event()
            nursery.cancel_scope.cancel()
    finally:
        live.finished.set()


async def _typing(live: LiveTurn, connector: Connector, pace: Pace, scope: trio.CancelScope) -> None:
    with scope:
        await trio.sleep(pace.delay)
        while True:
            try:
                await _whole(connector, live.ref, typing_activity(live.ref))
            except OutboundError as error:
                log.info("activity: typing indicator for %s not sent: %s", live.turn_id, error)
                return
            await trio.sleep(pace.interval)


async def _stream(live: LiveTurn, connector: Connector, text: Callable[[], str], grew: Callable[[], trio.Event],
                  typing: trio.CancelScope) -> None:  # fmt: skip
    """Open the stream with the informative text, if any, then send the text so far as a chunk whenever it grew
    and the pace allows (B-14)."""
    assert live.interval is not None
    if live.informative and not await _chunk(live, connector, live.informative, "informative", typing):
        return
    sent = ""
    while True:
        if text() == sent:
            await grew().wait()
        await trio.sleep_until(live.last_sent + live.interval)
        sent = text()
        if not await _chunk(live, connector, sent, "streaming", typing):
            return


async def _chunk(live: LiveTurn, connector: Connector, text: str, kind: StreamType, typing: trio.CancelScope) -> bool:
    """Send one chunk; False when streaming has stopped for this turn (refused, or no stream id came back)."""
    live.sequence += 1
    try:
        stream_id = await _whole(connector, live.ref, stream_chunk(live.ref, text, live.sequence, live.stream_id, kind))
    except OutboundError as error:
        log.info("activity: streaming stopped for %s (the final message still comes): %s", live.turn_id, error)
        live.stream_id, live.sequence = None, 0
        return False
    live.last_sent = trio.current_time()
    typing.cancel()
    if live.stream_id is None:
        if stream_id is None:
            log.info("activity: no stream id came back for %s; sending only the final message", live.turn_id)
            live.sequence = 0
            return False
        live.stream_id = stream_id
    return True


async def _whole(connector: Connector, ref: ConversationRef, activity: dict[str, Any]) -> str | None:
    """Send one activity to the end even when the turn ends meanwhile: a chunk cut off mid-request could
    arrive after the final message, and the final message waits for this (bounded by the request timeout)."""
    with trio.CancelScope(shield=True):
        sent = await connector.send(ref, activity)
    return sent
