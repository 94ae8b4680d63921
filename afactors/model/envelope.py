"""Envelopes: what a channel sends to a conversation actor."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, Literal, get_args

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


ResponseTargetKind = Literal["originating", "active", "channels", "identities", "all_linked", "none"]
TARGET_KINDS: tuple[str, ...] = get_args(ResponseTargetKind)
ORIGINATING = "originating"
"""The pseudo channel name of the originating channel in a `channels` target."""

MAX_NAMED = 100
"""Most channels or identities one request may name (a broadcast to more goes through `host.push`)."""


@attrs.frozen
class ResponseTarget:
    """Where an answer goes: `originating` (default), `active` (last-seen channel within a window, then
    fallbacks), `channels` (named channels of the sender's linked identity; `"originating"` names the originating
    one), `identities` (explicit channel identities), `all_linked` (every channel the sender is linked on that
    can push), `none` (nobody: background only). With `echo_input` each non-originating destination first
    receives the user's input."""

    kind: ResponseTargetKind = "originating"
    channels: tuple[str, ...] = ()
    identities: tuple[Identity, ...] = ()
    echo_input: bool = False

    @classmethod
    def originating(cls) -> ResponseTarget:
        return cls()

    @classmethod
    def active(cls, *, echo_input: bool = False) -> ResponseTarget:
        return cls("active", echo_input=echo_input)

    @classmethod
    def channel(cls, name: str, *, echo_input: bool = False) -> ResponseTarget:
        return cls("channels", (name,), echo_input=echo_input)

    @classmethod
    def to_channels(cls, names: Iterable[str], *, echo_input: bool = False) -> ResponseTarget:
        return cls("channels", tuple(names), echo_input=echo_input)

    @classmethod
    def to_identities(cls, identities: Iterable[Identity], *, echo_input: bool = False) -> ResponseTarget:
        return cls("identities", (), tuple(identities), echo_input=echo_input)

    @classmethod
    def all_linked(cls, *, echo_input: bool = False) -> ResponseTarget:
        return cls("all_linked", echo_input=echo_input)

    @classmethod
    def none(cls) -> ResponseTarget:
        return cls("none")


@attrs.frozen
class Destination:
    """One resolved place an answer is pushed to: a channel identity and its channel's address for it.
    `echo`: the user's input goes first."""

    channel: str
    user_id: str
    address: dict[str, Any] = attrs.Factory(dict)
    echo: bool = False


@attrs.frozen
class Skipped:
    """A destination the target named (or implied) that gets nothing, and why: `link_policy`, `cannot_push`,
    `no_address`."""

    channel: str
    user_id: str | None
    reason: str


@attrs.frozen
class Routing:
    """A target as the host resolved it at submit time: whether the originating channel answers, the other
    `destinations` (each its own outbox row in the turn's commit) and what was `skipped`."""

    target: ResponseTarget
    originating: bool = True
    destinations: tuple[Destination, ...] = ()
    skipped: tuple[Skipped, ...] = ()


@attrs.frozen
class Envelope:
    """One unit of work for a conversation actor.

    `parent`: a turn id whose history (instead of the conversation's own) is the context of this turn, for
    protocols that branch (Responses' `previous_response_id`). `turn_id`: the id the channel assigned to the
    turn so it can name it before it finishes. `idempotency_key`: the channel's message id; an envelope with a
    key is written to the durable inbox before the sender is acknowledged and runs at most once.
    `follow_identity`: the conversation is the sender's own (a private chat, a Responses `session: identity`);
    the host replaces `key.conversation` with the conversation of the sender's isolation key, so the same
    person on linked channels continues one conversation. `response_target`: where the answer goes (None: the
    originating channel, or the host's per-channel default); `routing`: what the host resolved it to at submit
    time (set by the host only; a channel leaves it None).
    person on linked channels continues one conversation.
    `trace_context`: the W3C trace context (`traceparent`, `tracestate`) of the request that sent it, filled in
    by the host when traces are on; the turn's span continues that trace.
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
    response_target: ResponseTarget | None = None
    routing: Routing | None = None
    trace_context: dict[str, str] | None = None
