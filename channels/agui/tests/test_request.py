"""`parse_run_input`: RunAgentInput -> the turn's input and options (pure)."""

from __future__ import annotations

import base64
from typing import Any

import pytest

from afactors.model import DataPart, FunctionResultPart, Message, TextPart, UriPart
from afactors_agui import AguiError, RunRequest, parse_run_input
from afactors_agui.request import new_input

from .conftest import assistant, run_input, user


def parse(messages: list[dict[str, Any]], **fields: Any) -> RunRequest:
    return parse_run_input({"threadId": "t", "runId": "r", "messages": messages, **fields})


def user_parts(*parts: dict[str, Any]) -> list[dict[str, Any]]:
    return [{"id": "u", "role": "user", "content": list(parts)}]


def image(source: dict[str, Any]) -> dict[str, Any]:
    return {"threadId": "t", "runId": "r", "messages": user_parts({"type": "image", "source": source})}


def test_a_body_built_by_the_reference_models_parses() -> None:
    body = run_input(
        "thread-1", [user("hi")], state={"a": 1}, tools=[{"name": "f", "description": "d"}],
        context=[{"description": "c", "value": "v"}], forwarded_props={"x": True}, parent_run_id="p",
    )  # fmt: skip
    run = parse_run_input(body)
    assert (run.thread_id, run.run_id, run.parent_run_id) == ("thread-1", body["runId"], "p")
    assert run.input == (Message("user", "hi"),)
    assert run.options() == {
        "thread_id": "thread-1", "run_id": body["runId"], "parent_run_id": "p", "client_state": {"a": 1},
        "tools": [{"type": "function", "name": "f", "description": "d"}],
        "context": [{"description": "c", "value": "v"}], "forwarded_props": {"x": True},
    }  # fmt: skip


def test_snake_case_names_are_read_and_camel_case_wins() -> None:
    run = parse_run_input({
        "thread_id": "snake", "run_id": "r", "parent_run_id": "p", "protocol_version": "1.0",
        "forwarded_props": 1, "messages": [
            {"id": "a", "role": "assistant", "tool_calls": [{"id": "c", "function": {"name": "f", "arguments": "{}"}}]},
            {"id": "t", "role": "tool", "tool_call_id": "c", "content": "done"},
        ],
    })  # fmt: skip
    assert (run.thread_id, run.parent_run_id, run.protocol_version, run.forwarded_props) == ("snake", "p", "1.0", 1)
    assert run.input == (Message("tool", (FunctionResultPart("c", "done"),)),)
    both = parse_run_input({"threadId": "camel", "thread_id": "snake", "runId": "r", "messages": []})
    assert both.thread_id == "camel"


def test_only_the_messages_after_the_last_assistant_message_are_input() -> None:
    history = [user("one"), assistant("answer one"), user("two"), user("three")]
    run = parse_run_input(run_input("t", history))
    assert [m.text for m in run.input] == ["two", "three"]
    assert parse_run_input(run_input("t", [*history, assistant("answer")])).input == ()
    assert parse_run_input(run_input("t", [])).input == ()
    assert new_input([Message("system", "s"), Message("user", "u")]) == (Message("system", "s"), Message("user", "u"))


def test_roles_map_to_conversation_messages_and_ui_only_roles_are_dropped() -> None:
    run = parse([
        {"id": "1", "role": "system", "content": "be brief"},
        {"id": "2", "role": "developer", "content": "dev note", "name": "ops"},
        {"id": "3", "role": "reasoning", "content": "thinking"},
        {"id": "4", "role": "activity", "activityType": "plan", "content": {}},
        {"id": "5", "role": "user", "content": "hi", "name": "ann"},
    ])  # fmt: skip
    assert run.input == (
        Message("system", "be brief"),
        Message("system", "dev note", name="ops"),
        Message("user", "hi", name="ann"),
    )


