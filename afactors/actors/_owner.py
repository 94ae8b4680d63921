"""`ActorOwner`: the narrow interface a conversation actor gets from whoever runs it, and nothing more.

The actor never imports `ActorSystem`; the system implements this Protocol (and a test can implement it with a
fake, no store and no system needed). Reads are synchronous (the store's read transactions are inline);
`commit` is the only write and is durable when it returns.

Must not import: the actor or the system.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import AsyncIterator, Sequence
from typing import Protocol, TypeVar

from afactors._tracing import Tracing
from afactors.actors._history import History, Link, Summarizer
from afactors.actors._phases import Entry
from afactors.actors._records import RecordReader
from afactors.actors._supervision import RestartPolicy
from afactors.model import ConversationKey, Message, Reply, Timer, TurnContext, Update
from afactors.store import Expect, Op, ResponseRecord, Snapshot, TurnRecord

Actor = TypeVar("Actor", contravariant=True)
"""The actor type an owner drives (`ConversationActor`; a type variable so this module need not import it)."""


Counters = Counter[str]
"""What the actors of one system have done since it opened, by `ActorStats` field name (mutable; the system's
`statistics()` turns them into a frozen `ActorStats`)."""


class ActorOwner(RecordReader, Protocol[Actor]):
    """What a `ConversationActor` may use of the system that runs it (and a turn's `StagedRecords` read from it)."""

    mailbox_size: int
    restart_policy: RestartPolicy
    counters: Counters
    tracing: Tracing

    @property
    def cut(self) -> bool:
        """The shutdown deadline passed: running turns are being cancelled, no new ones start."""
        ...

    # -- the target and the store ----------------------------------------------------------------------------

    def run_target(self, ctx: TurnContext) -> AsyncIterator[Update]:
        """Start the target on one turn: the stream of its updates."""
        ...

    def snapshot(self, path: str) -> Snapshot:
        """The conversation's last committed snapshot (an empty one for a new conversation)."""
        ...

    summarize: Summarizer | None
    """The summarising hook (`ActorConfig.summarize`), or None."""

    def history(self, path: str, seq: int, after: int = 0) -> History:
        """The conversation's turns after `after` up to `seq` inside the history window, in order."""
        ...

    def chain(self, key: ConversationKey, parent: str) -> list[Message] | None:
        """The messages of the response chain ending at turn `parent`; None if it is unknown to `key`'s tenant."""
        ...

    def chained(self, turn_id: str, link: Link, size: int) -> None:
        """A turn ended with this chain link (of `message_bytes` `size`): later turns continuing it need not read
        it back."""
        ...

    def record(self, turn_id: str) -> ResponseRecord | None:
        """The response record of a turn, if there is one."""
        ...

    def timers(self, key: ConversationKey) -> list[Timer]:
        """The conversation's pending timers as committed."""
        ...

    def turn(self, path: str, seq: int) -> TurnRecord | None:
        """Committed turn `seq` of the conversation, if there is one."""
        ...

    async def commit(
        self, ops: Sequence[Op], key: ConversationKey | None = None, expect: Sequence[Expect] = ()
    ) -> bool:
        """Commit `ops` in one durable transaction; outbox rows among them are then handed to delivery. A cluster
        node's commit for conversation `key` is fenced by its lease: `NotOwner` when another node took it. False
        (nothing written) when one of `expect` did not hold."""
        ...

    # -- scheduling and answers ------------------------------------------------------------------------------

    def schedule(self, actor: Actor) -> None:
        """The actor has work: have a worker drive it (unless one already does)."""
        ...

    def released(self, actor: Actor) -> None:
        """The worker driving the actor let go of it (its mailbox is empty, or it stopped)."""
        ...

    def admit(self, actor: Actor) -> None:
        """For a sender that waited for room: raise if the system closed or the actor stopped meanwhile."""
        ...

    def answered(self, entry: Entry, reply: Reply) -> None:
        """An entry's turn ended: answer its handles and forget it."""
        ...

    async def cancel_entries(self, entries: list[Entry], code: str) -> None:
        """Commit entries that will never run as cancelled (shielded), then answer them."""
        ...

    def cancel_soon(self, entries: list[Entry], code: str) -> None:
        """`cancel_entries` in a task of its own (for callers that must not wait)."""
        ...

    def stopped(self, actor: Actor, queued: list[Entry]) -> None:
        """Restart intensity exceeded: refuse the conversation for the cool-down; its queued entries wait for it."""
        ...

    def quarantine(self, path: str, reason: str) -> None:
        """The conversation's records no longer read (`StoreDamaged`): refuse it for the cool-down."""
        ...

    # -- memory ----------------------------------------------------------------------------------------------

    def history_changed(self, actor: Actor, delta: int) -> None:
        """The actor's cached history grew or shrank by `delta` bytes (estimated): keep the memory budgets, which
        may call the actor's `drop_history`."""
        ...
