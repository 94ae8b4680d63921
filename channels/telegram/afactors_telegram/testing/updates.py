"""Pending updates with Telegram's confirmation rules, shared by getUpdates and the webhook pusher."""

from __future__ import annotations

import itertools
from collections import deque
from collections.abc import Iterable
from typing import Any

import attrs
import trio

# Update kinds Telegram sends when allowed_updates is empty or was never given.
DEFAULT_EXCLUDED = frozenset({"chat_member", "message_reaction", "message_reaction_count"})


@attrs.frozen
class PendingUpdate:
    """A rendered Update plus the chat it belongs to (webhook delivery keeps per-chat order)."""

    update_id: int
    kind: str
    chat_id: int | None
    body: dict[str, Any]


@attrs.frozen
class Webhook:
    """The registered webhook (setWebhook parameters the fake honours)."""

    url: str
    secret_token: str | None
    max_connections: int
    ip_address: str | None


class UpdateQueue:
    """Updates waiting to be confirmed, in update_id order.

    getUpdates confirms by offset; the webhook pusher confirms one update at a time on a 2xx answer.
    """

    def __init__(self, first_update_id: int) -> None:
        self._ids = itertools.count(first_update_id)
        self._order: deque[int] = deque()
        self._pending: dict[int, PendingUpdate] = {}
        self.allowed: frozenset[str] | None = None
        self.webhook: Webhook | None = None
        self.last_error_date: int | None = None
        self.last_error_message: str | None = None
        self._arrived = trio.Event()
        self.webhook_changed = trio.Event()

    def __len__(self) -> int:
        return len(self._pending)

    def push(self, kind: str, chat_id: int | None, payload: dict[str, Any]) -> PendingUpdate | None:
        """Queue an update unless ``allowed_updates`` filters its kind out."""
        wanted = kind in self.allowed if self.allowed else kind not in DEFAULT_EXCLUDED
        if not wanted:
            return None
        update_id = next(self._ids)
        update = PendingUpdate(update_id, kind, chat_id, {"update_id": update_id, kind: payload})
        self._order.append(update_id)
        self._pending[update_id] = update
        self.wake()
        return update

    def arrived(self) -> trio.Event:
        """An event set when the next update is queued (or when :meth:`wake` is called)."""
        return self._arrived

    def wake(self) -> None:
        """Wake every task waiting on :meth:`arrived` so it re-checks its condition."""
        self._arrived.set()
        self._arrived = trio.Event()

    def _trim(self) -> None:
        while self._order and self._order[0] not in self._pending:
            self._order.popleft()

    def confirm_below(self, offset: int) -> None:
        """getUpdates ``offset``: forget updates below it; a negative offset keeps the last ``-offset``."""
        if offset < 0:
            keep = set(itertools.islice(reversed(self.ids()), -offset))
            for update_id in self.ids():
                if update_id not in keep:
                    del self._pending[update_id]
        else:
            self._trim()
            while self._order and self._order[0] < offset:
                self._pending.pop(self._order.popleft(), None)
                self._trim()

    def ids(self) -> list[int]:
        return [i for i in self._order if i in self._pending]

    def peek(self, limit: int) -> list[PendingUpdate]:
        return list(itertools.islice(self._iter(), limit))

    def _iter(self) -> Iterable[PendingUpdate]:
        self._trim()
        return (self._pending[i] for i in self._order if i in self._pending)

    def next_deliverable(self, busy_chats: set[int | None], taken: set[int]) -> PendingUpdate | None:
        """The oldest update not taken whose chat has no earlier update in flight (webhook order)."""
        blocked: set[int | None] = set(busy_chats)
        for update in self._iter():
            if update.update_id in taken:
                blocked.add(update.chat_id)
                continue
            if update.chat_id is None or update.chat_id not in blocked:
                return update
            blocked.add(update.chat_id)
        return None

    def is_pending(self, update_id: int) -> bool:
        return update_id in self._pending

    def confirm(self, update_id: int) -> None:
        self._pending.pop(update_id, None)

    def drop_all(self) -> None:
        self._pending.clear()
        self._order.clear()

    def set_webhook(self, webhook: Webhook | None) -> None:
        self.webhook = webhook
        self.last_error_date = self.last_error_message = None
        self.webhook_changed.set()
        self.webhook_changed = trio.Event()
        self.wake()
