"""Outbound Activities and Connector URLs (pure; no I/O): replies, typing, streaming chunks (B-10..B-14).

Users never see error details: a failed turn is answered with `GENERIC_ERROR` and the details go to the log.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Literal
from urllib.parse import quote

from afactors.model import Message, Reply
from afactors_activity.activity import ConversationRef

GENERIC_ERROR = "Sorry, something went wrong while answering. Please try again."
BUSY_TEXT = "I am still answering your previous message; send this one again in a moment."
PAUSED_TEXT = "This conversation is paused after repeated errors; please try again later."
NEW_CONVERSATION_TEXT = "Started a new conversation."

STREAM_INTERVALS = {"msteams": 1.0, "webchat": 0.5, "directline": 0.5}
"""Seconds between streaming chunks per channel id (B-14); other channels get only the final message."""

StreamType = Literal["informative", "streaming"]


def stream_interval(ref: ConversationRef) -> float | None:
    """How often a live answer may be updated in `ref`'s conversation; None when the channel cannot stream.

    Teams streams only in 1:1 chats; Web Chat and Direct Line always.
    """
    interval = STREAM_INTERVALS.get(ref.channel_id)
    if ref.channel_id == "msteams" and ref.conversation.group:
        return None
    return interval


def activities_url(ref: ConversationRef, *, reply: bool = True) -> str:
    """`{serviceUrl}/v3/conversations/{id}/activities[/{activityId}]`: a reply threads under the activity
    it answers; without one (or with `reply=False`) the message is sent to the conversation."""
    url = f"{ref.service_url.rstrip('/')}/v3/conversations/{quote(ref.conversation.id, safe='')}/activities"
    if reply and ref.activity_id is not None:
        url += "/" + quote(ref.activity_id, safe="")
    return url


def _base(ref: ConversationRef, kind: str) -> dict[str, Any]:
    activity: dict[str, Any] = {
        "type": kind,
        "channelId": ref.channel_id,
        "serviceUrl": ref.service_url,
        "from": ref.bot.to_dict(),
        "conversation": ref.conversation.to_dict(),
    }
    if ref.user is not None:
        activity["recipient"] = ref.user.to_dict()
    if ref.activity_id is not None:
        activity["replyToId"] = ref.activity_id
    return activity


def message_activity(ref: ConversationRef, text: str) -> dict[str, Any]:
    """A markdown message to `ref`'s conversation (the shape of `Activity.create_reply`, B-11)."""
    activity = {**_base(ref, "message"), "text": text, "textFormat": "markdown"}
    if ref.locale is not None:
        activity["locale"] = ref.locale
    return activity


def typing_activity(ref: ConversationRef) -> dict[str, Any]:
    """The "typing..." indicator (B-13)."""
    return _base(ref, "typing")


def stream_chunk(ref: ConversationRef, text: str, sequence: int, stream_id: str | None,
                 kind: StreamType = "streaming") -> dict[str, Any]:  # fmt: skip
    """One streaming update: a typing activity with the text so far and a `streaminfo` entity (B-14).

    The first chunk has no `streamId` (the id the service returns for it becomes the stream's id); later
    chunks carry it, and their `streamSequence` grows by one each time.
    """
    info: dict[str, Any] = {"type": "streaminfo", "streamType": kind, "streamSequence": sequence}
    activity = {**_base(ref, "typing"), "text": text, "entities": [info]}
    if stream_id is not None:
        info["streamId"] = stream_id
        activity["id"] = stream_id
    return activity


def stream_final(ref: ConversationRef, text: str, stream_id: str) -> dict[str, Any]:
    """The message that ends a stream: the full text and `streaminfo` of type `final` with the stream's id."""
    activity = message_activity(ref, text)
    activity["id"] = stream_id
    activity["entities"] = [{"type": "streaminfo", "streamType": "final", "streamId": stream_id}]
    return activity


def reply_text(reply: Reply) -> str | None:
    """What the user reads for a finished turn: its text; the generic error when it failed or said nothing;
    None (nothing is sent) for a turn cancelled before it said anything."""
    if reply.status == "failed":
        return GENERIC_ERROR
    if not reply.text.strip():
        return None if reply.status == "cancelled" else GENERIC_ERROR
    return reply.text


def error_body(code: str, message: str) -> dict[str, Any]:
    """Bot Framework's `ErrorResponse` envelope."""
    return {"error": {"code": code, "message": message}}


def echo_quote(echo: Sequence[Message]) -> str:
    """The user's input as a markdown quote (each line behind "> "), shown before a reply pushed elsewhere."""
    text = "\n\n".join(m.text for m in echo if m.text.strip())
    return "\n".join("> " + line for line in text.splitlines())
