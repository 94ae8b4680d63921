"""The Invocations HTTP routes: thin views that read the request, call the codec and the `ChannelContext`."""

from __future__ import annotations

import logging
import os
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from typing import Any, Protocol, cast

import orjson
import trio
from quart import Response, request, websocket
from werkzeug.exceptions import HTTPException

from afactors.channel import (
    ActorUnavailable,
    ChannelContext,
    ConversationBusy,
    HookRejected,
    Route,
    StoreFull,
    SystemClosed,
    TurnHandle,
    TurnView,
    Unauthorized,
)
from afactors.model import BusyPolicy, ConversationKey, Envelope, Identity, Reply
from afactors_invocations.codec import (
    INVOCATION_ID_HEADER,
    REQUEST_ID_HEADER,
    SESSION_ENV_VAR,
    SESSION_QUERY_PARAM,
    SSE_DONE,
    WS_HANDLER_ERROR,
    WS_POLICY_VIOLATION,
    HeaderLookup,
    InvocationError,
    InvocationIds,
    InvocationRequest,
    Parser,
    Renderer,
    decode_json,
    echo_or_new,
    is_protocol_id,
    isolation,
    passthrough_headers,
    reply_error,
    resolve_session_id,
    sse_delta,
    sse_error,
    status_body,
    turn_id_of,
    user_key,
    ws_delta,
    ws_error,
    ws_result,
)

log = logging.getLogger("afactors.invocations")

_METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE")
_ABANDON_GRACE = 5.0
"""Seconds a WebSocket whose client went away may spend cancelling its running invocation."""


def _headers() -> Mapping[str, str]:
    """The request's headers as the codec reads them (werkzeug's `Headers` looks up case-insensitively)."""
    return cast("Mapping[str, str]", request.headers)


def _new_id() -> str:
    return str(uuid.uuid4())


def protocol_error(exc: Exception) -> InvocationError | None:
    """The I-06 error for an exception a request may end in; None for a bug (answered as a 500)."""
    if isinstance(exc, InvocationError):
        return exc
    if isinstance(exc, Unauthorized):
        return InvocationError(401, "unauthorized", str(exc))
    if isinstance(exc, HookRejected):
        return InvocationError(exc.status, exc.code, exc.message)
    if isinstance(exc, ConversationBusy):
        return InvocationError(
            409, "conversation_busy", "this session is already running an invocation; retry when it ends"
        )
    if isinstance(exc, ActorUnavailable):
        return InvocationError(503, "unavailable", str(exc), retry_after=max(1, round(exc.retry_after)))
    if isinstance(exc, SystemClosed):
        return InvocationError(503, "shutting_down", "the server is shutting down; retry on another instance")
    if isinstance(exc, StoreFull):
        return InvocationError(507, "insufficient_storage", str(exc), retry_after=30)
    if isinstance(exc, HTTPException) and exc.code is not None and exc.code < 500:  # 408 body timeout, 413 ...
        return InvocationError(exc.code, _http_code(exc), exc.description or exc.name)
    return None


def _http_code(exc: HTTPException) -> str:
    return "payload_too_large" if exc.code == 413 else exc.name.lower().replace(" ", "_")


class Exchange:
    """One request's ids as they become known; every response, error or not, carries them (I-02)."""

    def __init__(self, headers: HeaderLookup, args: Mapping[str, str]) -> None:
        self.invocation_id = echo_or_new(headers.get(INVOCATION_ID_HEADER), _new_id)
        self.request_id = echo_or_new(headers.get(REQUEST_ID_HEADER), _new_id)
        self.query_session = args.get(SESSION_QUERY_PARAM)
        self.session_id: str | None = None

    def resolve_session(self, body_session: object = None) -> str:
        self.session_id = resolve_session_id(self.query_session, body_session, os.environ.get(SESSION_ENV_VAR), _new_id)
        return self.session_id

    @property
    def ids(self) -> InvocationIds:
        if self.session_id is None:  # an error before the session was known: never fail again on a bad query value
            try:
                self.resolve_session()
            except InvocationError:
                self.session_id = resolve_session_id(None, None, os.environ.get(SESSION_ENV_VAR), _new_id)
        assert self.session_id is not None
        return InvocationIds(self.invocation_id, self.session_id, self.request_id)

    def json(self, body: Any, status: int = 200, headers: Mapping[str, str] | None = None) -> Response:
        return Response(
            orjson.dumps(body), status, {**self.ids.headers(), **(headers or {}), "content-type": "application/json"}
        )

    def error(self, exc: InvocationError) -> Response:
        return self.json(exc.body(), exc.status, exc.headers())


View = Callable[..., Awaitable[Response]]


class RoutesSettings(Protocol):
    """What the routes read of their channel (an `InvocationsChannel`; named here so neither imports the other)."""

    @property
    def name(self) -> str: ...

    @property
    def path(self) -> str: ...

    @property
    def local_user(self) -> str: ...

    @property
    def busy_policy(self) -> BusyPolicy | None: ...

    @property
    def parser(self) -> Parser: ...

    @property
    def renderer(self) -> Renderer: ...

    def openapi(self) -> dict[str, Any] | None: ...


