"""`Forwarder`: hands a turn of a conversation this node does not own to the owner, and `ForwardedTurn`, the handle
that stands for it here.

Why at the envelope level: every channel submits envelopes through its `ChannelContext`, so forwarding there (after
the channel's `run_hook` and the identity check ran on this node, before the actor) serves every protocol unchanged;
the channel gets a `TurnHandle` as it would locally and renders it with its own code (and its `response_hook`).
The owner runs the envelope as it arrives: nothing runs twice.

How a turn moves (wire format: `_wire`):
- The envelope always carries an idempotency key (its turn id when the channel set none), so the owner writes it to
  its inbox before it answers "accepted", and sending it again is deduplicated: joined while it runs, answered from
  the store once done. Every retry below relies on that.
- Before "accepted": the owner answers `not_owner` (its lease moved), refuses because it shuts down, cannot be
  reached or stays silent: locate again and resend, with jittered backoff, at most `attempts` times within `wait`
  seconds; then `ActorUnavailable` (the channel's 503 with `Retry-After`). A refusal about the turn itself
  (`conversation_busy`, `unavailable`, `insufficient_storage`) is raised as the local error; the owner's 413 (the
  envelope is larger than the request it came from) as the HTTP 413 every channel renders in its protocol.
- After "accepted": a task of the forwarder's nursery reads the owner's events into the handle (a bounded stream,
  as a local turn's: a consumer more than the buffer behind loses the stream, never the reply). If the connection
  breaks or stays silent past `silence` (the owner sends a heartbeat line every `silence / 3` seconds), the stream
  is given up (`stream_dropped`) and the reply fetched by resending the envelope (it joins the turn on whichever node
  owns the conversation now, this one included).
- `cancel` asks the node holding the turn to cancel it; a caller that merely stops waiting cancels nothing.
- `push` (a channel's push into a conversation) goes to the owner's `POST /v1/cluster/pushes` with the same
  relocating and resending as a turn before "accepted"; its push id makes a resend after a lost answer a no-op.
  `replay` (dead letters of a conversation given another go) goes to `POST /v1/cluster/dead-letters/replay` alike;
  the owner moves each dead letter only while it is there, so a resend moves nothing twice.
- Following a background turn (`watch`, `wait`) asks the owner of its conversation, which answers with the turn's
  updates from the first and then its end; a broken answer ends the updates (the caller then waits for the end,
  which asks again, wherever the turn runs now).

Must not import: `afactors.host` (the host imports this package).
"""

from __future__ import annotations

import logging
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager, suppress
from typing import TypeVar

import attrs
import orjson
import trio
from werkzeug.exceptions import RequestEntityTooLarge

from afactors._backoff import Backoff
from afactors.actors import ActorUnavailable, ConversationBusy, TurnHandle, new_turn_id
from afactors.cluster._locator import Locator, Peer
from afactors.cluster._peers import PeerClient, PeerError, PeerResponse
from afactors.cluster._wire import (
    FORWARDED_BY,
    PUSHES_PATH,
    REPLAY_PATH,
    TURNS_PATH,
    Accepted,
    Ended,
    Event,
    Finished,
    ForwardRequest,
    PushRequest,
    Queued,
    ReplayRequest,
    Streamed,
    WireError,
    cancel_path,
    decode_error,
    decode_event,
    decode_pushed,
    decode_replayed,
    encode_follow,
    encode_push,
    encode_replay,
    encode_request,
    follow_path,
)
from afactors.model import ConversationKey, Envelope, ErrorInfo, Reply, Update
from afactors.store import ResponseRecord, StoreFull

log = logging.getLogger("afactors.cluster")

RunHere = Callable[[Envelope, bool], Awaitable[TurnHandle]]
"""Submit an admitted envelope to this node's actor system, with or without a stream (the conversation is ours)."""
StartHere = Callable[[Envelope], Awaitable[ResponseRecord]]
"""Accept an admitted envelope as a background turn on this node; its queued record."""
Observe = Callable[[str, str, float], None]
"""(channel, outcome, seconds from submit to the owner's answer): reported for every forwarded turn."""
WatchHere = Callable[[str], AsyncIterator[Update] | None]
"""The updates of a background turn from its first, when it runs on this node (else None)."""
EndedHere = Callable[[str], Awaitable[bool]]
"""Wait until a turn running on this node has ended; False at once when this node holds no such turn."""
PushHere = Callable[[PushRequest], Awaitable[bool]]
"""Queue a push on this node (the conversation is ours), once per push id: False when it was queued before."""
ReplayHere = Callable[[ConversationKey, Sequence[str]], Awaitable[int]]
"""Give dead letters of a conversation another go on this node (the conversation is ours); how many moved."""

