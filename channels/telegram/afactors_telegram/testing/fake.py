"""The test-facing fake Bot API: ``async with open_fake_bot_api() as fake:``.

``fake`` builds users and chats, injects what users do (text, commands, mentions, replies, topics, media,
edits), lets the test read and wait for what the bot did, and has knobs for 429s, 403s and migrations.
Everything runs in the caller's trio run; use :func:`afactors_telegram.testing.threaded.fake_bot_api_in_thread`
from asyncio or sync code.
"""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from functools import partial
from typing import Any

import attrs
import httpx
import trio
from hypercorn.config import Config
from hypercorn.trio import serve

from afactors_telegram.testing.errors import ApiError
from afactors_telegram.testing.images import image_size
from afactors_telegram.testing.markup import check_entities, detect_entities, format_text
from afactors_telegram.testing.methods import BotApi, ForcedError, SendGate, photo_size
from afactors_telegram.testing.model import (
    GROUP,
    PRIVATE,
    CallbackAnswer,
    CallRecord,
    Chat,
    ChatAction,
    Draft,
    Edit,
    User,
)
from afactors_telegram.testing.params import Params
from afactors_telegram.testing.ratelimit import RateLimits
from afactors_telegram.testing.server import BotApiApp
from afactors_telegram.testing.webhook import WebhookPolicy, run_webhook_pusher
from afactors_telegram.testing.world import ChatState

DEFAULT_TOKEN = "123456789:AAFakeTokenForAfactorsTests_0123456789"
DEFAULT_LIMITS = RateLimits()
DEFAULT_WEBHOOK_POLICY = WebhookPolicy()
ChatRef = Chat | User | int


