"""`ActivityChannel`: Bot Framework Activities in (Azure Bot Service: Teams, Web Chat, Direct Line ...), replies out.

A message is authenticated, checked and decided on, submitted to its conversation actor (durably, deduplicated
by activity id) and answered `202 Accepted`; the turn runs in the background, shows typing and (where the
channel can) a streamed answer, and its final reply is posted from the durable outbox by `deliver`. With
`deliveryMode: expectReplies` the replies come back in the HTTP answer instead.
"""

from __future__ import annotations

import logging
import math
import secrets
from typing import Any

import attrs
import httpx
import orjson
import trio
from quart import Response, request

from afactors.channel import (
    ActorUnavailable,
    ChannelContext,
    Contribution,
    ConversationBusy,
    Delivery,
    DeliveryFailed,
    HookRejected,
    ResponseHook,
    Route,
    RunHook,
    StoreFull,
    SystemClosed,
    TurnHandle,
    new_turn_id,
)
from afactors.model import ConversationKey, Envelope, Identity, Message, Part, Reply, ReplyTarget, TextPart
from afactors_activity.activity import Activity, BadActivity, ConversationRef, parse_activity
from afactors_activity.auth import InboundAuth, KeysUnavailable, Verified
from afactors_activity.claims import AuthFailure, check_endorsement, check_service_url
from afactors_activity.config import ActivityConfig
from afactors_activity.connector import Connector, OutboundError, TokenSource
from afactors_activity.inbound import Ignore, Invoke, NewConversation, TurnRequest, Welcome, decide
from afactors_activity.live import LiveTurn, LiveTurns, Pace, render_live
from afactors_activity.outbound import (
    BUSY_TEXT,
    GENERIC_ERROR,
    NEW_CONVERSATION_TEXT,
    PAUSED_TEXT,
    echo_quote,
    error_body,
    message_activity,
    reply_text,
    stream_final,
    stream_interval,
)
from afactors_activity.service_url import is_allowed

log = logging.getLogger("afactors.activity")

_READY_TIMEOUT = 10.0
_CLAIM_TIMEOUT = 30.0


@attrs.frozen
class _Runtime:
    """What exists while the channel runs: inbound auth (None when disabled), the Connector, a task nursery."""

    auth: InboundAuth | None
    connector: Connector
    nursery: trio.Nursery


def _json(status: int, body: Any = None) -> Response:
    data = b"" if body is None else orjson.dumps(body)
    return Response(data, status=status, content_type="application/json")


def _error(status: int, code: str, message: str) -> Response:
    return _json(status, error_body(code, message))


