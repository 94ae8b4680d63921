"""Restart bookkeeping of one actor: jittered exponential backoff and restart intensity (pure; time is passed in)."""

from __future__ import annotations

import random
from collections import deque

import attrs

from afactors._backoff import Backoff


@attrs.frozen
class RestartPolicy:
    """How an actor restarts after a failed turn.

    Backoff grows from `backoff_min` to `backoff_max` (doubling, +-`jitter` relative) and starts over after
    `quiet` seconds without a failure. More than `max_restarts` restarts within `window` seconds stop the actor
    for `cooldown` seconds.
    """

    backoff_min: float = 0.5
    backoff_max: float = 30.0
    max_restarts: int = 5
    window: float = 30.0
    cooldown: float = 60.0
    quiet: float = 60.0
    jitter: float = 0.2
    rng: random.Random = attrs.field(factory=random.Random, eq=False, repr=False)

    @property
    def backoff(self) -> Backoff:
        return Backoff(self.backoff_min, self.backoff_max, self.jitter, self.rng)


class RestartTracker:
    """The restarts of one actor so far."""

    __slots__ = ("_backoff", "_last", "_policy", "_streak", "_times")

    def __init__(self, policy: RestartPolicy) -> None:
        self._policy = policy
        self._backoff = policy.backoff
        self._times: deque[float] = deque()
        self._streak = 0
        self._last = float("-inf")

    @property
    def count(self) -> int:
        """Restarts recorded in the current window."""
        return len(self._times)

    def record(self, now: float) -> float | None:
        """Record a restart at `now`: the backoff delay before the next turn, or None when the actor must stop."""
        policy = self._policy
        if now - self._last >= policy.quiet:
            self._streak = 0
        self._last = now
        self._streak += 1
        self._times.append(now)
        while self._times and now - self._times[0] > policy.window:
            self._times.popleft()
        if len(self._times) > policy.max_restarts:
            return None
        return self._backoff.delay(self._streak)