class InvocationsRoutes:
    """The routes of one `InvocationsChannel` bound to its `ChannelContext`."""

    def __init__(self, channel: RoutesSettings, ctx: ChannelContext) -> None:
        self.channel, self.ctx = channel, ctx

    def routes(self) -> list[Route]:
        path = self.channel.path
        table: list[tuple[str, View, tuple[str, ...]]] = [
            (path or "/", self.invoke, ("POST",)),
            (f"{path}/docs/openapi.json", self.openapi, ("GET",)),
            (f"{path}/<invocation_id>", self.get_invocation, ("GET",)),
            (f"{path}/<invocation_id>/cancel", self.cancel_invocation, ("POST",)),
        ]
        routes = []
        for rule, view, methods in table:
            routes.append(Route(rule, self._guarded(view), methods=methods))
            others = tuple(m for m in _METHODS if m not in methods)
            routes.append(Route(rule, self._guarded(self._not_allowed(methods)), methods=others))
        for rule in {f"{path}/", f"{path}/<path:rest>"} - {path or "/"}:  # any other path under ours: 404
            routes.append(Route(rule, self._guarded(self._no_route), methods=_METHODS))
        routes.append(Route(f"{path or '/invocations'}_ws", self.socket, websocket=True))
        return routes

    def _guarded(self, view: View) -> View:
        async def guarded(**params: str) -> Response:
            exchange = Exchange(_headers(), request.args)
            try:
                return await view(exchange, **params)
            except Exception as exc:
                error = protocol_error(exc)
                if error is None:
                    log.exception("invocations: unexpected error")
                    error = InvocationError(500, "internal_error", "Internal server error")
                return exchange.error(error)

        guarded.__name__ = view.__name__
        return guarded

    @staticmethod
    def _not_allowed(methods: tuple[str, ...]) -> View:
        async def method_not_allowed(exchange: Exchange, **_: str) -> Response:
            raise InvocationError(405, "method_not_allowed", f"use {' or '.join(methods)} here")

        return method_not_allowed

    @staticmethod
    async def _no_route(exchange: Exchange, **_: str) -> Response:
        raise InvocationError(404, "not_found", f"no route {request.method} {request.path}")

    # ------------------------------------------------------------ POST /invocations

    async def invoke(self, exchange: Exchange) -> Response:
        tenant = self.ctx.tenant(request.headers.get("authorization"))
        parsed = self._parse(decode_json(await request.get_data(cache=True, as_text=False, parse_form_data=False)))
        envelope = self._envelope(exchange, parsed, tenant, request.headers)
        if parsed.background:
            record = await self.ctx.start_background(envelope)
            location = {"location": f"{self.channel.path}/{exchange.invocation_id}"}
            return exchange.json(status_body(exchange.ids, record.status), 202, location)
        handle = await self.ctx.submit(envelope, stream=parsed.stream)
        if parsed.stream:
            response = Response(
                self._stream(exchange, envelope, handle),
                200,
                {
                    **exchange.ids.headers(),
                    "content-type": "text/event-stream",
                    "cache-control": "no-cache",
                    "x-accel-buffering": "no",
                },
            )
            response.timeout = None
            return response
        reply = await self.ctx.reply(envelope, handle)
        if (error := reply_error(reply)) is not None:
            raise error
        return exchange.json(self.channel.renderer(reply, exchange.ids))

    def _envelope(self, exchange: Exchange, parsed: InvocationRequest, tenant: str, headers: HeaderLookup) -> Envelope:
        """The turn of one invocation: its actor from the isolation keys (I-08), pass-through headers (I-07)."""
        session_id = exchange.resolve_session(parsed.session_id)
        keys = isolation(headers, session_id, self.channel.local_user)
        turn_id = turn_id_of(tenant, keys.user_key, exchange.invocation_id)
        if self.ctx.record(turn_id, tenant) is not None:
            raise InvocationError(
                409, "invocation_exists", f"invocation {exchange.invocation_id!r} already exists: GET it instead"
            )
        options = {**parsed.options, "session_id": session_id}
        if forwarded := passthrough_headers(headers):
            options["headers"] = forwarded
        return Envelope(
            key=ConversationKey(tenant, keys.conversation),
            input=parsed.input,
            turn_id=turn_id,
            options=options,
            identity=Identity(self.channel.name, keys.user_key),
            busy_policy=self.channel.busy_policy,
            trace_id=exchange.request_id,
            response_target=parsed.response_target,
        )

    def _parse(self, body: Any) -> InvocationRequest:
        """The channel's parser on the request JSON; a ValueError/TypeError/LookupError it raises is a 422."""
        try:
            return self.channel.parser(body)
        except (ValueError, TypeError, LookupError) as exc:
            raise InvocationError(422, "invalid_request", f"invalid request body: {exc}") from None

    async def _stream(self, exchange: Exchange, envelope: Envelope, handle: TurnHandle) -> AsyncIterator[bytes]:
        sent: list[str] = []
        async for update in handle.updates():
            if update.delta:
                sent.append(update.delta)
                yield sse_delta(update.delta)
        reply = await self.ctx.reply(envelope, handle)
        if (error := reply_error(reply)) is not None:
            yield sse_error(error)
            return
        streamed = "".join(sent)
        if handle.stream_dropped and reply.text.startswith(streamed) and len(reply.text) > len(streamed):
            yield sse_delta(reply.text[len(streamed) :])  # we fell behind the turn: send the rest in one piece
        yield SSE_DONE

    # ------------------------------------------------------------ GET /invocations/<id>, POST .../cancel

    def _lookup(self, exchange: Exchange, invocation_id: str) -> tuple[str, str, TurnView]:
        """The tenant, turn id and record of the caller's invocation; 404 when it is not theirs or unknown."""
        tenant = self.ctx.tenant(request.headers.get("authorization"))
        if not is_protocol_id(invocation_id):  # such an id is never issued
            raise InvocationError(404, "not_found", f"invocation {invocation_id!r} not found")
        exchange.invocation_id = invocation_id
        turn_id = turn_id_of(tenant, user_key(_headers(), self.channel.local_user), invocation_id)
        record = self.ctx.record(turn_id, tenant)
        if record is None:
            raise InvocationError(404, "not_found", f"invocation {invocation_id!r} not found")
        exchange.session_id = record.data.get("session_id")
        return tenant, turn_id, record

    def _status(self, exchange: Exchange, record: TurnView) -> Response:
        result = error = None
        if record.ended:
            reply = record.as_reply()
            failure = reply_error(reply)
            if failure is None:
                result = self.channel.renderer(reply, exchange.ids)
            else:
                error = failure.body()["error"]
        return exchange.json(status_body(exchange.ids, record.status, result=result, error=error))

    async def get_invocation(self, exchange: Exchange, invocation_id: str) -> Response:
        _, _, record = self._lookup(exchange, invocation_id)
        return self._status(exchange, record)

    async def cancel_invocation(self, exchange: Exchange, invocation_id: str) -> Response:
        tenant, turn_id, record = self._lookup(exchange, invocation_id)
        if record.ended:
            raise InvocationError(
                409, "invocation_finished", f"invocation {invocation_id!r} already ended ({record.status})"
            )
        record = await self.ctx.cancel(turn_id, tenant) or record
        return self._status(exchange, record)

    # ------------------------------------------------------------ WebSocket /invocations_ws (I-09)

    async def socket(self) -> None:
        """One invocation per text frame (the HTTP body format), answered by delta frames and one result or error
        frame. Bad input gets an error frame and the socket stays open; a failed turn closes it with 1011, a
        refused key with 1008; the client closing its end cancels a running invocation."""
        await websocket.accept()
        try:
            tenant = self.ctx.tenant(websocket.headers.get("authorization"))
        except Unauthorized as exc:
            await websocket.send(ws_error(InvocationError(401, "unauthorized", str(exc))))
            await websocket.close(WS_POLICY_VIOLATION)
            return
        headers = {k: v for k, v in websocket.headers.items() if k.lower() != INVOCATION_ID_HEADER}
        while True:
            frame = await websocket.receive()
            exchange = Exchange(headers, websocket.args)
            try:
                raw = frame.encode() if isinstance(frame, str) else frame
                envelope = self._envelope(exchange, self._parse(decode_json(raw)), tenant, websocket.headers)
                reply = await self._socket_turn(envelope)
            except Exception as exc:
                error = protocol_error(exc)
                if error is None:
                    log.exception("invocations websocket: unexpected error")
                    await websocket.send(ws_error(InvocationError(500, "internal_error", "Internal server error")))
                    await websocket.close(WS_HANDLER_ERROR)
                    return
                await websocket.send(ws_error(error))
                continue
            if (failure := reply_error(reply)) is not None:
                await websocket.send(ws_error(failure))
                await websocket.close(WS_HANDLER_ERROR)
                return
            await websocket.send(ws_result(exchange.ids, self.channel.renderer(reply, exchange.ids)))

    async def _socket_turn(self, envelope: Envelope) -> Reply:
        handle = await self.ctx.submit(envelope, stream=True)
        try:
            async for update in handle.updates():
                if update.delta:
                    await websocket.send(ws_delta(update.delta))
            return await self.ctx.reply(envelope, handle)
        finally:
            if not handle.done:  # the client went away
                with trio.CancelScope(shield=True), trio.move_on_after(_ABANDON_GRACE):
                    await self.ctx.abandon(handle)

    # ------------------------------------------------------------ GET /invocations/docs/openapi.json

    async def openapi(self, exchange: Exchange) -> Response:
        spec = self.channel.openapi()
        if spec is None:
            raise InvocationError(404, "not_found", "No OpenAPI spec registered")
        return exchange.json(spec)
