"""Data the fake Bot API keeps, and its rendering to Bot API JSON objects (User, Chat, File)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import attrs

PRIVATE, GROUP, SUPERGROUP = "private", "group", "supergroup"


def _compact(**fields: Any) -> dict[str, Any]:
    """A Bot API object: optional fields that are absent are left out, never ``null``."""
    return {key: value for key, value in fields.items() if value is not None}


@attrs.frozen
class User:
    """A Telegram user (or the bot itself)."""

    id: int
    first_name: str
    is_bot: bool = False
    last_name: str | None = None
    username: str | None = None
    language_code: str | None = None

    def wire(self) -> dict[str, Any]:
        """The User object."""
        return _compact(
            id=self.id,
            is_bot=self.is_bot,
            first_name=self.first_name,
            last_name=self.last_name,
            username=self.username,
            language_code=self.language_code,
        )


@attrs.frozen
class Chat:
    """A chat the bot is in: private (id = the user's id), group, or supergroup (optionally a forum)."""

    id: int
    type: str
    title: str | None = None
    username: str | None = None
    first_name: str | None = None
    last_name: str | None = None
    is_forum: bool = False

    def wire(self) -> dict[str, Any]:
        """The Chat object as embedded in a Message."""
        return _compact(
            id=self.id,
            title=self.title,
            username=self.username,
            first_name=self.first_name,
            last_name=self.last_name,
            type=self.type,
            is_forum=True if self.is_forum else None,
        )


@attrs.frozen
class StoredFile:
    """A file the fake serves at ``/file/bot<token>/<file_path>``."""

    file_id: str
    file_unique_id: str
    file_path: str
    data: bytes = attrs.field(repr=False)

    def wire(self) -> dict[str, Any]:
        """The File object returned by getFile."""
        return {
            "file_id": self.file_id,
            "file_unique_id": self.file_unique_id,
            "file_size": len(self.data),
            "file_path": self.file_path,
        }


@attrs.frozen
class Message:
    """A message in a chat. ``content`` holds its wire fields (text/entities, photo/caption, service...)."""

    message_id: int
    chat_id: int
    sender: User | None
    date: int
    content: Mapping[str, Any]
    thread_id: int | None = None
    is_topic_message: bool = False
    reply_to: int | None = None
    edit_date: int | None = None
    reply_markup: Mapping[str, Any] | None = None


@attrs.frozen
class CallRecord:
    """One Bot API request the fake answered."""

    method: str
    params: Mapping[str, Any]
    files: tuple[str, ...]
    status: int
    response: Mapping[str, Any]
    at: float

    @property
    def ok(self) -> bool:
        return self.status == 200


@attrs.frozen
class Draft:
    """A ``sendMessageDraft`` call: an ephemeral streaming preview."""

    chat_id: int
    draft_id: int
    text: str
    entities: tuple[Mapping[str, Any], ...]
    thread_id: int | None
    at: float


@attrs.frozen
class ChatAction:
    """A ``sendChatAction`` call (typing, upload_photo, ...)."""

    chat_id: int
    action: str
    thread_id: int | None
    at: float


@attrs.frozen
class Edit:
    """A successful ``editMessageText``: the text the message had after it."""

    chat_id: int
    message_id: int
    text: str
    entities: tuple[Mapping[str, Any], ...]
    at: float


@attrs.frozen
class CallbackAnswer:
    """An ``answerCallbackQuery`` call for a button press injected with ``press_button``."""

    chat_id: int
    callback_query_id: str
    text: str | None
    show_alert: bool
    at: float
