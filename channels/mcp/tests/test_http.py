"""The Streamable HTTP endpoint on the wire (M-01..M-11): raw requests against a live host."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
import trio
from mcp_agents import ScriptedAgent
from wire import Serve, Wire, events, messages

import afactors
from afactors.testing import disk_full
from afactors_mcp import McpChannel, McpConfig


@pytest.fixture
async def wire(serve: Serve) -> AsyncIterator[Wire]:
    async with serve() as url, httpx.AsyncClient(timeout=10) as http:
        yield Wire(http, url)


def error_of(response: httpx.Response) -> dict[str, Any]:
    body = orjson.loads(response.content)
    assert response.headers["content-type"] == "application/json" and body["jsonrpc"] == "2.0"
    return body["error"]


async def test_m03_initialize_opens_a_session(wire: Wire) -> None:
    result = await wire.initialize()
    assert result["protocolVersion"] == "2025-11-25" and result["capabilities"] == {"tools": {"listChanged": False}}
    assert result["serverInfo"]["name"] == "afactors"
    assert wire.session and len(wire.session) == 32


async def test_m03_an_unknown_version_is_answered_with_ours_and_an_old_one_is_kept(wire: Wire) -> None:
    assert (await wire.initialize("2031-01-01"))["protocolVersion"] == "2025-11-25"
    assert (await wire.initialize("2025-03-26"))["protocolVersion"] == "2025-03-26"


async def test_m03_a_bad_initialize_is_invalid_params_and_opens_nothing(wire: Wire) -> None:
    response = await wire.request("initialize", {"capabilities": {}})
    assert response.status_code == 200 and "mcp-session-id" not in response.headers
    assert error_of(response)["code"] == -32602
    assert orjson.loads(response.content)["id"] == 1


async def test_m08_m09_list_ping_and_a_call_over_sse(wire: Wire) -> None:
    await wire.initialize()
    listed = await wire.request("tools/list")
    assert [tool["name"] for tool in orjson.loads(listed.content)["result"]["tools"]] == ["ask_agent"]
    assert orjson.loads((await wire.request("ping")).content)["result"] == {}
    response = await wire.call("hello world")
    assert response.headers["content-type"] == "text/event-stream"
    first, *rest = events(response.text)
    assert first == {"id": "1-0", "retry": "1000", "data": ""}  # the priming event comes first
    [result] = messages(response.text)
    assert result["id"] == 4 and rest[-1]["id"] == "1-1"
    assert result["result"]["content"] == [{"type": "text", "text": "turn 1: hello world"}]
    assert result["result"]["isError"] is False


async def test_m10_progress_notifications_carry_the_streamed_text(wire: Wire) -> None:
    await wire.initialize()
    params = {"name": "ask_agent", "arguments": {"prompt": "one two"}, "_meta": {"progressToken": "p1"}}
    *progress, result = messages((await wire.request("tools/call", params)).text)
    assert [m["method"] for m in progress] == ["notifications/progress"] * 3
    assert [m["params"]["message"] for m in progress] == ["turn 1:", " one", " two"]
    assert [m["params"]["progress"] for m in progress] == [7, 11, 15]
    assert {m["params"]["progressToken"] for m in progress} == {"p1"}
    assert result["result"]["structuredContent"]["result"] == "turn 1: one two"


async def test_m12_session_id_continues_a_conversation_across_mcp_sessions(wire: Wire) -> None:
    await wire.initialize()
    first = messages((await wire.call("first")).text)[-1]["result"]["structuredContent"]
    second = messages((await wire.call("second")).text)[-1]["result"]["structuredContent"]
    assert second == {"result": "turn 2: second", "session_id": first["session_id"]}
    await wire.initialize()  # a new MCP session has a conversation of its own ...
    assert messages((await wire.call("fresh")).text)[-1]["result"]["structuredContent"]["result"] == "turn 1: fresh"
    again = messages((await wire.call("third", session_id=first["session_id"])).text)[-1]["result"]
    assert again["structuredContent"]["result"] == "turn 3: third"  # ... but can continue the first by its id
    named = messages((await wire.call("mine", session_id="my-chat")).text)[-1]["result"]["structuredContent"]
    assert named == {"result": "turn 1: mine", "session_id": "my-chat"}


async def test_m09_a_failing_turn_is_a_tool_error_not_a_jsonrpc_error(wire: Wire) -> None:
    await wire.initialize()
    [result] = messages((await wire.call("please fail")).text)
    assert result["result"]["isError"] is True and "asked to fail" in result["result"]["content"][0]["text"]


@pytest.mark.parametrize(
    ("arguments", "fragment"),
    [({"name": "nope", "arguments": {"prompt": "x"}}, "unknown tool"),
     ({"name": "ask_agent", "arguments": {}}, "prompt is required"),
     ({"name": "ask_agent", "arguments": {"prompt": "x", "session_id": "no spaces"}}, "session_id")],
)  # fmt: skip
async def test_m09_unknown_tools_and_bad_arguments_are_invalid_params(
    wire: Wire, arguments: dict[str, Any], fragment: str
) -> None:
    await wire.initialize()
    response = await wire.request("tools/call", arguments)
    assert response.status_code == 200 and error_of(response)["code"] == -32602
    assert fragment in error_of(response)["message"]


async def test_unknown_methods_are_method_not_found(wire: Wire) -> None:
    await wire.initialize()
    for method in ("resources/list", "prompts/list", "tools/unknown"):
        response = await wire.request(method)
        assert response.status_code == 200 and error_of(response)["code"] == -32601


async def test_m04_notifications_and_client_answers_are_accepted_with_202(wire: Wire) -> None:
    await wire.initialize()
    for body in ({"jsonrpc": "2.0", "method": "notifications/whatever"},
                 {"jsonrpc": "2.0", "method": "notifications/cancelled", "params": {"requestId": 99}},
                 {"jsonrpc": "2.0", "id": 5, "result": {}}):  # fmt: skip
        response = await wire.post(body)
        assert (response.status_code, response.content) == (202, b"")


@pytest.mark.parametrize(
    ("body", "headers", "status", "code"),
    [
        (b"{oops", {}, 400, -32700),
        (b'[{"jsonrpc":"2.0","id":1,"method":"ping"}]', {}, 400, -32600),
        (b'{"jsonrpc":"2.0","id":1}', {}, 400, -32600),
        (b'{"jsonrpc":"2.0","id":1,"method":"ping","params":7}', {}, 400, -32602),
        (b'{"jsonrpc":"2.0","id":1,"method":"ping"}', {"accept": "application/json"}, 406, -32600),
        (b'{"jsonrpc":"2.0","id":1,"method":"ping"}', {"accept": ""}, 406, -32600),
        (b'{"jsonrpc":"2.0","id":1,"method":"ping"}', {"content_type": "text/plain"}, 415, -32600),
        (b'{"jsonrpc":"2.0","id":1,"method":"ping"}', {"origin": "http://evil.example.com"}, 403, -32600),
        (b'{"jsonrpc":"2.0","id":1,"method":"ping"}', {"mcp_session_id": None}, 400, -32600),
        (b'{"jsonrpc":"2.0","id":1,"method":"ping"}', {"mcp_session_id": "f" * 32}, 404, -32600),
        (b'{"jsonrpc":"2.0","id":1,"method":"ping"}', {"mcp_session_id": "bad id"}, 404, -32600),
        (b'{"jsonrpc":"2.0","id":1,"method":"ping"}', {"mcp_protocol_version": "1999-01-01"}, 400, -32600),
    ],
)
async def test_every_bad_post_gets_its_status_and_a_jsonrpc_error(
    wire: Wire, body: bytes, headers: dict[str, str | None], status: int, code: int
) -> None:
    await wire.initialize()
    response = await wire.post(body, **headers)
    assert response.status_code == status, response.text
    assert error_of(response)["code"] == code


async def test_m05_a_missing_protocol_version_header_is_accepted(wire: Wire) -> None:
    await wire.initialize()
    assert (await wire.request("ping", mcp_protocol_version=None)).status_code == 200


async def test_m01_loopback_origins_are_accepted(wire: Wire) -> None:
    await wire.initialize()
    for origin in ("http://localhost:6274", "http://127.0.0.1", "http://[::1]:9"):
        assert (await wire.request("ping", origin=origin)).status_code == 200


async def test_m01_configured_origins_are_accepted(serve: Serve) -> None:
    async with serve(McpConfig(allowed_origins=["https://app.example.com"])) as url, httpx.AsyncClient() as http:
        wire = Wire(http, url)
        await wire.initialize()
        assert (await wire.request("ping", origin="https://app.example.com")).status_code == 200
        assert (await wire.request("ping", origin="https://other.example.com")).status_code == 403


async def test_server_discover_is_refused_so_newer_clients_fall_back(wire: Wire) -> None:
    response = await wire.request("server/discover", {"_meta": {}}, mcp_protocol_version="2026-07-28")
    assert response.status_code == 200 and error_of(response)["code"] == -32601
    assert error_of(response)["data"]["supported"][-1] == "2025-11-25"


async def test_m06_delete_ends_the_session(wire: Wire) -> None:
    await wire.initialize()
    response = await wire.http.delete(wire.url, headers=wire.headers())
    assert response.status_code == 200
    for again in (await wire.request("ping"), await wire.http.delete(wire.url, headers=wire.headers())):
        assert again.status_code == 404 and "Session not found" in error_of(again)["message"]
    assert (await wire.http.delete(wire.url, headers=wire.headers(mcp_session_id=None))).status_code == 400


async def test_other_http_methods_are_405(wire: Wire) -> None:
    for method in ("PUT", "PATCH"):
        response = await wire.http.request(method, wire.url, headers=wire.headers())
        assert response.status_code == 405 and response.headers["allow"] == "GET, POST, DELETE"
        assert error_of(response)["code"] == -32600


async def test_m07_get_opens_one_server_stream_per_session(wire: Wire) -> None:
    await wire.initialize()
    assert (await wire.http.get(wire.url, headers=wire.headers(accept="application/json"))).status_code == 406
    assert (await wire.http.get(wire.url, headers=wire.headers(mcp_session_id=None))).status_code == 400
    async with wire.http.stream("GET", wire.url, headers=wire.headers(accept="text/event-stream")) as stream:
        assert stream.status_code == 200 and stream.headers["content-type"] == "text/event-stream"
        lines = stream.aiter_lines()
        assert [await anext(lines) for _ in range(3)] == ["id: 1-0", "retry: 1000", "data: "]
        second = await wire.http.get(wire.url, headers=wire.headers(accept="text/event-stream"))
        assert second.status_code == 409 and error_of(second)["code"] == -32600
        await wire.http.delete(wire.url, headers=wire.headers())  # ending the session ends its stream
        assert [line async for line in lines] == [""]


async def test_m07_head_is_405_and_leaves_no_stream_open(wire: Wire) -> None:
    await wire.initialize()
    head = await wire.http.head(wire.url, headers=wire.headers(accept="text/event-stream"))
    assert head.status_code == 405 and head.headers["allow"] == "GET, POST, DELETE"
    async with wire.http.stream("GET", wire.url, headers=wire.headers(accept="text/event-stream")) as stream:
        assert stream.status_code == 200


async def test_m07_last_event_id_replays_a_response_stream(wire: Wire) -> None:
    await wire.initialize()
    params = {"name": "ask_agent", "arguments": {"prompt": "a b"}, "_meta": {"progressToken": 1}}
    original = messages((await wire.request("tools/call", params)).text)
    replayed = await wire.http.get(wire.url, headers=wire.headers(last_event_id="1-2"))
    assert replayed.status_code == 200
    assert messages(replayed.text) == original[2:]
    assert [e["id"] for e in events(replayed.text)] == ["1-3", "1-4"]  # no second priming event
    for unknown in ("9-1", "garbage"):
        refused = await wire.http.get(wire.url, headers=wire.headers(last_event_id=unknown))
        assert refused.status_code == 400 and "cannot resume" in error_of(refused)["message"]


async def test_m11_cancelled_stops_the_turn_and_sends_no_result(wire: Wire) -> None:
    await wire.initialize()
    params = {"name": "ask_agent", "arguments": {"prompt": "hold on", "session_id": "c1"},
              "_meta": {"progressToken": "t"}}  # fmt: skip
    body = {"jsonrpc": "2.0", "id": "call-1", "method": "tools/call", "params": params}
    async with wire.http.stream("POST", wire.url, content=orjson.dumps(body), headers=wire.headers()) as stream:
        lines = stream.aiter_lines()
        async for line in lines:
            if line.startswith("data: {"):
                assert orjson.loads(line[6:])["params"]["message"] == "holding"
                break
        duplicate = await wire.post(body)  # the same id while it runs
        assert error_of(duplicate)["code"] == -32600
        cancelled = await wire.notify("notifications/cancelled", {"requestId": "call-1", "reason": "user"})
        assert cancelled.status_code == 202
        with trio.fail_after(5):
            rest = [line async for line in lines]
    assert not any(line.startswith("data: {") for line in rest)  # the stream ends without a result
    after = messages((await wire.call("next", session_id="c1")).text)[-1]["result"]
    assert after["structuredContent"]["result"] == "turn 1: next"  # nothing of the cancelled turn was kept


async def test_api_keys_scope_sessions_to_their_tenant(serve: Serve) -> None:
    async with serve(api_keys=["key-a", "key-b"]) as url, httpx.AsyncClient() as http:
        wire = Wire(http, url)
        refused = await wire.request("initialize", {"protocolVersion": "2025-11-25"})
        assert refused.status_code == 401 and refused.headers["www-authenticate"] == "Bearer"
        assert error_of(refused)["code"] == -32600
        response = await wire.request("initialize", {"protocolVersion": "2025-11-25"}, authorization="Bearer key-a")
        wire.session = response.headers["mcp-session-id"]
        assert (await wire.request("ping", authorization="Bearer key-a")).status_code == 200
        assert (await wire.request("ping", authorization="Bearer key-b")).status_code == 404


@pytest.mark.filterwarnings(  # httpx drops its upload iterator when the server answers before reading it all
    "ignore:Exception ignored in. <async_generator object ByteStream:pytest.PytestUnraisableExceptionWarning"
)
async def test_a_body_over_the_size_limit_is_413(wire: Wire) -> None:
    await wire.initialize()
    response = await wire.post(b'{"jsonrpc":"2.0","id":1,"method":"ping","params":{"x":"' + b"x" * (17 << 20) + b'"}}')
    assert response.status_code == 413 and error_of(response)["code"] == -32600


async def test_m07_a_dropped_call_stream_is_resumed_and_its_turn_goes_on(wire: Wire) -> None:
    await wire.initialize()
    params = {"name": "ask_agent", "arguments": {"prompt": "delay 0.3 then answer"}}
    body = orjson.dumps({"jsonrpc": "2.0", "id": 7, "method": "tools/call", "params": params})
    url = httpx.URL(wire.url)
    head = "".join(f"{name}: {value}\r\n" for name, value in wire.headers().items())
    raw = f"POST {url.path} HTTP/1.1\r\nhost: {url.host}\r\n{head}content-length: {len(body)}\r\n\r\n"
    with trio.fail_after(10):  # a raw socket, so the client can vanish right after the priming event
        connection = await trio.open_tcp_stream(url.host, url.port or 80)
        async with connection:
            await connection.send_all(raw.encode() + body)
            received = b""
            while b"id: 1-0" not in received:
                received += await connection.receive_some()
        resumed = await wire.http.get(wire.url, headers=wire.headers(last_event_id="1-0"))
    [result] = messages(resumed.text)
    assert result["id"] == 7 and result["result"]["content"][0]["text"] == "turn 1: delay 0.3 then answer"


async def test_an_idle_session_expires(serve: Serve) -> None:
    async with serve(McpConfig(session_idle_timeout=0.2)) as url, httpx.AsyncClient() as http:
        wire = Wire(http, url)
        await wire.initialize()
        statuses = []
        for _ in range(30):  # each request touches the session, so pause longer than the timeout between them
            statuses.append((await wire.request("tools/list")).status_code)
            if statuses[-1] != 200:
                break
            await trio.sleep(0.3)
        assert statuses[-1] == 404 and set(statuses[:-1]) <= {200}


async def test_at_max_sessions_the_least_recently_used_one_is_dropped(serve: Serve) -> None:
    async with serve(McpConfig(max_sessions=2)) as url, httpx.AsyncClient() as http:
        wires = [Wire(http, url) for _ in range(3)]
        for wire in wires:
            await wire.initialize()
        assert [(await wire.request("ping")).status_code for wire in wires] == [404, 200, 200]


async def test_m09_a_full_disk_is_a_tool_error_that_says_to_retry_later(state_dir: Path) -> None:
    channel = McpChannel()
    async with (
        afactors.open_host(ScriptedAgent(), channels=[channel], state_dir=state_dir, port=0) as host,
        httpx.AsyncClient(timeout=10) as http,
    ):
        wire = Wire(http, host.urls[0] + channel.config.path)
        await wire.initialize()
        disk_full(host.store)
        [full] = messages((await wire.call("hello")).text)
        disk_full(host.store, False)
        [after] = messages((await wire.call("hello")).text)
    assert full["result"]["isError"] is True and "disk" in full["result"]["content"][0]["text"]
    assert after["result"]["content"] == [{"type": "text", "text": "turn 1: hello"}]
