"""Reading a conversation's context from the store: its own turns, or a response chain (`parent`)."""

from __future__ import annotations

from collections import OrderedDict

from afactors.actors._keys import turn_key
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


Link = tuple[str, str | None, tuple[Message, ...]]
"""One turn of a response chain: its tenant, its parent turn id, and its messages (input, then output)."""


class ChainCache:
    """The most recently used links of response chains, decoded, so continuing a chain costs no store reads.

    Only ended turns are kept: their tenant, parent and messages never change afterwards.
    """

    def __init__(self, capacity: int = 20_000) -> None:
        self.capacity = capacity
        self._links: OrderedDict[str, Link] = OrderedDict()

    def remember(self, turn_id: str, link: Link) -> None:
        self._links[turn_id] = link
        self._links.move_to_end(turn_id)
        if len(self._links) > self.capacity:
            self._links.popitem(last=False)

    def link(self, store: Store, turn_id: str) -> Link | None:
        """The link of `turn_id`, from memory or else from its response record."""
        link = self._links.get(turn_id)
        if link is not None:
            self._links.move_to_end(turn_id)
            return link
        record: ResponseRecord | None = store.get("responses", turn_id)
        if record is None:
            return None
        link = (record.tenant, record.parent, (*record.input, *record.output))
        if record.ended:
            self.remember(turn_id, link)
        return link


def load_chain(store: Store, key: ConversationKey, parent: str, cache: ChainCache) -> list[Message] | None:
    """The messages of the response chain ending at turn `parent`, root first; None if `parent` is unknown.

    A record of another tenant counts as unknown, so a chain never crosses tenants.
    """
    links: list[tuple[Message, ...]] = []
    seen: set[str] = set()
    turn_id: str | None = parent
    while turn_id is not None:
        link = cache.link(store, turn_id)
        if link is None or link[0] != key.tenant or turn_id in seen or len(links) >= MAX_CHAIN:
            if not links:
                return None
            break  # the chain's older part is gone: use what is left
        seen.add(turn_id)
        links.append(link[2])
        turn_id = link[1]
    return [message for messages in reversed(links) for message in messages]
