"""The internal routes another node forwards turns to (served when the host has a cluster secret; wire format in
`afactors.cluster._wire`).

`POST /v1/cluster/turns` runs a forwarded envelope on this node as it arrives: the channel's `run_hook` and the
identity check already ran on the node that received the request, so here it goes straight to the actor system
(through the channel's context, for its metrics and background bookkeeping). A forwarded request is never forwarded
again: when this node does not own the conversation (any more) it answers 409 `not_owner` and the sender locates
the owner anew. It is served in front of Quart (`LeanFront`) when the request is plain; the Quart view answers the
rest (a chunked or slow body, one over the limit) alike. `POST /v1/cluster/turns/<id>/cancel` cancels a turn this
node holds; `POST /v1/cluster/turns/<id>/follow` follows a background turn it runs (its updates from the first, then
its end) for a node whose client follows the turn there; `POST /v1/cluster/pushes` queues a channel's push into a
conversation this node owns (once per push id); `POST /v1/cluster/dead-letters/replay` gives dead letters of a
conversation this node owns another go (a redrive or an admin replay asked of another node; each moves once).

Every request must carry `Authorization: Bearer <cluster secret>` (401 without, 403 when wrong; compared in constant
time) and `Afactors-Forwarded-By: <sending node id>` (400 without; 508 `loop_detected` when it names this node).

Must not import: `afactors.host._host` (it imports this).
"""

from __future__ import annotations

import hmac
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from typing import TypeVar

import attrs
import trio
from quart import Response, request
from werkzeug.exceptions import RequestEntityTooLarge

from afactors.actors import ActorSystem, ActorUnavailable, ConversationBusy, NotOwner, SystemClosed, TurnHandle
from afactors.admin import ConversationReplay
from afactors.channel import LeanRequest, LeanResponse, Route
from afactors.cluster import Locator
from afactors.cluster._wire import (
    CANCEL_RULE,
    FOLLOW_RULE,
    FORWARDED_BY,
    NDJSON,
    PUSHES_PATH,
    REPLAY_PATH,
    TURNS_PATH,
    Accepted,
    Ended,
    Finished,
    Queued,
    Streamed,
    WireError,
    decode_follow,
    decode_push,
    decode_replay,
    decode_request,
    encode_error,
    encode_event,
    encode_pushed,
    encode_replayed,
)
from afactors.host._background import BackgroundTurns, TurnLog
from afactors.host.context import HostChannelContext
from afactors.model import ConversationKey
from afactors.store import StoreFull

_T = TypeVar("_T")

Header = Callable[[str], str | None]
"""A request header by name (any case), or None."""


@attrs.frozen
class _Answer:
    """What a route answers, for Quart or the lean front alike: `body`, then `stream`'s chunks when it streams."""

    status: int
    body: bytes
    stream: AsyncIterator[bytes] | None = None
    retry_after: float | None = None
    events: bool = True  # a 200 is NDJSON events (else JSON)

    def headers(self) -> tuple[tuple[str, str], ...]:
        kind = ("content-type", NDJSON if self.status == 200 and self.events else "application/json")
        length = () if self.stream is not None else (("content-length", str(len(self.body))),)
        retry = () if self.retry_after is None else (("retry-after", str(max(1, round(self.retry_after)))),)
        return (kind, *length, *retry)

    def quart(self) -> Response:
        body = self.body if self.stream is None else _chained(self.body, self.stream)
        response = Response(body, status=self.status, headers=dict(self.headers()))
        response.timeout = None  # a turn may run long; the heartbeats show it is alive
        return response

    def lean(self) -> LeanResponse:
        return LeanResponse(self.status, self.headers(), self.body, self.stream)


async def _chained(first: bytes, rest: AsyncIterator[bytes]) -> AsyncIterator[bytes]:
    yield first
    async for chunk in rest:
        yield chunk


