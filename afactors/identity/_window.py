"""A per-key sliding-window counter (pure): at most `limit` events per `window` seconds."""

from __future__ import annotations

from collections import deque


class SlidingWindow:
    """Counts events per key in the last `window` seconds; keys with no recent event are forgotten."""

    def __init__(self, limit: int, window: float) -> None:
        self.limit, self.window = limit, window
        self._events: dict[str, deque[float]] = {}

    def full(self, key: str, now: float) -> bool:
        """Whether `key` used up its events in the window ending at `now`."""
        events = self._events.get(key)
        if events is None:
            return False
        while events and events[0] <= now - self.window:
            events.popleft()
        if not events:
            del self._events[key]
            return False
        return len(events) >= self.limit

    def add(self, key: str, now: float) -> None:
        self._events.setdefault(key, deque()).append(now)
