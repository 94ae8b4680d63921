"""Chat commands: the built-in ones, the ones a channel registers, what their handlers receive, the
setMyCommands list (pure). The one place the built-in command names are listed."""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable, Sequence

import attrs

from afactors.model import ConversationKey

BUILTIN_DESCRIPTIONS = (
    ("start", "Start talking to the bot"),
    ("new", "Start a new conversation (the old one is kept)"),
    ("help", "List the commands"),
    ("link", "Link this chat with your account on another channel"),
    ("unlink", "Undo /link for this chat"),
    ("login", "Sign in to link this chat with your account"),
)
BUILTIN_COMMANDS: tuple[str, ...] = tuple(name for name, _ in BUILTIN_DESCRIPTIONS)
"""The names of the commands the channel answers itself: /start, /new, /help, /link, /unlink, /login."""

NEW_CONVERSATION_TEXT = "Started a new conversation."
LINK_IN_PRIVATE_TEXT = "Send /link to me in a private chat."
LOGIN_IN_PRIVATE_TEXT = "Send /login to me in a private chat."


def sign_in_text(url: str) -> str:
    """The answer to `/login`: the provider's sign-in link."""
    return f"Sign in here to link this chat with your account (the link works once, for a few minutes):\n{url}"


LINK_IN_GROUP_TEXT = "Please link your account first: I sent you the details in a private chat."


def link_code_text(code: str, minutes: int) -> str:
    """The answer to `/link`: the code and how to use it."""
    return (
        f'Your link code is {code}. Within {minutes} minutes, send "/link {code}" from the other channel '
        "(or enter it in the app) to continue this conversation there. Never share it."
    )


def linked_text(linked: list[str]) -> str:
    """The answer to a successful `/link CODE`."""
    channels = sorted({ref.split("/", 1)[0] for ref in linked})
    return f"Linked. Your conversation now continues on: {', '.join(channels)}."


def background_text(text: str, token: str | None) -> str:
    """The answer to a turn that became a background run: the configured text and the run's token."""
    return text if token is None else f"{text}\n(Run token: {token})"


UNLINKED_TEXT = "Unlinked: this chat is a conversation of its own again."
NOT_LINKED_TEXT = "This chat is not linked to anything."

_COMMAND = re.compile(r"^[a-z0-9_]{1,32}$")


@attrs.frozen
class CommandCall:
    """What a registered command handler gets: the command, its arguments, who sent it, and where."""

    name: str
    args: str
    user_id: int
    user_name: str
    chat_id: int
    chat_type: str
    thread_id: int | None
    conversation: ConversationKey


CommandHandler = Callable[[CommandCall], Awaitable[str | None]]
"""A channel command: gets the call, returns the text to answer with (or None to stay silent)."""


@attrs.frozen
class ChatCommand:
    """A command the channel answers itself, without the agent (listed with setMyCommands)."""

    name: str
    description: str
    handler: CommandHandler

    def __attrs_post_init__(self) -> None:
        if not _COMMAND.match(self.name):
            raise ValueError(f"command name {self.name!r} must be 1-32 of a-z, 0-9 and _")
        if not 1 <= len(self.description.strip()) <= 256:
            raise ValueError(f"command {self.name!r}: the description must have 1-256 characters")


def command_list(commands: Sequence[ChatCommand]) -> list[dict[str, str]]:
    """The BotCommand list registered with setMyCommands: built-in commands, then the channel's own."""
    builtin = [{"command": name, "description": text} for name, text in BUILTIN_DESCRIPTIONS]
    return builtin + [{"command": c.name, "description": c.description} for c in commands]


def help_text(commands: Sequence[ChatCommand]) -> str:
    """The answer to /help."""
    return "\n".join(f"/{c['command']} - {c['description']}" for c in command_list(commands))
