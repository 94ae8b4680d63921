"""Send-rate accounting: per-chat, per-group and global token buckets (pure; the caller says what time it is).

Each bucket is a GCRA ("virtual scheduling") token bucket: `rate` tokens per second, at most `burst` at once.
A send first waits until its chat (and group) bucket has a token, then waits its turn for the global
bucket, and takes every token at the moment it actually goes out. The sender serialises sends per chat and
globally, so the spacing holds between actual sends, even when a busy process wakes up late.
"""

from __future__ import annotations

import math

import attrs

from afactors_telegram.config import SendLimits

_PRUNE_EVERY = 1024


@attrs.define
class Bucket:
    """A GCRA token bucket: `interval` seconds per token, `burst` tokens at most."""

    interval: float
    burst: int
    tat: float = -math.inf  # theoretical arrival time of the next send at the sustained rate

    def ready_at(self, now: float) -> float:
        """The earliest time (>= now) a token is available."""
        return max(now, self.tat - (self.burst - 1) * self.interval)

    def take(self, at: float) -> None:
        """Spend one token at time `at` (which must be >= `ready_at`)."""
        self.tat = max(self.tat, at) + self.interval

    def block_until(self, until: float) -> None:
        """No token before `until` (a flood wait Telegram imposed)."""
        self.tat = max(self.tat, until + (self.burst - 1) * self.interval)

    def idle(self, now: float) -> bool:
        """Full again: indistinguishable from a fresh bucket."""
        return self.tat <= now


class SendLimiter:
    """The buckets of one bot: one global, one per chat, one more per group chat."""

    def __init__(self, limits: SendLimits) -> None:
        self.limits = limits
        self._global = Bucket(1.0 / limits.global_per_second, limits.global_burst)
        self._chats: dict[int, Bucket] = {}
        self._groups: dict[int, Bucket] = {}
        self._commits = 0

    def _chat_buckets(self, chat_id: int, group: bool) -> list[Bucket]:
        chat = self._chats.get(chat_id)
        if chat is None:
            chat = self._chats[chat_id] = Bucket(1.0 / self.limits.per_chat_per_second, self.limits.per_chat_burst)
        if not group:
            return [chat]
        bucket = self._groups.get(chat_id)
        if bucket is None:
            bucket = self._groups[chat_id] = Bucket(
                60.0 / self.limits.per_group_per_minute, self.limits.per_group_burst
            )
        return [chat, bucket]

    def chat_ready_at(self, chat_id: int, group: bool, now: float) -> float:
        """When the chat's own buckets next have a token."""
        return max(bucket.ready_at(now) for bucket in self._chat_buckets(chat_id, group))

    def global_ready_at(self, now: float) -> float:
        """When the global bucket next has a token."""
        return self._global.ready_at(now)

    def take_global(self, at: float) -> None:
        """Spend a global token for a send going out at `at`."""
        self._global.take(at)

    def commit_chat(self, chat_id: int, group: bool, at: float) -> None:
        """Spend the chat's tokens for a send going out at `at`."""
        for bucket in self._chat_buckets(chat_id, group):
            bucket.take(at)
        self._commits += 1
        if self._commits % _PRUNE_EVERY == 0:
            self.prune(at)

    def try_take(self, chat_id: int, group: bool, now: float) -> bool:
        """Take every token a send needs if all are available right now (best-effort sends); else take none."""
        buckets = [self._global, *self._chat_buckets(chat_id, group)]
        if any(bucket.ready_at(now) > now for bucket in buckets):
            return False
        for bucket in buckets:
            bucket.take(now)
        return True

    def pause_chat(self, chat_id: int, until: float) -> None:
        """Telegram answered 429 for this chat: nothing goes to it before `until`."""
        self._chat_buckets(chat_id, False)[0].block_until(until)

    def prune(self, now: float) -> None:
        """Forget buckets that are full again (keeps memory flat with many chats)."""
        for table in (self._chats, self._groups):
            for chat_id in [c for c, bucket in table.items() if bucket.idle(now)]:
                del table[chat_id]

    def __len__(self) -> int:
        return len(self._chats)
