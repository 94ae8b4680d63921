"""`LeanFront`: the ASGI app hypercorn serves; hot routes' `lean` views run here, everything else goes to Quart.

Per request Quart builds a request context, matches the URL map, opens a session, sends signals and wraps the
response; on a hot route that is a large part of the work (see docs/performance.md). A `Route.lean` view skips it
for plain requests (its answer whole, or streamed chunk by chunk): a static rule, a method the route takes, a
`Content-Length` within `max_body_bytes` and the whole body arriving within `LEAN_BODY_WAIT`. Anything else (no
length, chunked, too large, slow, undecodable headers, a view that hands the request back) is replayed to Quart,
body included, so the limits' answers (413, 408) and every other behaviour stay Quart's. As under quart-trio, a
client that disconnects cancels its view: the server hands each request's messages over in an `AppQueue`, which
cancels the view's scope when the disconnect arrives (no task per request watching for it). Under a server that
does not (a plain ASGI `receive`), every request goes to Quart.
"""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Awaitable, Callable, Sequence
from contextvars import ContextVar
from typing import Any

import orjson
import trio

from afactors.channel import LeanRequest, LeanResponse, LeanView, Route

log = logging.getLogger("afactors.host")

Message = dict[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Any, Any, Any], Awaitable[None]]
"""An ASGI application: (scope, receive, send)."""

current_request: ContextVar[LeanRequest | None] = ContextVar("afactors_lean_request", default=None)
"""The request a lean view is handling in this task (what Quart's `request` is for its views), or None."""

LEAN_BODY_WAIT = 0.25
"""Seconds the lean path waits for a body before it hands the request to Quart (which applies `body_timeout`)."""

_JSON_HEADERS = (("content-type", "application/json"),)
_ERROR = orjson.dumps(
    {
        "error": {
            "message": "The server encountered an internal error and was unable to complete your request. Either "
            "the server is overloaded or there is an error in the application.",
            "type": "server_error",
            "code": "internal_server_error",
        }
    }
)


class AppQueue:
    """One request's ASGI messages from the server to the app (a bounded memory channel, as in hypercorn), which
    also cancels `on_disconnect` (a lean view's scope) the moment the client's disconnect is put in."""

    __slots__ = ("_receive", "_send", "disconnected", "on_disconnect")

    def __init__(self, size: float) -> None:
        self._send, self._receive = trio.open_memory_channel[Message](size)
        self.disconnected = False
        self.on_disconnect: trio.CancelScope | None = None

    async def put(self, message: Message) -> None:
        """The server's side: queue `message` for the app (waiting only while the queue is full: the server's task
        puts a request's messages one after the other, and the app finds them all there when it starts)."""
        if message["type"] == "http.disconnect":
            self.disconnected = True
            if self.on_disconnect is not None:
                self.on_disconnect.cancel()
        try:
            self._send.send_nowait(message)
        except trio.WouldBlock:
            await self._send.send(message)

    async def receive(self) -> Message:
        """The app's ASGI `receive`."""
        return await self._receive.receive()

    def receive_nowait(self) -> Message:
        """A message already queued, without a trip through the scheduler (`trio.WouldBlock` if none is)."""
        return self._receive.receive_nowait()

    def cancels(self, scope: trio.CancelScope | None) -> None:
        """Cancel `scope` when the client disconnects (at once if it has); None: stop watching."""
        self.on_disconnect = scope
        if scope is not None and self.disconnected:
            scope.cancel()


class LeanFront:
    """Serves the `lean` views of `routes` (static rules only) in front of `app`, within `max_body_bytes`."""

    def __init__(self, app: ASGIApp, routes: Sequence[Route], max_body_bytes: int) -> None:
        self.app = app
        self.max_body_bytes = max_body_bytes
        self.lean: dict[str, tuple[tuple[str, ...], LeanView]] = {
            route.rule: (route.methods, route.lean)
            for route in reversed(routes)  # the first route of a rule wins, as in Quart
            if route.lean is not None and not route.websocket and "<" not in route.rule
        }

    async def __call__(self, scope: Message, receive: Receive, send: Send) -> None:
        found = self.lean.get(scope.get("path", "")) if scope["type"] == "http" else None
        queue = getattr(receive, "__self__", None)
        if found is None or scope["method"] not in found[0] or not isinstance(queue, AppQueue):
            await self.app(scope, receive, send)
            return
        read: deque[Message] = deque()  # what the lean path received, replayed to Quart if it hands over

        async def replay() -> Message:
            return read.popleft() if read else await receive()

        request = await self._read(scope, queue, read)
        if request is not None:
            if await self._serve(found[1], request, queue, send):
                return
            read.append({"type": "http.request", "body": request.body, "more_body": False})  # handed back
        await self.app(scope, replay, send)

    async def _read(self, scope: Message, queue: AppQueue, read: deque[Message]) -> LeanRequest | None:
        """The whole request if it is plain, else None; every message received is kept in `read`."""
        try:
            headers = tuple((key.decode(), value.decode()) for key, value in scope["headers"])
        except UnicodeDecodeError:
            return None
        length = next((value for key, value in headers if key == "content-length"), None)
        if length is None or not length.isdigit() or int(length) > self.max_body_bytes:
            return None
        body = bytearray()
        deadline = trio.current_time() + LEAN_BODY_WAIT
        while True:
            try:
                message = queue.receive_nowait()
            except trio.WouldBlock:
                with trio.move_on_at(deadline) as waited:
                    message = await queue.receive()
                if waited.cancelled_caught:
                    return None
            read.append(message)
            if message["type"] != "http.request":
                return None
            body += message.get("body", b"")
            if len(body) > self.max_body_bytes:
                return None
            if not message.get("more_body", False):
                read.clear()
                return LeanRequest(scope["method"], scope["path"], headers, bytes(body))

    async def _serve(self, view: LeanView, request: LeanRequest, queue: AppQueue, send: Send) -> bool:
        """Run `view`: True once it has answered (or its client went away meanwhile), False if it handed the request
        back (then what arrived meanwhile is still in `queue`)."""
        with trio.CancelScope() as scope:
            queue.cancels(scope)
            current = current_request.set(request)
            try:
                response = await view(request)
            except Exception:
                log.exception("lean view %s %s failed", request.method, request.path)
                response = LeanResponse(500, (*_JSON_HEADERS, ("content-length", str(len(_ERROR)))), _ERROR)
            finally:
                current_request.reset(current)
            if response is None:
                queue.cancels(None)
                return False
            headers = [(key.encode(), value.encode()) for key, value in response.headers]
            await send({"type": "http.response.start", "status": response.status, "headers": headers})
            if response.stream is None:
                queue.cancels(None)  # the response is whole once this returns: the connection may end with it
                await send({"type": "http.response.body", "body": response.body, "more_body": False})
            else:
                await _stream(response, queue, send)
        queue.cancels(None)
        return True


async def _stream(response: LeanResponse, queue: AppQueue, send: Send) -> None:
    """Send a streamed response's body: `body`, then each chunk of `stream` as it comes, then the end."""
    assert response.stream is not None
    if response.body:
        await send({"type": "http.response.body", "body": response.body, "more_body": True})
    async for chunk in response.stream:
        await send({"type": "http.response.body", "body": chunk, "more_body": True})
    queue.cancels(None)
    await send({"type": "http.response.body", "body": b"", "more_body": False})
