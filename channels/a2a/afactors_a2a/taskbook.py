"""Where the channel finds its tasks: turn records through `ChannelContext`, plus one alias per task that has
more than one turn (a client answered it after it asked for input) or was cancelled while waiting for input.

Turn ids start with `ID_PREFIX`; a task's id is the id of its first turn. Conversations are keyed
`a2a/<contextId>` within the caller's tenant, so a context is one conversation actor and its turns run in order.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

from afactors.channel import ChannelContext, TurnView
from afactors.model import ConversationKey
from afactors_a2a.tasks import TaskView, task_view, turn_info

ID_PREFIX = "a2a-"
CONVERSATION_PREFIX = "a2a/"


def conversation_key(tenant: str, context_id: str) -> ConversationKey:
    return ConversationKey(tenant, CONVERSATION_PREFIX + context_id)


class TaskBook:
    """Reads tasks of a tenant and records the two facts turn records cannot hold (continuations, cancels)."""

    def __init__(self, ctx: ChannelContext) -> None:
        self.ctx = ctx

    @staticmethod
    def _key(tenant: str, task_id: str) -> str:
        return f"task/{tenant}/{task_id}"

    def turns(self, tenant: str, task_id: str) -> list[TurnView] | None:
        """The task's turn records, oldest first; None when the tenant has no such task."""
        if not task_id.startswith(ID_PREFIX):
            return None
        first = self.ctx.record(task_id, tenant)
        if first is None or (info := turn_info(first)) is None or info.task_id != task_id:
            return None
        extra = (self.ctx.alias(self._key(tenant, task_id)) or {}).get("turns", [])
        later = (self.ctx.record(turn_id, tenant) for turn_id in extra)
        return [first, *(record for record in later if record is not None)]

    def view(self, tenant: str, task_id: str, turns: Sequence[TurnView] | None = None) -> TaskView | None:
        """The task as it stands (from `turns` if given)."""
        turns = self.turns(tenant, task_id) if turns is None else turns
        if not turns:
            return None
        return task_view(turns, self.canceled_at(tenant, task_id))

    def canceled_at(self, tenant: str, task_id: str) -> float | None:
        value = (self.ctx.alias(self._key(tenant, task_id)) or {}).get("canceled_at")
        return float(value) if isinstance(value, int | float) else None

    def views(self, tenant: str, context_id: str | None) -> list[TaskView]:
        """Every task of the tenant (in one context, if given)."""
        conversation = None if context_id is None else conversation_key(tenant, context_id).path
        grouped: dict[str, list[TurnView]] = {}
        for record in self.ctx.records(tenant, ID_PREFIX, conversation):
            info = turn_info(record)
            if info is not None:
                grouped.setdefault(info.task_id, []).append(record)  # ids grow with time: turns stay in order
        views = []
        for task_id, turns in grouped.items():
            if turns[0].id != task_id:
                continue  # the task's first turn is hidden or gone
            view = task_view(turns)
            if view.interrupted and (canceled := self.canceled_at(tenant, task_id)) is not None:
                view = task_view(turns, canceled)
            views.append(view)
        return views

    async def add_turn(self, tenant: str, task_id: str, turn_id: str) -> None:
        """Record that `turn_id` continues the task (written before the turn is started)."""

        def added(stored: dict[str, Any] | None) -> dict[str, Any]:
            stored = stored or {}
            return {**stored, "turns": [*stored.get("turns", []), turn_id]}

        await self.ctx.change_alias(self._key(tenant, task_id), added)

    async def cancel_interrupted(self, tenant: str, task_id: str) -> None:
        """Cancel a task that waits for input (no turn runs, so there is nothing to cut)."""
        now = time.time()
        await self.ctx.change_alias(self._key(tenant, task_id), lambda stored: {**(stored or {}), "canceled_at": now})
