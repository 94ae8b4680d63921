"""What to do with an Update: ignore it, run a command, start a turn, or answer a button press (pure; no I/O).

`decide` applies everything a message must pass before it may reach an actor: the chat kind, the sender,
`accept_in_group` (mentions, replies to the bot, commands, /cmd@OtherBot), and it works out the
conversation a message belongs to (`conversation_scope`, forum topics) and where replies go. Besides new
messages it handles edited messages (a new turn with the edited text) and button presses (`callback_query`: a
turn with the button's data, and the query to answer). The turn of an edit or a press carries what it is in
`TurnRequest.event` (the envelope's `options["telegram"]`).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import attrs

from afactors_telegram.commands import BUILTIN_COMMANDS
from afactors_telegram.config import TelegramConfig
from afactors_telegram.text import utf16_slice

PRIVATE = "private"
GROUPS = frozenset({"group", "supergroup"})
ALLOWED_UPDATES = ("message", "edited_message", "callback_query")
"""The update kinds the channel asks Telegram for (every other kind is ignored if it arrives anyway)."""
EVENT_OPTION = "telegram"
"""The envelope option that says what an edit's or a button press's turn is (`TurnRequest.event`)."""


@attrs.frozen
class BotInfo:
    """The bot's own identity (from getMe): mentions and /cmd@username are checked against it."""

    id: int
    username: str


@attrs.frozen
class Address:
    """Where an answer goes: the chat, its kind, the forum topic (thread) if any, and in groups the message
    it quotes (`reply_to`)."""

    chat_id: int
    chat_type: str
    thread_id: int | None = None
    reply_to: int | None = None

    @property
    def private(self) -> bool:
        return self.chat_type == PRIVATE

    def to_dict(self) -> dict[str, Any]:
        """The `ReplyTarget` address."""
        out: dict[str, Any] = {"chat_id": self.chat_id, "chat_type": self.chat_type}
        if self.thread_id is not None:
            out["message_thread_id"] = self.thread_id
        if self.reply_to is not None:
            out["reply_to_message_id"] = self.reply_to
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Address:
        """The address of a `ReplyTarget`; raises ValueError when it is not one of ours."""
        chat_id, chat_type = data.get("chat_id"), data.get("chat_type")
        thread, reply_to = data.get("message_thread_id"), data.get("reply_to_message_id")
        if (
            type(chat_id) is not int
            or not isinstance(chat_type, str)
            or any(value is not None and type(value) is not int for value in (thread, reply_to))
        ):
            raise ValueError(f"not a Telegram address: {dict(data)!r}")
        return cls(chat_id, chat_type, thread, reply_to)


@attrs.frozen
class Sender:
    """The user who sent a message."""

    id: int
    name: str


@attrs.frozen
class MediaRef:
    """A file attached to a message, fetched with getFile before the turn is submitted."""

    kind: str
    file_id: str
    media_type: str
    name: str | None = None
    size: int | None = None


@attrs.frozen
class Ignore:
    """Nothing reaches an actor; `reason` is for logs and tests."""

    reason: str


@attrs.frozen
class CommandRequest:
    """A command the channel answers itself (/start, /new, /help, or one registered with the channel)."""

    name: str
    args: str
    address: Address
    message_id: int
    sender: Sender
    conversation: str


@attrs.frozen
class TurnRequest:
    """A message for the agent: its text (or caption) and attached media, in conversation `conversation`.

    `event`: None for a new message; for an edited message `{"update": "edited_message", "message_id",
    "edit_date"}`, for a button press `{"update": "callback_query", "data", "message_id", "message_text"}`.
    """

    update_id: int
    address: Address
    message_id: int
    sender: Sender
    conversation: str
    text: str
    media: tuple[MediaRef, ...] = ()
    event: dict[str, Any] | None = None

    @property
    def turn_suffix(self) -> str:
        """What sets the turn id of an edit or a press apart from that of the message it is about."""
        return "" if self.event is None else f"_u{self.update_id}"


@attrs.frozen
class ButtonPress:
    """A press of an inline button: the query to answer (always, so the client stops its spinner) and the turn
    it starts, if any (`reason` says why not)."""

    query_id: str
    turn: TurnRequest | None
    reason: str = ""


Decision = Ignore | CommandRequest | TurnRequest | ButtonPress


def conversation_id(bot_id: int, scope: str, address: Address, user_id: int) -> str:
    """The base conversation key of a message (before /new epochs), per spec §3.19.

    A private chat is the user's own conversation; a group follows `scope`; a forum topic is a
    conversation of its own (`<chat_id>:<thread_id>`).
    """
    user_key = f"telegram:{bot_id}:{user_id}"
    where = str(address.chat_id) if address.thread_id is None else f"{address.chat_id}:{address.thread_id}"
    if address.private:
        return user_key if address.thread_id is None else f"{user_key}:{where}"
    if scope == "per_user":
        return user_key
    if scope == "per_conversation":
        return f"_conv:telegram:{bot_id}:{where}"
    return f"{user_key}:{where}"


