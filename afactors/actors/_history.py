"""Reading a conversation's context from the store: its own turns, or a response chain (`parent`)."""

from __future__ import annotations

from collections import OrderedDict, deque
from collections.abc import Iterable

from afactors.actors._keys import turn_key
from afactors.model import ConversationKey, Message
from afactors.store import ResponseRecord, Store, TurnRecord

MAX_CHAIN = 100_000
"""Longest parent chain followed (a guard against corrupt, cyclic chains)."""


History = deque[tuple[Message, ...]]
"""A conversation's context: one tuple per turn (its input, then its output), oldest first; its `maxlen` is the
history window (None: every turn)."""


def load_history(store: Store, path: str, seq: int, window: int | None = None) -> History:
    """The turns of conversation `path` up to `seq`: the last `window` of them (all when None), in order.

    Reads only the turns inside the window, so a long conversation costs no more to load than a short one.
    """
    turns: History = deque(maxlen=window)
    for n in range(1 if window is None else max(1, seq - window + 1), seq + 1):
        record: TurnRecord | None = store.get("turns", turn_key(path, n))
        if record is not None:
            turns.append((*record.input, *record.output))
    return turns


_MESSAGE_OVERHEAD = 200
_PART_OVERHEAD = 100


def message_bytes(messages: Iterable[Message]) -> int:
    """A cheap estimate of the memory `messages` hold: their text and data, plus a fixed overhead each."""
    total = 0
    for message in messages:
        total += _MESSAGE_OVERHEAD
        for part in message.contents:
            payload = getattr(part, "text", None) or getattr(part, "data", None) or getattr(part, "arguments", None)
            payload = payload or getattr(part, "result", None) or getattr(part, "uri", None) or ""
            total += _PART_OVERHEAD + len(payload)
    return total


Link = tuple[str, str | None, tuple[Message, ...]]
"""One turn of a response chain: its tenant, its parent turn id, and its messages (input, then output)."""


class ChainCache:
    """The most recently used links of response chains, decoded, so continuing a chain costs no store reads.

    Only ended turns are kept: their tenant, parent and messages never change afterwards. Bounded by count
    (`capacity`) and by the estimated bytes of the messages (`max_bytes`); a link larger than a sixteenth of
    `max_bytes` is not kept at all (it is read from the store when needed), so one huge input never evicts
    everything else.
    """

    def __init__(self, capacity: int = 20_000, max_bytes: int = 64 << 20) -> None:
        self.capacity = capacity
        self.max_bytes = max_bytes
        self.bytes = 0
        self._links: OrderedDict[str, tuple[Link, int]] = OrderedDict()

    def remember(self, turn_id: str, link: Link) -> None:
        size = message_bytes(link[2])
        old = self._links.pop(turn_id, None)
        if old is not None:
            self.bytes -= old[1]
        if size > self.max_bytes // 16:
            return
        self._links[turn_id] = (link, size)
        self.bytes += size
        while len(self._links) > self.capacity or self.bytes > self.max_bytes:
            _, (_, dropped) = self._links.popitem(last=False)
            self.bytes -= dropped

    def link(self, store: Store, turn_id: str) -> Link | None:
        """The link of `turn_id`, from memory or else from its response record."""
        cached = self._links.get(turn_id)
        if cached is not None:
            self._links.move_to_end(turn_id)
            return cached[0]
        record: ResponseRecord | None = store.get("responses", turn_id)
        if record is None:
            return None
        link = (record.tenant, record.parent, (*record.input, *record.output))
        if record.ended:
            self.remember(turn_id, link)
        return link


def load_chain(
    store: Store, key: ConversationKey, parent: str, cache: ChainCache, window: int | None = None
) -> list[Message] | None:
    """The messages of the response chain ending at turn `parent` (its last `window` turns), root first; None if
    `parent` is unknown.

    A record of another tenant counts as unknown, so a chain never crosses tenants.
    """
    limit = MAX_CHAIN if window is None else min(window, MAX_CHAIN)
    links: list[tuple[Message, ...]] = []
    seen: set[str] = set()
    turn_id: str | None = parent
    while turn_id is not None:
        link = cache.link(store, turn_id)
        if link is None or link[0] != key.tenant or turn_id in seen:
            if not links:
                return None
            break  # the chain's older part is gone: use what is left
        if len(links) >= limit:
            break
        seen.add(turn_id)
        links.append(link[2])
        turn_id = link[1]
    return [message for messages in reversed(links) for message in messages]
