"""Bot API method semantics of the fake: validation, errors, state changes and results.

No I/O: the ASGI transport (``server.py``) decodes requests into :class:`Params` and calls
:meth:`BotApi.call`; only getUpdates is async because it long-polls.
"""

from __future__ import annotations

import itertools
import json
import re
from collections import Counter
from collections.abc import Callable
from typing import Any

import attrs
import trio

from afactors_telegram.testing.errors import (
    CHAT_NOT_FOUND,
    POLLER_REPLACED,
    WEBHOOK_ACTIVE,
    ApiError,
    bad_request,
    conflict,
    forbidden,
    migrated,
    not_found,
    too_many_requests,
)
from afactors_telegram.testing.images import image_size
from afactors_telegram.testing.markup import format_text, utf16_len
from afactors_telegram.testing.model import PRIVATE, CallbackAnswer, CallRecord, ChatAction, Draft, Edit, User
from afactors_telegram.testing.params import Params, Upload
from afactors_telegram.testing.ratelimit import GLOBAL, FloodControl, RateLimits
from afactors_telegram.testing.updates import UpdateQueue, Webhook
from afactors_telegram.testing.world import ChatState, World

MAX_TEXT = 4096
MAX_CAPTION = 1024
MAX_DOWNLOAD = 20 * 1024 * 1024
CHAT_ACTIONS = frozenset(
    {
        "typing", "upload_photo", "record_video", "upload_video", "record_voice", "upload_voice",
        "upload_document", "choose_sticker", "find_location", "record_video_note", "upload_video_note",
    }
)  # fmt: skip
COMMAND_SCOPES = frozenset(
    {
        "default", "all_private_chats", "all_group_chats", "all_chat_administrators", "chat",
        "chat_administrators", "chat_member",
    }
)  # fmt: skip
RATE_LIMITED = frozenset({"sendmessage", "sendphoto", "editmessagetext"})
_COMMAND = re.compile(r"^[a-z0-9_]{1,32}$")
_SECRET = re.compile(r"^[A-Za-z0-9_-]{1,256}$")


@attrs.frozen
class Reply:
    """A successful result; some methods (setWebhook...) also carry a ``description``."""

    result: Any
    description: str | None = None

    def envelope(self) -> dict[str, Any]:
        body: dict[str, Any] = {"ok": True, "result": self.result}
        if self.description:
            body["description"] = self.description
        return body


@attrs.define
class ForcedError:
    """A test knob: the next ``times`` matching calls fail with ``error``."""

    error: Callable[[], ApiError]
    method: str | None
    chat_id: int | None
    times: int
    flood_wait: int | None = None


@attrs.define
class SendGate:
    """Sends held at the door: they wait for `opened`, then run, or (`drop`) fail as if they never arrived."""

    opened: trio.Event = attrs.Factory(trio.Event)
    drop: bool = False
    waiting: int = 0

    async def passed(self, changed: Callable[[], None]) -> None:
        """Wait until the gate opens; raise 502 when the held request is dropped (it was never executed).
        `changed` is told when a send starts waiting (so `FakeBotApi.wait_until` sees `held_sends` change)."""
        self.waiting += 1
        changed()
        try:
            await self.opened.wait()
        finally:
            self.waiting -= 1
        if self.drop:
            raise ApiError(502, "Bad Gateway")


