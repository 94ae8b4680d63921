"""Output items of a response and their item-level stream events, built from a turn's updates (R-21, R-31).

The items follow how the actor stores a reply (`ReplyBuilder`: all text first, then the whole parts): the text
is one `message` item at output index 0, streamed as its deltas arrive. Whole parts reach a client only when the
turn ends, taken from the finished reply: text parts extend the message, function calls and reasoning become their
own items after it. So the items a stream ends with are the items a later retrieval shows. Parts with no
Responses output item (files, images, tool results) are not rendered.

With `chunked=True` text deltas are cut at fixed places of the text (after each word, or every `CHUNK_CHARS`
characters) whatever the deltas the target produced, so a stream rendered live and one rendered later from the
stored text carry the same events with the same sequence numbers (background responses, R-41).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any, Literal

from afactors.model import FunctionCallPart, Message, ReasoningPart, Update

ItemStatus = Literal["in_progress", "completed", "incomplete"]

CHUNK_CHARS = 32


def item_id(prefix: str, response_id: str, index: int | str) -> str:
    """The id of output item `index` (input item `i<index>`) of a response: stable, so retrieval and streams agree."""
    return f"{prefix}_{response_id.removeprefix('resp_')}_{index}"


def item_owner(item: str) -> str | None:
    """The response id an item id (see `item_id`) belongs to, or None when it is not one of ours."""
    prefix, _, rest = item.partition("_")
    owner, _, index = rest.rpartition("_")
    if not prefix or not owner or not index.removeprefix("i").isdigit():
        return None
    return "resp_" + owner


def split_chunks(text: str) -> tuple[list[str], str]:
    """Cut `text` into complete chunks and the unfinished rest.

    A chunk is leading whitespace plus one word; it is complete once the character after it is known (whitespace
    ends the word), or once it reaches `CHUNK_CHARS`. The cut depends only on the text seen so far, so cutting a
    prefix and then the rest gives the same chunks as cutting the whole.
    """
    chunks: list[str] = []
    start = 0
    i = 0
    seen_word = False
    while i < len(text):
        if text[i].isspace() and seen_word:
            chunks.append(text[start:i])
            start, seen_word = i, False
        elif not text[i].isspace():
            seen_word = True
        i += 1
        if i - start >= CHUNK_CHARS:
            chunks.append(text[start:i])
            start, seen_word = i, False
    return chunks, text[start:]


def reply_text(messages: Iterable[Message]) -> str:
    """The text of a reply's assistant messages."""
    return "".join(m.text for m in messages if m.role == "assistant")


def reply_items(messages: Iterable[Message]) -> list[FunctionCallPart | ReasoningPart]:
    """The whole parts of a reply that become their own output items, in order."""
    return [
        p
        for m in messages
        if m.role == "assistant"
        for p in m.contents
        if isinstance(p, (FunctionCallPart, ReasoningPart))
    ]