def follows_identity(scope: str, address: Address) -> bool:
    """Whether a message's conversation is its sender's own (the user key of `conversation_id`): then it follows
    their identity, so it continues on every channel they linked."""
    if address.private:
        return address.thread_id is None
    return scope == "per_user"


def turn_id_for(bot_id: int, address: Address, message_id: int, suffix: str = "") -> str:
    """The turn id of a message (plus `TurnRequest.turn_suffix` for an edit or a press): the same on every
    delivery of the update that carries it."""
    return f"tg{bot_id}_{address.chat_id}_{message_id}{suffix}"


def idempotency_key(bot_id: int, update_id: int) -> str:
    """The inbox dedup key of an update (update ids are per bot, so the bot id is part of it)."""
    return f"tg:{bot_id}:{update_id}"


def _int(value: Any) -> int | None:
    return value if type(value) is int else None


def _dict(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def _entities(message: Mapping[str, Any], key: str) -> list[Mapping[str, Any]]:
    raw = message.get(key)
    if not isinstance(raw, list):
        return []
    return [e for e in raw if isinstance(e, Mapping) and _int(e.get("offset")) is not None and _int(e.get("length"))]


def _command(text: str, entities: list[Mapping[str, Any]], bot: BotInfo) -> tuple[str, str, bool] | None:
    """(name, args, addressed to us by @username) of a leading command, or None.

    A command for another bot (/cmd@OtherBot) gives ("", "", False).
    """
    lead = next((e for e in entities if e.get("type") == "bot_command" and e["offset"] == 0), None)
    if lead is None:
        return None
    token = utf16_slice(text, 0, lead["length"])
    name, _, target = token[1:].partition("@")
    if target and target.lower() != bot.username.lower():
        return "", "", False
    args = utf16_slice(text, lead["length"]).strip()
    return name.lower(), args, bool(target)


def _mentions_bot(entity: Mapping[str, Any], text: str, bot: BotInfo) -> bool:
    kind = entity.get("type")
    if kind == "mention":
        return utf16_slice(text, entity["offset"], entity["length"]).lower() == f"@{bot.username}".lower()
    if kind == "text_mention":
        return _int(_dict(entity.get("user")).get("id")) == bot.id
    return False


def _replies_to_bot(message: Mapping[str, Any], bot: BotInfo) -> bool:
    replied = _dict(message.get("reply_to_message"))
    if _int(_dict(replied.get("from")).get("id")) != bot.id:
        return False
    # In a forum every message "replies" to its topic's first message; that is no reply to the bot.
    return not (message.get("is_topic_message") and replied.get("message_id") == message.get("message_thread_id"))


def _strip_leading_mention(text: str, entities: list[Mapping[str, Any]], bot: BotInfo) -> str:
    lead = next((e for e in entities if e["offset"] == 0 and _mentions_bot(e, text, bot)), None)
    if lead is None:
        return text
    rest = utf16_slice(text, lead["length"]).lstrip(" ,:\n")
    return rest or text


def _media(message: Mapping[str, Any]) -> tuple[MediaRef, ...]:
    found: list[MediaRef] = []
    sizes = message.get("photo")
    sizes = sizes if isinstance(sizes, list) else ()
    photos = [p for p in sizes if isinstance(p, Mapping) and isinstance(p.get("file_id"), str)]
    if photos:
        largest = max(
            photos,
            key=lambda p: (_int(p.get("file_size")) or 0, (_int(p.get("width")) or 0) * (_int(p.get("height")) or 0)),
        )
        found.append(MediaRef("photo", largest["file_id"], "image/jpeg", None, _int(largest.get("file_size"))))
    for kind, default_type in (("document", "application/octet-stream"), ("voice", "audio/ogg"),
                               ("audio", "audio/mpeg"), ("video", "video/mp4")):  # fmt: skip
        item = _dict(message.get(kind))
        if isinstance(item.get("file_id"), str):
            mime_type = item.get("mime_type")
            media_type = mime_type if isinstance(mime_type, str) else default_type
            name = item.get("file_name") if isinstance(item.get("file_name"), str) else None
            found.append(MediaRef(kind, item["file_id"], media_type, name, _int(item.get("file_size"))))
    return tuple(found)


def _accepted(policy: str, mentioned: bool, command: tuple[str, str, bool] | None, known: bool) -> bool:
    """`accept_in_group` for one group message.

    Commands the channel knows always count, and `/cmd@thisbot` counts as a mention. `mention_only` takes
    mentions and replies to the bot; `mention_or_command` also any other `/command`; `command_only` only
    commands; `all` everything.
    """
    if policy == "all" or known:
        return True
    addressed = mentioned or (command is not None and command[2])
    if policy == "mention_only":
        return addressed
    if policy == "mention_or_command":
        return addressed or command is not None
    return command is not None


def _sender(user: Mapping[str, Any]) -> Sender | None:
    user_id = _int(user.get("id"))
    if user_id is None or user.get("is_bot") is True:
        return None
    names = [user.get("first_name"), user.get("last_name")]
    return Sender(user_id, " ".join(n for n in names if isinstance(n, str) and n) or str(user_id))


def _where(message: Mapping[str, Any]) -> tuple[Address, int] | None:
    """The address (no quote yet) and id of a message in a private chat or group, or None."""
    chat = _dict(message.get("chat"))
    chat_type = chat.get("type") if isinstance(chat.get("type"), str) else None
    chat_id, message_id = _int(chat.get("id")), _int(message.get("message_id"))
    if chat_id is None or message_id is None or (chat_type != PRIVATE and chat_type not in GROUPS):
        return None
    thread = _int(message.get("message_thread_id")) if message.get("is_topic_message") is True else None
    return Address(chat_id, chat_type, thread), message_id


def decide(update: Mapping[str, Any], bot: BotInfo, config: TelegramConfig) -> Decision:
    """What the channel does with `update` (never raises, whatever the update holds)."""
    update_id = _int(update.get("update_id"))
    if update_id is None:
        return Ignore("no integer update_id")
    if "message" in update:
        return _message(update_id, _dict(update.get("message")), bot, config, edited=False)
    if "edited_message" in update:
        return _message(update_id, _dict(update.get("edited_message")), bot, config, edited=True)
    if "callback_query" in update:
        return _button(update_id, _dict(update.get("callback_query")), bot, config)
    kinds = sorted(str(k) for k in update if k != "update_id")
    return Ignore(f"an update kind the channel does not handle: {', '.join(kinds) or 'none'}")


def _message(update_id: int, message: Mapping[str, Any], bot: BotInfo, config: TelegramConfig, *,
             edited: bool) -> Decision:  # fmt: skip
    if not message:
        return Ignore("not a message")
    where = _where(message)
    if where is None:
        return Ignore("not a private or group chat message")
    base, message_id = where
    sender = _sender(_dict(message.get("from")))
    if sender is None:
        return Ignore("not sent by a user")
    address = base if base.private else attrs.evolve(base, reply_to=message_id)
    text = message.get("text") if isinstance(message.get("text"), str) else message.get("caption")
    text = text if isinstance(text, str) else ""
    entities = _entities(message, "entities" if "text" in message else "caption_entities")
    command = _command(text, entities, bot)
    if command is not None and not command[0]:
        return Ignore("a command for another bot")
    known = command is not None and command[0] in {*BUILTIN_COMMANDS, *(c.name for c in config.commands)}
    if edited and known:
        return Ignore("an edited command is not run again")
    if not address.private:
        mentioned = _replies_to_bot(message, bot) or any(_mentions_bot(e, text, bot) for e in entities)
        if not _accepted(config.accept_in_group, mentioned, command, known):
            return Ignore(f"not addressed to the bot ({config.accept_in_group})")
        text = _strip_leading_mention(text, entities, bot)
    conversation = conversation_id(bot.id, config.conversation_scope, address, sender.id)
    if known and command is not None:
        return CommandRequest(command[0], command[1], address, message_id, sender, conversation)
    media = _media(message)
    if not text.strip() and not media:
        return Ignore("no text or media")
    event = None
    if edited:
        edit_date = _int(message.get("edit_date"))
        event = {"update": "edited_message", "message_id": message_id, "edit_date": edit_date}
    return TurnRequest(update_id, address, message_id, sender, conversation, text, media, event)


def _button(update_id: int, query: Mapping[str, Any], bot: BotInfo, config: TelegramConfig) -> Decision:
    query_id = query.get("id")
    if not isinstance(query_id, str) or not query_id:
        return Ignore("a callback query without an id")
    sender = _sender(_dict(query.get("from")))
    if sender is None:
        return ButtonPress(query_id, None, "not pressed by a user")
    data = query.get("data")
    if not isinstance(data, str) or not data:
        return ButtonPress(query_id, None, "no callback data (a game or an empty button)")
    message = _dict(query.get("message"))
    where = _where(message) if message else None
    if where is None:
        return ButtonPress(query_id, None, "the button's message is not in a private or group chat (inline mode)")
    base, message_id = where
    address = base if base.private else attrs.evolve(base, reply_to=message_id)
    conversation = conversation_id(bot.id, config.conversation_scope, address, sender.id)
    shown = message.get("text") if isinstance(message.get("text"), str) else None
    event = {"update": "callback_query", "data": data, "message_id": message_id, "message_text": shown}
    return ButtonPress(query_id, TurnRequest(update_id, address, message_id, sender, conversation, data, (), event))