class BotApi:
    """The state and behaviour behind one fake bot token."""

    def __init__(
        self,
        token: str,
        bot: User,
        *,
        rate_limits: RateLimits | None,
        clock: Callable[[], float],
        wall_clock: Callable[[], float],
        first_update_id: int,
    ) -> None:
        self.token = token
        self.world = World(bot, wall_clock)
        self.updates = UpdateQueue(first_update_id)
        self.flood = FloodControl(rate_limits)
        self.clock = clock
        self.calls: list[CallRecord] = []
        self.calls_by_method: dict[str, list[CallRecord]] = {}  # lower-case method name -> its calls
        self.answered_by_method: Counter[str] = Counter()  # lower-case method name -> its calls answered 200
        self.drafts: list[Draft] = []
        self.actions: list[ChatAction] = []
        self.edits: list[Edit] = []
        self.open_queries: dict[str, int] = {}  # callback query id -> chat id, until answered
        self._query_ids = itertools.count(4_000_000_000_000_000_001)
        self.callback_answers: list[CallbackAnswer] = []
        self.commands: dict[tuple[str, str], list[dict[str, str]]] = {}
        self.forced: list[ForcedError] = []
        self.closing = False
        self._poller: list[bool] | None = None  # [terminated] flag of the running long poll
        self.gate: SendGate | None = None  # while set, sends wait at the door (`FakeBotApi.hold_sends`)

    @property
    def polling(self) -> bool:
        """A getUpdates long poll is waiting."""
        return self._poller is not None

    # ------------------------------------------------------------------------------------------ dispatch

    def call(self, method: str, params: Params) -> Reply:
        """Run a synchronous method (case-insensitive name, like Telegram); raises :class:`ApiError`."""
        handler = _SYNC.get(method.lower())
        if handler is None:
            raise not_found()
        self._raise_forced(method.lower(), params)
        return Reply(handler(self, params)) if handler not in _DESCRIBED else handler(self, params)

    async def call_async(self, method: str, params: Params) -> Reply:
        """Run any method, waiting where the method waits (getUpdates long polling)."""
        if method.lower() == "getupdates":
            self._raise_forced("getupdates", params)
            return Reply(await self.get_updates(params))
        return self.call(method, params)

    def record(self, method: str, params: Params, status: int, response: dict[str, Any]) -> None:
        record = CallRecord(method, dict(params.values), tuple(params.files), status, response, self.clock())
        name = method.lower()
        self.calls.append(record)
        self.calls_by_method.setdefault(name, []).append(record)
        if record.ok:
            self.answered_by_method[name] += 1
        self.world.changes.poke()

    def _raise_forced(self, method: str, params: Params) -> None:
        if not self.forced:
            return
        try:
            chat_id: int | str | None = params.chat_id()
        except ApiError:
            chat_id = None
        for forced in self.forced:
            if (forced.method in (None, method)) and (forced.chat_id in (None, chat_id)):
                forced.times -= 1
                if forced.times <= 0:
                    self.forced.remove(forced)
                if forced.flood_wait is not None:
                    self.flood.impose(GLOBAL if forced.chat_id is None else forced.chat_id, forced.flood_wait,
                                      self.clock())  # fmt: skip
                raise forced.error()

    # ------------------------------------------------------------------------------------------- helpers

    def chat_for_send(self, params: Params) -> ChatState:
        """The target chat, or the 400/403 Telegram gives for unknown, migrated, blocked chats."""
        chat_id = params.chat_id()
        if isinstance(chat_id, str):
            found = self.world.usernames.get(chat_id.lstrip("@").lower()) if chat_id.startswith("@") else None
            if found is None:
                raise bad_request(CHAT_NOT_FOUND)
            chat_id = found
        state = self.world.chats.get(chat_id)
        if state is None:
            raise bad_request(CHAT_NOT_FOUND)
        if state.migrated_to is not None:
            raise migrated(state.migrated_to)
        if state.blocked is not None:
            raise forbidden(state.blocked)
        return state

    def _thread(self, state: ChatState, params: Params) -> int | None:
        thread_id = params.integer("message_thread_id")
        if thread_id is None or thread_id == 0:
            return None
        if state.chat.is_forum and thread_id in state.topics:
            return thread_id
        raise bad_request("message thread not found")

    def _reply_to(self, state: ChatState, params: Params) -> int | None:
        reply = params.json("reply_parameters")
        if reply is not None:
            if not isinstance(reply, dict) or type(reply.get("message_id")) is not int:
                raise bad_request("can't parse reply parameters JSON object")  # [?] our wording
            other_chat = reply.get("chat_id")
            if other_chat not in (None, state.chat.id, state.chat.username and f"@{state.chat.username}"):
                raise bad_request("message to be replied not found")  # cross-chat replies: not modelled
            target, allow = reply["message_id"], bool(reply.get("allow_sending_without_reply"))
        elif params.has("reply_to_message_id"):
            target, allow = params.integer("reply_to_message_id"), params.flag("allow_sending_without_reply")
        else:
            return None
        if target in state.messages:
            return target
        if allow:
            return None
        raise bad_request("message to be replied not found")

    def _inline_markup(self, params: Params) -> dict[str, Any] | None:
        markup = params.json("reply_markup")
        if markup is None:
            return None
        if not isinstance(markup, dict):
            raise bad_request("can't parse reply keyboard markup JSON object")
        keyboard = markup.get("inline_keyboard")
        if keyboard is None:
            return None  # reply keyboards are not part of the Message object
        if not isinstance(keyboard, list) or not all(isinstance(row, list) for row in keyboard):
            raise bad_request("can't parse inline keyboard button: InlineKeyboardButton must be an Object")
        return {"inline_keyboard": keyboard}

    def _flood(self, method: str, state: ChatState) -> None:
        if method in RATE_LIMITED:
            retry_after = self.flood.check(state.chat.id, state.chat.type != PRIVATE, self.clock())
            if retry_after is not None:
                raise too_many_requests(retry_after)

    def _formatted(self, params: Params, field: str, entities_field: str, limit: int, too_long: str,
                   *, required: bool) -> tuple[str, list[dict[str, Any]]]:  # fmt: skip
        raw = params.text(field)
        if raw is None or raw == "":
            if required:
                raise bad_request("message text is empty")
            return "", []
        plain, entities = format_text(raw, params.text("parse_mode"), params.json(entities_field))
        if required and not plain.strip():
            raise bad_request("message text is empty")
        if utf16_len(plain) > limit:
            raise bad_request(too_long)
        return plain, entities

    def _post(self, state: ChatState, content: dict[str, Any], thread_id: int | None, reply_to: int | None,
              markup: dict[str, Any] | None) -> dict[str, Any]:  # fmt: skip
        message = self.world.add_message(state, self.world.bot, content, thread_id=thread_id, reply_to=reply_to,
                                         reply_markup=markup)  # fmt: skip
        return self.world.render(message)

    # ------------------------------------------------------------------------------------------- methods

    def get_me(self, params: Params) -> dict[str, Any]:
        return {
            **self.world.bot.wire(),
            "can_join_groups": True,
            "can_read_all_group_messages": False,
            "supports_inline_queries": False,
            "can_connect_to_business": False,
            "has_main_web_app": False,
            "has_topics_enabled": False,
            "allows_users_to_create_topics": False,
        }

    def send_message(self, params: Params) -> dict[str, Any]:
        text, entities = self._formatted(params, "text", "entities", MAX_TEXT, "message is too long", required=True)
        state = self.chat_for_send(params)
        thread_id, reply_to = self._thread(state, params), self._reply_to(state, params)
        markup = self._inline_markup(params)
        self._flood("sendmessage", state)
        content: dict[str, Any] = {"text": text}
        if entities:
            content["entities"] = entities
        return self._post(state, content, thread_id, reply_to, markup)

    def edit_message_text(self, params: Params) -> dict[str, Any]:
        if params.has("inline_message_id"):
            raise bad_request("MESSAGE_ID_INVALID")  # inline messages are not modelled by the fake
        text, entities = self._formatted(params, "text", "entities", MAX_TEXT, "MESSAGE_TOO_LONG", required=True)
        state = self.chat_for_send(params)
        message_id = params.integer("message_id")
        if message_id is None:
            raise bad_request("message identifier is not specified")  # [?] our wording
        message = state.messages.get(message_id)
        if message is None:
            raise bad_request("message to edit not found")
        if message.sender is None or message.sender.id != self.world.bot.id:
            raise bad_request("message can't be edited")
        if "text" not in message.content:
            raise bad_request("there is no text in the message to edit")
        markup = self._inline_markup(params)
        if (
            message.content.get("text") == text
            and list(message.content.get("entities", [])) == entities
            and (dict(message.reply_markup) if message.reply_markup else None) == markup
        ):
            raise bad_request(
                "message is not modified: specified new message content and reply markup are exactly the same "
                "as a current content and reply markup of the message"
            )
        self._flood("editmessagetext", state)
        content: dict[str, Any] = {"text": text}
        if entities:
            content["entities"] = entities
        edited = attrs.evolve(message, content=content, edit_date=self.world.now(), reply_markup=markup)
        self.edits.append(Edit(state.chat.id, message_id, text, tuple(entities), self.clock()))
        self.world.replace_message(state, edited)
        return self.world.render(edited)

    def delete_message(self, params: Params) -> bool:
        state = self.chat_for_send(params)
        message_id = params.integer("message_id")
        if message_id is None or state.messages.pop(message_id, None) is None:
            raise bad_request("message to delete not found")
        self.world.changes.touch(state.chat.id)
        return True

    def send_message_draft(self, params: Params) -> bool:
        state = self.chat_for_send(params)
        if state.chat.type != PRIVATE:
            raise bad_request("TEXTDRAFT_PEER_INVALID")  # [?] drafts exist only in private chats
        draft_id = params.integer("draft_id")
        if not draft_id:
            raise bad_request("draft_id must be non-zero")  # [?] our wording
        text, entities = self._formatted(params, "text", "entities", MAX_TEXT, "message is too long",
                                         required=False)  # fmt: skip
        thread_id = self._thread(state, params)
        self.drafts.append(Draft(state.chat.id, draft_id, text, tuple(entities), thread_id, self.clock()))
        self.world.changes.touch(state.chat.id)
        return True

    def send_chat_action(self, params: Params) -> bool:
        state = self.chat_for_send(params)
        action = params.text("action")
        if not action:
            raise bad_request("action is empty")  # [?] our wording
        if action not in CHAT_ACTIONS:
            raise bad_request("wrong parameter action in request")
        thread_id = self._thread(state, params)
        self.actions.append(ChatAction(state.chat.id, action, thread_id, self.clock()))
        self.world.changes.touch(state.chat.id)
        return True

    def send_photo(self, params: Params) -> dict[str, Any]:
        caption, entities = self._formatted(params, "caption", "caption_entities", MAX_CAPTION,
                                            "message caption is too long", required=False)  # fmt: skip
        state = self.chat_for_send(params)
        thread_id, reply_to = self._thread(state, params), self._reply_to(state, params)
        markup = self._inline_markup(params)
        source = params.raw("photo")
        upload = params.files.get("photo")
        if isinstance(source, str) and source.startswith("attach://"):
            upload = params.files.get(source[len("attach://") :])
            if upload is None:
                raise bad_request("wrong file identifier/HTTP URL specified")
        if upload is not None:
            size = image_size(upload.data)
            if size is None:
                raise bad_request("IMAGE_PROCESS_FAILED")
            stored = self.world.add_file("photos", upload.data, size[2])
        elif isinstance(source, str) and source:
            found = self.world.files.get(source)
            if found is None or image_size(found.data) is None:
                raise bad_request("wrong file identifier/HTTP URL specified")
            stored = found
        else:
            raise bad_request("there is no photo in the request")
        self._flood("sendphoto", state)
        content: dict[str, Any] = {"photo": [photo_size(stored.file_id, stored.file_unique_id, stored.data)]}
        if caption:
            content["caption"] = caption
        if entities:
            content["caption_entities"] = entities
        return self._post(state, content, thread_id, reply_to, markup)

    def open_query(self, chat_id: int) -> str:
        """A new callback query id for a button press in ``chat_id``."""
        query_id = str(next(self._query_ids))
        self.open_queries[query_id] = chat_id
        return query_id

    def answer_callback_query(self, params: Params) -> bool:
        query_id = params.text("callback_query_id") or ""
        chat_id = self.open_queries.pop(query_id, None)
        if chat_id is None:
            raise bad_request("query is too old and response timeout expired or query ID is invalid")
        text = params.text("text")
        if text is not None and len(text) > 200:
            self.open_queries[query_id] = chat_id
            raise bad_request("MESSAGE_TOO_LONG")
        self.callback_answers.append(CallbackAnswer(chat_id, query_id, text, params.flag("show_alert"), self.clock()))
        self.world.changes.touch(chat_id)
        return True

    def get_file(self, params: Params) -> dict[str, Any]:
        file_id = params.text("file_id")
        if not file_id:
            raise bad_request("file_id is empty")  # [?] our wording
        stored = self.world.files.get(file_id)
        if stored is None:
            raise bad_request("invalid file_id")
        if len(stored.data) > MAX_DOWNLOAD:
            raise bad_request("file is too big")
        return stored.wire()

    def set_my_commands(self, params: Params) -> bool:
        commands = params.json("commands")
        if commands is None:
            raise bad_request('parameter "commands" is required')  # [?] our wording
        if not isinstance(commands, list):
            raise bad_request("can't parse commands JSON object")
        if len(commands) > 100:
            raise bad_request("BOT_COMMANDS_TOO_MUCH")
        cleaned: list[dict[str, str]] = []
        for item in commands:
            if not isinstance(item, dict):
                raise bad_request("can't parse BotCommand JSON object")
            command, description = item.get("command"), item.get("description")
            if not isinstance(command, str) or not _COMMAND.match(command.lstrip("/")):
                raise bad_request("BOT_COMMAND_INVALID")
            if not isinstance(description, str) or not 1 <= len(description.strip()) <= 256:
                raise bad_request("BOT_COMMAND_DESCRIPTION_INVALID")  # [?] our wording
            cleaned.append({"command": command.lstrip("/"), "description": description})
        self.commands[self._command_key(params)] = cleaned
        return True

    def get_my_commands(self, params: Params) -> list[dict[str, str]]:
        return list(self.commands.get(self._command_key(params), []))

    def delete_my_commands(self, params: Params) -> bool:
        self.commands.pop(self._command_key(params), None)
        return True

    def _command_key(self, params: Params) -> tuple[str, str]:
        scope = params.json("scope") or {"type": "default"}
        if not isinstance(scope, dict) or scope.get("type") not in COMMAND_SCOPES:
            raise bad_request("can't parse BotCommandScope JSON object")  # [?] our wording
        language = params.text("language_code", "") or ""
        if language and not re.match(r"^[a-z]{2}$", language):
            raise bad_request("invalid language code specified")  # [?] our wording
        return json.dumps(scope, sort_keys=True), language

    def set_webhook(self, params: Params) -> Reply:
        url = params.text("url", "") or ""
        if not url:
            return self.delete_webhook(params)
        if not re.match(r"^https?://[^/\s]+", url):
            raise bad_request("bad webhook: An HTTPS URL must be provided for webhook")
        secret = params.text("secret_token")
        if secret is not None and not _SECRET.match(secret):
            raise bad_request("secret token contains unallowed characters")
        max_connections = params.integer("max_connections", 40)
        if max_connections is None or not 1 <= max_connections <= 100:
            raise bad_request("bad webhook: invalid max_connections specified")  # [?] our wording
        self._set_allowed(params)
        if params.flag("drop_pending_updates"):
            self.updates.drop_all()
        webhook = Webhook(url, secret, max_connections, params.text("ip_address"))
        if webhook == self.updates.webhook:
            return Reply(True, "Webhook is already set")
        self.updates.set_webhook(webhook)
        return Reply(True, "Webhook was set")

    def delete_webhook(self, params: Params) -> Reply:
        if params.flag("drop_pending_updates"):
            self.updates.drop_all()
        if self.updates.webhook is None:
            return Reply(True, "Webhook is already deleted")
        self.updates.set_webhook(None)
        return Reply(True, "Webhook was deleted")

    def get_webhook_info(self, params: Params) -> dict[str, Any]:
        hook = self.updates.webhook
        info: dict[str, Any] = {
            "url": hook.url if hook else "",
            "has_custom_certificate": False,
            "pending_update_count": len(self.updates),
        }
        if hook is not None:
            info["max_connections"] = hook.max_connections
            if hook.ip_address:
                info["ip_address"] = hook.ip_address
            if self.updates.allowed:
                info["allowed_updates"] = sorted(self.updates.allowed)
            if self.updates.last_error_date is not None:
                info["last_error_date"] = self.updates.last_error_date
                info["last_error_message"] = self.updates.last_error_message
        return info

    def _set_allowed(self, params: Params) -> None:
        allowed = params.json("allowed_updates")
        if allowed is None:
            return
        if not isinstance(allowed, list) or not all(isinstance(kind, str) for kind in allowed):
            raise bad_request("can't parse allowed_updates JSON object")  # [?] our wording
        self.updates.allowed = frozenset(allowed) or None

    async def get_updates(self, params: Params) -> list[dict[str, Any]]:
        """Long polling: confirm below ``offset``, then wait up to ``timeout`` seconds for updates."""
        if self.updates.webhook is not None:
            raise conflict(WEBHOOK_ACTIVE)
        offset = params.integer("offset")
        limit = params.integer("limit", 100) or 100
        if not 1 <= limit <= 100:
            limit = 100  # [?] out-of-range limits fall back to the default
        timeout = max(0.0, params.number("timeout", 0.0))
        self._set_allowed(params)
        if offset is not None:
            self.updates.confirm_below(offset)
        if self._poller is not None:
            self._poller[0] = True
            self.updates.wake()
        mine = self._poller = [False]
        self.world.changes.poke()
        try:
            with trio.move_on_after(timeout):
                while not self.updates.peek(1) and not self.closing:
                    await self.updates.arrived().wait()
                    if mine[0]:
                        raise conflict(POLLER_REPLACED)
                    if self.updates.webhook is not None:
                        raise conflict(WEBHOOK_ACTIVE)
        finally:
            if self._poller is mine:
                self._poller = None
        return [update.body for update in self.updates.peek(limit)]