T = TypeVar("T")


@attrs.frozen
class ForwardPolicy:
    """How hard a node tries to hand a turn to its owner.

    `wait`: seconds spent relocating and resending a turn nobody accepts (about a lease's time, so a dead owner's lease
    expires meanwhile) before the client gets a 503; `attempts`: sends at most within that time; `retry_after`: the
    seconds that 503 tells the client to wait. `connect_timeout`: to open a connection to a peer. `silence`: the
    longest an owner may send nothing (it sends a heartbeat every third of it). `max_connections`: open connections to
    all peers at most (each running forwarded turn holds one).
    """

    wait: float = attrs.field(default=15.0, validator=attrs.validators.gt(0))
    attempts: int = attrs.field(default=8, validator=attrs.validators.ge(1))
    retry_after: float = attrs.field(default=5.0, validator=attrs.validators.ge(0))
    connect_timeout: float = attrs.field(default=2.0, validator=attrs.validators.gt(0))
    silence: float = attrs.field(default=15.0, validator=attrs.validators.gt(0))
    max_connections: int = attrs.field(default=1000, validator=attrs.validators.ge(1))
    backoff: Backoff = attrs.field(factory=lambda: Backoff(0.05, 1.0))

    @property
    def heartbeat(self) -> float:
        return self.silence / 3


class ForwardedTurn(TurnHandle):
    """The handle of a turn running on another node: the same `reply()`, `updates()` and `done` as a local one.
    `peer`: the node holding it (it changes if the turn is joined on a new owner)."""

    __slots__ = ("peer",)

    def __init__(self, turn_id: str, peer: Peer, *, stream: bool = False) -> None:
        super().__init__(turn_id, stream=stream)
        self.peer = peer

    def deliver(self, update: Update) -> None:
        self._push(update)

    def finish(self, reply: Reply, *, stream_dropped: bool = False) -> None:
        if stream_dropped:
            self._drop_stream()
        self._resolve(reply)

    def lose_stream(self) -> None:
        """The updates stop (`stream_dropped`); the reply still comes."""
        self._drop_stream()


class _Retry(Exception):
    """This send failed in a way another (relocated) send may not: the owner moved, left, or went silent."""


@attrs.define
class _Opened:
    """An owner's answer whose first event was read: the turn is accepted."""

    peer: Peer
    response: PeerResponse
    lines: AsyncGenerator[bytes, None]
    accepted: Accepted
    complete: bool = False

    async def next(self) -> Event | None:
        """The next event (heartbeats skipped); None at the end of the answer."""
        async for line in self.lines:
            if line.strip():
                event = decode_event(line)
                self.complete = isinstance(event, Finished | Queued | Ended)
                return event
        return None

    async def aclose(self) -> None:
        with trio.CancelScope(shield=True), trio.move_on_after(1.0):  # closing a socket: never let it hang shutdown
            if self.complete:  # read the (empty) rest, so the connection can serve the next turn
                with suppress(PeerError):
                    async for _ in self.lines:
                        pass
            await self.lines.aclose()
            await self.response.aclose()


