"""`POST /v1/responses` served in front of Quart (the lean view) answers byte for byte as the Quart view does.

Each request goes on a fresh connection to two hosts, one with lean views (the default) and one with
`ServerLimits(lean=False)`; status, reason, headers in order and body must be equal once the parts that differ on
every run (the date, ids, timestamps) are masked.
"""

from __future__ import annotations

import re

import h11
import orjson
import pytest

from afactors.host import ServerLimits
from afactors.testing import raw_exchange

JSON = "application/json"
KEY = "Bearer key-a"

_MASKS = [
    (re.compile(rb"(resp|msg|rs|fc|conv)_[0-9a-f]{16,}"), rb"\1_*"),
    (re.compile(rb'"(created_at|completed_at)":\d+'), rb'"\1":*'),
]


def _masked(data: bytes) -> bytes:
    for pattern, replacement in _MASKS:
        data = pattern.sub(replacement, data)
    return data


async def _answer(url: str, method: str, body: bytes | None, headers: dict[str, str]) -> tuple[object, ...]:
    """One request on a fresh connection: the answer's status, reason, headers in order (date masked), body."""
    head = [(b"host", b"test"), *((name.encode(), value.encode()) for name, value in headers.items())]
    if body is not None:
        head.append((b"content-length", str(len(body)).encode()))
    elif method == "POST":  # no length: a chunked body, empty
        head.append((b"transfer-encoding", b"chunked"))
        body = b"0\r\n\r\n"
    response, data = await raw_exchange(
        url, h11.Request(method=method, target="/v1/responses", headers=head), body or b""
    )
    headers_seen = [(name, b"*" if name == b"date" else _masked(value)) for name, value in response.headers]
    return response.status_code, response.reason, headers_seen, _masked(data)


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
    ("chunked", "POST", None, {"Content-Type": JSON}),
    ("bad user header", "POST", _json({"input": "x"}), {"Content-Type": JSON, "x-agent-user-id": "é" * 3}),
    ("user header", "POST", _json({"input": "x"}), {"Content-Type": JSON, "x-agent-user-id": "u1"}),
]


@pytest.mark.parametrize(("case", "method", "body", "headers"), CASES, ids=[c[0] for c in CASES])
async def test_lean_and_quart_answer_alike(serve, case: str, method: str, body: bytes | None, headers) -> None:
    async with serve(api_keys=["key-a"]) as lean, serve(api_keys=["key-a"], limits=ServerLimits(lean=False)) as quart:
        for auth in ({"Authorization": KEY}, {}, {"Authorization": "Bearer wrong"}):
            answers = [await _answer(served.url, method, body, {**headers, **auth}) for served in (lean, quart)]
            assert answers[0] == answers[1], (case, auth)


async def test_a_stream_is_served_by_quart_alike(serve) -> None:
    body = _json({"input": "hello", "stream": True})
    async with serve() as lean, serve(limits=ServerLimits(lean=False)) as quart:
        answers = [await _answer(served.url, "POST", body, {"Content-Type": JSON}) for served in (lean, quart)]
    assert answers[0] == answers[1]
    assert (b"content-type", b"text/event-stream") in answers[0][2] and b"response.completed" in answers[0][3]
