"""Every kind of bad request gets its documented 4xx in the OpenAI error envelope, never a 500 (R-50)."""

from __future__ import annotations

from typing import Any

import orjson
import pytest
import trio

JSON = {"Content-Type": "application/json"}

CASES: list[tuple[str, str, str, dict[str, str], Any, int, str | None, str | None]] = [
    # (case, method, path, headers, body (bytes or JSON), status, param, code)
    ("not json", "POST", "/v1/responses", JSON, b"{nope", 400, None, "invalid_json"),
    ("not utf-8", "POST", "/v1/responses", JSON, b'{"input": "\xff"}', 400, None, "invalid_json"),
    ("empty body", "POST", "/v1/responses", JSON, b"", 400, None, "invalid_json"),
    (
        "text/plain",
        "POST",
        "/v1/responses",
        {"Content-Type": "text/plain"},
        b'{"input": "x"}',
        415,
        None,
        "unsupported_media_type",
    ),
    ("no content type", "POST", "/v1/responses", {}, b'{"input": "x"}', 415, None, "unsupported_media_type"),
    (
        "form",
        "POST",
        "/v1/responses",
        {"Content-Type": "application/x-www-form-urlencoded"},
        b"input=x",
        415,
        None,
        "unsupported_media_type",
    ),
    ("body is a list", "POST", "/v1/responses", JSON, [{"input": "x"}], 400, None, "invalid_type"),
    ("body is null", "POST", "/v1/responses", JSON, b"null", 400, None, "invalid_type"),
    ("no input", "POST", "/v1/responses", JSON, {"model": "m"}, 400, "input", "missing_required_parameter"),
    ("input object", "POST", "/v1/responses", JSON, {"input": {"role": "user"}}, 400, "input", "invalid_type"),
    (
        "bad role",
        "POST",
        "/v1/responses",
        JSON,
        {"input": [{"role": "robot", "content": "x"}]},
        400,
        "input[0].role",
        "invalid_value",
    ),
    (
        "bad part",
        "POST",
        "/v1/responses",
        JSON,
        {"input": [{"role": "user", "content": [{"type": "input_video"}]}]},
        400,
        "input[0].content[0].type",
        "invalid_value",
    ),
    (
        "bad item",
        "POST",
        "/v1/responses",
        JSON,
        {"input": [{"type": "mcp_call", "id": "x"}]},
        400,
        "input[0].type",
        "invalid_value",
    ),
    (
        "unknown reference",
        "POST",
        "/v1/responses",
        JSON,
        {"input": [{"type": "item_reference", "id": "msg_nope_0"}]},
        400,
        "input[0].id",
        "item_not_found",
    ),
    (
        "foreign reference",
        "POST",
        "/v1/responses",
        JSON,
        {"input": [{"type": "item_reference", "id": "x"}]},
        400,
        "input[0].id",
        "item_not_found",
    ),
    ("conversation not object", "POST", "/v1/conversations", JSON, [], 400, "body", "invalid_type"),
    ("conversation items text", "POST", "/v1/conversations", JSON, {"items": "hi"}, 400, "items", "invalid_type"),
    (
        "conversation bad item",
        "POST",
        "/v1/conversations",
        JSON,
        {"items": [{"type": "shell_call"}]},
        400,
        "items[0].type",
        "invalid_value",
    ),
    (
        "conversation unknown reference",
        "POST",
        "/v1/conversations",
        JSON,
        {"items": [{"type": "item_reference", "id": "msg_x_0"}]},
        400,
        "items[0].id",
        "item_not_found",
    ),
    (
        "conversation metadata",
        "POST",
        "/v1/conversations",
        JSON,
        {"metadata": {"k": 1}},
        400,
        "metadata.k",
        "invalid_type",
    ),
    (
        "conversation too many items",
        "POST",
        "/v1/conversations",
        JSON,
        {"items": [{"role": "user", "content": "x"}] * 21},
        400,
        "items",
        "array_above_max_length",
    ),
    (
        "conversation as text",
        "POST",
        "/v1/conversations",
        {"content-type": "text/plain"},
        b"x",
        415,
        None,
        "unsupported_media_type",
    ),
    ("unknown conversation", "GET", "/v1/conversations/conv_nope", {}, None, 404, None, None),
    ("unknown conversation items", "GET", "/v1/conversations/conv_nope/items", {}, None, 404, None, None),
    ("unknown conversation item", "DELETE", "/v1/conversations/conv_nope/items/msg_x_i0", {}, None, 404, None, None),
    ("conversation wrong method", "PUT", "/v1/conversations/conv_nope", {}, None, 405, None, "method_not_allowed"),
    ("list conversations", "GET", "/v1/conversations", {}, None, 405, None, "method_not_allowed"),
    (
        "long isolation header",
        "GET",
        "/v1/responses/resp_x",
        {"x-agent-user-id": "u" * 300},
        None,
        400,
        None,
        "invalid_header",
    ),
    (
        "bad metadata",
        "POST",
        "/v1/responses",
        JSON,
        {"input": "x", "metadata": {"k": 1}},
        400,
        "metadata.k",
        "invalid_type",
    ),
    (
        "bad tool",
        "POST",
        "/v1/responses",
        JSON,
        {"input": "x", "tools": [{"type": "file_search"}]},
        400,
        "tools[0].type",
        "unsupported_value",
    ),
    ("bad stream flag", "POST", "/v1/responses", JSON, {"input": "x", "stream": "yes"}, 400, "stream", "invalid_type"),
    (
        "malformed previous id",
        "POST",
        "/v1/responses",
        JSON,
        {"input": "x", "previous_response_id": "42"},
        400,
        "previous_response_id",
        "invalid_value",
    ),
    (
        "unknown previous id",
        "POST",
        "/v1/responses",
        JSON,
        {"input": "x", "previous_response_id": "resp_404"},
        400,
        "previous_response_id",
        "previous_response_not_found",
    ),
    (
        "bad conversation",
        "POST",
        "/v1/responses",
        JSON,
        {"input": "x", "conversation": ["c"]},
        400,
        "conversation",
        "invalid_type",
    ),
    ("malformed id", "GET", "/v1/responses/not-an-id", {}, None, 400, "response_id", "invalid_value"),
    ("unknown id", "GET", "/v1/responses/resp_unknown", {}, None, 404, None, None),
    ("delete unknown", "DELETE", "/v1/responses/resp_unknown", {}, None, 404, None, None),
    ("cancel malformed", "POST", "/v1/responses/x!y/cancel", {}, None, 400, "response_id", "invalid_value"),
    ("cancel unknown", "POST", "/v1/responses/resp_unknown/cancel", {}, None, 404, None, None),
    ("items unknown", "GET", "/v1/responses/resp_unknown/input_items", {}, None, 404, None, None),
    ("stream flag", "GET", "/v1/responses/resp_unknown?stream=maybe", {}, None, 404, None, None),
    ("list responses", "GET", "/v1/responses", {}, None, 405, None, "method_not_allowed"),
    ("put responses", "PUT", "/v1/responses", JSON, {"input": "x"}, 405, None, "method_not_allowed"),
    ("post one", "POST", "/v1/responses/resp_x", JSON, {}, 405, None, "method_not_allowed"),
    ("get cancel", "GET", "/v1/responses/resp_x/cancel", {}, None, 405, None, "method_not_allowed"),
    ("post items", "POST", "/v1/responses/resp_x/input_items", JSON, {}, 405, None, "method_not_allowed"),
    ("unknown path", "GET", "/v1/nothing", {}, None, 404, None, "unknown_url"),
    ("deep path", "POST", "/v1/responses/resp_x/cancel/now", {}, None, 404, None, "unknown_url"),
    ("trailing slash", "POST", "/v1/responses/", JSON, {"input": "x"}, 404, None, "unknown_url"),
]


