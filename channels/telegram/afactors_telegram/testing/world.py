"""The fake's world: users, chats, forum topics, messages and files, plus change notification."""

from __future__ import annotations

import base64
import hashlib
import itertools
from collections.abc import Iterable, Mapping
from typing import Any

import attrs
import trio

from afactors_telegram.testing.model import GROUP, PRIVATE, SUPERGROUP, Chat, Message, StoredFile, User

FORUM_ICON_COLOR = 7322096  # one of the six colours Telegram allows for topic icons


class Changes:
    """Wakes waiters when a chat (or anything) changes. Waiters loop: check, then wait, then check."""

    def __init__(self) -> None:
        self._by_chat: dict[int, trio.Event] = {}
        self._any = trio.Event()

    def touch(self, chat_id: int) -> None:
        """Something in ``chat_id`` changed."""
        event = self._by_chat.pop(chat_id, None)
        if event is not None:
            event.set()
        self.poke()

    def poke(self) -> None:
        """Something changed that is not tied to one chat (a call was recorded, an update delivered)."""
        self._any.set()
        self._any = trio.Event()

    def chat(self, chat_id: int) -> trio.Event:
        event = self._by_chat.get(chat_id)
        if event is None:
            event = self._by_chat[chat_id] = trio.Event()
        return event

    def any(self) -> trio.Event:
        return self._any


@attrs.define
class ChatState:
    """Everything the fake knows about one chat."""

    chat: Chat
    messages: dict[int, Message] = attrs.field(factory=dict)
    bot_messages: list[int] = attrs.field(factory=list)
    topics: dict[int, str] = attrs.field(factory=dict)
    next_message_id: int = 1
    blocked: str | None = None  # a 403 description while the bot is blocked/kicked
    migrated_to: int | None = None


