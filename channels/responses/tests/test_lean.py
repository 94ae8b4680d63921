"""`POST /v1/responses` served in front of Quart (the lean view) answers byte for byte as the Quart view does.

Each request goes over a raw socket to two hosts, one with lean views (the default) and one with
`ServerLimits(lean=False)`; the raw responses must be equal once the parts that differ on every run (the date,
ids, timestamps) are masked.
"""

from __future__ import annotations

import re

import orjson
import pytest
import trio

from afactors.host import ServerLimits

JSON = "application/json"
KEY = "Bearer key-a"

_MASKS = [
    (re.compile(rb"^date: .*$", re.MULTILINE | re.IGNORECASE), b"date: *"),
    (re.compile(rb"(resp|msg|rs|fc|conv)_[0-9a-f]{16,}"), rb"\1_*"),
    (re.compile(rb'"(created_at|completed_at)":\d+'), rb'"\1":*'),
]


def _request(method: str, body: bytes | None, headers: dict[str, str]) -> bytes:
    lines = [f"{method} /v1/responses HTTP/1.1", "Host: test"]
    lines += [f"{name}: {value}" for name, value in headers.items()]
    if body is not None:
        lines.append(f"Content-Length: {len(body)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + (body or b"")


async def _exchange(url: str, raw: bytes) -> bytes:
    """Send one request on a fresh connection; the whole response (read until the server's length is met)."""
    host, port = url.removeprefix("http://").split(":")
    stream = await trio.open_tcp_stream(host, int(port))
    async with stream:
        await stream.send_all(raw)
        received = b""
        with trio.fail_after(10):
            while True:
                head, sep, body = received.partition(b"\r\n\r\n")
                length = re.search(rb"content-length: (\d+)", head, re.IGNORECASE)
                if sep and (raw.startswith(b"HEAD") or (length and len(body) >= int(length.group(1)))):
                    return received
                chunk = await stream.receive_some()
                assert chunk, received
                received += chunk


def _masked(raw: bytes) -> bytes:
    for pattern, replacement in _MASKS:
        raw = pattern.sub(replacement, raw)
    return raw


def _json(value: object) -> bytes:
    return orjson.dumps(value)


CASES: list[tuple[str, str, bytes | None, dict[str, str]]] = [
    ("a turn", "POST", _json({"model": "m", "input": "hello"}), {"Content-Type": JSON}),
    ("not stored", "POST", _json({"input": "hello", "store": False}), {"Content-Type": JSON}),
    ("background", "POST", _json({"input": "hello", "background": True}), {"Content-Type": JSON}),
    ("charset", "POST", _json({"input": "hi"}), {"Content-Type": "Application/JSON; charset=utf-8"}),
    ("not json", "POST", b"{nope", {"Content-Type": JSON}),
    ("empty body", "POST", b"", {"Content-Type": JSON}),
    ("text/plain", "POST", _json({"input": "x"}), {"Content-Type": "text/plain"}),
    ("no content type", "POST", _json({"input": "x"}), {}),
    ("body is a list", "POST", _json([{"input": "x"}]), {"Content-Type": JSON}),
    ("no input", "POST", _json({"model": "m"}), {"Content-Type": JSON}),
    ("bad role", "POST", _json({"input": [{"role": "robot", "content": "x"}]}), {"Content-Type": JSON}),
    ("unknown previous", "POST", _json({"input": "x", "previous_response_id": "resp_nope"}), {"Content-Type": JSON}),
    ("stream not a flag", "POST", _json({"input": "x", "stream": "yes"}), {"Content-Type": JSON}),
    ("GET with a body", "GET", _json({"input": "x"}), {"Content-Type": JSON}),
    ("PUT", "PUT", _json({"input": "x"}), {"Content-Type": JSON}),
    ("HEAD", "HEAD", None, {}),
    ("no length", "POST", None, {"Content-Type": JSON}),
    ("bad user header", "POST", _json({"input": "x"}), {"Content-Type": JSON, "x-agent-user-id": "é" * 3}),
    ("user header", "POST", _json({"input": "x"}), {"Content-Type": JSON, "x-agent-user-id": "u1"}),
]


@pytest.mark.parametrize(("case", "method", "body", "headers"), CASES, ids=[c[0] for c in CASES])
async def test_lean_and_quart_answer_alike(serve, case: str, method: str, body: bytes | None, headers) -> None:
    async with serve(api_keys=["key-a"]) as lean, serve(api_keys=["key-a"], limits=ServerLimits(lean=False)) as quart:
        for auth in ({"Authorization": KEY}, {}, {"Authorization": "Bearer wrong"}):
            request = _request(method, body, {**headers, **auth})
            answers = [_masked(await _exchange(served.url, request)) for served in (lean, quart)]
            assert answers[0] == answers[1], (case, auth)


async def test_a_stream_is_served_by_quart_alike(serve) -> None:
    body = _json({"input": "hello", "stream": True})
    raw = _request("POST", body, {"Content-Type": JSON})
    answers = []
    async with serve() as lean, serve(limits=ServerLimits(lean=False)) as quart:
        for served in (lean, quart):
            host, port = served.url.removeprefix("http://").split(":")
            stream = await trio.open_tcp_stream(host, int(port))
            async with stream:
                await stream.send_all(raw)
                received = b""
                with trio.fail_after(10):
                    while not received.endswith(b"\r\n0\r\n\r\n"):  # the last chunk
                        chunk = await stream.receive_some()
                        assert chunk, received
                        received += chunk
            answers.append(_masked(received))
    assert answers[0] == answers[1]
    assert b"content-type: text/event-stream" in answers[0]
