"""The Chat Completions and Models routes: thin I/O around the codec, talking to the host through `ChannelContext`.

Stateless by default: a request is a "transient" turn on a fresh conversation key (the target sees the request's
messages, nothing is committed, the actor is dropped right after), so chat traffic never grows the store. With a
conversation key (header `x-afactors-conversation`, else the body's `user`) the request is a turn of that
conversation's actor: the messages after the request's last assistant message are its input, the actor supplies
the history, and the turn is committed and serialised like any other.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import AsyncIterator, Sequence

import attrs
import trio
from quart import Response, request

from afactors.channel import ChannelContext, Contribution, ResponseHook, Route, RunHook, TurnHandle
from afactors.model import BusyPolicy, ConversationKey, Envelope, ErrorInfo, Identity, Reply
from afactors_chat.codec import (
    ChatRequest,
    ChunkStream,
    model_object,
    new_input,
    parse_chat,
    render_completion,
    render_models,
    sse,
)
from afactors_responses.codec import ApiError
from afactors_responses.http import check_method, json_response, read_json
from afactors_responses.transport import METHODS, guarded

CONVERSATION_HEADER = "x-afactors-conversation"
CANCEL_GRACE = 5.0


def _reply_error(reply: Reply) -> ApiError | None:
    """The error of a turn that did not complete (a chat completion has no failed status: it is an HTTP error)."""
    if reply.status == "completed":
        return None
    info = reply.error or ErrorInfo("server_error", "The completion did not finish.")
    if reply.status == "cancelled" and info.code == "shutdown":
        return ApiError(
            503, "The server shut down before the completion finished.", type="server_error", code="shutting_down"
        )
    return ApiError(500, f"The completion failed: {info.message}", type="server_error", code=info.code)


@attrs.define
class ChatChannel:
    """OpenAI Chat Completions and Models (`afactors-chat`), mounted at `path` (`"/v1"`; `""` for the root).

    `models` are the names `GET /v1/models` lists (any name is accepted in a request and echoed).
    """

    name: str = "chat"
    path: str = attrs.field(default="/v1", converter=lambda value: value.rstrip("/"))
    models: Sequence[str] = ("afactors",)
    busy_policy: BusyPolicy | None = None
    run_hook: RunHook | None = None
    response_hook: ResponseHook | None = None

    def contribute(self, ctx: ChannelContext) -> Contribution:
        # the guard and the error envelope are the Responses channel's: one OpenAI wire
        routes = _ChatRoutes(ctx, self)
        return Contribution(
            routes=[
                Route(f"{self.path}/chat/completions", guarded(routes.completions), methods=METHODS),
                Route(f"{self.path}/models", guarded(routes.models), methods=METHODS),
                Route(f"{self.path}/models/<path:model>", guarded(routes.model), methods=METHODS),
            ]
        )


class _ChatRoutes:
    def __init__(self, ctx: ChannelContext, channel: ChatChannel) -> None:
        self.ctx, self.channel = ctx, channel
        self.started = int(time.time())

    async def completions(self) -> Response:
        check_method(("POST",))
        tenant = self.ctx.tenant(request.headers.get("Authorization"))
        chat = parse_chat(await read_json())
        envelope = self._envelope(chat, tenant)
        handle = await self.ctx.submit(envelope, stream=chat.stream)
        completion_id, created = "chatcmpl-" + uuid.uuid4().hex, int(time.time())
        if chat.stream:
            response = Response(
                self._stream(envelope, handle, chat, completion_id, created),
                status=200,
                headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache"},
            )
            response.timeout = None
            return response
        try:
            reply = await self.ctx.reply(envelope, handle)
        finally:
            await self._let_go(handle)
        if (error := _reply_error(reply)) is not None:
            raise error
        return json_response(render_completion(completion_id, created, chat.model, reply))

    def _envelope(self, chat: ChatRequest, tenant: str) -> Envelope:
        key = request.headers.get(CONVERSATION_HEADER) or chat.user
        identity = None if chat.user is None else Identity(self.channel.name, chat.user)
        if key:
            if len(key) > 256 or not key.isprintable():
                raise ApiError(400, "Invalid conversation key: at most 256 printable characters.", code="invalid_value")
            return Envelope(
                ConversationKey(tenant, "chat:" + key),
                new_input(chat.messages),
                options=chat.options,
                identity=identity,
                busy_policy=self.channel.busy_policy,
            )
        return Envelope(
            ConversationKey(tenant, "chat-transient:" + uuid.uuid4().hex),
            chat.messages,
            kind="transient",
            options=chat.options,
            identity=identity,
        )

    async def _let_go(self, handle: TurnHandle) -> None:
        if not handle.done:  # the client went away: the turn goes with it
            with trio.CancelScope(shield=True), trio.move_on_after(CANCEL_GRACE):
                await self.ctx.abandon(handle)

    async def _stream(
        self, envelope: Envelope, handle: TurnHandle, chat: ChatRequest, completion_id: str, created: int
    ) -> AsyncIterator[bytes]:
        chunks = ChunkStream(completion_id, created, chat.model, chat.include_usage)
        try:
            async for update in handle.updates():
                for chunk in chunks.delta(update.delta):
                    yield sse(chunk)
            reply = await self.ctx.reply(envelope, handle)
            error = _reply_error(reply)
            if error is not None:
                yield sse(error.body())  # the SDK raises an APIError on an event with an "error" key
            else:
                for chunk in chunks.finish(reply):
                    yield sse(chunk)
            yield sse("[DONE]")
        finally:
            await self._let_go(handle)

    async def models(self) -> Response:
        check_method(("GET",))
        self.ctx.tenant(request.headers.get("Authorization"))
        return json_response(render_models(self.channel.models, self.started))

    async def model(self, model: str) -> Response:
        check_method(("GET",))
        self.ctx.tenant(request.headers.get("Authorization"))
        if model not in self.channel.models:
            raise ApiError(404, f"The model '{model}' does not exist.", param="model", code="model_not_found")
        return json_response(model_object(model, self.started))
