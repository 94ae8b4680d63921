"""`LeanFront`: which requests a route's lean view serves, and that every other one reaches Quart intact.

The ASGI app behind it is a recorder standing in for Quart (the part under test is the front, not Quart); the
requests are ASGI messages, as hypercorn delivers them.
"""

from __future__ import annotations

from typing import Any

import attrs
import trio
import trio.testing

from afactors.channel import LeanRequest, LeanResponse, Route
from afactors.host._lean import LEAN_BODY_WAIT, AppQueue, LeanFront

Message = dict[str, Any]


@attrs.define
class Behind:
    """The app behind the front: records each request it got, with its whole body, and answers 299."""

    got: list[tuple[str, bytes]] = attrs.field(factory=list)

    async def __call__(self, scope: Message, receive: Any, send: Any) -> None:
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body", False):
                break
        self.got.append((scope["method"], body))
        await send({"type": "http.response.start", "status": 299, "headers": []})
        await send({"type": "http.response.body", "body": b"quart"})


@attrs.define
class View:
    """A lean view: answers 200 with the body it got, or hands back (None) when told to."""

    hand_back: bool = False
    block: bool = False
    seen: list[LeanRequest] = attrs.field(factory=list)
    cancelled: bool = False

    async def __call__(self, request: LeanRequest) -> LeanResponse | None:
        self.seen.append(request)
        if self.block:
            try:
                await trio.sleep_forever()
            finally:
                self.cancelled = True
        if self.hand_back:
            return None
        return LeanResponse(200, (("content-type", "text/plain"),), b"lean:" + request.body)


def _front(view: View, behind: Behind, max_body: int = 100) -> LeanFront:
    async def quart_view() -> None:  # never called: the front only reads `lean` and the rule
        raise AssertionError

    routes = [Route("/hot", quart_view, methods=("POST",), lean=view), Route("/cold/<x>", quart_view, lean=view)]
    return LeanFront(behind, routes, max_body)


def _scope(path: str = "/hot", method: str = "POST", headers: list[tuple[bytes, bytes]] | None = None) -> Message:
    return {"type": "http", "method": method, "path": path, "headers": headers or []}


async def _call(front: LeanFront, scope: Message, messages: list[Message], *, then_wait: bool = False) -> list[Message]:
    """Run one request through the front; what it sent."""
    sent: list[Message] = []
    queue = AppQueue(len(messages) + 1)
    for message in messages:
        await queue.put(message)

    async def send(message: Message) -> None:
        sent.append(message)

    if not then_wait:
        await queue.put({"type": "http.disconnect"})
    await front(scope, queue.receive, send)
    return sent


def _length(n: int) -> list[tuple[bytes, bytes]]:
    return [(b"content-length", str(n).encode())]


async def test_a_plain_request_is_served_by_the_lean_view() -> None:
    view, behind = View(), Behind()
    sent = await _call(
        _front(view, behind),
        _scope(headers=[*_length(5), (b"x-two", b"a")]),
        [{"type": "http.request", "body": b"he", "more_body": True}, {"type": "http.request", "body": b"llo"}],
    )
    assert [m["type"] for m in sent] == ["http.response.start", "http.response.body"]
    assert sent[0]["status"] == 200 and sent[1]["body"] == b"lean:hello" and behind.got == []
    assert view.seen[0].header("x-two") == "a" and view.seen[0].header("X-TWO") == "a"  # ASGI names: lower case


async def test_requests_the_lean_view_does_not_take_reach_quart_with_their_body() -> None:
    cases = [
        _scope(method="GET", headers=_length(5)),  # a method the route does not take
        _scope(path="/cold/1", headers=_length(5)),  # a rule with a variable
        _scope(path="/other", headers=_length(5)),  # no lean route
        _scope(headers=[]),  # no length
        _scope(headers=_length(101)),  # over the body limit
        _scope(headers=[(b"content-length", b"5x")]),  # not a number
        _scope(headers=[*_length(5), (b"x-bad", b"\xff")]),  # a header that is not UTF-8
    ]
    for scope in cases:
        view, behind = View(), Behind()
        sent = await _call(_front(view, behind), scope, [{"type": "http.request", "body": b"hello"}])
        assert behind.got == [(scope["method"], b"hello")] and view.seen == [], scope
        assert sent[0]["status"] == 299


async def test_a_body_growing_past_the_limit_goes_to_quart_whole() -> None:
    view, behind = View(), Behind()
    chunks: list[Message] = [
        {"type": "http.request", "body": b"x" * 60, "more_body": True},
        {"type": "http.request", "body": b"y" * 60},
    ]
    await _call(_front(view, behind), _scope(headers=_length(10)), chunks)
    assert behind.got == [("POST", b"x" * 60 + b"y" * 60)] and view.seen == []


