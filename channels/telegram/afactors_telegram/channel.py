"""`TelegramChannel`: updates in (polling or webhook), envelopes to actors, replies out through `deliver`."""

from __future__ import annotations

import logging
import secrets
import time
from collections.abc import Mapping
from functools import partial
from typing import Any

import attrs
import trio

from afactors.channel import (
    ActorUnavailable,
    ChannelContext,
    Command,
    Contribution,
    ConversationBusy,
    Delivery,
    DeliveryFailed,
    HookRejected,
    LinkFailed,
    ResponseHook,
    Route,
    RunHook,
    StartupError,
    TurnHandle,
)
from afactors.model import ConversationKey, DataPart, Envelope, Identity, Message, Part, ReplyTarget, TextPart
from afactors_telegram import inbound
from afactors_telegram.api import BotApiClient, NetworkError, TelegramError, http_client
from afactors_telegram.commands import (
    LINK_IN_GROUP_TEXT,
    LINK_IN_PRIVATE_TEXT,
    LOGIN_IN_PRIVATE_TEXT,
    NEW_CONVERSATION_TEXT,
    NOT_LINKED_TEXT,
    UNLINKED_TEXT,
    CommandCall,
    background_text,
    command_list,
    help_text,
    link_code_text,
    linked_text,
    sign_in_text,
)
from afactors_telegram.config import TelegramConfig
from afactors_telegram.inbound import (
    ALLOWED_UPDATES,
    EVENT_OPTION,
    Address,
    BotInfo,
    ButtonPress,
    CommandRequest,
    Ignore,
    MediaRef,
    TurnRequest,
    decide,
    follows_identity,
    idempotency_key,
    turn_id_for,
)
from afactors_telegram.intake import Intake
from afactors_telegram.live import LiveTurn, LiveTurns, render_live
from afactors_telegram.outbound import PhotoOut, TextOut, plan_echo, plan_reply
from afactors_telegram.poller import poll
from afactors_telegram.sender import Sender, SendMeters
from afactors_telegram.webhook import webhook_view

log = logging.getLogger("afactors.telegram")

_READY_TIMEOUT = 10.0
_ORDER_TIMEOUT = 10.0
_ANSWER_TIMEOUT = 10.0


class TelegramStartupError(StartupError):
    """The channel could not start: the token was rejected, or Telegram refused the webhook."""


@attrs.frozen
class _Runtime:
    """What exists while the channel runs: the API client, the sender, the intake and the bot's identity."""

    api: BotApiClient
    sender: Sender
    intake: Intake
    bot: BotInfo
    nursery: trio.Nursery