class _Refused(Exception):
    def __init__(self, status: int, code: str, message: str, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.status, self.code, self.message, self.retry_after = status, code, message, retry_after

    def answer(self) -> _Answer:
        return _Answer(self.status, encode_error(self.code, self.message), retry_after=self.retry_after)


def _refusal(error: Exception) -> _Refused | None:
    """The answer to a local submit's refusal (the sender raises the same error on its side)."""
    if isinstance(error, ConversationBusy):
        return _Refused(409, "conversation_busy", str(error))
    if isinstance(error, ActorUnavailable):
        return _Refused(503, "unavailable", str(error), error.retry_after)
    if isinstance(error, SystemClosed):
        return _Refused(503, "shutting_down", "this node is shutting down", 1.0)
    if isinstance(error, StoreFull):
        return _Refused(507, "insufficient_storage", str(error), 30.0)
    return None


async def _as_owner(write: Awaitable[_T]) -> _T:
    """`await write`, made by this node as the conversation's owner: 409 `not_owner` when another node took it
    meanwhile (the sender locates it anew), a local refusal's answer (`_refusal`) for the others."""
    try:
        return await write
    except NotOwner as error:
        raise _Refused(409, "not_owner", str(error)) from None
    except Exception as error:
        raise _refusal(error) or error from None


class ClusterRoutes:
    """The views that run forwarded turns on this node (`POST /v1/cluster/turns` also lean: in front of Quart)."""

    def __init__(
        self,
        secret: str,
        node_id: str,
        locator: Locator | None,
        system: ActorSystem,
        contexts: Mapping[str, HostChannelContext],
        background: BackgroundTurns,
        replay_here: ConversationReplay,
        *,
        heartbeat: float,
        max_body_bytes: int,
    ) -> None:
        self._secret = secret.encode()
        self.node_id, self.locator, self.system, self.contexts = node_id, locator, system, contexts
        self.background, self.replay_here = background, replay_here
        self.heartbeat, self.max_body_bytes = heartbeat, max_body_bytes

    def routes(self) -> list[Route]:
        return [
            Route(TURNS_PATH, self.turns, methods=("POST",), lean=self.turns_lean),
            Route(CANCEL_RULE, self.cancel, methods=("POST",)),
            Route(FOLLOW_RULE, self.follow, methods=("POST",)),
            Route(PUSHES_PATH, self.pushes, methods=("POST",)),
            Route(REPLAY_PATH, self.replay, methods=("POST",)),
        ]

    def _check(self, header: Header) -> None:
        scheme, _, token = (header("Authorization") or "").partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise _Refused(401, "unauthorized", "missing cluster secret: send 'Authorization: Bearer <secret>'")
        if not hmac.compare_digest(token.strip().encode(), self._secret):
            raise _Refused(403, "forbidden", "wrong cluster secret")
        sender = header(FORWARDED_BY)
        if not sender:
            raise _Refused(400, "bad_request", f"missing the {FORWARDED_BY} header naming the sending node")
        if sender == self.node_id:
            raise _Refused(508, "loop_detected", f"node {self.node_id} forwarded a turn to itself")

    async def turns(self) -> Response:
        try:
            self._check(request.headers.get)
            answer = await self._turn(await self._body())
        except _Refused as refused:
            answer = refused.answer()
        return answer.quart()

    async def pushes(self) -> Response:
        """Queue a push another node was asked for, once per push id: `{"pushed", "duplicate"}`."""
        try:
            self._check(request.headers.get)
            push = _decoded(decode_push, await self._body())
            ctx = self._context(push.channel)
            await self._owned(push.key)
            queued = await _as_owner(ctx.push_here(push, once=True))
            answer = _Answer(200, encode_pushed(push.push_id, duplicate=not queued), events=False)
        except _Refused as refused:
            answer = refused.answer()
        return answer.quart()

    async def replay(self) -> Response:
        """Give dead letters of a conversation this node owns another go, each once: `{"replayed": n}`; 400 for a
        dead letter of another conversation, 409 `not_owner` when another node owns it (the sender locates it
        anew)."""
        try:
            self._check(request.headers.get)
            replay = _decoded(decode_replay, await self._body())
            try:
                moved = await _as_owner(self.replay_here(replay.key, replay.dead_letters))
            except ValueError as error:  # a dead letter of another conversation
                raise _Refused(400, "bad_request", str(error)) from None
            answer = _Answer(200, encode_replayed(moved), events=False)
        except _Refused as refused:
            answer = refused.answer()
        return answer.quart()

    async def _body(self) -> bytes | str:
        """The Quart request's body, within the limit (413 otherwise)."""
        if (request.content_length or 0) > self.max_body_bytes:
            raise self._too_large()
        try:
            return await request.get_data()
        except RequestEntityTooLarge:
            raise self._too_large() from None

    def _context(self, channel: str) -> HostChannelContext:
        ctx = self.contexts.get(channel)
        if ctx is None:
            raise _Refused(400, "unknown_channel", f"this node serves no channel {channel!r}")
        return ctx

    async def _owned(self, key: ConversationKey) -> None:
        """409 `not_owner` when another node owns `key`'s conversation (a forwarded request is never forwarded)."""
        if self.locator is not None and (owner := await self.locator.locate(key)) is not None:
            raise _Refused(
                409, "not_owner", f"node {self.node_id} does not own this conversation ({owner.node_id} does)"
            )

    async def turns_lean(self, lean: LeanRequest) -> LeanResponse:
        """`turns` in front of Quart (the lean front only passes bodies within the limit)."""
        try:
            self._check(lean.header)
            answer = await self._turn(lean.body)
        except _Refused as refused:
            answer = refused.answer()
        return answer.lean()

    def _too_large(self) -> _Refused:
        return _Refused(413, "payload_too_large", f"the body is larger than {self.max_body_bytes} bytes")

    async def _turn(self, body: bytes | str) -> _Answer:
        forward = _decoded(decode_request, body)
        ctx = self._context(forward.channel)
        envelope = forward.envelope
        if envelope.turn_id is None or envelope.idempotency_key is None:
            raise _Refused(400, "bad_envelope", "a forwarded envelope needs a turn id and an idempotency key")
        await self._owned(envelope.key)
        # Another node may take the conversation between that look and the submit: 409 `not_owner` then, too.
        if forward.background:
            record = await _as_owner(ctx.start_here(envelope))
            return _Answer(200, encode_event(Accepted(record.id)) + encode_event(Queued(record)))
        handle = await _as_owner(ctx.run_here(envelope, forward.stream))
        if handle.done:  # answered before: accepted and the reply in one piece
            accepted = encode_event(Accepted(handle.turn_id, done=True))
            return _Answer(200, accepted + encode_event(Finished(await handle.reply(), handle.stream_dropped)))
        return _Answer(200, encode_event(Accepted(handle.turn_id)), self._events(handle, forward.stream))

    async def _events(self, handle: TurnHandle, stream: bool) -> AsyncIterator[bytes]:
        """The turn's answer after "accepted": its updates (when streamed), its reply; a heartbeat line whenever
        nothing else was sent for `heartbeat` seconds. The sender going away leaves the turn running (it is
        durable)."""
        if stream:
            while True:
                batch = None
                with trio.move_on_after(self.heartbeat):
                    batch = await handle.next_batch()
                if batch == []:
                    break
                yield b"".join(encode_event(Streamed(update)) for update in batch) if batch else b"\n"
        async for beat in self._until_ended(handle):
            yield beat
        yield encode_event(Finished(await handle.reply(), handle.stream_dropped))

    async def _until_ended(self, handle: TurnHandle) -> AsyncIterator[bytes]:
        """A heartbeat line every `heartbeat` seconds until `handle`'s turn has ended."""
        while True:
            with trio.move_on_after(self.heartbeat):
                await handle.reply()
                return
            yield b"\n"

    async def follow(self, turn_id: str) -> Response:
        """Follow a background turn this node runs: "accepted", its updates from the first (when asked), heartbeats,
        then "ended" once it has ended; 404 `not_running` when this node holds no such turn."""
        try:
            self._check(request.headers.get)
            updates = _decoded(decode_follow, await self._body())
            turn_log = self.background.log(turn_id) if updates else None
            handle = None if turn_log is not None else self.system.join(turn_id)
            if turn_log is None and handle is None:
                raise _Refused(404, "not_running", f"node {self.node_id} runs no turn {turn_id!r}")
            answer = _Answer(200, encode_event(Accepted(turn_id)), self._followed(turn_id, turn_log, handle))
        except _Refused as refused:
            answer = refused.answer()
        return answer.quart()

    async def _followed(
        self, turn_id: str, turn_log: TurnLog | None, handle: TurnHandle | None
    ) -> AsyncIterator[bytes]:
        """A followed turn's answer after "accepted": the updates of `turn_log` (a heartbeat line whenever there were
        none for `heartbeat` seconds) until the turn has ended, or heartbeats until `handle`'s has; then "ended"."""
        if turn_log is not None:
            sent = 0
            while True:
                batch = None
                with trio.move_on_after(self.heartbeat):
                    batch = await turn_log.after(sent)
                if batch == []:
                    break
                sent += len(batch or ())
                yield b"".join(encode_event(Streamed(update)) for update in batch) if batch else b"\n"
        elif handle is not None:
            async for beat in self._until_ended(handle):
                yield beat
        yield encode_event(Ended(turn_id))

    async def cancel(self, turn_id: str) -> Response:
        try:
            self._check(request.headers.get)
        except _Refused as refused:
            return refused.answer().quart()
        cancelled = await self.system.cancel(turn_id)
        return Response(b'{"cancelled": %s}' % (b"true" if cancelled else b"false"), content_type="application/json")


def _decoded(decode: Callable[[bytes | str], _T], body: bytes | str) -> _T:
    """`decode(body)`; a malformed body is refused with 400 and the codec's error code."""
    try:
        return decode(body)
    except WireError as error:
        raise _Refused(400, error.code, error.message) from None
