"""The A2A routes: the agent card and one JSON-RPC endpoint, thin I/O around the codec modules.

`GET /.well-known/agent-card.json` and `/.well-known/agent.json` serve the card; `POST <path>` takes every
JSON-RPC method of A2A 1.0 (and of v0.3 for requests without an `A2A-Version` header). JSON-RPC level errors are
HTTP 200 with a JSON-RPC error; transport-level ones (method, content type, size, credentials) their 4xx with a
JSON-RPC error body. Streams are SSE whose every `data:` is a whole JSON-RPC response. See docs/channels/a2a.md.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable
from contextlib import aclosing
from typing import Any, Protocol

import attrs
import orjson
import trio
from quart import Response, request
from werkzeug.exceptions import RequestEntityTooLarge, RequestTimeout

from afactors.channel import (
    ActorUnavailable,
    ChannelContext,
    ConversationBusy,
    HookRejected,
    Route,
    StoreFull,
    SystemClosed,
    TurnView,
    Unauthorized,
    new_turn_id,
)
from afactors.model import BusyPolicy, Envelope, Message, ReplyTarget
from afactors_a2a import push
from afactors_a2a.card import CardSettings, render_card
from afactors_a2a.errors import (
    CONTENT_TYPE_NOT_SUPPORTED,
    INTERNAL_ERROR,
    INVALID_PARAMS,
    INVALID_REQUEST,
    PUSH_NOTIFICATION_NOT_SUPPORTED,
    TASK_NOT_CANCELABLE,
    VERSION_NOT_SUPPORTED,
    RpcError,
    invalid_params,
    task_not_found,
    unsupported,
)
from afactors_a2a.fields import Fields
from afactors_a2a.jsonrpc import RequestId, error_response, parse_call, result_response
from afactors_a2a.listing import list_page
from afactors_a2a.messages import accepts
from afactors_a2a.requests import (
    MAX_ID_LENGTH,
    PushConfig,
    SendRequest,
    params_from_v03,
    parse_list,
    parse_push_config,
    parse_push_ref,
    parse_send,
    parse_task_query,
)
from afactors_a2a.taskbook import ID_PREFIX, TaskBook, conversation_key
from afactors_a2a.tasks import (
    INTERRUPTED,
    TERMINAL,
    ChunkStream,
    TaskView,
    event_to_v03,
    render_task,
    status_event,
    task_event,
    task_to_v03,
    task_view,
    working_event,
)
from afactors_a2a.versions import HEADER, STREAMING, V03, V1, negotiate, operation

log = logging.getLogger("afactors.a2a")

CARD_PATHS = ("/.well-known/agent-card.json", "/.well-known/agent.json")
SSE_HEADERS = {"Content-Type": "text/event-stream", "Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
POLL = 0.05
"""Seconds between store reads while waiting for a turn that runs without a live log here (after a restart)."""
_OTHER_METHODS = ("GET", "PUT", "PATCH", "DELETE")
_SETTLED = TERMINAL | INTERRUPTED

Handler = Callable[[dict[str, Any], str, str], Awaitable[Any]]


class Settings(Protocol):
    """What the routes read of their channel (an `A2AChannel`)."""

    @property
    def name(self) -> str: ...

    path: str
    card: CardSettings
    public_url: str | None
    busy_policy: BusyPolicy | None


def _json(body: object, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    return Response(orjson.dumps(body), status=status, headers=headers or {}, content_type="application/json")


def _host_error(exc: Exception) -> RpcError | None:
    """The JSON-RPC error for a refusal of the host; None for a bug."""
    if isinstance(exc, RpcError):
        return exc
    if isinstance(exc, Unauthorized):
        return RpcError(INVALID_REQUEST, f"Unauthorized: {exc}", http_status=401)
    if isinstance(exc, HookRejected):
        return RpcError(INVALID_PARAMS, exc.message, metadata={"code": exc.code})
    if isinstance(exc, ConversationBusy):
        return unsupported("This context is already running a task and does not queue more; retry once it ended.")
    if isinstance(exc, ActorUnavailable):
        return RpcError(INTERNAL_ERROR, f"{exc}; retry later", http_status=503)
    if isinstance(exc, SystemClosed):
        return RpcError(INTERNAL_ERROR, "The server is shutting down; retry shortly.", http_status=503)
    if isinstance(exc, RequestEntityTooLarge):
        return RpcError(INVALID_REQUEST, "Invalid Request: the request body is too large", http_status=413)
    if isinstance(exc, RequestTimeout):
        return RpcError(INVALID_REQUEST, "Invalid Request: the request body did not arrive in time", http_status=408)
    if isinstance(exc, StoreFull):
        return RpcError(INTERNAL_ERROR, f"{exc}; retry later", http_status=507)
    return None


_ERROR_HEADERS = {401: {"WWW-Authenticate": "Bearer"}, 507: {"Retry-After": "30"}}


class A2ARoutes:
    """The views of one `A2AChannel` on one host."""

    def __init__(self, channel: Settings, ctx: ChannelContext) -> None:
        self.channel, self.ctx = channel, ctx
        self.book = TaskBook(ctx)
        self.pusher = push.Pusher(ctx, self._push_body)
        self.handlers: dict[str, Handler] = {
            "send": self._send,
            "get": self._get,
            "list": self._list,
            "cancel": self._cancel,
            "push_set": self._push_set,
            "push_get": self._push_get,
            "push_list": self._push_list,
            "push_delete": self._push_delete,
            "extended_card": self._extended_card,
        }

    def routes(self) -> list[Route]:
        path = self.channel.path
        card = [Route(rule, self.card, methods=("GET",)) for rule in CARD_PATHS]
        card_others = [
            Route(rule, self.card_not_allowed, methods=("POST", "PUT", "PATCH", "DELETE")) for rule in CARD_PATHS
        ]
        rpc = [Route(path, self.rpc, methods=("POST",)), Route(path, self.not_allowed, methods=_OTHER_METHODS)]
        return [*card, *card_others, *rpc]

    # -- the card -------------------------------------------------------------------------------------------

    def _url(self) -> str:
        base = self.channel.public_url or request.host_url
        return base.rstrip("/") + self.channel.path

    async def card(self) -> Response:
        try:
            self.ctx.tenant(None)
            bearer = False
        except Unauthorized:
            bearer = True
        return _json(render_card(self.channel.card, self._url(), bearer=bearer))

    # -- the JSON-RPC endpoint ------------------------------------------------------------------------------

    async def card_not_allowed(self) -> Response:
        return _json({"error": {"code": 405, "message": "The agent card is read with GET"}}, 405, {"Allow": "GET"})

    async def not_allowed(self) -> Response:
        error = RpcError(INVALID_REQUEST, f"Invalid Request: use POST for JSON-RPC at {self.channel.path}")
        return _json(error_response(None, error, V1), 405, {"Allow": "POST"})

    async def rpc(self) -> Response:
        asked = request.headers.get(HEADER)
        version, request_id = (V1 if asked and asked.strip() else V03), None  # how to spell errors until negotiated
        try:
            self._check_content_type()
            tenant = self.ctx.tenant(request.headers.get("Authorization"))
            call = parse_call(await request.get_data(as_text=False))  # type: ignore[arg-type]
            request_id = call.id
            version = negotiate(asked)
            op = operation(call.method, version)
            params = params_from_v03(op, call.params) if version == V03 else call.params
            if op in STREAMING:
                events = await (
                    self._stream(params, tenant, version) if op == "stream" else self._subscribe(params, tenant)
                )
                return self._sse(request_id, version, events)
            result = await self.handlers[op](params, tenant, version)
            return _json(result_response(request_id, result))
        except Exception as exc:
            error = _host_error(exc)
            if error is not None and error.code == VERSION_NOT_SUPPORTED:
                version = V1  # a version we do not speak: answer in the current one
            if error is None:
                log.exception("a2a request failed")
                error = RpcError(INTERNAL_ERROR, "Internal error: the request could not be handled")
            headers = _ERROR_HEADERS.get(error.http_status)
            answer_id = request_id if request_id is not None else error.request_id
            return _json(error_response(answer_id, error, version), error.http_status, headers)

    @staticmethod
    def _check_content_type() -> None:
        mimetype = request.mimetype
        if mimetype and mimetype != "application/json" and not mimetype.endswith("+json"):
            raise RpcError(
                INVALID_REQUEST,
                f"Invalid Request: send JSON-RPC as application/json, not {mimetype!r}",
                http_status=415,
            )

    def _sse(self, request_id: RequestId, version: str, events: AsyncGenerator[dict[str, Any], None]) -> Response:
        async def body() -> AsyncIterator[bytes]:
            async with aclosing(events) as each:
                try:
                    async for event in each:
                        final = "statusUpdate" in event and event["statusUpdate"]["status"]["state"] in _SETTLED
                        result = event_to_v03(event, final) if version == V03 else event
                        yield b"data: " + orjson.dumps(result_response(request_id, result)) + b"\n\n"
                except Exception as exc:
                    error = _host_error(exc)
                    if error is None:
                        log.exception("a2a stream failed")
                        error = RpcError(INTERNAL_ERROR, "Internal error: the stream failed")
                    yield b"event: error\ndata: " + orjson.dumps(error_response(request_id, error, version)) + b"\n\n"

        response = Response(body(), status=200, headers=SSE_HEADERS)
        response.timeout = None
        return response

    # -- sending --------------------------------------------------------------------------------------------

    def _render(self, view: TaskView, version: str, history_length: int | None = None) -> dict[str, Any]:
        task = render_task(view, history_length=history_length)
        return task_to_v03(task) if version == V03 else task

    async def _start(self, params: dict[str, Any], tenant: str, version: str) -> tuple[SendRequest, list[TurnView]]:
        """Validate a send, start its turn durably; the request and the task's turns (the new one last)."""
        settings = self.channel.card
        send = parse_send(params, settings.input_modes, uuid.uuid4().hex, version)
        if send.accepted_output_modes and not any(
            accepts(send.accepted_output_modes, m) for m in settings.output_modes
        ):
            raise RpcError(
                CONTENT_TYPE_NOT_SUPPORTED,
                "None of the accepted output modes is produced here; this agent answers in "
                + ", ".join(settings.output_modes),
            )
        if send.push is not None and not settings.push_notifications:
            raise self._no_push()
        message = send.message
        earlier: list[TurnView] = []
        turn_id = new_turn_id(ID_PREFIX)
        if message.task_id is not None:
            earlier, context_id = self._continuable(tenant, message.task_id, message.context_id)
            await self.book.add_turn(tenant, message.task_id, turn_id)
        else:
            context_id = message.context_id or str(uuid.uuid4())
            if len(context_id) > MAX_ID_LENGTH:
                raise invalid_params(
                    f"'message.contextId' is longer than {MAX_ID_LENGTH} characters", "message.contextId"
                )
        task_id = message.task_id or turn_id
        if send.push is not None:
            await push.save(self.ctx, tenant, attrs.evolve(send.push, task_id=task_id))
        envelope = Envelope(
            key=conversation_key(tenant, context_id),
            input=(Message("user", message.parts),),
            turn_id=turn_id,
            options={"a2a": turn_options(task_id, context_id, send)},
            reply_to=ReplyTarget(self.channel.name, {"tenant": tenant, "task": task_id})
            if settings.push_notifications
            else None,
            busy_policy=self.channel.busy_policy,
        )
        record = await self.ctx.start_background(envelope)
        return send, [*earlier, record]

    def _continuable(self, tenant: str, task_id: str, context_id: str | None) -> tuple[list[TurnView], str]:
        """The turns and context of a task a message may continue: it exists, matches the context, waits for input."""
        turns = self.book.turns(tenant, task_id)
        view = self.book.view(tenant, task_id, turns)
        if turns is None or view is None:
            raise task_not_found(task_id)
        if context_id is not None and context_id != view.context_id:
            raise invalid_params(
                f"message.contextId {context_id!r} does not match the context {view.context_id!r} of task {task_id!r}",
                "message.contextId",
            )
        if view.terminal:
            raise unsupported(f"Task {task_id!r} is {view.state}; it takes no more messages: start a new task")
        if not view.interrupted:
            raise unsupported(f"Task {task_id!r} is still {view.state}; send more input once it asks for it")
        return turns, view.context_id

    async def _send(self, params: dict[str, Any], tenant: str, version: str) -> dict[str, Any]:
        send, turns = await self._start(params, tenant, version)
        if not send.return_immediately:
            turns[-1] = await self._settled(turns[-1].id, tenant) or turns[-1]
        view = task_view(turns, self.book.canceled_at(tenant, turns[0].id))
        task = self._render(view, version, send.history_length)
        return task if version == V03 else {"task": task}

    async def _settled(self, turn_id: str, tenant: str) -> TurnView | None:
        """The turn's record once it ended (or as it stands when the host shuts down)."""
        live = self.ctx.watch(turn_id)
        if live is not None:
            async with aclosing(live):  # type: ignore[type-var]
                async for _ in live:
                    pass
        while True:
            record = self.ctx.record(turn_id, tenant)
            if record is None or record.status not in ("queued", "in_progress") or self.ctx.shutting_down.is_set():
                return record
            await trio.sleep(POLL)

    async def _stream(self, params: dict[str, Any], tenant: str, version: str) -> AsyncGenerator[dict[str, Any], None]:
        self._check_streaming()
        send, turns = await self._start(params, tenant, version)
        return self._follow(tenant, turns, send.history_length)

    async def _follow(
        self, tenant: str, turns: list[TurnView], history_length: int | None = None
    ) -> AsyncGenerator[dict[str, Any], None]:
        """The task as it stands, then its latest turn live (A-09): working, artifact chunks, the final status."""
        task_id, turn = turns[0].id, turns[-1]
        view = task_view(turns, self.book.canceled_at(tenant, task_id))
        yield task_event(render_task(view, history_length=history_length))
        if view.settled:
            return
        chunks = ChunkStream(task_id, view.context_id, turn.id)
        live = self.ctx.watch(turn.id)
        if live is not None:
            working = False
            async with aclosing(live):  # type: ignore[type-var]
                async for update in live:
                    events = chunks.add(update)
                    if events and not working:
                        working = True
                        yield working_event(task_id, view.context_id, time.time())
                    for event in events:
                        yield event
        final = await self._settled(turn.id, tenant)
        if final is None:
            return
        for event in chunks.finish():
            yield event
        ended = self.book.view(tenant, task_id)
        if ended is not None and (ended.settled or self.ctx.shutting_down.is_set()):
            yield status_event(ended)

    def _check_streaming(self) -> None:
        if not self.channel.card.streaming:
            raise unsupported("Streaming is not supported by this agent (capabilities.streaming is false)")

    # -- tasks ----------------------------------------------------------------------------------------------

    def _task(self, tenant: str, task_id: str) -> tuple[list[TurnView], TaskView]:
        turns = self.book.turns(tenant, task_id)
        view = self.book.view(tenant, task_id, turns)
        if turns is None or view is None:
            raise task_not_found(task_id)
        return turns, view

    async def _get(self, params: dict[str, Any], tenant: str, version: str) -> dict[str, Any]:
        query = parse_task_query(params)
        _, view = self._task(tenant, query.id)
        return self._render(view, version, query.history_length)

    async def _list(self, params: dict[str, Any], tenant: str, version: str) -> dict[str, Any]:
        query = parse_list(params)
        return list_page(self.book.views(tenant, query.context_id), query)

    async def _cancel(self, params: dict[str, Any], tenant: str, version: str) -> dict[str, Any]:
        query = parse_task_query(params)
        turns, view = self._task(tenant, query.id)
        if view.terminal:
            raise RpcError(TASK_NOT_CANCELABLE, f"Task {query.id!r} is {view.state} and cannot be canceled")
        if view.interrupted:
            await self.book.cancel_interrupted(tenant, query.id)
        else:
            await self.ctx.cancel(turns[-1].id, tenant)
        view = self._task(tenant, query.id)[1]
        if view.state != "TASK_STATE_CANCELED":  # it ended on its own meanwhile
            raise RpcError(TASK_NOT_CANCELABLE, f"Task {query.id!r} is {view.state} and cannot be canceled")
        return self._render(view, version, query.history_length)

    async def _subscribe(self, params: dict[str, Any], tenant: str) -> AsyncGenerator[dict[str, Any], None]:
        self._check_streaming()
        query = parse_task_query(params)
        turns, view = self._task(tenant, query.id)
        if view.terminal:
            raise unsupported(
                f"Task {query.id!r} is in a terminal state ({view.state}); there is nothing to subscribe to"
            )
        return self._follow(tenant, turns, query.history_length)

    # -- push notification configs --------------------------------------------------------------------------

    @staticmethod
    def _no_push() -> RpcError:
        return RpcError(PUSH_NOTIFICATION_NOT_SUPPORTED, "Push notifications are not supported by this agent")

    def _push_task(self, tenant: str, task_id: str) -> None:
        if not self.channel.card.push_notifications:
            raise self._no_push()
        self._task(tenant, task_id)

    @staticmethod
    def _config(config: PushConfig, version: str) -> dict[str, Any]:
        return config.render_v03() if version == V03 else config.render()

    async def _push_set(self, params: dict[str, Any], tenant: str, version: str) -> dict[str, Any]:
        if not self.channel.card.push_notifications:
            raise self._no_push()
        config = parse_push_config(Fields(params, ""), None, uuid.uuid4().hex, version)
        if not config.task_id:
            raise invalid_params("'taskId' is required", "taskId")
        self._push_task(tenant, config.task_id)
        await push.save(self.ctx, tenant, config)
        return self._config(config, version)

    async def _push_get(self, params: dict[str, Any], tenant: str, version: str) -> dict[str, Any]:
        ref = parse_push_ref(params, needs_id=version != V03)  # v0.3 may omit the config id: the first one
        self._push_task(tenant, ref.task_id)
        for config in push.configs(self.ctx, tenant, ref.task_id):
            if ref.id is None or config.id == ref.id:
                return self._config(config, version)
        raise RpcError(
            task_not_found(ref.task_id).code, f"Task {ref.task_id!r} has no push notification config {ref.id!r}"
        )

    async def _push_list(self, params: dict[str, Any], tenant: str, version: str) -> Any:
        ref = parse_push_ref(params, needs_id=False)
        self._push_task(tenant, ref.task_id)
        found = [self._config(config, version) for config in push.configs(self.ctx, tenant, ref.task_id)]
        return found if version == V03 else {"configs": found, "nextPageToken": ""}

    async def _push_delete(self, params: dict[str, Any], tenant: str, version: str) -> None:
        ref = parse_push_ref(params, needs_id=True)
        self._push_task(tenant, ref.task_id)
        assert ref.id is not None
        await push.delete(self.ctx, tenant, ref.task_id, ref.id)

    def _push_body(self, tenant: str, task_id: str, version: str) -> dict[str, Any] | None:
        view = self.book.view(tenant, task_id)
        if view is None:
            return None
        task = self._render(view, version)
        return task if version == V03 else task_event(task)

    async def _extended_card(self, params: dict[str, Any], tenant: str, version: str) -> dict[str, Any]:
        raise unsupported("This agent has no extended agent card (capabilities.extendedAgentCard is false)")


def turn_options(task_id: str, context_id: str, send: SendRequest) -> dict[str, Any]:
    """What a turn keeps in its record (and shows the target as `ctx.options["a2a"]`): the A2A ids, and the
    request's and message's metadata and referenced tasks when given."""
    message = send.message
    options: dict[str, Any] = {"task": task_id, "context": context_id, "message": message.message_id}
    extra = {
        "metadata": send.metadata,
        "messageMetadata": message.metadata,
        "referenceTaskIds": message.reference_task_ids,
    }
    options.update({key: (list(value) if isinstance(value, tuple) else value) for key, value in extra.items() if value})
    return options
