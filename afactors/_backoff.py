"""`Backoff`: the one jittered exponential backoff of afactors (restarts, deliveries, pollers, retries).

Pure: no clock and no sleeping; callers pass the attempt number and sleep themselves. Imports nothing of afactors.
"""

from __future__ import annotations

import random

import attrs

_MAX_DOUBLINGS = 64  # 2**64 times any base is past every cap; keeps the float from overflowing


@attrs.frozen
class Backoff:
    """Delays that double from `base` up to `cap`, each scaled by a random factor in [1 - jitter, 1 + jitter].

    `delay(1)` is about `base`, `delay(2)` about twice that, and so on; `jitter=0` gives exact delays.
    """

    base: float
    cap: float
    jitter: float = 0.2
    rng: random.Random = attrs.field(factory=random.Random, eq=False, repr=False)

    def __attrs_post_init__(self) -> None:
        if not 0 < self.base <= self.cap or not 0 <= self.jitter < 1:
            raise ValueError("backoff needs 0 < base <= cap and 0 <= jitter < 1")

    def plain(self, attempt: int) -> float:
        """The delay before retry number `attempt` (from 1) without jitter."""
        return min(self.cap, self.base * 2.0 ** min(max(attempt - 1, 0), _MAX_DOUBLINGS))

    def delay(self, attempt: int) -> float:
        """The jittered delay before retry number `attempt` (from 1)."""
        plain = self.plain(attempt)
        return plain * self.rng.uniform(1 - self.jitter, 1 + self.jitter) if self.jitter else plain
