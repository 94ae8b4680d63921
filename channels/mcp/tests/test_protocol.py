"""The MCP codec: versions, initialize, the tool's definition, call parsing and results (M-03, M-08..M-12)."""

from __future__ import annotations

import pytest

from afactors_mcp.jsonrpc import INVALID_PARAMS, RpcError
from afactors_mcp.protocol import (
    HANDSHAKE_VERSIONS,
    INPUT_SCHEMA,
    LATEST_VERSION,
    OUTPUT_SCHEMA,
    Hello,
    ServerInfo,
    ToolCall,
    ToolSpec,
    call_result,
    cancelled_request,
    initialize_result,
    list_tools_result,
    negotiate,
    parse_call,
    parse_initialize,
    progress_params,
)

TOOL = ToolSpec()


@pytest.mark.parametrize("version", HANDSHAKE_VERSIONS)
def test_a_spoken_version_is_echoed(version: str) -> None:
    assert negotiate(version) == version


@pytest.mark.parametrize("version", ["2026-07-28", "2099-01-01", "", "latest"])
def test_an_unknown_version_gets_our_latest(version: str) -> None:
    assert negotiate(version) == LATEST_VERSION == "2025-11-25"


def test_initialize_parses_version_and_client_name() -> None:
    params = {"protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "ide", "version": "1"}}
    assert parse_initialize(params) == Hello("2025-06-18", "ide")
    assert parse_initialize({"protocolVersion": "2025-11-25"}) == Hello("2025-11-25", None)


@pytest.mark.parametrize(
    "params",
    [{}, {"protocolVersion": 20251125}, {"protocolVersion": "2025-11-25", "capabilities": []},
     {"protocolVersion": "2025-11-25", "clientInfo": "ide"}],
)  # fmt: skip
def test_a_bad_initialize_is_invalid_params(params: dict) -> None:
    with pytest.raises(RpcError) as caught:
        parse_initialize(params)
    assert caught.value.code == INVALID_PARAMS


def test_initialize_result_advertises_only_tools() -> None:
    result = initialize_result("2025-11-25", ServerInfo(name="me", version="2", title="Me", instructions="be nice"))
    assert result == {
        "protocolVersion": "2025-11-25",
        "capabilities": {"tools": {"listChanged": False}},
        "serverInfo": {"name": "me", "version": "2", "title": "Me"},
        "instructions": "be nice",
    }
    assert "instructions" not in initialize_result("2025-11-25", ServerInfo())


def test_the_tool_definition_follows_the_version() -> None:
    new = list_tools_result(TOOL, "2025-11-25", {})["tools"][0]
    assert new["name"] == "ask_agent" and new["title"] == "Ask the agent"
    assert new["inputSchema"] == INPUT_SCHEMA and new["outputSchema"] == OUTPUT_SCHEMA
    assert INPUT_SCHEMA["required"] == ["prompt"] and set(INPUT_SCHEMA["properties"]) == {"prompt", "session_id"}
    old = list_tools_result(TOOL, "2025-03-26", {})["tools"][0]
    assert "outputSchema" not in old and "title" not in old and old["inputSchema"] == INPUT_SCHEMA


def test_a_cursor_is_never_valid() -> None:
    with pytest.raises(RpcError) as caught:
        list_tools_result(TOOL, LATEST_VERSION, {"cursor": "abc"})
    assert caught.value.code == INVALID_PARAMS
    assert list_tools_result(TOOL, LATEST_VERSION, {"cursor": None})["tools"]


@pytest.mark.parametrize("name", ["", "has space", "x" * 129, "semi;colon"])
def test_a_bad_tool_name_is_refused_at_configuration(name: str) -> None:
    with pytest.raises(ValueError, match="tool name"):
        ToolSpec(name=name)


def test_a_call_with_prompt_session_and_progress_token() -> None:
    params = {"name": "ask_agent", "arguments": {"prompt": "hi", "session_id": "s-1"}, "_meta": {"progressToken": 5}}
    assert parse_call(params, TOOL) == ToolCall("hi", "s-1", 5)
    assert parse_call({"name": "ask_agent", "arguments": {"prompt": "hi"}, "_meta": {}}, TOOL) == ToolCall("hi")
    assert parse_call({"name": "ask", "arguments": {"prompt": "x"}}, ToolSpec(name="ask")).prompt == "x"


@pytest.mark.parametrize(
    ("params", "fragment"),
    [
        ({"arguments": {"prompt": "x"}}, "needs the tool's name"),
        ({"name": "other", "arguments": {"prompt": "x"}}, "unknown tool 'other'"),
        ({"name": "ask_agent", "arguments": []}, "arguments must be an object"),
        ({"name": "ask_agent"}, "prompt is required"),
        ({"name": "ask_agent", "arguments": {"prompt": ""}}, "prompt is required"),
        ({"name": "ask_agent", "arguments": {"prompt": "  "}}, "prompt is required"),
        ({"name": "ask_agent", "arguments": {"prompt": 3}}, "prompt is required"),
        ({"name": "ask_agent", "arguments": {"prompt": "x", "extra": 1}}, "unknown argument(s) extra"),
        ({"name": "ask_agent", "arguments": {"prompt": "x", "session_id": 5}}, "session_id must be"),
        ({"name": "ask_agent", "arguments": {"prompt": "x", "session_id": ""}}, "session_id must be"),
        ({"name": "ask_agent", "arguments": {"prompt": "x", "session_id": "a/b"}}, "session_id must be"),
        ({"name": "ask_agent", "arguments": {"prompt": "x", "session_id": "s" * 129}}, "session_id must be"),
        ({"name": "ask_agent", "arguments": {"prompt": "x"}, "_meta": []}, "_meta must be an object"),
        ({"name": "ask_agent", "arguments": {"prompt": "x"}, "_meta": {"progressToken": 1.5}}, "progressToken"),
        ({"name": "ask_agent", "arguments": {"prompt": "x"}, "_meta": {"progressToken": True}}, "progressToken"),
    ],
)
def test_bad_calls_are_invalid_params(params: dict, fragment: str) -> None:
    with pytest.raises(RpcError) as caught:
        parse_call(params, TOOL)
    assert caught.value.code == INVALID_PARAMS and caught.value.status == 200
    assert fragment in caught.value.message


def test_results_carry_text_and_structured_content_from_2025_06_18() -> None:
    assert call_result("hello", "s1", "2025-11-25") == {
        "content": [{"type": "text", "text": "hello"}],
        "isError": False,
        "structuredContent": {"result": "hello", "session_id": "s1"},
    }
    assert call_result("bad", "s1", "2025-06-18", is_error=True)["isError"] is True
    assert "structuredContent" not in call_result("hello", "s1", "2024-11-05")


def test_progress_and_cancel_params() -> None:
    assert progress_params("t", 3, "abc") == {"progressToken": "t", "progress": 3, "message": "abc"}
    assert cancelled_request({"requestId": 4, "reason": "user"}) == 4
    assert cancelled_request({"requestId": "r"}) == "r"
    assert cancelled_request({}) is None
    assert cancelled_request({"requestId": True}) is None
    assert cancelled_request({"requestId": [1]}) is None
