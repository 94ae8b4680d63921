"""Envelopes: what a channel sends to a conversation actor."""

from __future__ import annotations

from typing import Any, Literal

import attrs

from afactors.model.messages import Message

BusyPolicy = Literal["enqueue", "reject", "interrupt", "steer"]
EnvelopeKind = Literal["turn", "command", "timer", "transient", "append", "revise", "clear"]
HISTORY_EDITS: frozenset[str] = frozenset({"append", "revise", "clear"})
"""Envelope kinds that change a conversation's committed history without running the target."""
BUSY_POLICIES: frozenset[str] = frozenset({"enqueue", "reject", "interrupt", "steer"})


@attrs.frozen
class ConversationKey:
    """The isolation key of a conversation: tenant plus a conversation id chosen by the channel."""

    tenant: str
    conversation: str

    @property
    def path(self) -> str:
        return f"{self.tenant}/{self.conversation}"


@attrs.frozen
class Identity:
    """Who sent an envelope, as the channel knows them."""

    channel: str
    user_id: str
    display_name: str | None = None


@attrs.frozen
class ReplyTarget:
    """Where a reply goes when nobody waits for it: a channel and its own address fields (chat id, thread id...)."""

    channel: str
    address: dict[str, Any] = attrs.Factory(dict)


@attrs.frozen
class Envelope:
    """One unit of work for a conversation actor.

    `parent`: a turn id whose history (instead of the conversation's own) is the context of this turn, for
    protocols that branch (Responses' `previous_response_id`). `turn_id`: the id the channel assigned to the
    turn so it can name it before it finishes. `idempotency_key`: the channel's message id; an envelope with a
    key is written to the durable inbox before the sender is acknowledged and runs at most once.
    `follow_identity`: the conversation is the sender's own (a private chat, a Responses `session: identity`);
    the host replaces `key.conversation` with the conversation of the sender's isolation key, so the same
    person on linked channels continues one conversation.
    """

    key: ConversationKey
    input: tuple[Message, ...] = ()
    kind: EnvelopeKind = "turn"
    turn_id: str | None = None
    parent: str | None = None
    options: dict[str, Any] = attrs.Factory(dict)
    identity: Identity | None = None
    idempotency_key: str | None = None
    reply_to: ReplyTarget | None = None
    busy_policy: BusyPolicy | None = None
    trace_id: str | None = None
    follow_identity: bool = False
