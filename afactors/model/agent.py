"""The `Agent` protocol: what a conversation actor runs for each turn."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from typing import Any, Protocol, runtime_checkable

import attrs
from cattrs.gen import make_dict_structure_fn, make_dict_unstructure_fn, override

from afactors.model.codec import converter
from afactors.model.envelope import ConversationKey, Identity
from afactors.model.messages import Message, Update
from afactors.model.timers import Timer, TurnTimers

TIMER_OPTION = "timer"
"""`Envelope.options[TIMER_OPTION]`: the (unstructured) `Timer` whose firing a turn of kind "timer" is."""


class TurnRecords(Protocol):
    """A conversation's own durable records (e.g. workflow checkpoints) as one turn sees them.

    Reads see the records committed by earlier turns plus this turn's own writes. Writes are staged: they are
    committed in the same store transaction as the turn, and dropped if the turn fails, is interrupted or the
    process dies first, so a record and the turn that made it are never split. Values are JSON-able dicts.
    `put` and `delete` are safe to call from another thread (an adapter's event loop) while the turn runs;
    `get` and `items` read the store and belong on the turn's own trio task.
    """

    def get(self, key: str) -> dict[str, Any] | None: ...

    def items(self) -> list[tuple[str, dict[str, Any]]]: ...

    def put(self, key: str, value: dict[str, Any]) -> None: ...

    def delete(self, key: str) -> None: ...


class NoRecords:
    """`TurnRecords` of a turn run outside an actor (tests, benchmarks): in memory, never committed."""

    def __init__(self) -> None:
        self._values: dict[str, dict[str, Any]] = {}

    def get(self, key: str) -> dict[str, Any] | None:
        return self._values.get(key)

    def items(self) -> list[tuple[str, dict[str, Any]]]:
        return sorted(self._values.items())

    def put(self, key: str, value: dict[str, Any]) -> None:
        self._values[key] = value

    def delete(self, key: str) -> None:
        self._values.pop(key, None)


@attrs.frozen
class TurnContext:
    """Everything a target sees for one turn.

    `messages` is the whole conversation so far, ending with the new input: an immutable sequence (a tuple, or
    in an actor a `MessageView` of its cached history, equal to the tuple of its messages). `state` is the
    conversation's own JSON-able dict: the agent may change it in place, and the change is committed with the
    turn (and dropped if the turn fails or is interrupted). `kind` is "turn" for input from a channel, "timer"
    when one of the conversation's timers fired (`timer` is that timer, with its payload). `timers` schedules,
    cancels and lists the conversation's timers; the changes are committed with the turn (docs/timers.md).
    `records` are the conversation's durable records (see `TurnRecords`).
    """

    key: ConversationKey
    messages: Sequence[Message]
    state: dict[str, Any]
    turn_id: str
    seq: int
    options: dict[str, Any] = attrs.Factory(dict)
    identity: Identity | None = None
    kind: str = "turn"
    timers: TurnTimers = attrs.field(factory=TurnTimers, eq=False, repr=False)
    records: TurnRecords = attrs.field(factory=NoRecords, eq=False)

    @property
    def timer(self) -> Timer | None:
        """The timer that fired, for a turn of kind "timer"."""
        fired = self.options.get(TIMER_OPTION)
        return converter.structure(fired, Timer) if self.kind == "timer" and fired is not None else None


# A turn's timer book is live state, not data: it encodes as {} and decodes as a fresh, empty book.
converter.register_unstructure_hook(TurnTimers, lambda _: {})
converter.register_structure_hook(TurnTimers, lambda _, __: TurnTimers())
# A turn's durable records are a live handle on the store, never part of its encoded form.
converter.register_unstructure_hook(
    TurnContext, make_dict_unstructure_fn(TurnContext, converter, records=override(omit=True))
)
converter.register_structure_hook(
    TurnContext,
    make_dict_structure_fn(
        TurnContext, converter, records=override(omit=True),
        messages=override(struct_hook=lambda value, _: converter.structure(value, tuple[Message, ...])),
    ),
)  # fmt: skip


@runtime_checkable
class Agent(Protocol):
    """A hosted target. `run` yields the turn's updates: text deltas and whole content parts."""

    def run(self, ctx: TurnContext) -> AsyncIterator[Update]: ...