async def test_a_request_the_view_hands_back_reaches_quart_with_its_body() -> None:
    view, behind = View(hand_back=True), Behind()
    sent = await _call(_front(view, behind), _scope(headers=_length(5)), [{"type": "http.request", "body": b"hello"}])
    assert len(view.seen) == 1 and behind.got == [("POST", b"hello")] and sent[0]["status"] == 299


async def test_a_slow_body_is_left_to_quart_which_gets_all_of_it() -> None:
    view, behind = View(), Behind()
    front = _front(view, behind)
    sent: list[Message] = []
    queue = AppQueue(4)

    async def send(message: Message) -> None:
        sent.append(message)

    async with trio.open_nursery() as nursery:
        nursery.start_soon(front, _scope(headers=_length(5)), queue.receive, send)
        await queue.put({"type": "http.request", "body": b"he", "more_body": True})
        await trio.sleep(LEAN_BODY_WAIT * 2)
        await queue.put({"type": "http.request", "body": b"llo"})
    assert view.seen == [] and behind.got == [("POST", b"hello")]


async def test_a_client_that_goes_away_cancels_the_lean_view_and_gets_nothing() -> None:
    view, behind = View(block=True), Behind()
    sent = await _call(_front(view, behind), _scope(headers=_length(5)), [{"type": "http.request", "body": b"hello"}])
    assert view.cancelled and sent == [] and behind.got == []


async def test_a_client_that_goes_away_while_the_view_waits_cancels_it_and_the_connection_ends_normally() -> None:
    view, behind = View(block=True), Behind()
    queue = AppQueue(4)
    await queue.put({"type": "http.request", "body": b"hello"})
    sent: list[Message] = []

    async def send(message: Message) -> None:
        sent.append(message)

    async with trio.open_nursery() as nursery:
        nursery.start_soon(_front(view, behind), _scope(headers=_length(5)), queue.receive, send)
        await trio.testing.wait_all_tasks_blocked()
        assert view.seen and not view.cancelled  # waiting, and no task of the front's wakes for it
        await queue.put({"type": "http.disconnect"})
    assert view.cancelled and sent == [] and behind.got == []


async def test_under_a_server_without_an_app_queue_every_request_goes_to_quart() -> None:
    view, behind = View(), Behind()
    send_in, receive_out = trio.open_memory_channel[Message](2)
    send_in.send_nowait({"type": "http.request", "body": b"hello"})
    sent: list[Message] = []

    async def send(message: Message) -> None:
        sent.append(message)

    await _front(view, behind)(_scope(headers=_length(5)), receive_out.receive, send)
    assert view.seen == [] and behind.got == [("POST", b"hello")] and sent[0]["status"] == 299


async def test_a_lean_view_that_raises_is_a_json_500() -> None:
    async def broken(request: LeanRequest) -> LeanResponse | None:
        raise RuntimeError("bug")

    async def quart_view() -> None:
        raise AssertionError

    behind = Behind()
    front = LeanFront(behind, [Route("/hot", quart_view, lean=broken)], 100)
    sent = await _call(front, _scope(headers=_length(2)), [{"type": "http.request", "body": b"{}"}])
    assert sent[0]["status"] == 500 and b"internal_server_error" in sent[1]["body"] and behind.got == []


def _streaming(chunks: list[bytes], closed: list[bool], gate: trio.Event | None = None) -> Route:
    async def stream() -> Any:
        try:
            for chunk in chunks:
                if gate is not None and chunk == b"late":
                    await gate.wait()
                yield chunk
        finally:
            closed.append(True)

    async def streamed(request: LeanRequest) -> LeanResponse | None:
        return LeanResponse(200, (("content-type", "application/x-ndjson"),), b"first\n", stream())

    async def quart_view() -> None:
        raise AssertionError

    return Route("/hot", quart_view, lean=streamed)


async def test_a_streamed_lean_response_sends_its_body_then_each_chunk_then_the_end() -> None:
    closed: list[bool] = []
    front = LeanFront(Behind(), [_streaming([b"a\n", b"b\n"], closed)], 100)
    sent = await _call(front, _scope(headers=_length(2)), [{"type": "http.request", "body": b"{}"}], then_wait=True)
    assert sent[0]["type"] == "http.response.start" and sent[0]["status"] == 200
    assert [(m["body"], m["more_body"]) for m in sent[1:]] == [
        (b"first\n", True), (b"a\n", True), (b"b\n", True), (b"", False)
    ]  # fmt: skip
    assert closed == [True]


async def test_a_client_that_goes_away_mid_stream_stops_the_stream() -> None:
    closed: list[bool] = []
    gate = trio.Event()  # never set: the stream waits for the client to go away
    front = LeanFront(Behind(), [_streaming([b"a\n", b"late"], closed, gate)], 100)
    sent = await _call(front, _scope(headers=_length(2)), [{"type": "http.request", "body": b"{}"}])
    assert [m.get("body") for m in sent[1:]] == [b"first\n", b"a\n"][: len(sent) - 1]
    assert all(m.get("more_body", True) for m in sent[1:]) and closed == [True] and not gate.is_set()
