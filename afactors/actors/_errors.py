"""Errors `ActorSystem.submit` raises when it cannot accept an envelope."""

from __future__ import annotations

from afactors.model import ConversationKey


class ConversationBusy(Exception):
    """The busy policy is `reject` and the conversation has a turn running or queued (HTTP channels: 409)."""

    def __init__(self, key: ConversationKey) -> None:
        super().__init__(f"conversation {key.path!r} is already running a turn")
        self.key = key


class ActorUnavailable(Exception):
    """The conversation's actor was stopped (too many restarts, or its records are damaged); it takes envelopes again
    after a cool-down."""

    def __init__(self, key: ConversationKey, retry_after: float, reason: str = "after repeated failures") -> None:
        super().__init__(f"conversation {key.path!r} is unavailable {reason}; retry in {retry_after:.0f} s")
        self.key = key
        self.retry_after = retry_after


class SystemClosed(Exception):
    """The actor system is shutting down and takes no more envelopes."""


class NotOwner(ActorUnavailable):
    """A cluster node does not own the conversation (another live node holds its lease, or took it while a turn
    ran: the turn's commit was fenced and wrote nothing). Retry on the owner (`owner`, a node id, when known) or
    on any node after `retry_after` seconds; HTTP channels answer it like `ActorUnavailable` (503, Retry-After)."""

    def __init__(self, key: ConversationKey, owner: str | None = None, retry_after: float = 1.0) -> None:
        where = f"by node {owner!r}" if owner else "by another node"
        super().__init__(key, retry_after, f"here: it is owned {where}")
        self.owner = owner