class OutputBuilder:
    """Builds the output items of one response from its updates; `add` and `close` return the item events.

    Events come without `sequence_number`; the caller numbers them.
    """

    def __init__(self, response_id: str, *, chunked: bool = False, encrypted: bool = False) -> None:
        self.response_id = response_id
        self.chunked = chunked
        self.encrypted = encrypted
        self.items: list[dict[str, Any]] = []
        self._text: str = ""
        self._pending: str = ""
        self._text_open = False

    # -- text item (output index 0) ----------------------------------------------------------------------------

    def _text_item(self, status: ItemStatus) -> dict[str, Any]:
        content = [_output_text(self._text)] if status != "in_progress" else []
        return {
            "type": "message",
            "id": item_id("msg", self.response_id, 0),
            "role": "assistant",
            "status": status,
            "content": content,
        }

    def _delta(self, delta: str) -> dict[str, Any]:
        return {
            "type": "response.output_text.delta",
            "item_id": item_id("msg", self.response_id, 0),
            "output_index": 0,
            "content_index": 0,
            "delta": delta,
            "logprobs": [],
        }

    def _open_text(self) -> list[dict[str, Any]]:
        self._text_open = True
        self.items.append(self._text_item("in_progress"))
        ref = {"item_id": item_id("msg", self.response_id, 0), "output_index": 0, "content_index": 0}
        return [
            {"type": "response.output_item.added", "output_index": 0, "item": self._text_item("in_progress")},
            {"type": "response.content_part.added", **ref, "part": _output_text("")},
        ]

    def _close_text(self, status: ItemStatus) -> list[dict[str, Any]]:
        events = [self._delta(self._pending)] if self._pending else []
        self._pending = ""
        self._text_open = False
        ref = {"item_id": item_id("msg", self.response_id, 0), "output_index": 0, "content_index": 0}
        self.items[0] = self._text_item(status)
        return [
            *events,
            {"type": "response.output_text.done", **ref, "text": self._text, "logprobs": []},
            {"type": "response.content_part.done", **ref, "part": _output_text(self._text)},
            {"type": "response.output_item.done", "output_index": 0, "item": self.items[0]},
        ]

    def snapshot(self) -> list[dict[str, Any]]:
        """The items so far, the text item with the text streamed so far (a running response's output)."""
        items = list(self.items)
        if self._text_open:
            items[0] = {**self._text_item("in_progress"), "content": [_output_text(self._text)]}
        return items

    # -- updates ----------------------------------------------------------------------------------------------

    def add(self, update: Update) -> list[dict[str, Any]]:
        """Take one update; returns the events it causes now. Whole parts (text ones too) wait for `close`,
        where they come from the finished reply in the order the actor stored them."""
        return self._add_text(update.delta)

    def _add_text(self, text: str) -> list[dict[str, Any]]:
        if not text:
            return []
        events = [] if self._text_open else self._open_text()
        self._text += text
        if not self.chunked:
            return [*events, self._delta(text)]
        chunks, self._pending = split_chunks(self._pending + text)
        return [*events, *(self._delta(chunk) for chunk in chunks)]

    def close(self, status: ItemStatus, final: Sequence[Message] | None = None) -> list[dict[str, Any]]:
        """The turn ended: close the text item with `status`, then add the reply's whole parts as items.

        `final` is the finished reply. Text the stream has not shown yet (a dropped stream, or text that came as
        whole parts) is sent as deltas first; if the reply's text does not continue what was streamed (a retried
        turn), the done events carry the reply's text. Without `final` (a failed turn) the streamed text stands.
        """
        events: list[dict[str, Any]] = []
        if final is not None:
            text = reply_text(final)
            if text.startswith(self._text):
                events.extend(self._add_text(text[len(self._text) :]))
            else:
                self._text, self._pending = text, ""
        if self._text_open:
            events.extend(self._close_text(status))
        for part in reply_items(final or ()):
            events.extend(self._part_events(part, len(self.items)))
        return events

    def _part_events(self, part: FunctionCallPart | ReasoningPart, index: int) -> list[dict[str, Any]]:
        if isinstance(part, FunctionCallPart):
            ref = {"item_id": item_id("fc", self.response_id, index), "output_index": index}
            item = {
                "type": "function_call",
                "id": ref["item_id"],
                "call_id": part.call_id,
                "name": part.name,
                "arguments": part.arguments,
                "status": "completed",
            }
            events = [
                {
                    "type": "response.output_item.added",
                    "output_index": index,
                    "item": {**item, "arguments": "", "status": "in_progress"},
                },
                {"type": "response.function_call_arguments.delta", **ref, "delta": part.arguments},
                {"type": "response.function_call_arguments.done", **ref, "arguments": part.arguments},
            ]
        else:
            item = reasoning_item(item_id("rs", self.response_id, index), part, self.encrypted)
            events = [
                {
                    "type": "response.output_item.added",
                    "output_index": index,
                    "item": {**item, "summary": [], "status": "in_progress"},
                }
            ]
        self.items.append(item)
        return [*events, {"type": "response.output_item.done", "output_index": index, "item": item}]


def reasoning_item(item: str, part: ReasoningPart, encrypted: bool) -> dict[str, Any]:
    """A reasoning item; `encrypted_content` only when the request's `include` asked for it."""
    summary = [{"type": "summary_text", "text": part.text}]
    rendered: dict[str, Any] = {"type": "reasoning", "id": item, "summary": summary, "status": "completed"}
    if encrypted and part.encrypted is not None:
        rendered["encrypted_content"] = part.encrypted
    return rendered


def _output_text(text: str) -> dict[str, Any]:
    return {"type": "output_text", "text": text, "annotations": [], "logprobs": []}


def output_items(
    response_id: str, messages: Sequence[Message], status: ItemStatus, *, encrypted: bool = False
) -> list[dict[str, Any]]:
    """The output items of a finished reply, exactly as a stream of it ends up."""
    builder = OutputBuilder(response_id, encrypted=encrypted)
    builder.close(status, messages)
    return builder.items
