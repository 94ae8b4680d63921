"""The Streamable HTTP endpoint: thin views that check headers, parse, dispatch and frame. See docs/channels/mcp.md.

`POST <path>` carries one JSON-RPC message; `GET <path>` opens (or, with `Last-Event-ID`, resumes) an SSE
stream; `DELETE <path>` ends a session. Every refusal is a JSON-RPC error body with the HTTP status the
spec names; a bug is logged and answered 500 with a bare -32603, never a traceback.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from functools import wraps
from typing import Any

import orjson
import trio
from quart import Response, request
from werkzeug.exceptions import HTTPException

from afactors.channel import ChannelContext, Route, Unauthorized
from afactors_mcp import headers
from afactors_mcp.calls import cancel_call, run_call
from afactors_mcp.config import McpConfig
from afactors_mcp.jsonrpc import (
    INTERNAL_ERROR,
    INVALID_REQUEST,
    METHOD_NOT_FOUND,
    Message,
    Notification,
    Request,
    RpcError,
    error_body,
    parse_message,
    result_body,
)
from afactors_mcp.modern import as_modern, check_envelope, discover_result, list_result, stamped
from afactors_mcp.protocol import (
    HANDSHAKE_VERSIONS,
    MODERN_VERSIONS,
    cancelled_request,
    initialize_result,
    list_tools_result,
    parse_call,
    parse_initialize,
)
from afactors_mcp.sessions import Call, EventLog, Session, SessionTable
from afactors_mcp.sse import event_id, parse_event_id, priming

log = logging.getLogger("afactors.mcp")

View = Callable[..., Awaitable[Response]]
SSE_HEADERS = {"content-type": "text/event-stream", "cache-control": "no-cache", "x-accel-buffering": "no"}
SWEEP_INTERVAL = 60.0


def json_response(body: object, status: int = 200, extra: dict[str, str] | None = None) -> Response:
    return Response(orjson.dumps(body), status, {"content-type": "application/json", **(extra or {})})


def _as_rpc_error(exc: Exception) -> tuple[RpcError, dict[str, str]] | None:
    """The JSON-RPC error (and extra headers) for an exception a request may end in; None for a bug."""
    if isinstance(exc, RpcError):
        return exc, {}
    if isinstance(exc, Unauthorized):
        return RpcError(401, INVALID_REQUEST, f"Unauthorized: {exc}"), {"www-authenticate": "Bearer"}
    if isinstance(exc, HTTPException) and exc.code is not None:  # e.g. 413 for a body over the size limit
        return RpcError(exc.code, INVALID_REQUEST, f"{exc.name}: {exc.description}"), {}
    return None


def guarded(view: View) -> View:
    @wraps(view)
    async def wrapper(**params: Any) -> Response:
        try:
            return await view(**params)
        except Exception as exc:
            mapped = _as_rpc_error(exc)
            if mapped is None:
                log.exception("mcp: %s %s failed", request.method, request.path)
                mapped = RpcError(500, INTERNAL_ERROR, "Internal error"), {}
            error, extra = mapped
            return json_response(error.body(), error.status, extra)

    return wrapper


class McpServer:
    """The endpoint of one MCP channel, its session table and the nursery its tool calls run in."""

    def __init__(self, config: McpConfig, ctx: ChannelContext) -> None:
        self.config, self.ctx = config, ctx
        self.sessions = SessionTable(
            max_sessions=self.config.max_sessions,
            idle_timeout=self.config.session_idle_timeout,
            keep_streams=self.config.keep_streams,
        )
        self._nursery: trio.Nursery | None = None

    def routes(self) -> list[Route]:
        path = self.config.path
        return [
            Route(path, guarded(self.post), methods=("POST",)),
            Route(path, guarded(self.get), methods=("GET",)),
            Route(path, guarded(self.delete), methods=("DELETE",)),
            Route(path, guarded(self.not_allowed), methods=("PUT", "PATCH")),
        ]

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """The channel's service: owns the running tool calls and drops idle sessions until shutdown."""
        try:
            async with trio.open_nursery() as nursery:
                self._nursery = nursery
                task_status.started()
                while True:
                    await trio.sleep(min(SWEEP_INTERVAL, self.config.session_idle_timeout))
                    for session in self.sessions.expire(trio.current_time()):
                        session.end()
        finally:
            self._nursery = None
            for session in self.sessions.all():  # let open GET streams finish before the server's deadline
                session.end()

    # ------------------------------------------------------------------------------------------ checks

    def _common_checks(self) -> str:
        """Origin, then credentials: the tenant of the request."""
        headers.check_origin(request.headers.get("origin"), self.config.allowed_origins)
        return self.ctx.tenant(request.headers.get("authorization"))

    def _session(self, tenant: str) -> Session:
        headers.protocol_version(request.headers.get(headers.VERSION_HEADER))
        return self.sessions.get(headers.session_id(request.headers.get(headers.SESSION_HEADER)), tenant)

    # ------------------------------------------------------------------------------------------ POST

    async def post(self) -> Response:
        tenant = self._common_checks()
        headers.check_content_type(request.headers.get("content-type"))
        headers.check_post_accept(request.headers.get("accept"))
        message = parse_message(await request.get_data(as_text=False))
        if isinstance(message, Request) and message.method == "initialize":
            return await self._respond(message, lambda: self._initialize(tenant, message))
        sessionless = headers.SESSION_HEADER not in request.headers
        discover = isinstance(message, Request) and message.method == "server/discover" and sessionless
        if self._modern_request() or (discover and self.config.stateless):
            return await self._modern(tenant, message)
        if discover and isinstance(message, Request):
            return self._refuse_discover(message)
        session = self._session(tenant)
        if isinstance(message, Notification):
            await self._notified(session, message)
            return Response(b"", 202)
        if not isinstance(message, Request):  # a client's answer to a request: this server sends none
            return Response(b"", 202)
        if message.method == "tools/call":
            return self._start_call(session, message)
        return await self._respond(message, lambda: self._answer(session, message))

    @staticmethod
    async def _respond(message: Request, answer: Callable[[], Awaitable[tuple[dict[str, Any], Session]]]) -> Response:
        """A JSON response to a request: its result, or the error its handler raised, answered to its id."""
        try:
            result, session = await answer()
        except RpcError as exc:
            error = exc.for_request(message.id)
            return json_response(error.body(), error.status)
        return json_response(result_body(message.id, result), 200, {headers.SESSION_HEADER: session.id})

    async def _initialize(self, tenant: str, message: Request) -> tuple[dict[str, Any], Session]:
        hello = parse_initialize(message.params)
        session, evicted = self.sessions.open(tenant, hello.version)
        for old in evicted:
            await self._end(old)
        log.info("mcp session %s opened (%s, client %s)", session.id[:8], hello.version, hello.client_name)
        return initialize_result(hello.version, self.config.server), session

    @staticmethod
    def _refuse_discover(message: Request) -> Response:
        """The 2026-07-28 `server/discover` probe: not spoken here, so the client falls back to `initialize`."""
        error = error_body(message.id, METHOD_NOT_FOUND, "Method not found: server/discover; use initialize",
                           {"supported": list(HANDSHAKE_VERSIONS)})  # fmt: skip
        return json_response(error, 200)

    async def _answer(self, session: Session, message: Request) -> tuple[dict[str, Any], Session]:
        if message.method == "ping":
            return {}, session
        if message.method == "tools/list":
            return list_tools_result(self.config.tool, session.version, message.params), session
        raise RpcError(200, METHOD_NOT_FOUND, f"Method not found: {message.method}")

    async def _notified(self, session: Session, message: Notification) -> None:
        if message.method == "notifications/cancelled":
            request_id = cancelled_request(message.params)
            call = None if request_id is None else session.calls.get(request_id)
            if call is not None:
                await cancel_call(self.ctx, call)
        # notifications/initialized and every other notification need nothing from us

    def _start_call(self, session: Session, message: Request, *, modern: bool = False) -> Response:
        """Start a `tools/call` in the channel's nursery and answer with the SSE stream that follows it."""
        try:
            parsed = parse_call(message.params, self.config.tool)
            if message.id in session.calls:
                raise RpcError(200, INVALID_REQUEST, f"Invalid Request: request id {message.id!r} is already running")
            if self._nursery is None:
                raise RpcError(503, INTERNAL_ERROR, "The server is shutting down; retry shortly")
        except RpcError as exc:
            if modern:
                raise
            error = exc.for_request(message.id)
            return json_response(error.body(), error.status)
        call = session.calls[message.id] = Call()
        stream = session.new_log()
        server = self.config.server
        finish = (lambda result: stamped(result, server)) if modern else dict
        self._nursery.start_soon(
            run_call, self.ctx, session, message.id, call, parsed, stream, self.config.busy_policy, finish
        )
        if modern:
            return self._stateless_sse(call, stream)
        return self._sse(session, stream, 0)

    def _stateless_sse(self, call: Call, stream: EventLog) -> Response:
        """A 2026-07-28 call's stream: not resumable, and the client closing it cancels the call."""

        async def body() -> AsyncIterator[bytes]:
            try:
                async for chunk in stream.follow(0, self.config.keepalive):
                    yield chunk
            finally:
                if not stream.done and self._nursery is not None:
                    call.cancelled = True
                    self._nursery.start_soon(cancel_call, self.ctx, call)

        response = Response(body(), 200, SSE_HEADERS)
        response.timeout = None
        return response

    # ------------------------------------------------------------------------------------------ 2026-07-28

    def _modern_request(self) -> bool:
        """Whether a request speaks the stateless revision (only served when the channel is `stateless`)."""
        return self.config.stateless and request.headers.get(headers.VERSION_HEADER) in MODERN_VERSIONS

    async def _modern(self, tenant: str, message: Message) -> Response:
        """One self-contained 2026-07-28 exchange: no session, the envelope in `_meta`, errors by code."""
        if not isinstance(message, Request):  # notifications mean nothing without a session
            return Response(b"", 202)
        try:
            version = check_envelope(message, {k.lower(): v for k, v in request.headers.items()})
            if message.method == "tools/call":
                return self._start_call(Session("", tenant, version, 1), message, modern=True)
            if message.method == "server/discover":
                result = discover_result(self.config.server)
            elif message.method == "tools/list":
                result = list_result(self.config.tool, version, message.params, self.config.server)
            else:
                raise RpcError(404, METHOD_NOT_FOUND, f"Method not found: {message.method}")
        except RpcError as exc:
            error = as_modern(exc.for_request(message.id))
            return json_response(error.body(), error.status)
        return json_response(result_body(message.id, result))

    # ------------------------------------------------------------------------------------------ GET

    async def get(self) -> Response:
        if request.method == "HEAD" or self._modern_request():  # no stream without a session; HEAD has none
            return await self.not_allowed()
        tenant = self._common_checks()
        headers.check_get_accept(request.headers.get("accept"))
        session = self._session(tenant)
        last = request.headers.get(headers.LAST_EVENT_HEADER)
        if last is not None:
            position = parse_event_id(last)
            stream = None if position is None else session.logs.get(position[0])
            if position is None or stream is None:
                raise RpcError(400, INVALID_REQUEST, f"Bad Request: cannot resume after {last!r}: unknown or expired")
            return self._sse(session, stream, position[1])
        if session.listening:
            raise RpcError(409, INVALID_REQUEST, "Conflict: only one GET stream per session is allowed")
        return self._sse(session, session.new_log(), 0, standalone=True)

    def _sse(self, session: Session, stream: EventLog, after: int, *, standalone: bool = False) -> Response:
        """An SSE response following `stream` from event `after`; a fresh stream starts with a priming event."""

        async def body() -> AsyncIterator[bytes]:
            # Marked listening only once the body runs: a response never sent (a client gone first) must not
            # leave the session holding a stream.
            session.listening = session.listening or standalone
            try:
                if after == 0:
                    yield priming(event_id(stream.stream, 0), self.config.retry_ms)
                async for chunk in stream.follow(after, self.config.keepalive):
                    yield chunk
            finally:
                if standalone:
                    session.listening = False
                    stream.close()

        response = Response(body(), 200, {**SSE_HEADERS, headers.SESSION_HEADER: session.id})
        response.timeout = None
        return response

    # ------------------------------------------------------------------------------------------ DELETE

    async def delete(self) -> Response:
        if self._modern_request():
            return await self.not_allowed()
        tenant = self._common_checks()
        session = self._session(tenant)
        self.sessions.remove(session.id)
        await self._end(session)
        log.info("mcp session %s ended by the client", session.id[:8])
        return Response(b"", 200)

    async def _end(self, session: Session) -> None:
        for call in session.end():
            await cancel_call(self.ctx, call)

    async def not_allowed(self) -> Response:
        error = RpcError(405, INVALID_REQUEST, f"Method Not Allowed: {request.method}; use POST, GET or DELETE")
        return json_response(error.body(), 405, {"allow": "GET, POST, DELETE"})
