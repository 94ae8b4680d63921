"""afactors channel: Telegram (Bot API long polling or webhook, streaming previews, durable replies).

`TelegramChannel(token=...)` in code, or `python -m afactors --telegram-token ...`. See docs/channels/telegram.md.
"""

from afactors_telegram.channel import TelegramChannel, TelegramStartupError
from afactors_telegram.commands import CommandCall
from afactors_telegram.config import ChatCommand, SendLimits, TelegramConfig
from afactors_telegram.plugin import TelegramPlugin, plugin

__all__ = [
    "ChatCommand",
    "CommandCall",
    "SendLimits",
    "TelegramChannel",
    "TelegramConfig",
    "TelegramPlugin",
    "TelegramStartupError",
    "plugin",
]
