"""Reading a conversation's context from the store: its own turns, or a response chain (`parent`)."""

from __future__ import annotations

from afactors.actors.keys import turn_key
from afactors.model import ConversationKey, Message
from afactors.store import ResponseRecord, Store, TurnRecord

MAX_CHAIN = 100_000
"""Longest parent chain followed (a guard against corrupt, cyclic chains)."""


def load_history(store: Store, path: str, seq: int) -> list[Message]:
    """The messages of turns 1..`seq` of conversation `path`, in order (each turn: its input, then its output)."""
    messages: list[Message] = []
    for n in range(1, seq + 1):
        record: TurnRecord | None = store.get("turns", turn_key(path, n))
        if record is not None:
            messages.extend(record.input)
            messages.extend(record.output)
    return messages


def load_chain(store: Store, key: ConversationKey, parent: str) -> list[Message] | None:
    """The messages of the response chain ending at turn `parent`, root first; None if `parent` is unknown.

    A record of another tenant counts as unknown, so a chain never crosses tenants.
    """
    records: list[ResponseRecord] = []
    seen: set[str] = set()
    turn_id: str | None = parent
    while turn_id is not None:
        record: ResponseRecord | None = store.get("responses", turn_id)
        if record is None or record.tenant != key.tenant or turn_id in seen or len(records) >= MAX_CHAIN:
            if not records:
                return None
            break  # the chain's older part is gone: use what is left
        seen.add(turn_id)
        records.append(record)
        turn_id = record.parent
    messages: list[Message] = []
    for record in reversed(records):
        messages.extend(record.input)
        messages.extend(record.output)
    return messages
