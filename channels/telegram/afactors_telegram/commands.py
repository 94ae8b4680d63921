"""Chat commands: the built-in ones, what registered handlers receive, the setMyCommands list (pure)."""

from __future__ import annotations

import attrs

from afactors.model import ConversationKey
from afactors_telegram.config import TelegramConfig

BUILTIN_DESCRIPTIONS = (
    ("start", "Start talking to the bot"),
    ("new", "Start a new conversation (the old one is kept)"),
    ("help", "List the commands"),
)
NEW_CONVERSATION_TEXT = "Started a new conversation."


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


def command_list(config: TelegramConfig) -> list[dict[str, str]]:
    """The BotCommand list registered with setMyCommands: built-in commands, then the channel's own."""
    builtin = [{"command": name, "description": text} for name, text in BUILTIN_DESCRIPTIONS]
    return builtin + [{"command": c.name, "description": c.description} for c in config.commands]


def help_text(config: TelegramConfig) -> str:
    """The answer to /help."""
    return "\n".join(f"/{c['command']} - {c['description']}" for c in command_list(config))
