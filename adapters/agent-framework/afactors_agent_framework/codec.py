"""Pure mapping between afactors messages/updates and Agent Framework messages/updates (no I/O).

Every content type both sides have maps losslessly both ways: text, reasoning, inline data, URIs, function
calls and results, usage. afactors keeps one assistant message per turn with its parts in order; Agent
Framework splits a tool-using turn into assistant, tool and assistant messages. `to_af_messages` splits an
afactors message back at its function results, so a turn read back from history is what the agent produced.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Iterable, Sequence
from typing import Any

import orjson
from agent_framework import Content
from agent_framework import Message as AFMessage

from afactors.model import (
    DataPart,
    FunctionCallPart,
    FunctionResultPart,
    Message,
    Part,
    ReasoningPart,
    TextPart,
    Update,
    UriPart,
    UsagePart,
)

OCTET_STREAM = "application/octet-stream"


class UnmappedContent(ValueError):
    """An Agent Framework content that has no afactors counterpart (kept out of the reply, logged)."""


# -- afactors -> Agent Framework ----------------------------------------------------------------------------


def to_af_content(part: Part) -> Content:
    """One afactors part as an Agent Framework content."""
    if isinstance(part, TextPart):
        return Content.from_text(part.text)
    if isinstance(part, ReasoningPart):
        return Content.from_text_reasoning(text=part.text)
    if isinstance(part, DataPart):
        return Content.from_data(part.data, part.media_type, name=part.name)
    if isinstance(part, UriPart):
        return Content("uri", uri=part.uri, media_type=part.media_type, name=part.name)
    if isinstance(part, FunctionCallPart):
        return Content.from_function_call(part.call_id, part.name, arguments=part.arguments)
    if isinstance(part, FunctionResultPart):
        return Content.from_function_result(part.call_id, result=part.result)
    return Content.from_usage(
        {
            "input_token_count": part.input_tokens,
            "output_token_count": part.output_tokens,
            "total_token_count": part.total_tokens,
        }
    )


def to_af_messages(messages: Iterable[Message]) -> list[AFMessage]:
    """afactors messages as Agent Framework messages; function results of an assistant turn become tool messages."""
    out: list[AFMessage] = []
    for message in messages:
        if message.role != "assistant":
            out.append(AFMessage(message.role, [to_af_content(p) for p in message.contents], author_name=message.name))
            continue
        run: list[Content] = []
        run_role = "assistant"
        for part in message.contents:
            role = "tool" if isinstance(part, FunctionResultPart) else "assistant"
            if role != run_role and run:
                out.append(AFMessage(run_role, run, author_name=message.name if run_role == "assistant" else None))
                run = []
            run_role = role
            run.append(to_af_content(part))
        if run or not message.contents:
            out.append(AFMessage(run_role, run, author_name=message.name if run_role == "assistant" else None))
    return out


# -- Agent Framework -> afactors ----------------------------------------------------------------------------


def _text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    return orjson.dumps(value, default=str).decode()


def _data(uri: str) -> bytes:
    _, _, payload = uri.partition(",")
    try:
        return base64.b64decode(payload, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise UnmappedContent(f"unreadable data URI: {exc}") from exc


def usage_part(details: Any) -> UsagePart | None:
    """Agent Framework usage details as a `UsagePart` (None when there are none)."""
    if not details:
        return None
    return UsagePart(int(details.get("input_token_count") or 0), int(details.get("output_token_count") or 0))


def from_af_content(content: Content) -> Part:
    """One Agent Framework content as an afactors part; `UnmappedContent` for kinds afactors lacks."""
    kind = content.type
    if kind == "text":
        return TextPart(content.text or "")
    if kind == "text_reasoning":
        return ReasoningPart(content.text or "")
    if kind == "data":
        return DataPart(_data(content.uri or ""), content.media_type or OCTET_STREAM, getattr(content, "name", None))
    if kind == "uri":
        return UriPart(content.uri or "", content.media_type or OCTET_STREAM, getattr(content, "name", None))
    if kind == "function_call":
        return FunctionCallPart(content.call_id or "", content.name or "", _text(content.arguments))
    if kind == "function_result":
        return FunctionResultPart(content.call_id or "", _text(content.result))
    if kind == "usage":
        usage = usage_part(content.usage_details)
        return usage if usage is not None else UsagePart()
    raise UnmappedContent(f"Agent Framework content of type {kind!r} has no afactors counterpart")


def from_af_messages(messages: Sequence[AFMessage]) -> list[Message]:
    """Agent Framework messages as afactors messages (unmappable contents are left out)."""
    out: list[Message] = []
    for message in messages:
        parts: list[Part] = []
        for content in message.contents:
            try:
                parts.append(from_af_content(content))
            except UnmappedContent:
                continue
        role = message.role if message.role in ("user", "assistant", "system", "tool") else "assistant"
        out.append(Message(role, tuple(parts), message.author_name))  # type: ignore[arg-type]
    return out


class UpdateMapper:
    """Turns a stream of Agent Framework contents into afactors `Update`s, in order.

    Text streams as deltas. Reasoning deltas are joined into one `ReasoningPart`, and a function call's argument
    pieces into one `FunctionCallPart`, each emitted when something else starts (or at `close`). Streamed usage
    is skipped: Agent Framework reports it cumulatively, so the turn's usage comes once, from the final response.
    """

    def __init__(self) -> None:
        self._reasoning: list[str] = []
        self._calls: dict[str, list[str]] = {}  # call_id -> [name, arguments...]

    def add(self, contents: Iterable[Content]) -> list[Update]:
        updates: list[Update] = []
        for content in contents:
            kind = content.type
            if kind == "usage":
                continue
            if kind == "text_reasoning":
                updates.extend(self._flush_calls())
                self._reasoning.append(content.text or "")
                continue
            if kind == "function_call" and not getattr(content, "informational_only", False):
                updates.extend(self._flush_reasoning())
                key = content.call_id or ""
                pieces = self._calls.setdefault(key, [content.name or ""])
                if content.name and not pieces[0]:
                    pieces[0] = content.name
                pieces.append(_text(content.arguments))
                continue
            updates.extend(self.close())
            if kind == "text":
                if content.text:
                    updates.append(Update(delta=content.text))
                continue
            try:
                updates.append(Update(part=from_af_content(content)))
            except UnmappedContent:
                continue
        return updates

    def _flush_reasoning(self) -> list[Update]:
        if not self._reasoning:
            return []
        text, self._reasoning = "".join(self._reasoning), []
        return [Update(part=ReasoningPart(text))]

    def _flush_calls(self) -> list[Update]:
        calls, self._calls = self._calls, {}
        return [Update(part=FunctionCallPart(call_id, p[0], "".join(p[1:]))) for call_id, p in calls.items()]

    def close(self) -> list[Update]:
        """Emit whatever is still being joined."""
        return [*self._flush_reasoning(), *self._flush_calls()]