def test_assistant_tool_calls_and_tool_results() -> None:
    messages = [
        {"id": "a", "role": "assistant", "content": "calling", "toolCalls": [
            {"id": "c1", "type": "function", "function": {"name": "f", "arguments": '{"x": 1}'}}]},
        {"id": "t1", "role": "tool", "toolCallId": "c1", "content": "42"},
        {"id": "t2", "role": "tool", "toolCallId": "c2", "content": "", "error": "boom"},
        {"id": "t3", "role": "tool", "toolCallId": "c3", "content": [{"type": "text", "text": "a"},
                                                                      {"type": "text", "text": "b"}]},
    ]  # fmt: skip
    run = parse(messages)
    assert run.input == (
        Message("tool", (FunctionResultPart("c1", "42"),)),
        Message("tool", (FunctionResultPart("c2", "boom"),)),
        Message("tool", (FunctionResultPart("c3", "ab"),)),
    )
    history = parse([*messages[:1], {"id": "u", "role": "user", "content": "x"}])
    assert history.input == (Message("user", "x"),)
    only_calls = parse([{"id": "a", "role": "assistant", "toolCalls": [messages[0]["toolCalls"][0]]}, messages[1]])
    assert only_calls.input == (Message("tool", (FunctionResultPart("c1", "42"),)),)


def test_user_content_parts_of_both_generations() -> None:
    png = base64.b64encode(b"\x89PNG").decode()
    run = parse(user_parts(
        {"type": "text", "text": "look"},
        {"type": "image", "source": {"type": "data", "value": png, "mimeType": "image/png"}},
        {"type": "audio", "source": {"type": "url", "value": "https://x/a.mp3", "mimeType": "audio/mpeg"}},
        {"type": "video", "source": {"type": "url", "value": "https://x/v"}},
        {"type": "document", "source": {"type": "file", "value": "file-1", "provider": "openai",
                                         "mimeType": "application/pdf"}},
        {"type": "binary", "mimeType": "image/gif", "data": png, "filename": "g.gif"},
        {"type": "binary", "mimeType": "image/gif", "url": "https://x/g.gif"},
        {"type": "binary", "mimeType": "image/gif", "id": "upload-7"},
    ))  # fmt: skip
    assert run.input[0].contents == (
        TextPart("look"),
        DataPart(b"\x89PNG", "image/png"),
        UriPart("https://x/a.mp3", "audio/mpeg"),
        UriPart("https://x/v", "application/octet-stream"),
        UriPart("file-1", "application/pdf"),
        DataPart(b"\x89PNG", "image/gif", name="g.gif"),
        UriPart("https://x/g.gif", "image/gif"),
        UriPart("upload-7", "image/gif"),
    )


def test_tools_are_normalised_to_function_tools() -> None:
    run = parse([], tools=[
        {"name": "a", "description": "first", "parameters": {"type": "object", "properties": {}}},
        {"name": "b", "description": None},
    ])  # fmt: skip
    assert run.tools == (
        {"type": "function", "name": "a", "description": "first", "parameters": {"type": "object", "properties": {}}},
        {"type": "function", "name": "b", "description": ""},
    )


def test_absent_optional_fields_leave_the_options_minimal() -> None:
    run = parse_run_input({"threadId": "t", "runId": "r", "messages": [], "tools": None, "context": None})
    assert run.options() == {"thread_id": "t", "run_id": "r"}
    assert (run.state, run.protocol_version, run.forwarded_props, run.tools, run.context) == (None, None, None, (), ())
    assert parse_run_input({"threadId": "t", "runId": "r", "messages": [], "resume": []}).input == ()


