"""Sending discipline: rate limits, flood waits, group migrations, one send at a time per chat."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import attrs
import trio

from afactors.channel import ChannelContext, Meter
from afactors_telegram.api import BotApiClient, NetworkError, TelegramError, UploadFile
from afactors_telegram.config import SendLimits
from afactors_telegram.limits import SendLimiter

log = logging.getLogger("afactors.telegram")

_MAX_MIGRATIONS = 3

WAIT_SECONDS = (0.01, 0.05, 0.1, 0.5, 1.0, 2.0, 5.0, 10.0, 30.0, 60.0, 300.0)


@attrs.frozen
class SendMeters:
    """The rate-limit waits the channel reports on the host's `/metrics`."""

    flood_waits: Meter
    flood_wait_seconds: Meter
    send_wait_seconds: Meter

    @classmethod
    def of(cls, ctx: ChannelContext) -> SendMeters:
        return cls(
            ctx.counter("flood_waits", "429 answers (Telegram's flood control) that paused a chat, by method.",
                        labels=("method",)),
            ctx.histogram("flood_wait_seconds", "Seconds Telegram's 429 answers asked to wait (retry_after).",
                          WAIT_SECONDS),
            ctx.histogram("send_wait_seconds", "Seconds a message waited for the channel's own send-rate limits "
                          "(per chat, per group, global) before it went out.", WAIT_SECONDS),
        )  # fmt: skip


class Sender:
    """Every message, photo and edit the channel sends goes through here.

    `send` waits for the per-chat, per-group and global buckets, follows `migrate_to_chat_id`, and on 429
    waits exactly `retry_after` before trying again (at most `max_flood_waits` times, then the 429 is
    raised). `try_send` is for live previews: it goes out only if the buckets allow it right now and the
    chat is not busy, and never raises. `best_effort` is for calls Telegram does not count (typing, drafts).
    """

    def __init__(self, api: BotApiClient, limits: SendLimits, *, max_flood_waits: int = 3,
                 clock: Callable[[], float] = trio.current_time, meters: SendMeters | None = None) -> None:  # fmt: skip
        self.api = api
        self.meters = meters
        self.limiter = SendLimiter(limits)
        self.max_flood_waits = max_flood_waits
        self._clock = clock
        self._locks: dict[int, trio.Lock] = {}
        self._global_turn = trio.Lock()  # FIFO: sends take global tokens in the order they became ready
        self._migrated: dict[int, int] = {}

    def resolve(self, chat_id: int) -> int:
        """The chat id to use now (a basic group that became a supergroup has a new one)."""
        for _ in range(_MAX_MIGRATIONS):
            if chat_id not in self._migrated:
                break
            chat_id = self._migrated[chat_id]
        return chat_id

    @asynccontextmanager
    async def _chat_lock(self, chat_id: int) -> AsyncIterator[None]:
        lock = self._locks.get(chat_id)
        if lock is None:
            lock = self._locks[chat_id] = trio.Lock()
        try:
            async with lock:
                yield
        finally:
            if not lock.locked() and lock.statistics().tasks_waiting == 0:
                self._locks.pop(chat_id, None)

    async def send(self, method: str, params: dict[str, Any], *, group: bool,
                   files: dict[str, UploadFile] | None = None) -> Any:  # fmt: skip
        """A rate-limited call to `params["chat_id"]`; raises `TelegramError`/`NetworkError` when it fails."""
        for _ in range(_MAX_MIGRATIONS + 1):
            chat_id = self.resolve(params["chat_id"])
            params = {**params, "chat_id": chat_id}
            try:
                async with self._chat_lock(chat_id):
                    return await self._send_in_chat(method, params, chat_id, group, files)
            except TelegramError as error:
                if error.migrate_to_chat_id is None:
                    raise
                log.info("telegram chat %s moved to %s", chat_id, error.migrate_to_chat_id)
                self._migrated[chat_id] = error.migrate_to_chat_id
                group = True
        raise TelegramError(method, 400, "too many chat migrations")

    async def _send_in_chat(self, method: str, params: dict[str, Any], chat_id: int, group: bool,
                            files: dict[str, UploadFile] | None) -> Any:  # fmt: skip
        waits = 0
        while True:
            ready = self._clock()
            await trio.sleep_until(self.limiter.chat_ready_at(chat_id, group, ready))
            async with self._global_turn:
                await trio.sleep_until(self.limiter.global_ready_at(self._clock()))
                now = self._clock()
                self.limiter.take_global(now)
                self.limiter.commit_chat(chat_id, group, now)
            if self.meters is not None:
                self.meters.send_wait_seconds.record(now - ready)
            try:
                # Once a send has started it is seen through: cancelled half-way, it could not be known
                # whether Telegram took it (a graceful shutdown would then send it twice).
                with trio.CancelScope(shield=True):
                    return await self.api.call(method, params, files=files)
            except TelegramError as error:
                if error.code != 429 or error.retry_after is None or waits >= self.max_flood_waits:
                    raise
                waits += 1
                log.info("telegram flood wait %.0f s for chat %s (%s)", error.retry_after, chat_id, method)
                self._flood_wait(chat_id, method, error.retry_after)

    def _flood_wait(self, chat_id: int, method: str, retry_after: float) -> None:
        """Telegram answered 429: nothing goes to the chat for `retry_after` seconds (counted on /metrics)."""
        self.limiter.pause_chat(chat_id, self._clock() + retry_after)
        if self.meters is not None:
            self.meters.flood_waits.record(method=method)
            self.meters.flood_wait_seconds.record(retry_after)

    def ready_at(self, chat_id: int, *, group: bool) -> float:
        """When the limits would next let a send to `chat_id` go out (the clock's time; now or later)."""
        now, chat_id = self._clock(), self.resolve(chat_id)
        return max(self.limiter.chat_ready_at(chat_id, group, now), self.limiter.global_ready_at(now))

    async def try_send(self, method: str, params: dict[str, Any], *, group: bool) -> Any | None:
        """A rate-limited call made only if it can go out now; its result, or None if skipped or failed."""
        chat_id = self.resolve(params["chat_id"])
        lock = self._locks.get(chat_id)
        if (lock is not None and lock.locked()) or self._global_turn.locked():
            return None
        if not self.limiter.try_take(chat_id, group, self._clock()):
            return None
        try:
            return await self.api.call(method, {**params, "chat_id": chat_id})
        except TelegramError as error:
            if error.code == 429 and error.retry_after is not None:
                self._flood_wait(chat_id, method, error.retry_after)
            log.debug("telegram live %s skipped: %s", method, error)
        except NetworkError as error:
            log.debug("telegram live %s skipped: %s", method, error)
        return None

    async def best_effort(self, method: str, params: dict[str, Any]) -> Any | None:
        """A call Telegram does not rate-limit as a message (typing, drafts); None if it failed."""
        try:
            return await self.api.call(method, {**params, "chat_id": self.resolve(params["chat_id"])})
        except (TelegramError, NetworkError) as error:
            log.debug("telegram %s skipped: %s", method, error)
            return None
