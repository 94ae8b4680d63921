"""`EventStream`: a turn's updates -> AG-UI events (pure); every event validated with the `ag_ui.core` models."""

from __future__ import annotations

from collections.abc import Iterable
from itertools import count
from typing import Any

import orjson
import pytest

from afactors.model import (
    DataPart,
    ErrorInfo,
    FunctionCallPart,
    FunctionResultPart,
    Message,
    ReasoningPart,
    Reply,
    TextPart,
    Update,
    UriPart,
    UsagePart,
)
from afactors_agui import EventStream, RunRequest, sse_frame
from afactors_agui.events import Event, declares_outcomes, state_to_show

from .conftest import validate_event


def stream(**fields: Any) -> EventStream:
    ids = count(1)
    return EventStream(RunRequest("t", "r", **fields), new_id=lambda: f"id{next(ids)}")


def run(es: EventStream, updates: Iterable[Update], reply: Reply | None = None, state: Any = None) -> list[Event]:
    events = es.start()
    for update in updates:
        events += es.add(update)
    events += es.finish(reply or Reply(), state)
    for event in events:
        validate_event(event)
    return events


def test_text_deltas_form_one_message() -> None:
    events = run(stream(), [Update(delta="Hel"), Update(delta="lo")])
    assert events == [
        {"type": "RUN_STARTED", "threadId": "t", "runId": "r", "protocolVersion": "1.0"},
        {"type": "TEXT_MESSAGE_START", "messageId": "id1", "role": "assistant"},
        {"type": "TEXT_MESSAGE_CONTENT", "messageId": "id1", "delta": "Hel"},
        {"type": "TEXT_MESSAGE_CONTENT", "messageId": "id1", "delta": "lo"},
        {"type": "TEXT_MESSAGE_END", "messageId": "id1"},
        {"type": "RUN_FINISHED", "threadId": "t", "runId": "r"},
    ]


def test_empty_deltas_and_a_run_without_output() -> None:
    assert [e["type"] for e in run(stream(), [Update(), Update(delta="")])] == ["RUN_STARTED", "RUN_FINISHED"]


def test_parent_run_id_is_echoed() -> None:
    assert stream(parent_run_id="p").start()[0]["parentRunId"] == "p"


def test_a_tool_call_closes_the_text_and_attaches_to_its_message() -> None:
    updates = [
        Update(delta="Checking."),
        Update(part=FunctionCallPart("c1", "get", '{"a": 1}')),
        Update(part=FunctionCallPart("c2", "noargs", "")),
        Update(part=FunctionResultPart("c1", "ok")),
        Update(delta="Done"),
        Update(part=FunctionCallPart("c3", "after", "{}")),
    ]
    events = run(stream(), updates)
    assert events[1:-1] == [
        {"type": "TEXT_MESSAGE_START", "messageId": "id1", "role": "assistant"},
        {"type": "TEXT_MESSAGE_CONTENT", "messageId": "id1", "delta": "Checking."},
        {"type": "TEXT_MESSAGE_END", "messageId": "id1"},
        {"type": "TOOL_CALL_START", "toolCallId": "c1", "toolCallName": "get", "parentMessageId": "id1"},
        {"type": "TOOL_CALL_ARGS", "toolCallId": "c1", "delta": '{"a": 1}'},
        {"type": "TOOL_CALL_END", "toolCallId": "c1"},
        {"type": "TOOL_CALL_START", "toolCallId": "c2", "toolCallName": "noargs", "parentMessageId": "id1"},
        {"type": "TOOL_CALL_END", "toolCallId": "c2"},
        {"type": "TOOL_CALL_RESULT", "messageId": "id2", "toolCallId": "c1", "content": "ok", "role": "tool"},
        {"type": "TEXT_MESSAGE_START", "messageId": "id3", "role": "assistant"},
        {"type": "TEXT_MESSAGE_CONTENT", "messageId": "id3", "delta": "Done"},
        {"type": "TEXT_MESSAGE_END", "messageId": "id3"},
        {"type": "TOOL_CALL_START", "toolCallId": "c3", "toolCallName": "after", "parentMessageId": "id3"},
        {"type": "TOOL_CALL_ARGS", "toolCallId": "c3", "delta": "{}"},
        {"type": "TOOL_CALL_END", "toolCallId": "c3"},
    ]


def test_a_tool_call_without_text_gets_a_fresh_parent_message() -> None:
    events = run(stream(), [Update(part=FunctionResultPart("c0", "x")), Update(part=FunctionCallPart("c1", "f", ""))])
    assert events[2] == {"type": "TOOL_CALL_START", "toolCallId": "c1", "toolCallName": "f", "parentMessageId": "id2"}


def test_whole_parts_reasoning_usage_and_media() -> None:
    updates = [
        Update(part=TextPart("whole ")),
        Update(part=ReasoningPart("because")),
        Update(part=ReasoningPart("")),
        Update(part=UsagePart(3, 4)),
        Update(part=DataPart(b"x", "image/png")),
        Update(part=UriPart("https://x", "image/png")),
        Update(delta="text"),
    ]
    events = run(stream(), updates, Reply(usage=UsagePart(3, 4)))
    assert [e["type"] for e in events] == [
        "RUN_STARTED",
        "TEXT_MESSAGE_START", "TEXT_MESSAGE_CONTENT", "TEXT_MESSAGE_END",
        "REASONING_START", "REASONING_MESSAGE_START", "REASONING_MESSAGE_CONTENT", "REASONING_MESSAGE_END",
        "REASONING_END",
        "REASONING_START", "REASONING_MESSAGE_START", "REASONING_MESSAGE_END", "REASONING_END",
        "TEXT_MESSAGE_START", "TEXT_MESSAGE_CONTENT", "TEXT_MESSAGE_END",
        "RUN_FINISHED",
    ]  # fmt: skip
    assert events[5] == {"type": "REASONING_MESSAGE_START", "messageId": "id2", "role": "reasoning"}
    assert events[6]["delta"] == "because"
    assert events[-1]["usage"] == [{"inputTokens": 3, "outputTokens": 4, "totalTokens": 7}]


