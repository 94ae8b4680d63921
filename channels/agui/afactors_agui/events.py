"""A turn's updates -> AG-UI events, and their server-sent-event frames (pure, no I/O).

Every event is valid for both `ag-ui-protocol` 0.1.x and 1.0 (camelCase wire names, unset optional fields left
out). One difference is negotiated: a run that was cancelled (stopped by a newer run on its thread, by the client
going away, or by shutdown) ends with `RUN_FINISHED` and `outcome: {"type": "cancelled"}` for a client that
declared `protocolVersion` 1.0 or later, and with `RUN_ERROR` (its `code` says why) for older clients, whose
models know no such outcome.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any

import orjson

from afactors.model import (
    ErrorInfo,
    FunctionCallPart,
    FunctionResultPart,
    Part,
    ReasoningPart,
    Reply,
    TextPart,
    Update,
    UsagePart,
)
from afactors_agui.request import RunRequest

Event = dict[str, Any]

PROTOCOL_VERSION = "1.0"
"""The AG-UI version this channel declares in `RUN_STARTED.protocolVersion`."""

GENERIC_ERRORS = {"agent_error": "The agent failed while answering; the error was logged. Try again."}
"""Errors whose details (the target's exception text) stay in the log; the client gets this message."""


def sse_frame(event: Event) -> bytes:
    """One event as a server-sent-event frame (`data: <json>`, as the AG-UI encoders write it)."""
    return b"data: " + orjson.dumps(event) + b"\n\n"


def declares_outcomes(protocol_version: str | None) -> bool:
    """Whether a client's `protocolVersion` is 1.0 or later (an unreadable one counts as newer, as 1.0 says)."""
    if protocol_version is None:
        return False
    major = protocol_version.split(".", 1)[0]
    return not major.isdigit() or int(major) >= 1


def state_to_show(before: dict[str, Any], after: dict[str, Any]) -> dict[str, Any] | None:
    """The state a run's `STATE_SNAPSHOT` carries: the committed state when there is one or the run changed it.

    A conversation whose target never keeps state gets no snapshot, so a front-end's own state is left alone.
    """
    return after if after or after != before else None


def _new_id() -> str:
    return str(uuid.uuid4())


class EventStream:
    """The events of one run, in order: `start()`, then `add(update)` per update, then `finish(reply, state)`.

    Text deltas form a text message (`TEXT_MESSAGE_START/CONTENT/END`); a function call part closes it and
    becomes `TOOL_CALL_START/ARGS/END` whose `parentMessageId` is that message (or a fresh one); a function
    result part becomes `TOOL_CALL_RESULT`; a reasoning part becomes `REASONING_*`; text after those opens a new
    message. Usage parts are summed into `RUN_FINISHED.usage`; data and URI parts have no AG-UI event and are
    left out of the stream (they are kept in the thread's history).
    """

    def __init__(self, request: RunRequest, new_id: Callable[[], str] = _new_id) -> None:
        self.request = request
        self._new_id = new_id
        self._message_id: str | None = None  # the assistant message tool calls attach to
        self._text_open = False
        self._text_sent: list[str] = []
        self._parts_sent: list[Part] = []

    def _run(self, event_type: str, **fields: Any) -> Event:
        return {"type": event_type, "threadId": self.request.thread_id, "runId": self.request.run_id, **fields}

    def start(self) -> list[Event]:
        extra = {} if self.request.parent_run_id is None else {"parentRunId": self.request.parent_run_id}
        return [self._run("RUN_STARTED", protocolVersion=PROTOCOL_VERSION, **extra)]

    def add(self, update: Update) -> list[Event]:
        events = self._text(update.delta) if update.delta else []
        part = update.part
        if part is None or isinstance(part, UsagePart):
            return events
        if isinstance(part, TextPart):
            return events + self._text(part.text)
        if isinstance(part, FunctionCallPart | FunctionResultPart | ReasoningPart):
            self._parts_sent.append(part)
            events += self._close_text()
            if isinstance(part, FunctionCallPart):
                return events + self._call(part)
            if isinstance(part, FunctionResultPart):
                return events + self._result(part)
            return events + self._reasoning(part)
        return events  # DataPart, UriPart: no AG-UI event

    def _text(self, text: str) -> list[Event]:
        if not text:
            return []
        events: list[Event] = []
        if not self._text_open:
            self._message_id, self._text_open = self._new_id(), True
            events.append({"type": "TEXT_MESSAGE_START", "messageId": self._message_id, "role": "assistant"})
        self._text_sent.append(text)
        events.append({"type": "TEXT_MESSAGE_CONTENT", "messageId": self._message_id, "delta": text})
        return events

    def _close_text(self) -> list[Event]:
        if not self._text_open:
            return []
        self._text_open = False
        return [{"type": "TEXT_MESSAGE_END", "messageId": self._message_id}]

    def _call(self, part: FunctionCallPart) -> list[Event]:
        if self._message_id is None:
            self._message_id = self._new_id()
        events: list[Event] = [
            {
                "type": "TOOL_CALL_START",
                "toolCallId": part.call_id,
                "toolCallName": part.name,
                "parentMessageId": self._message_id,
            }
        ]
        if part.arguments:
            events.append({"type": "TOOL_CALL_ARGS", "toolCallId": part.call_id, "delta": part.arguments})
        events.append({"type": "TOOL_CALL_END", "toolCallId": part.call_id})
        return events

    def _result(self, part: FunctionResultPart) -> list[Event]:
        self._message_id = None  # what the agent says after a tool result is a new assistant message
        return [
            {
                "type": "TOOL_CALL_RESULT",
                "messageId": self._new_id(),
                "toolCallId": part.call_id,
                "content": part.result,
                "role": "tool",
            }
        ]

    def _reasoning(self, part: ReasoningPart) -> list[Event]:
        reasoning_id = self._new_id()
        events: list[Event] = [
            {"type": "REASONING_START", "messageId": reasoning_id},
            {"type": "REASONING_MESSAGE_START", "messageId": reasoning_id, "role": "reasoning"},
        ]
        if part.text:
            events.append({"type": "REASONING_MESSAGE_CONTENT", "messageId": reasoning_id, "delta": part.text})
        events.append({"type": "REASONING_MESSAGE_END", "messageId": reasoning_id})
        events.append({"type": "REASONING_END", "messageId": reasoning_id})
        return events

    def catch_up(self, reply: Reply) -> list[Event]:
        """After the live stream was dropped (a slow reader, or a retried turn), what the reply has beyond it.

        The text not shown yet follows; when the reply's text does not continue what was shown (a retry answered
        differently), the whole text comes again as a new message. Parts not shown yet follow.
        """
        shown, text = "".join(self._text_sent), reply.text
        events = self._text(text[len(shown) :]) if text.startswith(shown) else self._close_text() + self._text(text)
        unsent = list(self._parts_sent)
        for message in reply.messages:
            for part in message.contents:
                if part in unsent:
                    unsent.remove(part)
                elif not isinstance(part, TextPart):
                    events += self.add(Update(part=part))
        return events

    def finish(self, reply: Reply, state: dict[str, Any] | None = None) -> list[Event]:
        """The closing events: `STATE_SNAPSHOT` (when `state` is given) and `RUN_FINISHED`, or `RUN_ERROR`."""
        events = self._close_text()
        if reply.status == "completed":
            if state is not None:
                events.append({"type": "STATE_SNAPSHOT", "snapshot": state})
            usage = reply.usage
            extra = (
                {}
                if usage is None
                else {
                    "usage": [
                        {
                            "inputTokens": usage.input_tokens,
                            "outputTokens": usage.output_tokens,
                            "totalTokens": usage.total_tokens,
                        }
                    ]
                }
            )
            return [*events, self._run("RUN_FINISHED", **extra)]
        error = reply.error or ErrorInfo("internal_error", "the run did not complete")
        if reply.status == "cancelled" and declares_outcomes(self.request.protocol_version):
            return [*events, self._run("RUN_FINISHED", outcome={"type": "cancelled"})]
        return [*events, *self.error(error.code, error.message)]

    def error(self, code: str, message: str) -> list[Event]:
        """`RUN_ERROR` (after closing an open text message); the message of `GENERIC_ERRORS` codes is replaced."""
        return [*self._close_text(), {"type": "RUN_ERROR", "message": GENERIC_ERRORS.get(code, message), "code": code}]
