"""The Conversations API wire as pure functions: request bodies, the conversation object, item pages, item removal.

A conversation's items are the items of its committed turns in order: each turn's input items, then its output
items (`response.turn_items`), so items added through the API and turns run with `conversation=` are one list.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import attrs

from afactors.channel import CommittedTurn
from afactors.model import FunctionCallPart, Message, TextPart
from afactors_responses.codec.errors import ApiError, bad_request
from afactors_responses.codec.output import item_id, reply_items
from afactors_responses.codec.request import InputItem, invalid_type, parse_items, parse_metadata, read_object
from afactors_responses.codec.response import message_items, turn_items

MAX_ITEMS_PER_REQUEST = 20
"""Items one create or add request may carry (OpenAI's limit)."""


@attrs.frozen
class ConversationBody:
    """A create (or update) body: optional initial items and metadata."""

    items: tuple[InputItem, ...] = ()
    metadata: dict[str, str] | None = None


def _body(body: object) -> dict[str, Any]:
    if not isinstance(body, dict):
        raise invalid_type("body", "an object", body)
    return body


def _items(value: object) -> tuple[InputItem, ...]:
    items = parse_items(value, "items")
    if len(items) > MAX_ITEMS_PER_REQUEST:
        raise bad_request(
            f"Invalid 'items': at most {MAX_ITEMS_PER_REQUEST} items per request, got {len(items)}.",
            "items",
            "array_above_max_length",
        )
    return items


def parse_create_conversation(body: object) -> ConversationBody:
    """`{"items"?, "metadata"?}`; unknown fields are ignored."""
    body = _body(body)
    items = _items(body["items"]) if body.get("items") not in (None, []) else ()  # `[]`: what the Agents SDK sends
    metadata = parse_metadata(body["metadata"]) if body.get("metadata") is not None else None
    return ConversationBody(items, metadata)


def parse_update_conversation(body: object) -> dict[str, str]:
    """`{"metadata"}` (required)."""
    body = _body(body)
    if "metadata" not in body:
        raise ApiError(
            400, "Missing required parameter: 'metadata'.", param="metadata", code="missing_required_parameter"
        )
    return parse_metadata(read_object(body["metadata"], "metadata"))


def parse_add_items(body: object) -> tuple[InputItem, ...]:
    """`{"items"}` (required, 1-20 items)."""
    body = _body(body)
    if "items" not in body:
        raise ApiError(400, "Missing required parameter: 'items'.", param="items", code="missing_required_parameter")
    return _items(body["items"])


def render_conversation(conversation: str, record: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": conversation,
        "object": "conversation",
        "created_at": math.floor(record.get("created_at", 0)),
        "metadata": record.get("metadata", {}),
    }


def conversation_items(turns: Sequence[CommittedTurn], *, encrypted: bool = False) -> list[dict[str, Any]]:
    """Every item of a conversation, oldest first."""
    return [item for turn in turns for item in turn_items(turn.turn_id, turn.input, turn.output, encrypted=encrypted)]


def added_items(turn_id: str, messages: Sequence[Message], *, encrypted: bool = False) -> dict[str, Any]:
    """The answer to an items add: the new items as a list object."""
    data = message_items(turn_id, messages, encrypted=encrypted)
    return {
        "object": "list",
        "data": data,
        "first_id": data[0]["id"] if data else None,
        "last_id": data[-1]["id"] if data else None,
        "has_more": False,
    }


def without_item(turn: CommittedTurn, item: str) -> tuple[tuple[Message, ...], tuple[Message, ...]] | None:
    """The turn's (input, output) with item `item` removed; None when the item is not one of this turn's.

    Input items are whole messages. Output items follow `output.OutputBuilder`: the text message (every text part
    of the assistant messages), then one item per function call or reasoning part.
    """
    inputs = message_items(turn.turn_id, turn.input)
    for index, rendered in enumerate(inputs):
        if rendered["id"] == item:
            return (*turn.input[:index], *turn.input[index + 1 :]), turn.output
    text = any(isinstance(p, TextPart) for m in turn.output if m.role == "assistant" for p in m.contents)
    if text and item == item_id("msg", turn.turn_id, 0):
        return turn.input, _drop_parts(turn.output, lambda part: isinstance(part, TextPart))
    parts = reply_items(turn.output)
    for n, part in enumerate(parts):
        prefix = "fc" if isinstance(part, FunctionCallPart) else "rs"
        if item == item_id(prefix, turn.turn_id, n + int(text)):
            return turn.input, _drop_parts(turn.output, lambda candidate, part=part: candidate is part)
    return None


def _drop_parts(messages: tuple[Message, ...], drop: Any) -> tuple[Message, ...]:
    kept = []
    for message in messages:
        if message.role == "assistant":
            contents = tuple(p for p in message.contents if not drop(p))
            if contents or not message.contents:
                kept.append(attrs.evolve(message, contents=contents))
        else:
            kept.append(message)
    return tuple(kept)


__all__ = [
    "MAX_ITEMS_PER_REQUEST",
    "ConversationBody",
    "added_items",
    "conversation_items",
    "parse_add_items",
    "parse_create_conversation",
    "parse_update_conversation",
    "render_conversation",
    "without_item",
]
