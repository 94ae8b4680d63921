"""The stateless 2026-07-28 revision (M-20..M-22): the envelope ladder as pure functions, then on the wire."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import orjson
import pytest
from wire import ACCEPT_BOTH, Serve, messages

from afactors_mcp import McpConfig, ServerInfo, ToolSpec
from afactors_mcp.jsonrpc import Request, RpcError
from afactors_mcp.modern import (
    CAPABILITIES_KEY,
    HEADER_MISMATCH,
    SERVER_INFO_KEY,
    UNSUPPORTED_VERSION,
    VERSION_KEY,
    as_modern,
    check_envelope,
    discover_result,
    list_result,
    modern_status,
)

MODERN = "2026-07-28"
META = {VERSION_KEY: MODERN, CAPABILITIES_KEY: {}, "io.modelcontextprotocol/clientInfo": {"name": "t", "version": "1"}}


def headers_for(method: str, name: str | None = None, version: str = MODERN) -> dict[str, str]:
    found = {"mcp-protocol-version": version, "mcp-method": method}
    if name is not None:
        found["mcp-name"] = name
    return found


def test_a_good_envelope_names_its_version() -> None:
    request = Request(1, "tools/call", {"name": "ask_agent", "_meta": META})
    assert check_envelope(request, headers_for("tools/call", "ask_agent")) == MODERN
    assert check_envelope(request, headers_for("tools/call", "=?base64?YXNrX2FnZW50?=")) == MODERN


@pytest.mark.parametrize(
    ("params", "headers", "code", "fragment"),
    [
        ({}, headers_for("tools/list"), -32602, "params._meta must be an object"),
        ({"_meta": {VERSION_KEY: MODERN}}, headers_for("tools/list"), -32602, CAPABILITIES_KEY),
        ({"_meta": META}, headers_for("tools/list", version="2025-11-25"), HEADER_MISMATCH, "mcp-protocol-version"),
        ({"_meta": META}, headers_for("ping"), HEADER_MISMATCH, "mcp-method"),
        ({"_meta": META}, {"mcp-protocol-version": MODERN}, HEADER_MISMATCH, "mcp-method"),
        ({"_meta": {**META, VERSION_KEY: "2099-01-01"}}, headers_for("tools/list", version="2099-01-01"),
         UNSUPPORTED_VERSION, "Unsupported protocol version"),
    ],
)  # fmt: skip
def test_the_envelope_ladder(params: dict[str, Any], headers: dict[str, str], code: int, fragment: str) -> None:
    with pytest.raises(RpcError) as caught:
        check_envelope(Request(1, "tools/list", params), headers)
    assert (caught.value.status, caught.value.code) == (400, code) and fragment in caught.value.message


def test_a_mismatched_tool_name_header() -> None:
    request = Request(1, "tools/call", {"name": "ask_agent", "_meta": META})
    for header in ("other", None, "=?base64?!!?="):
        with pytest.raises(RpcError) as caught:
            check_envelope(request, {**headers_for("tools/call"), **({"mcp-name": header} if header else {})})
        assert caught.value.code == HEADER_MISMATCH


def test_an_unsupported_version_lists_ours() -> None:
    with pytest.raises(RpcError) as caught:
        check_envelope(Request(1, "x", {"_meta": {**META, VERSION_KEY: "v9"}}), headers_for("x", version="v9"))
    assert caught.value.data == {"supported": [MODERN], "requested": "v9"}


def test_statuses_by_code() -> None:
    assert [modern_status(c) for c in (-32700, -32600, -32602, -32020, -32022, -32601, -32603)] == [
        400, 400, 400, 400, 400, 404, 200
    ]  # fmt: skip
    assert as_modern(RpcError(200, -32602, "m", id=3)).status == 400
    assert as_modern(RpcError(503, -32603, "full")).status == 503


def test_discover_and_list_results_are_stamped() -> None:
    server = ServerInfo(name="me", version="2", instructions="hi")
    result = discover_result(server)
    assert result["supportedVersions"] == ["2024-11-05", "2025-03-26", "2025-06-18", "2025-11-25", MODERN]
    assert result["capabilities"] == {"tools": {"listChanged": False}} and result["instructions"] == "hi"
    assert result["resultType"] == "complete" and result["_meta"] == {SERVER_INFO_KEY: {"name": "me", "version": "2"}}
    listed = list_result(ToolSpec(), MODERN, {}, server)
    assert listed["tools"][0]["outputSchema"] and (listed["ttlMs"], listed["cacheScope"]) == (0, "private")


@pytest.fixture
async def http(serve: Serve) -> AsyncIterator[tuple[httpx.AsyncClient, str]]:
    async with serve(McpConfig(stateless=True)) as url, httpx.AsyncClient(timeout=10) as client:
        yield client, url


async def post(
    http: tuple[httpx.AsyncClient, str], method: str, params: dict[str, Any], **headers: str
) -> httpx.Response:
    client, url = http
    body = {"jsonrpc": "2.0", "id": 1, "method": method, "params": params}
    base = {"accept": ACCEPT_BOTH, "content-type": "application/json", **headers_for(method, params.get("name"))}
    return await client.post(url, content=orjson.dumps(body), headers={**base, **headers})


async def test_m20_discover_and_a_call_without_a_session(http: tuple[httpx.AsyncClient, str]) -> None:
    discovered = await post(http, "server/discover", {"_meta": META})
    assert discovered.status_code == 200 and "mcp-session-id" not in discovered.headers
    assert orjson.loads(discovered.content)["result"]["supportedVersions"][-1] == MODERN
    params = {"name": "ask_agent", "arguments": {"prompt": "hi there"}, "_meta": {**META, "progressToken": 3}}
    called = await post(http, "tools/call", params)
    *progress, result = messages(called.text)
    assert [m["params"]["message"] for m in progress] == ["turn 1:", " hi", " there"]
    assert result["result"]["resultType"] == "complete" and result["result"]["_meta"][SERVER_INFO_KEY]
    session_id = result["result"]["structuredContent"]["session_id"]
    params = {"name": "ask_agent", "arguments": {"prompt": "more", "session_id": session_id}, "_meta": META}
    [again] = messages((await post(http, "tools/call", params)).text)
    assert again["result"]["content"][0]["text"] == "turn 2: more"


@pytest.mark.parametrize(
    ("method", "params", "headers", "status", "code"),
    [
        ("tools/list", {}, {}, 400, -32602),
        ("tools/list", {"_meta": META}, {"mcp-method": "tools/call"}, 400, HEADER_MISMATCH),
        ("tools/call", {"name": "ask_agent", "arguments": {"prompt": "x"}, "_meta": META}, {"mcp-name": "x"}, 400,
         HEADER_MISMATCH),
        ("tools/call", {"name": "ask_agent", "arguments": {}, "_meta": META}, {}, 400, -32602),
        ("tools/call", {"name": "nope", "arguments": {"prompt": "x"}, "_meta": META}, {}, 400, -32602),
        ("ping", {"_meta": META}, {}, 404, -32601),
        ("resources/list", {"_meta": META}, {}, 404, -32601),
    ],
)  # fmt: skip
async def test_m21_bad_modern_requests(
    http: tuple[httpx.AsyncClient, str], method: str, params: dict[str, Any], headers: dict[str, str], status: int,
    code: int,
) -> None:  # fmt: skip
    response = await post(http, method, params, **headers)
    assert response.status_code == status and orjson.loads(response.content)["error"]["code"] == code


async def test_modern_get_and_delete_are_405_and_notifications_202(http: tuple[httpx.AsyncClient, str]) -> None:
    client, url = http
    for method in ("GET", "DELETE"):
        response = await client.request(method, url, headers={"accept": ACCEPT_BOTH, **headers_for("x")})
        assert response.status_code == 405
    note = await client.post(url, json={"jsonrpc": "2.0", "method": "notifications/x"}, headers={
        "accept": ACCEPT_BOTH, **headers_for("notifications/x")})  # fmt: skip
    assert note.status_code == 202


async def test_without_stateless_a_modern_request_is_refused(serve: Serve) -> None:
    async with serve() as url, httpx.AsyncClient() as client:
        body = {"jsonrpc": "2.0", "id": 1, "method": "tools/list", "params": {"_meta": META}}
        response = await client.post(url, json=body, headers={"accept": ACCEPT_BOTH, **headers_for("tools/list")})
        assert response.status_code == 400
        assert orjson.loads(response.content)["error"]["data"]["supported"][-1] == "2025-11-25"