class TelegramChannel:
    """A Telegram bot as a channel: `TelegramChannel(token=...)` or `TelegramChannel(TelegramConfig(...))`.

    Every accepted message becomes an envelope with `idempotency_key` "tg:<bot>:<update_id>" and a
    `reply_to` naming its chat; the update is acknowledged to Telegram (poll offset, webhook 2xx) only after
    the envelope is in the durable inbox. The answer is pushed by `deliver` from the durable outbox.
    """

    name = "telegram"

    def __init__(
        self,
        config: TelegramConfig | None = None,
        *,
        run_hook: RunHook | None = None,
        response_hook: ResponseHook | None = None,
        **settings: Any,
    ) -> None:
        self.config = config if config is not None else TelegramConfig(**settings)
        if config is not None and settings:
            raise TypeError("pass either a TelegramConfig or settings, not both")
        self.run_hook = run_hook
        self.response_hook = response_hook  # the host applies it to every reply it delivers here
        self.secret_token = self.config.secret_token or secrets.token_urlsafe(32)
        self.live = LiveTurns()
        self._ctx: ChannelContext | None = None
        self._runtime: _Runtime | None = None
        self._meters: SendMeters | None = None
        self._running: trio.Event | None = None
        self._progress: dict[str, int] = {}  # turn id -> messages of its reply already sent (retried deliveries)
        self._outstanding: dict[int, set[str]] = {}  # chat id -> turns submitted here and not yet delivered
        self._delivered = trio.Event()

    # -- host contract ---------------------------------------------------------------------------------------

    def contribute(self, ctx: ChannelContext) -> Contribution:
        self._ctx = ctx
        self._meters = SendMeters.of(ctx)
        self._running = trio.Event()
        routes = []
        if self.config.webhook_url:
            view = webhook_view(self.secret_token, self._intake, self.config.webhook_ack_timeout)
            routes.append(Route(self.config.webhook_path, view, methods=("POST",)))
        commands = [Command(c["command"], c["description"]) for c in command_list(self.config.commands)]
        return Contribution(routes=routes, tasks=[self._serve], commands=commands, deliver=self.deliver)

    @property
    def bot(self) -> BotInfo | None:
        """The bot's identity once the channel runs (from getMe)."""
        return None if self._runtime is None else self._runtime.bot

    async def _intake(self) -> Intake | None:
        """The running intake, waiting briefly while the channel starts."""
        if self._running is not None and not self._running.is_set():
            with trio.move_on_after(_READY_TIMEOUT):
                await self._running.wait()
        return None if self._runtime is None else self._runtime.intake

    async def _serve(self, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        config = self.config
        async with http_client() as http:
            api = BotApiClient(http, config.token, config.api_base, timeout=30.0)
            bot = await self._start(api)
            try:
                async with trio.open_nursery() as nursery:
                    sender = Sender(api, config.limits, max_flood_waits=config.max_flood_waits, meters=self._meters)
                    self._runtime = _Runtime(
                        api, sender, Intake(nursery, self._handle_update, self._poison), bot, nursery
                    )
                    if config.webhook_url:
                        await self._set_webhook(api)
                    else:  # one poller per bot among the hosts sharing the store
                        assert self._ctx is not None
                        await nursery.start(self._ctx.lead, f"poll/{bot.id}", partial(self._poll, api, config))
                    assert self._running is not None
                    self._running.set()
                    task_status.started()
                    await trio.sleep_forever()
            finally:
                self._runtime = None

    async def _poll(self, api: BotApiClient, config: TelegramConfig, *,
                    task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:  # fmt: skip
        """Long polling on a connection of its own, so sends queued for the rate limits never delay it. Runs only
        while this host leads the bot's polling (`ChannelContext.lead`): cancelled the moment it stops leading."""
        assert self._runtime is not None
        async with http_client(connections=1) as http:
            own = BotApiClient(http, config.token, config.api_base, timeout=config.poll_timeout + 15)
            await poll(own, self._runtime.intake, timeout=config.poll_timeout, task_status=task_status)

    async def _start(self, api: BotApiClient) -> BotInfo:
        """getMe (a refused token or an unreachable API stops the start) and setMyCommands (only logged)."""
        try:
            me = await api.call("getMe")
        except TelegramError as error:
            raise TelegramStartupError(
                f"Telegram refused the bot ({error.code} {error.description}); check the token"
            ) from None
        except NetworkError as error:
            raise TelegramStartupError(
                f"cannot reach the Telegram Bot API at {self.config.api_base} ({error})"
            ) from None
        if not isinstance(me, dict) or type(me.get("id")) is not int or not isinstance(me.get("username"), str):
            raise TelegramStartupError("getMe did not return the bot's user")
        if self.config.register_commands:
            try:
                await api.call("setMyCommands", {"commands": command_list(self.config.commands)})
            except (TelegramError, NetworkError) as error:
                log.warning("telegram setMyCommands failed, the command menu is not updated: %s", error)
        return BotInfo(me["id"], me["username"])

    async def _set_webhook(self, api: BotApiClient) -> None:
        params = {
            "url": self.config.webhook_url,
            "secret_token": self.secret_token,
            "allowed_updates": list(ALLOWED_UPDATES),
            "max_connections": self.config.webhook_max_connections,
        }
        try:
            await api.call("setWebhook", params)
        except (TelegramError, NetworkError) as error:
            raise TelegramStartupError(f"setWebhook failed: {error}") from None

    # -- inbound ---------------------------------------------------------------------------------------------

    async def _handle_update(self, update: Mapping[str, Any]) -> None:
        runtime = self._runtime
        if runtime is None:
            raise RuntimeError("the Telegram channel is not running")
        decision = decide(update, runtime.bot, self.config)
        if isinstance(decision, ButtonPress):
            runtime.nursery.start_soon(self._answer_query, runtime, decision.query_id)
            if decision.turn is None:
                log.info("telegram button press %s starts no turn: %s", decision.query_id, decision.reason)
                return
            decision = decision.turn
        if isinstance(decision, Ignore):
            log.debug("telegram update %s ignored: %s", update.get("update_id"), decision.reason)
            return
        await self._reactivate(decision.address.chat_id)
        if isinstance(decision, CommandRequest):
            await self._command(runtime, decision)
        else:
            await self._turn(runtime, decision)

    async def _answer_query(self, runtime: _Runtime, query_id: str) -> None:
        """Answer a button press at once (the client shows a spinner until then); failures are only logged (a
        redelivered press is too old to answer)."""
        with trio.move_on_after(_ANSWER_TIMEOUT):
            try:
                await runtime.api.call("answerCallbackQuery", {"callback_query_id": query_id})
            except (TelegramError, NetworkError) as error:
                log.info("telegram answerCallbackQuery %s failed: %s", query_id, error)

    async def _poison(self, update: Mapping[str, Any], reason: str) -> None:
        """An update that failed every attempt: kept among the dead letters with the reason, never dropped."""
        assert self._ctx is not None
        log.error("telegram update %s dead-lettered: %s", update.get("update_id"), reason)
        await self._ctx.dead_letter(f"update/{update.get('update_id')}", reason, dict(update))

    def _conversation(self, base: str) -> ConversationKey:
        """The conversation a base key is in now (/new moves it on)."""
        assert self._ctx is not None
        current = self._ctx.alias(f"conversation/{base}")
        return ConversationKey(self.config.tenant, current["key"] if current else base)

    async def _turn(self, runtime: _Runtime, request: TurnRequest) -> None:
        assert self._ctx is not None
        contents: list[Part] = [TextPart(request.text)] if request.text.strip() else []
        for media in request.media:
            contents.append(await self._fetch(runtime.api, media))
        turn_id = turn_id_for(runtime.bot.id, request.address, request.message_id, request.turn_suffix)
        shared = self.config.conversation_scope == "per_conversation" and not request.address.private
        envelope = Envelope(
            key=self._conversation(request.conversation),
            input=(Message("user", tuple(contents), name=request.sender.name if shared else None),),
            options={} if request.event is None else {EVENT_OPTION: request.event},
            turn_id=turn_id,
            identity=self._identity(request.sender),
            idempotency_key=idempotency_key(runtime.bot.id, request.update_id),
            reply_to=ReplyTarget(self.name, request.address.to_dict()),
            busy_policy=self.config.busy_policy,
            follow_identity=follows_identity(self.config.conversation_scope, request.address),
        )
        chat_id = request.address.chat_id
        live = self.live.open(turn_id, request.address)
        self._outstanding.setdefault(chat_id, set()).add(turn_id)
        try:
            handle = await self._ctx.submit(envelope, stream=True)
        except (HookRejected, ConversationBusy, ActorUnavailable) as refused:
            self._settled(chat_id, turn_id, live)
            if isinstance(refused, HookRejected) and refused.code == "link_required" and not request.address.private:
                # the challenge goes to the user's private chat (if they ever opened one); the room sees a pointer
                await self._say(runtime, Address(request.sender.id, "private"), refused.message, in_order=False)
                await self._say(runtime, request.address, LINK_IN_GROUP_TEXT, in_order=False)
                return
            await self._say(runtime, request.address, _refusal_text(refused), in_order=False)
            return
        except BaseException:
            self._settled(chat_id, turn_id, live)
            raise
        if handle.done:  # answered before (a redelivered update): nothing is live, deliver already ran
            self._settled(chat_id, turn_id, live)
            return
        runtime.nursery.start_soon(self._render, live, handle)
        if self.config.background_after is not None:
            runtime.nursery.start_soon(self._background, runtime, request.address, turn_id, handle)

    async def _background(self, runtime: _Runtime, address: Address, turn_id: str, handle: TurnHandle) -> None:
        """Past `background_after`, a running turn becomes a background run: its previews stop, the chat gets
        "working on it" with a continuation token, and `deliver` pushes the answer when it is done."""
        assert self._ctx is not None and self.config.background_after is not None
        with trio.move_on_after(self.config.background_after):
            await handle.reply()
            return
        try:
            token: str | None = (await self._ctx.run_token(turn_id, self.config.tenant)).token
        except LookupError as error:
            log.warning("telegram turn %s has no run token: %s", turn_id, error)
            token = None
        if not handle.done:
            await self.live.stop(turn_id)
            await self._say(runtime, address, background_text(self.config.background_text, token), in_order=False)

    def _settled(self, chat_id: int, turn_id: str, live: LiveTurn | None = None) -> None:
        """A turn of this chat needs no delivery (any more)."""
        if live is not None:
            self.live.discard(live)
        pending = self._outstanding.get(chat_id)
        if pending is not None:
            pending.discard(turn_id)
            if not pending:
                del self._outstanding[chat_id]
        self._delivered.set()
        self._delivered = trio.Event()

    async def _after_replies(self, chat_id: int) -> None:
        """Wait (a bounded time) until the chat's earlier turns are delivered, so channel messages keep order."""
        with trio.move_on_after(_ORDER_TIMEOUT):
            while self._outstanding.get(chat_id):
                await self._delivered.wait()

    async def _render(self, live: LiveTurn, handle: TurnHandle) -> None:
        runtime = self._runtime
        if runtime is not None:
            await render_live(live, handle.updates(), runtime.sender, self.config, self._remember_preview)

    async def _remember_preview(self, live: LiveTurn) -> None:
        assert self._ctx is not None
        await self._ctx.set_alias(f"preview/{live.turn_id}", {"message_id": live.message_id})

    async def _fetch(self, api: BotApiClient, media: MediaRef) -> Part:
        """A media attachment as a data part (getFile, then download); a text note when it cannot be had."""
        label = media.name or media.kind
        if media.size is not None and media.size > self.config.max_file_bytes:
            return TextPart(f"[{media.kind} {label!r} not attached: {media.size} bytes is over the limit]")
        try:
            found = await api.call("getFile", {"file_id": media.file_id})
            path = found.get("file_path") if isinstance(found, dict) else None
            if not isinstance(path, str):
                raise TelegramError("getFile", 400, "no file_path in the answer")
            data, content_type = await api.download(path, self.config.max_file_bytes)
        except TelegramError as error:
            log.warning("telegram %s %s not attached: %s", media.kind, media.file_id, error)
            return TextPart(f"[{media.kind} {label!r} not attached: {error.description}]")
        media_type = media.media_type
        if media.kind == "photo" and content_type and content_type.startswith("image/"):
            media_type = content_type.split(";")[0]
        return DataPart(data, media_type, media.name or path.rsplit("/", 1)[-1])

    def _identity(self, sender: inbound.Sender) -> Identity:
        return Identity(self.name, str(sender.id), sender.name)

    async def _command(self, runtime: _Runtime, request: CommandRequest) -> None:
        assert self._ctx is not None
        if request.name == "start":
            text: str | None = self.config.start_text
        elif request.name == "help":
            text = help_text(self.config.commands)
        elif request.name == "new" and follows_identity(self.config.conversation_scope, request.address):
            await self._ctx.new_conversation(self._identity(request.sender), self.config.tenant)
            text = NEW_CONVERSATION_TEXT
        elif request.name == "new":
            fresh = f"{request.conversation}#{secrets.token_hex(4)}"
            await self._ctx.set_alias(f"conversation/{request.conversation}", {"key": fresh})
            text = NEW_CONVERSATION_TEXT
        elif request.name in ("link", "unlink", "login"):
            text = await self._link_command(request)
        else:
            text = await self._registered(request)
        if text:
            await self._say(runtime, request.address, text)

    async def _link_command(self, request: CommandRequest) -> str:
        """`/link` (a code), `/link CODE` (merge onto the code's identity), `/unlink`, `/login` (an OIDC sign-in
        link): private chats only, so a code or a sign-in link is never posted in a group."""
        assert self._ctx is not None
        if not request.address.private:
            return LOGIN_IN_PRIVATE_TEXT if request.name == "login" else LINK_IN_PRIVATE_TEXT
        who, tenant = self._identity(request.sender), self.config.tenant
        try:
            if request.name == "login":
                return sign_in_text(await self._ctx.sign_in_url(who, tenant))
            if request.name == "unlink":
                return UNLINKED_TEXT if await self._ctx.unlink(who, tenant) else NOT_LINKED_TEXT
            if request.args.strip():
                return linked_text(await self._ctx.link(who, tenant, request.args))
            code = await self._ctx.link_code(who, tenant)
            return link_code_text(code.code, max(1, round((code.expires_at - time.time()) / 60)))
        except LinkFailed as failed:
            return failed.message

    async def _registered(self, request: CommandRequest) -> str | None:
        command = next(c for c in self.config.commands if c.name == request.name)
        address = request.address
        call = CommandCall(request.name, request.args, request.sender.id, request.sender.name, address.chat_id,
                           address.chat_type, address.thread_id, self._conversation(request.conversation))  # fmt: skip
        try:
            return await command.handler(call)
        except Exception:
            log.exception("telegram command /%s failed", request.name)
            return f"Sorry, /{request.name} failed."

    # -- chats the bot can no longer write to ----------------------------------------------------------------

    def inactive(self, chat_id: int) -> bool:
        """Whether the bot was blocked in (or removed from) this chat; a new message from it clears that."""
        assert self._ctx is not None
        state = self._ctx.alias(f"chat/{chat_id}")
        return bool(state and state.get("inactive"))

    async def _mark_inactive(self, chat_id: int, reason: str) -> None:
        assert self._ctx is not None
        log.info("telegram chat %s is inactive: %s", chat_id, reason)
        await self._ctx.set_alias(f"chat/{chat_id}", {"inactive": True, "reason": reason})

    async def _reactivate(self, chat_id: int) -> None:
        if self.inactive(chat_id):
            assert self._ctx is not None
            await self._ctx.set_alias(f"chat/{chat_id}", {"inactive": False})

    # -- outbound --------------------------------------------------------------------------------------------

    async def _say(self, runtime: _Runtime, address: Address, text: str, *, in_order: bool = True) -> None:
        """A channel message (a command's answer, a refusal); failures are logged.

        `in_order`: first wait (a bounded time) for the chat's pending answers, so it does not overtake them.
        A refusal ("still answering your previous message") must not wait for the answer it is about.
        """
        if in_order:
            await self._after_replies(address.chat_id)
        try:
            await self._send(runtime.sender, address, TextOut(text), quote=True)
        except TelegramError as error:
            if error.chat_gone:
                await self._mark_inactive(address.chat_id, error.description)
            else:
                log.warning("telegram message to chat %s failed: %s", address.chat_id, error)
        except NetworkError as error:
            log.warning("telegram message to chat %s failed: %s", address.chat_id, error)

    async def deliver(self, delivery: Delivery) -> None:
        """Push a committed turn's reply (or a push) to its chat (the host calls this from the durable outbox).

        For the originating chat, a preview message the turn streamed into is edited into the first part of the
        answer; the rest goes as new messages. Another destination (`delivery.originating` False) gets new
        messages only: first the user's input when it asked for an echo, then the reply. A retry after a
        failure resumes after the messages already sent (within this process; after a crash the whole reply is
        sent again). Raises `DeliveryFailed`: with `retry_after` on a flood wait, `permanent` when the bot can no
        longer write to the chat (it is marked inactive) or Telegram refuses the request itself.
        """
        await self._intake()  # while the channel starts (the outbox resumes before it), wait a bounded time
        runtime = self._runtime
        if runtime is None or self._ctx is None:
            raise DeliveryFailed("the Telegram channel is not running", retry_after=1.0)
        try:
            address = Address.from_dict(delivery.address)
        except ValueError as error:
            raise DeliveryFailed(str(error), permanent=True) from None
        own = delivery.originating
        progress = delivery.idempotency_key or delivery.turn_id
        if self.inactive(address.chat_id):
            await self._done(address.chat_id, delivery.turn_id, own, progress, None)
            raise DeliveryFailed(f"chat {address.chat_id} is inactive", permanent=True)
        live = await self.live.claim(delivery.turn_id) if own else None
        preview = live.message_id if live is not None else self._stored_preview(delivery.turn_id) if own else None
        echo = plan_echo(delivery.echo)
        plan = [*echo, *plan_reply(delivery.reply, self.config.formatting)]
        start = self._progress.get(progress, 0)
        try:
            for index in range(start, len(plan)):
                item = plan[index]
                if index == 0 and preview is not None and isinstance(item, TextOut):
                    await self._finish_preview(runtime.sender, address, preview, item)
                else:
                    await self._send(runtime.sender, address, item, quote=own and index == 0)
                self._progress[progress] = index + 1
        except TelegramError as error:
            if error.retryable:
                raise DeliveryFailed(str(error), retry_after=error.retry_after) from None
            await self._done(address.chat_id, delivery.turn_id, own, progress, preview)
            if error.chat_gone:
                await self._mark_inactive(address.chat_id, error.description)
            raise DeliveryFailed(str(error), permanent=True) from None
        except NetworkError as error:
            raise DeliveryFailed(str(error), ambiguous=error.ambiguous) from None
        await self._done(address.chat_id, delivery.turn_id, own, progress, preview)

    async def _done(self, chat_id: int, turn_id: str, own: bool, progress: str, preview: int | None) -> None:
        """A delivery that will not be tried again: forget its progress (and, for the originating chat, the
        turn's outstanding mark and preview row)."""
        self._progress.pop(progress, None)
        if own:
            self._settled(chat_id, turn_id)
        if own and (preview is not None or self.inactive(chat_id)):
            await self._forget_preview(turn_id)

    async def _forget_preview(self, turn_id: str) -> None:
        """The turn's reply is out (or never will be): its preview row is not needed any more."""
        assert self._ctx is not None
        await self._ctx.drop_alias(f"preview/{turn_id}")

    def _stored_preview(self, turn_id: str) -> int | None:
        assert self._ctx is not None
        stored = self._ctx.alias(f"preview/{turn_id}")
        message_id = stored.get("message_id") if stored else None
        return message_id if type(message_id) is int else None

    async def _finish_preview(self, sender: Sender, address: Address, message_id: int, item: TextOut) -> None:
        """Edit the streamed preview into the final text; if it cannot be edited, send the text anew."""
        params: dict[str, Any] = {"chat_id": address.chat_id, "message_id": message_id}
        try:
            await self._formatted(sender, "editMessageText", params, item, group=not address.private)
        except TelegramError as error:
            if error.not_modified:
                return
            if error.code != 400 or error.chat_gone:
                raise
            log.info(
                "telegram preview %s in chat %s not editable (%s); sending anew", message_id, address.chat_id, error
            )
            await self._send(sender, address, item, quote=True)

    async def _send(self, sender: Sender, address: Address, item: TextOut | PhotoOut, *, quote: bool) -> None:
        """One message; with `quote`, in a group it quotes the message it answers."""
        params: dict[str, Any] = {"chat_id": address.chat_id}
        if address.thread_id is not None:
            params["message_thread_id"] = address.thread_id
        if quote and address.reply_to is not None:
            params["reply_parameters"] = {"message_id": address.reply_to, "allow_sending_without_reply": True}
        group = not address.private
        if isinstance(item, TextOut):
            await self._formatted(sender, "sendMessage", params, item, group=group)
        elif item.data is not None:
            await sender.send(
                "sendPhoto", params, group=group, files={"photo": (item.name, item.data, item.media_type)}
            )
        else:
            await sender.send("sendPhoto", {**params, "photo": item.url}, group=group)

    async def _formatted(
        self, sender: Sender, method: str, params: dict[str, Any], item: TextOut, *, group: bool
    ) -> None:
        """Send `item` formatted; if Telegram cannot parse the formatting, send its plain text instead."""
        if item.html is not None:
            try:
                await sender.send(method, {**params, "text": item.html, "parse_mode": "HTML"}, group=group)
                return
            except TelegramError as error:
                if not error.bad_markup:
                    raise
                log.info("telegram formatting rejected (%s); sending plain text", error.description)
        await sender.send(method, {**params, "text": item.text}, group=group)


def _refusal_text(refused: Exception) -> str:
    """What a user is told when their message was not taken."""
    if isinstance(refused, HookRejected):
        return refused.message
    if isinstance(refused, ConversationBusy):
        return "I am still answering your previous message; send this one again in a moment."
    retry_after = refused.retry_after if isinstance(refused, ActorUnavailable) else 60.0
    return f"This conversation is paused after repeated errors; try again in {retry_after:.0f} seconds."
