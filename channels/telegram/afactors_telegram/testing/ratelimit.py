"""Telegram-like flood control: token buckets per chat, per group and globally, plus flood-wait penalties.

Pure: every call takes ``now`` (seconds on any monotonic clock), so tests decide what time it is.
"""

from __future__ import annotations

import math

import attrs


@attrs.frozen
class RateLimits:
    """Flood limits the fake enforces (defaults follow Telegram's published numbers, T-16).

    ``per_chat_burst`` is our choice: Telegram allows short bursts above 1 msg/s but does not publish
    their size. With ``enforce=False`` violations are only counted and every request is served.
    """

    per_chat_per_second: float = 1.0
    per_chat_burst: int = 3
    per_group_per_minute: int = 20
    global_per_second: float = 30.0
    global_burst: int = 30
    enforce: bool = True


@attrs.define
class _Bucket:
    capacity: float
    rate: float  # tokens per second
    tokens: float
    updated: float

    def wait(self, now: float) -> float:
        """Seconds until one token is available (0 if one is available now)."""
        self.tokens = min(self.capacity, self.tokens + max(0.0, now - self.updated) * self.rate)
        self.updated = max(self.updated, now)
        return 0.0 if self.tokens >= 1.0 else (1.0 - self.tokens) / self.rate

    def take(self) -> None:
        self.tokens = max(0.0, self.tokens - 1.0)


GLOBAL = "global"


@attrs.define
class FloodControl:
    """Decides, per request, whether a send to a chat is within limits (``limits=None``: no buckets).

    ``check`` returns ``None`` to serve the request or the ``retry_after`` seconds of a 429. A 429 also
    starts a flood wait for its scope (the chat, or everything): requests before it ends get 429 again,
    each counted as a violation, like Telegram does to clients that ignore ``retry_after``.
    """

    limits: RateLimits | None
    violations: int = 0
    violations_by_chat: dict[int, int] = attrs.field(factory=dict)
    _buckets: dict[tuple[str, int], _Bucket] = attrs.field(factory=dict)
    _waits: dict[int | str, float] = attrs.field(factory=dict)

    def _bucket(self, kind: str, key: int, capacity: float, rate: float, now: float) -> _Bucket:
        bucket = self._buckets.get((kind, key))
        if bucket is None:
            bucket = self._buckets[(kind, key)] = _Bucket(capacity, rate, capacity, now)
        return bucket

    def _applicable(self, chat_id: int, is_group: bool, now: float) -> list[_Bucket]:
        lim = self.limits
        if lim is None:
            return []
        found = [
            self._bucket("global", 0, lim.global_burst, lim.global_per_second, now),
            self._bucket("chat", chat_id, lim.per_chat_burst, lim.per_chat_per_second, now),
        ]
        if is_group:
            found.append(self._bucket("group", chat_id, lim.per_group_per_minute, lim.per_group_per_minute / 60.0, now))
        return found

    def check(self, chat_id: int, is_group: bool, now: float) -> int | None:
        """Account one send to ``chat_id``; the ``retry_after`` of a 429, or ``None`` to serve it."""
        penalty = max(self._waits.get(chat_id, 0.0), self._waits.get(GLOBAL, 0.0)) - now
        buckets = self._applicable(chat_id, is_group, now)
        waits = [(bucket.wait(now), index) for index, bucket in enumerate(buckets)]
        longest, culprit = max(waits, default=(0.0, 0))
        if penalty <= 0 and longest <= 0:
            for bucket in buckets:
                bucket.take()
            return None
        self.violations += 1
        self.violations_by_chat[chat_id] = self.violations_by_chat.get(chat_id, 0) + 1
        if self.limits is not None and not self.limits.enforce and penalty <= 0:
            for bucket in buckets:
                bucket.take()
            return None
        retry_after = max(1, math.ceil(max(penalty, longest)))
        if penalty <= 0:
            self.impose(GLOBAL if culprit == 0 else chat_id, retry_after, now)
        return retry_after

    def impose(self, scope: int | str, seconds: float, now: float) -> None:
        """Start a flood wait of ``seconds`` for a chat id or :data:`GLOBAL`."""
        self._waits[scope] = max(self._waits.get(scope, 0.0), now + seconds)
