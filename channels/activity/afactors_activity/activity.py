"""Inbound Activity JSON -> checked attrs values, and the conversation reference replies go to (pure; no I/O).

Only the fields the channel uses are read (B-03); anything else in the body is ignored. A body that is not an
Activity the channel can answer raises `BadActivity` with a message for the 400 answer.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import attrs

from afactors_activity.service_url import http_url_parts


class BadActivity(ValueError):
    """The request body is not an Activity the channel can take; the message says what is wrong."""


@attrs.frozen
class Account:
    """A `ChannelAccount`: a user or the bot."""

    id: str
    name: str | None = None
    aad_object_id: str | None = None
    role: str | None = None

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"id": self.id}
        for key, value in (("name", self.name), ("aadObjectId", self.aad_object_id), ("role", self.role)):
            if value is not None:
                out[key] = value
        return out


@attrs.frozen
class Conversation:
    """A `ConversationAccount`: the chat an activity belongs to."""

    id: str
    is_group: bool = False
    conversation_type: str | None = None
    tenant_id: str | None = None

    @property
    def group(self) -> bool:
        """Whether several people share it (a group chat or a Teams channel)."""
        return self.is_group or self.conversation_type in ("groupChat", "channel")

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"id": self.id}
        if self.is_group:
            out["isGroup"] = True
        if self.conversation_type is not None:
            out["conversationType"] = self.conversation_type
        if self.tenant_id is not None:
            out["tenantId"] = self.tenant_id
        return out


@attrs.frozen
class ConversationRef:
    """Where replies to a conversation go: a `ConversationReference`, stored for later (proactive) pushes.

    `activity_id` is the activity being answered (replies thread under it); None for proactive messages.
    """

    service_url: str
    channel_id: str
    conversation: Conversation
    bot: Account
    user: Account | None = None
    activity_id: str | None = None
    locale: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """The reference as Bot Framework's ConversationReference JSON (the `ReplyTarget` address)."""
        out: dict[str, Any] = {
            "serviceUrl": self.service_url,
            "channelId": self.channel_id,
            "conversation": self.conversation.to_dict(),
            "bot": self.bot.to_dict(),
        }
        if self.user is not None:
            out["user"] = self.user.to_dict()
        if self.activity_id is not None:
            out["activityId"] = self.activity_id
        if self.locale is not None:
            out["locale"] = self.locale
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ConversationRef:
        """A reference from its JSON; raises `BadActivity` when it is not one."""
        service_url = _string(data, "serviceUrl", required=True)
        channel_id = _string(data, "channelId", required=True)
        user = data.get("user")
        return cls(
            service_url=service_url,
            channel_id=channel_id,
            conversation=_conversation(data.get("conversation"), "conversation"),
            bot=_account(data.get("bot"), "bot"),
            user=None if user is None else _account(user, "user"),
            activity_id=_string(data, "activityId"),
            locale=_string(data, "locale"),
        )


@attrs.frozen
class Activity:
    """The parts of an inbound Activity the channel reads."""

    type: str
    channel_id: str
    service_url: str
    conversation: Conversation
    id: str | None = None
    sender: Account | None = None
    recipient: Account | None = None
    text: str = ""
    locale: str | None = None
    entities: tuple[Mapping[str, Any], ...] = ()
    attachments: tuple[Mapping[str, Any], ...] = ()
    members_added: tuple[Account, ...] = ()
    name: str | None = None
    delivery_mode: str | None = None

    @property
    def expects_replies(self) -> bool:
        """Whether the caller waits for the replies in the HTTP answer (`deliveryMode: expectReplies`)."""
        return self.delivery_mode == "expectReplies"

    def reference(self) -> ConversationRef:
        """Where replies to this activity go: from the bot (its recipient) to its sender, threaded under it."""
        if self.recipient is None:
            raise BadActivity("the activity has no recipient (the bot) to answer as")
        return ConversationRef(
            service_url=self.service_url,
            channel_id=self.channel_id,
            conversation=self.conversation,
            bot=self.recipient,
            user=self.sender,
            activity_id=self.id,
            locale=self.locale,
        )


def _string(data: Mapping[str, Any], key: str, *, required: bool = False, where: str = "") -> Any:
    value = data.get(key)
    if value is None:
        if required:
            raise BadActivity(f"{where}{key} is required")
        return None
    if not isinstance(value, str) or (required and not value.strip()):
        raise BadActivity(f"{where}{key} must be a non-empty string" if required else f"{where}{key} must be a string")
    return value


def _object(value: Any, where: str) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise BadActivity(f"{where} must be an object")
    return value


def _account(value: Any, where: str) -> Account:
    data = _object(value, where)
    prefix = f"{where}."
    return Account(
        id=_string(data, "id", required=True, where=prefix),
        name=_string(data, "name", where=prefix),
        aad_object_id=_string(data, "aadObjectId", where=prefix),
        role=_string(data, "role", where=prefix),
    )


def _conversation(value: Any, where: str) -> Conversation:
    data = _object(value, where)
    prefix = f"{where}."
    is_group = data.get("isGroup", False)
    if not isinstance(is_group, bool):
        raise BadActivity(f"{where}.isGroup must be a boolean")
    return Conversation(
        id=_string(data, "id", required=True, where=prefix),
        is_group=is_group,
        conversation_type=_string(data, "conversationType", where=prefix),
        tenant_id=_string(data, "tenantId", where=prefix),
    )


def _objects(data: Mapping[str, Any], key: str) -> tuple[Mapping[str, Any], ...]:
    value = data.get(key)
    if value is None:
        return ()
    if not isinstance(value, list) or not all(isinstance(item, Mapping) for item in value):
        raise BadActivity(f"{key} must be a list of objects")
    return tuple(value)


def parse_activity(body: Any) -> Activity:
    """Check a decoded request body and read the Activity in it; raises `BadActivity`."""
    data = _object(body, "the body")
    kind = _string(data, "type", required=True)
    conversation = _conversation(data.get("conversation"), "conversation")
    channel_id = _string(data, "channelId", required=True)
    service_url = _string(data, "serviceUrl", required=True)
    if http_url_parts(service_url) is None:
        raise BadActivity("serviceUrl must be an http(s) URL")
    sender, recipient = data.get("from"), data.get("recipient")
    if kind == "message" and (sender is None or recipient is None):
        raise BadActivity("a message needs from and recipient")
    members = data.get("membersAdded")
    if members is not None and not isinstance(members, list):
        raise BadActivity("membersAdded must be a list")
    return Activity(
        type=kind,
        channel_id=channel_id,
        service_url=service_url,
        conversation=conversation,
        id=_string(data, "id"),
        sender=None if sender is None else _account(sender, "from"),
        recipient=None if recipient is None else _account(recipient, "recipient"),
        text=_string(data, "text") or "",
        locale=_string(data, "locale"),
        entities=_objects(data, "entities"),
        attachments=_objects(data, "attachments"),
        members_added=tuple(_account(m, "membersAdded[]") for m in members or ()),
        name=_string(data, "name"),
        delivery_mode=_string(data, "deliveryMode"),
    )