class FakeBotApi:
    """Handle on a running fake Bot API server (see :func:`open_fake_bot_api`)."""

    def __init__(self, api: BotApi, api_base: str) -> None:
        self._api = api
        self.api_base = api_base
        """``http://127.0.0.1:<port>``: the ``api_base`` for a Telegram client."""

    # ------------------------------------------------------------------------------------------- address

    @property
    def token(self) -> str:
        return self._api.token

    @property
    def bot(self) -> User:
        """The bot's own user (``getMe``)."""
        return self._api.world.bot

    @property
    def mention(self) -> str:
        """``@<bot_username>``, to address the bot in group texts."""
        return f"@{self.bot.username}"

    @property
    def base_url(self) -> str:
        """python-telegram-bot's ``base_url`` (the token is appended by PTB)."""
        return f"{self.api_base}/bot"

    @property
    def base_file_url(self) -> str:
        """python-telegram-bot's ``base_file_url``."""
        return f"{self.api_base}/file/bot"

    @property
    def bot_url(self) -> str:
        """``<api_base>/bot<token>``: append ``/<method>`` for raw HTTP calls."""
        return f"{self.api_base}/bot{self.token}"

    # ------------------------------------------------------------------------------------------- building

    def user(self, first_name: str = "User", *, username: str | None = None, last_name: str | None = None,
             language_code: str | None = "en") -> User:  # fmt: skip
        """A new user (ids are deterministic)."""
        return self._api.world.add_user(first_name, username=username, last_name=last_name,
                                        language_code=language_code)  # fmt: skip

    def private_chat(self, user: User) -> Chat:
        """The private chat between ``user`` and the bot (its id is the user's id)."""
        return self._api.world.private_chat(user).chat

    def group(self, title: str = "Group") -> Chat:
        """A basic group with the bot in it."""
        return self._api.world.group(title).chat

    def supergroup(self, title: str = "Supergroup", *, forum: bool = False, username: str | None = None) -> Chat:
        """A supergroup with the bot in it; ``forum=True`` enables topics."""
        return self._api.world.supergroup(title, forum=forum, username=username).chat

    def create_topic(self, chat: ChatRef, name: str, *, creator: User) -> int:
        """A forum topic; queues its ``forum_topic_created`` message and returns its ``message_thread_id``."""
        state = self._state(chat)
        message = self._api.world.create_topic(state, name, creator)
        self._push("message", state, self._api.world.render(message))
        return message.message_id

    # ------------------------------------------------------------------------------------------- injecting

    def send_text(self, chat: ChatRef, text: str, *, sender: User | None = None, thread_id: int | None = None,
                  reply_to: int | None = None,
                  entities: Sequence[dict[str, Any]] | None = None) -> dict[str, Any]:  # fmt: skip
        """A user's text message, as an Update; returns the Message.

        Commands (``/start``, ``/new@bot``), ``@mentions``, hashtags and URLs get entities like Telegram
        detects them; pass ``entities`` for others (e.g. ``text_mention``). ``reply_to`` is a message id in
        the same chat (use a bot message's id for reply-to-bot).
        """
        found = check_entities(list(entities), text) if entities is not None else []
        content: dict[str, Any] = {"text": text}
        if all_entities := detect_entities(text, found):
            content["entities"] = all_entities
        return self._inject(chat, sender, content, thread_id, reply_to)

    def send_photo(self, chat: ChatRef, image: bytes, *, caption: str | None = None, sender: User | None = None,
                   thread_id: int | None = None, reply_to: int | None = None) -> dict[str, Any]:  # fmt: skip
        """A user's photo (PNG/JPEG/GIF/WebP bytes; see :func:`make_png`); the fake serves the file."""
        size = image_size(image)
        if size is None:
            raise ValueError("send_photo needs PNG, JPEG, GIF or WebP bytes")
        stored = self._api.world.add_file("photos", image, size[2])
        content = {"photo": [photo_size(stored.file_id, stored.file_unique_id, image)], **_caption(caption)}
        return self._inject(chat, sender, content, thread_id, reply_to)

    def send_document(self, chat: ChatRef, data: bytes, *, file_name: str, mime_type: str = "application/octet-stream",
                      caption: str | None = None, sender: User | None = None, thread_id: int | None = None,
                      reply_to: int | None = None) -> dict[str, Any]:  # fmt: skip
        """A user's document; the fake serves the file."""
        extension = file_name.rsplit(".", 1)[-1] if "." in file_name else "bin"
        stored = self._api.world.add_file("documents", data, extension)
        document = {"file_name": file_name, "mime_type": mime_type, "file_id": stored.file_id,
                    "file_unique_id": stored.file_unique_id, "file_size": len(data)}  # fmt: skip
        return self._inject(chat, sender, {"document": document, **_caption(caption)}, thread_id, reply_to)

    def send_voice(self, chat: ChatRef, data: bytes, *, duration: int = 1, mime_type: str = "audio/ogg",
                   sender: User | None = None, thread_id: int | None = None) -> dict[str, Any]:  # fmt: skip
        """A user's voice note; the fake serves the file."""
        stored = self._api.world.add_file("voice", data, "oga")
        voice = {"duration": duration, "mime_type": mime_type, "file_id": stored.file_id,
                 "file_unique_id": stored.file_unique_id, "file_size": len(data)}  # fmt: skip
        return self._inject(chat, sender, {"voice": voice}, thread_id, None)

    def edit_text(self, chat: ChatRef, message_id: int, text: str) -> dict[str, Any]:
        """A user edits their text message: an ``edited_message`` Update; returns the Message."""
        state = self._state(chat)
        message = state.messages.get(message_id)
        if message is None or "text" not in message.content:
            raise ValueError(f"no text message {message_id} in chat {state.chat.id}")
        content: dict[str, Any] = {"text": text}
        if entities := detect_entities(text):
            content["entities"] = entities
        edited = attrs.evolve(message, content=content, edit_date=self._api.world.now())
        self._api.world.replace_message(state, edited)
        body = self._api.world.render(edited)
        self._push("edited_message", state, body)
        return body

    def press_button(self, chat: ChatRef, message_id: int, data: str, *, sender: User | None = None) -> str:
        """A user presses an inline button of a bot message: a ``callback_query`` Update; returns its id."""
        state = self._state(chat)
        message = state.messages.get(message_id)
        keyboard = (message.reply_markup or {}).get("inline_keyboard", []) if message is not None else []
        if not any(button.get("callback_data") == data for row in keyboard for button in row):
            raise ValueError(f"message {message_id} in chat {state.chat.id} has no button with callback_data {data!r}")
        if sender is None:
            if state.chat.type != PRIVATE:
                raise ValueError("a button press in a group needs sender=")
            sender = self._api.world.users[state.chat.id]
        query_id = self._api.open_query(state.chat.id)
        query = {
            "id": query_id,
            "from": sender.wire(),
            "message": self._api.world.render(message),  # type: ignore[arg-type]
            "chat_instance": str(abs(hash((self.bot.id, state.chat.id)))),
            "data": data,
        }
        self._push("callback_query", state, query)
        return query_id

    def _inject(self, chat: ChatRef, sender: User | None, content: dict[str, Any], thread_id: int | None,
                reply_to: int | None) -> dict[str, Any]:  # fmt: skip
        state = self._api.world.private_chat(chat) if isinstance(chat, User) else self._state(chat)
        if sender is None:
            if state.chat.type != PRIVATE:
                raise ValueError("a group message needs sender=")
            sender = self._api.world.users[state.chat.id]
        if thread_id is not None and thread_id not in state.topics:
            raise ValueError(f"chat {state.chat.id} has no topic {thread_id}")
        if reply_to is not None and reply_to not in state.messages:
            raise ValueError(f"chat {state.chat.id} has no message {reply_to}")
        message = self._api.world.add_message(state, sender, content, thread_id=thread_id, reply_to=reply_to)
        body = self._api.world.render(message)
        self._push("message", state, body)
        return body

    def _push(self, kind: str, state: ChatState, payload: dict[str, Any]) -> None:
        self._api.updates.push(kind, state.chat.id, payload)
        self._api.world.changes.touch(state.chat.id)

    # ------------------------------------------------------------------------------------------- knobs

    def block(self, chat: ChatRef, *, by: User | None = None) -> None:
        """The user blocks the bot (private) or the bot is kicked (group): sends get Telegram's 403.

        A ``my_chat_member`` Update is queued when the actor is known (the private chat's user, or ``by``).
        """
        state = self._state(chat)
        kind = state.chat.type
        state.blocked = ("bot was blocked by the user" if kind == PRIVATE
                         else f"bot was kicked from the {'group' if kind == GROUP else 'supergroup'} chat")  # fmt: skip
        actor = self._api.world.users[state.chat.id] if kind == PRIVATE else by
        if actor is not None:
            bot = self.bot.wire()
            member_update = {
                "chat": state.chat.wire(),
                "from": actor.wire(),
                "date": self._api.world.now(),
                "old_chat_member": {"user": bot, "status": "member"},
                "new_chat_member": {"user": bot, "status": "kicked", "until_date": 0},
            }
            self._push("my_chat_member", state, member_update)

    def unblock(self, chat: ChatRef) -> None:
        """Undo :meth:`block`."""
        self._state(chat).blocked = None

    def migrate_to_supergroup(self, chat: ChatRef, *, by: User) -> Chat:
        """Upgrade a basic group: sends to the old id get 400 with ``migrate_to_chat_id``.

        Queues the two service messages Telegram sends (``migrate_to_chat_id`` in the old group,
        ``migrate_from_chat_id`` in the new supergroup); returns the new supergroup.
        """
        old = self._state(chat)
        if old.chat.type != GROUP:
            raise ValueError("only basic groups migrate")
        new = self._api.world.supergroup(old.chat.title or "Supergroup")
        notices = ((old, {"migrate_to_chat_id": new.chat.id}), (new, {"migrate_from_chat_id": old.chat.id}))
        for state, content in notices:
            message = self._api.world.add_message(state, by, content)
            self._push("message", state, self._api.world.render(message))
        old.migrated_to = new.chat.id
        return new.chat

    def force_flood_wait(self, retry_after: int, *, chat: ChatRef | None = None, method: str | None = None,
                         times: int = 1) -> None:  # fmt: skip
        """The next ``times`` matching calls get a real 429 with ``retry_after``, which also starts a flood
        wait: calls to that chat (or any, if ``chat`` is None) before it ends get 429 again and count as
        rate-limit violations."""
        chat_id = None if chat is None else self._state(chat).chat.id
        description = f"Too Many Requests: retry after {retry_after}"
        self._api.forced.append(
            ForcedError(
                partial(ApiError, 429, description, {"retry_after": retry_after}),
                method and method.lower(),
                chat_id,
                times,
                flood_wait=retry_after,
            )
        )

    def hold_sends(self) -> None:
        """From now on, sends (sendMessage, sendPhoto, editMessageText) wait at the door, not executed, until
        `release_sends`: a test can stop a client mid-flight at a moment when no send is half done."""
        self._api.gate = SendGate()

    def release_sends(self, *, drop: bool = False) -> None:
        """Open the door: held sends run now. With `drop` they fail with 502 as if they never arrived (their client
        is gone, e.g. killed), and so does every send that arrives until `release_sends()` is called again
        (requests a killed client left in flight)."""
        gate = self._api.gate
        if gate is not None:
            gate.drop = drop
            gate.opened.set()
        self._api.gate = gate if drop and gate is not None else None

    @property
    def held_sends(self) -> int:
        """How many sends wait at the door now."""
        return 0 if self._api.gate is None else self._api.gate.waiting

    def force_error(self, error_code: int, description: str, *, chat: ChatRef | None = None,
                    method: str | None = None, times: int = 1,
                    parameters: dict[str, Any] | None = None) -> None:  # fmt: skip
        """The next ``times`` matching calls fail with this envelope (e.g. 500, 502, a custom 400)."""
        chat_id = None if chat is None else self._state(chat).chat.id
        self._api.forced.append(
            ForcedError(
                partial(ApiError, error_code, description, parameters), method and method.lower(), chat_id, times
            )
        )

    # ------------------------------------------------------------------------------------------- reading

    def messages(self, chat: ChatRef, *, thread_id: int | None = None) -> list[dict[str, Any]]:
        """Messages the bot sent to ``chat`` (edits applied, deleted ones gone), as the API returned them."""
        return self._api.world.bot_messages(self._chat_id(chat), thread_id)

    def history(self, chat: ChatRef) -> list[dict[str, Any]]:
        """Every message in ``chat`` (users', the bot's, service messages), oldest first."""
        state = self._state(chat)
        return [self._api.world.render(m) for m in state.messages.values()]

    def drafts(self, chat: ChatRef | None = None) -> list[Draft]:
        """``sendMessageDraft`` calls (all, or to one chat)."""
        return _in_chat(self._api.drafts, None if chat is None else self._chat_id(chat))

    def chat_actions(self, chat: ChatRef | None = None) -> list[ChatAction]:
        """``sendChatAction`` calls (all, or to one chat)."""
        return _in_chat(self._api.actions, None if chat is None else self._chat_id(chat))

    def edits(self, chat: ChatRef | None = None) -> list[Edit]:
        """Successful ``editMessageText`` calls (all, or in one chat)."""
        return _in_chat(self._api.edits, None if chat is None else self._chat_id(chat))

    def callback_answers(self, chat: ChatRef | None = None) -> list[CallbackAnswer]:
        """``answerCallbackQuery`` calls (all, or for button presses in one chat)."""
        return _in_chat(self._api.callback_answers, None if chat is None else self._chat_id(chat))

    def commands(self, *, scope: dict[str, Any] | None = None, language_code: str = "") -> list[dict[str, str]]:
        """The bot's command list for a scope and language, as setMyCommands stored it."""
        key = (json.dumps(scope or {"type": "default"}, sort_keys=True), language_code)
        return list(self._api.commands.get(key, []))

    def calls(self, method: str | None = None) -> list[CallRecord]:
        """Every request the fake answered (or those of one method, case-insensitive), oldest first."""
        if method is None:
            return list(self._api.calls)
        return list(self._api.calls_by_method.get(method.lower(), ()))

    def call_count(self, method: str | None = None) -> int:
        """``len(calls(method))`` without copying: cheap enough for :meth:`wait_until` predicates."""
        if method is None:
            return len(self._api.calls)
        return len(self._api.calls_by_method.get(method.lower(), ()))

    def answered_count(self, method: str) -> int:
        """How many calls of ``method`` were answered 200 (``ok``), counted as they happen: a predicate over
        thousands of calls costs nothing per change (a copy of :meth:`calls` would delay the fake's answers)."""
        return self._api.answered_by_method[method.lower()]

    @property
    def rate_limit_violations(self) -> int:
        """Requests that exceeded a flood limit or ignored a ``retry_after`` (forced 429s excluded)."""
        return self._api.flood.violations

    def violations_in(self, chat: ChatRef) -> int:
        """:attr:`rate_limit_violations` for one chat."""
        return self._api.flood.violations_by_chat.get(self._chat_id(chat), 0)

    @property
    def pending_updates(self) -> int:
        """Updates not yet confirmed by getUpdates offset or a 2xx webhook answer."""
        return len(self._api.updates)

    @property
    def polling(self) -> bool:
        """True while a getUpdates long poll is waiting for updates."""
        return self._api.polling

    def webhook_info(self) -> dict[str, Any]:
        """What getWebhookInfo would return now."""
        return self._api.get_webhook_info(Params({}))

    # ------------------------------------------------------------------------------------------- waiting

    async def wait_for_messages(self, chat: ChatRef, n: int, *, thread_id: int | None = None,
                                timeout: float = 5.0) -> list[dict[str, Any]]:  # fmt: skip
        """Wait until the bot has sent at least ``n`` messages to ``chat``; returns them all.

        Raises ``TimeoutError`` (with what was sent so far) after ``timeout`` seconds.
        """
        chat_id = self._chat_id(chat)
        with trio.move_on_after(timeout):
            while len(found := self.messages(chat_id, thread_id=thread_id)) < n:
                await self._api.world.changes.chat(chat_id).wait()
            return found
        sent = self.messages(chat_id, thread_id=thread_id)
        raise TimeoutError(f"chat {chat_id}: wanted {n} bot messages, got {sent}")

    async def wait_until(self, condition: Callable[[], bool], *, timeout: float = 5.0) -> None:
        """Wait until ``condition()`` is true; it is re-checked after every change the fake sees."""
        with trio.move_on_after(timeout):
            while not condition():
                await self._api.world.changes.any().wait()
            return
        raise TimeoutError(f"condition still false after {timeout} s")

    # ------------------------------------------------------------------------------------------- helpers

    def _chat_id(self, chat: ChatRef) -> int:
        return chat if isinstance(chat, int) else chat.id

    def _state(self, chat: ChatRef) -> ChatState:
        chat_id = self._chat_id(chat)
        state = self._api.world.chats.get(chat_id)
        if state is None:
            raise ValueError(f"the fake has no chat {chat_id}")
        return state


