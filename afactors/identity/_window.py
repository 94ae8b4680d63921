"""Sliding-window counters, at most `limit` events per `window` seconds per key: `SlidingWindow` in memory (one
process), `StoredWindow` in the store (every node of a cluster counts the same events)."""

from __future__ import annotations

from collections import deque
from typing import Protocol

from afactors.store import Expect, Put, RateWindow, Store, retried


class Window(Protocol):
    """A per-key sliding-window counter."""

    def full(self, key: str, now: float) -> bool:
        """Whether `key` used up its events in the window ending at `now`."""
        ...

    async def add(self, key: str, now: float) -> None:
        """Count an event of `key` at `now`."""
        ...

    async def take(self, key: str, now: float) -> bool:
        """Count an event of `key` at `now` if the window has room (at once: no two takers share the last
        place); False, counting nothing, when it is full."""
        ...


class SlidingWindow:
    """Counts events per key in the last `window` seconds, in memory; keys with no recent event are forgotten."""

    def __init__(self, limit: int, window: float) -> None:
        self.limit, self.window = limit, window
        self._events: dict[str, deque[float]] = {}

    def full(self, key: str, now: float) -> bool:
        events = self._events.get(key)
        if events is None:
            return False
        while events and events[0] <= now - self.window:
            events.popleft()
        if not events:
            del self._events[key]
            return False
        return len(events) >= self.limit

    async def add(self, key: str, now: float) -> None:
        self._events.setdefault(key, deque()).append(now)

    async def take(self, key: str, now: float) -> bool:
        if self.full(key, now):
            return False
        await self.add(key, now)
        return True


class StoredWindow:
    """A `SlidingWindow` kept in `store` (kind "limits", a `RateWindow` under `<name>/<key>`), for the nodes of a
    cluster: each event is one commit that expects the record as read, recomputed when another node's event got
    there first. Events are wall-clock times, so the nodes' clocks skewing by s shifts the window by up to s."""

    def __init__(self, store: Store, name: str, limit: int, window: float) -> None:
        self.store, self.name, self.limit, self.window = store, name, limit, window

    def _recent(self, record: RateWindow | None, now: float) -> tuple[float, ...]:
        """The events of `record` still in the window ending at `now`, oldest first."""
        return () if record is None else tuple(sorted(e for e in record.events if e > now - self.window))

    def full(self, key: str, now: float) -> bool:
        return len(self._recent(self.store.get("limits", f"{self.name}/{key}"), now)) >= self.limit

    async def add(self, key: str, now: float) -> None:
        await self._count(key, now, room=False)

    async def take(self, key: str, now: float) -> bool:
        return await self._count(key, now, room=True)

    async def _count(self, key: str, now: float, *, room: bool) -> bool:
        at = f"{self.name}/{key}"

        async def attempt() -> bool | None:
            record: RateWindow | None = self.store.get("limits", at)
            events = self._recent(record, now)
            if room and len(events) >= self.limit:
                return False
            kept = tuple(sorted((*events, now)))[-max(self.limit, 1) :]  # "full" needs only the newest `limit`
            fresh = RateWindow(kept, kept[-1] + self.window)
            return await self.store.commit([Put("limits", at, fresh)], expect=[Expect("limits", at, record)]) or None

        return await retried(attempt, "a rate limit's events")
