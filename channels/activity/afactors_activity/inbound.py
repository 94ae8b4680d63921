"""What to do with an inbound Activity (pure; no I/O): run a turn, answer a command, welcome, or ignore (B-04/B-05).

`decide` applies the activity type, the group rules (act only when the bot is @mentioned, unless
`accept_in_group="all"`), strips the bot's mention and works out the conversation the message belongs to.
"""

from __future__ import annotations

from typing import Any

import attrs

from afactors.model import UriPart
from afactors_activity.activity import Account, Activity, ConversationRef
from afactors_activity.mentions import mentions_bot, strip_bot_mentions

IGNORED_TYPES = frozenset({"typing", "endOfConversation", "messageReaction", "installationUpdate", "event",
                           "messageUpdate", "messageDelete", "contactRelationUpdate", "deleteUserData",
                           "suggestion", "trace", "handoff", "command", "commandResult"})  # fmt: skip
"""Activity types answered 202 and otherwise left alone on purpose."""

NEW_COMMAND = "/new"


@attrs.frozen
class Ignore:
    """Nothing reaches an actor; `reason` is for logs and tests."""

    reason: str


@attrs.frozen
class Invoke:
    """An `invoke` activity (card actions, message extensions ...): answered 501, none are implemented."""

    name: str | None


@attrs.frozen
class Welcome:
    """The bot was added to a conversation and a welcome text is configured."""

    ref: ConversationRef


@attrs.frozen
class NewConversation:
    """`/new`: the conversation `conversation` starts afresh."""

    ref: ConversationRef
    conversation: str


@attrs.frozen
class TurnRequest:
    """A message for the agent in conversation `conversation` (before `/new` epochs)."""

    ref: ConversationRef
    conversation: str
    sender: Account
    text: str
    attachments: tuple[UriPart, ...] = ()
    idempotency_key: str | None = None


Decision = Ignore | Invoke | Welcome | NewConversation | TurnRequest


def conversation_id(activity: Activity, scope: str) -> str:
    """The base conversation key of a message: a 1:1 chat is the user's own; a group chat or Teams channel
    thread follows `scope` (`per_user_per_conversation`, `per_user` or `per_conversation`)."""
    tenant = activity.conversation.tenant_id or "-"
    sender = activity.sender.id if activity.sender is not None else "-"
    user_key = f"activity:{activity.channel_id}:{tenant}:{sender}"
    if not activity.conversation.group or scope == "per_user":
        return user_key
    if scope == "per_conversation":
        return f"_conv:activity:{activity.channel_id}:{tenant}:{activity.conversation.id}"
    return f"{user_key}:{activity.conversation.id}"


def idempotency_key(activity: Activity) -> str | None:
    """The dedup key of a message: redeliveries of one activity id run its turn once."""
    if activity.id is None:
        return None
    return f"activity:{activity.channel_id}:{activity.conversation.id}:{activity.id}"


def uri_attachments(attachments: tuple[Any, ...]) -> tuple[UriPart, ...]:
    """Attachments with a `contentUrl` (pictures, files) as content by reference; inline cards are skipped."""
    parts = []
    for attachment in attachments:
        url, kind, name = attachment.get("contentUrl"), attachment.get("contentType"), attachment.get("name")
        if isinstance(url, str) and url and isinstance(kind, str) and kind:
            parts.append(UriPart(url, kind, name if isinstance(name, str) else None))
    return tuple(parts)


def _message(activity: Activity, scope: str, accept_in_group: str) -> Decision:
    assert activity.sender is not None and activity.recipient is not None  # parse_activity checked
    bot_id = activity.recipient.id
    if activity.sender.id == bot_id:
        return Ignore("the bot's own message")
    if (
        activity.conversation.group
        and accept_in_group == "mention_only"
        and not mentions_bot(activity.entities, bot_id)
    ):
        return Ignore("group message without a mention of the bot")
    text = strip_bot_mentions(activity.text, activity.entities, bot_id)
    attachments = uri_attachments(activity.attachments)
    conversation = conversation_id(activity, scope)
    if text.lower() == NEW_COMMAND:
        return NewConversation(activity.reference(), conversation)
    if not text and not attachments:
        return Ignore("no text and no attachment")
    return TurnRequest(
        activity.reference(), conversation, activity.sender, text, attachments, idempotency_key(activity)
    )


def decide(activity: Activity, *, scope: str, accept_in_group: str, welcome: bool) -> Decision:
    """What the channel does with `activity` (B-04)."""
    if activity.type == "message":
        return _message(activity, scope, accept_in_group)
    if activity.type == "invoke":
        return Invoke(activity.name)
    if activity.type == "conversationUpdate":
        bot_id = activity.recipient.id if activity.recipient is not None else None
        if welcome and bot_id is not None and any(member.id == bot_id for member in activity.members_added):
            return Welcome(attrs.evolve(activity.reference(), activity_id=None))
        return Ignore("conversationUpdate without the bot joining (or no welcome text)")
    if activity.type in IGNORED_TYPES:
        return Ignore(f"{activity.type} activities are not acted on")
    return Ignore(f"unknown activity type {activity.type!r}")