class World:
    """Users, chats and files. All ids are deterministic for a given bot id."""

    def __init__(self, bot: User, clock_wall: Any) -> None:
        self.bot = bot
        self._wall = clock_wall
        self.users: dict[int, User] = {bot.id: bot}
        self.chats: dict[int, ChatState] = {}
        self.usernames: dict[str, int] = {}
        self.files: dict[str, StoredFile] = {}
        self.files_by_path: dict[str, StoredFile] = {}
        self.changes = Changes()
        self._user_ids = itertools.count(100_000_001)
        self._group_ids = itertools.count(400_000_001)
        self._supergroup_ids = itertools.count(1_002_000_000_001)
        self._file_numbers = itertools.count(1)

    def now(self) -> int:
        return int(self._wall())

    # ------------------------------------------------------------------------------------------ creation

    def add_user(self, first_name: str, *, username: str | None = None, last_name: str | None = None,
                 language_code: str | None = "en", user_id: int | None = None) -> User:  # fmt: skip
        user = User(
            id=next(self._user_ids) if user_id is None else user_id,
            first_name=first_name,
            last_name=last_name,
            username=username,
            language_code=language_code,
        )
        self.users[user.id] = user
        return user

    def private_chat(self, user: User) -> ChatState:
        state = self.chats.get(user.id)
        if state is None:
            chat = Chat(user.id, PRIVATE, username=user.username, first_name=user.first_name,
                        last_name=user.last_name)  # fmt: skip
            state = self._add_chat(chat)
        return state

    def group(self, title: str, *, chat_id: int | None = None) -> ChatState:
        return self._add_chat(Chat(-next(self._group_ids) if chat_id is None else chat_id, GROUP, title=title))

    def supergroup(self, title: str, *, forum: bool = False, username: str | None = None,
                   chat_id: int | None = None) -> ChatState:  # fmt: skip
        chat_id = -next(self._supergroup_ids) if chat_id is None else chat_id
        return self._add_chat(Chat(chat_id, SUPERGROUP, title=title, username=username, is_forum=forum))

    def _add_chat(self, chat: Chat) -> ChatState:
        if chat.id in self.chats:
            raise ValueError(f"chat {chat.id} already exists")
        state = self.chats[chat.id] = ChatState(chat)
        if chat.username and chat.type != PRIVATE:
            self.usernames[chat.username.lower()] = chat.id
        return state

    def add_file(self, kind: str, data: bytes, extension: str) -> StoredFile:
        """Store bytes; ``kind`` is the folder Telegram uses (photos, documents, voice...)."""
        number = next(self._file_numbers)
        seed = hashlib.sha512(f"{self.bot.id}:{number}".encode()).digest()
        token = base64.urlsafe_b64encode(seed).decode().rstrip("=")
        prefix = {"photos": "AgACAgIAAxkBAA", "voice": "AwACAgIAAxkBAA"}.get(kind, "BQACAgIAAxkBAA")
        stored = StoredFile(
            file_id=f"{prefix}{token[:48]}",
            file_unique_id=f"AQAD{token[48:60]}",
            file_path=f"{kind}/file_{number}.{extension}",
            data=data,
        )
        self.files[stored.file_id] = stored
        self.files_by_path[stored.file_path] = stored
        return stored

    # ------------------------------------------------------------------------------------------ messages

    def add_message(self, state: ChatState, sender: User | None, content: Mapping[str, Any], *,
                    thread_id: int | None = None, reply_to: int | None = None,
                    reply_markup: Mapping[str, Any] | None = None) -> Message:  # fmt: skip
        """Append a message; a message in a forum topic replies to the topic's creation by default."""
        is_topic = thread_id is not None and state.chat.is_forum
        if is_topic and reply_to is None:
            reply_to = thread_id
        message = Message(
            message_id=state.next_message_id,
            chat_id=state.chat.id,
            sender=sender,
            date=self.now(),
            content=dict(content),
            thread_id=thread_id,
            is_topic_message=is_topic,
            reply_to=reply_to,
            reply_markup=reply_markup,
        )
        state.next_message_id += 1
        state.messages[message.message_id] = message
        if sender is not None and sender.id == self.bot.id:
            state.bot_messages.append(message.message_id)
        self.changes.touch(state.chat.id)
        return message

    def replace_message(self, state: ChatState, message: Message) -> None:
        state.messages[message.message_id] = message
        self.changes.touch(state.chat.id)

    def create_topic(self, state: ChatState, name: str, creator: User) -> Message:
        """A forum topic: its thread id is the id of its ``forum_topic_created`` service message."""
        if not state.chat.is_forum:
            raise ValueError(f"chat {state.chat.id} is not a forum")
        thread_id = state.next_message_id
        state.topics[thread_id] = name
        content = {"forum_topic_created": {"name": name, "icon_color": FORUM_ICON_COLOR}}
        return self.add_message(state, creator, content, thread_id=thread_id, reply_to=None)

    def render(self, message: Message, *, nested: bool = False) -> dict[str, Any]:
        """The Message object; ``reply_to_message`` is nested one level, like Telegram does."""
        state = self.chats[message.chat_id]
        body: dict[str, Any] = {"message_id": message.message_id}
        if message.thread_id is not None:
            body["message_thread_id"] = message.thread_id
        if message.sender is not None:
            body["from"] = message.sender.wire()
        body["chat"] = state.chat.wire()
        body["date"] = message.date
        if message.edit_date is not None:
            body["edit_date"] = message.edit_date
        if message.is_topic_message:
            body["is_topic_message"] = True
        if message.reply_to is not None and not nested:
            target = state.messages.get(message.reply_to)
            if target is not None:
                body["reply_to_message"] = self.render(target, nested=True)
        body.update(message.content)
        if message.reply_markup:
            body["reply_markup"] = dict(message.reply_markup)
        return body

    def bot_messages(self, chat_id: int, thread_id: int | None = None) -> list[dict[str, Any]]:
        state = self.chats.get(chat_id)
        if state is None:
            return []
        found: Iterable[Message] = (state.messages[i] for i in state.bot_messages if i in state.messages)
        if thread_id is not None:
            found = (m for m in found if m.thread_id == thread_id)
        return [self.render(m) for m in found]