def _caption(caption: str | None) -> dict[str, Any]:
    if not caption:
        return {}
    text, entities = format_text(caption, None, None)
    return {"caption": text, "caption_entities": entities} if entities else {"caption": text}


def _in_chat(records: list[Any], chat_id: int | None) -> list[Any]:
    return list(records) if chat_id is None else [r for r in records if r.chat_id == chat_id]


@asynccontextmanager
async def open_fake_bot_api(
    token: str = DEFAULT_TOKEN,
    bot_username: str = "afactors_test_bot",
    *,
    bot_name: str = "Afactors Test Bot",
    rate_limits: RateLimits | None = DEFAULT_LIMITS,
    clock: Callable[[], float] | None = None,
    webhook: WebhookPolicy = DEFAULT_WEBHOOK_POLICY,
    first_update_id: int = 1,
    host: str = "127.0.0.1",
) -> AsyncIterator[FakeBotApi]:
    """Serve a fake Bot API on ``host``, a free port, for the duration of the block.

    ``rate_limits=None`` disables flood limits (forced flood waits still work). ``clock`` (default
    ``trio.current_time``) is the time flood control sees; pass a :class:`ManualClock` to drive it by hand.
    Exiting fails with ``RuntimeError`` if the fake itself crashed while answering a request.
    """
    bot_id = int(token.split(":", 1)[0])
    api = BotApi(
        token,
        User(bot_id, bot_name, is_bot=True, username=bot_username),
        rate_limits=rate_limits,
        clock=clock or trio.current_time,
        wall_clock=time.time,
        first_update_id=first_update_id,
    )
    config = Config()
    config.bind = [f"{host}:0"]
    config.accesslog = None
    config.loglevel = "WARNING"
    config.graceful_timeout = 1.0
    config.keep_alive_max_requests = 1_000_000  # hypercorn's default (1000) makes load tests reconnect
    config.backlog = 1024  # thousands of chats may connect at once
    limits = httpx.Limits(max_connections=200, max_keepalive_connections=100)
    async with httpx.AsyncClient(limits=limits, timeout=webhook.timeout) as client:
        app = BotApiApp(api, client)
        stop = trio.Event()
        async with trio.open_nursery() as nursery:
            binds = await nursery.start(partial(serve, app, config, shutdown_trigger=stop.wait))  # type: ignore[arg-type]
            pusher = trio.CancelScope()

            async def push_webhooks() -> None:
                with pusher:
                    await run_webhook_pusher(api, client, webhook)

            nursery.start_soon(push_webhooks)
            try:
                yield FakeBotApi(api, binds[0])
            finally:
                api.closing = True
                api.updates.wake()
                pusher.cancel()
                stop.set()
    if app.internal_errors:
        raise RuntimeError("the fake Bot API crashed while answering:\n" + "\n".join(app.internal_errors))


@attrs.define
class ManualClock:
    """A clock for ``open_fake_bot_api(clock=...)`` that only moves when told to."""

    now: float = 0.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds
