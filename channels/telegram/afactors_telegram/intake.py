"""Intake of updates: one lane per chat (in order within a chat, chats in parallel) and the poll offset.

A busy conversation only holds up its own chat's lane. An update counts as done once its handler returned
(the envelope is in the durable inbox, or the update was deliberately dropped); `offset` is the lowest
update not done yet, so getUpdates never confirms an update before it is durable.
"""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

import trio

from afactors.channel import Backoff, StoreFull

log = logging.getLogger("afactors.telegram")

Handler = Callable[[Mapping[str, Any]], Awaitable[None]]
Poison = Callable[[Mapping[str, Any], str], Awaitable[None]]
_RECENT = 4096  # done update ids remembered, so a redelivered update is not handled twice
_ATTEMPTS = 5
_RETRY = Backoff(0.5, 8.0, jitter=0.0)
_HOLD = Backoff(1.0, 30.0, jitter=0.0)  # while the store is full: the update stays in flight (offset held)


def lane_of(update: Mapping[str, Any]) -> int | str:
    """The chat an update belongs to (its lane); updates without a chat get a lane of their own."""
    for value in update.values():
        if isinstance(value, Mapping):
            chat = value.get("chat")
            if isinstance(chat, Mapping) and type(chat.get("id")) is int:
                return chat["id"]
    return f"update:{update.get('update_id')}"


class Intake:
    """Runs `handler` for each offered update in its chat's lane, inside `nursery`.

    A handler that raises is retried (with backoff, in order) up to five times, then the update is handed to
    `poison` (which dead-letters it with the reason), so one bad update cannot stall its chat (or the poll
    offset) for ever, and is never dropped silently. While the store is full (`StoreFull`) an update is held:
    retried without limit, so the offset does not move past anything that was not stored.
    """

    def __init__(self, nursery: trio.Nursery, handler: Handler, poison: Poison) -> None:
        self._nursery = nursery
        self._handler = handler
        self._poison = poison
        self._lanes: dict[int | str, deque[tuple[Mapping[str, Any], trio.Event]]] = {}
        self._events: dict[int, trio.Event] = {}  # update id -> set when done, for updates in flight
        self._recent: deque[int] = deque()
        self._recent_set: set[int] = set()
        self._max_seen: int | None = None
        self._progress = trio.Event()

    @property
    def offset(self) -> int | None:
        """The getUpdates offset that confirms exactly the done updates (None before the first update)."""
        if self._events:
            return min(self._events)
        return None if self._max_seen is None else self._max_seen + 1

    @property
    def in_flight(self) -> int:
        return len(self._events)

    def known(self, update_id: int) -> bool:
        """Whether the update is in flight or was done recently."""
        return update_id in self._events or update_id in self._recent_set

    def offer(self, update: Mapping[str, Any]) -> trio.Event:
        """Queue `update` (a dict with an int `update_id`) in its lane; the event is set once it is done.

        An update in flight gives its existing event; one done recently gives an event already set.
        """
        update_id: int = update["update_id"]
        if update_id in self._recent_set:
            done = trio.Event()
            done.set()
            return done
        existing = self._events.get(update_id)
        if existing is not None:
            return existing
        done = self._events[update_id] = trio.Event()
        self._max_seen = update_id if self._max_seen is None else max(self._max_seen, update_id)
        lane_key = lane_of(update)
        lane = self._lanes.get(lane_key)
        if lane is None:
            lane = self._lanes[lane_key] = deque()
            self._nursery.start_soon(self._run_lane, lane_key, lane)
        lane.append((update, done))
        return done

    async def wait_progress(self) -> None:
        """Wait until some update is done."""
        await self._progress.wait()

    async def _run_lane(self, lane_key: int | str, lane: deque[tuple[Mapping[str, Any], trio.Event]]) -> None:
        try:
            while lane:
                update, done = lane[0]
                await self._handle(update)
                lane.popleft()
                self._finish(update["update_id"], done)
        finally:
            if self._lanes.get(lane_key) is lane:
                del self._lanes[lane_key]

    async def _handle(self, update: Mapping[str, Any]) -> None:
        attempt, holds, reason = 0, 0, ""
        while True:
            try:
                if attempt < _ATTEMPTS:
                    await self._handler(update)
                else:
                    await self._poison(update, reason)
                return
            except StoreFull:
                log.warning("telegram update %s held: the store is full", update.get("update_id"))
                holds += 1
                await trio.sleep(_HOLD.delay(holds))
                continue
            except Exception as exc:
                if attempt >= _ATTEMPTS:  # the dead letter could not be written: keep the update, try again
                    log.exception("telegram update %s could not be dead-lettered", update.get("update_id"))
                    holds += 1
                    await trio.sleep(_HOLD.delay(holds))
                    continue
                attempt += 1
                reason = f"{type(exc).__name__}: {exc}"
                log.warning("telegram update %s failed (attempt %d): %s", update.get("update_id"), attempt, reason,
                            exc_info=attempt == _ATTEMPTS)  # fmt: skip
            if attempt < _ATTEMPTS:
                await trio.sleep(_RETRY.delay(attempt))

    def _finish(self, update_id: int, done: trio.Event) -> None:
        del self._events[update_id]
        self._recent.append(update_id)
        self._recent_set.add(update_id)
        if len(self._recent) > _RECENT:
            self._recent_set.discard(self._recent.popleft())
        done.set()
        self._progress.set()
        self._progress = trio.Event()
