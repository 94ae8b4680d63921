"""Live rendering of a running turn: typing actions, and a preview of the streamed text (best-effort).

Private chats preview with sendMessageDraft (the first draft with the first delta, then at most one per
`stream_interval`); other chats with one message (sent once the turn has run for `stream_interval`) that is
edited at most once per `stream_interval`, identical text skipped, and only when the rate limits allow it
right now. None of this is the answer: `deliver` sends (or, for the preview
message, edits in) the final text once the turn is committed. `claim` stops the live task first, so no
preview lands after the answer.
"""

from __future__ import annotations

import logging
import random
import zlib
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import attrs
import trio

from afactors.model import Update
from afactors_telegram.config import TelegramConfig
from afactors_telegram.inbound import Address
from afactors_telegram.sender import Sender
from afactors_telegram.text import truncate

log = logging.getLogger("afactors.telegram")

_SEND_TIMEOUT = 15.0
_CLAIM_TIMEOUT = 20.0


@attrs.define(eq=False)
class LiveTurn:
    """The live side of one turn: where it renders and the preview message it created, if any."""

    turn_id: str
    address: Address
    message_id: int | None = None
    stop: trio.Event = attrs.Factory(trio.Event)
    settled: trio.Event = attrs.Factory(trio.Event)

    @property
    def draft_id(self) -> int:
        """A stable non-zero draft id for this turn."""
        return (zlib.crc32(self.turn_id.encode()) & 0x7FFFFFFF) or 1


class LiveTurns:
    """Live turns by turn id, so `deliver` can stop a turn's previews and find its preview message."""

    def __init__(self) -> None:
        self._turns: dict[str, LiveTurn] = {}

    def open(self, turn_id: str, address: Address) -> LiveTurn:
        live = self._turns[turn_id] = LiveTurn(turn_id, address)
        return live

    def discard(self, live: LiveTurn) -> None:
        """Forget a live turn that will never be delivered (its submit failed, or it was answered before)."""
        if self._turns.get(live.turn_id) is live:
            del self._turns[live.turn_id]
        live.settled.set()

    async def stop(self, turn_id: str) -> None:
        """Stop the turn's typing and previews (it went to the background); `claim` still finds its preview."""
        live = self._turns.get(turn_id)
        if live is not None:
            live.stop.set()
            with trio.move_on_after(_CLAIM_TIMEOUT):
                await live.settled.wait()

    async def claim(self, turn_id: str) -> LiveTurn | None:
        """Stop the turn's live task, wait until it has settled, and hand it over (None if not live here)."""
        live = self._turns.pop(turn_id, None)
        if live is None:
            return None
        live.stop.set()
        with trio.move_on_after(_CLAIM_TIMEOUT):
            await live.settled.wait()
        return live


Remember = Callable[[LiveTurn], Awaitable[None]]
"""Stores a preview message id durably, so a delivery after a restart still edits it."""


async def render_live(live: LiveTurn, updates: AsyncIterator[Update], sender: Sender, config: TelegramConfig,
                      remember: Remember) -> None:  # fmt: skip
    """Render one turn live until its updates end or `deliver` claims it; never raises for Telegram errors."""
    state = _Preview(live, sender, config, remember)
    try:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(_typing, live, sender, config.typing_delay, config.typing_interval)
            if config.stream:
                nursery.start_soon(state.push_loop)
            nursery.start_soon(_until_stopped, live, nursery.cancel_scope)
            async for update in updates:
                state.add(update.delta)
            nursery.cancel_scope.cancel()
    finally:
        live.settled.set()


async def _until_stopped(live: LiveTurn, scope: trio.CancelScope) -> None:
    await live.stop.wait()
    scope.cancel()


def _where(address: Address) -> dict[str, Any]:
    params: dict[str, Any] = {"chat_id": address.chat_id}
    if address.thread_id is not None:
        params["message_thread_id"] = address.thread_id
    return params


async def _typing(live: LiveTurn, sender: Sender, delay: float, interval: float) -> None:
    await trio.sleep(delay)
    while True:
        with trio.CancelScope(shield=True), trio.move_on_after(_SEND_TIMEOUT):
            await sender.best_effort("sendChatAction", {**_where(live.address), "action": "typing"})
        await trio.sleep(interval)


class _Preview:
    """Coalesces streamed text and pushes it at most once per interval."""

    def __init__(self, live: LiveTurn, sender: Sender, config: TelegramConfig, remember: Remember) -> None:
        self.live, self.sender, self.config, self.remember = live, sender, config, remember
        self.text = ""
        self.shown = ""
        self.changed = trio.Event()

    def add(self, delta: str) -> None:
        if delta:
            self.text += delta
            self.changed.set()

    async def push_loop(self) -> None:
        # A draft does not count against the limits: the first one shows the first delta at once. A group's
        # preview is a message, sent only once the turn has run for an interval (a quick turn's answer is its one).
        next_push = trio.current_time() + (0.0 if self.live.address.private else self.config.stream_interval)
        while True:
            await self.changed.wait()
            await trio.sleep_until(next_push)
            self.changed = trio.Event()
            text = truncate(self.text)
            next_push = trio.current_time() + self.config.stream_interval
            if text.strip() and text != self.shown:
                with trio.CancelScope(shield=True), trio.move_on_after(_SEND_TIMEOUT):
                    if await self._push(text):
                        self.shown = text
                if self.shown != text:
                    # Skipped (the limits said not now, or Telegram refused): try again once the limits allow,
                    # even if no delta comes, at a jittered moment so previews held back together spread out.
                    self.changed.set()
                    next_push = self._retry_at()

    def _retry_at(self) -> float:
        address, interval = self.live.address, self.config.stream_interval
        ready = self.sender.ready_at(address.chat_id, group=not address.private)
        return max(ready, trio.current_time() + interval / 4) + random.uniform(0.0, interval / 2)

    async def _push(self, text: str) -> bool:
        live, where = self.live, _where(self.live.address)
        if live.address.private:
            return (
                await self.sender.best_effort("sendMessageDraft", {**where, "draft_id": live.draft_id, "text": text})
                is not None
            )
        if live.message_id is not None:
            params = {**where, "message_id": live.message_id, "text": text}
            return await self.sender.try_send("editMessageText", params, group=True) is not None
        params = {**where, "text": text}
        if live.address.reply_to is not None:
            params["reply_parameters"] = {"message_id": live.address.reply_to, "allow_sending_without_reply": True}
        sent = await self.sender.try_send("sendMessage", params, group=True)
        if not isinstance(sent, dict) or type(sent.get("message_id")) is not int:
            return False
        live.message_id = sent["message_id"]
        await self.remember(live)
        return True