BAD: list[tuple[object, str]] = [
    ("text", "the request body must be a JSON object (a RunAgentInput), got a string"),
    (None, "got null"),
    ({"runId": "r", "messages": []}, "'threadId' must be a string, got null"),
    ({"threadId": 1.5, "runId": "r", "messages": []}, "'threadId' must be a string, got a number"),
    ({"threadId": "t", "runId": "", "messages": []}, "'runId' must be 1 to 256 characters"),
    ({"threadId": "t", "runId": "r\x00", "messages": []}, "'runId' must be 1 to 256 characters without control"),
    ({"threadId": "t", "runId": "r", "parentRunId": 3, "messages": []}, "'parentRunId' must be a string"),
    ({"threadId": "t", "runId": "r", "protocolVersion": 1, "messages": []}, "'protocolVersion' must be a string"),
    ({"threadId": "t", "runId": "r"}, "missing 'messages'"),
    ({"threadId": "t", "runId": "r", "messages": "hi"}, "'messages' must be an array, got a string"),
    ({"threadId": "t", "runId": "r", "messages": [{"role": "user", "content": "x", "id": 5}]},
     "'messages[0].id' must be a string"),
    ({"threadId": "t", "runId": "r", "messages": [{"id": "m", "content": "x"}]}, "'messages[0].role' must be one of"),
    ({"threadId": "t", "runId": "r", "messages": [{"id": "m", "role": "user", "content": "x", "name": 1}]},
     "'messages[0].name' must be a string"),
    ({"threadId": "t", "runId": "r", "messages": [{"id": "m", "role": "user"}]},
     "'messages[0].content' must be a string or an array of content parts, got null"),
    ({"threadId": "t", "runId": "r", "messages": [{"id": "m", "role": "assistant", "content": 1}]},
     "'messages[0].content' must be a string"),
    ({"threadId": "t", "runId": "r", "messages": [{"id": "m", "role": "assistant", "toolCalls": {}}]},
     "'messages[0].toolCalls' must be an array"),
    ({"threadId": "t", "runId": "r", "messages": [{"id": "m", "role": "assistant", "toolCalls": [
        {"id": "c", "function": {"name": "f", "arguments": {"x": 1}}}]}]},
     "'messages[0].toolCalls[0].function.arguments' must be a string, got an object"),
    ({"threadId": "t", "runId": "r", "messages": [{"id": "m", "role": "tool", "toolCallId": "c", "content": None}]},
     "'messages[0].content' must be a string"),
    ({"threadId": "t", "runId": "r", "messages": [{"id": "m", "role": "tool", "toolCallId": "c", "content": "",
                                                   "error": 1}]}, "'messages[0].error' must be a string"),
    ({"threadId": "t", "runId": "r", "messages": user_parts("text")}, "'messages[0].content[0]' must be an object"),
    ({"threadId": "t", "runId": "r", "messages": user_parts({"type": "text"})},
     "'messages[0].content[0].text' must be a string"),
    ({"threadId": "t", "runId": "r", "messages": user_parts({"type": "image"})},
     "'messages[0].content[0].source' must be an object"),
    (image({"type": "ftp", "value": "x"}),
     "'messages[0].content[0].source.type' must be one of data, url, file"),
    (image({"type": "data", "value": "QQ=="}),
     "'messages[0].content[0].source.mimeType' must be a string"),
    (image({"type": "url"}),
     "'messages[0].content[0].source.value' must be a string"),
    ({"threadId": "t", "runId": "r", "messages": user_parts({"type": "binary", "data": "QQ=="})},
     "'messages[0].content[0].mimeType' must be a string"),
    ({"threadId": "t", "runId": "r", "messages": user_parts({"type": "binary", "mimeType": "a/b", "data": "Q"})},
     "'messages[0].content[0].data' must be base64"),
    ({"threadId": "t", "runId": "r", "messages": [], "tools": [{"name": "", "description": ""}]},
     "'tools[0].name' must not be empty"),
    ({"threadId": "t", "runId": "r", "messages": [], "tools": ["f"]}, "'tools[0]' must be an object"),
    ({"threadId": "t", "runId": "r", "messages": [], "tools": [{"name": "f", "description": 1}]},
     "'tools[0].description' must be a string"),
    ({"threadId": "t", "runId": "r", "messages": [], "context": "c"}, "'context' must be an array"),
    ({"threadId": "t", "runId": "r", "messages": [], "context": [{"value": "v"}]},
     "'context[0].description' must be a string"),
    ({"threadId": "t", "runId": "r", "messages": [], "resume": {}}, "'resume' must be an array"),
]  # fmt: skip


@pytest.mark.parametrize(("body", "message"), BAD)
def test_bad_input_names_the_field(body: object, message: str) -> None:
    with pytest.raises(AguiError) as caught:
        parse_run_input(body)
    assert (caught.value.status, caught.value.code) == (400, "invalid_request")
    assert message in caught.value.message
    assert caught.value.body() == {"error": {"code": "invalid_request", "message": caught.value.message}}


def test_the_turn_input_is_validated_in_full_even_where_it_is_history() -> None:
    with pytest.raises(AguiError, match=r"messages\[0\]\.role"):
        parse([{"id": "x", "role": "wizard", "content": "old"}, {"id": "a", "role": "assistant", "content": "ok"}])
    assert parse([{"id": "a", "role": "assistant", "toolCalls": [
        {"id": "c", "function": {"name": "f", "arguments": ""}}]}]).input == ()  # fmt: skip
    with_history = parse_run_input(run_input("t", [assistant(calls=[("c", "f", "")]), user("u")]))
    assert with_history.input == (Message("user", "u"),)
