"""I-09 WebSocket endpoint, I-07 header pass-through and the root mount."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import suppress
from typing import Any

import orjson
import trio
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect

from afactors.model import TurnContext, Update
from afactors_invocations import InvocationsChannel


class Seen:
    """Answers "got <text>" in two deltas and keeps each turn's options."""

    def __init__(self) -> None:
        self.options: list[dict[str, Any]] = []

    async def run(self, ctx: TurnContext) -> AsyncIterator[Update]:
        self.options.append(dict(ctx.options))
        if ctx.messages[-1].text == "fail":
            raise RuntimeError("boom")
        yield Update(delta="got ")
        yield Update(delta=ctx.messages[-1].text)


def ws_url(client: Any, path: str) -> str:
    return str(client.base_url).replace("http://", "ws://").rstrip("/") + path


def talk(url: str, frames: list[str], headers: dict[str, str] | None = None) -> tuple[list[dict[str, Any]], int | None]:
    """Send each frame and read until its result or error; returns every frame received and the close code."""
    received: list[dict[str, Any]] = []
    code = None
    with connect(url, additional_headers=headers or {}, open_timeout=10) as socket:
        try:
            for frame in frames:
                socket.send(frame)
                while True:
                    message = orjson.loads(socket.recv(timeout=10))
                    received.append(message)
                    if message["type"] == "error":
                        with suppress(TimeoutError):  # bad input leaves the socket open; a failure closes it
                            socket.recv(timeout=0.5)
                    if message["type"] in ("result", "error"):
                        break
            socket.close()
        except ConnectionClosed as closed:
            code = closed.rcvd.code if closed.rcvd is not None else None
        if code is None and socket.close_code not in (None, 1000):
            code = socket.close_code
    return received, code


async def test_i09_websocket_streams_deltas_then_the_result(serve) -> None:
    target = Seen()
    async with serve(target) as client:
        frames, code = await trio.to_thread.run_sync(
            talk,
            ws_url(client, "/invocations_ws"),
            [
                '{"message": "hi", "session_id": "s1"}',
                "not json",
                '{"nothing": 1}',
                '{"message": "again", "session_id": "s1"}',
            ],
        )
    assert [f["type"] for f in frames] == ["delta", "delta", "result", "error", "error", "delta", "delta", "result"]
    assert frames[2]["result"]["response"] == "got hi" and frames[2]["session_id"] == "s1"
    assert frames[3]["error"]["code"] == "invalid_json" and frames[4]["error"]["code"] == "invalid_request"
    assert frames[2]["invocation_id"] != frames[7]["invocation_id"]  # one invocation per frame
    assert code is None


async def test_i09_websocket_closes_1011_when_the_handler_fails(serve) -> None:
    async with serve(Seen()) as client:
        frames, code = await trio.to_thread.run_sync(talk, ws_url(client, "/invocations_ws"), ['{"message": "fail"}'])
    assert frames[-1]["type"] == "error" and code == 1011


def refused(url: str) -> tuple[dict[str, Any], int | None]:
    """Connect with a wrong key: the server speaks first (an error frame), then closes."""
    with connect(url, additional_headers={"Authorization": "Bearer nope"}, open_timeout=10) as socket:
        first = orjson.loads(socket.recv(timeout=10))
        try:
            socket.recv(timeout=10)
        except ConnectionClosed as closed:
            return first, closed.rcvd.code if closed.rcvd is not None else None
    return first, None


async def test_i09_websocket_refuses_a_bad_key_with_1008(serve) -> None:
    async with serve(Seen(), api_keys=["k1"]) as client:
        frame, code = await trio.to_thread.run_sync(refused, ws_url(client, "/invocations_ws"))
    assert frame["error"]["code"] == "unauthorized" and code == 1008


async def test_i07_foundry_call_id_client_headers_and_traceparent_reach_the_target(serve) -> None:
    target = Seen()
    async with serve(target) as client:
        response = await client.post(
            "/invocations",
            json={"message": "hi"},
            headers={
                "x-agent-foundry-call-id": "call-1",
                "x-client-app": "mobile",
                "traceparent": "00-abc-def-01",
                "x-other": "not passed",
            },
        )
        bad = await client.post("/invocations", json={"message": "hi"}, headers={"x-client-app": "x" * 2000})
    assert response.status_code == 200
    assert target.options[0]["headers"] == {
        "x-agent-foundry-call-id": "call-1",
        "x-client-app": "mobile",
        "traceparent": "00-abc-def-01",
    }
    assert bad.status_code == 400 and bad.json()["error"]["code"] == "invalid_header"


async def test_root_mount_serves_invoke_poll_and_websocket(serve) -> None:
    async with serve(Seen(), channel=InvocationsChannel(path="")) as client:
        response = await client.post("/", json={"message": "hi", "background": True})
        assert response.status_code == 202
        invocation = response.json()["invocation_id"]
        with trio.fail_after(10):
            while (await client.get(f"/{invocation}")).json()["status"] != "completed":
                await trio.sleep(0.02)
        frames, _ = await trio.to_thread.run_sync(talk, ws_url(client, "/invocations_ws"), ['{"message": "x"}'])
        assert frames[-1]["result"]["response"] == "got x"
        assert (await client.get("/nothing/here")).status_code == 404