def photo_size(file_id: str, file_unique_id: str, data: bytes) -> dict[str, Any]:
    """A PhotoSize for stored image bytes (the fake does not make thumbnails)."""
    size = image_size(data)
    width, height = (size[0], size[1]) if size else (0, 0)
    return {
        "file_id": file_id,
        "file_unique_id": file_unique_id,
        "file_size": len(data),
        "width": width,
        "height": height,
    }


def fetched_upload(url: str, data: bytes, content_type: str) -> Upload:
    """An ``http(s)://`` file source fetched by the transport, handled like an upload."""
    return Upload(url.rsplit("/", 1)[-1] or "file", content_type, data)


_SYNC: dict[str, Callable[[BotApi, Params], Any]] = {
    "getme": BotApi.get_me,
    "sendmessage": BotApi.send_message,
    "editmessagetext": BotApi.edit_message_text,
    "deletemessage": BotApi.delete_message,
    "sendmessagedraft": BotApi.send_message_draft,
    "sendchataction": BotApi.send_chat_action,
    "sendphoto": BotApi.send_photo,
    "answercallbackquery": BotApi.answer_callback_query,
    "getfile": BotApi.get_file,
    "setmycommands": BotApi.set_my_commands,
    "getmycommands": BotApi.get_my_commands,
    "deletemycommands": BotApi.delete_my_commands,
    "setwebhook": BotApi.set_webhook,
    "deletewebhook": BotApi.delete_webhook,
    "getwebhookinfo": BotApi.get_webhook_info,
}
_DESCRIBED = frozenset({BotApi.set_webhook, BotApi.delete_webhook})
METHODS = frozenset({*_SYNC, "getupdates"})