class Forwarder:
    """Forwards turns of conversations another node owns (`locator`), authenticated with the cluster `secret`.

    Open it with `async with Forwarder.open(locator, secret) as forwarder:`, around everything that submits through
    it (the HTTP server included): the forwarded turns it reads live in its nursery, and leaving the block cuts those
    still running (their handles end "cancelled"/"shutdown"; the turns run on at their owners). `max_body_bytes`: the
    largest body the nodes take (a turn whose envelope is larger is refused here, as the owner would refuse it).
    """

    def __init__(self, locator: Locator, secret: str, client: PeerClient, nursery: trio.Nursery,
                 policy: ForwardPolicy, max_body_bytes: int | None = None) -> None:  # fmt: skip
        self.locator, self.policy, self.max_body_bytes = locator, policy, max_body_bytes
        self.observe: Observe | None = None
        self._headers = {"authorization": f"Bearer {secret}", FORWARDED_BY: locator.node_id}
        self._turn_headers = {**self._headers, "content-type": "application/json"}
        self._client, self._nursery = client, nursery

    @classmethod
    @asynccontextmanager
    async def open(
        cls, locator: Locator, secret: str, policy: ForwardPolicy | None = None, max_body_bytes: int | None = None
    ) -> AsyncIterator[Forwarder]:
        """A running forwarder: its HTTP client (keep-alive connections to the peers, one per running forwarded turn)
        and the nursery of the turns it reads."""
        policy = policy or ForwardPolicy()
        client = PeerClient(connect=policy.connect_timeout, silence=policy.silence,
                            max_connections=policy.max_connections)  # fmt: skip
        try:
            async with trio.open_nursery() as nursery:
                try:
                    yield cls(locator, secret, client, nursery, policy, max_body_bytes)
                finally:
                    nursery.cancel_scope.cancel()
        finally:
            await client.aclose()

    # -- submitting -----------------------------------------------------------------------------------------

    async def submit(self, envelope: Envelope, channel: str, stream: bool, here: RunHere) -> TurnHandle:
        """The handle of `envelope`'s turn: run `here` when this node owns its conversation, else on its owner.

        Raises what a local submit raises; `ActorUnavailable` when no owner accepted it within the policy's wait.
        """
        peer = await self._locate(envelope.key)
        if peer is None:
            return await here(envelope, stream)
        forward = ForwardRequest(_keyed(envelope), channel, stream)
        handle: ForwardedTurn | None = await self._nursery.start(self._turn, forward, peer, here)
        return await here(forward.envelope, stream) if handle is None else handle

    async def start_background(self, envelope: Envelope, channel: str, here: StartHere) -> ResponseRecord:
        """`submit` for a background turn (`envelope` has its turn id and idempotency key): its queued record."""
        peer = await self._locate(envelope.key)
        if peer is None:
            return await here(envelope)
        opened = await self._hand_over(ForwardRequest(envelope, channel, background=True), peer)
        if opened is None:
            return await here(envelope)
        try:
            event = await self._event(opened)
        finally:
            await opened.aclose()
        if not isinstance(event, Queued):
            raise ActorUnavailable(envelope.key, self.policy.retry_after, "because its owner's answer broke off")
        return event.record

    async def push(self, push: PushRequest, here: PushHere) -> bool:
        """Queue `push` where its conversation is owned: `here` when this node owns it, else on its owner (relocated
        and resent as a turn is). False when a send whose answer was lost had queued it already.

        Raises what a local push raises; `ActorUnavailable` when no owner took it within the policy's wait."""
        peer = await self._locate(push.key)
        body = encode_push(push)
        duplicate = await self._until_accepted(
            push.key, push.channel, peer, lambda to: self._exchange(to, PUSHES_PATH, push.key, body, decode_pushed)
        )
        return await here(push) if duplicate is None else not duplicate

    async def replay(self, key: ConversationKey, dead_letters: Sequence[str], here: ReplayHere) -> int:
        """Give the dead letters `dead_letters` of conversation `key` another go where it is owned: `here` when this
        node owns it, else on its owner (relocated and resent as a push is); how many moved.

        Raises what a local replay raises; `ActorUnavailable` when no owner took them within the policy's wait."""
        peer = await self._locate(key)
        body = encode_replay(ReplayRequest(key, tuple(dead_letters)))
        moved = await self._until_accepted(
            key, None, peer, lambda to: self._exchange(to, REPLAY_PATH, key, body, decode_replayed)
        )
        return await here(key, dead_letters) if moved is None else moved

    async def _exchange(
        self, peer: Peer, path: str, key: ConversationKey, body: bytes, decode: Callable[[bytes], T]
    ) -> T:
        """POST `body` (a write into conversation `key`) to `peer`'s `path`; its answer, decoded. Raises `_Retry` when
        `peer` cannot be reached or its answer cannot be read (the write may have been done: a resend is a no-op, a
        push being deduplicated by its id and a dead letter gone once moved), and what a refusal means."""
        try:
            response = await self._client.post(peer.url.rstrip("/") + path, body, self._turn_headers)
            try:
                content = await response.read()
            finally:
                await response.aclose()
        except PeerError as error:
            raise _Retry(f"unreachable: {error}") from None
        if response.status != 200:
            self._refused(key, peer, response.status, content, response.headers.get("retry-after"))
        try:
            return decode(content)
        except WireError as error:
            raise _Retry(f"its answer to {path} is not one: {error}") from None

    async def cancel(self, handle: ForwardedTurn) -> bool:
        """Cancel a forwarded turn on the node holding it; True once it was cancelled there (and `handle` ended)."""
        if handle.done or not await self.cancel_at(handle.peer, handle.turn_id):
            return False
        with trio.move_on_after(self.policy.silence):
            await handle.reply()
        return True

    async def cancel_where(self, key: ConversationKey, turn_id: str, here: Callable[[str], Awaitable[bool]]) -> bool:
        """Cancel a turn of conversation `key` where it runs: `here` when this node owns it, else on its owner."""
        peer = await self._locate(key)
        return await here(turn_id) if peer is None else await self.cancel_at(peer, turn_id)

    async def cancel_at(self, peer: Peer, turn_id: str) -> bool:
        """Ask `peer` to cancel a turn it holds; False if it holds none by that id, or could not be asked."""
        with trio.move_on_after(self.policy.silence):
            try:
                answer = await self._client.post(peer.url.rstrip("/") + cancel_path(turn_id), b"", self._headers)
                try:
                    content = await answer.read()
                finally:
                    await answer.aclose()
                if answer.status == 200:
                    return orjson.loads(content).get("cancelled") is True
                log.warning("cluster: node %s refused to cancel %s: %s", peer.node_id, turn_id, answer.status)
            except (PeerError, orjson.JSONDecodeError, AttributeError) as error:
                log.warning("cluster: cancelling %s on node %s failed: %r", turn_id, peer.node_id, error)
        return False

    # -- following a background turn ------------------------------------------------------------------------

    async def watch(self, key: ConversationKey, turn_id: str, here: WatchHere) -> AsyncGenerator[Update, None]:
        """The updates of background turn `turn_id` of conversation `key` from its first, until it ends: `here` when
        this node owns the conversation, else from its owner. They end early (nothing is raised) when the owner
        cannot be asked or its answer breaks off: the caller then `wait`s for the end."""
        try:
            peer = await self._locate(key)
            opened = None if peer is None else await self._follow(peer, turn_id, updates=True)
        except (ActorUnavailable, _Retry) as error:
            log.info("cluster: cannot follow %s on the owner of its conversation: %s", turn_id, error)
            return
        if peer is None:
            if (live := here(turn_id)) is not None:
                async for update in live:
                    yield update
            return
        if opened is None:
            return
        try:
            while isinstance(event := await opened.next(), Streamed):
                yield event.update
        except (PeerError, WireError) as error:
            log.info("cluster: following %s on node %s broke off: %r", turn_id, peer.node_id, error)
        finally:
            await opened.aclose()

    async def wait(self, key: ConversationKey, turn_id: str, here: EndedHere) -> bool:
        """Wait until turn `turn_id` of conversation `key` has ended: `here` when this node owns the conversation,
        else on its owner. When the owner cannot be asked, or its answer breaks off, locate again and ask again with
        backoff for up to the policy's `wait` seconds (a dead owner's lease runs out meanwhile). True once it has
        ended; False when the node owning the conversation holds no such turn (it ended, or nobody runs it), or
        nobody could be asked within that time."""
        attempt, deadline = 0, trio.current_time() + self.policy.wait
        while trio.current_time() < deadline:
            try:
                peer = await self._locate(key)
                if peer is None:
                    return await here(turn_id)
                opened = await self._follow(peer, turn_id, updates=False)
                if opened is None:
                    return False
                try:
                    event = await opened.next()
                finally:
                    await opened.aclose()
                    attempt, deadline = 0, trio.current_time() + self.policy.wait  # it answered until now
                if isinstance(event, Ended):
                    return True
            except (ActorUnavailable, _Retry, PeerError, WireError) as error:
                log.info("cluster: waiting for %s on the owner of its conversation failed: %s", turn_id, error)
            attempt += 1
            await trio.sleep(self.policy.backoff.delay(attempt))
        return False

    async def _follow(self, peer: Peer, turn_id: str, *, updates: bool) -> _Opened | None:
        """Ask `peer` to follow a turn it runs; None when it runs none by that id. Raises `_Retry` when it cannot be
        asked, or its answer is not a follow's."""
        try:
            response = await self._client.post(peer.url.rstrip("/") + follow_path(turn_id), encode_follow(updates),
                                               self._turn_headers)  # fmt: skip
        except PeerError as error:
            raise _Retry(f"unreachable: {error}") from None
        opened, following = _Opened(peer, response, response.lines(), Accepted(turn_id)), False
        try:
            if response.status != 200:
                code, message = decode_error(await response.read())
                if code == "not_running":
                    return None
                raise _Retry(f"{response.status} {code}: {message}")
            if not isinstance(await opened.next(), Accepted):
                raise _Retry("its answer did not begin with the acceptance")
            following = True
            return opened
        except (PeerError, WireError) as error:
            raise _Retry(f"its answer broke off: {error}") from None
        finally:
            if not following:
                await opened.aclose()

    # -- the turn's task ------------------------------------------------------------------------------------

    async def _turn(
        self, forward: ForwardRequest, peer: Peer, here: RunHere, *, task_status: trio.TaskStatus[ForwardedTurn | None]
    ) -> None:
        """Hand the turn over (under the caller's cancel scope until started), then read it to its end here."""
        opened = await self._hand_over(forward, peer)
        if opened is None:
            task_status.started(None)  # the conversation came here meanwhile: the caller runs it
            return
        handle = ForwardedTurn(opened.accepted.turn_id, opened.peer, stream=forward.stream)
        try:
            if opened.accepted.done:  # answered before: the handle is finished before anyone sees it
                await self._feed(handle, opened)
            task_status.started(handle)
            if not handle.done and not await self._feed(handle, opened):
                await self._rejoin(handle, forward, here)
        finally:
            await opened.aclose()
            if not handle.done:
                message = "This node stopped before the reply of the turn it forwarded arrived; the turn runs on."
                handle.finish(Reply(status="cancelled", error=ErrorInfo("shutdown", message)))

    async def _feed(self, handle: ForwardedTurn, opened: _Opened) -> bool:
        """Move the owner's events into `handle` up to the reply; False when the answer broke off first."""
        try:
            while (event := await opened.next()) is not None:
                if isinstance(event, Streamed):
                    handle.deliver(event.update)
                elif isinstance(event, Finished):
                    handle.finish(event.reply, stream_dropped=event.stream_dropped)
                    return True
                else:
                    raise WireError(f"unexpected {type(event).__name__} event", "bad_event")
        except (PeerError, WireError) as error:
            log.warning("cluster: the answer of node %s for %s broke off: %r", opened.peer.node_id, handle.turn_id,
                        error)  # fmt: skip
        return False

    async def _rejoin(self, handle: ForwardedTurn, forward: ForwardRequest, here: RunHere) -> None:
        """The owner's answer broke off after it accepted the turn: the turn is in its inbox, so give up the stream
        and fetch the reply by sending the envelope again (joined or answered by its key, wherever it runs now)."""
        handle.lose_stream()
        again = attrs.evolve(forward, stream=False)
        try:
            for _ in range(self.policy.attempts):
                opened = await self._hand_over(again, await self._locate(forward.envelope.key))
                if opened is None:
                    handle.finish(await (await here(forward.envelope, False)).reply())
                    return
                handle.peer = opened.peer
                try:
                    if await self._feed(handle, opened):
                        return
                finally:
                    await opened.aclose()
        except Exception as error:  # this task must not fail: it lives in the forwarder's nursery
            log.warning("cluster: could not rejoin forwarded turn %s: %r", handle.turn_id, error)
        message = "The node running this turn stopped answering; its result is kept there once it ends."
        handle.finish(Reply(status="failed", error=ErrorInfo("owner_lost", message)))

    # -- one hand-over --------------------------------------------------------------------------------------

    async def _hand_over(self, forward: ForwardRequest, peer: Peer | None) -> _Opened | None:
        """Send `forward` until an owner accepts it (relocating between attempts); None when this node owns its
        conversation now. Raises the owner's refusal as the local error, or `ActorUnavailable` past the policy."""
        key = forward.envelope.key
        if self.max_body_bytes is not None and (size := len(encode_request(forward))) > self.max_body_bytes:
            self._observed(forward.channel, "refused", trio.current_time())
            raise _too_large(f"its envelope is {size} bytes, over the nodes' limit of {self.max_body_bytes} bytes")
        return await self._until_accepted(key, forward.channel, peer, lambda to: self._send(to, forward))

    async def _until_accepted(
        self, key: ConversationKey, channel: str | None, peer: Peer | None, send: Callable[[Peer], Awaitable[T]]
    ) -> T | None:
        """`send` to the owner of `key` until one accepts (relocating between attempts); None when this node owns
        the conversation now. Raises what `send` raises but `_Retry`, and `ActorUnavailable` past the policy.
        `channel`: whose forwarding metrics it counts in (None: none, for what is not a channel's)."""
        policy = self.policy
        began, reason = trio.current_time(), "no attempt"
        with trio.move_on_after(policy.wait):
            for attempt in range(1, policy.attempts + 1):
                if peer is None:
                    return None
                try:
                    accepted = await send(peer)
                except _Retry as retry:
                    reason = str(retry)
                    log.info("cluster: forwarding to node %s failed (%s); locating again", peer.node_id, reason)
                except Exception:
                    self._observed(channel, "refused", began)
                    raise
                else:
                    self._observed(channel, "accepted", began)
                    return accepted
                if attempt < policy.attempts:
                    await trio.sleep(policy.backoff.delay(attempt))
                    peer = await self._locate(key)
        self._observed(channel, "unavailable", began)
        raise ActorUnavailable(key, policy.retry_after, f"because no node accepted it ({reason})")

    async def _send(self, peer: Peer, forward: ForwardRequest) -> _Opened:
        url = peer.url.rstrip("/") + TURNS_PATH
        try:
            response = await self._client.post(url, encode_request(forward), self._turn_headers)
        except PeerError as error:
            raise _Retry(f"unreachable: {error}") from None
        opened = _Opened(peer, response, response.lines(), Accepted(""))
        try:
            if response.status != 200:
                self._refused(forward.envelope.key, peer, response.status, await response.read(),
                              response.headers.get("retry-after"))  # fmt: skip
            first = await opened.next()
        except PeerError as error:
            await opened.aclose()
            raise _Retry(f"its answer broke off: {error}") from None
        except BaseException:
            await opened.aclose()
            raise
        if not isinstance(first, Accepted):
            await opened.aclose()
            raise _Retry(f"its answer began with {type(first).__name__}, not the acceptance")
        opened.accepted = first
        return opened

    def _refused(self, key: ConversationKey, peer: Peer, status: int, body: bytes, retry_after: str | None) -> None:
        """Raise what an owner's refusal means here: retry elsewhere, or the local error it stands for."""
        code, message = decode_error(body)
        if code == "not_owner" or code == "shutting_down" or status in (500, 502, 504):
            raise _Retry(f"{status} {code}: {message}")
        if code == "conversation_busy":
            raise ConversationBusy(key)
        if code == "unavailable":
            raise ActorUnavailable(key, _seconds(retry_after, self.policy.retry_after))
        if code == "insufficient_storage":
            raise StoreFull(message)
        if status == 413:
            raise _too_large(f"node {peer.node_id} refused it: {message}")
        log.error("cluster: node %s refused a forwarded turn: %s %s: %s", peer.node_id, status, code, message)
        raise ActorUnavailable(key, self.policy.retry_after, f"because its owner refused it ({status} {code})")

    async def _event(self, opened: _Opened) -> Event | None:
        try:
            return await opened.next()
        except (PeerError, WireError):
            return None

    # -- small pieces ---------------------------------------------------------------------------------------

    async def _locate(self, key: ConversationKey) -> Peer | None:
        with trio.move_on_after(self.policy.wait):
            return await self.locator.locate(key)
        raise ActorUnavailable(key, self.policy.retry_after, "because its owner could not be located in time")

    def _observed(self, channel: str | None, outcome: str, began: float) -> None:
        if self.observe is not None and channel is not None:
            self.observe(channel, outcome, trio.current_time() - began)


def _keyed(envelope: Envelope) -> Envelope:
    """The envelope with a turn id and an idempotency key (its turn id when it has none), so a resend is joined."""
    turn_id = envelope.turn_id or new_turn_id()
    return attrs.evolve(envelope, turn_id=turn_id, idempotency_key=envelope.idempotency_key or turn_id)


def _too_large(why: str) -> RequestEntityTooLarge:
    """The HTTP 413 every channel renders in its protocol, for a turn whose envelope is too large for its owner (an
    envelope is larger than the request it came from: data parts are base64)."""
    return RequestEntityTooLarge(f"The request is too large to hand to the node that runs its conversation: {why}.")


def _seconds(value: str | None, default: float) -> float:
    try:
        return max(0.0, float(value)) if value is not None else default
    except ValueError:
        return default