async def send(served: Any, method: str, path: str, headers: dict[str, str], body: Any) -> Any:
    """`body`: None for no body, bytes as they are, anything else as JSON."""
    if body is None:
        return await served.http.request(method, path, headers=headers)
    if isinstance(body, bytes):
        return await served.http.request(method, path, headers=headers, content=body)
    return await served.http.request(method, path, headers=headers, json=body)


@pytest.mark.parametrize(
    ("case", "method", "path", "headers", "body", "status", "param", "code"), CASES, ids=[c[0] for c in CASES]
)
async def test_bad_requests_get_the_documented_error(
    serve,
    case: str,
    method: str,
    path: str,
    headers: dict[str, str],
    body: Any,
    status: int,
    param: str | None,
    code: str | None,
) -> None:
    async with serve() as served:
        resp = await send(served, method, path, headers, body)
    assert resp.status_code == status, resp.text
    assert resp.headers["content-type"] == "application/json"
    error = resp.json()["error"]
    assert set(error) == {"message", "type", "param", "code"} and error["message"]
    assert (error["param"], error["code"]) == (param, code)
    if status == 405:
        assert resp.headers["allow"]


async def test_bad_queries_on_a_real_response(serve) -> None:
    async with serve() as served:
        created = (await served.http.post("/v1/responses", json={"input": "x", "background": True})).json()
        rid = created["id"]
        answers = {
            "limit": await served.http.get(f"/v1/responses/{rid}/input_items?limit=1000"),
            "order": await served.http.get(f"/v1/responses/{rid}/input_items?order=sideways"),
            "after": await served.http.get(f"/v1/responses/{rid}/input_items?after=msg_nope"),
            "stream": await served.http.get(f"/v1/responses/{rid}?stream=maybe"),
            "starting_after": await served.http.get(f"/v1/responses/{rid}?stream=true&starting_after=soon"),
        }
        negative = await served.http.get(f"/v1/responses/{rid}?stream=true&starting_after=-2")
    for param, resp in answers.items():
        assert resp.status_code == 400, (param, resp.text)
        assert resp.json()["error"]["param"] == param
    assert negative.status_code == 400 and negative.json()["error"]["code"] == "integer_below_min_value"


async def test_an_oversized_body_is_413_in_the_envelope(serve) -> None:
    async with serve() as served:
        host, port = served.url.removeprefix("http://").split(":")
        head = (
            f"POST /v1/responses HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\n"
            f"Content-Length: {17 << 20}\r\n\r\n"
        ).encode()
        stream = await trio.open_tcp_stream(host, int(port))
        async with stream:
            await stream.send_all(head + b'{"input": "' + b"x" * 65536)  # the server answers before the rest
            received = b""
            while b"\r\n\r\n" not in received or not received.rstrip().endswith(b"}"):
                chunk = await stream.receive_some()
                assert chunk, received
                received += chunk
    status_line, _, rest = received.partition(b"\r\n")
    assert status_line.split()[1] == b"413"
    error = orjson.loads(rest.partition(b"\r\n\r\n")[2])["error"]
    assert error["type"] == "invalid_request_error" and error["message"]


async def test_r36_validation_happens_before_any_stream(serve) -> None:
    async with serve() as served:
        resp = await served.http.post("/v1/responses", json={"input": [], "stream": True})
    assert resp.status_code == 400 and resp.json()["error"]["code"] == "empty_array"