def test_state_snapshot_comes_before_run_finished() -> None:
    events = run(stream(), [Update(delta="x")], state={"a": [1, 2]})
    assert events[-2:] == [
        {"type": "STATE_SNAPSHOT", "snapshot": {"a": [1, 2]}},
        {"type": "RUN_FINISHED", "threadId": "t", "runId": "r"},
    ]


@pytest.mark.parametrize(
    ("before", "after", "shown"),
    [({}, {}, None), ({}, {"a": 1}, {"a": 1}), ({"a": 1}, {"a": 1}, {"a": 1}), ({"a": 1}, {}, {})],
)
def test_which_state_a_run_shows(before: dict[str, Any], after: dict[str, Any], shown: Any) -> None:
    assert state_to_show(before, after) == shown


def test_a_failed_run_ends_with_run_error_after_closing_its_text() -> None:
    reply = Reply(status="failed", error=ErrorInfo("store_error", "the turn could not be stored"))
    events = run(stream(), [Update(delta="par")], reply, state={"ignored": True})
    assert events[-2:] == [
        {"type": "TEXT_MESSAGE_END", "messageId": "id1"},
        {"type": "RUN_ERROR", "message": "the turn could not be stored", "code": "store_error"},
    ]


def test_agent_errors_get_a_generic_message() -> None:
    reply = Reply(status="failed", error=ErrorInfo("agent_error", "KeyError: 'password=hunter2'"))
    error = run(stream(), [], reply)[-1]
    assert error["code"] == "agent_error" and "hunter2" not in error["message"]
    assert run(stream(), [], Reply(status="incomplete"))[-1] == {
        "type": "RUN_ERROR",
        "message": "the run did not complete",
        "code": "internal_error",
    }


@pytest.mark.parametrize("version", [None, "0.1", "0.9.3"])
def test_a_cancelled_run_is_a_run_error_for_older_clients(version: str | None) -> None:
    reply = Reply(status="cancelled", error=ErrorInfo("interrupted", "the turn was interrupted by a newer message"))
    assert run(stream(protocol_version=version), [], reply)[-1] == {
        "type": "RUN_ERROR",
        "message": "the turn was interrupted by a newer message",
        "code": "interrupted",
    }


@pytest.mark.parametrize("version", ["1.0", "1", "2.3", "next"])
def test_a_cancelled_run_finishes_with_the_cancelled_outcome_for_1_0_clients(version: str) -> None:
    reply = Reply(status="cancelled", error=ErrorInfo("cancelled", "the turn was cancelled"))
    assert run(stream(protocol_version=version), [], reply)[-1] == {
        "type": "RUN_FINISHED",
        "threadId": "t",
        "runId": "r",
        "outcome": {"type": "cancelled"},
    }
    assert declares_outcomes(version)


def test_catch_up_sends_what_the_live_stream_missed() -> None:
    es = stream()
    shown = es.start() + es.add(Update(delta="Hello")) + es.add(Update(part=FunctionCallPart("c1", "f", "{}")))
    reply = Reply(messages=(Message("assistant", (
        TextPart("Hello world"), FunctionCallPart("c1", "f", "{}"), FunctionResultPart("c1", "r"),
        UsagePart(1, 1), FunctionCallPart("c2", "g", "{}"),
    )),))  # fmt: skip
    rest = es.catch_up(reply) + es.finish(reply)
    for event in shown + rest:
        validate_event(event)
    assert [(e["type"], e.get("delta") or e.get("toolCallId")) for e in rest] == [
        ("TEXT_MESSAGE_START", None), ("TEXT_MESSAGE_CONTENT", " world"), ("TEXT_MESSAGE_END", None),
        ("TOOL_CALL_RESULT", "c1"),
        ("TOOL_CALL_START", "c2"), ("TOOL_CALL_ARGS", "{}"), ("TOOL_CALL_END", "c2"),
        ("RUN_FINISHED", None),
    ]  # fmt: skip


def test_catch_up_repeats_the_whole_text_when_a_retry_answered_differently() -> None:
    es = stream()
    es.start()
    es.add(Update(delta="First try"))
    rest = es.catch_up(Reply(messages=(Message("assistant", "Second answer"),)))
    assert rest == [
        {"type": "TEXT_MESSAGE_END", "messageId": "id1"},
        {"type": "TEXT_MESSAGE_START", "messageId": "id2", "role": "assistant"},
        {"type": "TEXT_MESSAGE_CONTENT", "messageId": "id2", "delta": "Second answer"},
    ]
    assert stream().catch_up(Reply()) == []


def test_error_events_close_the_open_text() -> None:
    es = stream()
    es.add(Update(delta="x"))
    assert es.error("shutting_down", "bye") == [
        {"type": "TEXT_MESSAGE_END", "messageId": "id1"},
        {"type": "RUN_ERROR", "message": "bye", "code": "shutting_down"},
    ]


def test_sse_frames_are_one_data_line() -> None:
    frame = sse_frame({"type": "TEXT_MESSAGE_CONTENT", "messageId": "m", "delta": "a\nb \u2603"})
    assert frame.startswith(b"data: ") and frame.endswith(b"\n\n") and frame.count(b"\n") == 2
    assert orjson.loads(frame[6:]) == {"type": "TEXT_MESSAGE_CONTENT", "messageId": "m", "delta": "a\nb \u2603"}
