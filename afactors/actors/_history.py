"""Reading a conversation's context from the store: its own turns, or a response chain (`parent`)."""

from __future__ import annotations

from collections import OrderedDict, deque
from collections.abc import Awaitable, Callable, Iterable, Iterator, Sequence
from itertools import chain
from operator import is_

from afactors.actors._keys import turn_key
from afactors.model import ConversationKey, Message, MessageView
from afactors.store import ResponseRecord, Store, TurnRecord

MAX_CHAIN = 100_000
"""Longest parent chain followed (a guard against corrupt, cyclic chains)."""


Turn = tuple[Message, ...]
"""One committed turn as a target sees it: its input, then its output."""

TokenCounter = Callable[[Sequence[Message]], int]
"""Counts the tokens of a turn's messages (a target may supply one as its `count_tokens` method)."""

Summarizer = Callable[[Message | None, Sequence[Message]], Message | Awaitable[Message]]
"""The summarising hook: (the previous summary or None, the messages of the turns leaving the window, oldest
first) -> the summary message targets get in their place. Sync or async."""

CHARS_PER_TOKEN = 4
TOKENS_PER_MESSAGE = 4


def estimate_tokens(messages: Sequence[Message]) -> int:
    """A cheap token estimate: 4 per message plus one per 4 characters of its text, data, arguments and results
    (OpenAI's rule of thumb for English; within tens of percent of real tokenizers, and never a tokenizer call)."""
    chars = 0
    for message in messages:
        for part in message.contents:
            chars += len(_payload(part))
    return TOKENS_PER_MESSAGE * len(messages) + -(-chars // CHARS_PER_TOKEN)


class History:
    """A conversation's context: its most recent turns, oldest first, within at most `max_turns` turns and
    `max_tokens` tokens (None: no bound); `first` is the seq of the oldest turn it holds (or would hold next)."""

    __slots__ = ("_costs", "_count", "_end", "_flat", "_start", "_turns", "first", "max_tokens", "max_turns", "tokens")

    def __init__(
        self, max_turns: int | None = None, max_tokens: int | None = None, count: TokenCounter = estimate_tokens,
        first: int = 1,
    ) -> None:  # fmt: skip
        self.max_turns, self.max_tokens, self._count = max_turns, max_tokens, count
        self._turns: deque[Turn] = deque()
        self._costs: deque[int] = deque()
        self.tokens = 0
        self.first = first
        # Every message held is `_flat[_start:_end]`, kept while only appends change the turns; after `_end`, the
        # input of the turn running now. Views (`messages`) share the list, so it only ever grows at its end:
        # whatever would change or drop what a view may cover makes a new list first.
        self._flat: list[Message] | None = None
        self._start = self._end = 0

    def _messages(self) -> list[Message]:
        if self._flat is None:
            self._flat = list(chain.from_iterable(self._turns))
            self._start, self._end = 0, len(self._flat)
        return self._flat

    def _extend(self, messages: Turn) -> list[Message]:
        """The list with `messages` right after the held ones. Messages already there (a turn's input, put there
        by `messages`) are kept if `messages` starts with them; anything else there goes, in a new list."""
        flat = self._messages()
        end = self._end
        tail = len(flat) - end
        if tail:
            if tail <= len(messages) and all(map(is_, flat[end:], messages)):
                messages = messages[tail:]
            else:
                flat = self._flat = flat[self._start : end]
                self._start, self._end = 0, len(flat)
        flat += messages
        return flat

    def messages(self, then: Turn = ()) -> MessageView:
        """Every message of the turns held, oldest first, followed by `then` (a new turn's input): a view of the
        list kept between turns (extended by `append`), so a turn costs no copy of the history."""
        if not then:
            return MessageView(self._messages(), self._start, self._end)
        return MessageView(self._extend(then), self._start, self._end + len(then))

    def __iter__(self) -> Iterator[Turn]:
        return iter(self._turns)

    def __len__(self) -> int:
        return len(self._turns)

    def _cost(self, turn: Turn) -> int:
        return 0 if self.max_tokens is None else self._count(turn)

    def prepend(self, turn: Turn) -> bool:
        """Add an older turn in front, if it still fits (loading newest first); False when it does not. The newest
        turn always fits, even alone over `max_tokens` (as in `append`)."""
        cost = self._cost(turn)
        if self._turns and (
            (self.max_turns is not None and len(self._turns) >= self.max_turns)
            or (self.max_tokens is not None and self.tokens + cost > self.max_tokens)
        ):
            return False
        self._turns.appendleft(turn)
        self._costs.appendleft(cost)
        self._flat = None
        self.tokens += cost
        self.first -= 1
        return True

    def append(self, turn: Turn) -> list[Turn]:
        """Add the newest turn; the oldest ones leave while the bounds are exceeded. Returns those that left."""
        cost = self._cost(turn)
        self._turns.append(turn)
        self._costs.append(cost)
        self.tokens += cost
        if self._flat is not None:
            self._end = len(self._extend(turn))
        return self.shrink(self.max_turns, self.max_tokens)

    def shrink(self, max_turns: int | None, max_tokens: int | None) -> list[Turn]:
        """Drop the oldest turns until at most `max_turns` and `max_tokens` are left (the newest always stays)."""
        dropped: list[Turn] = []
        while len(self._turns) > 1 and (
            (max_turns is not None and len(self._turns) > max_turns)
            or (max_tokens is not None and self.tokens > max_tokens)
        ):
            dropped.append(self._turns.popleft())
            self.tokens -= self._costs.popleft()
            self.first += 1
        if dropped and self._flat is not None:
            self._start += sum(map(len, dropped))
            if self._start > (self._end - self._start) // 2:  # the messages no longer held: at most half as many
                self._flat = self._flat[self._start :]
                self._end -= self._start
                self._start = 0
        return dropped


def load_history(
    store: Store, path: str, seq: int, *, max_turns: int | None = None, max_tokens: int | None = None,
    count: TokenCounter = estimate_tokens, after: int = 0,
) -> History:  # fmt: skip
    """The turns of conversation `path` after turn `after` up to `seq`: the most recent ones within the bounds.

    Reads newest first and stops at the first turn that does not fit, so a long conversation costs no more to
    load than a short one.
    """
    history = History(max_turns, max_tokens, count, first=seq + 1)
    for n in range(seq, after, -1):
        record: TurnRecord | None = store.get("turns", turn_key(path, n))
        if record is None or not history.prepend((*record.input, *record.output)):
            break  # full, or retention removed it (it removes a conversation's turns oldest first)
    return history


_MESSAGE_OVERHEAD = 200
_PART_OVERHEAD = 100


def message_bytes(messages: Iterable[Message]) -> int:
    """A cheap estimate of the memory `messages` hold: their text and data, plus a fixed overhead each."""
    total = 0
    for message in messages:
        total += _MESSAGE_OVERHEAD
        for part in message.contents:
            total += _PART_OVERHEAD + len(_payload(part))
    return total


def _payload(part: object) -> str | bytes:
    payload = getattr(part, "text", None) or getattr(part, "data", None) or getattr(part, "arguments", None)
    return payload or getattr(part, "result", None) or getattr(part, "uri", None) or ""


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

    def remember(self, turn_id: str, link: Link, size: int | None = None) -> None:
        """Keep `link` (`size`: its `message_bytes`, if the caller has it already)."""
        if size is None:
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
    store: Store, key: ConversationKey, parent: str, cache: ChainCache, window: int | None = None,
    max_tokens: int | None = None, count: TokenCounter = estimate_tokens,
) -> list[Message] | None:  # fmt: skip
    """The messages of the response chain ending at turn `parent` (its last `window` turns, within `max_tokens`),
    root first; None if `parent` is unknown.

    A record of another tenant counts as unknown, so a chain never crosses tenants.
    """
    limit = MAX_CHAIN if window is None else min(window, MAX_CHAIN)
    links: list[tuple[Message, ...]] = []
    tokens = 0
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
        if max_tokens is not None:
            tokens += count(link[2])
            if links and tokens > max_tokens:
                break
        seen.add(turn_id)
        links.append(link[2])
        turn_id = link[1]
    return [message for messages in reversed(links) for message in messages]
