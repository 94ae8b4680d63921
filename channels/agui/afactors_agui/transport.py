"""The AG-UI route: read a `RunAgentInput`, submit its turn, stream the turn's events (thin I/O around the codec).

Everything that can be refused is refused before the stream starts (a 4xx with `{"error": {"code",
"message"}}`); once streaming, a failure ends the stream with `RUN_ERROR`. A client that goes away cancels its
run: a queued turn never runs, a running one is cut and nothing of it is committed (how AG-UI front-ends stop a
run: they abort the request).
"""

from __future__ import annotations

import logging
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable
from contextlib import aclosing
from typing import Any

import orjson
import trio
from quart import Response, request
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
    Unauthorized,
)
from afactors.model import BusyPolicy, ConversationKey, Envelope, ErrorInfo, Reply
from afactors_agui.events import Event, EventStream, sse_frame, state_to_show
from afactors_agui.request import AguiError, RunRequest, parse_run_input

log = logging.getLogger("afactors.agui")

METHODS = ("GET", "PUT", "PATCH", "DELETE")
SSE_HEADERS = {"Content-Type": "text/event-stream", "Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
CANCEL_GRACE = 5.0
"""Seconds a disconnected run may spend cancelling its turn."""

View = Callable[[], Awaitable[Response]]


def as_agui_error(exc: Exception) -> AguiError | None:
    """The refusal an exception stands for; None for a bug (answered as a logged 500)."""
    if isinstance(exc, AguiError):
        return exc
    if isinstance(exc, Unauthorized):
        return AguiError(401, "unauthorized", str(exc))
    if isinstance(exc, HookRejected):
        return AguiError(exc.status, exc.code, exc.message)
    if isinstance(exc, ConversationBusy):
        return AguiError(409, "thread_busy", "this thread is already running a run; retry once it has finished")
    if isinstance(exc, ActorUnavailable):
        return AguiError(503, "thread_unavailable", str(exc))
    if isinstance(exc, SystemClosed):
        return AguiError(503, "shutting_down", "the server is shutting down; retry shortly")
    if isinstance(exc, StoreFull):
        return AguiError(507, "insufficient_storage", f"{exc}; retry later")
    if isinstance(exc, HTTPException) and exc.code is not None:
        return AguiError(exc.code, exc.name.lower().replace(" ", "_"), exc.description or exc.name)
    return None


_ERROR_HEADERS = {405: {"Allow": "POST"}, 507: {"Retry-After": "30"}}


def json_error(error: AguiError) -> Response:
    headers = _ERROR_HEADERS.get(error.status, {})
    return Response(orjson.dumps(error.body()), error.status, headers, content_type="application/json")


def guarded(view: View) -> View:
    """Answer every refusal with the JSON error body; a bug becomes a logged 500 without a traceback."""

    async def wrapper() -> Response:
        try:
            return await view()
        except Exception as exc:
            error = as_agui_error(exc)
            if error is None:
                log.exception("agui route %s %s failed", request.method, request.path)
                error = AguiError(500, "internal_error", "the server failed to handle the request")
            return json_error(error)

    wrapper.__name__ = view.__name__
    return wrapper


def accepts_event_stream(accept: str | None) -> bool:
    """Whether an `Accept` header allows `text/event-stream` (no header allows anything)."""
    if not accept:
        return True
    for item in accept.split(","):
        media_range = item.split(";", 1)[0].strip().lower()
        if media_range in ("text/event-stream", "text/*", "*/*"):
            return True
    return False


async def read_json() -> Any:
    """The body as JSON; 415 for another content type, 406 when the client cannot take SSE, 400 for bad JSON."""
    if request.mimetype != "application/json":
        raise AguiError(
            415,
            "unsupported_media_type",
            f"send the RunAgentInput as application/json, not {request.mimetype or '(no content type)'}",
        )
    if not accepts_event_stream(request.headers.get("Accept")):
        raise AguiError(406, "not_acceptable", "this endpoint answers with text/event-stream: accept it")
    try:
        return orjson.loads(await request.get_data(as_text=False))
    except orjson.JSONDecodeError as exc:
        raise AguiError(400, "invalid_json", f"the request body is not valid JSON: {exc}") from None


def sse_response(events: AsyncGenerator[Event, None]) -> Response:
    async def body() -> AsyncIterator[bytes]:
        async with aclosing(events) as each:
            async for event in each:
                yield sse_frame(event)

    response = Response(body(), 200, SSE_HEADERS)
    response.timeout = None  # Quart would end a long stream after RESPONSE_TIMEOUT
    return response


class AguiRoutes:
    """The AG-UI route at `path` on one host: runs go to `ctx`, with `busy_policy` (None: the host's)."""

    def __init__(self, ctx: ChannelContext, path: str, busy_policy: BusyPolicy | None) -> None:
        self.ctx, self.path, self.busy_policy = ctx, path, busy_policy

    def routes(self) -> list[Route]:
        return [
            Route(self.path, guarded(self.run), methods=("POST",)),
            Route(self.path, guarded(self.not_allowed), methods=METHODS),
        ]

    @staticmethod
    async def not_allowed() -> Response:
        raise AguiError(405, "method_not_allowed", "POST a RunAgentInput here")

    async def run(self) -> Response:
        tenant = self.ctx.tenant(request.headers.get("Authorization"))
        run = parse_run_input(await read_json())
        key = ConversationKey(tenant, f"agui:{run.thread_id}")
        stream = EventStream(run)
        if not run.input:  # nothing new to answer: report the thread's state without running a turn
            return sse_response(self._no_turn(stream, key))
        envelope = self._envelope(run, key)
        before = self.ctx.state(key)
        handle = await self.ctx.submit(envelope, stream=True)
        return sse_response(self._turn(stream, envelope, handle, before))

    def _envelope(self, run: RunRequest, key: ConversationKey) -> Envelope:
        return Envelope(
            key=key, input=run.input, options=run.options(), busy_policy=self.busy_policy, trace_id=run.run_id
        )

    async def _no_turn(self, stream: EventStream, key: ConversationKey) -> AsyncGenerator[Event, None]:
        for event in (*stream.start(), *stream.finish(Reply(), state_to_show({}, self.ctx.state(key)))):
            yield event

    async def _turn(
        self, stream: EventStream, envelope: Envelope, handle: TurnHandle, before: dict[str, Any]
    ) -> AsyncGenerator[Event, None]:
        try:
            for event in stream.start():
                yield event
            async for update in handle.updates():
                for event in stream.add(update):
                    yield event
            reply = await self._reply(envelope, handle)
            if handle.stream_dropped and reply.status == "completed":
                for event in stream.catch_up(reply):
                    yield event
            state = state_to_show(before, self.ctx.state(envelope.key)) if reply.status == "completed" else None
            for event in stream.finish(reply, state):
                yield event
        finally:
            if not handle.done:  # the client went away: its run goes with it
                with trio.CancelScope(shield=True), trio.move_on_after(CANCEL_GRACE):
                    await self.ctx.abandon(handle)

    async def _reply(self, envelope: Envelope, handle: TurnHandle) -> Reply:
        try:
            return await self.ctx.reply(envelope, handle)
        except Exception:
            log.exception("agui: the response hook failed on run %s", envelope.trace_id)
            return Reply(status="failed", error=ErrorInfo("internal_error", "the run's reply could not be finished"))
