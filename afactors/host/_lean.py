"""`LeanFront`: the ASGI app hypercorn serves; hot routes' `lean` views run here, everything else goes to Quart.

Per request Quart builds a request context, matches the URL map, opens a session, sends signals and wraps the
response; on a hot route that is a large part of the work (see docs/performance.md). A `Route.lean` view skips it
for plain requests (its answer whole, or streamed chunk by chunk): a static rule, a method the route takes, a
`Content-Length` within `max_body_bytes` and the whole body arriving within `LEAN_BODY_WAIT`. Anything else (no
length, chunked, too large, slow, undecodable headers, a view that hands the request back) is replayed to Quart,
body included, so the limits' answers (413, 408) and every other behaviour stay Quart's. As under quart-trio, a
client that disconnects cancels its view.
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
        if found is None or scope["method"] not in found[0]:
            await self.app(scope, receive, send)
            return
        read: deque[Message] = deque()  # what the lean path received, replayed to Quart if it hands over

        async def replay() -> Message:
            return read.popleft() if read else await receive()

        request = await self._read(scope, receive, read)
        if request is None or not await self._serve(found[1], request, receive, send, read):
            await self.app(scope, replay, send)

    async def _read(self, scope: Message, receive: Receive, read: deque[Message]) -> LeanRequest | None:
        """The whole request if it is plain, else None; every message received is kept in `read`."""
        try:
            headers = tuple((key.decode(), value.decode()) for key, value in scope["headers"])
        except UnicodeDecodeError:
            return None
        length = next((value for key, value in headers if key == "content-length"), None)
        if length is None or not length.isdigit() or int(length) > self.max_body_bytes:
            return None
        body = bytearray()
        with trio.move_on_after(LEAN_BODY_WAIT):
            while True:
                message = await receive()
                read.append(message)
                if message["type"] != "http.request":
                    return None
                body += message.get("body", b"")
                if len(body) > self.max_body_bytes:
                    return None
                if not message.get("more_body", False):
                    read.clear()
                    return LeanRequest(scope["method"], scope["path"], headers, bytes(body))
        return None

    async def _serve(
        self, view: LeanView, request: LeanRequest, receive: Receive, send: Send, read: deque[Message]
    ) -> bool:
        """Run `view`: True once it has answered (or its client went away), False if it handed the request back
        (then `read` holds the body again, and whatever else arrived meanwhile)."""
        answered = False
        async with trio.open_nursery() as nursery:

            async def until_disconnect() -> None:
                while True:
                    message = await receive()
                    read.append(message)
                    if message["type"] == "http.disconnect":
                        nursery.cancel_scope.cancel()
                        return

            nursery.start_soon(until_disconnect)
            current = current_request.set(request)
            try:
                response = await view(request)
            except Exception:
                log.exception("lean view %s %s failed", request.method, request.path)
                response = LeanResponse(500, (*_JSON_HEADERS, ("content-length", str(len(_ERROR)))), _ERROR)
            finally:
                current_request.reset(current)
            if response is not None:
                headers = [(key.encode(), value.encode()) for key, value in response.headers]
                await send({"type": "http.response.start", "status": response.status, "headers": headers})
                if response.stream is None:
                    await send({"type": "http.response.body", "body": response.body, "more_body": False})
                else:
                    await _stream(response, send)
                answered = True
            nursery.cancel_scope.cancel()
        if answered or (read and read[-1]["type"] == "http.disconnect"):
            return True
        read.appendleft({"type": "http.request", "body": request.body, "more_body": False})
        return False


async def _stream(response: LeanResponse, send: Send) -> None:
    """Send a streamed response's body: `body`, then each chunk of `stream` as it comes, then the end."""
    assert response.stream is not None
    if response.body:
        await send({"type": "http.response.body", "body": response.body, "more_body": True})
    async for chunk in response.stream:
        await send({"type": "http.response.body", "body": chunk, "more_body": True})
    await send({"type": "http.response.body", "body": b"", "more_body": False})