class ActivityChannel:
    """A bot behind Azure Bot Service: `ActivityChannel(app_id=..., app_password=...)` or with an `ActivityConfig`.

    Local use without credentials (Bot Framework Emulator, Agents Playground) needs `auth="disabled"`
    explicitly; it is never inferred.
    """

    name = "activity"

    def __init__(self, config: ActivityConfig | None = None, *, run_hook: RunHook | None = None,
                 **settings: Any) -> None:  # fmt: skip
        if config is not None and settings:
            raise TypeError("pass either an ActivityConfig or settings, not both")
        self.config = config if config is not None else ActivityConfig(**settings)
        self.run_hook = run_hook
        self.response_hook: ResponseHook | None = None
        self.live = LiveTurns()
        self._ctx: ChannelContext | None = None
        self._runtime: _Runtime | None = None
        self._running = trio.Event()

    # -- host contract ---------------------------------------------------------------------------------------

    def contribute(self, ctx: ChannelContext) -> Contribution:
        self._ctx = ctx
        self._running = trio.Event()
        route = Route(self.config.path, self._messages, methods=("POST",))
        return Contribution(routes=[route], tasks=[self._serve], deliver=self.deliver)

    async def _serve(self, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        config = self.config
        timeout = httpx.Timeout(config.request_timeout)
        async with httpx.AsyncClient(timeout=timeout, follow_redirects=False) as http:
            auth = InboundAuth(http, config) if config.auth == "jwt" else None
            if auth is None:
                log.warning("activity: inbound authentication is DISABLED (auth='disabled'); use only locally")
            try:
                async with trio.open_nursery() as nursery:
                    self._runtime = _Runtime(auth, Connector(http, config, TokenSource(http, config)), nursery)
                    self._running.set()
                    task_status.started()
                    await trio.sleep_forever()
            finally:
                self._runtime = None

    async def _ready(self) -> _Runtime | None:
        with trio.move_on_after(_READY_TIMEOUT):
            await self._running.wait()
        return self._runtime

    # -- inbound ---------------------------------------------------------------------------------------------

    async def _messages(self) -> Response:
        """`POST /api/messages`: one Activity (B-01, B-02)."""
        runtime = await self._ready()
        if runtime is None:
            return _error(503, "ServiceUnavailable", "the bot is not running")
        body = await request.get_data()  # read in full first: the connection stays usable whatever the answer
        verified: Verified | None = None
        if runtime.auth is not None:
            try:
                verified = await runtime.auth.authenticate(request.headers.get("Authorization"))
            except AuthFailure as failure:
                log.warning("activity: request refused: %s", failure)
                return _error(401, "Unauthorized", "authentication failed")
            except KeysUnavailable:
                return _error(503, "ServiceUnavailable", "cannot check the request's token now; try again")
        try:
            activity = parse_activity(orjson.loads(body))
        except orjson.JSONDecodeError:
            return _error(400, "BadArgument", "the body is not JSON")
        except BadActivity as bad:
            return _error(400, "BadArgument", f"not an Activity: {bad}")
        try:
            if verified is not None:
                check_service_url(verified.claims, activity.service_url)
                check_endorsement(verified.key, activity.channel_id)
        except AuthFailure as failure:
            log.warning("activity: request refused: %s", failure)
            return _error(401, "Unauthorized", "authentication failed")
        if not is_allowed(activity.service_url, self.config.service_url_allowlist):
            log.warning("activity: request refused: serviceUrl %r is not on the allowlist", activity.service_url)
            return _error(401, "Unauthorized", "serviceUrl not allowed")
        try:
            return await self._act(activity)
        except SystemClosed:
            return _error(503, "ServiceUnavailable", "the bot is shutting down; try again")
        except ActorUnavailable as unavailable:  # a push into a conversation another node of a cluster owns
            response = _error(503, "ServiceUnavailable", f"{unavailable}")
            response.headers["Retry-After"] = str(max(1, math.ceil(unavailable.retry_after)))
            return response
        except StoreFull as full:
            response = _error(507, "InsufficientStorage", f"{full}; try again later")
            response.headers["Retry-After"] = "30"
            return response

    async def _act(self, activity: Activity) -> Response:
        config = self.config
        decision = decide(activity, scope=config.conversation_scope, accept_in_group=config.accept_in_group,
                          welcome=config.welcome_text is not None)  # fmt: skip
        if isinstance(decision, Ignore):
            log.debug("activity %s (%s) ignored: %s", activity.id, activity.type, decision.reason)
            return _expected_replies([]) if activity.expects_replies else _json(202)
        if isinstance(decision, Invoke):
            return _json(501, error_body("NotImplemented", f"invoke {decision.name!r} is not supported"))
        if isinstance(decision, Welcome):
            assert config.welcome_text is not None
            ref = decision.ref
            key = ConversationKey(config.tenant, f"_welcome:activity:{ref.channel_id}:{ref.conversation.id}")
            return await self._say(key, ref, config.welcome_text, expect_replies=activity.expects_replies)
        if isinstance(decision, NewConversation):
            assert self._ctx is not None
            fresh = f"{decision.conversation}#{secrets.token_hex(4)}"
            await self._ctx.set_alias(f"conversation/{decision.conversation}", {"key": fresh})
            return await self._say(self._key(decision.conversation), decision.ref, NEW_CONVERSATION_TEXT,
                                   expect_replies=activity.expects_replies)  # fmt: skip
        if activity.expects_replies:
            return await self._turn_now(decision)
        return await self._turn_later(decision)

    def _key(self, conversation: str) -> ConversationKey:
        """The conversation a base key is in now (`/new` moves it on)."""
        assert self._ctx is not None
        current = self._ctx.alias(f"conversation/{conversation}")
        return ConversationKey(self.config.tenant, current["key"] if current else conversation)

    def _envelope(self, request: TurnRequest, *, reply_to: ReplyTarget | None, turn_id: str | None) -> Envelope:
        parts: list[Part] = [TextPart(request.text)] if request.text else []
        parts.extend(request.attachments)
        sender = request.sender
        return Envelope(
            key=self._key(request.conversation),
            input=(Message("user", tuple(parts)),),
            turn_id=turn_id,
            identity=Identity(self.name, sender.aad_object_id or sender.id, sender.name),
            idempotency_key=request.idempotency_key,
            reply_to=reply_to,
            busy_policy=self.config.busy_policy,
        )

    async def _turn_later(self, request: TurnRequest) -> Response:
        """Accept the turn durably, answer 202, and let it run: typing/streaming now, the reply from the outbox."""
        runtime, ctx = self._runtime, self._ctx
        assert runtime is not None and ctx is not None
        ref = request.ref
        await self._remember(request.conversation, ref)
        turn_id = new_turn_id()
        envelope = self._envelope(request, reply_to=ReplyTarget(self.name, ref.to_dict()), turn_id=turn_id)
        interval = stream_interval(ref) if self.config.stream else None
        live = self.live.open(turn_id, ref, interval, self.config.informative_text)
        try:
            handle = await ctx.submit(envelope, stream=True)
        except (HookRejected, ConversationBusy, ActorUnavailable) as refused:
            self.live.discard(live)
            return await self._say(envelope.key, ref, _refusal_text(refused), expect_replies=False)
        except BaseException:
            self.live.discard(live)
            raise
        if handle.done or handle.turn_id != turn_id:  # a redelivered activity: its turn already exists
            self.live.discard(live)
            return _json(202)
        runtime.nursery.start_soon(self._render, live, handle, runtime.connector)
        return _json(202)

    async def _render(self, live: LiveTurn, handle: TurnHandle, connector: Connector) -> None:
        """Typing and streaming while the turn runs; then, if no delivery claimed the live turn within
        `_CLAIM_TIMEOUT` (the turn left no reply to send), forget it."""
        typing = Pace(self.config.typing_delay, self.config.typing_interval)
        await render_live(live, handle.updates(), connector, typing)
        await handle.reply()
        await trio.sleep(_CLAIM_TIMEOUT)
        self.live.discard(live)

    async def _turn_now(self, request: TurnRequest) -> Response:
        """`expectReplies`: run the turn while the caller waits and answer 200 with the replies (no streaming)."""
        assert self._ctx is not None
        envelope = self._envelope(request, reply_to=None, turn_id=None)
        try:
            handle = await self._ctx.submit(envelope)
        except (HookRejected, ConversationBusy, ActorUnavailable) as refused:
            return _expected_replies([message_activity(request.ref, _refusal_text(refused))])
        reply = await self._ctx.reply(envelope, handle)
        text = self._user_text(handle.turn_id, reply)
        return _expected_replies([] if text is None else [message_activity(request.ref, text)])

    async def _remember(self, conversation: str, ref: ConversationRef) -> None:
        """Store the conversation reference for proactive messages (B-15), when it changed."""
        assert self._ctx is not None
        stored = attrs.evolve(ref, activity_id=None).to_dict()
        if self._ctx.alias(f"reference/{conversation}") != stored:
            await self._ctx.set_alias(f"reference/{conversation}", stored)

    async def _say(self, key: ConversationKey, ref: ConversationRef, text: str, *, expect_replies: bool) -> Response:
        """Answer without the agent: in the HTTP answer for `expectReplies`, otherwise through the outbox (in
        order with the replies of conversation `key`)."""
        if expect_replies:
            return _expected_replies([message_activity(ref, text)])
        assert self._ctx is not None
        await self._ctx.push(key, ref.to_dict(), _text_reply(text))
        return _json(202)

    # -- proactive -------------------------------------------------------------------------------------------

    def reference(self, conversation: str) -> ConversationRef | None:
        """The stored reference of a conversation (its base key, as the channel keyed it), if it ever spoke."""
        assert self._ctx is not None
        stored = self._ctx.alias(f"reference/{conversation}")
        return None if stored is None else ConversationRef.from_dict(stored)

    async def send_proactive(self, conversation: str, text: str) -> str:
        """Queue a message to a conversation the bot has seen (B-15), through the durable outbox; its push id.

        Raises LookupError when the conversation never spoke to this bot.
        """
        ref = self.reference(conversation)
        if ref is None:
            raise LookupError(f"no conversation reference stored for {conversation!r}")
        assert self._ctx is not None
        return await self._ctx.push(self._key(conversation), ref.to_dict(), _text_reply(text))

    # -- outbound --------------------------------------------------------------------------------------------

    def _user_text(self, turn_id: str, reply: Reply) -> str | None:
        """The text a user reads for a reply; a failure's details go to the log only."""
        if reply.status == "failed":
            code, message = (reply.error.code, reply.error.message) if reply.error else ("unknown", "")
            log.warning("activity: turn %s failed (%s): %s; the user gets a generic message", turn_id, code, message)
        return reply_text(reply)

    async def deliver(self, delivery: Delivery) -> None:
        """Post a finished turn's reply (or a push) to its conversation; the outbox retries what fails. Only the
        originating conversation's delivery finishes a live (streamed) turn; another destination gets a message,
        led by the quoted input when it asked for an echo."""
        runtime = self._runtime
        if runtime is None:
            raise DeliveryFailed("the Activity channel is not running", retry_after=1.0)
        try:
            ref = ConversationRef.from_dict(delivery.address)
        except BadActivity as bad:
            raise DeliveryFailed(f"not an Activity conversation reference: {bad}", permanent=True) from None
        live = self.live.claim(delivery.turn_id) if delivery.originating else None
        if live is not None:
            with trio.move_on_after(_CLAIM_TIMEOUT):
                await live.settled()
        text = self._user_text(delivery.turn_id, delivery.reply)
        if text is None:
            return
        if delivery.echo:  # `echo_input`: the user's input first, quoted, in the same message (sent once)
            text = echo_quote(delivery.echo) + "\n\n" + text
        if live is not None and live.streamed:
            assert live.stream_id is not None
            activity = stream_final(ref, text, live.stream_id)
        else:
            activity = message_activity(ref, text)
        try:
            await runtime.connector.send(ref, activity)
        except OutboundError as error:
            raise DeliveryFailed(str(error), retry_after=error.retry_after, permanent=error.permanent) from None


def _text_reply(text: str) -> Reply:
    return Reply(messages=(Message("assistant", text),))


def _expected_replies(activities: list[dict[str, Any]]) -> Response:
    return _json(200, {"activities": activities})


def _refusal_text(refused: Exception) -> str:
    """What a user is told when their message was not taken (a hook's refusal is meant for users)."""
    if isinstance(refused, HookRejected):
        return refused.message
    if isinstance(refused, ConversationBusy):
        return BUSY_TEXT
    if isinstance(refused, ActorUnavailable):
        return PAUSED_TEXT
    return GENERIC_ERROR
