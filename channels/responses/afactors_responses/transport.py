"""The Responses routes: thin I/O around the codec, talking to the host only through `ChannelContext`.

`POST /v1/responses`, `GET|DELETE /v1/responses/{id}`, `POST /v1/responses/{id}/cancel`,
`GET /v1/responses/{id}/input_items`, and a catch-all under `/v1/` so unknown paths and wrong methods get the
OpenAI error envelope too. See docs/channels/responses.md for the wire behaviour.
"""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable, Iterable, Mapping
from contextlib import aclosing
from functools import wraps
from typing import Any, TypeVar

import attrs
import trio
from quart import Response, request
from werkzeug.datastructures import Headers
from werkzeug.exceptions import HTTPException

from afactors.channel import (
    ActorUnavailable,
    ChannelContext,
    Contribution,
    ConversationBusy,
    HookRejected,
    LeanRequest,
    LeanResponse,
    ResponseHook,
    Route,
    RunHook,
    StoreFull,
    SystemClosed,
    TurnHandle,
    TurnView,
    Unauthorized,
    new_turn_id,
)
from afactors.model import BusyPolicy, ConversationKey, Envelope, ErrorInfo, Identity, Message, Reply, Update
from afactors_responses.codec import (
    ApiError,
    CreateRequest,
    EventStream,
    ResponseView,
    input_items_page,
    not_found,
    parse_create,
    parse_page_query,
    parse_response_id,
    render_response,
    replay,
    request_options,
    sse_frame,
    view_of_record,
    view_of_request,
)
from afactors_responses.codec.errors import bad_request
from afactors_responses.codec.output import OutputBuilder, item_owner
from afactors_responses.codec.request import parse_item, resolve_input
from afactors_responses.codec.response import turn_items
from afactors_responses.conversations import ConversationRoutes, conversation_alias, conversation_key
from afactors_responses.http import (
    allow_method,
    check_json_type,
    check_method,
    json_response,
    lean_json,
    mimetype,
    parse_json,
    read_json,
)

log = logging.getLogger("afactors.responses")

T = TypeVar("T")
View = Callable[..., Awaitable[Response]]

METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE")
SSE_HEADERS = {"Content-Type": "text/event-stream", "Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
RESPONSE_ID_HEADER = "X-Afactors-Response-Id"
"""On a created response (JSON or stream): its id, for a front proxy to learn which node a chain continues on
(`stick store-response` in deploy/haproxy.cfg)."""
CANCEL_GRACE = 5.0
"""Seconds a disconnected stream may spend cancelling its turn."""


def error_response(error: ApiError) -> Response:
    return json_response(error.body(), error.status, error.headers)


def _as_api_error(exc: Exception) -> ApiError | None:
    """The envelope for an exception a route may meet; None for a bug."""
    if isinstance(exc, ApiError):
        return exc
    if isinstance(exc, Unauthorized):
        return ApiError(401, str(exc), code="invalid_api_key")
    if isinstance(exc, HookRejected):
        return ApiError(exc.status, exc.message, code=exc.code)
    if isinstance(exc, ConversationBusy):
        return ApiError(
            409,
            "This conversation is already running a response; retry once it has finished.",
            param="conversation",
            code="conversation_busy",
            headers={"x-should-retry": "false"},
        )
    if isinstance(exc, ActorUnavailable):
        return ApiError(
            503,
            str(exc),
            type="server_error",
            code="conversation_unavailable",
            headers={"retry-after": str(max(1, round(exc.retry_after)))},
        )
    if isinstance(exc, SystemClosed):
        return ApiError(503, "The server is shutting down; retry shortly.", type="server_error", code="shutting_down")
    if isinstance(exc, StoreFull):
        return ApiError(507, str(exc), type="server_error", code="insufficient_storage", headers={"retry-after": "30"})
    if isinstance(exc, HTTPException) and exc.code is not None:
        return ApiError(exc.code, exc.description or exc.name, code=exc.name.lower().replace(" ", "_"))
    return None


def refusal(exc: Exception, method: str, path: str) -> ApiError:
    """The error envelope a route answers `exc` with; a bug becomes a logged 500 without a traceback."""
    error = _as_api_error(exc)
    if error is None:
        log.exception("responses route %s %s failed", method, path)
        error = ApiError(500, "The server had an error while processing your request.", type="server_error")
    return error


def guarded(view: View) -> View:
    """Render every refusal as the OpenAI error envelope; a bug becomes a logged 500 without a traceback."""

    @wraps(view)
    async def wrapper(*args: Any, **kwargs: Any) -> Response:
        try:
            return await view(*args, **kwargs)
        except Exception as exc:
            return error_response(refusal(exc, request.method, request.path))

    return wrapper


def _flag_arg(name: str) -> bool:
    value = request.args.get(name)
    if value is None:
        return False
    if value.lower() in ("true", "1"):
        return True
    if value.lower() in ("false", "0"):
        return False
    raise bad_request(f"Invalid '{name}': expected true or false, got {value!r}.", name)


def _starting_after() -> int:
    value = request.args.get("starting_after")
    if value is None:
        return -1
    try:
        number = int(value)
    except ValueError:
        raise bad_request(
            f"Invalid 'starting_after': expected an integer, got {value!r}.", "starting_after", "invalid_type"
        ) from None
    if number < 0:
        raise bad_request(
            "Invalid 'starting_after': expected a value >= 0.", "starting_after", "integer_below_min_value"
        )
    return number


_STOPPED = object()


async def unless_stopped(stop: trio.Event, fn: Callable[[], Awaitable[T]]) -> T | object:
    """`await fn()`, or `_STOPPED` as soon as `stop` is set (the call is then cancelled). An exception of `fn`
    comes out as itself, not wrapped in an ExceptionGroup."""
    if stop.is_set():
        return _STOPPED
    result: T | object = _STOPPED
    error: Exception | None = None
    async with trio.open_nursery() as nursery:

        async def call() -> None:
            nonlocal result, error
            try:
                result = await fn()
            except Exception as exc:
                error = exc
            nursery.cancel_scope.cancel()

        async def watch() -> None:
            await stop.wait()
            nursery.cancel_scope.cancel()

        nursery.start_soon(call)
        nursery.start_soon(watch)
    if error is not None:
        raise error
    return result


_END = object()


async def until_stopped(stop: trio.Event, updates: AsyncIterator[Update]) -> AsyncGenerator[Update, None]:
    """The items of `updates` until they end or `stop` is set."""

    async def pull() -> Update | object:
        try:
            return await updates.__anext__()
        except StopAsyncIteration:
            return _END

    while True:
        item = await unless_stopped(stop, pull)
        if item is _STOPPED or item is _END:
            return
        yield item  # type: ignore[misc]


@attrs.define
class ResponsesChannel:
    """The OpenAI Responses API and the Conversations API (`afactors-responses`).

    `path` is where the API is mounted (`"/v1"` by default, the SDK's base URL; `""` mounts it at the root).
    `busy_policy` overrides the host's for turns of this channel (named conversations only: every other
    response is its own conversation and never busy). `run_hook` may rewrite or refuse envelopes
    (`HookRejected` becomes the error envelope), `response_hook` may rewrite finished replies.
    """

    name: str = "responses"
    path: str = attrs.field(default="/v1", converter=lambda value: value.rstrip("/"))
    busy_policy: BusyPolicy | None = None
    run_hook: RunHook | None = None
    response_hook: ResponseHook | None = None

    def contribute(self, ctx: ChannelContext) -> Contribution:
        routes = _Routes(ctx, self)
        conversations = ConversationRoutes(ctx, routes.tenant, routes.lookup_item)
        base = self.path
        return Contribution(
            routes=[
                Route(f"{base}/responses", guarded(routes.create), methods=METHODS, lean=routes.create_lean),
                Route(f"{base}/responses/<response_id>", guarded(routes.one), methods=METHODS),
                Route(f"{base}/responses/<response_id>/cancel", guarded(routes.cancel), methods=METHODS),
                Route(f"{base}/responses/<response_id>/input_items", guarded(routes.input_items), methods=METHODS),
                *(Route(f"{base}{rule}", guarded(view), methods=METHODS) for rule, view in conversations.table()),
                Route(f"{base}/<path:rest>", guarded(routes.unknown), methods=METHODS),
            ]
        )


USER_HEADERS = ("x-agent-user-id", "x-agent-user-isolation-key")
"""Foundry isolation headers (I-08, as Invocations reads them): with one, a caller's responses and conversations
are those of that user within its API key's tenant."""


def scoped_tenant(tenant: str, headers: Mapping[str, str] | Headers) -> str:
    """The tenant of a request: the API key's, narrowed to the user its isolation header names."""
    for name in USER_HEADERS:
        value = headers.get(name)
        if value:
            if len(value) > 256 or not value.isprintable() or not value.isascii():
                raise bad_request(
                    f"Header {name} must be at most 256 printable ASCII characters.", None, "invalid_header"
                )
            return f"{tenant}/user:{value}"
    return tenant


@attrs.define
class _Live:
    """A foreground response this host is running now: retrievable while it runs (`in_progress`)."""

    tenant: str
    view: ResponseView
    output: OutputBuilder


class _Routes:
    """The views of one channel on one host."""

    def __init__(self, ctx: ChannelContext, channel: ResponsesChannel) -> None:
        self.ctx = ctx
        self.channel = channel
        self.live: dict[str, _Live] = {}

    def tenant(self) -> str:
        return scoped_tenant(self.ctx.tenant(request.headers.get("Authorization")), request.headers)

    def _lean_tenant(self, lean: LeanRequest) -> str:
        headers = {name: value for name in USER_HEADERS if (value := lean.header(name)) is not None}
        return scoped_tenant(self.ctx.tenant(lean.header("authorization")), headers)

    def _visible(self, response_id: str, tenant: str) -> ResponseView:
        response_id = parse_response_id(response_id, "response_id")
        record = self.ctx.record(response_id, tenant)
        if record is not None:
            return view_of_record(record)
        live = self.live.get(response_id)
        if live is None or live.tenant != tenant:
            raise not_found(response_id)
        return live.view

    def _render(self, view: ResponseView) -> dict[str, Any]:
        """The Response object; one still running here shows its output so far."""
        live = self.live.get(view.id)
        partial = live.output.snapshot() if live is not None and not view.terminal else None
        return render_response(view, output=partial)

    def lookup_item(self, tenant: str, conversation: ConversationKey | None) -> Callable[[str], Message | None]:
        """Finds an item by id for `item_reference`: in the tenant's stored responses, else in `conversation`."""

        def lookup(item: str) -> Message | None:
            owner = item_owner(item)
            if owner is None:
                return None
            record = self.ctx.record(owner, tenant)
            turns: Iterable[tuple[str, tuple[Message, ...], tuple[Message, ...]]] = ()
            if record is not None:
                turns = [(record.id, record.input, record.output)]
            elif conversation is not None:
                turns = [(t.turn_id, t.input, t.output) for t in self.ctx.turns(conversation) if t.turn_id == owner]
            for turn_id, inputs, outputs in turns:
                for candidate in turn_items(turn_id, inputs, outputs, encrypted=True):
                    if candidate["id"] == item:
                        parsed = parse_item(candidate, "item")
                        return parsed if isinstance(parsed, Message) else None
            return None

        return lookup

    # -- POST /v1/responses --------------------------------------------------------------------------------

    async def create(self) -> Response:
        check_method(("POST",))
        tenant = self.tenant()
        created = await self._create(tenant, await read_json())
        if isinstance(created, Response):
            return created
        return json_response(created, headers={RESPONSE_ID_HEADER: created["id"]})

    async def create_lean(self, lean: LeanRequest) -> LeanResponse | None:
        """`create` in front of Quart (`Route.lean`); a streamed response is left to `create` (None)."""
        try:
            allow_method(("POST",), lean.method, lean.path)
            tenant = self._lean_tenant(lean)
            check_json_type(mimetype(lean.header("content-type")))
            data = parse_json(lean.body)
            if isinstance(data, dict) and data.get("stream") not in (None, False):
                return None
            created = await self._create(tenant, data)
        except Exception as exc:
            error = refusal(exc, lean.method, lean.path)
            return lean_json(error.body(), error.status, error.headers)
        assert not isinstance(created, Response), "only a stream is a Response, and it went to Quart"
        return lean_json(created, headers={RESPONSE_ID_HEADER: created["id"]})

    async def _create(self, tenant: str, data: object) -> dict[str, Any] | Response:
        """Create a response from request JSON `data`: the Response object, or the SSE stream of one."""
        create = parse_create(data)
        if create.previous_response_id is not None:
            self._check_previous(create.previous_response_id, tenant)
        key = None
        if create.conversation is not None:
            key = conversation_key(tenant, create.conversation)
            if self.conversation_deleted(tenant, create.conversation):
                raise ApiError(404, f"Conversation with id '{create.conversation}' not found.", param="conversation")
        create = attrs.evolve(create, input=resolve_input(create.input, self.lookup_item(tenant, key)))
        envelope = self._envelope(create, tenant)
        if create.background:
            record = await self.ctx.start_background(envelope)
            view = view_of_record(record)
            if create.stream:
                return self._sse(self._follow(view, tenant, -1), view.id)
            return render_response(view)
        created_at = time.time()
        handle = await self.ctx.submit(envelope, stream=create.stream or create.store)
        view = view_of_request(create, handle.turn_id, created_at)
        if create.stream:
            return self._sse(self._stream_turn(envelope, handle, view, tenant), view.id)
        output = OutputBuilder(view.id, encrypted=view.encrypted)
        try:
            if create.store:  # retrievable while it runs, with its output so far
                self.live[view.id] = _Live(tenant, view, output)
                handle.watch(output.add)
            reply = await self.ctx.reply(envelope, handle)
        finally:
            await self._let_go(handle, view.id)
        return render_response(self._finished(view, reply, tenant, handle.record))

    async def _let_go(self, handle: TurnHandle, response_id: str) -> None:
        """A foreground request ends: a turn still running goes with its client (R-37); the response stops being
        live only now, once its record (completed, failed or cancelled) is committed, so it never reads as 404."""
        try:
            if not handle.done:
                with trio.CancelScope(shield=True), trio.move_on_after(CANCEL_GRACE):
                    await self.ctx.abandon(handle)
        finally:
            self.live.pop(response_id, None)

    def conversation_deleted(self, tenant: str, conversation: str) -> bool:
        record = self.ctx.alias(conversation_alias(tenant, conversation))
        return record is not None and bool(record.get("deleted"))

    def _check_previous(self, previous: str, tenant: str) -> None:
        record = self.ctx.record(previous, tenant)
        if record is None:
            raise bad_request(
                f"Previous response with id '{previous}' not found.",
                "previous_response_id",
                "previous_response_not_found",
            )
        if record.status in ("queued", "in_progress"):
            raise bad_request(
                f"Previous response with id '{previous}' is still {record.status}; continue it once it has finished.",
                "previous_response_id",
            )

    def _envelope(self, create: CreateRequest, tenant: str) -> Envelope:
        response_id = new_turn_id("resp_")  # time-ordered: new records append to the B-tree
        # with `follow_identity` the host moves the turn into the user's own conversation
        key = (
            conversation_key(tenant, create.conversation)
            if create.conversation is not None
            else ConversationKey(tenant, "resp:" + response_id)
        )
        who = create.settings.get("safety_identifier") or create.settings.get("user")
        return Envelope(
            key=key,
            input=create.messages,
            turn_id=response_id,
            parent=create.previous_response_id,
            options=request_options(create),
            identity=None if who is None else Identity(self.channel.name, who),
            busy_policy=self.channel.busy_policy,
            follow_identity=create.follow_identity,
            response_target=create.response_target,
        )

    def _finished(
        self, view: ResponseView, reply: Reply, tenant: str, committed: TurnView | None = None
    ) -> ResponseView:
        """The view of a turn that ended, with the stored record's timestamps when it was stored (`committed`: the
        record its commit wrote, saving the read).

        A turn cut by a shutdown (stop-now) reads as failed, so a stream still ends with a terminal event."""
        if reply.status == "cancelled" and reply.error is not None and reply.error.code == "shutdown":
            message = "The server shut down before this response finished; it was not stored."
            reply = Reply(status="failed", error=ErrorInfo("server_error", message))
        record = (committed or self.ctx.record(view.id, tenant)) if view.store else None
        created_at = record.created_at if record is not None else view.created_at
        completed_at = record.completed_at if record is not None else time.time()
        return attrs.evolve(
            view,
            status=reply.status,
            output=reply.messages,
            usage=reply.usage,
            error=reply.error,
            created_at=created_at,
            completed_at=completed_at,
        )

    # -- streams -------------------------------------------------------------------------------------------

    @staticmethod
    def _sse(batches: AsyncGenerator[list[dict[str, Any]], None], created: str | None = None) -> Response:
        """A stream whose every batch of events (those ready together) goes out in one write; `created`: the id of
        the response it creates (`RESPONSE_ID_HEADER`)."""

        async def body() -> AsyncIterator[bytes]:
            async with aclosing(batches) as each:
                async for batch in each:
                    if batch:
                        yield b"".join(sse_frame(event) for event in batch)

        headers = SSE_HEADERS if created is None else {**SSE_HEADERS, RESPONSE_ID_HEADER: created}
        response = Response(body(), status=200, headers=headers)
        response.timeout = None  # Quart would end a long stream after RESPONSE_TIMEOUT
        return response

    async def _stream_turn(
        self, envelope: Envelope, handle: TurnHandle, view: ResponseView, tenant: str
    ) -> AsyncGenerator[list[dict[str, Any]], None]:
        """A foreground stream (R-31), in batches: the events of every update that was ready together. If the client
        goes away the turn is cancelled (R-37)."""
        stream = EventStream(view)
        if view.store:
            self.live[view.id] = _Live(tenant, view, stream.output)
        try:
            yield stream.start()
            async with aclosing(handle.update_batches()) as batches:
                async for updates in batches:
                    yield [event for update in updates for event in stream.add(update)]
            try:
                reply = await self.ctx.reply(envelope, handle)
            except Exception:
                log.exception("response hook failed on %s", view.id)
                reply = Reply(status="failed", error=ErrorInfo("server_error", "The response could not be finished."))
            yield stream.finish(self._finished(view, reply, tenant, handle.record))
        finally:
            await self._let_go(handle, view.id)

    async def _follow(
        self, view: ResponseView, tenant: str, starting_after: int
    ) -> AsyncGenerator[list[dict[str, Any]], None]:
        """A background response's events from sequence 0 (R-41), without those up to `starting_after`, in batches.

        Live while it runs on this host, rendered from the record once it has ended (the same events, see
        `output.split_chunks`). The stream ends early when the host shuts down; a client going away does not
        affect the run.
        """
        async with aclosing(self._background_events(view, tenant)) as events:
            async for batch in events:
                yield [event for event in batch if event["sequence_number"] > starting_after]

    async def _background_events(self, view: ResponseView, tenant: str) -> AsyncGenerator[list[dict[str, Any]], None]:
        if view.terminal:
            yield replay(view)
            return
        stream = EventStream(view, chunked=True)
        yield stream.start()
        stop = self.ctx.shutting_down
        live = self.ctx.watch(view.id)
        if live is not None:
            async with aclosing(live), aclosing(until_stopped(stop, live)) as updates:  # type: ignore[type-var]
                async for update in updates:
                    yield stream.add(update)
        final = await unless_stopped(stop, lambda: self.ctx.wait(view.id, tenant))
        if isinstance(final, TurnView):
            yield stream.finish(view_of_record(final))

    # -- GET / DELETE /v1/responses/{id} --------------------------------------------------------------------

    async def one(self, response_id: str) -> Response:
        check_method(("GET", "DELETE"))
        tenant = self.tenant()
        view = self._visible(response_id, tenant)
        if request.method == "DELETE":
            if not view.terminal:  # its commit would store it again; it must end (or be cancelled) first
                raise bad_request(
                    f"Response '{view.id}' is still {view.status}; cancel it or let it finish before deleting it.",
                    None,
                    None,
                )
            if not await self.ctx.delete(view.id, tenant):
                raise not_found(response_id)
            return json_response({"id": view.id, "object": "response", "deleted": True})
        stream, starting_after = _flag_arg("stream"), _starting_after()
        if not stream:
            return json_response(self._render(view))
        if not view.background:
            raise bad_request("Only responses created with background=true can be streamed again.", "stream")
        return self._sse(self._follow(view, tenant, starting_after))

    # -- POST /v1/responses/{id}/cancel --------------------------------------------------------------------

    async def cancel(self, response_id: str) -> Response:
        check_method(("POST",))
        tenant = self.tenant()
        view = self._visible(response_id, tenant)
        if not view.background:
            raise bad_request("Only responses created with background=true can be cancelled.", None, None)
        record = await self.ctx.cancel(view.id, tenant)
        if record is None:
            raise not_found(response_id)
        return json_response(render_response(view_of_record(record)))

    # -- GET /v1/responses/{id}/input_items ----------------------------------------------------------------

    async def input_items(self, response_id: str) -> Response:
        check_method(("GET",))
        tenant = self.tenant()
        view = self._visible(response_id, tenant)
        return json_response(input_items_page(view, parse_page_query(dict(request.args))))

    # -- anything else under /v1/ ----------------------------------------------------------------------------

    async def unknown(self, rest: str) -> Response:
        raise ApiError(404, f"Invalid URL ({request.method} {request.path})", code="unknown_url")
