"""The `Agent` protocol: what a conversation actor runs for each turn."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any, Protocol, runtime_checkable

import attrs

from afactors.model.envelope import ConversationKey, Identity
from afactors.model.messages import Message, Update


@attrs.frozen
class TurnContext:
    """Everything a target sees for one turn.

    `messages` is the whole conversation so far, ending with the new input. `state` is the conversation's own
    JSON-able dict: the agent may change it in place, and the change is committed with the turn (and dropped
    if the turn fails or is interrupted).
    """

    key: ConversationKey
    messages: tuple[Message, ...]
    state: dict[str, Any]
    turn_id: str
    seq: int
    options: dict[str, Any] = attrs.Factory(dict)
    identity: Identity | None = None


@runtime_checkable
class Agent(Protocol):
    """A hosted target. `run` yields the turn's updates: text deltas and whole content parts."""

    def run(self, ctx: TurnContext) -> AsyncIterator[Update]: ...
