"""The fake's HTTP transport: a small ASGI app for ``/bot<token>/<method>`` and ``/file/bot<token>/<path>``.

A plain ASGI callable rather than quart-trio: it has three routes, and served by hypercorn's trio worker
it avoids Quart's per-request cost (so the fake is not the bottleneck of a load test) and the
quart-trio/hypercorn shutdown bug described in stack.md §3.
"""

from __future__ import annotations

import mimetypes
import re
import traceback
from collections.abc import Awaitable, Callable
from typing import Any

import httpx
import orjson

from afactors_telegram.testing.errors import ApiError, bad_request, not_found, unauthorized
from afactors_telegram.testing.methods import RATE_LIMITED, BotApi, Reply, fetched_upload
from afactors_telegram.testing.params import Params, decode_body

Scope = dict[str, Any]
Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]

MAX_BODY = 50 * 1024 * 1024  # Telegram's upload limit for bots
_METHOD_PATH = re.compile(r"^/bot([^/]*)/([^/]*)/?$")
_FILE_PATH = re.compile(r"^/file/bot([^/]*)/(.+)$")
_TOKEN = re.compile(r"^[0-9]+:[A-Za-z0-9_-]+$")


class BotApiApp:
    """ASGI app serving one :class:`BotApi`. ``fetcher`` downloads ``http(s)://`` file sources."""

    def __init__(self, api: BotApi, fetcher: httpx.AsyncClient) -> None:
        self.api = api
        self.fetcher = fetcher
        self.internal_errors: list[str] = []

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await _lifespan(receive, send)
            return
        if scope["type"] != "http":
            return
        path = scope["path"]
        if match := _METHOD_PATH.match(path):
            status, body = await self._method(match.group(1), match.group(2), scope, receive)
            await _respond(send, status, orjson.dumps(body), b"application/json")
        elif match := _FILE_PATH.match(path):
            await self._file(match.group(1), match.group(2), send)
        else:
            await _respond(send, 404, orjson.dumps(not_found().envelope()), b"application/json")

    def _check_token(self, token: str) -> None:
        if not _TOKEN.match(token):
            raise not_found()  # Telegram answers 404 to malformed tokens
        if token != self.api.token:
            raise unauthorized()

    async def _method(self, token: str, method: str, scope: Scope, receive: Receive) -> tuple[int, dict[str, Any]]:
        params = Params({})
        try:
            self._check_token(token)
            body = await _read_body(receive)
            headers = dict(scope["headers"])
            content_type = headers.get(b"content-type", b"").decode("latin-1")
            params = decode_body(content_type, body, scope.get("query_string", b"").decode("latin-1"))
            params = await self._fetch_url_sources(method, params)
            if (gate := self.api.gate) is not None and method.lower() in RATE_LIMITED:
                await gate.passed(self.api.world.changes.poke)
            reply: Reply = await self.api.call_async(method, params)
            status, response = 200, reply.envelope()
        except ApiError as error:
            status, response = error.error_code, error.envelope()
        except Exception:  # a bug in the fake: answer 500 and make the fake's context manager fail loudly
            self.internal_errors.append(traceback.format_exc())
            status, response = 500, {"ok": False, "error_code": 500, "description": "Internal Server Error"}
        self.api.record(method, params, status, response)
        return status, response

    async def _fetch_url_sources(self, method: str, params: Params) -> Params:
        source = params.raw("photo")
        if method.lower() != "sendphoto" or not isinstance(source, str) or not re.match(r"^https?://", source):
            return params
        try:
            answer = await self.fetcher.get(source)
        except httpx.HTTPError:
            raise bad_request("failed to get HTTP URL content") from None
        if not answer.is_success:
            raise bad_request("failed to get HTTP URL content")
        upload = fetched_upload(source, answer.content, answer.headers.get("content-type", ""))
        return Params(params.values, {**params.files, "photo": upload})

    async def _file(self, token: str, file_path: str, send: Send) -> None:
        try:
            self._check_token(token)
        except ApiError as error:
            await _respond(send, error.error_code, orjson.dumps(error.envelope()), b"application/json")
            return
        stored = self.api.world.files_by_path.get(file_path)
        if stored is None:
            await _respond(send, 404, orjson.dumps(not_found().envelope()), b"application/json")
            return
        kind = mimetypes.guess_type(file_path)[0] or "application/octet-stream"
        await _respond(send, 200, stored.data, kind.encode("latin-1"))


async def _read_body(receive: Receive) -> bytes:
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            break
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > MAX_BODY:
            raise ApiError(413, "Request Entity Too Large")
        chunks.append(chunk)
        if not message.get("more_body", False):
            break
    return b"".join(chunks)


async def _respond(send: Send, status: int, body: bytes, content_type: bytes) -> None:
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [(b"content-type", content_type), (b"content-length", str(len(body)).encode())],
        }
    )
    await send({"type": "http.response.body", "body": body})


async def _lifespan(receive: Receive, send: Send) -> None:
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            await send({"type": "lifespan.shutdown.complete"})
            return
